"""XEP-0054 vcard-temp."""
from lxml import etree
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import stanza as st
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.vcard import NS_VCARD, VCARD, vcard_temp
from jabberapp.interfaces import IExtension
from jabberapp.plugins import jabberapp_builtin
from jabberapp.testing import FakeHost
from jabberapp.xml import serialize
from jabberapp.xml.ns import NS_DISCO_INFO, NS_STANZAS

ALICE = "alice@example.org/phone"
BOB = "bob@example.org/pc"
CARD = ("<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><N><FAMILY>Liddell</FAMILY>"
        "<GIVEN>Alice</GIVEN><MIDDLE/></N><NICKNAME>alice</NICKNAME></vCard>")


def condition(reply):
    """The defined condition of an error reply."""
    (name,) = [etree.QName(c).localname for c in reply.find(st.ERROR)
               if etree.QName(c).namespace == NS_STANZAS and etree.QName(c).localname != "text"]
    return name


def error_text(reply):
    """The <text/> of an error reply, or None."""
    return reply.find(st.ERROR).findtext(f"{{{NS_STANZAS}}}text")


class VCardTestCase(SynchronousTestCase):
    """A host with disco and vcard, and the accounts alice, bob and carol."""

    options = {}

    def setUp(self):
        self.host = FakeHost("example.org", clock=Clock())
        self.host.install(service_discovery)
        self.host.install(vcard_temp, **self.options)
        for user in ("alice", "bob", "carol"):
            self.host.add_account(user)

    def iq(self, type_, payload=f"<vCard xmlns='{NS_VCARD}'/>", sender=ALICE, to=None):
        """Send an IQ from C{sender}; return the reply, checking its id and addressee."""
        to_attr = f" to='{to}'" if to is not None else ""
        self.host.receive(f"<iq type='{type_}' id='v1' from='{sender}'{to_attr}>{payload}</iq>")
        reply = self.host.sent[-1]
        self.assertEqual((reply.get("id"), reply.get("to")), ("v1", sender))
        return reply

    def get(self, **kwargs):
        """The <vCard/> of a successful get."""
        reply = self.iq("get", **kwargs)
        self.assertEqual(reply.get("type"), "result", etree.tostring(reply))
        (card,) = reply
        self.assertEqual(card.tag, VCARD)
        return card

    def set(self, card=CARD, **kwargs):
        """Set a vCard and check the empty result."""
        reply = self.iq("set", payload=card, **kwargs)
        self.assertEqual((reply.get("type"), len(reply)), ("result", 0), etree.tostring(reply))

    def error(self, type_, **kwargs):
        """The reply to a request that must fail, checked to be an error."""
        reply = self.iq(type_, **kwargs)
        self.assertEqual(reply.get("type"), "error", etree.tostring(reply))
        return reply

    def stored(self, user="alice"):
        """The text stored for C{user}, or None."""
        return self.successResultOf(self.host.storage.keyvalue("vcard").get(
            "example.org", user, "vcard"))


def canonical(xml):
    """C{xml} (text or element) as nested tuples of names, attributes and text, for
    comparing XML by content (C14N refuses the relative namespace name 'vcard-temp')."""
    if isinstance(xml, str):
        xml = etree.fromstring(xml)
    return (xml.tag, sorted(xml.attrib.items()), xml.text,
            [canonical(child) + (child.tail,) for child in xml])


class DeclarationTests(VCardTestCase):
    def test_interface(self):
        """The plugin object provides IPlugin and IExtension and is a built-in."""
        verifyObject(IExtension, vcard_temp)
        self.assertTrue(IPlugin.providedBy(vcard_temp))
        self.assertEqual((vcard_temp.name, vcard_temp.depends), ("vcard", ("disco",)))
        self.assertIs(jabberapp_builtin.vcard_temp, vcard_temp)
        self.assertEqual([(s.name, s.version) for s in vcard_temp.specs],
                         [("XEP-0054", "1.3.0")])

    def test_options_documented(self):
        """Every option has a doc and a default."""
        self.assertEqual([o.name for o in vcard_temp.options], ["max_size"])
        self.assertTrue(all(o.doc for o in vcard_temp.options))
        self.assertEqual(vcard_temp.options[0].default, 65536)

    def test_disco_feature(self):
        """The server advertises vcard-temp in its disco#info (XEP-0054 §4)."""
        self.host.receive(f"<iq type='get' id='d' from='{ALICE}' to='example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'/></iq>")
        features = [f.get("var") for f in self.host.sent[-1].iter(f"{{{NS_DISCO_INFO}}}feature")]
        self.assertIn("vcard-temp", features)

    def test_unload(self):
        """Unloaded, vCard requests are service-unavailable and the feature is gone."""
        self.host.unload("vcard")
        self.assertEqual(condition(self.error("get")), "service-unavailable")
        self.assertNotIn(NS_VCARD, self.host.features)


class OwnVCardTests(VCardTestCase):
    def test_none_yet(self):
        """Without a stored vCard, one's own get is an empty <vCard/> (XEP-0054 §3.1)."""
        card = self.get()
        self.assertEqual((len(card), card.text, dict(card.attrib)), (0, None, {}))

    def test_set_then_get(self):
        """A vCard that was set comes back, element for element."""
        self.set()
        self.assertEqual(canonical(self.get()), canonical(CARD))

    def test_get_to_own_bare_jid(self):
        """A get addressed to one's own bare JID is the same as one without 'to'."""
        self.set()
        self.assertEqual(canonical(self.get(to="alice@example.org")), canonical(CARD))
        self.assertEqual(canonical(self.get(sender="alice@example.org/other")),
                         canonical(CARD))

    def test_set_to_own_bare_jid(self):
        """A set addressed to one's own bare JID stores the vCard."""
        self.set(to="alice@example.org")
        self.assertEqual(canonical(self.get()), canonical(CARD))

    def test_replace(self):
        """A set replaces the whole vCard (XEP-0054 §3.2: no partial updates)."""
        self.set()
        self.set("<vCard xmlns='vcard-temp'><NICKNAME>al</NICKNAME></vCard>")
        card = self.get()
        self.assertEqual([etree.QName(c).localname for c in card], ["NICKNAME"])

    def test_empty_set_is_stored(self):
        """An empty <vCard/> replaces the stored one and is served back to its owner and
        to others, as Prosody and ejabberd do (issue 11 §8: it is not a deletion)."""
        self.set()
        self.set("<vCard xmlns='vcard-temp'/>")
        self.assertEqual(self.stored(), '<vCard xmlns="vcard-temp"/>')
        self.assertEqual(len(self.get()), 0)
        card = self.get(sender=BOB, to="alice@example.org")
        self.assertEqual((card.tag, len(card)), (VCARD, 0))

    def test_faithful(self):
        """Attributes, prefixes, foreign namespaces, escapes and non-ASCII text survive."""
        card = ("<v:vCard xmlns:v='vcard-temp' version='3.0' prodid='-//x'>"
                "<v:FN>Ålice &amp; &lt;Bob&gt; ☃</v:FN>"
                "<v:PHOTO><v:TYPE>image/png</v:TYPE><v:BINVAL>iVBORw0KGgo=</v:BINVAL></v:PHOTO>"
                "<x xmlns='urn:example:extra' a='1'><y>z</y></x><v:MIDDLE/></v:vCard>")
        self.set(card)
        got = self.get()
        self.assertEqual(canonical(got), canonical(card))
        self.assertEqual(got.prefix, "v")

    def test_reply_serialisation(self):
        """The served vCard carries its own namespace declaration in the reply."""
        self.set()
        self.iq("get")
        data = serialize(self.host.sent[-1])
        self.assertIn(b"<vCard xmlns=\"vcard-temp\"><FN>Alice Liddell</FN>", data)

    def test_stored_text(self):
        """The store holds the vCard's own XML, without the stanza's namespaces."""
        self.host.receive(f"<iq type='set' id='v1' from='{ALICE}' xmlns:x='urn:unused'>"
                          f"{CARD}</iq>")
        text = self.stored()
        self.assertTrue(text.startswith("<vCard xmlns=\"vcard-temp\"><FN>"), text)
        self.assertNotIn("urn:unused", text)
        self.assertNotIn("jabber:client", text)

    def test_set_answers_empty_result(self):
        """A set is answered with an empty result from the user's bare JID."""
        reply = self.iq("set", payload=CARD)
        self.assertEqual((reply.get("type"), reply.get("from"), len(reply)),
                         ("result", "alice@example.org", 0))


class OtherUserTests(VCardTestCase):
    def test_read_another(self):
        """Anyone may read another user's vCard at that user's bare JID (XEP-0054 §3.3)."""
        self.set()
        self.assertEqual(canonical(self.get(sender=BOB, to="alice@example.org")),
                         canonical(CARD))

    def test_read_from_remote(self):
        """A remote entity's request is answered through the remote destination."""
        self.set()
        self.host.receive("<iq type='get' id='v9' from='juliet@capulet.example/balcony' "
                          "to='alice@example.org'><vCard xmlns='vcard-temp'/></iq>")
        reply = self.host.remote.received[-1]
        self.assertEqual((reply.get("type"), reply.get("from")), ("result", "alice@example.org"))

    def test_no_vcard_and_no_user_alike(self):
        """No vCard and no such user give the same service-unavailable (XEP-0054 §3.3)."""
        for to in ("carol@example.org", "nobody@example.org"):
            reply = self.error("get", sender=BOB, to=to)
            self.assertEqual((condition(reply), error_text(reply)),
                             ("service-unavailable", None))

    def test_set_another_forbidden(self):
        """Setting someone else's vCard is forbidden and changes nothing (XEP-0054 §3.2)."""
        self.set()
        reply = self.error("set", payload="<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>",
                           sender=BOB, to="alice@example.org")
        self.assertEqual(condition(reply), "forbidden")
        self.assertEqual(canonical(self.stored()), canonical(CARD))
        self.assertIsNone(self.stored("bob"))

    def test_set_nonexistent_forbidden(self):
        """Setting the vCard of a user that does not exist is forbidden too."""
        reply = self.error("set", payload=CARD, sender=BOB, to="nobody@example.org")
        self.assertEqual(condition(reply), "forbidden")
        self.assertIsNone(self.stored("nobody"))

    def test_set_from_remote_forbidden(self):
        """A remote entity cannot set a local user's vCard."""
        self.host.receive("<iq type='set' id='v9' from='alice@capulet.example/x' "
                          f"to='alice@example.org'>{CARD}</iq>")
        reply = self.host.remote.received[-1]
        self.assertEqual((reply.get("type"), condition(reply)), ("error", "forbidden"))
        self.assertIsNone(self.stored())

    def test_host_vcard_not_served(self):
        """A vCard get to the server's own JID is not served (service-unavailable)."""
        self.assertEqual(condition(self.error("get", to="example.org")),
                         "service-unavailable")


class SizeLimitTests(VCardTestCase):
    options = {"max_size": 1024}

    def card_of_size(self, size):
        """A vCard whose serialised stored form is exactly C{size} bytes."""
        empty = "<vCard xmlns=\"vcard-temp\"><DESC></DESC></vCard>"
        return f"<vCard xmlns='vcard-temp'><DESC>{'x' * (size - len(empty))}</DESC></vCard>"

    def test_at_limit(self):
        """A vCard of exactly max_size bytes is accepted."""
        self.set(self.card_of_size(1024))
        self.assertEqual(len(self.stored().encode("utf-8")), 1024)

    def test_oversize(self):
        """A larger vCard is refused with not-acceptable naming the limit, and the
        stored one stays."""
        self.set()
        reply = self.error("set", payload=self.card_of_size(1025))
        self.assertEqual(condition(reply), "not-acceptable")
        self.assertEqual(reply.find(st.ERROR).get("type"), "modify")
        self.assertIn("1024 bytes", error_text(reply))
        self.assertEqual(canonical(self.stored()), canonical(CARD))

    def test_counts_bytes(self):
        """The limit counts UTF-8 bytes, not characters."""
        reply = self.error("set", payload=f"<vCard xmlns='vcard-temp'><FN>{'é' * 500}</FN>"
                                          "</vCard>")
        self.assertEqual(condition(reply), "not-acceptable")
        self.assertIsNone(self.stored())


class AddressingTests(VCardTestCase):
    """Requests with bad addresses get the core's errors and change nothing."""

    def test_invalid_to(self):
        """A malformed 'to' is jid-malformed, and nothing is stored."""
        for to in ("alice@@example.org", "al ice@example.org"):
            reply = self.error("set", payload=CARD, to=to)
            self.assertEqual(condition(reply), "jid-malformed")
        self.assertIsNone(self.stored())

    def test_full_jid(self):
        """A vCard set to a full JID is no server request: it goes to that resource, or
        is service-unavailable when none is bound; nothing is stored."""
        reply = self.error("set", payload=CARD, to="alice@example.org/elsewhere")
        self.assertEqual(condition(reply), "service-unavailable")
        self.assertIsNone(self.stored())
