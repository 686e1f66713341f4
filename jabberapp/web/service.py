"""
The one HTTP service of a process: what WebSocket, BOSH, host-meta and later HTTP features
(file upload, admin API, metrics) are mounted on.

``server.py`` makes one ``HTTPService`` from ``[http]``, mounts the built-in endpoints on it,
and, when ``[http] enabled``, opens its listeners (``site()`` on the plain and the TLS port)
and offers it to every host's extensions as the service ``"http"`` (``HTTP_SERVICE``):

    def install(self, host):
        if not host.has_service("http"):
            raise ValueError("needs [http] enabled = yes")
        http = host.service("http")
        path = b"upload/" + host.domain.encode()      # the URL space is the process's
        http.add_resource(path, UploadResource(host), max_request_size=100 * 2**20)
        host.on_unload(lambda: http.remove_resource(path))

The URL space is shared by every host of the process, so an extension installed on several
hosts mounts one resource per host under a path naming it, or looks at the Host header
(``request_host()``).
"""
from __future__ import annotations

import re

import idna

from jabberapp.web.forwarded import TrustedProxies, header_values, normal_address
from jabberapp.web.hostmeta import mount_host_meta
from jabberapp.web.site import Root, WebSite

__all__ = ["ALT_BOSH", "ALT_WEBSOCKET", "HTTP_SERVICE", "HTTPService"]

#: The name of the service on every host (``host.service(HTTP_SERVICE)``).
HTTP_SERVICE = "http"
#: XEP-0156 link relations.
ALT_WEBSOCKET = "urn:xmpp:alt-connections:websocket"
ALT_BOSH = "urn:xmpp:alt-connections:xbosh"

# A Host header: a DNS name or IPv4 address, or an IPv6 address in brackets, and a port.
_AUTHORITY = re.compile(rb"(?:[A-Za-z0-9](?:[-A-Za-z0-9.]*[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]+\])"
                        rb"(?::[0-9]{1,5})?")
_HEADER_NAMES = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


def _segments(path) -> tuple[bytes, ...]:
    if isinstance(path, str):
        path = path.encode("utf-8")
    segments = tuple(path.strip(b"/").split(b"/"))
    if not path.strip(b"/") or any(not s or s in (b".", b"..") for s in segments):
        raise ValueError(f"not a resource path: {path!r}")
    return segments


def _a_label(host: str) -> str:
    try:
        return idna.encode(host).decode("ascii")
    except idna.IDNAError:
        return host


class HTTPService:
    """
    The HTTP service (DESIGN §5b): twisted.web resources mounted on one URL space, served
    on ``[http] port`` and ``tls_port``.

    Mounting:
      - ``add_resource(path, resource, max_request_size=None)`` mounts a twisted.web
        resource at C{path} (``b"xmpp-websocket"``, ``b"upload/example.org"``); a body
        larger than C{max_request_size} (default ``[http] max_request_size``) is refused
        with 413 before it is read. ``remove_resource(path)`` unmounts it.
      - ``add_alt_connection(rel, path)`` lists the endpoint at C{path} in host-meta
        (XEP-0156) under C{rel} (``ALT_WEBSOCKET``, ``ALT_BOSH``) while it is mounted.

    About a request:
      - ``client_address(request)``: the client's IP address as text; behind a trusted
        proxy the right-most X-Forwarded-For entry that is not a trusted proxy.
      - ``is_secure(request)``: TLS to us, or X-Forwarded-Proto: https from a trusted proxy.
      - ``request_host(request)``: the served host (XMPP domain) the Host header names, or
        None; ``base_url(request, websocket=False)`` the scheme://host[:port] the client
        used (ws/wss for a WebSocket).

    CORS, for endpoints browsers call from other origins:
      - ``origin_allowed(origin, request=None)``: C{origin} is in ``[http] cors_origins``
        (or it is ``*``), or is C{request}'s own origin;
      - ``allow_origin(request)``: adds Access-Control-Allow-Origin for the request's
        Origin when it is allowed; False when it is not (answer 403);
      - ``preflight(request, methods)``: answers an OPTIONS preflight (the body to return).
    """

    def __init__(self, config, hosts=(), reactor=None):
        self.config = config
        self.hosts = tuple(hosts)
        self._by_name = {_a_label(host): host for host in self.hosts}
        self.proxies = TrustedProxies(config.trusted_proxies)
        self.reactor = reactor
        self.root = Root()
        self._limits: dict[tuple[bytes, ...], int] = {}
        self._alt: list[tuple[str, tuple[bytes, ...]]] = []
        mount_host_meta(self)

    # -- mounting -------------------------------------------------------------------------

    def add_resource(self, path, resource, max_request_size=None):
        """Mount twisted.web C{resource} at C{path} (bytes or str, segments separated by
        '/'); ValueError when something is mounted there already."""
        segments = _segments(path)
        parent = self.root
        for depth, segment in enumerate(segments[:-1], 1):
            if segments[:depth] in self._limits:
                raise ValueError(f"{path!r} is inside the resource mounted at "
                                 f"{b'/'.join(segments[:depth])!r}")
            child = parent.children.get(segment)
            if child is None:
                child = Root()
                parent.putChild(segment, child)
            parent = child
        if segments[-1] in parent.children:
            raise ValueError(f"a resource is already mounted at {path!r}")
        parent.putChild(segments[-1], resource)
        self._limits[segments] = (self.config.max_request_size if max_request_size is None
                                  else max_request_size)

    def remove_resource(self, path):
        """Unmount what C{path} holds (KeyError when nothing is mounted there)."""
        segments = _segments(path)
        del self._limits[segments]
        parent = self.root
        for segment in segments[:-1]:
            parent = parent.children[segment]
        del parent.children[segments[-1]]

    def mounted(self, path) -> bool:
        """True when a resource is mounted at C{path}."""
        return _segments(path) in self._limits

    def body_limit(self, path: bytes) -> int:
        """The largest body accepted for a request to C{path}: that of the deepest mount
        point containing it, else ``[http] max_request_size``."""
        segments = tuple(path.strip(b"/").split(b"/"))
        for length in range(len(segments), 0, -1):
            limit = self._limits.get(segments[:length])
            if limit is not None:
                return limit
        return self.config.max_request_size

    def add_alt_connection(self, rel: str, path) -> None:
        """List the endpoint mounted at C{path} in host-meta under link relation C{rel}."""
        self._alt.append((rel, _segments(path)))

    def alt_connections(self, request) -> list[tuple[str, str]]:
        """(rel, URL) of every listed endpoint that is mounted, as C{request}'s client
        reaches them."""
        links = []
        for rel, segments in self._alt:
            if segments in self._limits:
                base = self.base_url(request, websocket=rel == ALT_WEBSOCKET)
                links.append((rel, base + "/" + b"/".join(segments).decode("utf-8")))
        return links

    # -- about a request ------------------------------------------------------------------

    def _peer(self, request) -> str:
        return getattr(request.getClientAddress(), "host", None) or "?"

    def _from_proxy(self, request) -> bool:
        return bool(self.proxies) and self.proxies.trusts(normal_address(self._peer(request)))

    def client_address(self, request) -> str:
        """The client's IP address (text): the peer's, or behind a trusted proxy the
        right-most X-Forwarded-For entry that is not a trusted proxy."""
        peer = self._peer(request)
        if not self.proxies:
            return peer
        return self.proxies.client(peer, header_values(request, b"x-forwarded-for"))

    def is_secure(self, request) -> bool:
        """True when the client reached us over TLS: directly, or by a trusted proxy that
        says X-Forwarded-Proto: https (its right-most value)."""
        if request.isSecure():
            return True
        if not self._from_proxy(request):
            return False
        proto = header_values(request, b"x-forwarded-proto")
        return bool(proto) and proto[-1].lower() == "https"

    def authority(self, request) -> str | None:
        """The host[:port] the client addressed (Host, or a trusted proxy's
        X-Forwarded-Host), or None when missing or malformed."""
        raw = None
        if self._from_proxy(request):
            forwarded = header_values(request, b"x-forwarded-host")
            if forwarded:
                raw = forwarded[-1].encode("latin-1")
        if raw is None:
            raw = request.getHeader(b"host")
        if raw is None or not _AUTHORITY.fullmatch(raw.strip()):
            return None
        return raw.strip().decode("ascii")

    def request_host(self, request) -> str | None:
        """The served host (XMPP domain) named by the request's authority, or None."""
        authority = self.authority(request)
        if authority is None or authority.startswith("["):
            return None
        name = authority.rpartition(":")[0] if ":" in authority else authority
        return self._by_name.get(name.lower().rstrip("."))

    def base_url(self, request, websocket=False) -> str:
        """scheme://host[:port] as the client used it (ws/wss when C{websocket})."""
        secure = self.is_secure(request)
        scheme = ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
        return f"{scheme}://{self.authority(request) or self.hosts[0]}"

    # -- CORS -----------------------------------------------------------------------------

    def origin_allowed(self, origin, request=None) -> bool:
        """True when a page of C{origin} (an Origin header, bytes or str) may use the
        endpoints: it is listed in ``[http] cors_origins`` (or ``*`` is), or it is the
        origin of C{request} itself (same-origin)."""
        if origin is None:
            return False
        if isinstance(origin, bytes):
            origin = origin.decode("latin-1")
        origins = self.config.cors_origins
        if "*" in origins:
            return True
        origin = origin.strip().lower().rstrip("/")
        if origin in origins:
            return True
        if request is not None and self.authority(request) is not None:
            return origin == self.base_url(request).lower()
        return False

    def allow_origin(self, request) -> bool:
        """
        For a response to C{request}: a request without Origin (not from a browser page of
        another origin) is allowed as it is; an allowed Origin gets
        Access-Control-Allow-Origin; an Origin not allowed returns False (answer 403 and
        do nothing the request asks).
        """
        origin = request.getHeader(b"origin")
        if origin is None:
            return True
        if not self.origin_allowed(origin, request):
            return False
        if "*" in self.config.cors_origins:
            request.setHeader(b"Access-Control-Allow-Origin", b"*")
        else:
            request.setHeader(b"Access-Control-Allow-Origin", origin)
            request.responseHeaders.addRawHeader(b"Vary", b"Origin")
        return True

    def preflight(self, request, methods=(b"GET", b"POST")) -> bytes:
        """
        Answer an OPTIONS request (a CORS preflight when it has an Origin): 204 with Allow,
        and for an allowed origin Access-Control-Allow-Origin/-Methods/-Headers (the
        headers the browser asks for) and -Max-Age; 403 for an origin not allowed.
        Return its result from C{render_OPTIONS}.
        """
        allowed = b", ".join(tuple(methods) + (b"OPTIONS",))
        request.setHeader(b"Allow", allowed)
        if not self.allow_origin(request):
            request.setResponseCode(403)
            return b""
        if request.getHeader(b"origin") is not None:
            request.setHeader(b"Access-Control-Allow-Methods", allowed)
            wanted = request.getHeader(b"access-control-request-headers")
            if wanted and _HEADER_NAMES.fullmatch(wanted.strip()):
                request.setHeader(b"Access-Control-Allow-Headers", wanted.strip())
            request.setHeader(b"Access-Control-Max-Age", b"86400")
        request.setResponseCode(204)
        return b""

    # -- serving --------------------------------------------------------------------------

    def site(self) -> WebSite:
        """A Site serving this service: one per listener (plain, TLS)."""
        return WebSite(self.root, self.config.request_timeout, self.body_limit,
                       self.client_address, reactor=self.reactor)

