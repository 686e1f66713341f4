"""
What goes into a user's archive: pure functions over a message stanza.

XEP-0313 §5.1.1 asks for every message of type 'normal' or 'chat' with a <body/>; it lets
a server keep other conversation messages too, and XEP-0334 hints override the rest:

- never: types 'error', 'groupchat' (rooms keep their own archives), 'headline'
  (ephemeral by definition); a ``<no-store/>`` or ``<no-permanent-store/>`` hint;
- always (of the other types): a ``<store/>`` hint;
- kept for their content: a body, a subject, an encrypted payload (OMEMO, OpenPGP, or a
  XEP-0380 marker: what it says cannot be known, so it is assumed to matter), chat markers,
  message retractions, invitations to rooms, call setup (Jingle Message Initiation);
- everything else is not kept: a chat state alone, receipts, pure processing messages.

Preferences (XEP-0441) are applied after the content rules: L{prefs_say} tells whether the
preferences archive a message with a given other party, or that the roster must be asked.
"""
from __future__ import annotations

from lxml import etree

from jabberapp.extensions.mam.ns import BODY, NS_HINTS, SUBJECT

__all__ = ["archivable", "inspect", "message_text", "prefs_say"]

NO_STORE = frozenset({f"{{{NS_HINTS}}}no-store", f"{{{NS_HINTS}}}no-permanent-store"})
STORE = f"{{{NS_HINTS}}}store"

#: Namespaces whose presence as a child makes a message worth keeping.
KEPT_NAMESPACES = frozenset({
    "eu.siacs.conversations.axolotl",        # OMEMO (legacy)
    "urn:xmpp:omemo:2",                      # OMEMO 2
    "urn:xmpp:openpgp:0",                    # XEP-0373
    "jabber:x:encrypted",                    # XEP-0027
    "urn:xmpp:eme:0",                        # XEP-0380
    "urn:xmpp:chat-markers:0",               # XEP-0333
    "urn:xmpp:message-retract:1",            # XEP-0424
    "urn:xmpp:message-retract:0",
    "jabber:x:conference",                   # XEP-0249 direct invitations
    "urn:xmpp:jingle-message:0",             # XEP-0353
    "urn:xmpp:jingle-message:1",
})
_MUC_USER_INVITE = "{http://jabber.org/protocol/muc#user}invite"
_MUC_USER_X = "{http://jabber.org/protocol/muc#user}x"


def inspect(message) -> tuple[bool, str | None]:
    """
    (archivable, text) of the message stanza C{message} in one pass over its children:
    whether it belongs in a user's archive by kind and content (the preferences aside),
    and what the full-text search looks in (the first body and the subject).
    """
    if message.get("type", "normal") not in ("normal", "chat"):
        return False, None
    keep = False
    body = subject = None
    for child in message.iterchildren(tag=etree.Element):
        tag = child.tag
        if tag == BODY:
            keep = True
            if body is None:
                body = child.text
        elif tag == SUBJECT:
            keep = True
            subject = child.text
        elif tag in NO_STORE:
            return False, None
        elif keep:
            continue
        elif tag == STORE or tag[1:tag.find("}")] in KEPT_NAMESPACES:
            keep = True
        elif tag == _MUC_USER_X and child.find(_MUC_USER_INVITE) is not None:
            keep = True
    if not keep:
        return False, None
    if subject:
        return True, f"{body}\n{subject}" if body else subject
    return True, body or None


def archivable(message) -> bool:
    """True when C{message} belongs in a user's archive by kind and content."""
    return inspect(message)[0]


def message_text(message) -> str | None:
    """What the full-text search looks in: the (first) body and the subject."""
    return inspect(message)[1]


def prefs_say(prefs, other) -> bool | None:
    """
    Whether the preferences C{prefs} (a Prefs) archive a message exchanged with C{other}
    (a JID: the 'to' of an outgoing message, the 'from' of an incoming one): True, False,
    or None when they leave it to the roster (default='roster', not in either list).
    XEP-0441 §2.3: a listed bare JID matches any resource, a listed full JID only itself;
    'never' wins over 'always'.
    """
    if prefs.never or prefs.always:     # most accounts have no lists: no JID hashed
        bare = other.bare()
        if other in prefs.never or bare in prefs.never:
            return False
        if other in prefs.always or bare in prefs.always:
            return True
    if prefs.default == "roster":
        return None
    return prefs.default == "always"
