"""
Roster items and their storage: one JSON document per user in the key-value store
"roster", a per-user cache, one queue of changes per user, and the XEP-0237 version.

The document (key L{ROSTER_KEY}) is what L{Roster.to_json} writes::

    {"format": 1, "epoch": "k3Jd9a", "version": 7,
     "items": {"bob@example.org": {"name": "Bob", "groups": ["Friends"],
                                   "subscription": "both", "ask": false,
                                   "approved": false}},
     "pending": {"carol@example.org": "<presence type='subscribe' .../>"}}

``pending`` holds the inbound subscription requests the user has not answered (the
"Pending In" of RFC 6121 Appendix A), with the request stanza as received, so that it can
be delivered again at the user's next login (§3.1.3) -- whether or not the contact is in
the roster. ``epoch`` is drawn when the document is first written and ``version`` counts
the changes: the roster version (XEP-0237) is "<epoch>-<version>", so a roster deleted and
created again never repeats a version a client has cached.

Every change goes through L{RosterStore.modify}, which runs in the user's turn
(jabberapp.peruser) on a copy of the cached roster and stores it before the cache sees it:
readers always see a stored roster, and concurrent stanzas for one user cannot lose each
other's updates.
"""
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from twisted.internet import defer

from jabberapp.jid import InvalidJID, JID
from jabberapp.peruser import PerUserQueue
from jabberapp.xml import element
from jabberapp.extensions.roster.subscription import NONE, SUBSCRIPTIONS, State

NS_ROSTER = "jabber:iq:roster"
ROSTER_KEY = "roster"
STORE_NAME = "roster"
FORMAT = 1
CACHE_SIZE = 1024          # rosters kept in memory per host (least recently used dropped)


class RosterFull(Exception):
    """Storing the change would take the roster (or its pending requests) over the limit."""


@dataclass(frozen=True)
class RosterItem:
    """
    One contact in a user's roster (RFC 6121 §2.1.2): its bare JID, handle, groups, and
    the subscription state shown to clients ('subscription', ask='subscribe', approved).
    """

    jid: JID
    name: str | None = None
    groups: tuple[str, ...] = ()
    subscription: str = NONE
    ask: bool = False
    approved: bool = False

    def __post_init__(self):
        if not isinstance(self.jid, JID) or not self.jid.is_bare:
            raise ValueError(f"a roster item needs a bare JID, not {self.jid!r}")
        if self.subscription not in SUBSCRIPTIONS:
            raise ValueError(f"unknown subscription {self.subscription!r}")
        if len(set(self.groups)) != len(self.groups):
            raise ValueError("duplicate groups")

    def to_element(self, remove=False):
        """The <item/> element for a roster result or push."""
        item = element(NS_ROSTER, "item", jid=str(self.jid))
        if remove:
            item.set("subscription", "remove")
            return item
        if self.name:
            item.set("name", self.name)
        item.set("subscription", self.subscription)
        if self.ask:
            item.set("ask", "subscribe")
        if self.approved:
            item.set("approved", "true")
        for group in self.groups:
            item.append(element(NS_ROSTER, "group", text=group))
        return item

    def to_json(self):
        """The JSON-ready dict stored for this item (its JID is the key)."""
        return {"name": self.name, "groups": list(self.groups),
                "subscription": self.subscription, "ask": self.ask,
                "approved": self.approved}

    @classmethod
    def from_json(cls, jid, value):
        """The item stored as C{value} under the JID string C{jid}."""
        return cls(JID.parse(jid), value.get("name"), tuple(value.get("groups", ())),
                   value.get("subscription", NONE), bool(value.get("ask")),
                   bool(value.get("approved")))


@dataclass
class Roster:
    """A user's roster: items by bare JID, pending inbound requests, version."""

    items: dict = field(default_factory=dict)      # JID -> RosterItem
    pending: dict = field(default_factory=dict)    # JID -> request stanza (str) or ""
    epoch: str | None = None
    version: int = 0

    @property
    def ver(self):
        """The roster version string (XEP-0237) for clients."""
        return "0" if self.epoch is None else f"{self.epoch}-{self.version}"

    def copy(self):
        return Roster(dict(self.items), dict(self.pending), self.epoch, self.version)

    def state(self, jid):
        """The subscription State of the contact C{jid} (a bare JID)."""
        item = self.items.get(jid)
        pending_in = jid in self.pending
        if item is None:
            return State(pending_in=pending_in)
        return State(item.subscription, item.ask, pending_in, item.approved)

    def set_state(self, jid, state, limit=None):
        """
        Store C{state} for C{jid}: update (or create, when the state shows in a roster
        item) the item and the pending request set. Returns the item, or None when the
        contact has no item. Raises RosterFull when a new item or request would pass
        C{limit}.
        """
        item = self.items.get(jid)
        shown = state.visible != (NONE, False, False)
        if item is None and shown:
            if limit is not None and len(self.items) >= limit:
                raise RosterFull(jid)
            item = RosterItem(jid)
        if state.pending_in and jid not in self.pending:
            if limit is not None and len(self.pending) >= limit:
                raise RosterFull(jid)
            self.pending[jid] = ""
        elif not state.pending_in:
            self.pending.pop(jid, None)
        if item is not None:
            item = replace(item, subscription=state.subscription, ask=state.pending_out,
                           approved=state.approved)
            self.items[jid] = item
        return item

    def to_json(self):
        """The stored document (see the module docstring)."""
        return {"format": FORMAT, "epoch": self.epoch, "version": self.version,
                "items": {str(jid): item.to_json() for jid, item in self.items.items()},
                "pending": {str(jid): stanza for jid, stanza in self.pending.items()}}

    @classmethod
    def from_json(cls, value):
        """The roster stored as C{value} (None: an empty roster never stored)."""
        if not value:
            return cls()
        items = {}
        for jid, item in value.get("items", {}).items():
            try:
                parsed = RosterItem.from_json(jid, item)
            except (InvalidJID, ValueError, TypeError, AttributeError):
                continue    # a damaged item must not make the whole roster unreadable
            items[parsed.jid] = parsed
        pending = {}
        for jid, stanza in value.get("pending", {}).items():
            try:
                pending[JID.parse(jid).bare()] = stanza if isinstance(stanza, str) else ""
            except InvalidJID:
                continue
        return cls(items, pending, value.get("epoch"), int(value.get("version", 0)))


class RosterStore:
    """
    The rosters of one host: reads through a bounded cache, writes one at a time per user.

    C{load(username)} fires with the user's current L{Roster} (treat it as read-only).
    C{modify(username, change)} calls C{change(roster)} on a private copy in the user's
    turn; if the copy's items or pending requests differ from the original, it is stored
    with the next version and then becomes the cached roster. The Deferred fires with
    (C{change}'s result, the roster as it now is); an exception raised by C{change} fails
    it and nothing is stored.
    """

    def __init__(self, host, cache_size=CACHE_SIZE):
        self.host = host
        self.store = host.storage.keyvalue(STORE_NAME)
        self.cache_size = cache_size
        self._cache = OrderedDict()     # username -> Roster
        self._loading = {}              # username -> list of waiting Deferreds
        self._turns = PerUserQueue()    # each user's changes, one at a time
        self._stale = set()             # usernames forgotten while their read was in flight

    def cached(self, username):
        """The user's Roster when it is in the cache (treat it as read-only), else None."""
        roster = self._cache.get(username)
        if roster is not None:
            self._cache.move_to_end(username)
        return roster

    def load(self, username):
        """Deferred: the user's Roster (from the cache when possible)."""
        roster = self.cached(username)
        if roster is not None:
            return defer.succeed(roster)
        d = defer.Deferred()
        waiting = self._loading.get(username)
        if waiting is not None:
            waiting.append(d)
            return d
        self._loading[username] = [d]
        read = self.store.get(self.host.domain, username, ROSTER_KEY)
        read.addCallbacks(lambda value: self._loaded(username, value),
                          lambda failure: self._load_failed(username, failure))
        return d

    def _loaded(self, username, value):
        waiting = self._loading.pop(username, [])
        roster = self._cache.get(username)
        if roster is None:      # a write that finished meanwhile is newer than what we read
            roster = Roster.from_json(value)
            if username in self._stale:
                self._stale.discard(username)
            else:
                self._remember(username, roster)
        for d in waiting:
            d.callback(roster)

    def _load_failed(self, username, failure):
        self._stale.discard(username)
        for d in self._loading.pop(username, []):
            d.errback(failure)

    def _remember(self, username, roster):
        self._cache[username] = roster
        self._cache.move_to_end(username)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def modify(self, username, change):
        """Deferred: (C{change(copy)}'s result, the current roster), after storing it."""
        return self._turns.run(username, self._modify, username, change)

    @defer.inlineCallbacks
    def _modify(self, username, change):
        current = yield self.load(username)
        roster = current.copy()
        result = change(roster)
        if roster.items == current.items and roster.pending == current.pending:
            return result, current
        yield self._store(username, roster)
        return result, roster

    def load_in_turn(self, username):
        """
        Deferred: the user's Roster once every change queued before this call is stored
        (a read that waits its turn in the user's queue).
        """
        return self.modify(username, lambda roster: None).addCallback(lambda pair: pair[1])

    def replace(self, username, roster):
        """Deferred: store C{roster} as the user's whole roster (in the user's turn)."""
        def change(copy):
            copy.items, copy.pending = dict(roster.items), dict(roster.pending)
        return self.modify(username, change)

    @defer.inlineCallbacks
    def _store(self, username, roster):
        if roster.epoch is None:
            roster.epoch = secrets.token_urlsafe(6)
        roster.version += 1
        yield self.store.set(self.host.domain, username, ROSTER_KEY, roster.to_json())
        self._remember(username, roster)

    def forget(self, username):
        """Drop what is cached for C{username} (the account was deleted)."""
        self._cache.pop(username, None)
        if username in self._loading:
            self._stale.add(username)
