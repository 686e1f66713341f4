"""Unit tests of the XEP-0060 service at pubsub.<host>, through a FakeHost."""
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

from jabberapp.extensions.pubsub.plugin import pep, pubsub_service
from jabberapp.interfaces import IExtension
from jabberapp.jid import JID
from tests.extensions.pubsub.helpers import (
    NS_DATA, NS_EVENT, NS_PUBSUB, NS_STANZAS, SERVICE, PubSubTestCase, form, parse)

ALICE = "alice@example.org/r"
BOB = "bob@example.org/r"


class InterfaceTests(PubSubTestCase):
    def test_plugins(self):
        """Both plugin objects provide IPlugin and IExtension."""
        for extension in (pubsub_service, pep):
            verifyObject(IPlugin, extension)
            verifyObject(IExtension, extension)

    def test_disco_info(self):
        """The service answers disco#info with pubsub/service and the publish feature."""
        reply = self.ok(ALICE, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        query = reply[0]
        identity = query.find("{http://jabber.org/protocol/disco#info}identity")
        self.assertEqual((identity.get("category"), identity.get("type")),
                         ("pubsub", "service"))
        features = {f.get("var") for f in query}
        self.assertIn(f"{NS_PUBSUB}#publish", features)
        self.assertIn(f"{NS_PUBSUB}#publish-options", features)

    def test_listed_in_host_items(self):
        """The host's disco#items lists the service domain."""
        reply = self.ok(ALICE, "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                        to="example.org")
        self.assertIn(SERVICE, [i.get("jid") for i in reply[0]])

    def test_disco_items_lists_nodes(self):
        """disco#items of the service lists its readable nodes."""
        self.create("n1")
        self.create("secret", config={"access_model": "whitelist"})
        reply = self.ok(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>")
        self.assertEqual([i.get("node") for i in reply[0]], ["n1"])


class CreateDeleteTests(PubSubTestCase):
    def test_create_and_conflict(self):
        """Creating a node twice is a conflict."""
        self.create("news")
        inner = self.pubsub("<create node='news'/>")
        self.assertEqual(self.error(ALICE, "set", inner), ("conflict", None))

    def test_instant_node(self):
        """A create without a node name returns the generated name."""
        reply = self.ok(ALICE, "set", self.pubsub("<create/>"))
        name = reply[0][0].get("node")
        self.assertTrue(name)
        self.do_publish(name)

    def test_create_with_config(self):
        """Create-and-configure stores the submitted options."""
        self.create("c", config={"max_items": "3", "access_model": "whitelist"})
        reply = self.ok(ALICE, "get", self.pubsub("<configure node='c'/>", owner=True))
        values = {f.get("var"): f.findtext(f"{{{NS_DATA}}}value")
                  for f in reply.iter(f"{{{NS_DATA}}}field")}
        self.assertEqual(values["pubsub#max_items"], "3")
        self.assertEqual(values["pubsub#access_model"], "whitelist")

    def test_create_bad_config(self):
        """An invalid configuration value is not-acceptable and creates nothing."""
        inner = self.pubsub("<create node='c'/><configure>" +
                            form({"access_model": "bogus"}, "node_config") + "</configure>")
        self.assertEqual(self.error(ALICE, "set", inner)[0], "not-acceptable")
        self.assertEqual(self.error(ALICE, "get", self.pubsub("<items node='c'/>")),
                         ("item-not-found", None))

    def test_remote_cannot_create(self):
        """Only local users create nodes."""
        self.host.receive(f"<iq type='set' id='x' from='eve@remote.example/r' to='{SERVICE}'>"
                          + self.pubsub("<create node='x'/>") + "</iq>")
        self.assertEqual(self.host.remote.received[-1].get("type"), "error")

    def test_delete_notifies(self):
        """Deleting a node notifies subscribers; only the owner may delete."""
        self.create("d")
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='d' jid='{BOB}'/>"))
        self.assertEqual(self.error(BOB, "set", self.pubsub("<delete node='d'/>", owner=True)),
                         ("forbidden", None))
        self.ok(ALICE, "set", self.pubsub("<delete node='d'/>", owner=True))
        event = self.events(BOB)[-1].find(f"{{{NS_EVENT}}}event")
        self.assertEqual(event[0].tag, f"{{{NS_EVENT}}}delete")
        self.assertEqual(self.error(ALICE, "get", self.pubsub("<items node='d'/>"))[0],
                         "item-not-found")

    def test_unknown_node(self):
        """Actions on a missing node are item-not-found."""
        inner, sender, to = self.publish("missing")
        self.assertEqual(self.error(sender, "set", inner), ("item-not-found", None))
        self.assertEqual(self.error(BOB, "set", self.pubsub(
            f"<subscribe node='missing' jid='{BOB}'/>"))[0], "item-not-found")

    def test_default_form(self):
        """The owner namespace's <default/> returns the node_config form."""
        reply = self.ok(ALICE, "get", self.pubsub("<default/>", owner=True))
        self.assertIsNotNone(reply.find(f".//{{{NS_DATA}}}x"))

    def test_unsupported(self):
        """An action the service does not know is feature-not-implemented/unsupported."""
        self.create("o")
        self.assertEqual(self.error(BOB, "get", self.pubsub("<collection node='o'/>")),
                         ("feature-not-implemented", "unsupported"))
        self.assertEqual(self.error(BOB, "get", self.pubsub("<publish node='o'/>"))[0],
                         "bad-request")

    def test_node_count_limit(self):
        """Creating beyond max_nodes is refused with policy-violation."""
        self.host.unload("pubsub")
        self.host.install(pubsub_service, max_nodes=1)
        self.create("one")
        self.assertEqual(self.error(ALICE, "set", self.pubsub("<create node='two'/>"))[0],
                         "policy-violation")


class PublishTests(PubSubTestCase):
    def setUp(self):
        super().setUp()
        self.create("feed")
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='feed' jid='{BOB}'/>"))

    def test_publish_notifies_with_payload(self):
        """A publish reaches the subscriber as a headline event with the payload."""
        reply = self.do_publish("feed", item_id="i1")
        self.assertEqual(reply[0][0][0].get("id"), "i1")
        message = self.events(BOB)[-1]
        self.assertEqual(message.get("type"), "headline")
        self.assertEqual(message.get("from"), SERVICE)
        item = message.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}items/{{{NS_EVENT}}}item")
        self.assertEqual(item.get("id"), "i1")
        self.assertEqual(item[0].text, "hi")

    def test_generated_id(self):
        """An item without an id gets one, returned in the result."""
        reply = self.do_publish("feed")
        self.assertTrue(reply[0][0][0].get("id"))

    def test_same_id_replaces(self):
        """Publishing the same id replaces the item."""
        self.do_publish("feed", payload="<e xmlns='urn:t'>1</e>", item_id="x")
        self.do_publish("feed", payload="<e xmlns='urn:t'>2</e>", item_id="x")
        reply = self.ok(BOB, "get", self.pubsub("<items node='feed'/>"))
        items = list(reply[0][0])
        self.assertEqual([(i.get("id"), i[0].text) for i in items], [("x", "2")])

    def test_max_items(self):
        """Only the newest max_items items are kept."""
        self.ok(ALICE, "set", self.pubsub(
            "<configure node='feed'>" + form({"max_items": "2"}, "node_config") +
            "</configure>", owner=True))
        for n in range(4):
            self.do_publish("feed", item_id=f"i{n}")
        reply = self.ok(BOB, "get", self.pubsub("<items node='feed'/>"))
        self.assertEqual([i.get("id") for i in reply[0][0]], ["i2", "i3"])

    def test_items_by_id_and_max_items(self):
        """Items can be fetched by id and the newest N with max_items."""
        for n in range(3):
            self.do_publish("feed", item_id=f"i{n}")
        reply = self.ok(BOB, "get", self.pubsub("<items node='feed'><item id='i1'/></items>"))
        self.assertEqual([i.get("id") for i in reply[0][0]], ["i1"])
        reply = self.ok(BOB, "get", self.pubsub("<items node='feed' max_items='2'/>"))
        self.assertEqual([i.get("id") for i in reply[0][0]], ["i1", "i2"])

    def test_items_rsm(self):
        """RSM pages through items with first/last/count."""
        for n in range(5):
            self.do_publish("feed", item_id=f"i{n}")
        rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max>{}</set>"
        reply = self.ok(BOB, "get", self.pubsub("<items node='feed'/>" + rsm.format("")))
        self.assertEqual([i.get("id") for i in reply[0][0]], ["i0", "i1"])
        rsm_set = reply[0][1]
        self.assertEqual(rsm_set.findtext("{http://jabber.org/protocol/rsm}count"), "5")
        reply = self.ok(BOB, "get", self.pubsub(
            "<items node='feed'/>" + rsm.format("<after>i1</after>")))
        self.assertEqual([i.get("id") for i in reply[0][0]], ["i2", "i3"])
        reply = self.ok(BOB, "get", self.pubsub(
            "<items node='feed'/>" + rsm.format("<before/>")))
        self.assertEqual([i.get("id") for i in reply[0][0]], ["i3", "i4"])
        self.assertEqual(self.error(BOB, "get", self.pubsub(
            "<items node='feed'/>" + rsm.format("<after>nope</after>")))[0], "item-not-found")

    def test_retract_notifies(self):
        """Retracting sends a <retract/> event and removes the item."""
        self.do_publish("feed", item_id="r1")
        self.ok(ALICE, "set", self.pubsub(
            "<retract node='feed' notify='true'><item id='r1'/></retract>"))
        retract = self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}retract")
        self.assertEqual(retract.get("id"), "r1")
        self.assertEqual(self.error(ALICE, "set", self.pubsub(
            "<retract node='feed'><item id='r1'/></retract>")), ("item-not-found", None))

    def test_purge(self):
        """Purge removes every item and notifies."""
        self.do_publish("feed", item_id="p1")
        self.ok(ALICE, "set", self.pubsub("<purge node='feed'/>", owner=True))
        reply = self.ok(BOB, "get", self.pubsub("<items node='feed'/>"))
        self.assertEqual(len(reply[0][0]), 0)
        self.assertIsNotNone(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}purge"))

    def test_publish_forbidden(self):
        """A subscriber without publisher affiliation may not publish."""
        inner, _, _ = self.publish("feed")
        self.assertEqual(self.error(BOB, "set", inner), ("forbidden", None))

    def test_publisher_affiliation(self):
        """The owner makes bob a publisher; then bob may publish."""
        self.ok(ALICE, "set", self.pubsub(
            "<affiliations node='feed'><affiliation jid='bob@example.org' "
            "affiliation='publisher'/></affiliations>", owner=True))
        inner, _, _ = self.publish("feed")
        self.ok(BOB, "set", inner)
        reply = self.ok(ALICE, "get", self.pubsub("<affiliations node='feed'/>", owner=True))
        self.assertEqual({(a.get("jid"), a.get("affiliation")) for a in reply[0][0]},
                         {("alice@example.org", "owner"), ("bob@example.org", "publisher")})

    def test_last_owner_kept(self):
        """Removing the only owner is not-acceptable."""
        self.assertEqual(self.error(ALICE, "set", self.pubsub(
            "<affiliations node='feed'><affiliation jid='alice@example.org' "
            "affiliation='none'/></affiliations>", owner=True))[0], "not-acceptable")

    def test_payload_rules(self):
        """No item, two payloads and oversized payloads have their XEP-0060 errors."""
        self.assertEqual(self.error(ALICE, "set", self.pubsub("<publish node='feed'/>")),
                         ("bad-request", "item-required"))
        self.assertEqual(self.error(ALICE, "set", self.pubsub(
            "<publish node='feed'><item><a xmlns='urn:a'/><b xmlns='urn:b'/></item>"
            "</publish>")), ("bad-request", "invalid-payload"))
        big = "<e xmlns='urn:t'>" + "x" * 70000 + "</e>"
        inner, _, _ = self.publish("feed", payload=big)
        self.assertEqual(self.error(ALICE, "set", inner), ("not-acceptable", "payload-too-big"))

    def test_no_payloads(self):
        """With deliver_payloads off the event item has no payload."""
        self.ok(ALICE, "set", self.pubsub(
            "<configure node='feed'>" + form({"deliver_payloads": "0"}, "node_config") +
            "</configure>", owner=True))
        self.do_publish("feed", item_id="np")
        item = self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}item")
        self.assertEqual(len(item), 0)

    def test_publish_options_precondition(self):
        """publish-options not matching the node is conflict/precondition-not-met."""
        inner, _, _ = self.publish("feed", options={"access_model": "whitelist"})
        self.assertEqual(self.error(ALICE, "set", inner), ("conflict", "precondition-not-met"))
        inner, _, _ = self.publish("feed", options={"access_model": "open"})
        self.ok(ALICE, "set", inner)

    def test_outcast(self):
        """An outcast loses its subscription and may not read."""
        self.ok(ALICE, "set", self.pubsub(
            "<affiliations node='feed'><affiliation jid='bob@example.org' "
            "affiliation='outcast'/></affiliations>", owner=True))
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='feed'/>"))[0],
                         "forbidden")
        before = len(self.events(BOB))
        self.do_publish("feed")
        self.assertEqual(len(self.events(BOB)), before)


class SubscriptionTests(PubSubTestCase):
    def setUp(self):
        super().setUp()
        self.create("s")

    def test_jid_must_match(self):
        """Subscribing another entity's JID is bad-request with invalid-jid (§6.1.3.1)."""
        self.assertEqual(self.error(BOB, "set", self.pubsub(
            "<subscribe node='s' jid='carol@example.org'/>")), ("bad-request", "invalid-jid"))
        self.assertEqual(self.error(BOB, "set", self.pubsub("<subscribe node='s'/>")),
                         ("bad-request", "jid-required"))

    def test_unsubscribe(self):
        """After unsubscribing no notifications arrive; unsubscribing again errs."""
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='s' jid='{BOB}'/>"))
        self.ok(BOB, "set", self.pubsub(f"<unsubscribe node='s' jid='{BOB}'/>"))
        self.do_publish("s")
        self.assertEqual(self.events(BOB), [])
        self.assertEqual(self.error(BOB, "set", self.pubsub(
            f"<unsubscribe node='s' jid='{BOB}'/>")), ("unexpected-request", "not-subscribed"))

    def test_own_subscriptions_and_owner_view(self):
        """The subscriber lists its subscriptions; the owner lists all of the node's."""
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='s' jid='{BOB}'/>"))
        reply = self.ok(BOB, "get", self.pubsub("<subscriptions/>"))
        self.assertEqual([(s.get("node"), s.get("jid")) for s in reply[0][0]], [("s", BOB)])
        reply = self.ok(ALICE, "get", self.pubsub("<subscriptions node='s'/>", owner=True))
        self.assertEqual([s.get("jid") for s in reply[0][0]], [BOB])
        self.assertEqual(self.error(BOB, "get", self.pubsub("<subscriptions node='s'/>",
                                                            owner=True))[0], "forbidden")

    def test_last_item_on_subscribe(self):
        """With send_last_published_item on_sub the subscriber gets the last item."""
        self.ok(ALICE, "set", self.pubsub(
            "<configure node='s'>" + form({"send_last_published_item": "on_sub"},
                                          "node_config") + "</configure>", owner=True))
        self.do_publish("s", item_id="last")
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='s' jid='{BOB}'/>"))
        self.clock.advance(0)
        self.assertEqual(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}item").get("id"), "last")

    def test_whitelist(self):
        """A whitelist node refuses non-members with closed-node; members get in."""
        self.ok(ALICE, "set", self.pubsub(
            "<configure node='s'>" + form({"access_model": "whitelist"}, "node_config") +
            "</configure>", owner=True))
        self.assertEqual(self.error(BOB, "set", self.pubsub(
            f"<subscribe node='s' jid='{BOB}'/>")), ("not-allowed", "closed-node"))
        self.ok(ALICE, "set", self.pubsub(
            "<affiliations node='s'><affiliation jid='bob@example.org' "
            "affiliation='member'/></affiliations>", owner=True))
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='s' jid='{BOB}'/>"))

    def test_presence_access(self):
        """A presence node admits those who see the owner's presence."""
        self.ok(ALICE, "set", self.pubsub(
            "<configure node='s'>" + form({"access_model": "presence"}, "node_config") +
            "</configure>", owner=True))
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='s'/>")),
                         ("not-authorized", "presence-subscription-required"))
        self.befriend("alice", "bob@example.org", "from")
        self.ok(BOB, "get", self.pubsub("<items node='s'/>"))

    def test_roster_access(self):
        """A roster node admits contacts in an allowed group only."""
        self.ok(ALICE, "set", self.pubsub(
            "<configure node='s'>" + form({"access_model": "roster",
                                           "roster_groups_allowed": ["Friends"]},
                                          "node_config") + "</configure>", owner=True))
        self.befriend("alice", "bob@example.org", "both", groups=["Work"])
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='s'/>")),
                         ("not-authorized", "not-in-roster-group"))
        self.befriend("alice", "bob@example.org", "both", groups=["Friends"])
        self.ok(BOB, "get", self.pubsub("<items node='s'/>"))

    def test_owner_sets_subscriptions(self):
        """The owner subscribes and unsubscribes others."""
        self.bind(BOB)
        self.ok(ALICE, "set", self.pubsub(
            f"<subscriptions node='s'><subscription jid='{BOB}' subscription='subscribed'/>"
            "</subscriptions>", owner=True))
        self.do_publish("s")
        self.assertEqual(len(self.events(BOB)), 1)
        self.ok(ALICE, "set", self.pubsub(
            f"<subscriptions node='s'><subscription jid='{BOB}' subscription='none'/>"
            "</subscriptions>", owner=True))
        self.do_publish("s")
        self.assertEqual(len(self.events(BOB)), 1)


class PersistenceTests(PubSubTestCase):
    def test_items_survive_reinstall(self):
        """Items and subscriptions are in storage: a reinstalled extension serves them."""
        self.create("p")
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='p' jid='{BOB}'/>"))
        self.do_publish("p", item_id="keep")
        self.host.unload("pep")
        self.host.unload("pubsub")
        self.host.install(pubsub_service)
        reply = self.ok(BOB, "get", self.pubsub("<items node='p'/>"))
        self.assertEqual([i.get("id") for i in reply[0][0]], ["keep"])
        self.do_publish("p", item_id="again")
        self.assertEqual(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}item").get("id"),
                         "again")


DELIVER_OFF = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
               "<value>http://jabber.org/protocol/pubsub#subscribe_options</value></field>"
               "<field var='pubsub#deliver'><value>{}</value></field></x>")


class SubscriptionOptionsTests(PubSubTestCase):
    def setUp(self):
        super().setUp()
        self.create("o")
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='o' jid='{BOB}'/>"))

    def test_get_and_set_deliver(self):
        """pubsub#deliver off silences the subscription; the form shows the value."""
        reply = self.ok(BOB, "get", self.pubsub(f"<options node='o' jid='{BOB}'/>"))
        field = [f for f in reply.iter(f"{{{NS_DATA}}}field")
                 if f.get("var") == "pubsub#deliver"][0]
        self.assertEqual(field.findtext(f"{{{NS_DATA}}}value"), "1")
        self.ok(BOB, "set", self.pubsub(f"<options node='o' jid='{BOB}'>" +
                                        DELIVER_OFF.format("0") + "</options>"))
        self.do_publish("o")
        self.assertEqual(self.events(BOB), [])
        self.ok(BOB, "set", self.pubsub(f"<options node='o' jid='{BOB}'>" +
                                        DELIVER_OFF.format("1") + "</options>"))
        self.do_publish("o")
        self.assertEqual(len(self.events(BOB)), 1)

    def test_subscribe_with_options(self):
        """Options given with the subscription apply at once (§6.1.6)."""
        self.ok(BOB, "set", self.pubsub(f"<unsubscribe node='o' jid='{BOB}'/>"))
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='o' jid='{BOB}'/><options>" +
                                        DELIVER_OFF.format("0") + "</options>"))
        self.do_publish("o")
        self.assertEqual(self.events(BOB), [])

    def test_option_errors(self):
        """Unknown options, others' subscriptions and non-subscribers get §6.3 errors."""
        bad = DELIVER_OFF.replace("pubsub#deliver", "pubsub#digest").format("1")
        self.assertEqual(self.error(BOB, "set", self.pubsub(
            f"<options node='o' jid='{BOB}'>{bad}</options>")), ("bad-request", "invalid-options"))
        self.assertEqual(self.error("carol@example.org/r", "get", self.pubsub(
            f"<options node='o' jid='{BOB}'/>")), ("forbidden", None))
        self.assertEqual(self.error("carol@example.org/r", "get", self.pubsub(
            "<options node='o' jid='carol@example.org/r'/>")),
            ("unexpected-request", "not-subscribed"))
        self.assertEqual(self.error(BOB, "get", self.pubsub(
            f"<options node='o' jid='{BOB}' subid='wrong'/>")), ("not-acceptable", "invalid-subid"))


class UserDeletedTests(PubSubTestCase):
    def test_deleted_account_leaves_nodes(self):
        """A deleted account's sole-owned nodes go (subscribers told); elsewhere its
        affiliations and subscriptions are removed."""
        self.create("alone")
        self.create("shared", sender=BOB)
        self.ok(BOB, "set", self.pubsub(
            "<affiliations node='shared'><affiliation jid='alice@example.org' "
            "affiliation='owner'/></affiliations>", owner=True))
        self.ok(ALICE, "set", self.pubsub(f"<subscribe node='shared' jid='{ALICE}'/>"))
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='alone' jid='{BOB}'/>"))
        self.successResultOf(self.host.storage.delete_user("example.org", "alice"))
        self.host.user_deleted(JID.parse("alice@example.org"))
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='alone'/>"))[0],
                         "item-not-found")
        self.assertIsNotNone(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}delete"))
        reply = self.ok(BOB, "get", self.pubsub("<affiliations node='shared'/>", owner=True))
        self.assertEqual([a.get("jid") for a in reply[0][0]], ["bob@example.org"])
        reply = self.ok(BOB, "get", self.pubsub("<subscriptions node='shared'/>", owner=True))
        self.assertEqual(len(reply[0][0]), 0)


class AuthorizeTests(PubSubTestCase):
    """The authorize access model (XEP-0060 §6.1.3.2, §8.6)."""

    def setUp(self):
        super().setUp()
        self.bind(ALICE)
        self.create("club", config={"access_model": "authorize",
                                    "send_last_published_item": "on_sub"})
        self.do_publish("club", item_id="old")

    def request(self, jid=BOB):
        reply = self.ok(jid, "set", self.pubsub(f"<subscribe node='club' jid='{jid}'/>"))
        subscription = reply[0][0]
        self.assertEqual(subscription.get("subscription"), "pending")
        self.clock.advance(0)
        return subscription.get("subid")

    def approval_requests(self, to="alice@example.org"):
        return [s for s in self.host.sent if s.tag == "{jabber:client}message"
                and s.get("to", "").startswith(to) and s.find(f"{{{NS_DATA}}}x") is not None]

    def answer(self, allow, sender=ALICE, subid=None, jid=BOB, form_type="submit"):
        fields = {"FORM_TYPE": "http://jabber.org/protocol/pubsub#subscribe_authorization",
                  "pubsub#node": "club", "pubsub#subscriber_jid": jid,
                  "pubsub#allow": "true" if allow else "false"}
        if subid:
            fields["pubsub#subid"] = subid
        x = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
        self.host.receive(f"<message id='m1' from='{sender}' to='{SERVICE}'>"
                          f"<x xmlns='{NS_DATA}' type='{form_type}'>{x}</x></message>")

    def subscription_events(self, jid=BOB):
        return [e.find(f"{{{NS_EVENT}}}event")[0] for e in self.events(jid)
                if e.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}subscription") is not None]

    def test_feature(self):
        """The service advertises pubsub#access-authorize."""
        reply = self.ok(ALICE, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        self.assertIn(f"{NS_PUBSUB}#access-authorize", {f.get("var") for f in reply[0]})

    def test_request_goes_to_owner(self):
        """A subscription request is pending and the owner gets the §8.6 form."""
        subid = self.request()
        [message] = self.approval_requests()
        self.assertEqual(message.get("from"), SERVICE)
        values = {f.get("var"): f.findtext(f"{{{NS_DATA}}}value")
                  for f in message.iter(f"{{{NS_DATA}}}field")}
        self.assertEqual(values, {
            "FORM_TYPE": "http://jabber.org/protocol/pubsub#subscribe_authorization",
            "pubsub#subid": subid, "pubsub#node": "club", "pubsub#subscriber_jid": BOB,
            "pubsub#allow": "false"})

    def test_pending_gets_nothing(self):
        """A pending subscriber may not read items and receives no notifications."""
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='club'/>")),
                         ("not-authorized", "not-subscribed"))
        self.request()
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='club'/>")),
                         ("not-authorized", "pending-subscription"))
        self.do_publish("club", item_id="new")
        self.assertEqual(self.events(BOB), [])
        reply = self.ok(BOB, "get", self.pubsub("<subscriptions/>"))
        self.assertEqual([s.get("subscription") for s in reply[0][0]], ["pending"])
        reply = self.ok(ALICE, "get", self.pubsub("<subscriptions node='club'/>", owner=True))
        self.assertEqual([(s.get("jid"), s.get("subscription")) for s in reply[0][0]],
                         [(BOB, "pending")])

    def test_approve_by_form(self):
        """Approving by form subscribes, tells the subscriber and sends the last item."""
        subid = self.request()
        self.answer(True, subid=subid)
        [event] = self.subscription_events()
        self.assertEqual((event.get("node"), event.get("jid"), event.get("subscription"),
                          event.get("subid")), ("club", BOB, "subscribed", subid))
        items = [e for e in self.events(BOB)
                 if e.find(f".//{{{NS_EVENT}}}item") is not None]
        self.assertEqual(items[0].find(f".//{{{NS_EVENT}}}item").get("id"), "old")
        self.ok(BOB, "get", self.pubsub("<items node='club'/>"))
        self.do_publish("club", item_id="new")
        self.assertEqual(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}item").get("id"), "new")
        reply = self.ok(BOB, "set", self.pubsub(f"<subscribe node='club' jid='{BOB}'/>"))
        self.assertEqual(reply[0][0].get("subscription"), "subscribed")

    def test_deny_by_form(self):
        """Denying by form removes the request and tells the subscriber 'none'."""
        self.request()
        self.answer(False)
        [event] = self.subscription_events()
        self.assertEqual(event.get("subscription"), "none")
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='club'/>")),
                         ("not-authorized", "not-subscribed"))
        reply = self.ok(ALICE, "get", self.pubsub("<subscriptions node='club'/>", owner=True))
        self.assertEqual(len(reply[0][0]), 0)

    def test_cancelled_form_keeps_request(self):
        """A cancelled form leaves the request pending."""
        self.request()
        self.answer(True, form_type="cancel")
        self.assertEqual(self.subscription_events(), [])
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='club'/>")),
                         ("not-authorized", "pending-subscription"))

    def test_form_errors(self):
        """Only an owner may answer, and only for a pending request with its subid."""
        self.request()
        self.answer(True, sender="carol@example.org/r")
        self.assertEqual(self.host.sent[-1].get("type"), "error")
        self.assertIsNotNone(self.host.sent[-1].find(f".//{{{NS_STANZAS}}}forbidden"))
        self.answer(True, subid="wrong")
        self.assertIsNotNone(self.host.sent[-1].find(f".//{{{NS_STANZAS}}}unexpected-request"))
        self.answer(True, jid="carol@example.org")
        self.assertIsNotNone(self.host.sent[-1].find(f".//{{{NS_STANZAS}}}unexpected-request"))
        self.assertEqual(self.subscription_events(), [])

    def test_approve_and_deny_by_owner_subscriptions(self):
        """An owner subscriptions set approves or denies pending requests."""
        self.request()
        self.request("carol@example.org/r")
        self.ok(ALICE, "set", self.pubsub(
            "<subscriptions node='club'>"
            f"<subscription jid='{BOB}' subscription='subscribed'/>"
            "<subscription jid='carol@example.org/r' subscription='none'/>"
            "</subscriptions>", owner=True))
        self.assertEqual(self.subscription_events()[0].get("subscription"), "subscribed")
        self.assertEqual(self.subscription_events("carol@example.org/r")[0].get(
            "subscription"), "none")
        reply = self.ok(ALICE, "get", self.pubsub("<subscriptions node='club'/>", owner=True))
        self.assertEqual([(s.get("jid"), s.get("subscription")) for s in reply[0][0]],
                         [(BOB, "subscribed")])

    def test_members_and_unsubscribe(self):
        """Members subscribe at once; a pending request may be withdrawn."""
        self.ok(ALICE, "set", self.pubsub(
            "<affiliations node='club'><affiliation jid='carol@example.org' "
            "affiliation='member'/></affiliations>", owner=True))
        reply = self.ok("carol@example.org/r", "set", self.pubsub(
            "<subscribe node='club' jid='carol@example.org/r'/>"))
        self.assertEqual(reply[0][0].get("subscription"), "subscribed")
        self.request()
        self.ok(BOB, "set", self.pubsub(f"<unsubscribe node='club' jid='{BOB}'/>"))
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='club'/>")),
                         ("not-authorized", "not-subscribed"))


SHOWS = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
         "<value>http://jabber.org/protocol/pubsub#subscribe_options</value></field>"
         "<field var='pubsub#show-values'>{}</field></x>")


class ShowValuesTests(PubSubTestCase):
    """The pubsub#show-values subscription option (XEP-0060 §6.3)."""

    def setUp(self):
        super().setUp()
        self.create("s")

    def shows(self, jid, *values):
        inner = "".join(f"<value>{v}</value>" for v in values)
        return self.pubsub(f"<options node='s' jid='{jid}'>" + SHOWS.format(inner) +
                           "</options>")

    def notified(self, jid):
        """How many notifications went to C{jid} (to each session of a bare JID)."""
        return len({e.get("id") for e in self.events(jid)})

    def set_show(self, jid, show):
        session = self.host.session(jid)
        session.presence = parse(f"<presence xmlns='jabber:client'><show>{show}</show>"
                                 "</presence>") if show else None

    def test_full_jid_filtered_by_show(self):
        """A full-JID subscriber is notified only while its <show/> is among the values."""
        self.bind(BOB)
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='s' jid='{BOB}'/>"))
        self.ok(BOB, "set", self.shows(BOB, "chat", "online"))
        self.do_publish("s", item_id="1")
        self.assertEqual(len(self.events(BOB)), 1)
        self.set_show(BOB, "dnd")
        self.do_publish("s", item_id="2")
        self.assertEqual(len(self.events(BOB)), 1)
        self.set_show(BOB, "chat")
        self.do_publish("s", item_id="3")
        self.assertEqual(len(self.events(BOB)), 2)
        self.host.session(BOB).available = False
        self.do_publish("s", item_id="4")
        self.assertEqual(len(self.events(BOB)), 2)
        reply = self.ok(BOB, "get", self.pubsub(f"<options node='s' jid='{BOB}'/>"))
        field = [f for f in reply.iter(f"{{{NS_DATA}}}field")
                 if f.get("var") == "pubsub#show-values"][0]
        self.assertEqual(field.get("type"), "list-multi")
        self.assertEqual([v.text for v in field.iterchildren(f"{{{NS_DATA}}}value")],
                         ["chat", "online"])

    def test_bare_jid_any_session(self):
        """A bare-JID subscriber is notified when any available session's show matches,
        and no values means no filtering."""
        self.bind(BOB)
        self.bind("bob@example.org/two")
        self.set_show(BOB, "dnd")
        self.set_show("bob@example.org/two", "away")
        self.ok(BOB, "set", self.pubsub("<subscribe node='s' jid='bob@example.org'/>"))
        self.ok(BOB, "set", self.shows("bob@example.org", "away"))
        self.do_publish("s", item_id="1")
        self.assertEqual(self.notified("bob@example.org"), 1)
        self.set_show("bob@example.org/two", "xa")
        self.do_publish("s", item_id="2")
        self.assertEqual(self.notified("bob@example.org"), 1)
        self.ok(BOB, "set", self.shows("bob@example.org"))
        self.do_publish("s", item_id="3")
        self.assertEqual(self.notified("bob@example.org"), 2)

    def test_remote_not_filtered_and_bad_value(self):
        """A remote subscriber's presence is unknown: not filtered; an unknown state is
        invalid-options."""
        remote = "eve@remote.example/r"
        self.host.receive(f"<iq type='set' id='r1' from='{remote}' to='{SERVICE}'>" +
                          self.pubsub(f"<subscribe node='s' jid='{remote}'/>") + "</iq>")
        self.host.receive(f"<iq type='set' id='r2' from='{remote}' to='{SERVICE}'>" +
                          self.shows(remote, "dnd") + "</iq>")
        self.assertEqual(self.host.sent[-1].get("type"), "result")
        self.do_publish("s")
        self.assertEqual(len(self.events(remote)), 1)
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='s' jid='{BOB}'/>"))
        self.assertEqual(self.error(BOB, "set", self.shows(BOB, "busy")),
                         ("bad-request", "invalid-options"))


class PendingUserDeletedTests(PubSubTestCase):
    def test_deleted_account_request_dropped(self):
        """Deleting an account drops its pending subscription requests."""
        self.create("club", config={"access_model": "authorize"})
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='club' jid='{BOB}'/>"))
        self.host.user_deleted(JID.parse("bob@example.org"))
        reply = self.ok(ALICE, "get", self.pubsub("<subscriptions node='club'/>", owner=True))
        self.assertEqual(len(reply[0][0]), 0)
