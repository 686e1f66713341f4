"""
Who may do what with a pubsub node (XEP-0060 §4.1 affiliations, §4.5 access models, the
publish models): decisions only, no stanzas.

A node's record (see L{INodeStore.get_node}) is all a rule looks at, with the roster
service for the access models presence and roster. With PEP the owner is a user's bare JID
and always the owner of its nodes. Outcasts are refused everything; owners, publishers and
members read past any access model.

A refusal is an exception of this module, never a stanza error: the protocol edge
(L{jabberapp.extensions.pubsub.protocol.ERRORS}) maps each one to its stanza error in one
table, as idavoll's C{_errorMap} does. The text a refusal carries is the error's text.
"""
from jabberapp.jid import JID

AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "outcast")
READERS = ("owner", "publisher", "member")     # affiliations past any access model
PUBLISHERS = ("owner", "publisher", "publish-only")
RETRACTORS = ("owner", "publisher")


class Refused(Exception):
    """A rule refuses the request; C{text} says why (for the error's text), or None."""

    def __init__(self, text=None):
        super().__init__(text)
        self.text = text


class Forbidden(Refused):
    """The requester's affiliation does not allow it (forbidden)."""


class PendingSubscription(Refused):
    """Access model authorize: the request awaits the owner's approval."""


class NotSubscribed(Refused):
    """Access model authorize: the requester is not subscribed and has not asked."""


class ClosedNode(Refused):
    """Access model whitelist: the requester is not on the list."""


class PresenceSubscriptionRequired(Refused):
    """Access model presence: the requester may not see an owner's presence."""


class NotInRosterGroup(Refused):
    """Access model roster: the requester is in none of the allowed roster groups."""


class NotAcceptable(Refused):
    """An affiliation change would leave a node without its owner."""


def outcasts(record):
    """The bare JIDs (strings) the node has banned."""
    return {jid for jid, affiliation in record["affiliations"].items()
            if affiliation == "outcast"}


def subscribed(record, jid):
    """True when C{jid} (a JID) or another resource of its bare JID is subscribed."""
    return any(JID.parse(j).bare() == jid.bare() for j in record["subscriptions"])


def requested(record, jid):
    """True when C{jid}'s bare JID has a subscription request pending."""
    return any(JID.parse(j).bare() == jid.bare() for j in record.get("pending", {}))


class Rules:
    """
    The rules of one host's pubsub service or PEP; see the module docstring.

    C{pep} selects PEP rules. (The most nodes an owner may have is kept by the storage
    layer, which checks it with each creation: L{Nodes.create}.)
    """

    def __init__(self, host, pep=False):
        self.host = host
        self.pep = pep

    def affiliation(self, owner, record, jid):
        """The affiliation of C{jid} (a JID) with a node of C{owner}."""
        bare = str(jid.bare())
        if self.pep and bare == owner:
            return "owner"
        return record["affiliations"].get(bare, "none")

    def require_owner(self, owner, record, requester):
        """Refuse C{requester} unless it owns the node."""
        if self.affiliation(owner, record, requester) != "owner":
            raise Forbidden("Only the node's owner may do that")

    def may_create(self, owner, requester):
        """Refuse C{requester} creating nodes of C{owner}: with PEP only the account owner
        may, on the service any local user."""
        if self.pep:
            if str(requester.bare()) != owner:
                raise Forbidden("Only the account owner creates its nodes")
        elif requester.domain != self.host.domain or requester.local is None:
            raise Forbidden("Only local users may create nodes")

    def may_publish(self, owner, record, requester):
        """Refuse C{requester} publishing unless its affiliation or the publish model
        (publishers, subscribers, open) allows it."""
        affiliation = self.affiliation(owner, record, requester)
        model = record["config"].get("publish_model", "publishers")
        allowed = affiliation in PUBLISHERS or (
            affiliation != "outcast" and (
                model == "open" or (model == "subscribers" and subscribed(record, requester))))
        if not allowed:
            raise Forbidden("You may not publish to this node")

    def may_retract(self, owner, record, requester):
        """Refuse C{requester} retracting unless it is an owner or publisher."""
        if self.affiliation(owner, record, requester) not in RETRACTORS:
            raise Forbidden("You may not retract items of this node")

    def may_see_subscription(self, owner, record, requester, jid):
        """Refuse C{requester} the options of C{jid}'s subscription unless it is its own
        or it owns the node (§6.3.4.1)."""
        if jid.bare() != requester.bare() and self.affiliation(
                owner, record, requester) != "owner":
            raise Forbidden("Not your subscription")

    def may_set_affiliation(self, owner, jid):
        """Refuse changing the affiliation of C{jid} (a bare JID string): with PEP the
        account owner stays the owner."""
        if self.pep and jid == owner:
            raise NotAcceptable("The account owner stays the owner")

    def keeps_owner(self, affiliations):
        """Refuse C{affiliations} (bare JID -> affiliation, after a change) without an
        owner, on the service (a PEP node's owner is implicit)."""
        if not self.pep and "owner" not in affiliations.values():
            raise NotAcceptable("A node must keep an owner")

    def needs_approval(self, owner, record, jid):
        """True when a subscription of C{jid} to the node awaits the owner's approval
        (access model authorize, §6.1.3.2): it is not subscribed and no reader."""
        return (record["config"].get("access_model") == "authorize"
                and self.affiliation(owner, record, jid) not in READERS + ("outcast",)
                and str(jid) not in record["subscriptions"])

    def approvers(self, owner, record):
        """The JIDs (strings) asked to approve subscription requests, sorted."""
        if self.pep:
            return [owner]
        return sorted(j for j, a in record["affiliations"].items() if a == "owner")

    async def check_access(self, owner, record, requester):
        """Refuse C{requester} subscribing to or reading the node when its access model
        says so (§6.1.3)."""
        affiliation = self.affiliation(owner, record, requester)
        if affiliation == "outcast":
            raise Forbidden("You are banned from this node")
        if affiliation in READERS:
            return
        model = record["config"].get("access_model", "open")
        if model == "open":
            return
        if model == "authorize":
            if subscribed(record, requester):
                return
            if requested(record, requester):
                raise PendingSubscription()
            raise NotSubscribed()
        if model == "whitelist":
            raise ClosedNode()
        groups = record["config"].get("roster_groups_allowed") or []
        for owner_jid in self.local_owners(owner, record):
            if model == "presence" and await self._sees_presence(owner_jid, requester):
                return
            if model == "roster" and await self._in_groups(owner_jid, requester, groups):
                return
        if model == "presence":
            raise PresenceSubscriptionRequired()
        raise NotInRosterGroup()

    def local_owners(self, owner, record):
        """The local users owning the node, whose rosters the presence/roster models use."""
        jids = [owner] if self.pep else [j for j, a in record["affiliations"].items()
                                        if a == "owner"]
        found = []
        for text in jids:
            jid = JID.parse(text)
            if jid.local is not None and jid.domain == self.host.domain:
                found.append(jid)
        return found

    def _roster(self):
        return self.host.service("roster") if self.host.has_service("roster") else None

    async def _sees_presence(self, owner_jid, requester):
        roster = self._roster()
        if roster is None:
            return requester.bare() == owner_jid
        return await roster.can_see_presence(owner_jid.local, requester)

    async def _in_groups(self, owner_jid, requester, groups):
        roster = self._roster()
        if roster is None or requester.bare() == owner_jid:
            return requester.bare() == owner_jid
        item = await roster.get_item(owner_jid.local, requester)
        return (item is not None and item.subscription in ("from", "both")
                and bool(set(item.groups) & set(groups)))
