"""
jabberapp.transports.tcp: accepted connections send at once when nothing is queued.
"""
import socket

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.transports import tcp as transport
from jabberapp.tls import ensure_self_signed, server_tls_options


class SendAtOnceTests(SynchronousTestCase):
    """A _Server over one end of a socket pair, its reactor a MemoryReactor."""

    def setUp(self):
        ours, self.peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(self.peer.close)
        self.peer.setblocking(False)
        self.reactor = MemoryReactor()
        self.server = transport._Server(ours, Protocol(), ("127.0.0.1", 1), None, 1,
                                        self.reactor)
        self.server.protocol.makeConnection(self.server)

    def received(self):
        chunks = []
        while True:
            try:
                chunk = self.peer.recv(1 << 20)
            except BlockingIOError:
                return b"".join(chunks)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def test_sent_in_write(self):
        """A write with nothing queued reaches the peer before write() returns, and the
        reactor is never asked to watch the socket for writing."""
        self.server.write(b"<message/>")
        self.assertEqual(self.received(), b"<message/>")
        self.assertNotIn(self.server, self.reactor.getWriters())

    def test_what_does_not_fit_is_queued_in_order(self):
        """When the socket takes only part, the rest waits in Twisted's queue; later writes
        queue behind it, never overtake it, and all arrive in order."""
        big = bytes(range(256)) * 8192     # 2 MiB: more than a socket pair buffers
        self.server.write(big)
        self.server.write(b"<after/>")
        self.assertIn(self.server, self.reactor.getWriters())
        got = self.received()
        while self.server in self.reactor.getWriters():
            self.server.doWrite()
            got += self.received()
        self.assertEqual(got, big + b"<after/>")

    def test_tls_records_sent_in_write(self):
        """After startTLS the TLS layer's records also go out at once: the server's first
        handshake flight is at the peer as soon as the ClientHello has been read."""
        cert, key = ensure_self_signed(self.mktemp(), "example.org")
        self.server.startTLS(server_tls_options({"example.org": (cert, key)}, "example.org"))
        client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
        client.set_connect_state()
        with self.assertRaises(SSL.WantReadError):
            client.do_handshake()
        self.peer.setblocking(True)
        self.peer.sendall(client.bio_read(65536))
        self.peer.setblocking(False)
        self.server.doRead()
        flight = self.received()
        self.assertTrue(flight.startswith(b"\x16\x03"))     # a TLS handshake record
        self.assertNotIn(self.server, self.reactor.getWriters())

    def test_nothing_after_connection_lost(self):
        """Once the connection is lost, write() sends nothing."""
        self.server.connectionLost(Failure(ConnectionDone()))
        self.server.write(b"<late/>")
        self.assertEqual(self.received(), b"")

    def test_listen_tcp(self):
        """listen_tcp listens like reactor.listenTCP, with this module's connections and a
        backlog of LISTEN_BACKLOG."""
        reactor = MemoryReactorClock()
        port = transport.listen_tcp(reactor, 0, Factory(), "127.0.0.1")
        self.assertIn(port, reactor.getReaders())
        self.assertIs(port.transport, transport._Server)
        self.assertEqual(port.getHost().host, "127.0.0.1")
        self.assertEqual(port.backlog, transport.LISTEN_BACKLOG)
        port.stopListening()
        reactor.advance(0)
        self.assertNotIn(port, reactor.getReaders())
