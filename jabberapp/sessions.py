"""The bound c2s sessions of one host, indexed by bare JID and resource (dict lookups only)."""
from zope.interface import implementer

from jabberapp.interfaces import ISessionRegistry


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
