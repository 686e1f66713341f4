"""
Helpers over stanzas, which are plain lxml elements in the jabber:client namespace.

Tags are compared with the precomputed Clark names below: no XPath on the stanza path.
"""
from lxml import etree

from jabberapp.errors import StanzaError
from jabberapp.xml.ns import NS_CLIENT

MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"
IQ = f"{{{NS_CLIENT}}}iq"
STANZA_TAGS = frozenset({MESSAGE, PRESENCE, IQ})
ERROR = f"{{{NS_CLIENT}}}error"

IQ_TYPES = frozenset({"get", "set", "result", "error"})
MESSAGE_TYPES = frozenset({"chat", "error", "groupchat", "headline", "normal"})
PRESENCE_TYPES = frozenset({"error", "probe", "subscribe", "subscribed", "unavailable",
                            "unsubscribe", "unsubscribed"})


def is_error_or_result(stanza) -> bool:
    """True for stanzas that must never be answered (RFC 6120 §8.3.1, §8.2.3)."""
    return stanza.get("type") in ("error", "result")


def reply(stanza, type="result"):
    """A new empty stanza of the same kind with 'to'/'from' swapped and the same id."""
    answer = etree.Element(stanza.tag, nsmap={None: NS_CLIENT}, type=type)
    sender = stanza.get("from")
    if sender is not None:
        answer.set("to", sender)
    recipient = stanza.get("to")
    if recipient is not None:
        answer.set("from", recipient)
    stanza_id = stanza.get("id")
    if stanza_id is not None:
        answer.set("id", stanza_id)
    return answer


def error_reply(stanza, error: StanzaError, by=None):
    """The error reply to C{stanza}; the original payload is not echoed back."""
    answer = reply(stanza, type="error")
    answer.append(error.to_element(by=by))
    return answer


def child(stanza, tag):
    """The first child element with Clark name C{tag}, or None (no XPath)."""
    return stanza.find(tag)
