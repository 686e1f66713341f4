"""
The MAM features in the disco#info of the user's own bare JID (XEP-0313 §6: "MUST
advertise ... in response to disco requests made to archiving JIDs, i.e. users' bare
JIDs"), which Conversations and others ask before they use the archive.

The disco extension answers a bare JID with the first provider that claims it, and the
PEP provider claims the owner's own JID with its features. So this provider, registered
before it (extensions install in name order, dependencies first), asks the providers after
it for the owner's answer and adds the MAM features to it; with none, it answers for the
account as the disco extension would. Registered after another claimant it is never
asked, and the features are only on the server's JID. (A disco extension that merged
every provider's features for an account would make this unnecessary.)
"""
from __future__ import annotations

from twisted.internet import defer

from jabberapp.extensions.mam.ns import NS_FULLTEXT, NS_MAM, NS_MAM_EXTENDED, NS_SID
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

__all__ = ["ArchiveDisco"]

#: Declared on the host JID and added to the owner's bare JID; XEP-0359 asks for its
#: feature from an entity that stamps stanza-ids.
FEATURES = (NS_MAM, NS_MAM_EXTENDED, NS_FULLTEXT, NS_SID)


class ArchiveDisco:
    """An IDiscoProvider for the owner's own bare JID; see the module docstring."""

    def __init__(self, host) -> None:
        self.host = host
        self._asking: set = set()     # requests being answered: the others are asked once

    def info(self, requester, target, node):
        """The owner's account answer with the MAM features, else None."""
        if (node is not None or requester is None or target.local is None
                or target.resource is not None or target.domain != self.host.domain
                or requester.bare() != target or (requester, target) in self._asking):
            return None
        return self._merged(requester, target)

    @defer.inlineCallbacks
    def _merged(self, requester, target):
        key = (requester, target)
        self._asking.add(key)
        try:
            answer = None
            for provider in self.host.disco_providers:
                if provider is self:
                    continue
                answer = yield defer.maybeDeferred(provider.info, requester, target, None)
                if answer is not None:
                    break
        finally:
            self._asking.discard(key)
        if answer is None:
            if not (yield self.host.storage.accounts.exists(self.host.domain, target.local)):
                return None     # the disco extension answers service-unavailable
            answer = ([("account", "registered", None)], [NS_DISCO_INFO, NS_DISCO_ITEMS])
        identities, features = answer
        return list(identities), [*features, *(f for f in FEATURES if f not in features)]

    def items(self, requester, target, node):
        """No items of its own."""
        return None
