"""
The c2s stream (RFC 6120): negotiation as a sans-I/O state machine of IStreamFeature steps,
then the stanzas of a bound session.

Theory of operation
-------------------
A ClientStream sits on an ITransport (TCP, direct TLS; later WebSocket, BOSH) that feeds it
bytes (data_received) and writes what it sends; it never sees a socket, so a test drives it
with plain bytes. It moves through four stages, each ending in a stream restart or a bind:

  plain ──STARTTLS──▶ secure ──SASL success──▶ authenticated ──bind──▶ bound (a Session)

(direct TLS, XEP-0368, starts at 'secure'.) The stage is three facts the steps read:
C{secure}, C{username} (authenticated) and C{session} (bound).

The steps are the core's -- StartTLS, SASLAuth, Bind, LegacySession -- followed by those
extensions add through IHost.add_stream_feature. Each new stream header is answered with
<stream:features/>: every step's advertise() for the current stage (extension steps only
once encryption is settled). A nonza goes to the step owning its namespace, which answers,
moves the stream on (restart, authenticated, bind, adopt) or raises a StreamError; an
element nobody owns is <unsupported-stanza-type/>.

Until the session is bound a stanza is a <not-authorized/> stream error -- except, once
authenticated, an IQ whose payload namespace a core IQ step owns (bind, legacy session),
and, before authentication on a stream that meets require_encryption, an IQ get/set whose
payload namespace an extension owns through IHost.add_preauth_iq_handler (in-band
registration): it is answered on the stream, which waits for the answer.

Elements are handled strictly in order (jabberapp.stream.xmlstream): a step returning a
Deferred (SASL, a throttled failure, an answer from storage) holds the rest until it fires.
STARTTLS and SASL success restart the stream: everything pipelined before is dropped.

Binding creates a Session (jabberapp.stream.session) in the host's registry and attaches this
stream to it; a resumption attaches it to an existing one instead (adopt). From then on every
stanza goes to the session's intake (jabberapp.stream.intake), and what the session sends is
written here. When the connection ends, the session hears of it (transport_lost): a closed
stream ends it, a dropped connection only detaches it unless no extension keeps it.
"""
import secrets

from lxml import etree
from zope.interface import implementer

from jabberapp import dispatch, sasl, stanza as st
from jabberapp.errors import StreamError
from jabberapp.interfaces import IClientStream
from jabberapp.jid import InvalidJID, JID, prep_resource
from jabberapp.logging import logger
from jabberapp.stream.intake import client_stanza
from jabberapp.stream.session import Session
from jabberapp.stream.xmlstream import XMLStream, addressed_domain
from jabberapp.xml.ns import NS_CLIENT, NS_STREAMS

log = logger(__name__)

FEATURES = f"{{{NS_STREAMS}}}features"
STANZA_TAGS = st.STANZA_TAGS


class CoreSteps:
    """
    The core's IStreamFeature steps of a listener (C{steps}, in advertisement order) and
    the lookups every stream makes in them, built once: the step owning a nonza namespace,
    and (C{iq_steps}) the step negotiating with IQs whose payload is in a namespace before
    binding.
    """

    def __init__(self, steps, iq_steps):
        self.steps = tuple(steps)
        self.owners = {step.namespace: step for step in self.steps}
        self.iq_steps = dict(iq_steps)


@implementer(IClientStream)
class ClientStream(XMLStream):
    """One c2s stream over C{transport}; see the module docstring.

    C{listener} holds the listener's settings (IClientStream.listener) and C{hosts}
    (domain -> VirtualHost); C{core} is the CoreSteps it negotiates with first."""

    def __init__(self, transport, listener, core):
        super().__init__(max_stanza_size=listener.max_stanza_size)
        self.transport = transport
        self.listener = listener
        self.write_bytes = transport.write     # straight to the transport: the hot path
        self.host = None           # the VirtualHost named in the stream header
        self.username = None       # set by authentication
        self.session = None        # the Session once bound (or adopted)
        self.state = {}            # per-stream state of the steps, keyed by namespace
        self._core = core
        self._timeout = listener.clock.callLater(listener.negotiation_timeout,
                                                 self._negotiation_timed_out)

    secure = property(lambda self: self.transport.secure,
                      doc="True once the transport is encrypted.")
    peer_address = property(lambda self: self.transport.peer_address,
                            doc="The client's address.")

    @property
    def jid(self):
        """The bound full JID, or None."""
        session = self.session
        return None if session is None else session.jid

    def __repr__(self):
        return f"<ClientStream {self.jid or self.peer_address}>"

    # -- the connection --------------------------------------------------------------------

    def lose_connection(self):
        self.transport.close()

    def connection_lost(self, reason=None):
        """The transport's connection is gone (whatever the reason)."""
        closed = self.closed     # closed by either side before the connection went
        self.stream_lost()
        self._stop_timer()
        # A step's per-stream state with a connection_lost() hears it, so work it has pending
        # (a throttled SASL check waiting for its turn) is given up at once.
        for state in tuple(self.state.values()):
            lost = getattr(state, "connection_lost", None)
            if lost is not None:
                lost()
        session = self.session
        if session is not None:
            session.transport_lost(self, closed)

    def _negotiation_timed_out(self):
        self._timeout = None
        if self.session is None:
            self.close(StreamError("connection-timeout"))

    def _stop_timer(self):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None    # a cancelled call kept here would live as long as the stream

    # -- stream header and features -------------------------------------------------------

    def default_header(self):
        attrs = {"version": "1.0", "id": self.new_stream_id()}
        if self.host is not None:
            attrs["from"] = self.host.domain
        return attrs

    def stream_opened(self, event):
        if event.ns != NS_CLIENT:
            raise StreamError("invalid-namespace")
        host = self.listener.hosts.get(addressed_domain(event.attrs.get("to")))
        if host is None or (self.host is not None and host is not self.host):
            raise StreamError("host-unknown")
        self.host = host
        attrs = {"from": host.domain, "id": self.new_stream_id(), "version": "1.0",
                 "xml:lang": "en"}
        if event.attrs.get("from"):
            attrs["to"] = event.attrs["from"]
        self.send_header(attrs)
        if not _version_supported(event.attrs.get("version")):
            raise StreamError("unsupported-version")
        self.send(self.features())

    def features(self):
        """The <stream:features/> element for the current stage."""
        features = etree.Element(FEATURES, nsmap={"stream": NS_STREAMS})
        for step in self._steps_now():
            offered = step.advertise(self)
            if offered is None:
                continue
            if isinstance(offered, (list, tuple)):
                features.extend(offered)
            else:
                features.append(offered)
        return features

    def _steps_now(self):
        """The core steps, then the host's own once encryption is settled."""
        steps = self._core.steps
        if self.listener.require_encryption and not self.secure:
            return steps
        return (*steps, *self.host.stream_features)

    # -- elements ------------------------------------------------------------------------

    def element_received(self, el):
        tag = el.tag
        if tag in STANZA_TAGS:
            session = self.session
            if session is not None:
                client_stanza(session, el)
                session.received += 1
                return None
            return self._stanza_unbound(el)
        step = self._owner(etree.QName(el).namespace)
        if step is None:
            raise StreamError("unsupported-stanza-type")
        return step.handle(self, el)

    def _owner(self, namespace):
        step = self._core.owners.get(namespace)
        if step is not None:
            return step
        if self.listener.require_encryption and not self.secure:
            return None
        for step in self.host.stream_features:
            if step.namespace == namespace:
                return step
        return None

    def _stanza_unbound(self, el):
        if el.tag == st.IQ:
            if self.username is not None:
                step = self._core.iq_steps.get(_payload_namespace(el))
                if step is not None:
                    return step.handle(self, el)
            else:
                handler = self._preauth_iq_handler(el)
                if handler is not None:
                    return self._preauth_iq(el, handler)
        raise StreamError("not-authorized")

    # -- IQs before authentication (XEP-0077 in-band registration) -----------------------

    def _preauth_iq_handler(self, iq):
        """The extension handler owning this IQ get/set sent before authentication, or None
        (then the IQ is a stanza before authentication like any other)."""
        if self.listener.require_encryption and not self.secure:
            return None
        if iq.get("type") not in ("get", "set") or not iq.get("id") or len(iq) != 1:
            return None
        to = iq.get("to")
        if to is not None:
            try:
                if JID.parse(to) != self.host.jid:
                    return None
            except InvalidJID:
                return None
        return self.host.preauth_iq_handlers.get(etree.QName(iq[0]).namespace)

    def _preauth_iq(self, iq, handler):
        # Nobody is authenticated yet: whatever 'from' the client claims means nothing.
        iq.attrib.pop("from", None)
        # The stream waits for the answer: one request at a time, in order.
        return self.host.dispatcher.run_iq_handler(lambda iq: handler(iq, self), iq,
                                                   send=self.send)

    # -- what steps do with the stream (IClientStream) -------------------------------------

    def restart(self):
        """See IClientStream.restart."""
        self.discard_pending()

    def authenticated(self, username):
        """See IClientStream.authenticated."""
        self.username = username

    def sasl_context(self):
        """See IClientStream.sasl_context."""
        return sasl.SASLContext(host=self.host.domain, auth=self.host.auth,
                                secure=self.secure,
                                channel_bindings=self.transport.channel_bindings(),
                                allowed=self.listener.mechanisms)

    def bind(self, resource=None, reply=None):
        """See IClientStream.bind."""
        if self.username is None or self.session is not None:
            raise RuntimeError("bind() needs an authenticated stream with no session")
        resource = secrets.token_hex(8) if resource is None else prep_resource(resource)
        host = self.host
        session = Session(host, JID.make(self.username, host.domain, resource))
        replaced = host.sessions.bind(session)
        if replaced is not None:
            # RFC 6120 §7.7.2.2: the newer session wins; the old one learns why.
            replaced.close(StreamError("conflict", "Replaced by new connection"))
        self.adopt(session)
        if reply is not None:
            self.send(reply(session))
        log.info("bound {jid}", jid=session.jid)
        host.dispatcher.hooks.fire(dispatch.SESSION_BOUND, session)
        return session

    def adopt(self, session):
        """See IClientStream.adopt."""
        if self.session is not None or session.host is not self.host or session.ended:
            raise RuntimeError("adopt() takes a live session of the stream's host, once")
        self._stop_timer()
        self.state.clear()        # negotiation is over; the session keeps what stays
        session.attach(self)


def _payload_namespace(iq):
    if len(iq) != 1:
        return None
    return etree.QName(iq[0]).namespace


def _version_supported(version):
    """RFC 6120 §4.7.5: major version 1 or higher is answered with 1.0."""
    if not version:
        return False
    major, _, _ = version.partition(".")
    return major.isdigit() and int(major) >= 1
