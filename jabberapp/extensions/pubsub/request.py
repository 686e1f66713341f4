"""
XEP-0060 requests as the handlers see them, and the checks of their attributes that every
kind of request shares (§6.1.3, §7.1.3).
"""
from dataclasses import dataclass

from lxml import etree

from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub.config import pubsub_error
from jabberapp.jid import InvalidJID, JID


@dataclass(frozen=True)
class Request:
    """One pubsub IQ: the C{owner} addressed (a JID string: the service domain or a PEP
    account), the C{requester} (the sender's JID), the C{verb} element (<create/>,
    <items/>, ...) and the <pubsub/> C{payload} that holds it with its siblings
    (<configure/>, <publish-options/>, <options/>, RSM)."""

    owner: str
    requester: JID
    verb: etree._Element
    payload: etree._Element


def node_name(verb):
    """The 'node' attribute of C{verb}; <nodeid-required/> without one."""
    node = verb.get("node")
    if not node:
        raise pubsub_error("bad-request", "nodeid-required")
    return node


def jid_attribute(verb):
    """The 'jid' attribute of C{verb} as a JID; <jid-required/> or <jid-malformed/>."""
    text = verb.get("jid")
    if not text:
        raise pubsub_error("bad-request", "jid-required")
    try:
        return JID.parse(text)
    except InvalidJID:
        raise StanzaError("jid-malformed") from None


def own_jid(verb, requester):
    """The 'jid' of a subscribe or unsubscribe, which must be the requester's bare or full
    JID (§6.1.3: <invalid-jid/>)."""
    jid = jid_attribute(verb)
    if jid.bare() != requester.bare():
        raise pubsub_error("bad-request", "invalid-jid")
    return jid


def check_subid(verb, subid):
    """Refuse a 'subid' attribute of C{verb} that is not C{subid} (<invalid-subid/>)."""
    if verb.get("subid") and verb.get("subid") != subid:
        raise pubsub_error("not-acceptable", "invalid-subid")


def entry_jid(entry):
    """The 'jid' of an owner's <subscription/> or <affiliation/> entry; jid-malformed."""
    try:
        return JID.parse(entry.get("jid") or "")
    except InvalidJID:
        raise StanzaError("jid-malformed") from None


def bool_attribute(value):
    """True for an XML Schema boolean attribute that is true."""
    return value in ("1", "true")
