"""
RFC 6121 §3 and §4: presence subscriptions and presence, on top of the roster.

Theory of operation
-------------------
Subscription stanzas a user sends ('subscribe', 'subscribed', 'unsubscribe',
'unsubscribed', with a 'to') are taken from the PRE_PRESENCE chain: 'from' becomes the
user's bare JID and 'to' the contact's bare JID (§3.1.2), the roster changes as
subscription.outbound() says, and then the stanza is routed (through the outbound filters:
host.send_from_user), the roster pushed, and presence sent where the RFC asks for it.
Subscription stanzas and probes addressed to a local user, bare or full JID (§8.5.3.1: a
full JID is treated as the bare one), are taken from the PRESENCE_BARE and PRESENCE_FULL
chains: subscription.inbound() decides what is stored, delivered, pushed and answered.
Stanzas for users that do not exist are ignored (§8.5.1).

Inbound subscription requests are kept in the roster document until the user answers
them: delivered to the available resources now if there are any, and to every resource
that becomes available later (§3.1.3).

Presence (§4): the core shows a resource's presence without 'to' to the user's own
resources and fires PRESENCE_BROADCAST; here it goes to every contact with a 'from' or
'both' subscription. Initial presence (SESSION_AVAILABLE) also sends probes from the user's
bare JID to every contact with 'to' or 'both', shows the user's other available resources
to the new one (§4.2.2; the core does the reverse), delivers the pending subscription
requests to it, and sends the user's unanswered requests again (as Prosody does). A probe
to a local user is answered with the last presence of each available resource when the
prober may see it, with unavailable presence when no resource is available, and with
'unsubscribed' otherwise (§4.3.2).

Stanzas the server sends on a user's behalf go through host.send_from_user (blocking and
other filters apply); delivering an inbound subscription stanza to the user's resources
is the one place sessions are sent to directly, as the core's own delivery does.

Directed presence (§4.6): available presence a session sends to a JID is remembered per
session; when the session goes unavailable -- by its own unavailable presence, a logoff or
a dropped connection, all of which reach PRESENCE_BROADCAST -- those JIDs get unavailable
presence too, unless they already got it as subscribed contacts. A session that never sent
initial presence does it from SESSION_CLOSED.

Order (issue 11 §9): every presence a user's sessions send -- broadcasts, directed presence,
the unavailable presence a closing session owes its directed recipients -- leaves in the
order it was sent. The broadcast needs the user's roster, which is cached after the first
read but may have to come from storage; directed presence needs nothing and would overtake
it (a contact keeping the last presence it saw would keep a stale one). So a broadcast
whose roster is not cached runs in the user's presence turn (jabberapp.peruser), and
directed presence sent while the turn is busy is held behind it (after every other
PRE_PRESENCE hook, at ORDER_PRIORITY), then routed as the core would have, through
FILTER_OUTBOUND. With the roster cached and nothing pending -- the common case -- both go
out at once, with no read and no queue.
"""
import copy

from lxml import etree
from twisted.internet import defer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.extensions.roster import subscription
from jabberapp.extensions.roster.items import RosterFull
from jabberapp.extensions.roster.service import STATE_KEY, session_state
from jabberapp.jid import InvalidJID, JID
from jabberapp.peruser import PerUserQueue
from jabberapp.xml import element, parse_element, serialize
from jabberapp.xml.ns import NS_CLIENT

MAX_KEPT_REQUEST = 4096   # bytes of a subscription request kept for later delivery
ORDER_PRIORITY = -1000    # PRE_PRESENCE: hold directed presence after every other hook


def presence(sender, recipient, type_=None):
    """A new <presence/> from C{sender} to C{recipient} (JIDs), of C{type_} if given."""
    attrs = {"from": str(sender), "to": str(recipient)}
    if type_ is not None:
        attrs["type"] = type_
    return element(NS_CLIENT, "presence", attrs)


def send_unavailable(host, user, contact):
    """Unavailable presence from each available resource of C{user} to C{contact}."""
    for session in host.sessions.available(user):
        host.send_from_user(presence(session.jid, contact, "unavailable"), session)


def send_current(host, user, contact):
    """The last presence of each available resource of C{user}, to C{contact}."""
    for session in host.sessions.available(user):
        if session.presence is not None:
            current = copy.deepcopy(session.presence)
            current.set("from", str(session.jid))
            current.set("to", str(contact))
            host.send_from_user(current, session)


class PresenceHandler:
    """The presence and subscription hooks of one host."""

    def __init__(self, service):
        self.service = service
        self.host = service.host
        self.store = service.store
        self._order = PerUserQueue()    # bare JID -> the user's presence, in order

    def install(self, host):
        host.hook(dispatch.PRE_PRESENCE, self.outgoing)
        host.hook(dispatch.PRE_PRESENCE, self.keep_order, priority=ORDER_PRIORITY)
        host.hook(dispatch.PRESENCE_BARE, self.incoming)
        host.hook(dispatch.PRESENCE_FULL, self.incoming)
        host.hook(dispatch.PRESENCE_BROADCAST, self.broadcast)
        host.hook(dispatch.SESSION_AVAILABLE, self.session_available)
        host.hook(dispatch.SESSION_CLOSED, self.session_closed)
        host.hook(dispatch.USER_DELETED, self.user_deleted)

    def _spawn(self, coroutine, what, **fields):
        """Run C{coroutine}; a failure is our bug: log it."""
        d = defer.ensureDeferred(coroutine)
        d.addErrback(lambda failure: self.host.log.failure(what, failure, **fields))
        return d

    # -- stanzas a local session sends --------------------------------------------------

    def outgoing(self, stanza, origin):
        """PRE_PRESENCE: subscription stanzas are ours; directed presence is remembered."""
        to = stanza.get("to")
        if to is None or origin is None:
            return None
        type_ = stanza.get("type")
        if type_ in subscription.SUBSCRIPTION_TYPES:
            self._spawn(self._outbound(stanza, origin), "outbound subscription failed")
            return dispatch.HANDLED
        if type_ in (None, "unavailable"):
            try:
                target = JID.parse(to)
            except InvalidJID:
                return None     # the router bounces it
            if target.bare() != origin.jid.bare():
                directed = session_state(origin).directed
                if type_ is None:
                    directed[target] = True
                else:
                    directed.pop(target, None)
        return None

    async def _outbound(self, stanza, session):
        user = session.jid.bare()
        try:
            contact = JID.parse(stanza.get("to")).bare()
        except InvalidJID:
            self.host.send(st.error_reply(stanza, StanzaError("jid-malformed")))
            return
        if contact == user:
            return      # no subscription to oneself
        kind = stanza.get("type")
        limit = self.service.max_items

        def change(roster):
            transition = subscription.outbound(roster.state(contact), kind)
            if transition.changed:
                item = roster.set_state(contact, transition.state, limit)
            else:
                item = roster.items.get(contact)
            return transition, item

        try:
            (transition, item), roster = await self.store.modify(user.local, change)
        except RosterFull:
            self.host.send(st.error_reply(stanza, StanzaError(
                "not-allowed", f"Your roster is full: it holds at most {limit} contacts")))
            return
        stanza.set("from", str(user))
        stanza.set("to", str(contact))
        if transition.presence == subscription.UNAVAILABLE:
            send_unavailable(self.host, user, contact)
        if transition.forward:
            self.host.send_from_user(stanza, session)
        if transition.push:
            self.service.push(user.local, roster, [(contact, item)])
        if transition.presence == subscription.AVAILABLE:
            send_current(self.host, user, contact)

    def keep_order(self, stanza, origin):
        """PRE_PRESENCE, last: directed presence waits behind the user's pending
        presence (a broadcast reading the roster), then is routed as the core would."""
        if origin is None or stanza.get("to") is None:
            return None
        if stanza.get("type") not in (None, "unavailable"):
            return None
        user = origin.jid.bare()
        if not self._order.busy(user):
            return None     # the common case: nothing pending, the core routes it now
        self._in_order(user, self.host.send_from_user, stanza, origin)
        return dispatch.HANDLED

    def _in_order(self, user, fn, *args):
        """Run C{fn(*args)} in C{user}'s presence turn (now when nothing is pending)."""
        d = self._order.run(user, fn, *args)
        d.addErrback(lambda failure: self.host.log.failure(
            "presence of {user} failed", failure, user=user))
        return d

    # -- stanzas addressed to a local user ----------------------------------------------

    def incoming(self, stanza, origin):
        """PRESENCE_BARE / PRESENCE_FULL: subscription stanzas and probes are ours."""
        type_ = stanza.get("type")
        if type_ in subscription.SUBSCRIPTION_TYPES:
            work = self._inbound(stanza)
        elif type_ == "probe":
            work = self._probe(stanza)
        else:
            return None
        self._spawn(work, "inbound presence of type {type} failed", type=type_)
        return dispatch.HANDLED

    @staticmethod
    def _parties(stanza):
        """(sender, addressee) JIDs of an inbound stanza, or None when unusable."""
        try:
            return JID.parse(stanza.get("from") or ""), JID.parse(stanza.get("to"))
        except InvalidJID:
            return None

    async def _inbound(self, stanza):
        parties = self._parties(stanza)
        if parties is None:
            return
        contact, user = parties[0].bare(), parties[1].bare()
        if contact == user:
            return
        exists = await self.host.storage.accounts.exists(self.host.domain, user.local)
        if not exists:
            return      # §8.5.1: silently ignored
        kind = stanza.get("type")
        stanza.set("from", str(contact))
        stanza.set("to", str(user))

        def change(roster):
            transition = subscription.inbound(roster.state(contact), kind)
            if transition.changed:
                item = roster.set_state(contact, transition.state, self.service.max_items)
            else:
                item = roster.items.get(contact)
            if kind == "subscribe" and transition.forward:
                roster.pending[contact] = _keep(stanza)
            return transition, item

        try:
            (transition, item), roster = await self.store.modify(user.local, change)
        except RosterFull:
            return      # too many unanswered requests: ignore more
        if transition.presence == subscription.UNAVAILABLE:
            send_unavailable(self.host, user, contact)
        if transition.forward:
            if kind == "subscribe":
                # §3.1.3: requests go to available resources (and later ones: see login).
                recipients = self.host.sessions.available(user)
            else:
                recipients = [s for s in self.host.sessions.resources(user)
                              if s.available or _interested(s)]
            for session in recipients:
                session.send(stanza)
        if transition.push:
            self.service.push(user.local, roster, [(contact, item)])
        if transition.reply:
            self.host.send_from_user(presence(user, contact, transition.reply))
        if transition.presence == subscription.AVAILABLE:
            send_current(self.host, user, contact)

    async def _probe(self, stanza):
        parties = self._parties(stanza)
        if parties is None:
            return
        prober, user = parties[0], parties[1].bare()
        if prober.bare() != user:
            roster = await self.store.load(user.local)
            if not roster.state(prober.bare()).has_from:
                # §4.3.2: not entitled (or no such user: the same answer, nothing leaks).
                self.host.send_from_user(presence(user, prober.bare(), "unsubscribed"))
                return
        available = self.host.sessions.available(user)
        if not available:
            self.host.send_from_user(presence(user, prober, "unavailable"))
            return
        send_current(self.host, user, prober)

    # -- presence broadcast (§4.2, §4.4, §4.5) ----------------------------------------

    def broadcast(self, stanza, session):
        """PRESENCE_BROADCAST: to the contacts subscribed to the user's presence."""
        directed = ()
        if stanza.get("type") == "unavailable":
            state = session_state(session)
            directed, state.directed = list(state.directed), {}
        user = session.jid.bare()
        roster = None if self._order.busy(user) else self.store.cached(user.local)
        if roster is not None:
            # The common case: nothing of the user's pending, the roster cached.
            self._send_broadcast(roster, stanza, session, directed)
        else:
            self._in_order(user, self._broadcast, stanza, session, directed)

    async def _broadcast(self, stanza, session, directed):
        roster = await self.store.load(session.jid.local)
        self._send_broadcast(roster, stanza, session, directed)

    def _send_broadcast(self, roster, stanza, session, directed):
        subscribers = [jid for jid, item in roster.items.items()
                       if item.subscription in (subscription.FROM, subscription.BOTH)]
        for jid in subscribers:
            self._send_copy(stanza, session, jid)
        covered = set(subscribers)
        for target in directed:
            if target.bare() not in covered:
                self._send_copy(stanza, session, target)

    def _send_copy(self, stanza, session, to):
        out = copy.deepcopy(stanza)
        out.set("from", str(session.jid))
        out.set("to", str(to))
        self.host.send_from_user(out, session)

    def session_available(self, session):
        """SESSION_AVAILABLE: the other resources' presence, probes, pending requests,
        the user's own unanswered requests."""
        # §4.2.2: the core showed the new resource to the others; now the reverse.
        for other in self.host.sessions.available(session.jid.bare()):
            if other is not session and other.presence is not None:
                self._send_copy(other.presence, other, session.jid)
        self._spawn(self._initial(session), "initial presence handling failed")

    async def _initial(self, session):
        user = session.jid.bare()
        # In turn: a request stored before this read is delivered here, one stored after
        # it finds this session available and is delivered as it arrives.
        roster = await self.store.load_in_turn(user.local)
        items = sorted(roster.items.values(), key=lambda item: str(item.jid))
        for item in items:
            if item.subscription in (subscription.TO, subscription.BOTH):
                self.host.send_from_user(presence(user, item.jid, "probe"), session)
        # Stored requests skip the inbound hooks: honour blocking (XEP-0191) here.
        blocking = self.host.service("blocking") if self.host.has_service("blocking") else None
        for jid, kept in sorted(roster.pending.items(), key=lambda entry: str(entry[0])):
            if blocking is not None and blocking.is_blocked(user.local, jid) is True:
                continue
            session.send(_request(kept, jid, user))
        for item in items:
            if item.ask:
                self.host.send_from_user(presence(user, item.jid, "subscribe"), session)

    def session_closed(self, session):
        """SESSION_CLOSED: unavailable to directed presence recipients still remembered."""
        state = session.state.get(STATE_KEY)
        if state is None or not state.directed:
            return
        directed, state.directed = list(state.directed), {}
        self._in_order(session.jid.bare(), self._unavailable_to, session, directed)

    def _unavailable_to(self, session, targets):
        for target in targets:
            self.host.send_from_user(presence(session.jid, target, "unavailable"), session)

    def user_deleted(self, bare_jid):
        """USER_DELETED: forget the cached roster (storage removes the stored one)."""
        if bare_jid.domain == self.host.domain and bare_jid.local is not None:
            self.store.forget(bare_jid.local)


def _interested(session):
    state = session.state.get(STATE_KEY)
    return state is not None and state.interested


def _keep(stanza):
    """The subscription request as kept for later delivery (big payloads dropped)."""
    text = serialize(stanza).decode("utf-8")
    return text if len(text) <= MAX_KEPT_REQUEST else ""


def _request(kept, contact, user):
    """The kept request from C{contact} as a stanza to deliver to C{user} again."""
    request = None
    if kept:
        try:
            request = parse_element(kept)
        except ValueError:
            request = None
    if request is None or request.tag != st.PRESENCE:
        request = etree.Element(st.PRESENCE, nsmap={None: NS_CLIENT})
    request.set("type", "subscribe")
    request.set("from", str(contact))
    request.set("to", str(user))
    return request
