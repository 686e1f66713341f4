"""
The core's contracts: every zope interface that plugin authors and the core code against.

Nothing here imports the rest of jabberapp, so every module may import this one.
"""
from zope.interface import Attribute, Interface


class IExtension(Interface):
    """A discoverable server feature (a XEP or a family of them), installed per virtual host."""

    name = Attribute("Unique name, as listed in the [server] extensions option.")
    depends = Attribute("Tuple of extension names that must be installed before this one.")
    options = Attribute("Tuple of jabberapp.config.Option: the [extension:<name>] schema.")
    specs = Attribute(
        "Tuple of jabberapp.specs.Spec: the RFCs and XEPs this extension implements, with "
        "the version implemented; the README's list of supported specifications is "
        "generated from them.")

    def install(host):
        """
        Register this extension's handlers, hooks and disco declarations on C{host}
        (an L{IHost}). Everything registered through C{host} is undone on unload.
        """


class IHost(Interface):
    """What an extension is given: one virtual host, whose registrations are recorded."""

    domain = Attribute("The host's domain, a str such as 'example.org'.")
    jid = Attribute("The host's own JID (jabberapp.jid.JID).")
    clock = Attribute("An IReactorTime: use it for every timer and timestamp.")
    reactor = Attribute("The reactor, for threads and outbound connections.")
    config = Attribute("Mapping of this extension's validated options (name -> value).")
    storage = Attribute("The process's storage backend (IStorage).")
    sessions = Attribute("The host's ISessionRegistry: bound c2s sessions.")
    settings = Attribute("The process's ServerConfig (read-only), or None in unit tests.")
    log = Attribute("A twisted.logger.Logger for this extension.")
    identities = Attribute("List of the host JID's disco identities (category, type, name).")
    features = Attribute("List of the host JID's disco features (namespaces).")
    disco_providers = Attribute("List of registered IDiscoProvider objects.")
    installed = Attribute("Names of the extensions installed on this host, in order.")

    def iq_handler(type, namespace, name, handler, to="host"):
        """
        Own IQs of C{type} ('get' or 'set') whose single child is {namespace}name.

        C{to} is 'host' (addressed to the server JID), 'user' (to a user's bare JID on this
        host, or without 'to' from the user's own session) or 'any'. IQs to full JIDs are
        delivered to that session, never to a handler. The handler gets the IQ element and returns a payload
        element, None (empty result), or a Deferred/coroutine of either; it raises
        jabberapp.errors.StanzaError for an error reply. A second owner of the same
        key is an error raised at install time.
        """

    def hook(event, handler, priority=0):
        """
        Add C{handler(stanza)} to the chain for C{event} (a constant from
        jabberapp.dispatch). Higher priority runs first; returning
        jabberapp.dispatch.HANDLED stops the chain.
        """

    def add_feature(namespace):
        """Declare a disco#info feature of the host JID."""

    def add_identity(category, type, name=None):
        """Declare a disco#info identity of the host JID."""

    def add_disco_provider(provider):
        """Register an IDiscoProvider for nodes or JIDs this extension owns."""

    def add_stream_feature(feature):
        """
        Add an IStreamFeature step to the negotiation of this host's c2s streams: it is
        asked for its advertisement in every <stream:features/> and handed the nonzas in its
        namespace (see IStreamFeature for when). Steps are asked in registration order,
        after the core's own (STARTTLS, SASL, resource binding, legacy session).
        """

    def add_outbound_stage(stage, priority=0):
        """
        Put C{stage} into the outbound pipeline of this host's c2s sessions: every stanza
        sent to a session (ISession.send: deliveries, replies, presence broadcasts, errors)
        passes the stages, higher priority first, before it reaches the session's transport.
        It is the mirror of the inbound hooks.

        C{stage(session, stanza)} returns the stanza to pass on -- the same element, an
        altered one or a replacement -- or None to take it out of the pipeline: dropped,
        or held by the stage, which later lets it continue with
        C{session.release(stanza, after=stage)} (the stages after this one, then the
        transport). Stream management counts and queues near the wire (a low priority),
        client state indication filters and holds before it (a higher priority), push
        notices stanzas for a session without a transport. A stage must not block and must
        not call the transport. An exception in a stage is logged and the stanza passes on
        unchanged. Removed on unload.
        """

    def add_preauth_iq_handler(namespace, handler):
        """
        Own the IQ gets and sets a client sends BEFORE authenticating whose single child is
        in C{namespace} (XEP-0077 in-band registration). Only on a c2s stream that meets
        [c2s] require_encryption; without an owner such an IQ ends the stream with
        <not-authorized/>, like any other stanza before authentication. The handler is
        called as C{handler(iq, stream)}: the IQ (its 'from' removed: nobody is
        authenticated) and the IClientStream, whose C{peer_address} and C{secure} it may
        read. It
        answers as an iq_handler does (payload, None, StanzaError, Deferred or coroutine);
        the answer goes back on that stream, which handles nothing else meanwhile. One
        owner per namespace.
        """

    def add_bind2_feature(namespace, handler):
        """
        Offer C{namespace} inline in XEP-0386 Bind2 (one owner; removed on unload): each
        child in it of a client's <bind/> goes to C{handler(stream, element)} once bound
        (C{stream.session} set, no stanza sent yet); what it returns joins <bound/>.
        """

    def add_sasl2_feature(namespace, name, handler, offer=None):
        """
        Offer <name xmlns=namespace/> (or what C{offer(stream)} returns) inline in XEP-0388
        SASL2 (one owner; removed on unload): once authenticated, each child in it of
        <authenticate/> goes to C{handler(stream, element, answer)}, which calls
        C{answer(element)} at most once for <success/> (adopting a session there ends the
        negotiation) and may return a Deferred.
        """

    def add_sasl2_mechanism(name, factory):
        """
        A SASL mechanism offered only through SASL2 (XEP-0484 FAST): an <authenticate/>
        naming it gets C{factory(stream, context, authenticate)}, an ISASLMechanism.
        """

    def password_changed(bare_jid, keep=None):
        """
        The password of account C{bare_jid} changed: every session of it but C{keep} (the
        one that changed it) ends with a <reset/> stream error, as Prosody does; a
        hibernated one too, so no stream authenticated by the old password lives on. Then
        the PASSWORD_CHANGED hooks fire (FAST revokes the account's tokens).
        """

    def user_deleted(bare_jid):
        """
        Announce that the account C{bare_jid} (a JID) has been deleted: fires the
        USER_DELETED hooks, so extensions drop their caches and per-user state. The caller
        first deletes the data (IStorage.delete_user), then closes the account's sessions
        (whose ends extensions still see with their caches, e.g. to tell contacts), then
        calls this.
        """

    auth = Attribute("The host's IAuthProvider (check_password, get_scram, make_credentials).")

    def send(stanza):
        """Route C{stanza} (an lxml element with 'to' and 'from' set) to its destination."""

    def send_from_user(stanza, origin=None):
        """
        Route a stanza the server generates on behalf of a local user (its 'from' is that
        user), after the FILTER_OUTBOUND hooks; False when a filter (blocking) dropped it.
        Presence broadcasts, probe answers and the like go this way, never to a session
        directly, so every filter applies.
        """

    def add_component(domain, handler, name=None):
        """
        Serve the component domain C{domain} (e.g. 'conference.example.org') in-process, as
        an external XEP-0114 component would: from now on the router calls
        C{handler(stanza)} for every stanza addressed to the domain or to any JID in it
        (rooms, nodes, their occupants), and the domain is listed in this host's
        disco#items (with C{name}). The handler answers through C{send()}, with 'from' in
        the domain; it may return a Deferred or be a coroutine function, and whatever it
        raises is logged and answered <internal-server-error/>. The handler also answers
        disco#info queries to its domain. Returns the domain's JID. ValueError when
        C{domain} is not a valid domain or is already routed (a host, another component).
        The route and the disco item are removed on unload.
        """

    def provide(name, service):
        """Offer an object to other extensions under C{name}; withdrawn on unload."""

    def service(name):
        """The object another extension provides as C{name}; KeyError when none does."""

    def has_service(name):
        """True when some installed extension provides C{name}."""

    def request(iq, timeout=60.0):
        """
        Send an IQ get/set (with 'id', 'to' and 'from' set) from the host and return a
        Deferred firing with the result stanza; it fails with StanzaError for an error reply
        or twisted.internet.defer.TimeoutError after C{timeout} seconds.
        """

    def call_later(delay, fn, *args, **kwargs):
        """Schedule C{fn}; the delayed call is cancelled when the extension unloads."""

    def on_unload(fn):
        """Call C{fn()} when the extension is unloaded."""


class IDiscoProvider(Interface):
    """Dynamic disco answers for JIDs or nodes an extension owns."""

    def info(requester, target, node):
        """
        Return (identities, features) for C{target}/C{node}, or None when not owned.
        identities is a list of (category, type, name); features a list of namespaces.
        May return a Deferred.
        """

    def items(requester, target, node):
        """Return a list of (jid, node, name) items, or None when not owned. May be a Deferred."""


class ISession(Interface):
    """An origin and destination of stanzas: a c2s resource, an s2s link, a component."""

    jid = Attribute("The JID this session speaks for (full JID for a bound c2s session).")
    priority = Attribute("Presence priority of a c2s session (int), 0 by default.")
    available = Attribute("True once the session has sent available broadcast presence.")
    presence = Attribute("The session's last available broadcast presence element, or None.")
    state = Attribute("Dict of per-extension state for this session, keyed by extension name.")

    def send(stanza):
        """Queue C{stanza} (an lxml element) for writing to the peer."""

    def close(error=None):
        """Close the stream, first sending C{error} (a jabberapp.errors.StreamError)."""


class IClientSession(ISession):
    """
    A bound c2s resource (jabberapp.stream.session.Session), apart from the connection it
    arrived on.

    Negotiation on a transport produces it; from then on the transport's stream is
    *attached* to it. Stanzas to the session pass the host's outbound pipeline
    (IHost.add_outbound_stage) and then go to the attached stream, if any. When the
    connection drops without a close, the session is *detached* and SESSION_DETACHED fires:
    a hook returning HANDLED keeps it bound (stream management, waiting for a resumption
    that attaches a new stream); otherwise the session ends (unavailable presence,
    unbound, SESSION_CLOSED). close() always ends it.
    """

    host = Attribute("The VirtualHost the session is bound on.")
    stream = Attribute("The attached IClientStream, or None while detached.")
    secure = Attribute("True when the stream it was last attached to is encrypted.")
    ended = Attribute("True once the session is over (unbound, SESSION_CLOSED fired).")

    def send(stanza):
        """
        Send C{stanza} to the client: through the outbound pipeline, then to the attached
        stream. Nothing is written while detached (a pipeline stage may have queued it);
        once the session has ended, nothing passes the pipeline either.
        """

    def release(stanza, after):
        """
        Let a stanza that the pipeline stage C{after} held continue: through the stages
        after it, then to the stream.
        """

    def write(element):
        """
        Write C{element} to the attached stream, past the pipeline (a stage's own
        nonzas such as stream management's <r/>, or queued stanzas re-sent on
        resumption); False when detached.
        """

    def attach(stream):
        """
        Make C{stream} (an IClientStream) the session's stream: what is sent from now on
        goes there. A stream attached before is detached first and closed when it is still
        open; the JID, presence, state and registry entry stay.
        """

    def detach():
        """
        Forget the attached stream (returned, or None) without ending the session: the
        session stays bound, stanzas sent to it pass the pipeline and are written nowhere.
        """

    handled = Attribute("Stanzas of its client handled so far (XEP-0198's h): all it received "
                        "up to the oldest one whose write to storage is not over; never falls.")

    def handled_when(number, d):
        """Stanza C{number} is handled only once C{d} (its write) fires; C{d} is returned.
        SESSION_HANDLED fires when C{handled} moves on (see jabberapp.stream.intake)."""

    def drop():
        """Take the connection for dead: detach as if it dropped (SESSION_DETACHED may keep
        the session for a resumption, else it ends), close it writing nothing more."""


class ISessionRegistry(Interface):
    """
    The bound c2s sessions of one host, looked up by bare JID and resource: the only way the
    dispatcher, the presence rules and extensions find a local recipient. Whatever it
    returns is an ISession whose send() delivers; a cluster registry may return proxies for
    sessions held by other nodes (with their jid, priority and available), so callers never
    learn where a session lives.
    """

    def bind(session):
        """Register a bound session; returns the session it replaced (or None)."""

    def unbind(session):
        """Remove a session if it is the one registered for its full JID."""

    def get(full_jid):
        """The session bound to C{full_jid}, or None."""

    def resources(bare_jid):
        """A list of the sessions bound for C{bare_jid} (possibly empty)."""

    def available(bare_jid):
        """
        A list of the sessions of C{bare_jid} that have sent available presence (a new
        list the caller may change).
        """

    def __iter__():
        """Every bound session this process holds (a cluster registry does not walk other
        nodes': what iterates -- keepalive pings, shutdown -- acts on local sessions)."""

    def __len__():
        """The number of bound sessions this process holds."""


class IRouter(Interface):
    """Delivers a stanza to a local host, a component or a remote domain."""

    def route(stanza, origin=None):
        """Deliver C{stanza} by its 'to' domain; C{origin} is the sending ISession, if
        any. Local domains go to their VirtualHost, whose dispatcher delivers to sessions
        only through the host's ISessionRegistry and ISession.send. Never raises for an
        unknown destination: the sender gets the stanza error."""


class IStreamFeature(Interface):
    """
    One step of c2s stream negotiation (RFC 6120 §4.3): STARTTLS, SASL, resource binding
    and the legacy session are the core's own steps; extensions add theirs with
    IHost.add_stream_feature (in-band registration, stream management, SASL2/Bind2, CSI).

    A step is one object per host, shared by every stream; what it must remember per stream
    goes in C{stream.state} (until bound) or C{session.state}. The negotiation is sans-I/O
    (jabberapp.stream.negotiation): a step sees an IClientStream, never a socket, so it can
    be tested with plain bytes.

    The stage a stream is in is read from it: C{stream.secure} (TLS is up),
    C{stream.username} (authenticated, else None) and C{stream.session} (a resource is
    bound, else None). A step checks the stage it belongs to, in advertise() and in
    handle(), and treats an element out of place as a stream error (raise StreamError).
    """

    namespace = Attribute(
        "The namespace of the step's nonzas: top-level elements in it that are not stanzas "
        "are handed to handle().")

    def advertise(stream):
        """
        What to offer in the <stream:features/> the stream sends now: an element, a list of
        elements, or None for nothing. Called at every stream (re)start -- before
        authentication (only once the stream meets [c2s] require_encryption) and after
        it -- so a step offers itself at its stage only.
        """

    def handle(stream, element):
        """
        A top-level element in C{namespace} that is not a stanza arrived on C{stream}, at
        any stage once the stream meets [c2s] require_encryption (before that, such an
        element ends the stream with <unsupported-stanza-type/>). Answer with
        C{stream.send}, move the stream on with its methods (authenticated, restart, bind,
        adopt), or raise jabberapp.errors.StreamError to end it. Returning a Deferred
        holds every later element of the stream until it fires, so a pipelining client
        cannot overtake the negotiation.
        """


class IClientStream(Interface):
    """
    One c2s XML stream on one transport, as IStreamFeature steps see it: the negotiation
    state machine (jabberapp.stream.negotiation.ClientStream). Until a resource is bound it
    negotiates; then it hands stanzas to its session and writes what the session sends.
    """

    host = Attribute("The VirtualHost named in the stream header (None before it).")
    secure = Attribute("True once the transport is encrypted (STARTTLS or direct TLS).")
    username = Attribute("The authenticated localpart, or None before authentication.")
    session = Attribute("The IClientSession this stream is attached to, or None.")
    jid = Attribute("The bound full JID (the session's), or None.")
    peer_address = Attribute("The client's address as a string (for logs and limits).")
    transport = Attribute("The ITransport under the stream.")
    listener = Attribute(
        "The c2s listener's settings: require_encryption, clock, throttle (the failed-"
        "login throttle), mechanisms (SASL names allowed, None for all), "
        "negotiation_timeout, tls_options.")
    state = Attribute("Dict of per-stream negotiation state of the steps, keyed by namespace.")

    def send(element):
        """Write a nonza or a negotiation answer on this stream (no outbound pipeline)."""

    def close(error=None):
        """End the stream, first sending C{error} (a StreamError); a bound session ends."""

    def restart():
        """
        The peer must send a new stream header (after STARTTLS and SASL success): drop
        every element already received and not yet handled and reset the parser, so
        nothing sent before the restart is trusted (RFC 6120 §5.3.4, §6.4.6).
        """

    def authenticated(username):
        """Record that the client authenticated as C{username} (a prepared localpart)."""

    def sasl_context():
        """The jabberapp.sasl.SASLContext for a SASL exchange on this stream now."""

    def bind(resource=None, reply=None):
        """
        Bind a resource for the authenticated user (a random one when None) and return the
        new IClientSession attached to this stream. A session bound to the same full JID
        is closed with <conflict/> (the newer wins, RFC 6120 §7.7.2.2). C{reply(session)}
        returns the element to send before SESSION_BOUND fires (the bind result). Raises
        InvalidJID for a resource that fails preparation, RuntimeError when the stream is
        not authenticated or already has a session.
        """

    def adopt(session):
        """
        Attach this stream to an existing, bound C{session} instead of binding a new one
        (stream resumption): the negotiation ends and stanzas flow to and from C{session}.
        The step checks that the session belongs to the authenticated user; RuntimeError
        when this stream has a session already, or C{session} is of another host or ended.
        """


class ITransport(Interface):
    """
    A connection under a c2s stream: bytes in, bytes out, nothing else. TCP and direct
    TLS are jabberapp.transports.tcp; WebSocket and BOSH adapters come later. It hands
    what it reads to its stream's data_received(data) and reports its end with the
    stream's connection_lost(reason).
    """

    peer_address = Attribute("The peer's address as a string.")
    secure = Attribute("True when the connection is encrypted.")
    can_start_tls = Attribute("True when STARTTLS may be offered (plain and TLS configured).")

    def write(data):
        """Send bytes to the peer, in order; never blocks."""

    def start_tls():
        """Start TLS as the server now (after <proceed/> was written)."""

    def channel_bindings():
        """
        The TLS channel-binding data, a dict type -> bytes ('tls-exporter',
        'tls-server-end-point'); empty when not encrypted or before the handshake.
        """

    def close():
        """Close the connection once what was written has been sent."""


class IFramedTransport(ITransport):
    """
    A transport whose peer speaks in whole elements rather than one XML document: WebSocket
    (RFC 7395) and BOSH (XEP-0124, XEP-0206). Its stream is a
    jabberapp.stream.framed.FramedClientStream, fed with open_received(attrs),
    frame_received(data) or elements_received(data), and close_received(); STARTTLS is
    never offered (can_start_tls is False: TLS belongs to the HTTP layer, which sets
    C{secure}). Besides write(), the stream calls:
    """

    def open(attrs):
        """
        Answer the client's stream opening with the server's stream header attributes
        (a dict: 'from', 'id', 'version', 'xml:lang', optionally 'to'). RFC 7395 writes
        them as <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' .../>
        (jabberapp.stream.framed.open_frame); BOSH as the attributes of its session
        creation or restart response.
        """

    def write(data):
        """
        Send one complete element, serialised standalone with its namespaces declared
        (<message xmlns="jabber:client">, <stream:features xmlns:stream="...">); each call
        is exactly one element (one WebSocket message).
        """

    def close_stream(error=None):
        """
        The server ends the stream; C{error} is the serialised <stream:error/> element
        (bytes) or None. RFC 7395: the error, then <close/>; BOSH: a terminate body, with
        condition remote-stream-error carrying the error. close() follows.
        """


class ISASLMechanism(Interface):
    """
    One server-side SASL exchange (a new instance per attempt).

    start() and step() return a Deferred that fires with a jabberapp.sasl.Challenge or a
    jabberapp.sasl.Success, or fails with jabberapp.sasl.SASLFailure.
    """

    name = Attribute("The mechanism name, e.g. 'SCRAM-SHA-256-PLUS'.")

    def start(initial):
        """Begin with the client's initial response (bytes, or None when absent)."""

    def step(response):
        """Continue with the client's response (bytes)."""


class IAuthProvider(Interface):
    """Account authority for a host: checks passwords or supplies SCRAM material."""

    def get_scram(host, username, hash_name):
        """Deferred: jabberapp.sasl.scram.ScramCredentials for the user, or None."""

    def check_password(host, username, password):
        """Deferred: True when C{password} is the user's password."""


class IStorage(Interface):
    """A storage backend opened for the process: accounts plus named generic stores."""

    accounts = Attribute("The IAccountStore.")

    def keyvalue(name):
        """The IKeyValueStore called C{name} (e.g. 'roster', 'vcard')."""

    def archive(name):
        """The IArchiveStore called C{name} (e.g. 'offline')."""

    def message_archive():
        """The IMessageArchive: the XEP-0313 archives of the accounts."""

    def delete_user(host, username):
        """
        Deferred: delete the account (host, username) with its credentials and every
        key-value document and archive item of that user, in every store, atomically
        (all or nothing). Fires with True when the account existed, False when there was
        none (its data, if any, is deleted all the same).
        """

    def close():
        """Deferred: release connections and threads."""


class IBulkImport(Interface):
    """
    An IStorage that can write a large import atomically (jabberappctl import). Optional:
    a backend without it still serves, it cannot be imported into.
    """

    def bulk_import(records):
        """
        Deferred: apply every record of the iterable C{records} -- AccountRecord,
        DocumentRecord and ArchiveRecord from jabberapp.storage -- in one transaction: all
        of them, or none when anything fails. Fires with the number of records applied.

        It fails, writing nothing, with AccountExists when an account exists already or
        is created twice, with TypeError or ValueError for a malformed record (a
        DocumentRecord's value must not be None), with whatever the iterable itself
        raises, or with the database's error.

        The iterable is consumed in the backend's own thread (it may be a generator that
        parses a file, but must not touch the reactor) and need not fit in memory: a
        database backend writes it in batches. ArchiveRecords get ids in the order given.
        A database backend holds its write lock for the whole call, so run it while the
        server is stopped, or expect the server's writes to wait.
        """


class IStorageBackend(Interface):
    """A plugin that opens an IStorage from the [storage] config section."""

    name = Attribute("Backend name as written in [storage] backend, e.g. 'sqlite'.")

    def open(config, reactor):
        """Deferred: an IStorage, with its schema migrated to the current version."""


class IAccountStore(Interface):
    """User accounts, keyed by (host, username); credentials as SCRAM material only."""

    def create(host, username, credentials):
        """
        Deferred: create the account with C{credentials}, a dict hash_name ->
        ScramCredentials. Fails with jabberapp.storage.AccountExists if it exists.
        """

    def get_credentials(host, username, hash_name):
        """Deferred: ScramCredentials for that hash, or None (no such user or hash)."""

    def set_credentials(host, username, credentials):
        """Deferred: replace all credentials. Fails with NoSuchAccount."""

    def delete(host, username):
        """Deferred: remove the account. Fails with NoSuchAccount."""

    def exists(host, username):
        """Deferred: bool."""

    def list_users(host):
        """Deferred: sorted list of usernames of C{host}."""


class IKeyValueStore(Interface):
    """Per-user JSON-serialisable documents keyed by (host, username, key)."""

    def get(host, username, key):
        """Deferred: the stored value, or None."""

    def set(host, username, key, value):
        """Deferred: store C{value} (None deletes)."""

    def keys(host, username):
        """Deferred: sorted list of keys stored for the user."""

    def delete_user(host, username):
        """Deferred: remove every key of the user."""


class IArchiveStore(Interface):
    """Append-only, time-ordered items per (host, username)."""

    def append(host, username, item, when, with_jid=None):
        """Deferred: store C{item} (str) at C{when} (POSIX seconds); fires with its id (str)."""

    def query(host, username, start=None, end=None, with_jid=None,
              after=None, before=None, limit=None):
        """Deferred: list of (id, when, with_jid, item) in time order."""

    def count(host, username):
        """Deferred: number of items stored for the user."""

    def delete(host, username, ids=None):
        """Deferred: delete the given ids, or every item of the user when None."""


class IMessageArchive(Interface):
    """
    The message archives of accounts (XEP-0313), one per (host, username).

    Values are those of jabberapp.storage.messages: an L{ArchivedMessage} is one stanza
    under an id the caller chose (unpredictable, unique in the account's archive); an
    archive keeps them in the order they were appended (XEP-0313 §3.1), with a full-text
    index of their text. L{ArchiveQuery} selects a page, L{ArchivePage} is the answer.
    Writes come in batches, each one transaction, so archiving does not cost a commit per
    message. The contract tests (tests/storage/test_archive.py) pin down the rules.
    """

    def append(messages, keep=None):
        """
        Deferred: store the ArchivedMessages of the iterable C{messages}, in order, in one
        transaction, each after the ones its account's archive holds. A message for an
        account that does not exist, or whose id its archive already holds, is skipped.
        With C{keep} (an int), each account written to keeps only its C{keep} newest
        messages (the oldest go first, so the archive has no holes). Fires with the number
        of messages stored.
        """

    def query(host, username, query):
        """
        Deferred: the L{ArchivePage} of the account's archive that C{query} (an
        ArchiveQuery) selects. Fails with jabberapp.storage.ItemNotFound when an id the
        query names (after_id, before_id, ids, RSM after/before) is not in the archive.
        """

    def bounds(host, username):
        """Deferred: ((id, when) of the first message, (id, when) of the last), or None
        for an empty archive."""

    def expire(host, before):
        """Deferred: delete every message of C{host}'s accounts archived before C{before}
        (POSIX seconds); fires with the number deleted."""

    def purge(host, username):
        """Deferred: delete the account's whole archive and its preferences."""

    def all_prefs(host):
        """Deferred: dict username -> preferences (a JSON-able value) of C{host}'s
        accounts that have some stored."""

    def set_prefs(host, username, prefs):
        """Deferred: store the account's preferences (JSON-able); None deletes them."""
