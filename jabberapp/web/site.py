"""
The twisted.web plumbing under the HTTP service: a Site whose connections are bounded.

- **Request time**: from the moment a connection opens, and again each time a response
  ends, the next request must arrive whole (line, headers, body) within
  ``request_timeout``; otherwise the connection is closed (and aborted if it does not go).
  This closes both idle keep-alive connections and clients that trickle a request in byte
  by byte to hold a connection. Twisted's own idle timer is reset by every byte, so it
  bounds neither. The timer stops once a request is complete: how long it is answered (a
  BOSH long poll, a WebSocket) is the resource's business.
- **Body size**: a request whose Content-Length, or whose chunked body so far, exceeds the
  limit of the mount point it is for (``max_request_size`` by default) is answered 413 and
  the connection closed before the body is read or handed to any resource.
- Malformed request lines and headers are answered 400 by Twisted's HTTPChannel, unknown
  paths 404 and unsupported methods 405 by twisted.web; tracebacks never reach a client.
- Requests are logged at debug level, without query strings (where tokens travel).
"""
from __future__ import annotations

from twisted.web import http, pages, resource, server
from twisted.web.error import UnsupportedMethod

from jabberapp.logging import logger

__all__ = ["Root", "WebSite", "not_found"]

log = logger(__name__)

# Seconds a connection closed for taking too long may still take to go before it is aborted.
ABORT_AFTER = 5.0


class _Request(server.Request):
    """A request that refuses a body past its mount point's size limit."""

    refused = False
    _received = 0

    def gotLength(self, length):
        self._limit = self.channel.site.body_limit(self.channel.request_path())
        if length is not None and length > self._limit:
            self._refuse()
            length = 0      # the body is never read: do not make room for it
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self._received += len(data)
        if self._received > self._limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self):
        self.refused = True
        self.channel.refuse(b"413 Content Too Large")

    def render(self, resrc):
        # Twisted answers a method a resource lacks 405 only for GET and POST, 501 for any
        # other (PUT, DELETE, OPTIONS...); RFC 9110 §15.5.6 wants 405 with Allow. HEAD keeps
        # Twisted's fallback to GET. The Server header names no version.
        self.setHeader(b"Server", b"jabberapp")
        super().render(resrc if self.method == b"HEAD" else _MethodNotAllowed(resrc))


class _MethodNotAllowed:
    """Renders a resource, answering 405 with Allow when it lacks the request's method."""

    def __init__(self, resrc):
        self.resrc = resrc

    def render(self, request):
        try:
            return self.resrc.render(request)
        except UnsupportedMethod as e:
            request.setResponseCode(http.NOT_ALLOWED)
            request.setHeader(b"Allow", b", ".join(e.allowedMethods))
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"405 Method Not Allowed\n"


class _Channel(http.HTTPChannel):
    """An HTTP/1.1 connection with a deadline for each request (see the module docstring)."""

    _deadline = None
    _refused = False

    def connectionMade(self):
        super().connectionMade()
        self._await_request()

    def request_path(self) -> bytes:
        """The path of the request being received (its request line has been read)."""
        return getattr(self, "_path", b"").split(b"?", 1)[0]

    def _await_request(self):
        timeout = self.site.request_timeout
        if timeout:
            self._deadline = self.callLater(timeout, self._too_slow)

    def _stop_deadline(self):
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self):
        self._deadline = None
        log.debug("http connection from {peer} closed: no complete request within "
                  "{timeout} s", peer=getattr(self.transport.getPeer(), "host", "?"),
                  timeout=self.site.request_timeout)
        self._close()

    def _close(self):
        """Close, and abort if the peer does not let the connection go soon."""
        transport = self.transport
        self.loseConnection()
        call = self.callLater(ABORT_AFTER, transport.abortConnection)
        self._abort_call = call

    def refuse(self, status: bytes):
        """Answer the request being received with C{status} (no body) and close; nothing
        more this connection sends is read or handed to a resource."""
        if self._refused:
            return
        self._refused = True
        self._stop_deadline()
        self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
        self.rawDataReceived = self.lineReceived = lambda data: None
        self._close()

    def allContentReceived(self):
        if self._refused:
            return          # the rest of a refused body arrived in the same read
        self._stop_deadline()
        super().allContentReceived()

    def _send100Continue(self):
        if not self._refused:       # no '100 Continue' after a 413
            super()._send100Continue()

    def requestDone(self, request):
        super().requestDone(request)
        if self.persistent and not self._refused and self._deadline is None:
            self._await_request()

    def connectionLost(self, reason):
        self._stop_deadline()
        call = getattr(self, "_abort_call", None)
        if call is not None and call.active():
            call.cancel()
        super().connectionLost(reason)


class WebSite(server.Site):
    """
    The Site of the HTTP service: bounded connections (see the module docstring), no
    tracebacks shown, debug-level request logs. C{body_limit(path)} gives the largest body
    accepted for a request path; C{describe(request)} the client for logs.
    """

    protocol = _Channel
    requestFactory = _Request
    displayTracebacks = False
    noisy = False

    def __init__(self, root, request_timeout, body_limit, describe, reactor=None):
        # Twisted's idle timer would close a connection answering a long poll only if the
        # client sent nothing meanwhile; the request deadline above replaces it.
        super().__init__(root, timeout=None, reactor=reactor)
        self.request_timeout = request_timeout
        self.body_limit = body_limit
        self._describe = describe

    def log(self, request):
        """One debug line per answered request: method, path (no query), status, client."""
        log.debug("http {method} {path} {code} from {client}",
                  method=request.method.decode("latin-1", "replace"),
                  path=request.path.decode("latin-1", "replace"),
                  code=request.code, client=self._describe(request))


def not_found():
    """A resource answering 404 to any method."""
    return pages.notFound("404 Not Found", "Nothing is served at this address.")


class Root(resource.Resource):
    """The root of the URL space (and of a mount point's parents): only its children
    exist; it is 404 itself."""

    def getChild(self, path, request):
        return not_found()

    def render(self, request):
        return not_found().render(request)
