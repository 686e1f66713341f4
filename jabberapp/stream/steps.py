"""
The core's small negotiation steps (IStreamFeature): STARTTLS (RFC 6120 §5), resource binding
(RFC 6120 §7) and the legacy session establishment (RFC 3921 §3, a no-op kept for old
clients). SASL is in saslauth.py.

Resource binding and the legacy session are negotiated with IQs: before a resource is bound,
the negotiation hands an authenticated client's IQ get/set to the core step that owns its
payload's namespace (ClientStream.iq_steps); a nonza in their namespaces is out of place.
"""
from lxml import etree
from zope.interface import implementer

from jabberapp import stanza as st
from jabberapp.errors import StanzaError, StreamError
from jabberapp.interfaces import IStreamFeature
from jabberapp.jid import InvalidJID
from jabberapp.xml import element
from jabberapp.xml.ns import NS_BIND, NS_SESSION, NS_TLS

STARTTLS = f"{{{NS_TLS}}}starttls"
BIND = f"{{{NS_BIND}}}bind"
SESSION = f"{{{NS_SESSION}}}session"


@implementer(IStreamFeature)
class StartTLS:
    """RFC 6120 §5: <starttls/> before authentication on a plain stream with TLS configured."""

    namespace = NS_TLS

    def advertise(self, stream):
        """<starttls/>, with <required/> when [c2s] require_encryption."""
        if stream.username is not None or not stream.transport.can_start_tls:
            return None
        tls = etree.Element(STARTTLS, nsmap={None: NS_TLS})
        if stream.listener.require_encryption:
            etree.SubElement(tls, f"{{{NS_TLS}}}required")
        return tls

    def handle(self, stream, el):
        """<proceed/>, then TLS; what the client pipelined in clear text is dropped."""
        if el.tag != STARTTLS:
            raise StreamError("unsupported-stanza-type")
        if stream.username is not None or not stream.transport.can_start_tls:
            stream.send(element(NS_TLS, "failure"))
            stream.close()
            return None
        stream.send(element(NS_TLS, "proceed"))
        stream.restart()
        stream.transport.start_tls()
        return None


@implementer(IStreamFeature)
class Bind:
    """RFC 6120 §7: <iq type='set'><bind/></iq> once authenticated."""

    namespace = NS_BIND

    def advertise(self, stream):
        """<bind/> once authenticated."""
        if stream.username is None:
            return None
        return etree.Element(BIND, nsmap={None: NS_BIND})

    def handle(self, stream, el):
        """A bind IQ (the only way to negotiate it); anything else ends the stream."""
        if el.tag != st.IQ:
            raise StreamError("unsupported-stanza-type")
        payload = el[0] if len(el) == 1 else None
        if el.get("type") != "set" or payload is None or payload.tag != BIND:
            raise StreamError("not-authorized")
        requested = payload.findtext(f"{{{NS_BIND}}}resource")
        try:
            stream.bind(requested or None, reply=lambda session: _bound(el, session))
        except InvalidJID:
            stream.send(st.error_reply(el, StanzaError("bad-request", "Invalid resource")))
        return None


def _bound(iq, session):
    answer = st.reply(iq)
    result = etree.SubElement(answer, BIND, nsmap={None: NS_BIND})
    etree.SubElement(result, f"{{{NS_BIND}}}jid").text = str(session.jid)
    return answer


@implementer(IStreamFeature)
class LegacySession:
    """RFC 3921 §3: the session IQ old clients send after binding; offered as optional."""

    namespace = NS_SESSION

    def advertise(self, stream):
        """<session><optional/></session> once authenticated (RFC 6121 §A)."""
        if stream.username is None:
            return None
        session = etree.Element(SESSION, nsmap={None: NS_SESSION})
        etree.SubElement(session, f"{{{NS_SESSION}}}optional")
        return session

    def handle(self, stream, el):
        """Before binding: answer the session IQ; anything else ends the stream. (After
        binding the IQ is a stanza: the intake answers it.)"""
        if el.tag != st.IQ:
            raise StreamError("unsupported-stanza-type")
        if not is_session_request(el):
            raise StreamError("not-authorized")
        stream.send(st.reply(el))
        return None


def is_session_request(iq):
    """Whether C{iq} is RFC 3921's <iq type='set'><session/></iq>."""
    return (iq.tag == st.IQ and iq.get("type") == "set" and len(iq) == 1
            and iq[0].tag == SESSION)
