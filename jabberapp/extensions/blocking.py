"""
XEP-0191: Blocking Command -- a user's blocklist, and the server refusing communication both
ways between the user and every JID on it.

The protocol (XEP-0191 §3)
--------------------------
- ``urn:xmpp:blocking`` is a disco feature of the host (§3.1).
- ``<iq type='get'><blocklist/></iq>`` from one of the user's own resources is answered with
  the list (§3.2) and makes that resource "interested": it gets the pushes below. The same
  request about another user's blocklist is <service-unavailable/>, exactly as if nothing
  answered it, so nothing about that user leaks.
- ``<block/>`` with one or more ``<item jid='…'/>`` adds JIDs (§3.3), ``<unblock/>`` with items
  removes them and an empty ``<unblock/>`` empties the list (§3.4, §3.5). Any JID may be
  blocked: full, bare, domain/resource or domain (XEP-0191 v1.3). A bad 'jid' is
  <jid-malformed/>, an item without one and an empty ``<block/>`` are <bad-request/>, a list
  that would grow past ``max_items`` is <policy-violation/>. Nothing changes on an error.
- After the change is stored, every interested resource gets a push (an IQ set carrying the
  same ``<block/>``/``<unblock/>`` with the prepared JIDs, from the user's bare JID, in the
  order RFC 6121 §2.3.2 uses for roster pushes), then the requester gets the result.

Matching (XEP-0191 §6, XEP-0016 §2.1): an address user@domain/resource is blocked when its
full JID, its bare JID, domain/resource or domain is on the list; a bare JID when it or its
domain is; domain/resource when it or the domain is; a domain when it is. Communication
between a user's own resources is never blocked (XEP-0191 §5, XEP-0016 §2.2 note), nor with
the host's own JID: the server is not a contact, and blocking it would cut the user off from
the answers to their own requests.

Enforcement
-----------
Inbound (MESSAGE_*, PRESENCE_*, IQ_* to a user's bare or full JID, before every other
extension's hooks so no blocked stanza is stored, answered or acted upon; XEP-0191 §3.3):

- presence of every type (notifications, subscriptions, probes): dropped, never answered;
- messages: <service-unavailable/>, as for an account with no resource (RFC 6121 §8.5.2.2),
  so the user appears offline; headlines and errors are dropped, as an offline account
  drops them;
- IQ get/set: <service-unavailable/>; results and errors: dropped.

Outbound, client stanzas (PRE_MESSAGE, PRE_PRESENCE, PRE_IQ, first in their chains): a stanza
a user's client addresses to a blocked JID is not routed; its sender gets <not-acceptable/>
with ``<blocked xmlns='urn:xmpp:blocking:errors'/>`` (§3.3) -- directed and subscription
presence included, as the XEP makes no exception. Errors and IQ results are dropped instead
(an error is never answered with an error, RFC 6120 §8.3.1).

Outbound, server-generated (FILTER_OUTBOUND): what the server sends on the user's behalf --
presence broadcasts, probes, probe answers, roster-driven subscription stanzas -- to a
blocked JID is dropped silently.

Presence on a change: blocking a user JID sends it ``<presence type='unavailable'/>`` from
each of the user's available resources (§3.3), through ``host.send`` since our own filter
would stop it. When a "roster" service offering ``can_see_presence(username, contact_bare)``
is installed, only contacts allowed to see the user's presence get it, as the XEP says;
without one it goes to every newly blocked user JID (it says nothing but "not here").
Unblocking sends the current presence of each available resource (§3.4) through
``send_from_user`` (so a block that still covers the JID, e.g. its domain, applies) -- only
when the roster service can say the contact may see it; without a roster service nothing is
sent. Domain entries get no presence: their contacts cannot be listed from here.

The cache: checks are on every stanza's path, so they never touch storage. Each user's
list, once loaded, is a frozenset in ``Blocklists.lists``; a user with nothing blocked costs
one dict lookup per stanza. Lists are loaded when a session binds, so an online user's list
is in memory before it is needed, and are kept while the user has a session; lists loaded
for users without one (a stanza for an offline user) are kept up to ``cache_size``, oldest
dropped first. A stanza that needs a list not yet loaded is held and handled once the list
is in (never dropped; in arrival order); if storage fails it is answered
<internal-server-error/>. Changes are serialised per user and written to storage before they
take effect or are acknowledged. USER_DELETED drops the user's entry.
"""
import secrets
from collections import OrderedDict
from copy import deepcopy

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IExtension
from jabberapp.jid import InvalidJID, JID
from jabberapp.peruser import PerUserQueue
from jabberapp.specs import Spec
from jabberapp.stream import intake
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
BLOCKLIST = f"{{{NS_BLOCKING}}}blocklist"
BLOCK = f"{{{NS_BLOCKING}}}block"
UNBLOCK = f"{{{NS_BLOCKING}}}unblock"
ITEM = f"{{{NS_BLOCKING}}}item"

STORE_NAME = "blocklist"
STORE_KEY = "jids"          # value: sorted list of JID strings; absent when nothing is blocked
STATE_KEY = "blocking"      # session.state[STATE_KEY] is True once the blocklist was requested
# Blocking runs before every other extension's hooks: a blocked stanza must not be stored,
# answered or otherwise acted upon by anyone.
PRIORITY = 1000

INBOUND_EVENTS = (dispatch.MESSAGE_BARE, dispatch.MESSAGE_FULL, dispatch.PRESENCE_BARE,
                  dispatch.PRESENCE_FULL, dispatch.IQ_BARE, dispatch.IQ_FULL)
OUTBOUND_EVENTS = (dispatch.PRE_MESSAGE, dispatch.PRE_PRESENCE, dispatch.PRE_IQ)

_EMPTY = frozenset()


@implementer(IPlugin, IExtension)
class Blocking:
    """The blocking command and its enforcement; see the module docstring."""

    name = "blocking"
    specs = (Spec("XEP-0191", "1.3", "Blocking Command"),)
    depends = ("disco",)    # XEP-0191 §3.1: support is discovered through disco#info
    options = (
        Option("max_items", int_range(1, 1000000), default=1000,
               doc="Most JIDs one user's blocklist may hold; a block command that would "
                   "exceed it is refused with a policy-violation error."),
        Option("cache_size", int_range(1, 10000000), default=10000,
               doc="Blocklists of users without a session kept in memory (loaded for "
                   "stanzas to offline users), oldest dropped first. Users with a session "
                   "always have theirs in memory."),
    )

    def install(self, host):
        """Declare the feature, own the three requests and hook every stanza path."""
        host.add_feature(NS_BLOCKING)
        blocklists = Blocklists(host, host.config["max_items"], host.config["cache_size"])
        host.provide("blocking", blocklists)
        host.iq_handler("get", NS_BLOCKING, "blocklist", blocklists.get_blocklist, to="user")
        host.iq_handler("set", NS_BLOCKING, "block", blocklists.edit, to="user")
        host.iq_handler("set", NS_BLOCKING, "unblock", blocklists.edit, to="user")
        for event in INBOUND_EVENTS:
            host.hook(event, blocklists.inbound, priority=PRIORITY)
        for event in OUTBOUND_EVENTS:
            host.hook(event, blocklists.outbound, priority=PRIORITY)
        host.hook(dispatch.FILTER_OUTBOUND, blocklists.filter_outbound, priority=PRIORITY)
        host.hook(dispatch.SESSION_BOUND, blocklists.session_bound)
        host.hook(dispatch.SESSION_CLOSED, blocklists.session_closed)
        host.hook(dispatch.USER_DELETED, blocklists.user_deleted)


def blocks(entries, jid):
    """True when the blocklist C{entries} (a set of JIDs) covers C{jid} (XEP-0191 §6)."""
    if jid in entries:
        return True
    local, domain, resource = jid.local, jid.domain, jid.resource
    if resource is not None:
        if local is not None and (JID(local, domain) in entries
                                  or JID(None, domain, resource) in entries):
            return True
    elif local is None:
        return False        # a domain: only itself matches, checked above
    return JID(None, domain) in entries


class Blocklists:
    """The blocklists of one host: cache, storage, the requests and the hooks."""

    def __init__(self, host, max_items, cache_size):
        self.host = host
        self.max_items = max_items
        self.cache_size = cache_size
        self.store = host.storage.keyvalue(STORE_NAME)
        self.lists = {}             # username -> frozenset of JIDs, for every loaded list
        self._offline = OrderedDict()   # loaded lists of users without a session, oldest first
        self._online = set()        # users with a bound session: their lists stay loaded
        self._loading = {}          # username -> Deferreds waiting for the load in progress
        self._turns = PerUserQueue()    # each user's changes, one at a time
        # Stanzas this extension itself sends on, by id (the element is kept so the id
        # cannot be reused): the next check of our own hooks lets them through.
        self._pass_inbound = {}
        self._pass_outbound = {}
        self._unchecked = None      # a client stanza PRE_* let through with no list loaded

    # -- the service other extensions use (host.service("blocking")) ---------------------

    def is_blocked(self, username, jid):
        """True when the local user C{username} blocks C{jid} (a JID), False when not,
        None when their list is not loaded (see L{load})."""
        entries = self.lists.get(username)
        if entries is None:
            return None
        return bool(entries) and not self._own(username, jid) and blocks(entries, jid)

    # -- the cache ------------------------------------------------------------------------

    def load(self, username):
        """Deferred: the user's blocklist (a frozenset of JIDs), from the cache if loaded."""
        entries = self.lists.get(username)
        if entries is not None:
            return defer.succeed(entries)
        waiter = defer.Deferred()
        waiters = self._loading.get(username)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        waiters = self._loading[username] = [waiter]
        d = self.store.get(self.host.domain, username, STORE_KEY)
        d.addCallbacks(self._loaded, self._load_failed, callbackArgs=(username, waiters),
                       errbackArgs=(username, waiters))
        return waiter

    def _loaded(self, value, username, waiters):
        entries = _EMPTY
        if value:
            parsed = []
            for text in value:
                try:
                    parsed.append(JID.parse(text))
                except (InvalidJID, TypeError):
                    self.host.log.warn("ignoring an unreadable blocklist entry of {user}",
                                       user=username)
            entries = frozenset(parsed)
        if self._loading.get(username) is waiters:
            # Not when the user was deleted meanwhile: that load is stale.
            del self._loading[username]
            self._put(username, entries)
        for waiter in waiters:
            waiter.callback(entries)

    def _load_failed(self, failure, username, waiters):
        self.host.log.failure("could not load the blocklist of {user}", failure,
                              user=username)
        if self._loading.get(username) is waiters:
            del self._loading[username]
        for waiter in waiters:
            waiter.errback(failure)

    def _put(self, username, entries):
        """Cache C{entries} as the user's list; only lists of offline users are evicted."""
        self.lists[username] = entries
        if username in self._online:
            return
        self._offline[username] = None
        self._offline.move_to_end(username)
        self._trim()

    def _trim(self):
        while len(self._offline) > self.cache_size:
            username, _ = self._offline.popitem(last=False)
            self.lists.pop(username, None)

    def session_bound(self, session):
        """SESSION_BOUND: keep the user's list loaded while they have a session."""
        username = session.jid.local
        self._online.add(username)
        self._offline.pop(username, None)
        if username not in self.lists:
            # Failures are logged by the loader; the next stanza that needs it retries.
            self.load(username).addErrback(lambda _: None)

    def session_closed(self, session):
        """SESSION_CLOSED: after the user's last session, their list may be evicted."""
        username = session.jid.local
        if self.host.sessions.resources(session.jid.bare()):
            return
        self._online.discard(username)
        if username in self.lists:
            self._offline[username] = None
            self._trim()

    def user_deleted(self, bare_jid):
        """USER_DELETED: forget everything cached about the user."""
        username = JID.parse(str(bare_jid)).local
        self.lists.pop(username, None)
        self._offline.pop(username, None)
        self._loading.pop(username, None)

    # -- the requests (XEP-0191 §3.2 - §3.5) ------------------------------------------------

    def _requester(self, iq):
        """The requesting user's name and session; service-unavailable for anyone else."""
        try:
            sender = JID.parse(iq.get("from") or "")
            target = JID.parse(iq.get("to") or "")
        except InvalidJID:
            raise StanzaError("service-unavailable") from None
        if (sender.local is None or sender.domain != self.host.domain
                or sender.bare() != target.bare()):
            raise StanzaError("service-unavailable")
        session = self.host.sessions.get(sender) if sender.resource is not None else None
        return sender.local, session

    def get_blocklist(self, iq):
        """IQ get <blocklist/>: the user's list; the requesting resource gets pushes."""
        username, session = self._requester(iq)
        if session is not None:
            # Interested from now on: a change in progress is pushed to it too.
            session.state[STATE_KEY] = True
        return self.load(username).addCallback(_blocklist_element)

    def edit(self, iq):
        """IQ set <block/> or <unblock/>: change the list, push, then answer."""
        username, _ = self._requester(iq)
        command = iq.find(BLOCK)
        if command is None:
            command = iq.find(UNBLOCK)
        jids = _items(command)
        if command.tag == BLOCK and not jids:
            raise StanzaError("bad-request", "A block command needs at least one item")
        return self._turns.run(username, self._apply, username, command.tag == BLOCK, jids)


    async def _apply(self, username, block, jids):
        old = await self.load(username)
        if block:
            new = old.union(jids)
            if len(new) > self.max_items:
                raise StanzaError("policy-violation",
                                  f"A blocklist holds at most {self.max_items} JIDs")
        elif jids:
            new = old.difference(jids)
        else:
            new = _EMPTY
        if new != old:
            value = sorted(str(jid) for jid in new) or None
            await self.store.set(self.host.domain, username, STORE_KEY, value)
            self._put(username, new or _EMPTY)
        self._push(username, BLOCK if block else UNBLOCK, jids)
        if block:
            self._send_unavailable(username, [j for j in jids if not blocks(old, j)])
        else:
            self._send_current(username, [j for j in (jids or old) if blocks(old, j)
                                          and not blocks(new, j)])
        return None

    def _push(self, username, tag, jids):
        """The change, to every resource of the user that requested the blocklist."""
        bare = JID(username, self.host.domain)
        for session in self.host.sessions.resources(bare):
            if not session.state.get(STATE_KEY):
                continue
            iq = element(NS_CLIENT, "iq", type="set", id=f"push-{secrets.token_hex(8)}",
                         to=str(session.jid), from_=str(bare))
            iq.append(_command_element(tag, jids))
            self.host.send(iq)

    def _contacts(self, username, jids):
        """Deferred: those of the user JIDs C{jids} whose bare JID the roster says may see
        the user's presence; None when no roster service can tell."""
        roster = self.host.service("roster") if self.host.has_service("roster") else None
        check = getattr(roster, "can_see_presence", None)
        if check is None:
            return defer.succeed(None)

        async def allowed():
            return [jid for jid in jids
                    if await defer.maybeDeferred(check, username, jid.bare())]

        return defer.ensureDeferred(allowed())

    def _send_unavailable(self, username, jids):
        """XEP-0191 §3.3: unavailable presence from each available resource to the newly
        blocked user JIDs (those allowed to see it, when the roster can tell)."""
        jids = [jid for jid in jids if jid.local is not None and not self._own(username, jid)]
        if not jids or not self._available(username):
            return

        def send(allowed):
            for jid in jids if allowed is None else allowed:
                for session in self._available(username):
                    presence = element(NS_CLIENT, "presence", type="unavailable",
                                       to=str(jid), from_=str(session.jid))
                    self.host.send(presence)    # our own filter would drop it

        self._contacts(username, jids).addCallback(send).addErrback(
            self._log_failure, "unavailable presence on block")

    def _send_current(self, username, jids):
        """XEP-0191 §3.4: current presence to the unblocked user JIDs allowed to see it."""
        jids = [jid for jid in jids if jid.local is not None and not self._own(username, jid)]
        if not jids or not self._available(username):
            return

        def send(allowed):
            for jid in allowed or ():
                for session in self._available(username):
                    if session.presence is None:
                        continue
                    presence = _copy(session.presence)
                    presence.set("to", str(jid))
                    presence.set("from", str(session.jid))
                    self.host.send_from_user(presence, session)

        self._contacts(username, jids).addCallback(send).addErrback(
            self._log_failure, "presence on unblock")

    def _available(self, username):
        return self.host.sessions.available(JID(username, self.host.domain))

    def _log_failure(self, failure, what):
        self.host.log.failure("blocking: {what} failed", failure, what=what)

    # -- enforcement ----------------------------------------------------------------------

    def _own(self, username, jid):
        """True for the user's own account and the host itself: never blocked."""
        if jid.local is None:
            return jid.resource is None and jid.domain == self.host.domain
        return jid.local == username and jid.domain == self.host.domain

    def inbound(self, stanza, origin=None):
        """MESSAGE_*/PRESENCE_*/IQ_* to a user: refuse what comes from a blocked JID."""
        username = JID.parse(stanza.get("to")).local
        entries = self.lists.get(username)
        if entries is not None and not entries:
            return None     # the common case: nothing blocked
        if self._pass_inbound.pop(id(stanza), None) is not None:
            return None
        sender = _jid_or_none(stanza.get("from"))
        if sender is None or self._own(username, sender):
            return None
        if entries is None:
            self._hold_inbound(username, stanza)
            return dispatch.HANDLED
        if not blocks(entries, sender):
            return None
        self._refuse_inbound(stanza)
        return dispatch.HANDLED

    def _hold_inbound(self, username, stanza):
        # A client's XEP-0198 ack waits for the held stanza and what it leads to (storage).
        handle = intake.handling()

        def loaded(entries):
            sender = JID.parse(stanza.get("from"))
            if blocks(entries, sender):
                self._refuse_inbound(stanza)
            else:
                intake.continuing(handle, self._send_on, self._pass_inbound, stanza,
                                  self.host.send)

        def failed(failure):
            self._bounce(stanza, StanzaError("internal-server-error"))

        intake.handled_when(self.load(username).addCallbacks(loaded, failed).addErrback(
            self._log_failure, "a held inbound stanza"))

    def _refuse_inbound(self, stanza):
        """XEP-0191 §3.3: what a blocked JID sent the user."""
        tag, type_ = stanza.tag, stanza.get("type")
        if tag == st.PRESENCE:
            return      # never answered
        if tag == st.MESSAGE and type_ == "headline":
            return      # an offline account drops headlines too (RFC 6121 §8.5.2.2.3)
        self._bounce(stanza, StanzaError("service-unavailable"))

    def outbound(self, stanza, origin=None):
        """PRE_*: a client stanza to a blocked JID gets not-acceptable with <blocked/>."""
        to = stanza.get("to")
        if to is None or origin is None:
            return None     # to the user's own account, or not from a client session
        username = origin.jid.local
        entries = self.lists.get(username)
        if entries is not None and not entries:
            return None
        target = _jid_or_none(to)
        if target is None or self._own(username, target):
            return None
        if entries is None:
            # Not loaded yet (the session just bound): the other PRE_* hooks run, and
            # FILTER_OUTBOUND holds it until the list is in, then refuses it as a client
            # stanza or sends it on.
            self._unchecked = stanza
            return None
        if not blocks(entries, target):
            return None
        self._refuse_outbound(stanza)
        return dispatch.HANDLED

    def filter_outbound(self, stanza, origin=None):
        """FILTER_OUTBOUND: what the server sends on a user's behalf to a blocked JID is
        dropped silently."""
        client = stanza is self._unchecked
        if client:
            self._unchecked = None
        if self._pass_outbound.pop(id(stanza), None) is not None:
            return None
        sender = _jid_or_none(stanza.get("from"))
        if sender is None or sender.local is None or sender.domain != self.host.domain:
            return None
        username = sender.local
        entries = self.lists.get(username)
        if entries is not None and not entries:
            return None     # the common case: nothing blocked
        target = _jid_or_none(stanza.get("to"))
        if target is None or self._own(username, target):
            return None
        if entries is None:
            self._hold_outbound(username, stanza, origin, target, client)
            return dispatch.HANDLED
        if not blocks(entries, target):
            return None
        if client:
            self._refuse_outbound(stanza)
        return dispatch.HANDLED

    def _hold_outbound(self, username, stanza, origin, target, client):
        handle = intake.handling()      # as in _hold_inbound

        def loaded(entries):
            if not blocks(entries, target):
                intake.continuing(handle, self._send_on, self._pass_outbound, stanza,
                                  lambda s: self.host.send_from_user(s, origin))
            elif client:
                self._refuse_outbound(stanza)

        def failed(failure):
            if client:
                self._bounce(stanza, StanzaError("internal-server-error"), to_user=True)

        intake.handled_when(self.load(username).addCallbacks(loaded, failed).addErrback(
            self._log_failure, "a held outbound stanza"))

    def _refuse_outbound(self, stanza):
        """XEP-0191 §3.3: not-acceptable with <blocked/> to the user's own client."""
        error = StanzaError("not-acceptable", "You have blocked this JID", type="cancel",
                            app_condition=element(NS_BLOCKING_ERRORS, "blocked"))
        self._bounce(stanza, error, to_user=True)

    def _bounce(self, stanza, error, to_user=False):
        """The error reply to C{stanza} (never to an error or result). One C{to_user}
        (the answer to the user's own stanza) passes our inbound check: it comes from the
        address the user wrote to, which may be blocked."""
        if st.is_error_or_result(stanza) or stanza.get("from") is None:
            return
        reply = st.error_reply(stanza, error)
        if to_user:
            self._send_on(self._pass_inbound, reply, self.host.send)
        else:
            self.host.send(reply)

    @staticmethod
    def _send_on(passes, stanza, send):
        passes[id(stanza)] = stanza
        try:
            send(stanza)
        finally:
            passes.pop(id(stanza), None)


def _items(command):
    """The distinct JIDs of the <item/>s of a block or unblock command, in order."""
    jids = {}
    for item in command.iterchildren(ITEM):
        value = item.get("jid")
        if value is None:
            raise StanzaError("bad-request", "An item needs a 'jid' attribute")
        try:
            jids[JID.parse(value)] = None
        except InvalidJID:
            raise StanzaError("jid-malformed", "An item's 'jid' is not a valid JID") from None
    return list(jids)


def _command_element(tag, jids):
    command = element(NS_BLOCKING, tag.rpartition("}")[2])
    for jid in jids:
        command.append(element(NS_BLOCKING, "item", jid=str(jid)))
    return command


def _blocklist_element(entries):
    return _command_element(BLOCKLIST, sorted(entries, key=str))


def _jid_or_none(text):
    if text is None:
        return None
    try:
        return JID.parse(text)
    except InvalidJID:
        return None


def _copy(presence):
    copied = deepcopy(presence)
    copied.tail = None
    return copied


blocking = Blocking()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
