"""
The SASL negotiation step (RFC 6120 §6) of c2s streams: mechanisms offered, the exchange of
<auth/>, <challenge/>, <response/> and <abort/>, and the failed-login throttle.

The mechanisms themselves are jabberapp.sasl's (create_mechanism, available_mechanisms,
SASLContext); this step only speaks the protocol around them. Before a mechanism checks
credentials it asks for the account's turn (SASLContext.admit): the throttle holds the check,
per account and per client address (jabberapp.sasl.throttle), and counts it even if the client
drops the connection meanwhile: a check still waiting for its turn then leaves the account's
queue at once (the stream's SASL state hears connection_lost), counted as a failure. A failure
the mechanism marks as counted (failure.counted: a guessed password, not an unusable mechanism)
that checked nothing is delayed by the throttle before its <failure/> is sent, and the stream
closes after MAX_SASL_ATTEMPTS counted failures.
"""
import base64
import binascii
import dataclasses

from lxml import etree
from twisted.internet import defer
from zope.interface import implementer

from jabberapp import sasl
from jabberapp.errors import StreamError
from jabberapp.interfaces import IStreamFeature
from jabberapp.logging import logger
from jabberapp.sasl.throttle import ThrottleFull, address_key
from jabberapp.xml import element
from jabberapp.xml.ns import NS_SASL, NS_SASL_CB

log = logger(__name__)

SASL_AUTH = f"{{{NS_SASL}}}auth"
SASL_RESPONSE = f"{{{NS_SASL}}}response"
SASL_ABORT = f"{{{NS_SASL}}}abort"

# RFC 6120 §6.4.5: allow a reasonable number of retries, then close the stream.
MAX_SASL_ATTEMPTS = 5


class _Exchange:
    """What one stream remembers of SASL (stream.state[NS_SASL])."""

    __slots__ = ("mechanism", "failures", "attempt")

    def __init__(self):
        self.mechanism = None   # the mechanism of the exchange under way
        self.failures = 0       # counted failures on this stream
        self.attempt = None     # the throttle's Attempt of the credential check under way

    def connection_lost(self):
        """The connection is gone (ClientStream.connection_lost): a check still waiting for
        its turn is given up now, counted, rather than when its turn comes."""
        if self.attempt is not None:
            self.attempt.abandon()      # one already checking reports its outcome as usual


@implementer(IStreamFeature)
class SASLAuth:
    """RFC 6120 §6 on a c2s stream; see the module docstring."""

    namespace = NS_SASL

    def advertise(self, stream):
        """<mechanisms/> (and XEP-0440's channel-binding types) before authentication,
        once the stream meets require_encryption."""
        if stream.username is not None or encryption_missing(stream):
            return None
        context = stream.sasl_context()
        mechanisms = etree.Element(f"{{{NS_SASL}}}mechanisms", nsmap={None: NS_SASL})
        for name in sasl.available_mechanisms(context):
            etree.SubElement(mechanisms, f"{{{NS_SASL}}}mechanism").text = name
        if not context.channel_bindings:
            return mechanisms
        # XEP-0440: tell the client which channel-binding types we support.
        cb = etree.Element(f"{{{NS_SASL_CB}}}sasl-channel-binding", nsmap={None: NS_SASL_CB})
        for cb_type in context.channel_bindings:
            etree.SubElement(cb, f"{{{NS_SASL_CB}}}channel-binding", type=cb_type)
        return [mechanisms, cb]

    def handle(self, stream, el):
        """<auth/>, <response/> or <abort/>."""
        tag = el.tag
        if tag == SASL_AUTH:
            return self._auth(stream, el)
        if tag == SASL_RESPONSE:
            return self._response(stream, el)
        if tag == SASL_ABORT:
            return self._failed(stream, sasl.SASLFailure("aborted"))
        raise StreamError("unsupported-stanza-type")

    def _exchange(self, stream):
        exchange = stream.state.get(self.namespace)
        if exchange is None:
            exchange = stream.state[self.namespace] = _Exchange()
        return exchange

    def _auth(self, stream, el):
        return self._start(stream, el.get("mechanism", ""), el.text)

    def _start(self, stream, name, text):
        """Start mechanism C{name} with the initial response C{text} (base64 or None)."""
        if stream.username is not None:
            raise StreamError("policy-violation", "Already authenticated")
        exchange = self._exchange(stream)
        if exchange.mechanism is not None:
            return self._failed(stream, sasl.SASLFailure("aborted"))
        if encryption_missing(stream):
            return self._failed(stream, sasl.SASLFailure("encryption-required"))
        try:
            context = dataclasses.replace(stream.sasl_context(),
                                          admit=lambda username: self._admit(stream, username))
            exchange.mechanism = self._mechanism(stream, name, context)
            initial = decode(text, initial=True)
        except sasl.SASLFailure as failure:
            return self._failed(stream, failure)
        return self._step(stream, exchange.mechanism.start(initial))

    def _mechanism(self, stream, name, context):
        """A new mechanism C{name} for C{stream}; SASLFailure when it is not offered."""
        return sasl.create_mechanism(name, context)

    def _response(self, stream, el):
        mechanism = self._exchange(stream).mechanism
        if mechanism is None:
            return self._failed(stream, sasl.SASLFailure("malformed-request"))
        try:
            data = decode(el.text, initial=False)
        except sasl.SASLFailure as failure:
            return self._failed(stream, failure)
        return self._step(stream, mechanism.step(data))

    def _step(self, stream, d):
        d.addCallbacks(self._outcome, self._error, callbackArgs=(stream,),
                       errbackArgs=(stream,))
        return d

    def _admit(self, stream, username):
        """The throttle's turn for a credential check of C{username}: None or a Deferred."""
        exchange = self._exchange(stream)
        try:
            attempt = stream.listener.throttle.admit(
                ("account", stream.host.domain, username), address_key(stream.peer_address),
                alive=lambda: not stream.closed)
        except ThrottleFull:
            raise sasl.SASLFailure("temporary-auth-failure", counted=False) from None
        exchange.attempt = attempt
        return attempt.wait

    def _outcome(self, outcome, stream):
        if isinstance(outcome, sasl.Challenge):
            stream.send(self._challenge(outcome.data))
            return None
        exchange = self._exchange(stream)
        attempt, exchange.attempt = exchange.attempt, None
        if attempt is not None:
            attempt.succeeded()
        else:
            stream.listener.throttle.succeeded(*self._throttle_keys(stream))
        stream.authenticated(outcome.username)
        self._exchange(stream).mechanism = None
        return self._succeeded(stream, outcome)

    def _challenge(self, data):
        """The element carrying a server challenge."""
        return element(NS_SASL, "challenge", text=encode(data))

    def _succeeded(self, stream, outcome):
        """Tell the client it is authenticated: the stream restarts; nothing sent before
        it is trusted."""
        stream.send(element(NS_SASL, "success",
                            text=encode(outcome.data) if outcome.data else None))
        stream.restart()
        log.info("authenticated {user}@{host} from {address}", user=stream.username,
                 host=stream.host.domain, address=stream.peer_address)
        return None

    def _error(self, failure, stream):
        failure.trap(sasl.SASLFailure)
        return self._failed(stream, failure.value)

    def _throttle_keys(self, stream):
        keys = [address_key(stream.peer_address)]
        username = getattr(self._exchange(stream).mechanism, "username", None)
        if username:
            keys.append(("account", stream.host.domain, username))
        return keys

    def _failed(self, stream, failure):
        """Answer <failure/> after the throttle's delay; close after too many attempts."""
        exchange = self._exchange(stream)
        keys = self._throttle_keys(stream)
        exchange.mechanism = None
        throttle = stream.listener.throttle
        counted = failure.counted
        attempt, exchange.attempt = exchange.attempt, None
        if attempt is not None:
            # The throttle already held the check itself: answer at once.
            delay = 0
            if counted:
                attempt.failed()
            else:
                attempt.release()
        else:
            delay = throttle.delay(*keys) if counted else 0
            if counted:
                throttle.failed(*keys)
        if counted:
            exchange.failures += 1
        reply = self._failure(failure)
        log.info("SASL failure {condition} from {address}", condition=failure.condition,
                 address=stream.peer_address)

        def answer(_=None):
            stream.send(reply)
            if exchange.failures >= MAX_SASL_ATTEMPTS:
                stream.close(StreamError("policy-violation", "Too many failed authentications"))

        if delay <= 0:
            answer()
            return None
        d = defer.Deferred()
        stream.listener.clock.callLater(delay, d.callback, None)
        return d.addCallback(answer)

    def _failure(self, failure):
        """The <failure/> element of C{failure} (RFC 6120 §6.5)."""
        reply = element(NS_SASL, "failure")
        etree.SubElement(reply, f"{{{NS_SASL}}}{failure.condition}")
        return reply


def encryption_missing(stream):
    """Whether [c2s] require_encryption forbids authenticating on C{stream} yet."""
    return stream.listener.require_encryption and not stream.secure


def decode(text, initial):
    """RFC 6120 §6.4.2: absent text is no initial response; '=' is an empty one."""
    if text is None or text == "":
        return None if initial else b""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise sasl.SASLFailure("incorrect-encoding") from None


def encode(data):
    """Base64 for a SASL element's text; '=' for empty data."""
    return base64.b64encode(data).decode("ascii") if data else "="
