"""
The bound c2s sessions of one host, indexed by bare JID and resource (dict lookups only), and
the session-level presence rules every kind of client session shares (RFC 6121 §4).
"""
from lxml import etree
from zope.interface import implementer

from jabberapp import dispatch, stanza as st
from jabberapp.interfaces import ISessionRegistry
from jabberapp.xml.ns import NS_CLIENT

PRIORITY = f"{{{NS_CLIENT}}}priority"


@implementer(ISessionRegistry)
class SessionRegistry:
    """Bare JID -> {resource: session}. Sessions expose 'jid' (a full JID), 'available' and
    'priority'."""

    def __init__(self):
        self._by_bare = {}

    def bind(self, session):
        """Register C{session} under its full JID; return the session it replaced, if any."""
        jid = session.jid
        resources = self._by_bare.setdefault(jid.bare(), {})
        replaced = resources.get(jid.resource)
        resources[jid.resource] = session
        return replaced

    def unbind(self, session):
        """Forget C{session} if it is still the one bound to its full JID."""
        bare = session.jid.bare()
        resources = self._by_bare.get(bare)
        if resources is not None and resources.get(session.jid.resource) is session:
            del resources[session.jid.resource]
            if not resources:
                del self._by_bare[bare]

    def get(self, full_jid):
        """The session bound to C{full_jid}, or None."""
        resources = self._by_bare.get(full_jid.bare())
        return None if resources is None else resources.get(full_jid.resource)

    def resources(self, bare_jid):
        """Every session bound for C{bare_jid}."""
        resources = self._by_bare.get(bare_jid)
        return list(resources.values()) if resources else []

    def available(self, bare_jid):
        """The sessions of C{bare_jid} that have sent available presence."""
        resources = self._by_bare.get(bare_jid)
        if not resources:
            return []
        return [s for s in resources.values() if s.available]

    def __iter__(self):
        for resources in list(self._by_bare.values()):
            yield from list(resources.values())

    def __len__(self):
        return sum(len(resources) for resources in self._by_bare.values())


def presence_without_to(host, session, presence):
    """
    Presence a bound session sent without 'to' (its 'from' already stamped): update the
    session's availability and priority, show it to the user's own available resources,
    then fire PRESENCE_BROADCAST (the roster broadcast) and, for initial presence,
    SESSION_AVAILABLE.
    """
    type_ = presence.get("type")
    initial = type_ is None and not session.available
    if type_ is None:
        session.available = True
        session.priority = priority_of(presence)
        session.presence = presence
    elif type_ == "unavailable":
        session.available = False
        session.presence = None
    else:
        # Subscription and probe types need an addressee (RFC 6121 §3, §4.3).
        host.dispatcher.bounce(presence, "bad-request")
        return
    _broadcast(host, session, presence)
    if initial:
        host.dispatcher.hooks.fire(dispatch.SESSION_AVAILABLE, session)


def session_ended(host, session):
    """A bound session is gone (logoff, drop, timeout): unavailable broadcast when it was
    available, unbind, SESSION_CLOSED."""
    if session.available:
        gone = etree.Element(st.PRESENCE, nsmap={None: NS_CLIENT}, type="unavailable")
        gone.set("from", str(session.jid))
        session.available = False
        session.presence = None
        _broadcast(host, session, gone)
    host.sessions.unbind(session)
    host.dispatcher.hooks.fire(dispatch.SESSION_CLOSED, session)


def _broadcast(host, session, presence):
    """Presence to the user's own available resources (the sender included while it is
    connected, RFC 6121 §4.2.2, §4.5.2), then the roster broadcast hook."""
    recipients = host.sessions.available(session.jid.bare())
    if presence.get("type") == "unavailable" and session not in recipients:
        recipients.append(session)
    for recipient in recipients:
        recipient.send(presence)
    host.dispatcher.hooks.fire(dispatch.PRESENCE_BROADCAST, presence, session)


def priority_of(presence):
    """RFC 6121 §4.7.2.3: an integer from -128 to +127, 0 when absent or invalid."""
    text = presence.findtext(PRIORITY)
    try:
        value = int(text) if text is not None else 0
    except ValueError:
        return 0
    return max(-128, min(127, value))
