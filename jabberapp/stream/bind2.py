"""
XEP-0386 Bind 2 (urn:xmpp:bind:0): resource binding inline in a SASL2 <authenticate/>
(jabberapp.stream.sasl2), with the inline features extensions register.

The server chooses the resource: the client's <tag/> (when it is a valid resourcepart),
a dot and a short hash of the SASL2 user-agent id, so a device that reconnects gets the same
resource and replaces its own stale session rather than piling up new ones (§3, as
ejabberd and Prosody do). Without a user-agent id the resource is random.

Inline features: an extension registers C{host.add_bind2_feature(namespace, handler)}
(IHost); the namespace is advertised as <feature var=…/> in the <inline/> of the <bind/>
offered in SASL2's <authentication/>, and each child of the client's <bind/> in that
namespace is given to C{handler(stream, element)} once the session is bound and before any
stanza reaches it; what the handler returns (an element, or None) goes into <bound/>.
There is no central list: the core knows none of them.
"""
import hashlib

from lxml import etree

from jabberapp.jid import InvalidJID, prep_resource
from jabberapp.logging import logger
from jabberapp.xml import element

log = logger(__name__)

NS_BIND2 = "urn:xmpp:bind:0"
BIND = f"{{{NS_BIND2}}}bind"
# Hex digits of the user-agent id's hash in the resource: 2^32 devices per account is ample.
HASH_DIGITS = 8


def advertise(host):
    """<bind/> with an <inline/> listing the host's Bind2 features."""
    bind = element(NS_BIND2, "bind")
    inline = etree.SubElement(bind, f"{{{NS_BIND2}}}inline")
    for namespace in host.bind2_features:
        etree.SubElement(inline, f"{{{NS_BIND2}}}feature", var=namespace)
    return bind


def resource_for(tag, user_agent_id):
    """The resource of a Bind2 request: 'tag.hash' of the user-agent id, 'hash' without a
    usable tag, or None (random) without a user-agent id."""
    if user_agent_id is None:
        return None
    digest = hashlib.sha256(user_agent_id.lower().encode()).hexdigest()[:HASH_DIGITS]
    if tag:
        try:
            return prep_resource(f"{tag}.{digest}")
        except InvalidJID:
            pass
    return digest


def bind(stream, request, user_agent_id, success, identifier):
    """Bind the resource C{request} (a <bind/>) asks for and send C{success} (the SASL2
    <success/>), its C{identifier} set to the full JID and <bound/> holding what the
    inline features answered."""
    resource = resource_for(request.findtext(f"{{{NS_BIND2}}}tag"), user_agent_id)
    features = stream.host.bind2_features

    def reply(session):
        identifier.text = str(session.jid)
        bound = etree.SubElement(success, f"{{{NS_BIND2}}}bound")
        for child in request:
            handler = features.get(etree.QName(child).namespace)
            if handler is None:
                continue        # §4: what the server does not offer is ignored
            try:
                result = handler(stream, child)
            except Exception:
                log.failure("Bind2 inline feature {namespace} failed",
                            namespace=etree.QName(child).namespace)
                continue
            if result is not None:
                bound.append(result)
        return success

    return stream.bind(resource, reply=reply)
