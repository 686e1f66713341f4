"""
Client-to-server streams (RFC 6120): STARTTLS, SASL, resource binding, then stanzas.

Theory of operation
-------------------
A connection moves through four stages, each ending in a stream restart or a bind:

  plain ──STARTTLS──▶ secure ──SASL success──▶ authenticated ──bind──▶ bound (an ISession)

(direct TLS, XEP-0368, starts at 'secure'.) Each new stream header is answered with the
<stream:features/> of the current stage, extensions' IStreamFeatures included (before
authentication only once encryption is settled). Until the session is bound, only
negotiation elements are accepted; a stanza is a <not-authorized/> stream error -- except,
before authentication on a stream that meets require_encryption, an IQ get/set whose payload
namespace an extension owns through IHost.add_preauth_iq_handler (in-band registration):
it is answered on the stream, which waits for the answer. Once bound, every stanza
gets its 'from' stamped with the full JID (a different 'from' is <invalid-from/>), its 'to'
checked and normalised, then passes the host's PRE_* hooks and goes to the router. Presence
without 'to' updates this resource's availability and is broadcast (RFC 6121 §4).
"""
import base64
import binascii
import secrets

from lxml import etree
from twisted.internet import defer
from twisted.internet.protocol import ServerFactory
from jabberapp.logging import logger
from zope.interface import implementer

from jabberapp import dispatch, stanza as st
from jabberapp import sasl
from jabberapp.errors import StanzaError, StreamError
from jabberapp.interfaces import ISession
from jabberapp.jid import InvalidJID, JID, prep_resource
from jabberapp.sessions import presence_without_to, session_ended
from jabberapp.stream.xmlstream import XMLStreamProtocol, addressed_domain
from jabberapp.tls import channel_bindings
from jabberapp.xml import element
from jabberapp.xml.ns import (NS_BIND, NS_CLIENT, NS_SASL, NS_SASL_CB, NS_SESSION, NS_STREAMS,
                              NS_TLS)

log = logger(__name__)

FEATURES = f"{{{NS_STREAMS}}}features"
STARTTLS = f"{{{NS_TLS}}}starttls"
SASL_AUTH = f"{{{NS_SASL}}}auth"
SASL_RESPONSE = f"{{{NS_SASL}}}response"
SASL_ABORT = f"{{{NS_SASL}}}abort"
BIND = f"{{{NS_BIND}}}bind"
SESSION = f"{{{NS_SESSION}}}session"

# RFC 6120 §6.4.5: allow a reasonable number of retries, then close the stream.
MAX_SASL_ATTEMPTS = 5


@implementer(ISession)
class C2SStream(XMLStreamProtocol):
    """One client connection; an ISession once a resource is bound."""

    def __init__(self, factory, secure=False):
        super().__init__(max_stanza_size=factory.max_stanza_size)
        self.factory = factory
        self.secure = secure
        self.host = None           # the VirtualHost named in the stream header
        self.username = None       # set by SASL success
        self.jid = None            # full JID once bound
        self.available = False     # sent available broadcast presence
        self.priority = 0
        self.presence = None       # the last available broadcast presence (for probes)
        self.state = {}            # per-extension session state, keyed by extension name
        self._mechanism = None
        self._channel_bindings = None   # read once the TLS handshake is done
        self._sasl_failures = 0
        self._timeout = None

    # -- connection ------------------------------------------------------------------------

    def connectionMade(self):
        self.peer_address = getattr(self.transport.getPeer(), "host", "?")
        # Stanzas are small and interactive: do not let Nagle hold them back.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self._timeout = self.factory.clock.callLater(
            self.factory.negotiation_timeout, self._negotiation_timed_out)

    def _negotiation_timed_out(self):
        self._timeout = None
        if self.jid is None:
            self.close(StreamError("connection-timeout"))

    def connectionLost(self, reason=None):
        super().connectionLost(reason)
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        if self.jid is not None and self.host is not None:
            session_ended(self.host, self)
            log.info("session {jid} closed", jid=self.jid)

    # -- stream header and features -------------------------------------------------------

    def default_header(self):
        attrs = {"version": "1.0", "id": self.new_stream_id()}
        if self.host is not None:
            attrs["from"] = self.host.domain
        return attrs

    def stream_opened(self, event):
        if event.ns != NS_CLIENT:
            raise StreamError("invalid-namespace")
        host = self.factory.hosts.get(addressed_domain(event.attrs.get("to")))
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
        self.send(self._features())

    def _features(self):
        features = etree.Element(FEATURES, nsmap={"stream": NS_STREAMS})
        encryption_missing = self.factory.require_encryption and not self.secure
        if self.username is None:
            if not self.secure and self.factory.tls_options is not None:
                tls = etree.SubElement(features, STARTTLS, nsmap={None: NS_TLS})
                if self.factory.require_encryption:
                    etree.SubElement(tls, f"{{{NS_TLS}}}required")
            if not encryption_missing:
                context = self._sasl_context()
                mechanisms = etree.SubElement(features, f"{{{NS_SASL}}}mechanisms",
                                              nsmap={None: NS_SASL})
                for name in sasl.available_mechanisms(context):
                    etree.SubElement(mechanisms, f"{{{NS_SASL}}}mechanism").text = name
                if context.channel_bindings:
                    # XEP-0440: tell the client which channel-binding types we support.
                    cb = etree.SubElement(features, f"{{{NS_SASL_CB}}}sasl-channel-binding",
                                          nsmap={None: NS_SASL_CB})
                    for cb_type in context.channel_bindings:
                        etree.SubElement(cb, f"{{{NS_SASL_CB}}}channel-binding", type=cb_type)
                self._extension_features(features)   # e.g. XEP-0077 <register/>
        else:
            etree.SubElement(features, BIND, nsmap={None: NS_BIND})
            session = etree.SubElement(features, SESSION, nsmap={None: NS_SESSION})
            etree.SubElement(session, f"{{{NS_SESSION}}}optional")
            self._extension_features(features)
        return features

    def _extension_features(self, features):
        for feature in self.host.stream_features:
            offered = feature.advertise(self)
            if offered is not None:
                features.append(offered)

    # -- elements ------------------------------------------------------------------------

    def element_received(self, el):
        tag = el.tag
        if self.jid is not None and tag in st.STANZA_TAGS:
            return self._stanza_received(el)
        if tag == STARTTLS:
            return self._starttls()
        if tag == SASL_AUTH:
            return self._sasl_auth(el)
        if tag == SASL_RESPONSE:
            return self._sasl_response(el)
        if tag == SASL_ABORT:
            return self._sasl_abort()
        if tag == st.IQ and self.username is not None:
            return self._negotiation_iq(el)
        if tag == st.IQ:
            handler = self._preauth_iq_handler(el)
            if handler is not None:
                return self._preauth_iq(el, handler)
        if tag in st.STANZA_TAGS:
            raise StreamError("not-authorized")
        if self.jid is not None:
            namespace = etree.QName(el).namespace
            for feature in self.host.stream_features:
                if feature.namespace == namespace:
                    return feature.handle(self, el)
        raise StreamError("unsupported-stanza-type")

    # -- STARTTLS (RFC 6120 §5) -------------------------------------------------------

    def _starttls(self):
        if self.secure or self.username is not None or self.factory.tls_options is None:
            self.send(element(NS_TLS, "failure"))
            self.close()
            return
        self.send(element(NS_TLS, "proceed"))
        self.discard_pending()
        self.transport.startTLS(self.factory.tls_options)
        self.secure = True

    # -- SASL (RFC 6120 §6) ----------------------------------------------------------

    def _sasl_context(self):
        # Read from the TLS connection once (not before its handshake is done): the
        # features and every SASL attempt ask again.
        if not self._channel_bindings and self.secure:
            self._channel_bindings = channel_bindings(self.transport)
        bindings = self._channel_bindings or {}
        return sasl.SASLContext(host=self.host.domain, auth=self.host.auth,
                                secure=self.secure, channel_bindings=bindings,
                                allowed=self.factory.mechanisms)

    def _sasl_auth(self, el):
        if self.username is not None:
            raise StreamError("policy-violation", "Already authenticated")
        if self._mechanism is not None:
            return self._sasl_failed(sasl.SASLFailure("aborted"))
        if self.factory.require_encryption and not self.secure:
            return self._sasl_failed(sasl.SASLFailure("encryption-required"))
        try:
            self._mechanism = sasl.create_mechanism(el.get("mechanism", ""),
                                                    self._sasl_context())
            initial = _decode_sasl(el.text, initial=True)
        except sasl.SASLFailure as failure:
            return self._sasl_failed(failure)
        return self._sasl_step(self._mechanism.start(initial))

    def _sasl_response(self, el):
        if self._mechanism is None:
            return self._sasl_failed(sasl.SASLFailure("malformed-request"))
        try:
            data = _decode_sasl(el.text, initial=False)
        except sasl.SASLFailure as failure:
            return self._sasl_failed(failure)
        return self._sasl_step(self._mechanism.step(data))

    def _sasl_abort(self):
        return self._sasl_failed(sasl.SASLFailure("aborted"))

    def _sasl_step(self, d):
        d.addCallbacks(self._sasl_outcome, self._sasl_error)
        return d

    def _sasl_outcome(self, outcome):
        if isinstance(outcome, sasl.Challenge):
            self.send(element(NS_SASL, "challenge", text=_encode_sasl(outcome.data)))
            return None
        # Success: the stream restarts; nothing sent before it is trusted.
        self.factory.throttle.succeeded(*self._throttle_keys())
        self.username = outcome.username
        self._mechanism = None
        self.send(element(NS_SASL, "success",
                          text=_encode_sasl(outcome.data) if outcome.data else None))
        self.discard_pending()
        log.info("authenticated {user}@{host} from {address}", user=self.username,
                 host=self.host.domain, address=self.peer_address)
        return None

    def _sasl_error(self, failure):
        failure.trap(sasl.SASLFailure)
        return self._sasl_failed(failure.value)

    def _throttle_keys(self):
        keys = [("address", self.peer_address)]
        username = getattr(self._mechanism, "username", None)
        if username:
            keys.append(("account", self.host.domain, username))
        return keys

    def _sasl_failed(self, failure):
        """Answer <failure/> after the throttle's delay; close after too many attempts."""
        keys = self._throttle_keys()
        self._mechanism = None
        counted = failure.counted
        delay = self.factory.throttle.delay(*keys) if counted else 0
        if counted:
            self.factory.throttle.failed(*keys)
            self._sasl_failures += 1
        reply = element(NS_SASL, "failure")
        etree.SubElement(reply, f"{{{NS_SASL}}}{failure.condition}")
        log.info("SASL failure {condition} from {address}", condition=failure.condition,
                 address=self.peer_address)

        def answer(_=None):
            self.send(reply)
            if self._sasl_failures >= MAX_SASL_ATTEMPTS:
                self.close(StreamError("policy-violation", "Too many failed authentications"))

        if delay <= 0:
            answer()
            return None
        d = defer.Deferred()
        self.factory.clock.callLater(delay, d.callback, None)
        return d.addCallback(answer)

    # -- IQs before authentication (XEP-0077 in-band registration) -----------------------

    def _preauth_iq_handler(self, iq):
        """The extension handler owning this IQ get/set sent before authentication, or None
        (then the IQ is a stanza before authentication like any other)."""
        if self.factory.require_encryption and not self.secure:
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

    # -- binding (RFC 6120 §7) and the legacy session (RFC 3921 §3) ---------------------

    def _negotiation_iq(self, iq):
        if _is_session_request(iq):
            self.send(st.reply(iq))
            return None
        payload = iq[0] if len(iq) == 1 else None
        if iq.get("type") == "set" and payload is not None and payload.tag == BIND:
            return self._bind(iq, payload)
        raise StreamError("not-authorized")

    def _bind(self, iq, bind):
        requested = bind.findtext(f"{{{NS_BIND}}}resource")
        if requested:
            try:
                resource = prep_resource(requested)
            except InvalidJID:
                self.send(st.error_reply(iq, StanzaError("bad-request", "Invalid resource")))
                return None
        else:
            resource = secrets.token_hex(8)
        self.jid = JID.make(self.username, self.host.domain, resource)
        replaced = self.host.sessions.bind(self)
        if replaced is not None:
            # RFC 6120 §7.7.2.2: the newer session wins; the old one learns why.
            replaced.close(StreamError("conflict", "Replaced by new connection"))
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None    # a cancelled call kept here would live as long as the session
        answer = st.reply(iq)
        result = etree.SubElement(answer, BIND, nsmap={None: NS_BIND})
        etree.SubElement(result, f"{{{NS_BIND}}}jid").text = str(self.jid)
        self.send(answer)
        log.info("bound {jid}", jid=self.jid)
        self.host.dispatcher.hooks.fire(dispatch.SESSION_BOUND, self)
        return None

    # -- stanzas from a bound session ---------------------------------------------------

    def _stanza_received(self, el):
        if _is_session_request(el) and el.get("to") in (None, self.host.domain):
            # RFC 3921 §3: old clients still establish a session after binding.
            self.send(st.reply(el))
            return None
        sender = el.get("from")
        if sender is not None and sender != str(self.jid):
            try:
                claimed = JID.parse(sender)
            except InvalidJID:
                raise StreamError("invalid-from") from None
            if claimed != self.jid and claimed != self.jid.bare():
                raise StreamError("invalid-from")
        el.set("from", str(self.jid))
        error = _check_stanza(el)
        if error is not None:
            self.host.dispatcher.bounce(el, error)
            return None
        to = el.get("to")
        if to is not None:
            try:
                el.set("to", str(JID.parse(to)))
            except InvalidJID:
                self.host.dispatcher.bounce(el, "jid-malformed")
                return None
        if el.tag == st.IQ and el.get("type") in ("get", "set"):
            if _child_count(el) != 1:
                self.host.dispatcher.bounce(el, "bad-request")
                return None
        if self.host.dispatcher.outgoing(el, self):
            return None
        if to is None:
            if el.tag == st.PRESENCE:
                presence_without_to(self.host, self, el)
                return None
            # RFC 6120 §10.3: handled on behalf of the account.
            el.set("to", str(self.jid.bare()))
        if not self.host.dispatcher.hooks.fire(dispatch.FILTER_OUTBOUND, el, self):
            self.host.router.route(el, self)
        return None

class C2SFactory(ServerFactory):
    """Creates C2SStream protocols; shared state for one c2s listener."""

    noisy = False  # no log line per listener start/stop

    def __init__(self, hosts, tls_options, clock, throttle, require_encryption=True,
                 max_stanza_size=262144, negotiation_timeout=60.0, secure=False,
                 mechanisms=None):
        self.hosts = hosts                  # domain -> VirtualHost
        self.tls_options = tls_options      # for STARTTLS (None: no TLS offered)
        self.clock = clock
        self.throttle = throttle
        self.require_encryption = require_encryption
        self.max_stanza_size = max_stanza_size
        self.negotiation_timeout = negotiation_timeout
        self.secure = secure                # direct TLS listener (XEP-0368)
        self.mechanisms = mechanisms        # frozenset of SASL names to offer; None: all

    def buildProtocol(self, addr):
        protocol = C2SStream(self, secure=self.secure)
        protocol.factory = self
        return protocol


def _is_session_request(iq):
    return (iq.tag == st.IQ and iq.get("type") == "set" and len(iq) == 1
            and iq[0].tag == SESSION)


def _version_supported(version):
    """RFC 6120 §4.7.5: major version 1 or higher is answered with 1.0."""
    if not version:
        return False
    major, _, _ = version.partition(".")
    return major.isdigit() and int(major) >= 1


def _decode_sasl(text, initial):
    """RFC 6120 §6.4.2: absent text is no initial response; '=' is an empty one."""
    if text is None or text == "":
        return None if initial else b""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise sasl.SASLFailure("incorrect-encoding") from None


def _encode_sasl(data):
    return base64.b64encode(data).decode("ascii") if data else "="


def _check_stanza(el):
    """The stanza error condition for a malformed stanza, or None."""
    type_ = el.get("type")
    if el.tag == st.IQ:
        if type_ not in st.IQ_TYPES or not el.get("id"):
            return "bad-request"
    elif el.tag == st.PRESENCE:
        if type_ is not None and type_ not in st.PRESENCE_TYPES:
            return "bad-request"
    return None


def _child_count(el):
    return sum(1 for c in el if isinstance(c.tag, str))

