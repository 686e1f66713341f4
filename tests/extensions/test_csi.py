"""XEP-0352 client state indication over the sans-I/O c2s stream: holding, collapsing,
flushing, and stream management's numbering of what was held."""
import re

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.extensions.carbons import NS_CARBONS, message_carbons
from jabberapp.extensions.csi import (NS_CSI, CSIManager, CSIState, client_state_indication,
                                      collapse_key, important)
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.sm import NS_SM, stream_management
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.jid import JID
from jabberapp.testing import FakeHost, FakeSession, parse
from tests.c2s_bytes import World

SM_OPTIONS = {"resume_timeout": 60, "max_queue": 100, "request_every": 1000,
              "ack_timeout": 0}


def csi(name):
    """A CSI nonza as bytes."""
    return f"<{name} xmlns='{NS_CSI}'/>".encode()


def ids(data):
    """The ids of the stanzas in C{data}, in order."""
    return [m.decode() for m in re.findall(rb"<(?:message|presence|iq) [^>]*\bid=\"([^\"]*)\"",
                                           data)]


class CSITestCase(SynchronousTestCase):
    """alice/r logged in on a host with csi (queue_size 5) and, when asked, sm."""

    sm = False

    def setUp(self):
        self.world = World()
        if self.sm:
            self.world.host.install(stream_management, dict(SM_OPTIONS))
        self.world.host.install(client_state_indication, {"queue_size": 5})
        self.transport = self.world.login("alice", "r")
        self.transport.feed(b"<presence/>")
        if self.sm:
            self.transport.feed(f"<enable xmlns='{NS_SM}' resume='true'/>".encode())
        self.transport.take()

    def route(self, xml):
        """A stanza to alice/r from elsewhere."""
        self.world.router.route(parse(xml))

    def presence(self, id, sender="bob@example.org/b", type=None):
        """A presence update for alice/r."""
        type_attr = f" type='{type}'" if type else ""
        self.route(f"<presence from='{sender}' to='alice@example.org/r' id='{id}'{type_attr}/>")

    def chatstate(self, id, state="composing", sender="bob@example.org/b"):
        """A chat state without a body."""
        self.route(f"<message from='{sender}' to='alice@example.org/r' type='chat' id='{id}'>"
                   f"<{state} xmlns='http://jabber.org/protocol/chatstates'/></message>")

    def chat(self, id, sender="bob@example.org/b", type="chat"):
        """A message with a body."""
        self.route(f"<message from='{sender}' to='alice@example.org/r' type='{type}' "
                   f"id='{id}'><body>x</body></message>")


class CSITests(CSITestCase):
    """The feature, holding, collapsing and flushing."""

    def test_interfaces(self):
        """The plugin provides IExtension and its manager IStreamFeature."""
        verifyObject(IExtension, client_state_indication)
        verifyObject(IStreamFeature, CSIManager(self.world.host, 1))

    def test_advertised_after_authentication(self):
        """<csi/> is in the features after SASL."""
        transport = self.world.secure()
        self.assertIn(b"<csi xmlns=\"urn:xmpp:csi:0\"/>", self.world.scram(transport))

    def test_unknown_nonza_is_a_stream_error(self):
        """An element of the CSI namespace other than active/inactive ends the stream."""
        self.transport.feed(csi("sleepy"))
        self.assertIn(b"unsupported-stanza-type", self.transport.take())

    def test_before_bind_ignored(self):
        """<inactive/> before binding changes nothing and is no error."""
        transport = self.world.secure()
        self.world.scram(transport)
        transport.feed(csi("inactive"))
        self.assertEqual(transport.take(), b"")

    def test_active_passes_everything(self):
        """An active session (the start) gets presence at once."""
        self.presence("p1")
        self.assertEqual(ids(self.transport.take()), ["p1"])

    def test_inactive_holds_and_collapses_presence(self):
        """Inactive: presence updates are held; the newest per full JID survives; <active/>
        sends them in order."""
        self.transport.feed(csi("inactive"))
        self.presence("p1")
        self.presence("c1", sender="carol@example.org/c")
        self.presence("p2", type="unavailable")
        self.assertEqual(self.transport.take(), b"")
        self.transport.feed(csi("active"))
        self.assertEqual(ids(self.transport.take()), ["c1", "p2"])
        self.presence("p3")
        self.assertEqual(ids(self.transport.take()), ["p3"])

    def test_chat_states_collapse_per_conversation(self):
        """Chat states without a body: the newest per conversation is kept."""
        self.transport.feed(csi("inactive"))
        self.chatstate("s1")
        self.chatstate("s2", state="paused", sender="bob@example.org/other")
        self.chatstate("t1", sender="carol@example.org/c")
        self.transport.feed(csi("active"))
        self.assertEqual(ids(self.transport.take()), ["s2", "t1"])

    def test_body_flushes_in_order_first(self):
        """A message with a body flushes what is held, then goes out itself."""
        self.transport.feed(csi("inactive"))
        self.presence("p1")
        self.chatstate("s1")
        self.chat("m1")
        self.assertEqual(ids(self.transport.take()), ["p1", "s1", "m1"])
        self.presence("p2")
        self.assertEqual(self.transport.take(), b"")

    def test_iq_and_subscription_flush(self):
        """An IQ and a subscription request are important."""
        self.transport.feed(csi("inactive"))
        self.presence("p1")
        self.route("<iq type='get' id='i1' from='bob@example.org/b' to='alice@example.org/r'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(ids(self.transport.take()), ["p1", "i1"])
        self.presence("p2")
        self.presence("sub", sender="carol@example.org", type="subscribe")
        self.assertEqual(ids(self.transport.take()), ["p2", "sub"])

    def test_groupchat_with_body_flushes(self):
        """A room message with a body (a mention among them) wakes the client; a room's
        chat states do not."""
        self.transport.feed(csi("inactive"))
        self.chatstate("g0", sender="room@conference.example.org/bob")
        self.chat("g1", sender="room@conference.example.org/bob", type="groupchat")
        self.assertEqual(ids(self.transport.take()), ["g0", "g1"])

    def test_queue_bound_flushes(self):
        """Past queue_size held stanzas everything goes out."""
        self.transport.feed(csi("inactive"))
        for n in range(5):
            self.presence(f"p{n}", sender=f"u{n}@example.org/x")
        self.assertEqual(self.transport.take(), b"")
        self.presence("p5", sender="u5@example.org/x")
        self.assertEqual(ids(self.transport.take()), [f"p{n}" for n in range(6)])

    def test_receipts_and_headlines_held_not_collapsed(self):
        """Receipts and headlines are held in order, each kept."""
        self.transport.feed(csi("inactive"))
        for n in range(2):
            self.route(f"<message from='bob@example.org/b' to='alice@example.org/r' id='r{n}'>"
                       "<received xmlns='urn:xmpp:receipts' id='x'/></message>")
        self.route("<message from='alice@example.org' to='alice@example.org/r' type='headline' "
                   "id='h1'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>")
        self.assertEqual(self.transport.take(), b"")
        self.transport.feed(csi("active"))
        self.assertEqual(ids(self.transport.take()), ["r0", "r1", "h1"])

    def test_session_end_without_sm_releases(self):
        """A session that ends releases what is held (to no connection) and forgets it."""
        self.transport.feed(csi("inactive"))
        self.presence("p1")
        session = self.world.host.sessions.get(
            JID.parse("alice@example.org/r"))
        self.transport.drop()
        self.assertTrue(session.ended)
        self.assertNotIn("csi", session.state)

    def test_unload_flushes(self):
        """Unloading csi sends what is held."""
        self.transport.feed(csi("inactive"))
        self.presence("p1")
        self.world.host.unload("csi")
        self.assertEqual(ids(self.transport.take()), ["p1"])


class ImportanceTests(SynchronousTestCase):
    """important() and collapse_key() on single stanzas."""

    class Session:
        """Just a JID."""
        jid = JID.parse("alice@example.org/r")

    def test_carbon_of_body_is_important(self):
        """A carbon of a message with a body is important; of a chat state not, and the
        latter collapses per conversation and direction."""
        body = parse("<message from='alice@example.org' type='chat'>"
                     "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                     "<message xmlns='jabber:client' from='bob@example.org/b'><body>x</body>"
                     "</message></forwarded></received></message>")
        state = parse("<message from='alice@example.org' type='chat'>"
                      "<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                      "<message xmlns='jabber:client' to='bob@example.org/b' type='chat'>"
                      "<active xmlns='http://jabber.org/protocol/chatstates'/>"
                      "</message></forwarded></sent></message>")
        self.assertTrue(important(body, self.Session))
        self.assertFalse(important(state, self.Session))
        self.assertEqual(collapse_key(state, self.Session)[2], "bob@example.org")

    def test_forged_carbon_judged_as_itself(self):
        """A carbon-shaped message from someone else is judged by its own content."""
        forged = parse("<message from='bob@example.org/b' type='chat'>"
                       "<received xmlns='urn:xmpp:carbons:2'><forwarded "
                       "xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>"
                       "<body>x</body></message></forwarded></received></message>")
        self.assertFalse(important(forged, self.Session))

    def test_muc_self_presence_important(self):
        """MUC presence about the user itself (status 110) is important."""
        self.assertTrue(important(parse(
            "<presence from='room@conference.example.org/me'>"
            "<x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x>"
            "</presence>"), self.Session))

    def test_archive_result_important(self):
        """A XEP-0313 result the client asked for is important."""
        self.assertTrue(important(parse(
            "<message from='alice@example.org'><result xmlns='urn:xmpp:mam:2' queryid='q' "
            "id='1'/></message>"), self.Session))

    def test_chat_state_with_other_payload_not_collapsed(self):
        """A chat state travelling with a receipt is not collapsed."""
        self.assertIsNone(collapse_key(parse(
            "<message from='bob@example.org/b' type='chat'>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/>"
            "<received xmlns='urn:xmpp:receipts' id='x'/></message>"), self.Session))


class CSIWithStreamManagementTests(CSITestCase):
    """Held stanzas are numbered by stream management when released, and survive drops."""

    sm = True

    def test_held_stanzas_numbered_at_release(self):
        """Held stanzas are not counted until released; acks afterwards match what was
        written."""
        self.transport.feed(csi("inactive"))
        self.presence("p1")
        self.presence("p2", sender="carol@example.org/c")
        state = self.world.host.sessions.get(
            JID.parse("alice@example.org/r")
        ).state["sm"]
        self.assertEqual(state.sent, 0)
        self.chat("m1")
        self.assertEqual(ids(self.transport.take()), ["p1", "p2", "m1"])
        self.assertEqual(state.sent, 3)
        self.transport.feed(f"<a xmlns='{NS_SM}' h='3'/>".encode())
        self.assertEqual(len(state.queue), 0)

    def test_drop_moves_held_into_sm_and_resume_sends_them(self):
        """A dropped connection puts what is held into stream management's queue; the
        resumed stream gets it."""
        self.transport.feed(csi("inactive"))
        self.presence("p1")
        self.transport.feed(f"<r xmlns='{NS_SM}'/>".encode())
        self.transport.take()
        previd = None
        for session in self.world.host.sessions:
            previd = session.state["sm"].id
        self.transport.drop()
        self.chat("m2")     # while detached: SM queues it
        transport = self.world.secure()
        self.world.scram(transport)
        transport.feed(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>".encode())
        out = transport.take()
        self.assertIn(b"<resumed", out)
        self.assertEqual(ids(out), ["p1", "m2"])

    def test_end_hands_held_messages_to_sm_end(self):
        """A session that times out: its held receipt goes back through delivery with
        stream management's unacknowledged messages (to another resource)."""
        other = self.world.login("alice", "other")
        other.feed(b"<presence/>")
        other.take()
        self.transport.feed(csi("inactive"))
        self.route("<message from='bob@example.org/b' to='alice@example.org/r' id='rc'>"
                   "<received xmlns='urn:xmpp:receipts' id='x'/></message>")
        self.transport.drop()
        self.world.clock.advance(61)
        self.assertIn("rc", ids(other.take()))


class CSIWithCarbonsTests(SynchronousTestCase):
    """Carbons pass the stage like any stanza: a copy of a message with a body wakes an
    inactive device, a copy of a chat state waits."""

    def test_carbon_of_body_flushes_chat_state_carbon_held(self):
        """The laptop (inactive) holds a carbon of a chat state, then a carbon of a message
        with a body sends both, in order."""
        host = FakeHost("example.org")
        host.install(service_discovery)
        host.install(message_carbons)
        host.install(client_state_indication)
        FakeSession(host, "alice@example.org/phone")
        laptop = FakeSession(host, "alice@example.org/laptop")
        host.receive(f"<iq type='set' id='c' from='alice@example.org/laptop'>"
                     f"<enable xmlns='{NS_CARBONS}'/></iq>")
        laptop.state["csi"] = CSIState()
        laptop.state["csi"].inactive = True
        laptop.sent.clear()
        host.receive("<message from='bob@example.net/x' to='alice@example.org/phone' "
                     "type='chat' id='s'><composing "
                     "xmlns='http://jabber.org/protocol/chatstates'/></message>")
        self.assertEqual(laptop.sent, [])
        host.receive("<message from='bob@example.net/x' to='alice@example.org/phone' "
                     "type='chat' id='m'><body>hi</body></message>")
        inner = [s.find(f"{{{NS_CARBONS}}}received/{{urn:xmpp:forward:0}}forwarded/"
                        "{jabber:client}message").get("id") for s in laptop.sent]
        self.assertEqual(inner, ["s", "m"])
