"""
XEP-0388 Extensible SASL Profile (urn:xmpp:sasl:2) on c2s streams, with XEP-0386 Bind2
inline (jabberapp.stream.bind2).

The exchange is RFC 6120 SASL's (jabberapp.stream.saslauth.SASLAuth): the same mechanisms,
channel bindings, failed-login throttle and attempt limit; only the elements differ, and
success does not restart the stream (§2.6.1): <success/> carries the SCRAM server-final
message in <additional-data/> and the authorization identifier: the full JID when a resource
was bound inline (then the session runs at once), else the bare JID, followed by new
<stream:features/> (resource binding, stream management…).

<authenticate/> may carry a <user-agent id=…/>: the id must be a UUID (§2.3), anything
else is <failure><malformed-request/></failure>, counted by the throttle like a wrong
password. Bind2 derives the resource from it, so a device gets the same resource each time.

Other children of <authenticate/> go to the SASL2 inline features extensions register
(IHost.add_sasl2_feature; advertised in <inline/>) once authenticated, in order: stream
management's <resume/> resumes a session there, and its <resumed/> is in <success/>.
"""
import uuid

from lxml import etree
from twisted.internet import defer
from zope.interface import implementer

from jabberapp import sasl
from jabberapp.errors import StreamError
from jabberapp.interfaces import IStreamFeature
from jabberapp.logging import logger
from jabberapp.stream import bind2
from jabberapp.stream.saslauth import SASLAuth, encode, encryption_missing
from jabberapp.xml import element
from jabberapp.xml.ns import NS_SASL

log = logger(__name__)

NS_SASL2 = "urn:xmpp:sasl:2"
AUTHENTICATE = f"{{{NS_SASL2}}}authenticate"
RESPONSE = f"{{{NS_SASL2}}}response"
ABORT = f"{{{NS_SASL2}}}abort"
# stream.state key of the <authenticate/> under way (its inline requests are read on success).
_REQUEST = (NS_SASL2, "authenticate")


@implementer(IStreamFeature)
class SASL2(SASLAuth):
    """XEP-0388 on a c2s stream; see the module docstring."""

    namespace = NS_SASL2

    def advertise(self, stream):
        """<authentication/> with the mechanisms and, inline, Bind2 and what extensions
        offer in it, before authentication once the stream meets require_encryption."""
        if stream.username is not None or encryption_missing(stream):
            return None
        authentication = element(NS_SASL2, "authentication")
        for name in sasl.available_mechanisms(stream.sasl_context()):
            etree.SubElement(authentication, f"{{{NS_SASL2}}}mechanism").text = name
        inline = etree.SubElement(authentication, f"{{{NS_SASL2}}}inline")
        inline.append(bind2.advertise(stream.host))
        for namespace, (name, _, offer) in stream.host.sasl2_features.items():
            offered = element(namespace, name) if offer is None else offer(stream)
            if offered is not None:
                inline.append(offered)
        return authentication

    def handle(self, stream, el):
        """<authenticate/>, <response/> or <abort/>."""
        tag = el.tag
        if tag == AUTHENTICATE:
            return self._authenticate(stream, el)
        if tag == RESPONSE:
            return self._response(stream, el)
        if tag == ABORT:
            return self._failed(stream, sasl.SASLFailure("aborted"))
        raise StreamError("unsupported-stanza-type")

    def _authenticate(self, stream, el):
        if stream.username is not None:
            raise StreamError("policy-violation", "Already authenticated")
        agent = el.find(f"{{{NS_SASL2}}}user-agent")
        if agent is not None and agent.get("id") is not None and not is_uuid(agent.get("id")):
            return self._failed(stream, sasl.SASLFailure(
                "malformed-request", "The user-agent id must be a UUID"))
        stream.state[_REQUEST] = el
        initial = el.find(f"{{{NS_SASL2}}}initial-response")
        # An empty <initial-response/> is an empty response; its absence is none (§2.2).
        text = None if initial is None else (initial.text or "=")
        return self._start(stream, el.get("mechanism", ""), text)

    def _mechanism(self, stream, name, context):
        """An extension's SASL2-only mechanism (IHost.add_sasl2_mechanism: FAST's), else
        one of the core's."""
        factory = stream.host.sasl2_mechanisms.get(name)
        if factory is not None:
            return factory(stream, context, stream.state.get(_REQUEST))
        return super()._mechanism(stream, name, context)

    def _challenge(self, data):
        return element(NS_SASL2, "challenge", text=encode(data))

    def _succeeded(self, stream, outcome):
        """<success/> without a stream restart; a Bind2 request binds first, so the
        success names the full JID and carries <bound/>."""
        request = stream.state.pop(_REQUEST, None)
        success = element(NS_SASL2, "success")
        if outcome.data:
            etree.SubElement(success, f"{{{NS_SASL2}}}additional-data").text = encode(
                outcome.data)
        identifier = etree.SubElement(success, f"{{{NS_SASL2}}}authorization-identifier")
        identifier.text = f"{stream.username}@{stream.host.domain}"
        log.info("authenticated {user}@{host} from {address} (SASL2)", user=stream.username,
                 host=stream.host.domain, address=stream.peer_address)
        features = stream.host.sasl2_features
        inline = iter([] if request is None else [
            (child, features[etree.QName(child).namespace][1]) for child in request
            if etree.QName(child).namespace in features])
        return self._inline(stream, request, success, identifier, inline)

    def _inline(self, stream, request, success, identifier, inline):
        """Run the inline features of <authenticate/> in order (a handler may answer
        later: the rest waits), then bind or offer the next features. A feature that
        gives the stream a session (a stream management resumption) sends <success/>
        with its answer and ends the negotiation."""
        def answer(result):
            success.append(result)
            if stream.session is not None:
                identifier.text = str(stream.session.jid)
                stream.send(success)

        for child, handler in inline:
            d = handler(stream, child, answer)
            if stream.session is not None:
                return None
            if isinstance(d, defer.Deferred):
                return d.addCallback(lambda _: self._inline(stream, request, success,
                                                            identifier, inline))
        if stream.session is not None:
            return None
        bind = None if request is None else request.find(bind2.BIND)
        if bind is not None:
            bind2.bind(stream, bind, user_agent_id(request), success, identifier)
            return None
        # No restart: the features of the authenticated stage follow at once (§2.6.1).
        stream.send(success)
        stream.send(stream.features())
        return None

    def _failure(self, failure):
        reply = element(NS_SASL2, "failure")
        etree.SubElement(reply, f"{{{NS_SASL}}}{failure.condition}")
        if failure.text:
            etree.SubElement(reply, f"{{{NS_SASL2}}}text").text = failure.text
        return reply


def user_agent_id(request):
    """The <user-agent id=…/> of an <authenticate/>, or None."""
    agent = request.find(f"{{{NS_SASL2}}}user-agent")
    return None if agent is None else agent.get("id")


def is_uuid(text):
    """Whether C{text} is a UUID in its usual hex-and-hyphens form (XEP-0388 §2.3)."""
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False
