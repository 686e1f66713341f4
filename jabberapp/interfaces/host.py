"""Extensions and the host they register through."""
from zope.interface import Attribute, Interface

__all__ = ["IExtension", "IHost", "IDiscoProvider"]


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
        delivered to that session, never to a handler. The handler gets the IQ element and
        returns a payload element, None (empty result), or a Deferred/coroutine of either; it raises
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
