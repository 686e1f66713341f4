"""Unit tests of flow control (jabberapp.stream.flow): the token bucket, read pauses, and
output backpressure between c2s sessions, with Clock and producer-aware StringTransports."""
import base64

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.auth import InternalAuthProvider
from jabberapp.c2s import stream as c2s
from jabberapp.host import VirtualHost
from jabberapp.jid import JID
from jabberapp.router import Router
from jabberapp.sasl.scram import derive_all
from jabberapp.sasl.throttle import FailureThrottle
from jabberapp.storage.memory import MemoryStorage
from jabberapp.stream import flow
from jabberapp.stream.flow import BLOCKED, NOW, RATE, Intake, TokenBucket

HEADER = (b"<?xml version='1.0'?><stream:stream to='example.org' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
PASSWORD = "correct horse"
CREDENTIALS = derive_all(PASSWORD, 4096)
HIGH_WATER = 500        # the double's "Twisted bufferSize"
LIMIT = 2000            # max_send_buffer in these tests
TIMEOUT = 30.0          # send_buffer_timeout


class TokenBucketTests(SynchronousTestCase):
    """The arithmetic of the read rate limit."""

    def test_full_at_start(self):
        """A new bucket lets a whole burst through at once."""
        bucket = TokenBucket(1000, 2.0, now=0.0)
        self.assertEqual(bucket.take(2000, 0.0), 0.0)

    def test_overdraw_gives_the_time_back_to_zero(self):
        """Spending past the balance answers the seconds until it is back at zero."""
        bucket = TokenBucket(1000, 2.0, now=0.0)
        self.assertEqual(bucket.take(2500, 0.0), 0.5)

    def test_refills_at_the_rate(self):
        """Time refills the bucket at C{rate} bytes per second."""
        bucket = TokenBucket(1000, 2.0, now=0.0)
        bucket.take(2000, 0.0)
        self.assertEqual(bucket.take(1000, 1.0), 0.0)
        self.assertEqual(bucket.take(500, 1.0), 0.5)

    def test_saving_is_capped_at_the_burst(self):
        """A long quiet spell saves no more than C{burst} seconds' worth."""
        bucket = TokenBucket(1000, 2.0, now=0.0)
        self.assertEqual(bucket.take(3000, 3600.0), 1.0)


class RecordingTransport(StringTransport):
    """A StringTransport that counts its pauses."""

    pauses = 0

    def pauseProducing(self):
        self.pauses += 1
        super().pauseProducing()


class IntakeTests(SynchronousTestCase):
    """Reads through an Intake: rate pauses with one timer, reasons kept apart."""

    def setUp(self):
        self.clock = Clock()
        self.transport = RecordingTransport()
        self.read = []
        self.intake = Intake(self.transport, self.read.append, self.clock, rate=1000,
                             burst=1.0, name="test")

    def test_within_the_rate_nothing_pauses(self):
        """Bytes within the burst are handled and reading goes on."""
        self.intake.read(b"x" * 1000)
        self.assertEqual(self.read, [b"x" * 1000])
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_past_the_rate_reading_pauses_until_refilled(self):
        """Bytes past the bucket are still handled, then the connection is not read for
        as long as the rate needs to pay them back: one timer, then reading resumes."""
        self.intake.read(b"x" * 1500)
        self.assertEqual(self.read, [b"x" * 1500])
        self.assertEqual(self.transport.producerState, "paused")
        [call] = self.clock.getDelayedCalls()
        self.assertAlmostEqual(call.getTime(), 0.5)
        self.intake.read(b"y" * 100)       # bytes already on their way: no second timer
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.pauses, 1)

    def test_no_rate_no_bucket(self):
        """rate 0 means no limit: nothing is counted and nothing pauses."""
        intake = Intake(self.transport, self.read.append, self.clock)
        intake.read(b"x" * 10**6)
        self.assertIsNone(intake.bucket)
        self.assertEqual(self.transport.producerState, "producing")

    def test_reasons_are_kept_apart(self):
        """A connection paused for two reasons reads again only when both are gone."""
        self.intake.pause(BLOCKED)
        self.intake.pause(RATE)
        self.intake.resume(RATE)
        self.assertEqual(self.transport.producerState, "paused")
        self.intake.resume(BLOCKED)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.pauses, 1)

    def test_now_names_the_intake_while_handling(self):
        """While its bytes are handled NOW.intake is the Intake, before and after None,
        also when the handler raises."""
        seen = []

        def handle(data):
            seen.append(NOW.intake)
            raise ValueError("boom")

        intake = Intake(self.transport, handle, self.clock)
        self.assertRaises(ValueError, intake.read, b"x")
        self.assertEqual(seen, [intake])
        self.assertIsNone(NOW.intake)

    def test_stop_cancels_the_timer(self):
        """A connection that goes while paused leaves no timer behind."""
        self.intake.read(b"x" * 1500)
        self.intake.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class QueueingTransport(StringTransport):
    """
    A producer-aware transport that never sends: what is written stays queued in the
    FileDescriptor attributes flow.py measures, Twisted's pauseProducing comes past
    HIGH_WATER, and drain() empties the queue as a reading peer would (resumeProducing).
    """

    aborted = False
    tls_started_with = None

    def __init__(self):
        super().__init__()
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataBuffer = []
        self._tempDataLen = 0
        self.producer_paused = False

    def startTLS(self, options):
        self.tls_started_with = options

    def write(self, data):
        super().write(data)
        self._tempDataBuffer.append(data)
        self._tempDataLen += len(data)
        if (self.producer is not None and self.streaming and not self.producer_paused
                and self._tempDataLen > HIGH_WATER):
            self.producer_paused = True
            self.producer.pauseProducing()

    def drain(self):
        self._tempDataBuffer = []
        self._tempDataLen = 0
        if self.producer is not None and self.producer_paused:
            self.producer_paused = False
            self.producer.resumeProducing()

    def abortConnection(self):
        self.aborted = True
        super().abortConnection()


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class BackpressureTests(SynchronousTestCase):
    """Output backpressure: bob does not read, alice sends to him."""

    def setUp(self):
        self.clock = Clock()
        storage = MemoryStorage()
        for user in ("alice", "bob", "carol"):
            self.successResultOf(storage.accounts.create("example.org", user, CREDENTIALS))
        auth = InternalAuthProvider(storage.accounts, lambda fn, *a: defer.maybeDeferred(fn, *a))
        self.host = VirtualHost("example.org", Router(), storage, auth, self.clock, None)
        self.factory = c2s.C2SFactory({"example.org": self.host}, tls_options=object(),
                                      clock=self.clock, throttle=FailureThrottle(self.clock),
                                      max_send_buffer=LIMIT, send_buffer_timeout=TIMEOUT)
        self.patch(c2s, "channel_bindings", lambda transport: {})
        self.alice, self.alice_t = self.login("alice")
        self.bob, self.bob_t = self.login("bob")
        self.carol, self.carol_t = self.login("carol")

    def login(self, user, resource="r"):
        proto = self.factory.buildProtocol(None)
        transport = QueueingTransport()
        proto.makeConnection(transport)
        for chunk in (HEADER, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", HEADER,
                      f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                      f"{plain(user, PASSWORD)}</auth>".encode(), HEADER,
                      f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                      f"<resource>{resource}</resource></bind></iq>".encode()):
            proto.dataReceived(chunk)
        transport.clear()
        transport.drain()
        return proto, transport

    def message(self, n, type_="headline", to="bob@example.org/r"):
        return (f"<message to='{to}' type='{type_}' id='m{n}'><body>{'x' * 300}</body>"
                f"</message>").encode()

    def fill_bob(self):
        """Alice sends until a message to bob is refused; the number sent."""
        for n in range(100):
            self.alice.dataReceived(self.message(n))
            if b"resource-constraint" in self.alice_t.value():
                return n + 1
        self.fail("nothing was refused")

    def session(self, user):
        return self.host.sessions.get(JID.parse(f"{user}@example.org/r"))

    def test_sending_is_free_until_the_high_water_mark(self):
        """Below Twisted's high-water mark the session has no flow to consult."""
        self.alice.dataReceived(self.message(0))
        self.assertIsNone(self.session("bob").flow)
        self.assertIn(b"m0", self.bob_t.value())

    def test_past_the_limit_refused_and_the_sender_paused(self):
        """Once bob has max_send_buffer bytes queued, a headline to him is answered
        resource-constraint and alice's connection is no longer read."""
        sent = self.fill_bob()
        queued = self.bob_t._tempDataLen
        self.assertGreaterEqual(queued, LIMIT)
        self.assertLess(queued, LIMIT + 500)        # one stanza past the limit at most
        self.assertNotIn(f"m{sent - 1}'".encode(), self.bob_t.value())
        self.assertEqual(self.alice_t.producerState, "paused")
        self.assertIs(self.session("bob").flow, self.bob.flow)

    def test_drain_resumes_the_senders(self):
        """When bob's buffer empties alice is read again and messages reach bob again."""
        self.fill_bob()
        self.bob_t.drain()
        self.assertEqual(self.alice_t.producerState, "producing")
        self.assertIsNone(self.session("bob").flow)
        self.alice.dataReceived(self.message(999))
        self.assertIn(b"m999", self.bob_t.value())

    def test_other_users_unaffected(self):
        """While bob is full, alice's messages to carol still go through."""
        self.fill_bob()
        self.carol.dataReceived(self.message(7, to="alice@example.org/r"))
        self.assertIn(b"m7", self.alice_t.value())

    def test_chat_for_a_user_without_other_resources_takes_the_offline_path(self):
        """A chat message bob's full buffer cannot take goes where an undeliverable one
        goes (here, without offline storage, service-unavailable), not resource-constraint."""
        self.fill_bob()
        self.alice_t.clear()
        self.alice.dataReceived(self.message(1, type_="chat"))
        out = self.alice_t.value()
        self.assertIn(b"service-unavailable", out)
        self.assertNotIn(b"resource-constraint", out)

    def test_chat_with_another_resource_available_is_bounced(self):
        """With another available resource of bob, the refused chat message is answered
        resource-constraint (the other resource may take a retry)."""
        other, _ = self.login("bob", "r2")
        other.dataReceived(b"<presence/>")
        self.fill_bob()
        self.alice_t.clear()
        self.alice.dataReceived(self.message(2, type_="chat"))
        self.assertIn(b"resource-constraint", self.alice_t.value())

    def test_iq_request_is_answered(self):
        """An IQ get to a full session is answered resource-constraint."""
        self.fill_bob()
        self.alice_t.clear()
        self.alice.dataReceived(b"<iq to='bob@example.org/r' type='get' id='q1'>"
                                b"<query xmlns='jabber:iq:version'/></iq>")
        out = self.alice_t.value()
        self.assertIn(b"id=\"q1\"", out.replace(b"'", b'"'))
        self.assertIn(b"resource-constraint", out)

    def test_stays_full_closed_with_policy_violation(self):
        """A session still full send_buffer_timeout seconds after the first refusal is
        closed with policy-violation, its queue freed and its connection aborted; its
        senders are read again."""
        self.fill_bob()
        self.clock.advance(TIMEOUT)
        self.assertTrue(self.bob_t.aborted)
        self.assertIn(b"policy-violation", self.bob_t.value())
        self.assertEqual(self.bob_t._tempDataBuffer[-1], b"</stream:stream>")
        self.assertLess(self.bob_t._tempDataLen, 1000)   # the flood was thrown away
        self.assertIsNone(self.bob_t.producer)
        self.assertEqual(self.alice_t.producerState, "producing")

    def test_drained_in_time_not_closed(self):
        """A session that drains before the timeout stays, and no timer is left."""
        self.fill_bob()
        self.bob_t.drain()
        self.clock.advance(TIMEOUT)
        self.assertFalse(self.bob_t.aborted)
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()
                          and c.func == self.bob.flow._stalled], [])

    def test_close_unregisters_the_producer(self):
        """Closing the stream unregisters the producer (Twisted would hold the close)."""
        self.assertIs(self.bob_t.producer, self.bob.flow)
        self.bob.dataReceived(b"</stream:stream>")
        self.assertIsNone(self.bob_t.producer)

    def test_connection_lost_resumes_waiters(self):
        """A full session whose connection goes lets its senders read again."""
        self.fill_bob()
        self.bob.connectionLost(None)
        self.assertEqual(self.alice_t.producerState, "producing")


class FileDescriptorTests(SynchronousTestCase):
    """queued_bytes reads Twisted's own buffer attributes."""

    def test_queued_bytes(self):
        """What is queued: the unsent part of dataBuffer plus the temporary list."""
        fd = QueueingTransport()
        fd.dataBuffer, fd.offset = b"abcdef", 2
        fd._tempDataLen = 10
        self.assertEqual(flow.queued_bytes(fd), 14)

    def test_real_file_descriptor_has_the_attributes(self):
        """Twisted's FileDescriptor has the attributes queued_bytes reads."""
        from twisted.internet.abstract import FileDescriptor
        fd = FileDescriptor(reactor=Clock())
        self.assertEqual(flow.queued_bytes(fd), 0)


class UnblockableTests(SynchronousTestCase):
    """An Intake made with blockable=False is never named as the connection being read."""

    def test_not_named(self):
        """NOW.intake stays None while an unblockable Intake's bytes are handled."""
        seen = []
        intake = Intake(StringTransport(), lambda data: seen.append(NOW.intake), Clock(),
                        blockable=False)
        intake.read(b"x")
        self.assertEqual(seen, [None])


class _Dispatcher:
    def __init__(self):
        self.calls = []

    def undeliverable(self, message, bare):
        self.calls.append(("undeliverable", message.get("id")))

    def bounce(self, stanza, condition):
        self.calls.append((condition, stanza.get("id")))


class _Sessions:
    def available(self, bare):
        return []


class _Host:
    def __init__(self):
        self.dispatcher = _Dispatcher()
        self.sessions = _Sessions()


class _Session:
    def __init__(self):
        self.host = _Host()
        self.jid = JID.parse("bob@example.org/r")


class RefuseTests(SynchronousTestCase):
    """What becomes of each kind of stanza a full session cannot take."""

    def refused(self, xml):
        from lxml import etree
        session = _Session()
        flow.refuse(session, etree.fromstring(xml))
        return session.host.dispatcher.calls

    def test_chat_from_someone_else_takes_the_offline_path(self):
        """A chat message from another user goes where undeliverable messages go."""
        self.assertEqual(self.refused("<message xmlns='jabber:client' id='1' type='chat' "
                                      "from='alice@example.org/a'/>"),
                         [("undeliverable", "1")])

    def test_copy_from_the_account_itself_is_not_stored(self):
        """A carbon copy or archive result (from the account's own bare JID) is not stored
        offline: it is answered resource-constraint."""
        self.assertEqual(self.refused("<message xmlns='jabber:client' id='2' type='chat' "
                                      "from='bob@example.org'/>"),
                         [("resource-constraint", "2")])

    def test_iq_request_bounced(self):
        """An IQ is handed to bounce with resource-constraint (bounce skips results)."""
        self.assertEqual(self.refused("<iq xmlns='jabber:client' id='3' type='get' "
                                      "from='alice@example.org/a'/>"),
                         [("resource-constraint", "3")])

    def test_presence_not_answered(self):
        """Presence to a full session is not answered, as for an unavailable resource."""
        self.assertEqual(self.refused("<presence xmlns='jabber:client' "
                                      "from='alice@example.org/a'/>"), [])
