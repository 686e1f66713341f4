"""
TCP and direct TLS under c2s streams: the ITransport adapter, and listening ports whose
connections send at once.

TCPTransport is a Twisted protocol and nothing more: it hands the bytes it reads to the
stream its factory opens for it (open_stream), writes the bytes the stream gives it, and
reports the peer address, the TLS facts and the end of the connection. The negotiation and
the session live above it (jabberapp.stream), so they never see a socket.

Twisted's TCP transport never sends in write(): it queues the bytes, asks the reactor to watch
the socket for writability (an epoll_ctl), sends on the next reactor iteration and stops
watching again (another epoll_ctl). XMPP writes are small and the socket almost always has room,
so every stanza paid two system calls and one reactor iteration of latency for nothing.

Here write() sends straight away when nothing is queued ahead of it; whatever the socket does
not take (or any error, which the next doWrite() then reports as usual) goes through Twisted's
queue, so order, flow control and close handling stay Twisted's. With STARTTLS the TLS layer
writes through a bypass of the transport's base class (twisted.internet._newtls), which
startTLS() is told to use instead of FileDescriptor.

Bytes that go to Twisted's queue are also the first sign of a peer that does not keep up: just
before the first such bytes are queued, the connection tells its TCPTransport (write_backlog),
which only then makes the stream's OutputFlow (jabberapp.stream.flow) and registers it as the
connection's producer. A connection whose writes the socket always takes has none.
"""
from twisted.internet import _newtls, tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from jabberapp.interfaces import ITransport
from jabberapp.stream.flow import file_descriptor
from jabberapp.tls import channel_bindings

__all__ = ["TCPTransport", "listen_tcp"]


@implementer(ITransport)
class TCPTransport(Protocol):
    """
    One accepted TCP connection (plain, with STARTTLS, or direct TLS) under a stream.

    The factory provides C{open_stream(transport)} (the stream, with data_received() and
    connection_lost()), optionally C{open_flow(connection, stream)} (the Intake its bytes
    are read through) with C{open_output_flow(connection, stream, intake)} (its OutputFlow:
    jabberapp.stream.flow), C{tls_options} (for STARTTLS; None: not offered) and C{secure}
    (a direct TLS listener, XEP-0368).
    """

    stream = None
    intake = None   # the read side of flow control: factory.open_flow
    flow = None     # the write side: factory.open_output_flow, once bytes wait (write_backlog)

    def __init__(self, factory):
        self.factory = factory
        self.secure = factory.secure
        self.peer_address = "?"
        self._bindings = None     # read once the TLS handshake is done

    def connectionMade(self):
        self.peer_address = getattr(self.transport.getPeer(), "host", "?")
        # Stanzas are small and interactive: do not let Nagle hold them back.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        # Bytes go straight between Twisted and the stream, with no frame of ours per read
        # or per stanza: this adapter's write is the connection's, and the stream's
        # data_received is what Twisted calls.
        self.write = self.transport.write
        self.stream = self.factory.open_stream(self)
        open_flow = getattr(self.factory, "open_flow", None)
        if open_flow is None:
            self.dataReceived = self.stream.data_received
            return
        self.intake = intake = open_flow(self.transport, self.stream)
        self.dataReceived = intake.read
        if not getattr(file_descriptor(self.transport), "reports_backlog", False):
            self.write_backlog()    # no word would come when bytes queue: watch from the start

    def write_backlog(self):
        """Bytes are about to wait in Twisted's queue: from now on the stream's OutputFlow,
        made here, hears when the queue passes Twisted's high-water mark."""
        if self.flow is None and self.intake is not None:
            self.flow = self.factory.open_output_flow(self.transport, self.stream, self.intake)

    def dataReceived(self, data):
        """Bytes read (replaced by the stream's data_received once connected)."""
        self.stream.data_received(data)

    def connectionLost(self, reason=None):
        if self.flow is not None:
            self.flow.release()
        if self.intake is not None:
            self.intake.stop()
        if self.stream is not None:
            self.stream.connection_lost(reason)

    # -- ITransport -------------------------------------------------------------------------

    def write(self, data):
        """See ITransport.write (replaced by the connection's own write once connected)."""
        self.transport.write(data)

    @property
    def can_start_tls(self):
        """See ITransport.can_start_tls."""
        return not self.secure and self.factory.tls_options is not None

    def start_tls(self):
        """See ITransport.start_tls."""
        self.transport.startTLS(self.factory.tls_options)
        self.secure = True

    def channel_bindings(self):
        """See ITransport.channel_bindings; read from the TLS connection once, after its
        handshake (the features and every SASL attempt ask again)."""
        if not self._bindings and self.secure:
            self._bindings = channel_bindings(self.transport)
        return self._bindings or {}

    def close(self):
        """See ITransport.close."""
        if self.flow is not None:
            self.flow.release()     # a registered producer would hold the close back
        self.transport.loseConnection()


class _SendAtOnce(FileDescriptor):
    """The write() used for a connection's raw bytes (plain, or TLS records)."""

    reports_backlog = True      # calls its TCPTransport's write_backlog() (module docstring)

    def write(self, data):
        if (data and self.connected and not self._writeDisconnected and not self._tempDataLen
                and self.offset == len(self.dataBuffer)):
            sent = self.writeSomeData(data)
            if isinstance(sent, int):       # else the connection broke: doWrite reports it
                if sent == len(data):
                    return
                data = data[sent:]
        if data and self.producer is None and self.connected:
            # The protocol is the TCPTransport, or the TLS layer wrapping it (direct TLS,
            # STARTTLS); anything else has no write_backlog.
            protocol = self.protocol
            protocol = getattr(protocol, "wrappedProtocol", protocol)
            backlog = getattr(protocol, "write_backlog", None)
            if backlog is not None:
                backlog()
        FileDescriptor.write(self, data)


class _Server(tcp.Server):
    """An accepted connection that sends at once (see the module docstring)."""

    reports_backlog = True

    def write(self, data):
        if self.TLS:
            tcp.Server.write(self, data)    # into the TLS layer, which comes back as below
        else:
            _SendAtOnce.write(self, data)

    def startTLS(self, ctx, normal=True):
        _newtls.startTLS(self, ctx, normal, _SendAtOnce)


class _Port(tcp.Port):
    transport = _Server


# Connections the kernel may hold for us before accept(): Twisted's default of 50 overflows
# when many clients reconnect at once (after a network outage), and each overflowed one
# waits a second for its SYN to be retried. 128 is Prosody's default too.
LISTEN_BACKLOG = 128


def listen_tcp(reactor, port, factory, interface="", backlog=LISTEN_BACKLOG):
    """Listen on C{port} (0: any free one) at C{interface} like reactor.listenTCP, with
    connections that send at once; returns the listening port. Raises CannotListenError."""
    listening = _Port(port, factory, backlog, interface, reactor)
    listening.startListening()
    return listening
