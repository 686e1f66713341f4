"""
Every field of every data form the server sends has the type its XEP registry gives.

One table per FORM_TYPE (field var -> registered type, from the XSF registry as the XEPs
publish it: XEP-0045 §15.5, XEP-0060 §16.4, XEP-0157 §6). The test drives the server
through a FakeHost to make it send each form it can send, and checks every field: its
type is the registered one (an absent type is text-single, XEP-0004 §3.3, allowed in
results only), its values are among its options when it offers some, and it is in the
table at all -- so a new field cannot slip in untyped. Strict clients (aioxmpp) refuse a
form whose field has another type than the registry's (issue 11 §9).
"""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc.config import (
    NS_ROOMCONFIG, RoomConfig, apply_form, config_form, register_form, room_info_form,
    voice_request_form)
from jabberapp.plugins.jabberapp_builtin import (
    caps, contact_addresses, muc, pep, pubsub_service, roster, service_discovery)
from jabberapp.testing import FakeHost, parse
from jabberapp.xml.ns import NS_DISCO_INFO

MUC = "http://jabber.org/protocol/muc"
PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = forms.NS_DATA_FORMS

# FORM_TYPE -> {var: registered type}. A tuple lists the types accepted where the XEP
# itself disagrees with its registry.
REGISTRY = {
    # XEP-0045 §15.5.3
    f"{MUC}#roomconfig": {
        "muc#maxhistoryfetch": "text-single",
        "muc#roomconfig_allowpm": "list-single",
        "muc#roomconfig_allowinvites": "boolean",
        "muc#roomconfig_changesubject": "boolean",
        "muc#roomconfig_enablelogging": "boolean",
        "muc#roomconfig_getmemberlist": "list-multi",
        "muc#roomconfig_lang": "text-single",
        "muc#roomconfig_pubsub": "text-single",
        "muc#roomconfig_maxusers": "list-single",
        "muc#roomconfig_membersonly": "boolean",
        "muc#roomconfig_moderatedroom": "boolean",
        "muc#roomconfig_passwordprotectedroom": "boolean",
        "muc#roomconfig_persistentroom": "boolean",
        "muc#roomconfig_presencebroadcast": "list-multi",
        "muc#roomconfig_publicroom": "boolean",
        "muc#roomconfig_roomadmins": "jid-multi",
        "muc#roomconfig_roomdesc": "text-single",
        "muc#roomconfig_roomname": "text-single",
        "muc#roomconfig_roomowners": "jid-multi",
        "muc#roomconfig_roomsecret": "text-private",
        "muc#roomconfig_whois": "list-single",
        # Not registered: Prosody's field for the same setting, with Prosody's type.
        "muc#roomconfig_historylength": "text-single",
    },
    # XEP-0045 §15.5.4
    f"{MUC}#roominfo": {
        "muc#maxhistoryfetch": "text-single",
        "muc#roominfo_contactjid": "jid-multi",
        "muc#roominfo_description": "text-single",
        "muc#roominfo_lang": "text-single",
        "muc#roominfo_ldapgroup": "text-single",
        "muc#roominfo_logs": "text-single",
        "muc#roominfo_occupants": "text-single",
        "muc#roominfo_subject": "text-single",
        "muc#roominfo_subjectmod": "boolean",
    },
    # XEP-0045 §15.5.2
    f"{MUC}#request": {
        "muc#role": "list-single",
        "muc#jid": "jid-single",
        "muc#roomnick": "text-single",
        "muc#request_allow": "boolean",
    },
    # XEP-0045 §15.5.1
    f"{MUC}#register": {
        "muc#register_allow": "boolean",
        "muc#register_email": "text-single",
        "muc#register_faqentry": "text-multi",
        "muc#register_first": "text-single",
        "muc#register_last": "text-single",
        "muc#register_roomnick": "text-single",
        "muc#register_url": "text-single",
    },
    # XEP-0060 §16.4.4 (also the fields of publish-options, §7.1.5, read by the same
    # definition; the server never sends a publish-options form)
    f"{PUBSUB}#node_config": {
        "pubsub#access_model": "list-single",
        "pubsub#body_xslt": "text-single",
        "pubsub#contact": "jid-multi",
        "pubsub#dataform_xslt": "text-single",
        "pubsub#deliver_notifications": "boolean",
        "pubsub#deliver_payloads": "boolean",
        "pubsub#description": "text-single",
        "pubsub#item_expire": "text-single",
        "pubsub#itemreply": "list-single",
        "pubsub#language": "list-single",
        "pubsub#max_items": "text-single",
        "pubsub#max_payload_size": "text-single",
        "pubsub#node_type": "list-single",
        "pubsub#notification_type": "list-single",
        "pubsub#notify_config": "boolean",
        "pubsub#notify_delete": "boolean",
        "pubsub#notify_retract": "boolean",
        "pubsub#notify_sub": "boolean",
        "pubsub#persist_items": "boolean",
        "pubsub#presence_based_delivery": "boolean",
        "pubsub#publish_model": "list-single",
        "pubsub#publish_node_full": "list-single",
        "pubsub#purge_offline": "boolean",
        "pubsub#roster_groups_allowed": "list-multi",
        "pubsub#send_last_published_item": "list-single",
        "pubsub#tempsub": "boolean",
        "pubsub#subscribe": "boolean",
        "pubsub#title": "text-single",
        "pubsub#type": "text-single",
    },
    # XEP-0060 §16.4.2
    f"{PUBSUB}#subscribe_options": {
        "pubsub#deliver": "boolean",
        "pubsub#digest": "boolean",
        "pubsub#digest_frequency": "text-single",
        "pubsub#expire": "text-single",
        "pubsub#include_body": "boolean",
        "pubsub#show-values": "list-multi",
        "pubsub#subscription_type": "list-single",
        "pubsub#subscription_depth": "list-single",
    },
    # XEP-0060 §16.4.1
    f"{PUBSUB}#subscribe_authorization": {
        "pubsub#allow": "boolean",
        "pubsub#node": "text-single",
        "pubsub#subscriber_jid": "jid-single",
        # The registry says text-single; XEP-0060's own §8.6 example sends it hidden.
        "pubsub#subid": ("text-single", "hidden"),
    },
    # XEP-0060 §16.4.3 (no node meta-data form is sent yet: the table waits for it)
    f"{PUBSUB}#meta-data": {
        "pubsub#contact": "jid-multi",
        "pubsub#creation_date": "text-single",
        "pubsub#creator": "jid-single",
        "pubsub#description": "text-single",
        "pubsub#language": "list-single",
        "pubsub#access_model": "list-single",
        "pubsub#publish_model": "list-single",
        "pubsub#num_subscribers": "text-single",
        "pubsub#owner": "jid-multi",
        "pubsub#publisher": "jid-multi",
        "pubsub#title": "text-single",
        "pubsub#type": "text-single",
        "pubsub#max_items": "text-single",
    },
    # XEP-0157 §6
    "http://jabber.org/network/serverinfo": {
        f"{role}-addresses": "list-multi"
        for role in ("abuse", "admin", "feedback", "sales", "security", "status", "support")
    },
}
NOT_SENT_YET = {f"{PUBSUB}#meta-data"}

ALICE, BOB, CAROL = "alice@example.org/a", "bob@example.org/b", "carol@example.org/c"
ROOM = "room@conference.example.org"
SERVICE = "pubsub.example.org"


class ServerFormsTests(SynchronousTestCase):
    """The forms the server sends, gathered from a host running every form-sending
    extension, against the registry tables."""

    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)
        for user in ("alice", "bob", "carol"):
            self.host.add_account(user)
        for extension in (service_discovery, roster, caps, pubsub_service, pep, muc):
            self.host.install(extension)
        self.host.install(contact_addresses, **{
            o.name: (f"mailto:{o.name}@example.org",) for o in contact_addresses.options})
        self._n = 0

    def iq(self, sender, type_, to, payload):
        """Send an IQ; return its result (failing on an error)."""
        self._n += 1
        self.host.receive(f"<iq type='{type_}' id='f{self._n}' from='{sender}' to='{to}'>"
                          f"{payload}</iq>")
        [reply] = [s for s in self.host.sent if s.get("id") == f"f{self._n}"]
        self.assertEqual(reply.get("type"), "result", reply)
        return reply

    def gather(self):
        """Make the server send every form it can; return every <x/> it sent."""
        host, iq = self.host, self.iq
        host.receive(f"<presence from='{ALICE}'/>")     # available: gets messages to her JID
        # MUC: a moderated room, its configuration, info and registration forms, and the
        # voice-request form moderators get.
        host.receive(f"<presence from='{ALICE}' to='{ROOM}/alice'><x xmlns='{MUC}'/></presence>")
        iq(ALICE, "get", ROOM, f"<query xmlns='{MUC}#owner'/>")
        iq(ALICE, "set", ROOM, f"<query xmlns='{MUC}#owner'><x xmlns='{NS_DATA}' "
                               "type='submit'><field var='muc#roomconfig_moderatedroom'>"
                               "<value>1</value></field></x></query>")
        host.receive(f"<presence from='{BOB}' to='{ROOM}/bob'><x xmlns='{MUC}'/></presence>")
        host.receive(f"<message from='{BOB}' to='{ROOM}'><x xmlns='{NS_DATA}' type='submit'>"
                     f"<field var='FORM_TYPE'><value>{MUC}#request</value></field>"
                     "<field var='muc#role'><value>participant</value></field></x></message>")
        iq(BOB, "get", ROOM, f"<query xmlns='{NS_DISCO_INFO}'/>")
        iq(CAROL, "get", ROOM, "<query xmlns='jabber:iq:register'/>")
        # Pubsub: node configuration and defaults (service and PEP), subscription options,
        # and the authorization form of the authorize access model.
        node_config = (f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'>"
                       f"<value>{PUBSUB}#node_config</value></field>"
                       "<field var='pubsub#access_model'><value>authorize</value></field>"
                       "<field var='pubsub#roster_groups_allowed'><value>Friends</value>"
                       "</field></x>")
        iq(ALICE, "set", SERVICE, f"<pubsub xmlns='{PUBSUB}'><create node='n'/><configure>"
                                  f"{node_config}</configure></pubsub>")
        iq(ALICE, "get", SERVICE, f"<pubsub xmlns='{PUBSUB}#owner'><configure node='n'/>"
                                  "</pubsub>")
        iq(ALICE, "get", SERVICE, f"<pubsub xmlns='{PUBSUB}#owner'><default/></pubsub>")
        iq(ALICE, "set", "alice@example.org", f"<pubsub xmlns='{PUBSUB}'><publish node='p'>"
                                              "<item><e xmlns='urn:test'/></item></publish>"
                                              "</pubsub>")
        iq(ALICE, "get", "alice@example.org", f"<pubsub xmlns='{PUBSUB}#owner'>"
                                              "<configure node='p'/></pubsub>")
        iq(ALICE, "set", SERVICE, f"<pubsub xmlns='{PUBSUB}'><subscribe node='n' "
                                  f"jid='{ALICE}'/></pubsub>")
        iq(ALICE, "get", SERVICE, f"<pubsub xmlns='{PUBSUB}'><options node='n' "
                                  f"jid='{ALICE}'/></pubsub>")
        iq(BOB, "set", SERVICE, f"<pubsub xmlns='{PUBSUB}'><subscribe node='n' "
                                f"jid='{BOB}'/></pubsub>")
        self.clock.advance(0)
        # The server's own disco#info: XEP-0128 forms (contact addresses).
        iq(ALICE, "get", "example.org", f"<query xmlns='{NS_DISCO_INFO}'/>")
        return [x for stanza in host.sent for x in stanza.iter(forms.X)]

    def assertRegistered(self, x):
        """Each field of the sent form C{x} is in its FORM_TYPE's table, of that type,
        with its values among its options when it offers any."""
        form = forms.parse(x)
        where = f"a {form.type} form of FORM_TYPE {form.form_type}"
        self.assertIn(form.form_type, REGISTRY, f"{where}: no table for it")
        table = REGISTRY[form.form_type]
        for field in form.fields:
            if field.var is None and field.type == "fixed":
                continue
            self.assertIn(field.var, table, f"{where}: {field.var} is not registered")
            if form.type == "form":
                self.assertIsNotNone(field.type, f"{where}: {field.var} has no type")
            sent = field.type or "text-single"
            expected = table[field.var]
            self.assertIn(sent, expected if isinstance(expected, tuple) else (expected,),
                          f"{where}: {field.var} is {sent}, registered {expected}")
            if field.options:
                offered = {value for value, _ in field.options}
                self.assertLessEqual(set(field.values), offered,
                                     f"{where}: {field.var} holds a value it does not offer")

    def test_every_form_sent(self):
        """Every form the server sends types every field as the registry says, and every
        registry table but those of forms not sent yet was exercised."""
        sent = self.gather()
        for x in sent:
            self.assertRegistered(x)
        seen = {forms.parse(x).form_type for x in sent}
        self.assertEqual(seen, set(REGISTRY) - NOT_SENT_YET)

    def test_untyped_field_is_caught(self):
        """A field the table does not know, or of another type, fails the check."""
        good = forms.result_form(f"{PUBSUB}#subscribe_options",
                                 [forms.Field("pubsub#deliver", "boolean", values=("1",))])
        self.assertRegistered(good)
        for field in (forms.Field("pubsub#deliver", "text-single"),
                      forms.Field("x-new#field", "boolean")):
            bad = forms.result_form(f"{PUBSUB}#subscribe_options", [field])
            self.assertRaises(self.failureException, self.assertRegistered, bad)

    def test_muc_definitions(self):
        """The MUC form definitions in muc/config.py (room info, voice request,
        registration) type every field as the registry says, explicitly."""
        for x in (room_info_form(RoomConfig(description="d"), 3, None),
                  voice_request_form("bob@example.org/b", "bob"),
                  register_form(ROOM)):
            self.assertRegistered(x)
            self.assertNotIn(None, [f.type for f in forms.parse(x).fields])


class MaxUsersTests(SynchronousTestCase):
    """muc#roomconfig_maxusers is a list-single, and a submitted value is still checked."""

    def maxusers(self, x):
        """The maxusers field of a room configuration form."""
        return forms.parse(x).field("muc#roomconfig_maxusers")

    def submit(self, value, max_users=300):
        """The RoomConfig after submitting maxusers C{value}."""
        x = parse(f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'>"
                  f"<value>{NS_ROOMCONFIG}</value></field><field var="
                  f"'muc#roomconfig_maxusers'><value>{value}</value></field></x>")
        return apply_form(RoomConfig(), x, max_users, 100)

    def test_choices(self):
        """The choices are ejabberd's up to the service maximum, the maximum itself, and
        the room's current value."""
        field = self.maxusers(config_form(RoomConfig(max_users=42), max_users=300))
        self.assertEqual(field.type, "list-single")
        self.assertEqual([v for v, _ in field.options],
                         ["5", "10", "20", "30", "42", "50", "100", "200", "300"])
        self.assertEqual(field.values, ("42",))
        field = self.maxusers(config_form(RoomConfig(max_users=200)))
        self.assertEqual([v for v, _ in field.options][-1], "200")

    def test_submitted(self):
        """Any number within the maximum is accepted (also one not offered); others are
        not-acceptable naming the field."""
        self.assertEqual(self.submit("100").max_users, 100)
        self.assertEqual(self.submit("77").max_users, 77)
        for bad in ("0", "301", "none", "many"):
            error = self.assertRaises(StanzaError, self.submit, bad)
            self.assertEqual(error.condition, "not-acceptable")
            self.assertIn("muc#roomconfig_maxusers", error.text)
