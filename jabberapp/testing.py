"""
Test doubles for extension authors: a real host with no network, and sessions that record.

L{FakeHost} builds the real thing -- a L{VirtualHost} and its L{Dispatcher} on a L{Router}
-- over the memory storage and a L{Clock}, so a test exercises exactly the dispatch rules,
IQ table and hook chains the server runs. Only the edges are fake:

- L{FakeSession} is a bound c2s resource (an ISession) that records what it is sent, after
  the host's outbound pipeline (IHost.add_outbound_stage) as a real session.
- C{host.connect()} is a c2s connection without a socket (L{FakeTransport}): its stream is the
  real negotiation, so stream features and outbound stages are tested with plain bytes.
- C{host.remote} is the router's destination for every other domain; it records too.
- C{host.sent} is every stanza that left the server, in order: whatever was delivered to a
  FakeSession of this host or handed to the remote destination.

C{host.receive(xml)} plays a stanza the way a client's stream hands it to the server. When
its 'from' is a full JID of this host, the session bound to that JID is the origin; if
there is none, a FakeSession with C{available=False} (bound, no presence sent yet) is bound
for it first -- a real client must bind a resource before it can send anything. So the
reply to a request from 'a@example.org/r' is C{host.sent[-1]} without further set-up, and
the requester's own stanzas are in C{host.session('a@example.org/r').sent}.

Install extensions with C{host.install(extension, **options)}: it fills in the defaults of
the extension's options and records the registrations under the extension's name, so
C{host.unload(name)} undoes them as the server does. A FakeHost also provides IHost itself,
for code that wants a host but is no extension (a helper, a provider under test): what is
registered through it stays for the life of the FakeHost, and its C{config} is the C{config}
argument -- it holds no option defaults, which only C{install()} knows.

    class LastActivityTests(SynchronousTestCase):
        def setUp(self):
            self.clock = Clock()
            self.host = FakeHost("example.org", clock=self.clock)
            self.host.install(service_discovery)
            self.host.install(last_activity)

        def test_uptime(self):
            self.clock.advance(42)
            self.host.receive("<iq type='get' id='q1' from='a@example.org/r' "
                              "to='example.org'><query xmlns='jabber:iq:last'/></iq>")
            self.assertEqual(self.host.sent[-1].get("type"), "result")
"""
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.auth import InternalAuthProvider
from jabberapp.c2s.stream import C2SFactory
from jabberapp.errors import StreamError
from jabberapp.host import HostAPI, VirtualHost
from jabberapp.interfaces import IHost, ISession, ITransport
from jabberapp.jid import JID
from jabberapp.router import Router
from jabberapp.sessions import presence_without_to, session_ended
from jabberapp.sasl.scram import derive_all
from jabberapp.sasl.throttle import FailureThrottle
from jabberapp.storage.memory import MemoryStorage
from jabberapp.xml import parse_element

__all__ = ["FakeHost", "FakeRemote", "FakeSession", "FakeTransport", "HeldKeyValue", "parse"]

# The lowest iteration count SCRAM allows (RFC 7677): test accounts need no real cost.
_TEST_ITERATIONS = 4096


def parse(xml):
    """Parse C{xml} (str or bytes) into a stanza element; unprefixed names are jabber:client."""
    return parse_element(xml)


class FakeRemote:
    """The router's destination for every domain that is not local: records, delivers nothing."""

    def __init__(self, sent):
        self.received = []
        self._sent = sent

    def dispatch(self, stanza, origin=None):
        """Record C{stanza}, as federation would take it away."""
        self.received.append(stanza)
        self._sent.append(stanza)


@implementer(ISession)
class FakeSession:
    """
    A bound c2s resource of a L{FakeHost} that records what it is sent.

    Binding and closing fire SESSION_BOUND and SESSION_CLOSED as the c2s stream does; a
    session bound to the full JID of another is closed with a <conflict/> stream error.
    A closed session is unbound and records nothing more.
    """

    def __init__(self, host, jid, available=True, priority=0):
        jid = jid if isinstance(jid, JID) else JID.parse(jid)
        if jid.local is None or jid.resource is None or jid.domain != host.domain:
            raise ValueError(f"a session of {host.domain} needs a full JID there, not {jid}")
        self.host = host
        self.jid = jid
        self.available = available
        self.priority = priority
        self.presence = None
        self.state = {}
        self.sent = []
        self.closed = False
        self.closed_with = None
        replaced = host.sessions.bind(self)
        if replaced is not None:
            replaced.close(StreamError("conflict", "Replaced by new connection"))
        host.dispatcher.hooks.fire(dispatch.SESSION_BOUND, self)

    def send(self, stanza):
        """Pass C{stanza} through the host's outbound pipeline, as a real session does, and
        record what comes out here and in the host's C{sent}."""
        if self.closed:
            return
        pipeline = self.host.virtual_host.outbound
        if pipeline.stages:
            stanza = pipeline.run(self, stanza)
            if stanza is None:
                return
        self._record(stanza)

    def release(self, stanza, after):
        """Let a stanza the stage C{after} held continue (IClientSession.release)."""
        pipeline = self.host.virtual_host.outbound
        stanza = pipeline.run(self, stanza, pipeline.after(after))
        if stanza is not None and not self.closed:
            self._record(stanza)

    def _record(self, stanza):
        self.sent.append(stanza)
        self.host.sent.append(stanza)

    def close(self, error=None):
        """Record C{error} (a StreamError or None), unbind, and fire SESSION_CLOSED."""
        if self.closed:
            return
        self.closed_with = error
        session_ended(self.host.virtual_host, self)
        self.closed = True

    def __repr__(self):
        return f"<FakeSession {self.jid}>"


@implementer(ITransport)
class FakeTransport:
    """
    A c2s connection without a socket (an ITransport): C{feed(bytes)} plays what the client
    sends, C{take()} returns what the server wrote since the last take, C{drop()} loses the
    connection. STARTTLS only makes it C{secure}. Made by L{FakeHost.connect}, whose
    C{stream} is the real negotiation (jabberapp.stream.negotiation.ClientStream): stream
    features and outbound stages are tested with plain bytes.
    """

    def __init__(self, secure=False, tls=True, peer_address="192.0.2.1"):
        self.secure = secure
        self.tls = tls
        self.peer_address = peer_address
        self.written = bytearray()
        self.closed = False
        self.stream = None

    @property
    def can_start_tls(self):
        """See ITransport.can_start_tls."""
        return self.tls and not self.secure

    def write(self, data):
        """See ITransport.write: kept for take()."""
        self.written += data

    def start_tls(self):
        """See ITransport.start_tls: the connection is now secure."""
        self.secure = True

    def channel_bindings(self):
        """See ITransport.channel_bindings: none (no real TLS)."""
        return {}

    def close(self):
        """See ITransport.close."""
        self.closed = True

    def feed(self, data):
        """Bytes from the client (str is encoded as UTF-8)."""
        self.stream.data_received(data.encode() if isinstance(data, str) else data)

    def take(self):
        """What the server wrote since the last take()."""
        data = bytes(self.written)
        self.written.clear()
        return data

    def drop(self):
        """The connection is lost (without a close)."""
        self.stream.connection_lost(None)


class _DirectConfig(dict):
    """The C{config} seen through FakeHost's own IHost: says how to get option defaults."""

    def __missing__(self, key):
        raise KeyError(f"FakeHost.config has no {key!r}: install extensions with "
                       "host.install(extension), which fills in their option defaults")


@implementer(IHost)
class FakeHost:
    """
    A real VirtualHost and Router with fake edges; see the module docstring.

    C{extension_options} maps extension names to option values, as the
    [extension:NAME] sections of the configuration do; C{install()} uses them over the
    defaults. C{config} is the config seen through the FakeHost's own IHost.
    """

    def __init__(self, domain="example.org", clock=None, storage=None,
                 extension_options=None, config=None):
        if clock is None:
            clock = Clock()
        self.clock = clock
        self.reactor = MemoryReactor()  # timers go to the clock; nothing else may run
        self.storage = storage if storage is not None else MemoryStorage()
        self.extension_options = dict(extension_options or {})
        self.sent = []
        self.router = Router()
        self.remote = FakeRemote(self.sent)
        self.router.remote = self.remote
        auth = InternalAuthProvider(self.storage.accounts, defer.maybeDeferred)
        self.virtual_host = VirtualHost(domain, self.router, self.storage, auth, clock,
                                        self.reactor)
        self._direct = HostAPI(self.virtual_host, "test", _DirectConfig(config or {}))

    # -- the host under test ----------------------------------------------------------------

    domain = property(lambda self: self.virtual_host.domain)
    jid = property(lambda self: self.virtual_host.jid)
    sessions = property(lambda self: self.virtual_host.sessions)
    dispatcher = property(lambda self: self.virtual_host.dispatcher)
    settings = property(lambda self: self.virtual_host.settings)

    def install(self, extension, **options):
        """
        Install C{extension} with its option defaults, overridden by C{extension_options}
        then by C{options}; returns its IHost. Dependencies must be installed first.
        """
        known = {option.name for option in extension.options}
        given = dict(self.extension_options.get(extension.name, {}))
        given.update(options)
        unknown = sorted(set(given) - known)
        if unknown:
            raise TypeError(f"extension {extension.name!r} has no option "
                            f"{', '.join(map(repr, unknown))}")
        values = {option.name: option.default for option in extension.options}
        values.update(given)
        return self.virtual_host.install(extension, values)

    def unload(self, name):
        """Undo every registration of the installed extension C{name}."""
        self.virtual_host.unload(name)

    def receive(self, stanza, origin=None):
        """
        Hand C{stanza} (XML text or an element) to the server as a client's stream would,
        'from' as given; see the module docstring. Returns the parsed element.
        """
        if isinstance(stanza, (str, bytes)):
            stanza = parse(stanza)
        if origin is None:
            origin = self._local_sender(stanza)
        if origin is not None and self.sessions.get(origin.jid) is origin:
            # What the c2s stream does with a bound client's stanza after stamping 'from'.
            if self.dispatcher.outgoing(stanza, origin):
                return stanza
            if stanza.get("to") is None:
                if stanza.tag == st.PRESENCE:
                    presence_without_to(self.virtual_host, origin, stanza)
                    return stanza
                # RFC 6120 §10.3: handled on behalf of the sender's account.
                stanza.set("to", str(origin.jid.bare()))
            if self.dispatcher.hooks.fire(dispatch.FILTER_OUTBOUND, stanza, origin):
                return stanza
        self.router.route(stanza, origin)
        return stanza

    def connect(self, secure=True, require_encryption=True, peer_address="192.0.2.1"):
        """
        A new c2s connection to this host: a L{FakeTransport} whose C{stream} negotiates as
        a real client stream does (the core's steps, then the extensions' stream features),
        on a listener with this host's clock. C{secure}: as if STARTTLS or direct TLS were
        done.
        """
        listener = C2SFactory({self.domain: self.virtual_host}, tls_options=object(),
                              clock=self.clock, throttle=FailureThrottle(self.clock),
                              require_encryption=require_encryption)
        transport = FakeTransport(secure=secure, peer_address=peer_address)
        transport.stream = listener.open_stream(transport)
        return transport

    def session(self, jid):
        """The session bound to C{jid} (str or JID), or None."""
        return self.sessions.get(jid if isinstance(jid, JID) else JID.parse(jid))

    def add_account(self, username, password=None):
        """Create the account C{username} on this host; with C{password}, able to log in."""
        credentials = derive_all(password, _TEST_ITERATIONS) if password is not None else {}
        d = self.storage.accounts.create(self.domain, username, credentials)
        failures = []
        d.addErrback(failures.append)
        if failures:
            failures[0].raiseException()
        if not d.called:
            raise RuntimeError("add_account() needs a storage whose Deferreds fire at once")

    def _local_sender(self, stanza):
        """The bound session of a full JID of this host in 'from', binding one if needed."""
        sender = stanza.get("from")
        if sender is None:
            return None
        jid = JID.parse(sender)
        if jid.domain != self.domain or jid.local is None or jid.resource is None:
            return None
        return self.sessions.get(jid) or FakeSession(self, jid, available=False)

    # -- IHost, for code that is given a host directly ----------------------------------

    config = property(lambda self: self._direct.config)
    log = property(lambda self: self._direct.log)
    identities = property(lambda self: self._direct.identities)
    features = property(lambda self: self._direct.features)
    disco_providers = property(lambda self: self._direct.disco_providers)
    installed = property(lambda self: self._direct.installed)

    def iq_handler(self, type, namespace, name, handler, to="host"):
        """See IHost.iq_handler."""
        self._direct.iq_handler(type, namespace, name, handler, to)

    def hook(self, event, handler, priority=0):
        """See IHost.hook."""
        self._direct.hook(event, handler, priority)

    def add_feature(self, namespace):
        """See IHost.add_feature."""
        self._direct.add_feature(namespace)

    def add_identity(self, category, type, name=None):
        """See IHost.add_identity."""
        self._direct.add_identity(category, type, name)

    def add_disco_provider(self, provider):
        """See IHost.add_disco_provider."""
        self._direct.add_disco_provider(provider)

    def add_stream_feature(self, feature):
        """See IHost.add_stream_feature."""
        self._direct.add_stream_feature(feature)

    def add_outbound_stage(self, stage, priority=0):
        """See IHost.add_outbound_stage."""
        self._direct.add_outbound_stage(stage, priority)

    def add_preauth_iq_handler(self, namespace, handler):
        """See IHost.add_preauth_iq_handler."""
        self._direct.add_preauth_iq_handler(namespace, handler)

    def add_bind2_feature(self, namespace, handler):
        """See IHost.add_bind2_feature."""
        self._direct.add_bind2_feature(namespace, handler)

    def add_sasl2_feature(self, namespace, name, handler, offer=None):
        """See IHost.add_sasl2_feature."""
        self._direct.add_sasl2_feature(namespace, name, handler, offer)

    def add_sasl2_mechanism(self, name, factory):
        """See IHost.add_sasl2_mechanism."""
        self._direct.add_sasl2_mechanism(name, factory)

    def password_changed(self, bare_jid, keep=None):
        """See IHost.password_changed."""
        self._direct.password_changed(bare_jid, keep)

    def user_deleted(self, bare_jid):
        """See IHost.user_deleted."""
        self._direct.user_deleted(bare_jid)

    auth = property(lambda self: self._direct.auth)

    def send(self, stanza):
        """See IHost.send."""
        self._direct.send(stanza)

    def send_from_user(self, stanza, origin=None):
        """See IHost.send_from_user."""
        return self._direct.send_from_user(stanza, origin)

    def add_component(self, domain, handler, name=None):
        """See IHost.add_component."""
        return self._direct.add_component(domain, handler, name)

    def provide(self, name, service):
        """See IHost.provide."""
        self._direct.provide(name, service)

    def service(self, name):
        """See IHost.service."""
        return self._direct.service(name)

    def has_service(self, name):
        """See IHost.has_service."""
        return self._direct.has_service(name)

    def request(self, iq, timeout=60.0):
        """See IHost.request."""
        return self._direct.request(iq, timeout)

    def call_later(self, delay, fn, *args, **kwargs):
        """See IHost.call_later."""
        return self._direct.call_later(delay, fn, *args, **kwargs)

    def on_unload(self, fn):
        """See IHost.on_unload."""
        self._direct.on_unload(fn)


class HeldKeyValue:
    """
    An IKeyValueStore wrapper whose calls complete only when the test calls flush(), in the
    order they were made: for testing what an extension does while storage is slow (requests
    that overlap, queues that must keep order).
    """

    def __init__(self, inner):
        self.inner = inner
        self.pending = []       # (Deferred, method, args) not completed yet

    def _later(self, method, *args):
        d = defer.Deferred()
        self.pending.append((d, method, args))
        return d

    def get(self, *args):
        return self._later(self.inner.get, *args)

    def set(self, *args):
        return self._later(self.inner.set, *args)

    def keys(self, *args):
        return self._later(self.inner.keys, *args)

    def delete_user(self, *args):
        return self._later(self.inner.delete_user, *args)

    def flush(self):
        """Complete the pending calls, and those they lead to, one at a time."""
        while self.pending:
            d, method, args = self.pending.pop(0)
            method(*args).chainDeferred(d)
