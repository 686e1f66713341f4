"""
jabberapp.transports.tcp: accepted connections send at once when nothing is queued, and the
TCPTransport adapter under c2s streams.
"""
import socket

from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.interfaces import ITransport
from jabberapp.stream.flow import Intake, OutputFlow
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


class _Stream:
    """What a transport's factory opens: records what the transport hands it."""

    session = None
    jid = None

    def __init__(self, transport):
        self.transport = transport
        self.received = []
        self.lost = []

    def data_received(self, data):
        self.received.append(data)

    def connection_lost(self, reason):
        self.lost.append(reason)


class _Factory:
    secure = False

    def __init__(self, tls_options=None):
        self.tls_options = tls_options
        self.streams = []

    def open_stream(self, transport):
        stream = _Stream(transport)
        self.streams.append(stream)
        return stream


class _TLSStringTransport(StringTransport):
    tls_started_with = None

    def startTLS(self, options):
        self.tls_started_with = options


class TCPTransportTests(SynchronousTestCase):
    """TCPTransport: the ITransport between a Twisted connection and a stream."""

    def connect(self, tls_options=None):
        factory = _Factory(tls_options)
        adapter = transport.TCPTransport(factory)
        connection = _TLSStringTransport(peerAddress=IPv4Address("TCP", "203.0.113.5", 4000))
        adapter.makeConnection(connection)
        return adapter, connection, factory.streams[0]

    def test_interface(self):
        """A connected TCPTransport provides ITransport and reports the peer's address."""
        adapter, _, _ = self.connect()
        verifyObject(ITransport, adapter)
        self.assertEqual(adapter.peer_address, "203.0.113.5")

    def test_bytes_both_ways(self):
        """Bytes read go to the stream the factory opened; bytes written go out; the end of
        the connection is reported to the stream."""
        adapter, connection, stream = self.connect()
        self.assertIs(stream.transport, adapter)
        adapter.dataReceived(b"<a/>")
        adapter.write(b"<b/>")
        self.assertEqual((stream.received, connection.value()), ([b"<a/>"], b"<b/>"))
        adapter.connectionLost(None)
        self.assertEqual(stream.lost, [None])

    def test_starttls(self):
        """STARTTLS is possible once, with the factory's options; then the transport is
        secure; close() loses the connection."""
        options = object()
        adapter, connection, _ = self.connect(tls_options=options)
        self.assertTrue(adapter.can_start_tls)
        self.assertEqual(adapter.channel_bindings(), {})
        adapter.start_tls()
        self.assertIs(connection.tls_started_with, options)
        self.assertTrue(adapter.secure)
        self.assertFalse(adapter.can_start_tls)
        adapter.close()
        self.assertTrue(connection.disconnecting)

    def test_no_tls_configured(self):
        """Without TLS options STARTTLS is not possible."""
        adapter, _, _ = self.connect()
        self.assertFalse(adapter.can_start_tls)


class _FlowFactory(_Factory):
    """A factory with flow control, as the c2s listener's."""

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.outputs = 0

    def open_flow(self, connection, stream):
        return Intake(connection, stream.data_received, self.clock, name=stream)

    def open_output_flow(self, connection, stream, intake):
        self.outputs += 1
        return OutputFlow(connection, stream, intake, self.clock, 1 << 20, 30.0)


class _TLSLayer:
    """Stands for a TLS protocol wrapping the TCPTransport (direct TLS)."""

    def __init__(self, wrapped):
        self.wrappedProtocol = wrapped

    def makeConnection(self, connection):
        pass


def tcp_pair():
    """Two connected TCP sockets on loopback (a socket pair would refuse TCP_NODELAY)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        peer = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    return ours, peer


class OutputFlowOnBacklogTests(SynchronousTestCase):
    """A connection's OutputFlow is made only when bytes first wait in Twisted's queue."""

    def connect(self, wrap=False):
        ours, self.peer = tcp_pair()
        self.addCleanup(ours.close)
        self.addCleanup(self.peer.close)
        self.peer.setblocking(False)
        self.factory = _FlowFactory()
        adapter = transport.TCPTransport(self.factory)
        protocol = _TLSLayer(adapter) if wrap else adapter
        self.server = transport._Server(ours, protocol, ("127.0.0.1", 1), None, 1,
                                        MemoryReactor())
        adapter.makeConnection(self.server)
        return adapter

    def drain(self):
        while self.server.dataBuffer[self.server.offset:] or self.server._tempDataLen:
            self.server.doWrite()
            try:
                while self.peer.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    def test_no_flow_while_the_socket_takes_everything(self):
        """Writes the socket takes at once leave the connection with no OutputFlow and no
        producer registered; reads go through the Intake."""
        adapter = self.connect()
        adapter.write(b"<message/>" * 100)
        adapter.dataReceived(b"<presence/>")
        self.assertEqual((adapter.flow, self.server.producer), (None, None))
        self.assertEqual(self.factory.streams[0].received, [b"<presence/>"])
        self.assertEqual(self.factory.outputs, 0)

    def test_first_backlog_makes_the_flow(self):
        """The first write the socket does not take makes the OutputFlow, registered before
        the bytes are queued, so Twisted pauses it past its high-water mark and resumes it
        once the queue is empty; later backlogs make no other."""
        adapter = self.connect()
        adapter.write(bytes(4 << 20))
        flow = adapter.flow
        self.assertIsNotNone(flow)
        self.assertIs(self.server.producer, flow)
        self.assertTrue(flow.congested)
        self.assertIs(flow.intake, adapter.intake)
        self.drain()
        self.assertFalse(flow.congested)
        adapter.write(bytes(4 << 20))
        self.assertIs(adapter.flow, flow)
        self.assertEqual(self.factory.outputs, 1)
        adapter.connectionLost(None)
        self.assertIsNone(self.server.producer)

    def test_backlog_under_a_tls_layer(self):
        """Under a TLS protocol wrapping the TCPTransport, the backlog reaches it all the
        same."""
        adapter = self.connect(wrap=True)
        adapter.write(bytes(4 << 20))
        self.assertIs(self.server.producer, adapter.flow)
        self.assertTrue(adapter.flow.congested)

    def test_flow_made_at_once_where_no_backlog_is_reported(self):
        """On a connection that would not report its backlog (not one of ours), the
        OutputFlow is made and registered when the connection is made."""
        factory = _FlowFactory()
        adapter = transport.TCPTransport(factory)
        connection = _TLSStringTransport()
        adapter.makeConnection(connection)
        self.assertIsNotNone(adapter.flow)
        self.assertIs(connection.producer, adapter.flow)
