"""
WebSocket (RFC 7395) under c2s streams: an Autobahn protocol that is the IFramedTransport of
a FramedClientStream, and the twisted.web resource that mounts it (/xmpp-websocket).

Theory of operation
-------------------
The HTTP service hands an upgrade request to XMPPWebSocketResource, which notes what only
the HTTP request knows -- the client's address (X-Forwarded-For from trusted proxies) and
whether it arrived encrypted -- and lets Autobahn take the connection over. Autobahn does
RFC 6455 (handshake, masking, UTF-8 checks, pings, close handshake); this module does RFC 7395
on top:

- the handshake must offer the subprotocol 'xmpp' (else HTTP 400) from an origin the HTTP
  service allows ([http] cors_origins; else 403); the answer selects 'xmpp';
- each text message goes, whole, to the stream's frame_received (one element per message;
  <open/> and <close/> open and close the stream), through the same Intake (read rate) as
  a TCP connection's bytes; binary messages end the stream (bad-format, close code 1003);
  a frame or message over the c2s max_stanza_size ends it with policy-violation (1009)
  before its payload is read;
- the stream writes one element per message: open() as <open/>, write() as is, and
  close_stream() as the <stream:error/> (if any) and <close/>, then close() sends the
  WebSocket close (1000, or the code of the violation);
- with see_other_uri set, the client's first message is answered with
  <close see-other-uri='...'/> and the connection is closed (RFC 7395 §3.6.1);
- output backpressure is the TCP listener's OutputFlow on the connection under Autobahn.

The negotiation is the c2s listener's (its steps, limits, SASL mechanisms, throttle): the
stream's 'secure' is the request's, and the TLS channel bindings are offered when this
process terminated the TLS connection.
"""
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from zope.interface import implementer

from jabberapp.c2s.stream import CORE_STEPS
from jabberapp.errors import StreamError
from jabberapp.interfaces import IFramedTransport
from jabberapp.logging import logger
from jabberapp.stream.flow import Intake, OutputFlow
from jabberapp.stream.framed import FramedClientStream, close_frame, open_frame
from jabberapp.tls import channel_bindings

__all__ = ["SUBPROTOCOL", "XMPPWebSocketFactory", "XMPPWebSocketProtocol",
           "XMPPWebSocketResource", "websocket_resource"]

log = logger(__name__)

SUBPROTOCOL = "xmpp"
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_TOO_BIG = 1009
PAGE = (b"This is an XMPP over WebSocket endpoint (RFC 7395): point an XMPP client at this "
        b"URL, with the 'xmpp' subprotocol.\n")


@implementer(IFramedTransport)
class XMPPWebSocketProtocol(WebSocketServerProtocol):
    """One WebSocket connection under a FramedClientStream; see the module docstring."""

    stream = None
    flow = None
    can_start_tls = False
    peer_address = "?"
    secure = False
    origin_allowed = True
    _failure = None       # (close code, reason) of a violation that ends the connection
    _bindings = None

    # -- the handshake ----------------------------------------------------------------------

    def onConnect(self, request):
        """Refuse a handshake without the 'xmpp' subprotocol or from an origin not
        allowed; select 'xmpp'."""
        if SUBPROTOCOL not in request.protocols:
            log.info("WebSocket from {address} refused: no xmpp subprotocol",
                     address=self.peer_address)
            raise ConnectionDeny(400, "The xmpp subprotocol is required (RFC 7395)")
        if not self.origin_allowed:
            log.info("WebSocket from {address} refused: origin {origin} not allowed",
                     address=self.peer_address, origin=request.origin)
            raise ConnectionDeny(403, "Origin not allowed")
        return SUBPROTOCOL

    def onOpen(self):
        factory = self.factory
        log.debug("WebSocket from {address} (secure: {secure})", address=self.peer_address,
                  secure=self.secure)
        if factory.see_other_uri:
            return      # the first message is answered with the redirect
        listener = factory.listener
        self.stream = stream = FramedClientStream(self, listener, CORE_STEPS)
        connection = self.transport
        # The HTTP channel that read the upgrade request is still registered as the
        # connection's producer; the stream's OutputFlow takes its place.
        try:
            connection.unregisterProducer()
        except RuntimeError:
            pass        # none was (a transport that says so, as test doubles do)
        intake = Intake(connection, stream.frame_received, listener.clock,
                        listener.read_rate, listener.read_burst, stream)
        self.flow = OutputFlow(connection, stream, intake, listener.clock,
                               listener.max_send_buffer, listener.send_buffer_timeout)

    # -- messages in ------------------------------------------------------------------------

    def onMessageFrameBegin(self, length):
        super().onMessageFrameBegin(length)
        # Frames of one message add up: the message is checked here too, before its
        # payload is buffered (Autobahn's own message limit would also cap what we send).
        limit = self.maxFramePayloadSize
        if 0 < limit < self.message_data_total_length and not self.failedByMe:
            self._max_message_size_exceeded(self.message_data_total_length, limit,
                                            "message too large")

    def _max_message_size_exceeded(self, msg_size, max_msg_size, reason):
        self._violation(CLOSE_TOO_BIG, reason,
                        StreamError("policy-violation", "stanza too large"))

    def onMessage(self, payload, isBinary):
        if isBinary:
            self._violation(CLOSE_UNSUPPORTED_DATA, "binary messages are not XMPP",
                            StreamError("bad-format", "XMPP is sent in text messages "
                                                      "(RFC 7395 §3.2)"))
            return
        stream = self.stream
        if stream is None:
            self._redirect()
            return
        self.flow.intake.read(payload)

    def _violation(self, code, reason, error):
        """End the stream with C{error}, then the connection with close C{code}."""
        if self._failure is not None:
            return
        self._failure = (code, reason)
        if self.stream is not None and not self.stream.closed:
            self.stream.close(error)
        else:
            self.close()

    def _redirect(self):
        uri = self.factory.see_other_uri
        log.info("WebSocket from {address} redirected to {uri}", address=self.peer_address,
                 uri=uri)
        self.sendMessage(close_frame(uri))
        self.sendClose(CLOSE_NORMAL)

    def onClose(self, wasClean, code, reason):
        flow = self.flow
        if flow is not None:
            flow.release()
            flow.intake.stop()
        stream = self.stream
        if stream is not None:
            stream.connection_lost(reason)

    # -- IFramedTransport -----------------------------------------------------------------

    def open(self, attrs):
        """See IFramedTransport.open: RFC 7395 <open/>."""
        self.sendMessage(open_frame(attrs))

    def write(self, data):
        """See IFramedTransport.write: one text message."""
        self.sendMessage(data)

    def close_stream(self, error=None):
        """See IFramedTransport.close_stream: the error, then <close/>."""
        if error is not None:
            self.sendMessage(error)
        self.sendMessage(close_frame())

    def start_tls(self):
        """See ITransport.start_tls: never offered (can_start_tls is False)."""
        raise RuntimeError("STARTTLS is not possible on a WebSocket")

    def channel_bindings(self):
        """See ITransport.channel_bindings: those of the TLS connection the request came
        on, when this process terminated it (none behind a TLS-terminating proxy)."""
        if self._bindings is None:
            self._bindings = channel_bindings(self.transport) if self.secure else {}
        return self._bindings

    def close(self):
        """See ITransport.close: the WebSocket close handshake (1000, or the code of the
        violation that ended the stream)."""
        if self.flow is not None:
            self.flow.release()     # a registered producer would hold the close back
        if self._failure is not None:
            self._fail_connection(*self._failure)
        else:
            self.sendClose(CLOSE_NORMAL)


class XMPPWebSocketFactory(WebSocketServerFactory):
    """
    The WebSocket side of the c2s C{listener} (a C2SFactory: hosts, limits, SASL, flow
    control settings). C{ping_interval}: seconds between WebSocket pings (0: none); a pong
    not back within as long drops the connection. C{see_other_uri}: redirect every client
    there (RFC 7395 §3.6.1), or None.
    """

    protocol = XMPPWebSocketProtocol

    def __init__(self, listener, ping_interval=60.0, see_other_uri=None):
        super().__init__(server=None)     # no Server header naming Autobahn's version
        self.listener = listener
        self.see_other_uri = see_other_uri or None
        # (address, secure, origin allowed) of the request being upgraded
        self.request_facts = None
        self.setProtocolOptions(
            maxFramePayloadSize=listener.max_stanza_size,
            failByDrop=False,                   # violations get a close handshake
            webStatus=False,                    # no page naming Autobahn's version
            autoPingInterval=ping_interval, autoPingTimeout=ping_interval,
            perMessageCompressionAccept=lambda offers: None)   # no compression bombs

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        facts = self.request_facts
        if facts is not None:
            protocol.peer_address, protocol.secure, protocol.origin_allowed = facts
        else:
            protocol.peer_address = getattr(addr, "host", "?")
        return protocol


class XMPPWebSocketResource(WebSocketResource):
    """
    The twisted.web resource of C{factory}. What only the HTTP request knows comes from the
    HTTP service (jabberapp.web), which knows the trusted proxies and the CORS origins:
    C{client_address(request)}, C{is_secure(request)} and C{origin_allowed(origin,
    request)}. A handshake without an Origin header (not a browser page) is accepted.
    """

    def __init__(self, factory, client_address, is_secure, origin_allowed):
        super().__init__(factory)
        self._client_address = client_address
        self._is_secure = is_secure
        self._origin_allowed = origin_allowed

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")
            return b""
        upgrade = request.getHeader(b"upgrade")
        if upgrade is None or upgrade.strip().lower() != b"websocket":
            # A browser or a monitor opening the URL: say what it is (not Autobahn's page,
            # which names its version).
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return PAGE
        factory = self._factory
        origin = request.getHeader(b"origin")
        # Autobahn builds the protocol and runs the handshake inside render().
        factory.request_facts = (self._client_address(request), bool(self._is_secure(request)),
                                 origin is None or bool(self._origin_allowed(origin, request)))
        try:
            return super().render(request)
        finally:
            factory.request_facts = None


def _request_address(request):
    address = request.getClientAddress()
    return getattr(address, "host", "?")


def websocket_resource(listener, ping_interval=60.0, see_other_uri=None, http=None):
    """The /xmpp-websocket resource for the c2s C{listener} (see XMPPWebSocketFactory) on
    the HTTP service C{http} (its client_address, is_secure and origin_allowed). Without
    it: the request's own peer and isSecure(), and any origin."""
    factory = XMPPWebSocketFactory(listener, ping_interval, see_other_uri)
    if http is None:
        return XMPPWebSocketResource(factory, _request_address,
                                     lambda request: request.isSecure(),
                                     lambda origin, request: True)
    return XMPPWebSocketResource(factory, http.client_address, http.is_secure,
                                 http.origin_allowed)
