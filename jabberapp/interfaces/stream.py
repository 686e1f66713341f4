"""c2s negotiation and what is under it: steps, streams, transports, SASL."""
from zope.interface import Attribute, Interface

__all__ = [
    "IStreamFeature",
    "IClientStream",
    "ITransport",
    "IFramedTransport",
    "ISASLMechanism",
    "IAuthProvider",
]


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
