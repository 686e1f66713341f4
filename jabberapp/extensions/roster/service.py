"""
The roster extension's shared core: the "roster" service other extensions use
(IRosterService), roster pushes (RFC 6121 §2.1.6) and the per-session state.
"""
import secrets
from dataclasses import dataclass, field

from twisted.internet import defer
from zope.interface import implementer

from jabberapp.extensions.roster.interfaces import IRosterService
from jabberapp.extensions.roster.items import NS_ROSTER, Roster, RosterItem
from jabberapp.extensions.roster.subscription import FROM, BOTH, NONE
from jabberapp.jid import JID
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT

STATE_KEY = "roster"    # our entry in ISession.state


@dataclass
class SessionState:
    """What the roster extension remembers about one bound session."""

    interested: bool = False    # requested the roster: gets roster pushes (§2.1.6)
    versioning: bool = False    # sent a 'ver' (XEP-0237): pushes carry the new version
    directed: dict = field(default_factory=dict)    # JID -> True: directed available presence


def session_state(session):
    """The L{SessionState} of C{session}, created on first use."""
    state = session.state.get(STATE_KEY)
    if state is None:
        state = session.state[STATE_KEY] = SessionState()
    return state


@implementer(IRosterService)
class RosterService:
    """IRosterService over a L{RosterStore}, plus what the protocol handlers share."""

    def __init__(self, host, store, max_items):
        self.host = host
        self.store = store
        self.max_items = max_items

    def user_jid(self, username):
        """The bare JID of the local user C{username}."""
        return JID(username, self.host.domain)

    # -- IRosterService -----------------------------------------------------------------

    def get_items(self, username):
        """See IRosterService.get_items."""
        return self.store.load(username).addCallback(lambda roster: dict(roster.items))

    def get_item(self, username, contact):
        """See IRosterService.get_item."""
        jid = contact.bare()
        return self.store.load(username).addCallback(lambda roster: roster.items.get(jid))

    def subscription(self, username, contact):
        """See IRosterService.subscription."""
        return self.get_item(username, contact).addCallback(
            lambda item: NONE if item is None else item.subscription)

    def can_see_presence(self, username, contact):
        """See IRosterService.can_see_presence."""
        if contact.bare() == self.user_jid(username):
            return defer.succeed(True)
        return self.subscription(username, contact).addCallback(lambda s: s in (FROM, BOTH))

    def pending_requests(self, username):
        """See IRosterService.pending_requests."""
        return self.store.load(username).addCallback(
            lambda roster: sorted(roster.pending, key=str))

    def set_items(self, username, items, pending=()):
        """See IRosterService.set_items."""
        own = self.user_jid(username)
        roster = Roster()
        for item in items:
            if not isinstance(item, RosterItem):
                raise TypeError(f"expected RosterItem values, not {type(item).__name__}")
            if item.jid == own:
                raise ValueError("a roster cannot list its own user")
            if item.jid in roster.items:
                raise ValueError(f"{item.jid} is listed twice")
            roster.items[item.jid] = item
        for jid in pending:
            if jid.bare() != own:
                roster.pending[jid.bare()] = ""
        return self.store.replace(username, roster).addCallback(lambda _: None)

    # -- roster pushes (RFC 6121 §2.1.6) ------------------------------------------------

    def push(self, username, roster, changes):
        """
        Send a roster push of each (jid, item) in C{changes} -- item None means removed --
        to every interested resource of the user; C{roster} is the roster after the change
        (its version goes to resources that use versioning).
        """
        user = self.user_jid(username)
        for session in self.host.sessions.resources(user):
            state = session.state.get(STATE_KEY)
            if state is None or not state.interested:
                continue
            for jid, item in changes:
                query = element(NS_ROSTER, "query")
                if state.versioning:
                    query.set("ver", roster.ver)
                if item is None:
                    query.append(RosterItem(jid).to_element(remove=True))
                else:
                    query.append(item.to_element())
                iq = element(NS_CLIENT, "iq", {"type": "set", "id": f"push-{secrets.token_hex(6)}",
                                               "from": str(user), "to": str(session.jid)})
                iq.append(query)
                self.host.send(iq)
