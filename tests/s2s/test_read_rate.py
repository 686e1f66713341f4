"""The read rate of s2s links ([s2s] read_rate, read_burst): each connection's reads go
through an Intake (jabberapp.stream.flow), over StringTransport with a Clock."""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.s2s.inbound import InboundStream
from tests.s2s.support import TLSStringTransport, header, make_manager


class ReadRateTests(SynchronousTestCase):
    """An inbound link past its read rate is not read until the rate is met again."""

    def connect(self, **settings):
        self.clock = Clock()
        manager, _, _ = make_manager(clock=self.clock, **settings)
        stream = InboundStream(manager)
        transport = TLSStringTransport()
        stream.makeConnection(transport)
        return stream, transport

    def test_past_the_rate_reading_pauses(self):
        """Bytes past rate x burst pause the connection, for the time the rate needs."""
        stream, transport = self.connect(read_rate=100, read_burst=1.0)
        stream.dataReceived(header() + b" " * 200)
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0.5)
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0.51 + len(header()) / 100)
        self.assertEqual(transport.producerState, "producing")

    def test_within_the_rate_nothing_pauses(self):
        """A header within the burst is read without a pause."""
        stream, transport = self.connect(read_rate=100000, read_burst=1.0)
        stream.dataReceived(header())
        self.assertEqual(transport.producerState, "producing")
        self.assertIn(b"<stream:stream", transport.value())

    def test_connection_lost_leaves_no_timer(self):
        """A link that goes while paused leaves no timer behind."""
        stream, transport = self.connect(read_rate=100, read_burst=1.0)
        stream.dataReceived(header() + b" " * 200)
        stream.connectionLost(None)
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()
                          and "refilled" in repr(c.func)], [])

    def test_links_are_not_blocked_by_a_full_session(self):
        """While an s2s link's bytes are handled, no connection is named for a full session
        to pause: one user who stops reading must not stall federation with a domain."""
        from jabberapp.stream.flow import NOW
        stream, transport = self.connect(read_rate=0)
        seen = []
        stream.intake.handle = lambda data: seen.append(NOW.intake)
        stream.dataReceived(header())
        self.assertEqual(seen, [None])
