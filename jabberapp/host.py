"""
A virtual host: its domain, dispatcher, bound sessions and installed extensions.

Each extension is installed through its own L{HostAPI}, which records every registration so
that unloading the extension removes exactly what it added.
"""
from zope.interface import implementer

from jabberapp.component.route import ComponentRoute, HandlerLink
from jabberapp.dispatch import FILTER_OUTBOUND, PASSWORD_CHANGED, USER_DELETED, Dispatcher
from jabberapp.errors import StreamError
from jabberapp.interfaces import IHost
from jabberapp.jid import JID, prep_domain
from jabberapp.logging import logger
from jabberapp.sessions import SessionRegistry
from jabberapp.stream.pipeline import OutboundPipeline


class VirtualHost:
    """One served domain. The router calls dispatch() for stanzas addressed to it."""

    def __init__(self, domain, router, storage, auth, clock, reactor, settings=None,
                 sessions=None):
        self.domain = domain
        self.jid = JID.parse(domain)
        self.router = router
        self.storage = storage
        self.auth = auth
        self.clock = clock
        self.reactor = reactor
        self.settings = settings  # the process's ServerConfig (None in unit tests)
        # Any ISessionRegistry (a cluster's, later); the in-process one by default.
        self.sessions = SessionRegistry() if sessions is None else sessions
        self.dispatcher = Dispatcher(self)
        self.outbound = OutboundPipeline()  # the stages of every stanza to a c2s session
        self.identities = [("server", "im", "jabberapp")]
        self.features = []
        self.disco_providers = []
        self.stream_features = []
        self.preauth_iq_handlers = {}  # namespace -> handler(iq, stream), before SASL
        self.bind2_features = {}  # namespace -> handler(stream, element), XEP-0386 inline
        self.sasl2_features = {}  # namespace -> (name, handler(stream, element, answer), offer)
        self.sasl2_mechanisms = {}  # name -> factory(stream, context, authenticate element)
        self.extensions = {}  # name -> HostAPI, in install order
        self.services = {}    # name -> object an extension provides to others
        router.add_domain(domain, self)

    def dispatch(self, stanza, origin=None):
        self.dispatcher.dispatch(stanza, origin)

    def install(self, extension, options=None):
        """Install C{extension} (an IExtension) with its validated options."""
        if extension.name in self.extensions:
            raise ValueError(f"extension {extension.name!r} is already installed")
        missing = [d for d in extension.depends if d not in self.extensions]
        if missing:
            raise ValueError(f"extension {extension.name!r} needs {', '.join(missing)}")
        api = HostAPI(self, extension.name, options or {})
        self.extensions[extension.name] = api
        try:
            extension.install(api)
        except BaseException:
            self.unload(extension.name)
            raise
        return api

    def unload(self, name):
        """Undo every registration of the extension C{name}."""
        api = self.extensions.pop(name)
        api.undo()

    def unload_all(self):
        for name in reversed(list(self.extensions)):
            self.unload(name)
        self.dispatcher.cancel_requests()


@implementer(IHost)
class HostAPI:
    """What one extension sees of a host (IHost); records registrations for undo()."""

    def __init__(self, host, extension_name, options):
        self._host = host
        self.log = logger(f"jabberapp.extensions.{extension_name}")
        self.name = extension_name
        self.config = options
        self._undo = []
        self._calls = set()  # pending call_later()s, cancelled on undo

    domain = property(lambda self: self._host.domain)
    jid = property(lambda self: self._host.jid)
    clock = property(lambda self: self._host.clock)
    reactor = property(lambda self: self._host.reactor)
    storage = property(lambda self: self._host.storage)
    sessions = property(lambda self: self._host.sessions)
    settings = property(lambda self: self._host.settings)

    def iq_handler(self, type, namespace, name, handler, to="host"):
        dispatcher = self._host.dispatcher
        dispatcher.add_iq_handler(type, namespace, name, handler, to)
        self._undo.append(lambda: dispatcher.remove_iq_handler(type, namespace, name, to))

    def hook(self, event, handler, priority=0):
        hooks = self._host.dispatcher.hooks
        hooks.add(event, handler, priority)
        self._undo.append(lambda: hooks.remove(event, handler))

    def _declare(self, collection, item):
        collection.append(item)
        self._undo.append(lambda: collection.remove(item))

    def add_feature(self, namespace):
        self._declare(self._host.features, namespace)

    def add_identity(self, category, type, name=None):
        self._declare(self._host.identities, (category, type, name))

    def add_disco_provider(self, provider):
        self._declare(self._host.disco_providers, provider)

    def add_stream_feature(self, feature):
        """See IHost.add_stream_feature."""
        self._declare(self._host.stream_features, feature)

    def add_outbound_stage(self, stage, priority=0):
        """See IHost.add_outbound_stage."""
        outbound = self._host.outbound
        outbound.add(stage, priority)
        self._undo.append(lambda: outbound.remove(stage))

    def add_preauth_iq_handler(self, namespace, handler):
        """See IHost.add_preauth_iq_handler: one owner per namespace."""
        handlers = self._host.preauth_iq_handlers
        if namespace in handlers:
            raise ValueError(f"a pre-authentication IQ handler for {namespace!r} is "
                             "already registered")
        handlers[namespace] = handler
        self._undo.append(lambda: handlers.pop(namespace, None))

    def add_bind2_feature(self, namespace, handler):
        """See IHost.add_bind2_feature: one owner per namespace."""
        features = self._host.bind2_features
        if namespace in features:
            raise ValueError(f"a Bind2 inline feature for {namespace!r} is already registered")
        features[namespace] = handler
        self._undo.append(lambda: features.pop(namespace, None))

    def add_sasl2_feature(self, namespace, name, handler, offer=None):
        """See IHost.add_sasl2_feature: one owner per namespace."""
        features = self._host.sasl2_features
        if namespace in features:
            raise ValueError(f"a SASL2 inline feature for {namespace!r} is already registered")
        features[namespace] = (name, handler, offer)
        self._undo.append(lambda: features.pop(namespace, None))

    def add_sasl2_mechanism(self, name, factory):
        """See IHost.add_sasl2_mechanism: one owner per name."""
        mechanisms = self._host.sasl2_mechanisms
        if name in mechanisms:
            raise ValueError(f"the SASL2 mechanism {name!r} is already registered")
        mechanisms[name] = factory
        self._undo.append(lambda: mechanisms.pop(name, None))

    def password_changed(self, bare_jid, keep=None):
        """See IHost.password_changed: the account's other sessions end with <reset/>."""
        for session in list(self._host.sessions.resources(bare_jid)):
            if session is not keep:
                session.close(StreamError("reset", "Password changed"))
        self._host.dispatcher.hooks.fire(PASSWORD_CHANGED, bare_jid)

    def user_deleted(self, bare_jid):
        """See IHost.user_deleted: fire USER_DELETED(bare_jid)."""
        self._host.dispatcher.hooks.fire(USER_DELETED, bare_jid)

    auth = property(lambda self: self._host.auth)

    def send(self, stanza):
        self._host.router.route(stanza)

    def send_from_user(self, stanza, origin=None):
        """Route a stanza generated on behalf of a local user (its 'from'), after the
        FILTER_OUTBOUND hooks (blocking, privacy); False when a filter dropped it."""
        if self._host.dispatcher.hooks.fire(FILTER_OUTBOUND, stanza, origin):
            return False
        self._host.router.route(stanza)
        return True

    def add_component(self, domain, handler, name=None):
        """See IHost.add_component: route C{domain} to C{handler} until unloaded."""
        domain = prep_domain(domain)  # InvalidJID (a ValueError) for a bad domain
        router = self._host.router
        route = ComponentRoute(domain, router, parent=self._host, name=name)
        router.add_domain(domain, route)  # ValueError when the domain is already routed
        route.attach(HandlerLink(domain, handler, router))

        def remove():
            route.detach(route.link)
            if router.destination(domain) is route:
                router.remove_domain(domain)

        self._undo.append(remove)
        return route.jid

    def provide(self, name, service):
        """Offer C{service} to other extensions under C{name} (withdrawn on unload)."""
        services = self._host.services
        if name in services:
            raise ValueError(f"service {name!r} is already provided")
        services[name] = service
        self._undo.append(lambda: services.pop(name, None))

    def service(self, name):
        """The service another extension provides as C{name}; KeyError when none does
        (declare that extension in C{depends})."""
        try:
            return self._host.services[name]
        except KeyError:
            raise KeyError(f"no extension provides the service {name!r}") from None

    def has_service(self, name):
        return name in self._host.services

    def request(self, iq, timeout=60.0):
        """Send an IQ from the host; Deferred fires with the result (see Dispatcher.request)."""
        return self._host.dispatcher.request(iq, timeout)

    def call_later(self, delay, fn, *args, **kwargs):
        def fire():
            self._calls.discard(call)
            fn(*args, **kwargs)

        call = self._host.clock.callLater(delay, fire)
        self._calls.add(call)
        return call

    def on_unload(self, fn):
        self._undo.append(fn)

    # Read-only views extensions need for disco.
    @property
    def identities(self):
        return list(self._host.identities)

    @property
    def features(self):
        return list(self._host.features)

    @property
    def disco_providers(self):
        return list(self._host.disco_providers)

    @property
    def installed(self):
        """Names of the extensions installed on this host, in install order."""
        return list(self._host.extensions)

    def undo(self):
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls.clear()
        for action in reversed(self._undo):
            action()
        self._undo = []
