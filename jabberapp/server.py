"""
Assembles a running server from a validated ServerConfig: storage, router, virtual hosts with
their extensions, TLS material and the c2s listeners.

Everything that can be checked without opening a port (config, extensions, certificates) is
checked in L{prepare}, before twistd starts the service; storage opens in startService, and the
listeners only once storage is ready.
"""
import functools
import gc

from twisted.application.service import Service
from twisted.internet import defer, threads
from jabberapp.logging import logger
from twisted.plugin import getPlugins
from twisted.protocols.tls import TLSMemoryBIOFactory

import jabberapp.plugins
from jabberapp import shutdown, tls
from jabberapp.auth import InternalAuthProvider
from jabberapp.c2s.stream import C2SFactory
from jabberapp.datadir import DataDirError, ensure_data_dir
from jabberapp.component.accept import ComponentFactory
from jabberapp.errors import StreamError
from jabberapp.host import VirtualHost
from jabberapp.interfaces import IExtension
from jabberapp.router import Router
from jabberapp.s2s.manager import S2SManager, server_factories
from jabberapp.sasl.throttle import FailureThrottle
from jabberapp.status import StatusFile
from jabberapp.storage import open_storage
from jabberapp.transports.tcp import listen_tcp
from jabberapp.web.service import ALT_WEBSOCKET, HTTP_SERVICE, HTTPService

log = logger(__name__)

BUILTIN_PACKAGE = "jabberapp.extensions"


class StartupError(Exception):
    """A problem found before the server starts; its message is one line for the operator."""


def discover_extensions():
    """Every IExtension plugin found in jabberapp.plugins, by name."""
    found = {}
    for plugin in getPlugins(IExtension, jabberapp.plugins):
        if plugin.name in found and found[plugin.name] is not plugin:
            raise StartupError(f"two extensions are named {plugin.name!r}")
        found[plugin.name] = plugin
    return found


def is_builtin(extension):
    return type(extension).__module__.startswith(BUILTIN_PACKAGE + ".")


def select_extensions(available, names):
    """The extensions to install, dependencies first; C{names} None means every built-in."""
    if names is None:
        names = sorted(name for name, ext in available.items() if is_builtin(ext))
    missing = [name for name in names if name not in available]
    if missing:
        raise StartupError(
            f"[server] extensions: no extension named {', '.join(map(repr, missing))} "
            f"was found (available: {', '.join(sorted(available))})")
    ordered, visiting = [], set()

    def visit(name, wanted_by):
        if name in ordered:
            return
        if name not in names:
            raise StartupError(f"[server] extensions: {wanted_by!r} needs {name!r}, "
                               "which is not enabled")
        if name in visiting:
            raise StartupError(f"extensions {wanted_by!r} and {name!r} depend on each other")
        visiting.add(name)
        for dependency in available[name].depends:
            visit(dependency, name)
        ordered.append(name)

    for name in names:
        visit(name, name)
    return [available[name] for name in ordered]


def certificates(settings):
    """host -> (cert_path, key_path): configured per host or globally, else self-signed."""
    chosen = {}
    for host in settings.hosts:
        pair = settings.tls.per_host.get(host)
        if pair is None and settings.tls.certificate:
            pair = (settings.tls.certificate, settings.tls.private_key)
        if pair is None:
            pair = tls.ensure_self_signed(settings.data_dir, host)
            log.warn("using a self-signed certificate for {host}: SHA-256 fingerprint "
                     "{fingerprint}", host=host, fingerprint=tls.fingerprint_sha256(pair[0]))
        try:
            tls.load_certificate(*pair)
        except ValueError as e:
            raise StartupError(f"[tls] {host}: {e}") from None
        chosen[host] = pair
    return chosen


def s2s_tls(settings, certificates):
    """(verifier, server options, client contexts) for federation; StartupError when the
    trust store cannot be read."""
    config = settings.s2s
    verifier = tls.PeerVerifier(config.ca_file)
    try:
        server_options = tls.server_tls_options(certificates, settings.hosts[0], verifier)
    except Exception as e:   # OpenSSL's own errors for a file that is not PEM
        raise StartupError(f"[s2s] ca_file: cannot load {config.ca_file}: {e}") from None
    return verifier, server_options, tls.client_tls_options(certificates, verifier)


class ServerService(Service):
    """The whole server as one twistd service."""

    # Seconds stopService waits for pending writes (offline messages) before it closes
    # storage anyway, with a log line.
    shutdown_timeout = 10.0

    def __init__(self, settings, extensions, reactor):
        self.settings = settings
        self.extensions = extensions
        self.reactor = reactor
        self.storage = None
        self.router = Router()
        self.hosts = {}
        self.ports = []
        self.factories = []
        self.components = None  # the ComponentFactory, when components are configured
        self.failed = False      # set when starting failed: the process must exit non-zero
        try:
            ensure_data_dir(settings.data_dir)
        except DataDirError as e:
            raise StartupError(str(e)) from None
        self.certificates = certificates(settings)
        self.tls_options = tls.server_tls_options(self.certificates, settings.hosts[0])
        self.s2s = None  # the S2SManager (router.remote), when federation is enabled
        self._s2s_tls = s2s_tls(settings, self.certificates) if settings.s2s.enabled else None
        # The one HTTP service ([http]): endpoints mount on it (add_resource) whether or not
        # it listens; hosts offer it to extensions as the service "http" when it does.
        self.http = HTTPService(settings.http, settings.hosts, reactor)

    def startService(self):
        super().startService()
        self._started = self._start()
        self._started.addErrback(self._fatal)

    @defer.inlineCallbacks
    def _start(self):
        self.storage = yield open_storage(self.settings.storage, self.reactor)
        run_in_thread = functools.partial(threads.deferToThreadPool, self.reactor,
                                          self.reactor.getThreadPool())
        auth = InternalAuthProvider(self.storage.accounts, run_in_thread)
        for domain in self.settings.hosts:
            host = VirtualHost(domain, self.router, self.storage, auth, self.reactor,
                               self.reactor, settings=self.settings)
            if self.settings.http.enabled:
                host.services[HTTP_SERVICE] = self.http
            for extension in self.extensions:
                host.install(extension, self.settings.extension_options.get(extension.name, {}))
            self.hosts[domain] = host
        self._listen()
        # What exists now (modules, classes, hosts, extensions) lives as long as the process:
        # taking it out of the cyclic collector's view shortens every full collection, the
        # pauses that otherwise land on logins and stanzas while sessions come and go.
        gc.freeze()

    def _listen(self):
        c2s = self.settings.c2s
        throttle = FailureThrottle(self.reactor)
        common = dict(hosts=self.hosts, clock=self.reactor, throttle=throttle,
                      require_encryption=c2s.require_encryption,
                      max_stanza_size=c2s.max_stanza_size,
                      max_send_buffer=c2s.max_send_buffer,
                      send_buffer_timeout=c2s.send_buffer_timeout,
                      read_rate=c2s.read_rate, read_burst=c2s.read_burst,
                      mechanisms=frozenset(self.settings.auth.mechanisms) or None)
        plain = C2SFactory(tls_options=self.tls_options, **common)
        self._mount_bosh(plain)
        self._listen_on("c2s", c2s.port, plain)
        if c2s.direct_tls_port:
            direct = C2SFactory(tls_options=None, secure=True, **common)
            wrapped = TLSMemoryBIOFactory(self.tls_options, False, direct)
            wrapped.noisy = False
            self._listen_on("c2s direct TLS", c2s.direct_tls_port, wrapped)
            self.factories.append(direct)
        self.factories.append(plain)
        self._mount_websocket(plain)
        self._listen_components()
        self._listen_s2s()
        self._listen_http()

    def _listen_http(self):
        """The HTTP service's listeners: plain HTTP, and HTTPS with the hosts' certificates
        chosen by SNI (the c2s TLS options)."""
        config = self.settings.http
        if not config.enabled:
            return
        if config.port:
            self._listen_on("http", config.port, self.http.site(), config.interface)
        if config.tls_port:
            wrapped = TLSMemoryBIOFactory(self.tls_options, False, self.http.site())
            wrapped.noisy = False
            self._listen_on("https", config.tls_port, wrapped, config.interface)

    def _mount_websocket(self, listener):
        """XMPP over WebSocket (RFC 7395) at /xmpp-websocket, listed in host-meta, with the
        negotiation and limits of the c2s C{listener}."""
        config = self.settings.websocket
        if not (config.enabled and self.settings.http.enabled):
            return
        # Imported here: Autobahn is loaded only by a server that serves WebSocket.
        from jabberapp.transports.websocket import websocket_resource
        self.http.add_resource(b"xmpp-websocket", websocket_resource(
            listener, config.ping_interval, config.see_other_uri or None, http=self.http))
        self.http.add_alt_connection(ALT_WEBSOCKET, b"xmpp-websocket")

    def _listen_s2s(self):
        """Federation: the s2s route manager becomes the router's remote destination."""
        if self._s2s_tls is None:
            return
        config = self.settings.s2s
        verifier, server_options, client_options = self._s2s_tls
        self.s2s = S2SManager(config, self.router, self.reactor, self.reactor,
                              server_tls=server_options, client_tls=client_options,
                              verifier=verifier)
        self.router.remote = self.s2s
        self.status = StatusFile(self.settings.data_dir, self.s2s.links)
        self.s2s.on_change = self.status.write
        self.status.write()
        plain, direct = server_factories(self.s2s)
        if config.port:
            self._listen_on("s2s", config.port, plain, config.interface)
        if config.direct_tls_port:
            self._listen_on("s2s direct TLS", config.direct_tls_port, direct,
                            config.interface)

    def _listen_components(self):
        """Route every configured component domain; listen for them (XEP-0114)."""
        settings = self.settings.components
        if not settings.components:
            return
        self.components = ComponentFactory(self.router, self.hosts, settings.components,
                                           self.reactor)
        if settings.port:
            self._listen_on("component", settings.port, self.components,
                            settings.interface)

    def _mount_bosh(self, listener):
        """BOSH (XEP-0124, XEP-0206) at /http-bind, listed in host-meta, with the
        negotiation and limits of the c2s C{listener}. A body may be twice its stanza
        limit: past the limit it ends its session with policy-violation, past twice it is
        HTTP 413 unread."""
        if not (self.settings.bosh.enabled and self.settings.http.enabled):
            return
        # Imported here: a server without HTTP loads none of it.
        from jabberapp.transports.bosh.resource import bosh_resource
        from jabberapp.web.service import ALT_BOSH
        self.http.add_resource(b"http-bind", bosh_resource(listener, self.settings.bosh,
                                                           self.http),
                               max_request_size=2 * listener.max_stanza_size)
        self.http.add_alt_connection(ALT_BOSH, b"http-bind")

    def _listen_on(self, label, port, factory, interface=None):
        if interface is None:
            interface = self.settings.c2s.interface
        listening = listen_tcp(self.reactor, port, factory, interface)
        self.ports.append(listening)
        address = listening.getHost()
        log.info("{label} listening on {interface} port {port}", label=label,
                 interface=address.host, port=address.port)

    def _fatal(self, failure):
        self.failed = True
        log.critical("jabberapp could not start: {error}", error=failure.getErrorMessage())
        if self.reactor.running:
            self.reactor.stop()

    @defer.inlineCallbacks
    def stopService(self):
        """Stop in order, losing nothing accepted (DESIGN §7, jabberapp.shutdown): stop
        listening; end every session with system-shutdown while the extensions are still
        installed (unacknowledged messages go to offline storage); close components and
        federation; wait, at most C{shutdown_timeout} seconds, for the pending writes;
        unload the extensions; close storage."""
        super().stopService()
        for port in self.ports:
            yield port.stopListening()
        hosts = list(self.hosts.values())
        shutdown.end_sessions(hosts)
        if self.components is not None:
            self.components.shutdown()
        if self.s2s is not None:
            self.s2s.on_change = None
            self.s2s.close_all()
            self.status.remove()
        yield shutdown.writes_done(hosts, self.reactor, self.shutdown_timeout)
        # A session that bound meanwhile (its negotiation was under way) ends as well.
        if shutdown.end_sessions(hosts):
            yield shutdown.writes_done(hosts, self.reactor, self.shutdown_timeout)
        for host in hosts:
            host.unload_all()
        if self.storage is not None:
            yield self.storage.close()
