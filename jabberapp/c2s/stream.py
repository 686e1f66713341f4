"""
The c2s listener (RFC 6120 client-to-server, and XEP-0368 direct TLS): its settings and the
streams it opens.

Each accepted connection is a TCPTransport (jabberapp.transports.tcp) under a ClientStream
(jabberapp.stream.negotiation), which negotiates with the core steps built here -- STARTTLS,
SASL, SASL2 (with Bind2 inline), resource binding, the legacy session -- and the hosts' own, then hands its stanzas to
the Session it binds (jabberapp.stream.session).

While any c2s listener listens, one timer rests the stream parsers that were idle for a whole
REST_PERIOD (jabberapp.xml.parser.rest_idle): an idle session then keeps no libxml2 parser.
"""
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall

from jabberapp.stream.flow import Intake, OutputFlow
from jabberapp.stream.negotiation import ClientStream, CoreSteps
from jabberapp.tls import channel_bindings  # noqa: F401 (its old import path; tests patch it)
from jabberapp.stream.saslauth import MAX_SASL_ATTEMPTS, SASLAuth
from jabberapp.stream.sasl2 import SASL2
from jabberapp.stream.steps import Bind, LegacySession, StartTLS
from jabberapp.transports.tcp import TCPTransport
from jabberapp.xml.ns import NS_BIND, NS_SESSION
from jabberapp.xml.parser import rest_idle

__all__ = ["C2SFactory", "MAX_SASL_ATTEMPTS", "CORE_STEPS", "REST_PERIOD"]

# A stream parser not fed for one to two periods rests: it frees ~11 KiB (libxml2's parser,
# the stream document, its name dictionary); resting and waking at the next stanza cost ~20 us.
REST_PERIOD = 5.0

_BIND, _SESSION = Bind(), LegacySession()
# The core's negotiation steps, in the order of their advertisements; bind and the legacy
# session are negotiated with IQs before binding, by payload namespace.
CORE_STEPS = CoreSteps((StartTLS(), SASLAuth(), SASL2(), _BIND, _SESSION),
                       {NS_BIND: _BIND, NS_SESSION: _SESSION})


class C2SFactory(ServerFactory):
    """Opens the streams of one c2s listener; its attributes are the listener's settings
    that streams and steps read (IClientStream.listener)."""

    noisy = False  # no log line per listener start/stop

    def __init__(self, hosts, tls_options, clock, throttle, require_encryption=True,
                 max_stanza_size=262144, negotiation_timeout=60.0, secure=False,
                 mechanisms=None, max_send_buffer=4194304, send_buffer_timeout=30.0,
                 read_rate=0, read_burst=0.0):
        self.hosts = hosts                  # domain -> VirtualHost
        self.tls_options = tls_options      # for STARTTLS (None: no TLS offered)
        self.clock = clock
        self.throttle = throttle
        self.require_encryption = require_encryption
        self.max_stanza_size = max_stanza_size
        self.negotiation_timeout = negotiation_timeout
        self.secure = secure                # direct TLS listener (XEP-0368)
        self.mechanisms = mechanisms        # frozenset of SASL names to offer; None: all
        # Flow control (jabberapp.stream.flow): output backpressure and the read rate.
        self.max_send_buffer = max_send_buffer
        self.send_buffer_timeout = send_buffer_timeout
        self.read_rate = read_rate          # bytes/s; 0: not limited
        self.read_burst = read_burst        # seconds of read_rate saved up

    def startFactory(self):
        """The listener listens: idle stream parsers rest (one timer for all listeners)."""
        _RESTING.start(self.clock)

    def stopFactory(self):
        """The listener stopped listening."""
        _RESTING.stop()

    def buildProtocol(self, addr):
        return TCPTransport(self)

    def open_stream(self, transport):
        """The ClientStream for a new connection's C{transport} (an ITransport)."""
        return ClientStream(transport, self, CORE_STEPS)

    def open_flow(self, connection, stream):
        """The read side of C{stream}'s flow control on the Twisted transport C{connection}:
        the Intake its bytes go through (jabberapp.stream.flow)."""
        return Intake(connection, stream.data_received, self.clock, self.read_rate,
                      self.read_burst, stream)

    def open_output_flow(self, connection, stream, intake):
        """The write side, made when bytes first wait in C{connection}'s buffer: an OutputFlow
        registered as its producer (jabberapp.stream.flow)."""
        return OutputFlow(connection, stream, intake, self.clock, self.max_send_buffer,
                          self.send_buffer_timeout)


class _Resting:
    """The timer of rest_idle(), running while any c2s listener listens."""

    def __init__(self):
        self.listeners = 0
        self.loop = None

    def start(self, clock):
        self.listeners += 1
        if self.loop is None:
            self.loop = LoopingCall(rest_idle)
            self.loop.clock = clock
            self.loop.start(REST_PERIOD, now=False)

    def stop(self):
        self.listeners = max(0, self.listeners - 1)
        if not self.listeners and self.loop is not None:
            if self.loop.running:
                self.loop.stop()
            self.loop = None


_RESTING = _Resting()
