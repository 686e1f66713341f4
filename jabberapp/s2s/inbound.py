"""
The receiving side of a server-to-server stream: another server opened it to us. It offers
STARTTLS, then SASL EXTERNAL (when the peer's certificate proves the domain its header names),
dialback and XEP-0288 bidi; it checks <db:result/> keys with the Authoritative Server through
the route manager. See jabberapp.s2s.stream for the whole negotiation.
"""
import base64
import binascii

from lxml import etree
from twisted.python.failure import Failure

from jabberapp import stanza as st
from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, prep_domain
from jabberapp.logging import logger
from jabberapp.s2s import dialback
from jabberapp.s2s.dialback import DB_RESULT, DB_VERIFY
from jabberapp.s2s.stream import (
    BIDI,
    BIDI_FEATURE,
    DIALBACK_FEATURE,
    EXTERNAL,
    FEATURES,
    SASL_ABORT,
    SASL_AUTH,
    SASL_MECHANISM,
    SASL_MECHANISMS,
    STARTTLS,
    STREAM_ERROR,
    S2SStream,
    version_supported,
)
from jabberapp.stream.xmlstream import addressed_domain
from jabberapp.xml import element
from jabberapp.xml.ns import (NS_BIDI_FEATURE, NS_DIALBACK_FEATURE, NS_SASL, NS_SERVER,
                              NS_STREAMS, NS_TLS)

log = logger(__name__)


class InboundStream(S2SStream):
    """A stream another server opened to us (we are the Receiving Server)."""

    direction = "inbound"

    def __init__(self, manager, secure=False):
        super().__init__(manager, secure)
        self.claimed_from = None   # the 'from' of the peer's stream header
        self.authenticated = {}    # remote domain -> how ('SASL EXTERNAL', 'dialback')
        self.sasl_done = False
        self._verifying = set()    # remote domains whose dialback key is being checked
        self._timeout = None

    @property
    def peer_domain(self):
        """The first domain the peer authenticated (for logs and listings)."""
        return next(iter(self.authenticated), self.claimed_from)

    # -- connection ------------------------------------------------------------------------

    def connectionMade(self):
        super().connectionMade()
        self._timeout = self.manager.clock.callLater(
            self.manager.config.negotiation_timeout, self._negotiation_timed_out)
        self.manager.inbound_opened(self)

    def _negotiation_timed_out(self):
        self._timeout = None
        if not self.authenticated:
            self.close(StreamError("connection-timeout"))

    def connectionLost(self, reason=None):
        super().connectionLost(reason)
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        if self.authenticated:
            self._log_down(", ".join(self.authenticated), self.peer_error)
        else:
            log.debug("s2s inbound connection from {address} ended before authentication: "
                      "{reason}", address=self.peer_address,
                      reason=reason.getErrorMessage() if reason is not None else "?")
        self.manager.inbound_closed(self)

    # -- header and features --------------------------------------------------------------

    def default_header(self):
        return {"from": self.local_domain, "id": self.new_stream_id(), "version": "1.0"}

    def stream_opened(self, event):
        if event.ns != NS_SERVER:
            raise StreamError("invalid-namespace")
        to, sender = event.attrs.get("to"), event.attrs.get("from")
        if to:
            try:
                local = prep_domain(to)
            except InvalidJID:
                raise StreamError("host-unknown") from None
            if not self.manager.is_authoritative(local):
                raise StreamError("host-unknown")
            self.local_domain = local
        claimed = None
        if sender:
            try:
                claimed = prep_domain(sender)
            except InvalidJID:
                raise StreamError("invalid-from") from None
        self.claimed_from = claimed
        modern = version_supported(event.attrs.get("version"))
        self.send_header({"from": self.local_domain, "to": claimed,
                          "id": self.new_stream_id(), "version": "1.0" if modern else None})
        if modern:
            self.send(self._features())
        # else: a pre-RFC 3920 server: no features, it starts dialback right away.

    def _features(self):
        features = etree.Element(FEATURES, nsmap={"stream": NS_STREAMS})
        config = self.manager.config
        if not self.secure and self.manager.server_tls is not None:
            tls = etree.SubElement(features, STARTTLS, nsmap={None: NS_TLS})
            if config.require_encryption:
                etree.SubElement(tls, f"{{{NS_TLS}}}required")
        if (self.secure or not config.require_encryption) and not self.sasl_done:
            if self.claimed_from and self.certificate_authenticates(self.claimed_from):
                mechanisms = etree.SubElement(features, SASL_MECHANISMS, nsmap={None: NS_SASL})
                etree.SubElement(mechanisms, SASL_MECHANISM).text = EXTERNAL
            if config.allow_dialback:
                offer = etree.SubElement(features, DIALBACK_FEATURE,
                                         nsmap={None: NS_DIALBACK_FEATURE})
                etree.SubElement(offer, f"{{{NS_DIALBACK_FEATURE}}}errors")
            if config.bidi and not self.authenticated:
                etree.SubElement(features, BIDI_FEATURE, nsmap={None: NS_BIDI_FEATURE})
        return features

    # -- elements ------------------------------------------------------------------------

    def element_received(self, el):
        tag = el.tag
        if tag in st.STANZA_TAGS:
            if not self.authenticated:
                raise StreamError("not-authorized")
            return self._accept_stanza(el, self.authenticated)
        if tag == DB_RESULT:
            return self._db_result(el)
        if tag == DB_VERIFY:
            if el.get("type") is not None:
                return None     # an answer we never asked for on this stream
            return self._answer_verify(el)
        if tag == STARTTLS:
            return self._starttls()
        if tag == SASL_AUTH:
            return self._sasl_auth(el)
        if tag == SASL_ABORT:
            return self._sasl_failure("aborted")
        if tag == BIDI:
            return self._bidi()
        if tag == STREAM_ERROR:
            return self._peer_stream_error(el)
        raise StreamError("unsupported-stanza-type")

    def _starttls(self):
        if self.secure or self.authenticated or self.manager.server_tls is None:
            self.send(element(NS_TLS, "failure"))
            self.close()
            return None
        self.send(element(NS_TLS, "proceed"))
        self.discard_pending()
        self.transport.startTLS(self.manager.server_tls)
        self.secure = True
        return None

    # -- SASL EXTERNAL (XEP-0178) -----------------------------------------------------

    def _sasl_auth(self, el):
        if self.sasl_done:
            raise StreamError("policy-violation", "Already authenticated")
        if el.get("mechanism") != EXTERNAL:
            return self._sasl_failure("invalid-mechanism")
        if not self.secure:
            return self._sasl_failure("encryption-required")
        text = (el.text or "").strip()
        try:
            authzid = b"" if text in ("", "=") else base64.b64decode(text, validate=True)
            authzid = authzid.decode("utf-8")
        except (binascii.Error, ValueError):
            return self._sasl_failure("incorrect-encoding")
        domain = authzid or self.claimed_from
        if not domain:
            return self._sasl_failure("not-authorized")
        try:
            domain = prep_domain(domain)
        except InvalidJID:
            return self._sasl_failure("invalid-authzid")
        if self.claimed_from and domain != self.claimed_from:
            return self._sasl_failure("invalid-authzid")
        if not self.certificate_authenticates(domain):
            return self._sasl_failure("not-authorized")
        self.send(element(NS_SASL, "success"))
        self.discard_pending()      # the peer restarts the stream
        self.sasl_done = True
        self._authenticated(domain, "SASL EXTERNAL")
        return None

    def _sasl_failure(self, condition):
        failure = element(NS_SASL, "failure")
        etree.SubElement(failure, f"{{{NS_SASL}}}{condition}")
        self.send(failure)
        log.info("SASL EXTERNAL from {address} failed: {condition}",
                 address=self.peer_address, condition=condition)
        return None

    # -- dialback (XEP-0220): we are the Receiving Server ----------------------------------

    def _db_result(self, el):
        if el.get("type") is not None:
            return None     # verdicts travel the other way
        sender, recipient = el.get("from"), el.get("to")
        if not sender or not recipient:
            raise StreamError("improper-addressing")
        local = addressed_domain(recipient)
        if not self.manager.is_authoritative(local):
            raise StreamError("host-unknown")
        remote = addressed_domain(sender, invalid="invalid-from")
        config = self.manager.config
        if config.require_encryption and not self.secure:
            raise StreamError("policy-violation", "TLS is required before dialback")
        if not config.allow_dialback:
            self.send(dialback.result(local, remote, type_="error",
                                      condition="policy-violation"))
            return None
        if self.local_domain is None:
            self.local_domain = local
        if remote in self.authenticated:
            self.send(dialback.result(local, remote, type_="valid"))
            return None
        if remote in self._verifying:
            return None
        if self.certificate_authenticates(remote):
            # The certificate already proves the domain: no need to dial back (XEP-0344).
            self._dialback_verdict(local, remote, True)
            return None
        self._verifying.add(remote)
        d = self.manager.verify_key(local, remote, self.stream_id, (el.text or "").strip())
        d.addCallbacks(lambda valid: self._dialback_verdict(local, remote, valid),
                       lambda failure: self._dialback_failed(local, remote, failure))
        d.addErrback(lambda failure: log.failure("dialback verdict failed", failure))
        return None     # other elements (piggybacked requests) go on meanwhile

    def _dialback_verdict(self, local, remote, valid):
        self._verifying.discard(remote)
        if self.closed:
            return
        if valid:
            self.send(dialback.result(local, remote, type_="valid"))
            self._authenticated(remote, "dialback")
            return
        log.warn("refusing {remote} on the stream from {address}: its Authoritative Server "
                 "does not know the dialback key", remote=remote, address=self.peer_address)
        self.send(dialback.result(local, remote, type_="invalid"))
        if not self.authenticated:
            self.close(StreamError("not-authorized", "Dialback verification failed"))

    def _dialback_failed(self, local, remote, failure: Failure):
        self._verifying.discard(remote)
        if self.closed:
            return
        condition = getattr(failure.value, "condition", "remote-server-not-found")
        log.info("could not verify {remote}'s dialback key: {error}", remote=remote,
                 error=failure.getErrorMessage())
        self.send(dialback.result(local, remote, type_="error", condition=condition))
        if not self.authenticated:
            self.close(StreamError("remote-connection-failed",
                                   "The Authoritative Server could not be reached"))

    # -- bidirectional streams (XEP-0288) -----------------------------------------------

    def _bidi(self):
        config = self.manager.config
        if not config.bidi:
            raise StreamError("unsupported-stanza-type")
        if self.authenticated or (config.require_encryption and not self.secure):
            raise StreamError("policy-violation", "bidi comes after TLS, before authentication")
        self.bidi = True
        return None

    # -- authenticated -----------------------------------------------------------------

    def _authenticated(self, domain, method):
        self.authenticated[domain] = method
        self.auth_method = method
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        self._log_up(domain)
        self.manager.inbound_authenticated(self, domain)
