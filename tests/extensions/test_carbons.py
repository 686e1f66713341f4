"""XEP-0280 Message Carbons through a FakeHost: the switch, the copies, the eligibility rules."""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.extensions.carbons import (NS_CARBONS, NS_FORWARD, eligible, message_carbons)
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.mam.ns import NS_SID
from jabberapp.extensions.mam.plugin import mam
from jabberapp.extensions.offline import offline_messages
from jabberapp.interfaces import IExtension
from jabberapp.testing import FakeHost, FakeSession, parse

RECEIVED = f"{{{NS_CARBONS}}}received"
SENT = f"{{{NS_CARBONS}}}sent"
INNER = f"{{{NS_FORWARD}}}forwarded/{{jabber:client}}message"


def carbons_of(session):
    """(kind, inner message) for each carbon C{session} was sent."""
    found = []
    for stanza in session.sent:
        for kind, tag in (("received", RECEIVED), ("sent", SENT)):
            wrapper = stanza.find(tag)
            if wrapper is not None:
                found.append((kind, wrapper.find(INNER), stanza))
    return found


class CarbonsTestCase(SynchronousTestCase):
    """alice on phone, laptop and tablet (phone and laptop with carbons on), bob on pc."""

    extra = ()

    def setUp(self):
        self.host = FakeHost("example.org", clock=Clock())
        for user in ("alice", "bob"):
            self.host.add_account(user)
        self.host.install(service_discovery)
        for extension in self.extra:
            self.host.install(extension)
        self.host.install(message_carbons)
        self.phone = FakeSession(self.host, "alice@example.org/phone")
        self.laptop = FakeSession(self.host, "alice@example.org/laptop")
        self.tablet = FakeSession(self.host, "alice@example.org/tablet")
        self.bob = FakeSession(self.host, "bob@example.org/pc")
        for session in (self.phone, self.laptop):
            self.enable(session)
        for session in (self.phone, self.laptop, self.tablet, self.bob):
            session.sent.clear()

    def enable(self, session, what="enable"):
        """<enable/> (or <disable/>) from C{session}; the reply."""
        self.host.receive(f"<iq type='set' id='c1' from='{session.jid}'>"
                          f"<{what} xmlns='{NS_CARBONS}'/></iq>")
        return session.sent[-1]

    def to_alice(self, to="alice@example.org/phone", type="chat", body="hi", extra="",
                 sender="bob@example.org/pc", id="m1"):
        """A message from bob (or C{sender}) to alice."""
        body_xml = f"<body>{body}</body>" if body is not None else ""
        return self.host.receive(f"<message from='{sender}' to='{to}' type='{type}' "
                                 f"id='{id}'>{body_xml}{extra}</message>")

    def from_phone(self, to="bob@example.org", type="chat", body="hey", extra="", id="s1"):
        """A message alice's phone sends."""
        body_xml = f"<body>{body}</body>" if body is not None else ""
        return self.host.receive(f"<message from='alice@example.org/phone' to='{to}' "
                                 f"type='{type}' id='{id}'>{body_xml}{extra}</message>")


class SwitchTests(CarbonsTestCase):
    """Enabling and disabling, and the disco feature."""

    def test_interface(self):
        """The plugin object provides IExtension."""
        verifyObject(IExtension, message_carbons)

    def test_disco_feature(self):
        """The server's disco#info lists urn:xmpp:carbons:2."""
        self.host.receive("<iq type='get' id='d1' from='bob@example.org/pc' to='example.org'>"
                          "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        features = [f.get("var") for f in self.bob.sent[-1][0]]
        self.assertIn(NS_CARBONS, features)

    def test_enable_twice_and_disable(self):
        """Enable twice is a plain result; after disable no copy comes."""
        self.assertEqual(self.enable(self.phone).get("type"), "result")
        self.assertEqual(self.enable(self.phone, "disable").get("type"), "result")
        self.assertEqual(self.enable(self.phone, "disable").get("type"), "result")
        self.to_alice(to="alice@example.org/laptop")
        self.assertEqual(carbons_of(self.phone), [])

    def test_enable_for_someone_else_is_forbidden(self):
        """An enable addressed to another user's account is refused."""
        self.host.receive(f"<iq type='set' id='c2' from='bob@example.org/pc' "
                          f"to='alice@example.org'><enable xmlns='{NS_CARBONS}'/></iq>")
        reply = self.bob.sent[-1]
        self.assertEqual(reply.get("type"), "error")
        self.assertIsNotNone(reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden"))

    def test_enable_to_server(self):
        """An enable addressed to the server JID works too."""
        self.host.receive(f"<iq type='set' id='c3' from='alice@example.org/tablet' "
                          f"to='example.org'><enable xmlns='{NS_CARBONS}'/></iq>")
        self.assertEqual(self.tablet.sent[-1].get("type"), "result")
        self.to_alice()
        self.assertEqual(len(carbons_of(self.tablet)), 1)


class ReceivedTests(CarbonsTestCase):
    """Received copies."""

    def test_full_jid_copy_to_other_enabled(self):
        """A chat to the phone: the laptop gets a <received/> copy, the tablet (carbons off)
        nothing, the phone only the original."""
        self.to_alice()
        self.assertEqual(len(self.phone.sent), 1)
        self.assertEqual(carbons_of(self.phone), [])
        self.assertEqual(carbons_of(self.tablet), [])
        [(kind, inner, outer)] = carbons_of(self.laptop)
        self.assertEqual(kind, "received")
        self.assertEqual((outer.get("from"), outer.get("to"), outer.get("type")),
                         ("alice@example.org", "alice@example.org/laptop", "chat"))
        self.assertEqual((inner.get("from"), inner.findtext("{jabber:client}body")),
                         ("bob@example.org/pc", "hi"))

    def test_bare_jid_top_priority_gets_original(self):
        """A chat to the bare JID goes to the available resources; the enabled ones that
        did not get it (negative priority) get a copy."""
        self.laptop.priority = -1
        self.to_alice(to="alice@example.org")
        self.assertEqual(carbons_of(self.phone), [])
        self.assertEqual([k for k, _, _ in carbons_of(self.laptop)], ["received"])
        self.assertEqual(len(self.tablet.sent), 1)

    def test_bare_jid_to_all_equal_gets_no_copies(self):
        """Every resource at the top priority got the original: no copies."""
        self.to_alice(to="alice@example.org")
        for session in (self.phone, self.laptop, self.tablet):
            self.assertEqual(carbons_of(session), [])
            self.assertEqual(len(session.sent), 1)

    def test_bounce_copies_nothing(self):
        """A normal message to a resource that is not there bounces and is copied to no one."""
        self.to_alice(to="alice@example.org/gone", type="normal")
        self.assertEqual(carbons_of(self.laptop), [])
        self.assertEqual(self.bob.sent[-1].get("type"), "error")

    def test_delivered_again_not_copied_again(self):
        """A message carrying this host's <delay/> (offline storage, a stream management
        re-route) is not copied again; another server's delay does not count."""
        self.to_alice(extra="<delay xmlns='urn:xmpp:delay' from='example.org' "
                            "stamp='2020-01-01T00:00:00Z'/>")
        self.assertEqual(carbons_of(self.laptop), [])
        self.to_alice(extra="<delay xmlns='urn:xmpp:delay' from='example.net' "
                            "stamp='2020-01-01T00:00:00Z'/>")
        self.assertEqual(len(carbons_of(self.laptop)), 1)

    def test_copy_keeps_stanza_id_of_the_archive(self):
        """With mam installed, the copy carries the archive's <stanza-id/>."""
        host = FakeHost("example.org", clock=Clock())
        host.add_account("alice")
        host.install(service_discovery)
        host.install(offline_messages)
        host.install(mam)
        host.install(message_carbons)
        phone = FakeSession(host, "alice@example.org/phone")
        laptop = FakeSession(host, "alice@example.org/laptop")
        host.receive(f"<iq type='set' id='c' from='{laptop.jid}'>"
                     f"<enable xmlns='{NS_CARBONS}'/></iq>")
        host.receive("<message from='bob@example.net/x' to='alice@example.org/phone' "
                     "type='chat' id='m'><body>hi</body></message>")
        [(_, inner, _)] = carbons_of(laptop)
        ours = inner.find(f"{{{NS_SID}}}stanza-id")
        self.assertIsNotNone(ours)
        self.assertEqual(ours.get("id"),
                         phone.sent[-1].find(f"{{{NS_SID}}}stanza-id").get("id"))


class EligibilityTests(CarbonsTestCase):
    """XEP-0280 §6: which messages are copied, received and sent."""

    TABLE = [
        # (type, body, extra, copied)
        ("chat", "hi", "", True),
        ("chat", None, "<composing xmlns='http://jabber.org/protocol/chatstates'/>", True),
        ("normal", "hi", "", True),
        ("normal", None, "", False),
        ("normal", None, "<received xmlns='urn:xmpp:receipts' id='x'/>", True),
        ("normal", None, "<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/>", True),
        ("normal", None, "<x xmlns='jabber:x:conference' jid='room@muc.example.org'/>", True),
        ("normal", None, "<event xmlns='http://jabber.org/protocol/pubsub#event'/>", False),
        ("headline", "news", "", False),
        ("groupchat", "hi", "", False),
        ("chat", "hi", "<no-copy xmlns='urn:xmpp:hints'/>", False),
        ("chat", "hi", f"<private xmlns='{NS_CARBONS}'/>", False),
        ("chat", "hi", "<x xmlns='http://jabber.org/protocol/muc#user'/>", True),  # MUC-PM
    ]

    def test_received_table(self):
        """Received copies follow the eligibility table."""
        for n, (type_, body, extra, copied) in enumerate(self.TABLE):
            self.laptop.sent.clear()
            self.to_alice(type=type_, body=body, extra=extra, id=f"r{n}")
            self.assertEqual(bool(carbons_of(self.laptop)), copied, (type_, body, extra))

    def test_sent_table(self):
        """Sent copies follow the same table."""
        for n, (type_, body, extra, copied) in enumerate(self.TABLE):
            self.laptop.sent.clear()
            self.from_phone(type=type_, body=body, extra=extra, id=f"s{n}")
            self.assertEqual(bool(carbons_of(self.laptop)), copied, (type_, body, extra))

    def test_eligible_function(self):
        """eligible() refuses carbons themselves."""
        self.assertFalse(eligible(parse(
            f"<message type='chat'><sent xmlns='{NS_CARBONS}'/></message>")))

    def test_muc_pm_to_bare_not_copied(self):
        """A MUC private message addressed to the bare JID is not copied."""
        self.laptop.priority = -1
        self.to_alice(to="alice@example.org", sender="room@conference.example.net/nick",
                      extra="<x xmlns='http://jabber.org/protocol/muc#user'/>")
        self.assertEqual(carbons_of(self.laptop), [])

    def test_private_removed_before_delivery(self):
        """<private/> is honoured and removed from what the recipient gets."""
        self.to_alice(extra=f"<private xmlns='{NS_CARBONS}'/>")
        delivered = self.phone.sent[-1]
        self.assertIsNone(delivered.find(f"{{{NS_CARBONS}}}private"))
        self.assertEqual(carbons_of(self.laptop), [])

    def test_private_sent_kept_for_recipient_server(self):
        """A private message sent to another server keeps <private/> on its way."""
        self.from_phone(to="carol@example.net", extra=f"<private xmlns='{NS_CARBONS}'/>")
        self.assertIsNotNone(self.host.remote.received[-1].find(f"{{{NS_CARBONS}}}private"))
        self.assertEqual(carbons_of(self.laptop), [])

    def test_error_to_copied_message_is_copied(self):
        """An error answering a message that was copied is copied; an unrelated one not."""
        self.from_phone(to="carol@example.net", id="tracked")
        self.laptop.sent.clear()
        self.to_alice(type="error", body=None, sender="carol@example.net", id="tracked",
                      extra="<error type='cancel'><item-not-found "
                            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
        self.assertEqual([k for k, _, _ in carbons_of(self.laptop)], ["received"])
        self.laptop.sent.clear()
        self.to_alice(type="error", body=None, sender="carol@example.net", id="other")
        self.to_alice(type="error", body=None, sender="mallory@example.net", id="tracked")
        self.assertEqual(carbons_of(self.laptop), [])


class SentTests(CarbonsTestCase):
    """Sent copies."""

    def test_sent_copy_to_others_not_sender(self):
        """What the phone sends: a <sent/> copy to the laptop, none to the phone itself."""
        self.from_phone()
        [(kind, inner, outer)] = carbons_of(self.laptop)
        self.assertEqual(kind, "sent")
        self.assertEqual((outer.get("from"), outer.get("to")),
                         ("alice@example.org", "alice@example.org/laptop"))
        self.assertEqual((inner.get("from"), inner.get("to")),
                         ("alice@example.org/phone", "bob@example.org"))
        self.assertEqual(carbons_of(self.phone), [])
        self.assertEqual(carbons_of(self.tablet), [])
        self.assertEqual(self.bob.sent[-1].findtext("{jabber:client}body"), "hey")

    def test_sender_without_carbons_is_copied(self):
        """The tablet (carbons off) sends: the enabled phone and laptop get copies."""
        self.host.receive("<message from='alice@example.org/tablet' to='bob@example.org' "
                          "type='chat' id='t'><body>x</body></message>")
        self.assertEqual(len(carbons_of(self.phone)), 1)
        self.assertEqual(len(carbons_of(self.laptop)), 1)

    def test_to_own_account_copied_once(self):
        """A message to the user's own other resource is copied on arrival only."""
        self.from_phone(to="alice@example.org/tablet")
        self.assertEqual([k for k, _, _ in carbons_of(self.laptop)], ["received"])
        self.assertEqual(carbons_of(self.phone), [])


class TrustTests(CarbonsTestCase):
    """XEP-0280 §11: carbons are only believed from the user's own account."""

    FORGED = (f"<received xmlns='{NS_CARBONS}'><forwarded xmlns='{NS_FORWARD}'>"
              "<message xmlns='jabber:client' from='boss@example.org/x' "
              "to='alice@example.org'><body>pay</body></message></forwarded></received>")

    def test_forged_carbon_from_other_user_dropped(self):
        """A <received/> from bob to alice is dropped, and copied to no one."""
        self.to_alice(body=None, extra=self.FORGED)
        self.assertEqual(self.phone.sent, [])
        self.assertEqual(self.laptop.sent, [])

    def test_forged_carbon_from_own_resource_dropped(self):
        """A <sent/> a client of alice addresses to alice's other resource is dropped:
        the server never routes a real carbon."""
        self.host.receive("<message from='alice@example.org/tablet' to='alice@example.org/phone' "
                          f"type='chat'>{self.FORGED.replace('received', 'sent')}</message>")
        self.assertEqual(self.phone.sent, [])
        self.assertEqual(self.laptop.sent, [])

    def test_forged_carbon_to_remote_not_copied(self):
        """A client's own carbon-shaped message to another server makes no copies."""
        self.from_phone(to="carol@example.net", body=None, extra=self.FORGED)
        self.assertEqual(self.laptop.sent, [])

    def test_hibernated_session_copies_through_send(self):
        """Copies go through session.send (a stage sees them, as stream management's)."""
        seen = []
        self.host.add_outbound_stage(lambda s, stanza: seen.append((s, stanza)) or stanza)
        self.to_alice()
        self.assertIn(self.laptop, [s for s, stanza in seen if stanza.find(RECEIVED) is not None])
