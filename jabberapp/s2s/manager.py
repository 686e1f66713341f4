"""
The s2s route manager: the router's destination for every domain that is not local.

Theory of operation
-------------------
The router calls L{S2SManager.dispatch} for a stanza whose 'to' domain is not ours. Stanzas
travel on one outgoing link per (local domain, remote domain) pair, a L{Route}: its state is

  resolving ──▶ connecting (target by target) ──▶ negotiating ──▶ up ──idle/close──▶ gone
       └──────────────── failure or negotiation_timeout ──────────────▶ failed

Stanzas that arrive before the route is up wait in its queue and are written in order once it
authenticates. A route that fails bounces every queued stanza to its sender:
remote-server-timeout when time ran out (connect or negotiation timeout), otherwise
remote-server-not-found (DNS, refused connections, TLS or authentication failures) -- a stanza
is never dropped silently (errors and results are never answered, router.bounce). The next
stanza for that domain starts a new attempt. An up route with no traffic for idle_timeout is
closed; a route whose stream goes away is forgotten, and the next stanza opens a new one.

Dialback verification (we are the Receiving Server) uses the same routes: verify_key() sends
a <db:verify/> on the route to the claimed domain as soon as its stream is past TLS, whether
or not the route has authenticated yet (waiting for that could deadlock two servers that
verify each other).

Incoming streams register here when they authenticate a domain; with XEP-0288 bidi, such a
stream also carries our stanzas back to that domain when we have no route of our own.
"""
from twisted.internet import defer, endpoints
from twisted.internet.error import ConnectError, TimeoutError as ConnectTimeout
from twisted.internet.protocol import Factory, ServerFactory
from twisted.protocols.tls import TLSMemoryBIOFactory

from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, JID
from jabberapp.logging import logger
from jabberapp.s2s import dialback
from jabberapp.s2s.inbound import InboundStream
from jabberapp.s2s.outbound import OutboundStream
from jabberapp.s2s.resolver import ResolutionError, S2SResolver, Target, is_ip
from jabberapp.tls import PeerCertificate

log = logger(__name__)


class VerificationFailed(Exception):
    """A dialback key could not be checked with its Authoritative Server."""

    def __init__(self, condition, text=None):
        super().__init__(text or condition)
        self.condition = condition


class Route:
    """The outgoing link from one local domain to one remote domain (module docstring)."""

    def __init__(self, manager, local, remote):
        self.manager = manager
        self.local = local
        self.remote = remote
        self.state = "resolving"
        self.queue = []             # stanzas waiting for the link, in order
        self.stream = None          # the OutboundStream being negotiated or up
        self.targets = []
        self.target = None
        self._connecting = None     # Deferred of the connection attempt in progress
        self._resolving = None      # Deferred of the DNS resolution in progress
        self._condition = "remote-server-not-found"
        self._reason = None         # last failure text, for logs and bounce texts
        self._verifies = []         # [stream_id, key, Deferred, sent] not answered yet
        clock = manager.clock
        self._deadline = clock.callLater(manager.config.negotiation_timeout, self._timed_out)
        self._idle = None
        self._last_used = clock.seconds()

    @property
    def done(self):
        return self.state in ("failed", "gone")

    @property
    def usable(self):
        """False once an up link's stream is closing (idle close, peer close)."""
        return not (self.state == "up" and (self.stream is None or self.stream.closed))

    def start(self):
        d = self._resolving = self.manager.resolver.resolve(self.remote)
        d.addCallbacks(self._resolved, self._resolve_failed)
        d.addErrback(lambda f: log.failure("s2s route to {remote} failed", f,
                                           remote=self.remote))

    # -- sending -----------------------------------------------------------------------

    def send(self, stanza):
        """Write C{stanza} on the link, or queue it until the link is up."""
        if self.state == "up":
            self._last_used = self.manager.clock.seconds()
            self.stream.send(stanza)
        elif self.done:
            self.manager.router.bounce(stanza, self._condition, f"Cannot reach {self.remote}")
        else:
            self.queue.append(stanza)

    def verify(self, stream_id, key):
        """Deferred firing True/False: does the Authoritative Server know this key?"""
        if self.done:
            return defer.fail(VerificationFailed(self._condition, f"cannot reach {self.remote}"))
        entry = [stream_id, key, None, False]
        d = entry[2] = defer.Deferred(lambda _: self._verify_cancelled(entry))
        self._verifies.append(entry)
        timer = self.manager.clock.callLater(self.manager.config.negotiation_timeout,
                                             self._verify_timed_out, entry)
        d.addBoth(_cancel_timer, timer)
        if self.stream is not None and self.stream.ready and not self.stream.closed:
            self._send_verify(entry)
        return d

    def _verify_cancelled(self, entry):
        """Nobody waits for this verification any more (the stream that asked closed):
        forget it, and give the route up if nothing else needs it, so that its DNS
        lookups, connection attempts and timers stop now."""
        if entry in self._verifies:
            self._verifies.remove(entry)
        if self.state != "up" and not self.done and not self.queue and not self._verifies:
            self.fail("remote-server-not-found", "no longer needed")

    def _send_verify(self, entry):
        entry[3] = True
        self._last_used = self.manager.clock.seconds()
        self.stream.send(dialback.verify(self.local, self.remote, entry[0], key=entry[1]))

    def _verify_timed_out(self, entry):
        if entry in self._verifies:
            self._verifies.remove(entry)
            entry[2].errback(VerificationFailed("remote-server-timeout",
                                                f"no answer from {self.remote}"))

    def verify_answered(self, el):
        """A <db:verify type=.../> came back on our stream."""
        stream_id = el.get("id")
        for entry in self._verifies:
            if entry[0] == stream_id and entry[3]:
                self._verifies.remove(entry)
                condition = dialback.error_condition(el)
                if el.get("type") == "error":
                    entry[2].errback(VerificationFailed(condition or "remote-server-not-found",
                                                        f"{self.remote} answered an error"))
                else:
                    entry[2].callback(el.get("type") == "valid")
                return

    # -- connecting --------------------------------------------------------------------

    def _resolved(self, targets):
        self._resolving = None
        if self.done:
            return
        self.targets = list(targets)
        if not self.targets:
            self._reason = "no address found"
        self.state = "connecting"
        self._next_target()

    def _resolve_failed(self, failure):
        self._resolving = None
        if self.done:
            return
        failure.trap(ResolutionError)
        self._reason = failure.getErrorMessage()
        self.fail("remote-server-not-found", self._reason)

    def _next_target(self):
        if self.done:
            return
        if not self.targets:
            self.fail(self._condition, self._reason or "could not connect")
            return
        self.target = self.targets.pop(0)
        log.debug("s2s {local} -> {remote}: connecting to {target}", local=self.local,
                  remote=self.remote, target=str(self.target))
        self.state = "connecting"
        self._connecting = self.manager.connect(self.target, self)
        self._connecting.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, protocol):
        self._connecting = None

    def _connect_failed(self, failure):
        self._connecting = None
        if self.done:
            return None
        if failure.check(defer.CancelledError):
            return None
        if failure.check(ConnectTimeout, defer.TimeoutError):
            self._condition = "remote-server-timeout"
        elif not failure.check(ConnectError, ConnectionError, OSError):
            log.failure("unexpected error connecting to {target}", failure,
                        target=str(self.target))
        self._reason = f"{self.target}: {failure.getErrorMessage()}"
        log.info("s2s {local} -> {remote}: cannot connect to {target}: {error}",
                 local=self.local, remote=self.remote, target=str(self.target),
                 error=failure.getErrorMessage())
        self._next_target()
        return None

    # -- called by the OutboundStream ---------------------------------------------------

    def attached(self, stream):
        """The TCP (or TLS) connection is made; negotiation starts."""
        if self.done:
            stream.close()
            return
        self.stream = stream
        self.state = "negotiating"

    def stream_ready(self, stream):
        """Past TLS: dialback verification requests may go out now."""
        for entry in list(self._verifies):
            if not entry[3]:
                self._send_verify(entry)

    def authenticated(self, stream):
        """The link is up: flush the queue in order."""
        if self.done:
            stream.close()
            return
        self.state = "up"
        if self._deadline.active():
            self._deadline.cancel()
        queue, self.queue = self.queue, []
        for stanza in queue:
            stream.send(stanza)
        self._last_used = self.manager.clock.seconds()
        self._schedule_idle()
        self.manager.route_up(self)

    def stream_lost(self, stream):
        if stream is not self.stream:
            return
        self.stream = None
        if self.state == "up":
            self.state = "gone"
            self._stop_timers()
            self.manager.forget(self)
            self._fail_verifies("remote-server-not-found", "the link closed")
            return
        if self.done:
            return
        self._reason = stream.failure or (
            f"{self.target}: stream closed ({stream.peer_error})" if stream.peer_error
            else f"{self.target}: connection closed during negotiation")
        self._next_target()

    # -- timers, failure ----------------------------------------------------------------

    def _schedule_idle(self):
        timeout = self.manager.config.idle_timeout
        if timeout > 0:
            self._idle = self.manager.clock.callLater(timeout, self._check_idle)

    def _check_idle(self):
        self._idle = None
        if self.state != "up":
            return
        timeout = self.manager.config.idle_timeout
        idle_for = self.manager.clock.seconds() - self._last_used
        if idle_for >= timeout and not any(entry[3] for entry in self._verifies):
            log.info("s2s {local} -> {remote}: closing idle link", local=self.local,
                     remote=self.remote)
            self.stream.failure = "idle"
            self.stream.close()
        else:
            self._idle = self.manager.clock.callLater(max(timeout - idle_for, 1.0),
                                                      self._check_idle)

    def _timed_out(self):
        if self.state != "up" and not self.done:
            self.fail("remote-server-timeout",
                      f"not authenticated within {self.manager.config.negotiation_timeout:g} s"
                      + (f" (last problem: {self._reason})" if self._reason else ""))

    def _stop_timers(self):
        if self._deadline.active():
            self._deadline.cancel()
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _fail_verifies(self, condition, text):
        verifies, self._verifies = self._verifies, []
        for entry in verifies:
            entry[2].errback(VerificationFailed(condition, text))

    def fail(self, condition, text=None):
        """Give up: bounce every queued stanza with C{condition}, fail verifications."""
        if self.done:
            return
        self.state = "failed"
        self._condition = condition     # for stanzas that still arrive (send())
        self._stop_timers()
        self.manager.forget(self)
        log.info("s2s route {local} -> {remote} failed ({condition}): {text}",
                 local=self.local, remote=self.remote, condition=condition, text=text)
        if self._resolving is not None:
            resolving, self._resolving = self._resolving, None
            resolving.cancel()      # stops the DNS queries and their retransmissions
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            connecting.cancel()
        if self.stream is not None and not self.stream.closed:
            self.stream.close()
        queue, self.queue = self.queue, []
        bounce_text = f"Cannot reach {self.remote}"
        for stanza in queue:
            self.manager.router.bounce(stanza, condition, bounce_text)
        self._fail_verifies(condition, text)

    def close(self, error=None):
        """Shut the route down (server stopping): queued stanzas bounce."""
        if self.state == "up":
            self.state = "gone"
            self._stop_timers()
            self.manager.forget(self)
            self._fail_verifies("remote-server-timeout", "server shutting down")
        if self.stream is not None and not self.stream.closed:
            self.stream.close(error)
        if not self.done:
            self.fail("remote-server-timeout", "server shutting down")


def _cancel_timer(result, timer):
    if timer.active():
        timer.cancel()
    return result


class S2SServerFactory(ServerFactory):
    """Accepts streams from other servers (port 5269, or direct TLS when secure)."""

    noisy = False

    def __init__(self, manager, secure=False):
        self.manager = manager
        self.secure = secure

    def buildProtocol(self, addr):
        return InboundStream(self.manager, secure=self.secure)


class _OutboundFactory(Factory):
    noisy = False

    def __init__(self, manager, route, secure):
        self.manager = manager
        self.route = route
        self.secure = secure

    def buildProtocol(self, addr):
        return OutboundStream(self.manager, self.route, secure=self.secure)


class S2SManager:
    """
    The router's `remote`: routes per (local, remote) domain, incoming streams, dialback.

    @param config: the S2SConfig.
    @param router: the Router (for is_local, bounce and route).
    @param clock: IReactorTime for every timer.
    @param reactor: for outgoing connections (unused when C{connect} is given).
    @param server_tls: options for STARTTLS on incoming streams (None: no TLS offered).
    @param client_tls: tls.ClientContexts for outgoing links (None: no TLS used).
    @param verifier: tls.PeerVerifier that checked the peer certificates.
    @param resolver: an S2SResolver; by default one over config.routes and DNS.
    @param connect: callable(target, route) -> Deferred, replacing real connections (tests).
    @param secret: the dialback secret; a new random one by default (per process).
    """

    def __init__(self, config, router, clock, reactor=None, server_tls=None, client_tls=None,
                 verifier=None, resolver=None, connect=None, secret=None):
        self.config = config
        self.router = router
        self.clock = clock
        self.reactor = reactor
        self.server_tls = server_tls
        self.client_tls = client_tls
        self.verifier = verifier
        self.secret = secret or dialback.new_secret()
        self.on_change = None  # called when a link goes up or down (status file)
        if resolver is None:
            dns = None
            if config.dns_servers:
                from twisted.names import client
                dns = client.Resolver(servers=list(config.dns_servers), reactor=reactor)
            resolver = S2SResolver(config.routes_for, dns=dns,
                                   resolve_addresses=bool(config.dns_servers))
        self.resolver = resolver
        if connect is not None:
            self.connect = connect
        self.routes = {}        # (local, remote) -> Route
        self.inbound = set()    # every InboundStream connected
        self.bidi = {}          # (local, remote) -> InboundStream that may carry our stanzas
        self._verifications = {}  # inbound stream id -> dialback verifications it waits for

    # -- the router's remote destination ----------------------------------------------

    def dispatch(self, stanza, origin=None):
        """Send C{stanza} (its 'to' is a remote domain) on the route for its domains."""
        try:
            remote = JID.parse(stanza.get("to")).domain
            local = JID.parse(stanza.get("from") or "").domain
        except InvalidJID:
            log.warn("not sending a {tag} without a valid 'from' to another server",
                     tag=stanza.tag)
            return
        if not self.router.is_local(local):
            # We never relay for other domains.
            log.warn("not relaying a {tag} from {local} to {remote}", tag=stanza.tag,
                     local=local, remote=remote)
            return
        route = self.routes.get((local, remote))
        if route is not None and not route.usable:
            self.forget(route)      # its stream is closing: the stanza needs a new link
            route = None
        if route is None:
            stream = self.bidi.get((local, remote))
            if stream is not None and not stream.closed:
                stream.send(stanza)
                return
            route = self._new_route(local, remote)
            route.send(stanza)      # queued first: the attempt may fail synchronously
            route.start()
            return
        route.send(stanza)

    def verify_key(self, local, remote, stream_id, key):
        """Ask the Authoritative Server of C{remote} whether C{key} is its key for a stream
        to C{local} with C{stream_id}. Deferred: True or False; VerificationFailed when it
        cannot be asked."""
        route = self.routes.get((local, remote))
        if route is not None and route.usable:
            d = route.verify(stream_id, key)
        else:
            route = self._new_route(local, remote)
            d = route.verify(stream_id, key)
            route.start()
        if not d.called:
            # Cancelled if the stream that asks closes first (inbound_closed).
            self._verifications.setdefault(stream_id, set()).add(d)
            d.addBoth(self._verification_settled, stream_id, d)
        return d

    def _verification_settled(self, result, stream_id, d):
        waiting = self._verifications.get(stream_id)
        if waiting is not None:
            waiting.discard(d)
            if not waiting:
                del self._verifications[stream_id]
        return result

    def _new_route(self, local, remote):
        """A new route, registered but not started (the caller queues, then starts)."""
        route = Route(self, local, remote)
        self.routes[(local, remote)] = route
        return route

    def forget(self, route):
        if self.routes.get((route.local, route.remote)) is route:
            del self.routes[(route.local, route.remote)]

    def route_up(self, route):
        """A route authenticated (hook for listings; nothing to do yet)."""

    # -- facts the streams ask for -----------------------------------------------------

    def is_local(self, domain):
        return self.router.is_local(domain)

    def is_authoritative(self, domain):
        """Whether we answer for C{domain} on s2s (a host or component of ours)."""
        return self.router.is_local(domain)

    def trusts_self_signed(self, domain):
        return domain in self.config.trust_self_signed

    def peer_certificate(self, transport):
        if self.verifier is None:
            return PeerCertificate(None, ())
        return self.verifier.peer(transport)

    def received(self, stanza, stream):
        """An accepted stanza from a peer: to the router (no local session sent it)."""
        self.router.route(stanza, None)

    # -- incoming streams ----------------------------------------------------------------

    def inbound_opened(self, stream):
        self.inbound.add(stream)

    def inbound_authenticated(self, stream, domain):
        if stream.bidi and stream.local_domain is not None:
            self.bidi[(stream.local_domain, domain)] = stream

    def inbound_closed(self, stream):
        self.inbound.discard(stream)
        for d in list(self._verifications.pop(stream.stream_id, ())):
            d.cancel()
        for key, value in list(self.bidi.items()):
            if value is stream:
                del self.bidi[key]

    # -- outgoing connections -----------------------------------------------------------

    def connect(self, target: Target, route: Route) -> defer.Deferred:
        """Open a connection to C{target} for C{route}; fires with the OutboundStream."""
        reactor = self.reactor
        timeout = self.config.connect_timeout
        if is_ip(target.host):
            if ":" in target.host:
                endpoint = endpoints.TCP6ClientEndpoint(reactor, target.host, target.port,
                                                        timeout=timeout)
            else:
                endpoint = endpoints.TCP4ClientEndpoint(reactor, target.host, target.port,
                                                        timeout=timeout)
        else:
            endpoint = endpoints.HostnameEndpoint(reactor, target.host, target.port,
                                                  timeout=timeout)
        if target.direct_tls:
            if self.client_tls is None:
                return defer.fail(ConnectError(string="direct TLS without TLS configured"))
            endpoint = endpoints.wrapClientTLS(
                self.client_tls.options(route.local, route.remote), endpoint)
        return endpoint.connect(_OutboundFactory(self, route, secure=target.direct_tls))

    # -- listings and shutdown -------------------------------------------------------------

    def links(self):
        """Current links: dicts with direction, local, peer, state, address, tls, auth."""
        listing = []
        for route in self.routes.values():
            stream = route.stream
            listing.append({
                "direction": "outbound", "local": route.local, "peer": route.remote,
                "state": route.state, "queued": len(route.queue),
                "address": stream.peer_address if stream else None,
                "tls": stream.tls_version() if stream else None,
                "auth": stream.auth_method if stream else None,
                "bidi": bool(stream and stream.bidi)})
        for stream in self.inbound:
            listing.append({
                "direction": "inbound", "local": stream.local_domain,
                "peer": ", ".join(stream.authenticated) or stream.claimed_from,
                "state": "up" if stream.authenticated else "negotiating", "queued": 0,
                "address": stream.peer_address, "tls": stream.tls_version(),
                "auth": stream.auth_method, "bidi": stream.bidi})
        return listing

    def links_changed(self):
        """A link went up or down."""
        if self.on_change is not None:
            self.on_change()

    def close_all(self):
        """Close every link (the server is stopping)."""
        for route in list(self.routes.values()):
            route.close(StreamError("system-shutdown"))
        for stream in list(self.inbound):
            stream.close(StreamError("system-shutdown"))


def server_factories(manager):
    """(plain factory, direct TLS factory or None) for the s2s listeners."""
    plain = S2SServerFactory(manager)
    direct = None
    if manager.server_tls is not None:
        direct = TLSMemoryBIOFactory(manager.server_tls, False,
                                     S2SServerFactory(manager, secure=True))
        direct.noisy = False
    return plain, direct
