"""
Server-to-server streams (RFC 6120, jabber:server): what both directions share (L{S2SStream}),
under the receiving side (L{jabberapp.s2s.inbound.InboundStream}) and the initiating side
(L{jabberapp.s2s.outbound.OutboundStream}).

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
from jabberapp import stanza as st
from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, JID
from jabberapp.logging import logger
from jabberapp.s2s import dialback
from jabberapp.stream.flow import Intake
from jabberapp.stream.xmlstream import XMLStreamProtocol, addressed_domain
from jabberapp.tls import PeerCertificate, tls_version
from jabberapp.xml import StreamParser
from jabberapp.xml.namedict import TRUNK_STREAM_NAMES
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
    intake = None   # the Intake of the connection, once made

    def __init__(self, manager, secure=False):
        size = manager.config.max_stanza_size
        super().__init__(max_stanza_size=size)
        self.parser = StreamParser(max_stanza_size=size, canonical_from=NS_SERVER,
                                   max_names=TRUNK_STREAM_NAMES)
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
        # Reads go through the link's read rate limit (jabberapp.stream.flow).
        config = self.manager.config
        self.intake = Intake(self.transport, self.data_received, self.manager.clock,
                             getattr(config, "read_rate", 0), getattr(config, "read_burst", 0),
                             f"s2s {self.direction} {self.peer_address}", blockable=False)
        self.dataReceived = self.intake.read

    def connectionLost(self, reason=None):
        if self.intake is not None:
            self.intake.stop()
        super().connectionLost(reason)

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


def version_supported(version):
    """RFC 6120 §4.7.5: major version 1 or higher."""
    if not version:
        return False
    major, _, _ = version.partition(".")
    return major.isdigit() and int(major) >= 1
