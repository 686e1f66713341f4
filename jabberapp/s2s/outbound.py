"""
The initiating side of a server-to-server stream: we opened it to another server for a route
of the manager. It negotiates STARTTLS, then SASL EXTERNAL when offered or else dialback, and
sends <bidi/> when the peer offers XEP-0288. See jabberapp.s2s.stream for the whole
negotiation.
"""
import base64

from jabberapp import stanza as st
from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, prep_domain
from jabberapp.logging import logger
from jabberapp.s2s import dialback
from jabberapp.s2s.dialback import DB_RESULT, DB_VERIFY
from jabberapp.s2s.stream import (
    BIDI_FEATURE,
    DIALBACK_FEATURE,
    EXTERNAL,
    FEATURES,
    SASL_FAILURE,
    SASL_MECHANISM,
    SASL_MECHANISMS,
    SASL_SUCCESS,
    STARTTLS,
    STREAM_ERROR,
    TLS_FAILURE,
    TLS_PROCEED,
    S2SStream,
    version_supported,
)
from jabberapp.xml import element
from jabberapp.xml.ns import NS_BIDI, NS_SASL, NS_SERVER, NS_TLS

log = logger(__name__)


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
        if not version_supported(event.attrs.get("version")):
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
