"""
Server-to-server streams (RFC 6120, jabber:server): the receiving side (L{InboundStream}) and
the initiating side (L{OutboundStream}).

Theory of operation
-------------------
An s2s stream carries stanzas one way: from the initiating server to the receiving server
(XEP-0288 bidirectional streams excepted, below). The initiating side negotiates:

  connect ──▶ header, features ──STARTTLS──▶ header, features (TLS)
      ──▶ SASL EXTERNAL (XEP-0178) if offered ──success──▶ restart ──▶ authenticated
      └─▶ otherwise dialback (XEP-0220): <db:result>key</db:result> ──valid──▶ authenticated

(direct TLS, XEP-0368, starts with TLS.) The receiving side offers STARTTLS (required by
default), then SASL EXTERNAL only when the peer's certificate validates for the domain its
header names, and the dialback feature. A <db:result/> key is checked with the domain's
Authoritative Server through a <db:verify/> on our own outgoing link to that domain (the
route manager's verify_key); a certificate that already proves the domain skips that round
trip. An incoming <db:verify/> is answered from our per-process secret (dialback.py).

Stanzas from the peer are accepted only once it has authenticated a domain on this stream:
before that they are <not-authorized/>; a 'from' in another domain is <invalid-from/>; a 'to'
that is not local is <host-unknown/>. Accepted stanzas go to the router with no origin (they
come from another server, not from one of our sessions).

Bidirectional streams (XEP-0288): the initiating side sends <bidi/> when the receiving side
offers it. The receiving side may then send stanzas for the initiating domain back on the
same stream (the route manager uses it when it has no outgoing link of its own), and the
initiating side accepts stanzas from the domain it connected to.

Every stream is written in jabber:server and its stanzas are parsed straight into
jabber:client (canonical_from), so nothing past this module sees the s2s namespace.
"""
import base64
import binascii

from lxml import etree
from twisted.python.failure import Failure

from jabberapp import stanza as st
from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, JID, prep_domain
from jabberapp.logging import logger
from jabberapp.s2s import dialback
from jabberapp.s2s.dialback import DB_RESULT, DB_VERIFY
from jabberapp.stream.xmlstream import XMLStreamProtocol, addressed_domain
from jabberapp.tls import PeerCertificate, tls_version
from jabberapp.xml import StreamParser, element
from jabberapp.xml.ns import (NS_BIDI, NS_BIDI_FEATURE, NS_DIALBACK, NS_DIALBACK_FEATURE,
                              NS_SASL, NS_SERVER, NS_STREAM_ERRORS, NS_STREAMS, NS_TLS)

log = logger(__name__)

FEATURES = f"{{{NS_STREAMS}}}features"
STREAM_ERROR = f"{{{NS_STREAMS}}}error"
STARTTLS = f"{{{NS_TLS}}}starttls"
TLS_PROCEED = f"{{{NS_TLS}}}proceed"
TLS_FAILURE = f"{{{NS_TLS}}}failure"
SASL_MECHANISMS = f"{{{NS_SASL}}}mechanisms"
SASL_MECHANISM = f"{{{NS_SASL}}}mechanism"
SASL_AUTH = f"{{{NS_SASL}}}auth"
SASL_SUCCESS = f"{{{NS_SASL}}}success"
SASL_FAILURE = f"{{{NS_SASL}}}failure"
SASL_ABORT = f"{{{NS_SASL}}}abort"
BIDI = f"{{{NS_BIDI}}}bidi"
BIDI_FEATURE = f"{{{NS_BIDI_FEATURE}}}bidi"
DIALBACK_FEATURE = f"{{{NS_DIALBACK_FEATURE}}}dialback"

EXTERNAL = "EXTERNAL"


class S2SStream(XMLStreamProtocol):
    """What both directions share: namespaces, TLS facts, peer errors, db:verify answers."""

    stream_ns = NS_SERVER
    direction = None

    def __init__(self, manager, secure=False):
        size = manager.config.max_stanza_size
        super().__init__(max_stanza_size=size)
        self.parser = StreamParser(max_stanza_size=size, canonical_from=NS_SERVER)
        self.manager = manager
        self.secure = secure
        self.stream_id = None
        self.local_domain = None
        self.auth_method = None
        self.bidi = False
        self.peer_address = "?"
        self.peer_error = None      # the condition of a stream error the peer sent us

    def connectionMade(self):
        peer = self.transport.getPeer()
        host = getattr(peer, "host", "?")
        port = getattr(peer, "port", None)
        self.peer_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def send_header(self, attrs):
        # xmlns:db announces dialback support (XEP-0220 §2.1); older servers look for it.
        super().send_header({**attrs, "xmlns:db": NS_DIALBACK})

    # -- TLS facts ------------------------------------------------------------------------

    def peer_certificate(self) -> PeerCertificate:
        """The peer's certificate and the trust store's verdict (none before TLS)."""
        if not self.secure:
            return PeerCertificate(None, ())
        return self.manager.peer_certificate(self.transport)

    def certificate_authenticates(self, domain) -> bool:
        """Whether the peer's certificate proves it is C{domain} (XEP-0178)."""
        return self.secure and self.peer_certificate().authenticates(
            domain, self.manager.trusts_self_signed(domain))

    def tls_version(self):
        return tls_version(self.transport) if self.secure else None

    # -- shared element handlers ------------------------------------------------------------

    def _peer_stream_error(self, el):
        """The peer is closing with a stream error: remember why, wait for its close."""
        for child in el:
            if isinstance(child.tag, str) and child.tag.startswith(f"{{{NS_STREAM_ERRORS}}}"):
                name = child.tag.rpartition("}")[2]
                if name != "text":
                    self.peer_error = name
                    break
        log.info("s2s {direction} stream with {address}: peer sent stream error {condition}",
                 direction=self.direction, address=self.peer_address,
                 condition=self.peer_error or "(none)")
        return None

    def _answer_verify(self, el):
        """We are the Authoritative Server: is this key one we generated (XEP-0220 §2.1.3)?"""
        sender, recipient, stream_id = el.get("from"), el.get("to"), el.get("id")
        if not (sender and recipient and stream_id):
            raise StreamError("improper-addressing")
        local = addressed_domain(recipient)
        if not self.manager.is_authoritative(local):
            raise StreamError("host-unknown")
        receiving = addressed_domain(sender, invalid="improper-addressing")
        if self.manager.config.require_encryption and not self.secure:
            raise StreamError("policy-violation", "TLS is required")
        expected = dialback.dialback_key(self.manager.secret, receiving, local, stream_id)
        valid = dialback.key_matches(expected, el.text)
        if not valid:
            log.warn("asked by {receiving} to verify a dialback key for {local} that is not "
                     "ours: someone may be impersonating {local}", receiving=receiving,
                     local=local)
        self.send(dialback.verify(local, receiving, stream_id,
                                  type_="valid" if valid else "invalid"))
        return None

    def _log_up(self, peer):
        self.manager.links_changed()  # before the log line: whoever sees it sees the status
        log.info("s2s link up: {direction} {local} {arrow} {peer} ({address}), "
                 "{tls}, auth {auth}, peer certificate {cert}{bidi}",
                 direction=self.direction, local=self.local_domain,
                 arrow="->" if self.direction == "outbound" else "<-", peer=peer,
                 address=self.peer_address, tls=self.tls_version() or "no TLS",
                 auth=self.auth_method, cert=self._certificate_status(peer),
                 bidi=", bidirectional" if self.bidi else "")

    def _certificate_status(self, peer):
        status = self.peer_certificate().describe()
        if self.certificate_authenticates(peer):
            status += f", authenticates {peer}"
        return status

    def _log_down(self, peer, reason):
        self.manager.links_changed()
        log.info("s2s link down: {direction} {local} {arrow} {peer} ({address}){reason}",
                 direction=self.direction, local=self.local_domain,
                 arrow="->" if self.direction == "outbound" else "<-", peer=peer,
                 address=self.peer_address,
                 reason=f": {reason}" if reason else "")

    def _accept_stanza(self, el, allowed_from):
        """Check a stanza from the peer and hand it to the router (see module docstring)."""
        sender, recipient = el.get("from"), el.get("to")
        if not sender or not recipient:
            # RFC 6120 §8.1.1.2, §8.1.2.2: both are required between servers.
            raise StreamError("improper-addressing")
        try:
            sender_jid = JID.parse(sender)
        except InvalidJID:
            raise StreamError("invalid-from") from None
        if sender_jid.domain not in allowed_from:
            raise StreamError("invalid-from")
        try:
            recipient_jid = JID.parse(recipient)
        except InvalidJID:
            self.manager.router.bounce(el, "jid-malformed")
            return None
        if not self.manager.is_local(recipient_jid.domain):
            raise StreamError("host-unknown")
        el.set("from", str(sender_jid))
        el.set("to", str(recipient_jid))
        if el.tag == st.IQ and (el.get("type") not in st.IQ_TYPES or not el.get("id")):
            self.manager.router.bounce(el, "bad-request")
            return None
        self.manager.received(el, self)
        return None


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
        modern = _version_supported(event.attrs.get("version"))
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


class OutboundStream(S2SStream):
    """A stream we opened to another server (we are the Originating Server)."""

    direction = "outbound"

    def __init__(self, manager, route, secure=False):
        super().__init__(manager, secure)
        self.route = route
        self.local_domain = route.local
        self.remote_domain = route.remote
        self.authenticated = False
        self.ready = False              # features after TLS seen: db:verify may be sent
        self.peer_verified = False      # the certificate proves remote_domain
        self.failure = None             # why negotiation failed, for bounces and logs
        self._sasl_done = False
        self._dialback_offered = False

    @property
    def peer_domain(self):
        return self.remote_domain

    def connectionMade(self):
        super().connectionMade()
        self._open()
        self.route.attached(self)

    def _open(self):
        self.send_header({"from": self.local_domain, "to": self.remote_domain,
                          "version": "1.0"})

    def default_header(self):
        return {"from": self.local_domain, "to": self.remote_domain, "version": "1.0"}

    def connectionLost(self, reason=None):
        super().connectionLost(reason)
        if self.authenticated:
            self._log_down(self.remote_domain, self.failure or self.peer_error)
        self.route.stream_lost(self)

    def fail(self, text, error=None):
        """Negotiation cannot succeed: note why, and close."""
        if self.failure is None:
            self.failure = text
        log.info("s2s outbound {local} -> {remote} ({address}) failed: {text}",
                 local=self.local_domain, remote=self.remote_domain,
                 address=self.peer_address, text=text)
        self.close(error)

    # -- header and features --------------------------------------------------------------

    def stream_opened(self, event):
        if event.ns != NS_SERVER:
            raise StreamError("invalid-namespace")
        self.stream_id = event.attrs.get("id")
        if not _version_supported(event.attrs.get("version")):
            # A pre-RFC 3920 server sends no features: dialback right away.
            if self.manager.config.require_encryption and not self.secure:
                self.fail("the peer does not support TLS")
                return None
            self._dialback_offered = True
            self._stream_ready()
            self._start_dialback()
        return None

    def element_received(self, el):
        tag = el.tag
        if tag == FEATURES:
            return self._features(el)
        if tag in st.STANZA_TAGS:
            if not (self.bidi and self.authenticated):
                raise StreamError("not-authorized")
            return self._accept_stanza(el, (self.remote_domain,))
        if tag == DB_RESULT:
            return self._db_result(el)
        if tag == DB_VERIFY:
            if el.get("type") is None:
                return self._answer_verify(el)
            self.route.verify_answered(el)
            return None
        if tag == TLS_PROCEED:
            return self._tls_proceed()
        if tag == TLS_FAILURE:
            self.fail("the peer refused STARTTLS")
            return None
        if tag == SASL_SUCCESS:
            return self._sasl_success()
        if tag == SASL_FAILURE:
            return self._sasl_failed()
        if tag == STREAM_ERROR:
            self._peer_stream_error(el)
            if self.failure is None:
                self.failure = f"the peer closed the stream ({self.peer_error})"
            return None
        raise StreamError("unsupported-stanza-type")

    def _features(self, features):
        config = self.manager.config
        if self.authenticated:
            return None
        if not self.secure:
            if (features.find(STARTTLS) is not None
                    and self.manager.client_tls is not None):
                self.send(element(NS_TLS, "starttls"))
                return None
            if config.require_encryption:
                self.fail("the peer does not offer TLS",
                          StreamError("policy-violation", "TLS is required"))
                return None
        if self._sasl_done:
            self._authenticated("SASL EXTERNAL")
            return None
        self.peer_verified = self.certificate_authenticates(self.remote_domain)
        if not self.peer_verified and not config.allow_dialback:
            self.fail(f"the certificate of {self.remote_domain} does not authenticate it "
                      f"({self.peer_certificate().describe()})")
            return None
        if (config.bidi and features.find(BIDI_FEATURE) is not None
                and (self.secure or not config.require_encryption)):
            self.send(element(NS_BIDI, "bidi"))
            self.bidi = True
        self._dialback_offered = features.find(DIALBACK_FEATURE) is not None
        self._stream_ready()
        mechanisms = features.find(SASL_MECHANISMS)
        offered = ([m.text for m in mechanisms.iterfind(SASL_MECHANISM)]
                   if mechanisms is not None else [])
        if self.secure and EXTERNAL in offered:
            # XEP-0178 §3: the authorization identity is our domain.
            self.send(element(NS_SASL, "auth", mechanism=EXTERNAL,
                              text=base64.b64encode(
                                  self.local_domain.encode("utf-8")).decode("ascii")))
            return None
        self._start_dialback()
        return None

    def _stream_ready(self):
        if not self.ready:
            self.ready = True
            self.route.stream_ready(self)

    def _tls_proceed(self):
        if self.secure or self.manager.client_tls is None:
            raise StreamError("policy-violation")
        self.discard_pending()
        self.transport.startTLS(
            self.manager.client_tls.options(self.local_domain, self.remote_domain))
        self.secure = True
        self._open()
        return None

    # -- SASL EXTERNAL ------------------------------------------------------------------

    def _sasl_success(self):
        self._sasl_done = True
        self.discard_pending()
        self._open()
        return None

    def _sasl_failed(self):
        if self.manager.config.allow_dialback and self._dialback_offered:
            log.debug("SASL EXTERNAL refused by {remote}; trying dialback",
                      remote=self.remote_domain)
            self._start_dialback()
        else:
            self.fail("SASL EXTERNAL failed and dialback is not available")
        return None

    # -- dialback: we are the Originating Server ----------------------------------------

    def _start_dialback(self):
        if not self.manager.config.allow_dialback:
            self.fail("no SASL EXTERNAL offered and dialback is disabled")
        elif not self._dialback_offered:
            self.fail("the peer offers no authentication we can do")
        elif not self.stream_id:
            self.fail("the peer's stream header has no id: dialback impossible")
        else:
            key = dialback.dialback_key(self.manager.secret, self.remote_domain,
                                        self.local_domain, self.stream_id)
            self.send(dialback.result(self.local_domain, self.remote_domain, key=key))

    def _db_result(self, el):
        type_ = el.get("type")
        if type_ is None:
            raise StreamError("unsupported-stanza-type")
        try:
            sender, recipient = prep_domain(el.get("from") or ""), prep_domain(el.get("to") or "")
        except InvalidJID:
            raise StreamError("improper-addressing") from None
        if (sender, recipient) != (self.remote_domain, self.local_domain):
            return None     # not the verdict for this stream (piggybacking is not used)
        if type_ == "valid":
            self._authenticated("dialback")
            return None
        condition = dialback.error_condition(el)
        self.fail(f"{self.remote_domain} refused our dialback key ({type_}"
                  f"{', ' + condition if condition else ''})")
        return None

    def _authenticated(self, method):
        self.authenticated = True
        self.auth_method = method
        self.route.authenticated(self)  # first: the route is 'up' when the status is written
        self._log_up(self.remote_domain)


def _version_supported(version):
    """RFC 6120 §4.7.5: major version 1 or higher."""
    if not version:
        return False
    major, _, _ = version.partition(".")
    return major.isdigit() and int(major) >= 1
