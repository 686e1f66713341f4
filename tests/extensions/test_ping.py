"""XEP-0199 XMPP Ping: answering pings and pinging clients."""
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import stanza as st
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.ping import ping
from jabberapp.extensions.sm import NS_SM, stream_management
from jabberapp.interfaces import IExtension
from jabberapp.plugins import jabberapp_builtin
from jabberapp.testing import FakeHost, FakeSession
from jabberapp.xml.ns import NS_PING, NS_STANZAS
from tests.c2s_bytes import World

PING = f"{{{NS_PING}}}ping"


class PingTestCase(SynchronousTestCase):
    """A host with disco, on a Clock."""

    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)
        self.host.install(service_discovery)


class AnswerTests(PingTestCase):
    def setUp(self):
        super().setUp()
        self.host.install(ping)

    def test_interface(self):
        """The plugin object provides IPlugin and IExtension, named 'ping'."""
        verifyObject(IExtension, ping)
        self.assertTrue(IPlugin.providedBy(ping))
        self.assertEqual(ping.name, "ping")
        self.assertIs(jabberapp_builtin.ping, ping)

    def test_option_schema(self):
        """interval (300) and timeout (60) are documented options."""
        self.assertEqual([(o.name, o.default) for o in ping.options],
                         [("interval", 300), ("timeout", 60)])
        self.assertTrue(all(o.doc for o in ping.options))
        interval, timeout = ping.options
        self.assertEqual(interval.parse("0"), 0)
        self.assertRaises(ValueError, interval.parse, "-1")
        self.assertRaises(ValueError, timeout.parse, "0")

    def test_pong(self):
        """A ping to the host JID gets an empty result."""
        self.host.receive("<iq type='get' id='p1' from='a@example.org/r' to='example.org'>"
                          f"<ping xmlns='{NS_PING}'/></iq>")
        reply = self.host.sent[-1]
        self.assertEqual((reply.get("type"), reply.get("id"), reply.get("to"), len(reply)),
                         ("result", "p1", "a@example.org/r", 0))

    def test_feature(self):
        """urn:xmpp:ping is declared as a feature of the host."""
        self.assertIn(NS_PING, self.host.features)


class KeepAliveTests(PingTestCase):
    def setUp(self):
        super().setUp()
        self.session = FakeSession(self.host, "alice@example.org/phone")

    def pings(self, session=None):
        """The pings C{session} (default: alice's) has been sent."""
        session = session or self.session
        return [s for s in session.sent if s.find(PING) is not None]

    def answer(self, ping_iq, error=None, sender="alice@example.org/phone"):
        """Answer C{ping_iq} from C{sender}, with a result or the given error condition."""
        if error is None:
            payload, type_ = "", "result"
        else:
            payload = f"<error type='cancel'><{error} xmlns='{NS_STANZAS}'/></error>"
            type_ = "error"
        self.host.receive(f"<iq type='{type_}' id='{ping_iq.get('id')}' from='{sender}' "
                          f"to='example.org'>{payload}</iq>")

    def test_ping_after_interval(self):
        """A bound session is pinged from the host once the interval has passed."""
        self.host.install(ping, interval=100)
        self.clock.advance(99)
        self.assertEqual(self.pings(), [])
        self.clock.advance(1)
        (request,) = self.pings()
        self.assertEqual((request.tag, request.get("type"), request.get("from"),
                          request.get("to")),
                         (st.IQ, "get", "example.org", "alice@example.org/phone"))
        self.assertTrue(request.get("id"))
        self.assertEqual([child.tag for child in request], [PING])

    def test_every_session(self):
        """Every bound session is pinged, available or not."""
        quiet = FakeSession(self.host, "bob@example.org/pc", available=False)
        self.host.install(ping)
        self.clock.advance(300)
        self.assertEqual((len(self.pings()), len(self.pings(quiet))), (1, 1))

    def test_answered_stays(self):
        """A session that answers stays open and is pinged again next interval."""
        self.host.install(ping)
        self.clock.advance(300)
        self.answer(self.pings()[0])
        self.clock.advance(60)
        self.assertIsNone(self.session.closed_with)
        self.clock.advance(240)
        self.assertEqual(len(self.pings()), 2)
        self.assertNotEqual(self.pings()[0].get("id"), self.pings()[1].get("id"))

    def test_timeout_closes(self):
        """No answer within the timeout closes the session with connection-timeout."""
        self.host.install(ping, timeout=20)
        self.clock.advance(300)
        self.clock.advance(19)
        self.assertFalse(self.session.closed)
        self.clock.advance(1)
        self.assertEqual(self.session.closed_with.condition, "connection-timeout")
        self.assertIsNone(self.host.session("alice@example.org/phone"))

    def test_timeout_drops_a_resumable_session(self):
        """No answer from a session whose stream management allows resumption drops its
        connection (Session.drop: it hibernates) instead of closing it."""
        dropped = []
        self.session.state["sm"] = type("SMState", (), {"resume": True})()
        self.session.drop = lambda: dropped.append(True)
        self.host.install(ping, timeout=20)
        self.clock.advance(300)
        self.clock.advance(20)
        self.assertEqual((dropped, self.session.closed), ([True], False))

    def test_timeout_closes_a_session_without_resumption(self):
        """Stream management without resumption: the session is closed as before."""
        self.session.state["sm"] = type("SMState", (), {"resume": False})()
        self.session.drop = lambda: self.fail("dropped")
        self.host.install(ping, timeout=20)
        self.clock.advance(300)
        self.clock.advance(20)
        self.assertEqual(self.session.closed_with.condition, "connection-timeout")

    def test_detached_session_not_pinged(self):
        """A session kept without a connection (waiting for a XEP-0198 resumption) is not
        pinged, so the ping timeout cannot end it before its resumption timeout."""
        self.session.stream = None
        self.host.install(ping, timeout=20)
        self.clock.advance(600)
        self.assertEqual(self.pings(), [])
        self.assertFalse(self.session.closed)

    def test_detached_while_waiting_not_closed(self):
        """A session whose connection drops while a ping waits is not closed when the ping
        times out: its resumption timeout decides."""
        self.host.install(ping, timeout=20)
        self.clock.advance(300)
        self.assertEqual(len(self.pings()), 1)
        self.session.stream = None
        self.clock.advance(20)
        self.assertFalse(self.session.closed)

    def test_unsupported_is_alive(self):
        """service-unavailable or feature-not-implemented from the client means alive."""
        bob = FakeSession(self.host, "bob@example.org/pc")
        self.host.install(ping)
        self.clock.advance(300)
        self.answer(self.pings()[0], error="service-unavailable")
        self.answer(self.pings(bob)[0], error="feature-not-implemented",
                    sender="bob@example.org/pc")
        self.clock.advance(60)
        self.assertEqual((self.session.closed, bob.closed), (False, False))

    def test_answer_from_another_jid(self):
        """A reply with the ping's id from someone else does not keep the session."""
        FakeSession(self.host, "mallory@example.org/x")
        self.host.install(ping)
        self.clock.advance(300)
        self.answer(self.pings()[0], sender="mallory@example.org/x")
        self.clock.advance(60)
        self.assertEqual(self.session.closed_with.condition, "connection-timeout")

    def test_no_second_ping_while_waiting(self):
        """A session with a ping outstanding is not pinged again."""
        self.host.install(ping, interval=30, timeout=60)
        self.clock.advance(30)
        self.clock.advance(30)
        self.assertEqual(len(self.pings()), 1)

    def test_session_gone_before_timeout(self):
        """A session closed by other means is not closed again at the timeout."""
        self.host.install(ping)
        self.clock.advance(300)
        self.session.close()
        self.clock.advance(60)
        self.assertIsNone(self.session.closed_with)

    def test_new_session_with_same_jid_not_closed(self):
        """The timeout of a replaced session does not close its successor."""
        self.host.install(ping)
        self.clock.advance(300)
        successor = FakeSession(self.host, "alice@example.org/phone")
        self.clock.advance(60)
        self.assertFalse(successor.closed)

    def test_disabled(self):
        """interval=0 sends no pings and schedules nothing."""
        self.host.install(ping, interval=0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10 ** 6)
        self.assertEqual(self.pings(), [])

    def test_unload_stops(self):
        """Unloading stops the pings and forgets those in flight."""
        self.host.install(ping)
        self.clock.advance(300)
        self.host.unload("ping")
        self.clock.advance(60)
        self.assertFalse(self.session.closed)
        self.clock.advance(10 ** 4)
        self.assertEqual(len(self.pings()), 1)


class HibernationTests(SynchronousTestCase):
    """Ping with real sessions and stream management (XEP-0198)."""

    def test_unanswered_ping_hibernates_a_resumable_session(self):
        """A resumable session that does not answer is dropped, not closed: it stays bound
        and awaits its resumption, with no stream error written."""
        world = World()
        world.host.install(service_discovery)
        world.host.install(stream_management, {"resume_timeout": 60, "max_queue": 10,
                                               "request_every": 5, "ack_timeout": 0})
        world.host.install(ping, {"interval": 100, "timeout": 20})
        transport = world.login("alice", "r")
        transport.feed(f"<enable xmlns='{NS_SM}' resume='true'/>".encode())
        session = transport.stream.session
        transport.take()
        world.clock.advance(100)
        self.assertIn(b"urn:xmpp:ping", transport.take())
        world.clock.advance(20)
        self.assertNotIn(b"connection-timeout", transport.take())
        self.assertIsNone(session.stream)
        self.assertFalse(session.ended)
        self.assertIs(world.host.sessions.get(session.jid), session)
