"""Work started for an s2s stream stops when the stream closes: the dialback verification
it asked for, and the DNS lookups, connection attempts and timers of a route that only
existed for that verification."""
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.s2s.inbound import InboundStream
from jabberapp.s2s.resolver import S2SResolver
from tests.s2s.support import (LOCAL, REMOTE, Reader, TLSStringTransport, header,
                               make_manager)

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


class PendingDNS:
    """SRV lookups that never answer by themselves; records which were cancelled."""

    def __init__(self):
        self.lookups = []
        self.cancelled = []

    def lookupService(self, name):
        d = defer.Deferred(lambda d: self.cancelled.append(name))
        self.lookups.append(name)
        return d


class CancellationTests(SynchronousTestCase):
    def setUp(self):
        self.manager, self.router, _ = make_manager(require_encryption=True)
        self.dns = PendingDNS()
        self.manager.resolver = S2SResolver(self.manager.config.routes_for, dns=self.dns)
        self.clock = self.manager.clock
        self.attempts = []

        def connect(target, route):
            d = defer.Deferred(lambda d: self.attempts.remove(d))
            self.attempts.append(d)
            return d
        self.manager.connect = connect

    def dialback_request(self):
        """An inbound stream past STARTTLS that asked to be verified by dialback."""
        stream = InboundStream(self.manager)
        transport = TLSStringTransport()
        stream.makeConnection(transport)
        reader = Reader(transport)
        stream.dataReceived(header())
        reader.read()
        stream.dataReceived(f"<starttls xmlns='{NS_TLS}'/>".encode())
        stream.dataReceived(header())
        reader.read()
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}'>key</db:result>"
                            .encode())
        return stream, transport

    def test_closing_the_stream_cancels_the_dns_lookups(self):
        """The route resolving the peer for a verification is given up, with its DNS
        lookups cancelled, when the stream that asked closes."""
        stream, transport = self.dialback_request()
        self.assertEqual(len(self.dns.lookups), 2)          # _xmpps-server and _xmpp-server
        self.assertIn((LOCAL, REMOTE), self.manager.routes)
        stream.connectionLost(None)
        self.assertEqual(sorted(self.dns.cancelled), sorted(self.dns.lookups))
        self.assertNotIn((LOCAL, REMOTE), self.manager.routes)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closing_the_stream_cancels_the_connection_attempt(self):
        """Once resolved, the connection attempt to the Authoritative Server is cancelled
        too, and no timer of the route is left."""
        self.manager.resolver = S2SResolver(
            lambda domain: [type("R", (), dict(host="192.0.2.1", port=5269,
                                                direct_tls=False))()])
        stream, transport = self.dialback_request()
        self.assertEqual(len(self.attempts), 1)
        stream.connectionLost(None)
        self.assertEqual(self.attempts, [])
        self.assertNotIn((LOCAL, REMOTE), self.manager.routes)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_route_with_queued_stanzas_goes_on(self):
        """A route that also carries our own queued stanzas is not given up: only the
        verification is forgotten."""
        stream, transport = self.dialback_request()
        route = self.manager.routes[(LOCAL, REMOTE)]
        route.queue.append(object())
        stream.connectionLost(None)
        self.assertEqual(self.dns.cancelled, [])
        self.assertIs(self.manager.routes[(LOCAL, REMOTE)], route)
        self.assertEqual(route._verifies, [])
