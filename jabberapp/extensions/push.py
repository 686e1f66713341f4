"""
XEP-0357: Push Notifications (urn:xmpp:push:0) -- a sleeping phone gets its push.

Theory of operation
-------------------
- **Registrations.** A client sends ``<enable jid=… node=…/>`` (optionally with a
  ``pubsub#publish-options`` data form, kept as given and passed to the service with every
  notification) in an IQ set to its own bare JID; ``<disable jid=… [node=…]/>`` removes
  that JID and node, or every node of that JID. Each account keeps a list of
  registrations (one per device, key-value store "push", so they survive a restart), at
  most ``max_registrations``: one more is refused with <policy-violation/>. Enabling the
  same JID and node again replaces its publish options (XEP-0357 §5). Changes run in the
  account's turn (jabberapp.peruser); a bounded cache keeps the lists read.
- **Bad input.** No jid, or no node, on enable: <bad-request/>; a jid that is not a JID:
  <jid-malformed/>; a form that is not one submitted publish-options form, or larger than
  MAX_OPTIONS characters: <bad-request/>; an enable or disable addressed to another
  account: <forbidden/>. Disabling what is not enabled succeeds and changes nothing (the
  XEP defines no error for it, and the client's goal is reached).
- **Whose device sleeps.** A registration belongs to the session that enabled it (kept in
  memory in ``session.state["push"]``). A *connected* session is one attached to its
  connection; a *hibernated* one is detached and kept for a resumption (stream
  management). The user is *reachable* when a connected session is available with a
  non-negative priority.
- **When to notify.** (1) A chat or normal message that would be stored offline
  (MESSAGE_OFFLINE, before offline storage; not with a <no-store/> hint, and not a message
  that already bears this server's delay stamp: stream management's re-route of a
  message that was delivered or notified before). (2) A message sent to a hibernated
  session (an outbound stage, before client state indication holds anything). (3) A
  session that hibernates with messages in stream management's queue (they were written
  to a connection that turned out dead; notified on the next reactor turn, once stream
  management has kept the session; read from its ``session.state["sm"].queue``), as
  Prosody's mod_cloud_notify does. Only messages worth it count (push_notify.summarize).
- **Who is notified.** The registrations of the hibernated sessions that got the message
  and, when the user is not reachable, every registration whose session is not
  connected. So a phone asleep beside a laptop in use still rings, and a device with no
  session at all is woken only when nobody else can read the message now; one message
  delivered to two sleeping sessions notifies each registration once.
- **Counting.** ``message-count`` counts the messages notified to a registration since
  its device last connected: a login of the user resets the user's counts, a message to
  a connected session resets the counts of that session's registrations.
  push_notify.Notifier coalesces within ``interval`` seconds and handles the answers.

The feature urn:xmpp:push:0 is advertised in the server's disco#info (where Monal and
ejabberd's clients look) and in the account's own (XEP-0357 §5), through the disco
service's account features.
"""
from collections import OrderedDict, deque

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import forms
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError
from jabberapp.extensions.push_notify import (NS_PUSH, PUBLISH_OPTIONS, Notifier,
                                              summarize)
from jabberapp.interfaces import IExtension
from jabberapp.jid import InvalidJID, JID
from jabberapp.peruser import PerUserQueue
from jabberapp.specs import Spec
from jabberapp.xml import serialize

NS_HINTS = "urn:xmpp:hints"
NS_DELAY = "urn:xmpp:delay"
NS_MUC = "http://jabber.org/protocol/muc"
NO_STORE = f"{{{NS_HINTS}}}no-store"
DELAY = f"{{{NS_DELAY}}}delay"
MUC_JOIN = f"{{{NS_MUC}}}x"

STORE_NAME = "push"
STORE_KEY = "registrations"   # value: [{"jid": str, "node": str, "options": str|None}]
KEY = "push"                  # session.state[KEY]: a SessionPush
MAX_OPTIONS = 4096            # characters of a stored publish-options form
MAX_NODE = 1023
CACHE_SIZE = 10000            # accounts whose registrations stay in memory
# After the offline hook's filters would see it, before offline storage takes it (0).
OFFLINE_PRIORITY = 50
# Before client state indication (-500) holds anything and stream management (-1000).
STAGE_PRIORITY = -400
# After CSI (10) flushes into stream management's queue, before SM keeps the session (0).
DETACHED_PRIORITY = 5
# Answers to our publishes, after blocking (1000), before any other handling.
ANSWER_PRIORITY = 900


class SessionPush:
    """What push remembers of one session: its registrations and its room nicknames."""

    __slots__ = ("keys", "rooms")

    def __init__(self):
        self.keys = set()     # (push JID, node) enabled on this session
        self.rooms = {}       # room bare JID -> own nickname


@implementer(IPlugin, IExtension)
class PushNotifications:
    """The push extension (see the module docstring)."""

    name = "push"
    depends = ()
    specs = (Spec("XEP-0357", "0.4.1", "Push Notifications",
                  "to services over federation or components; summary form, coalesced; "
                  "offline and hibernated (XEP-0198) sessions"),)
    options = (
        Option("max_registrations", int_range(1, 100), 10,
               "Push registrations (devices) one account may enable; one more is refused "
               "with policy-violation."),
        Option("interval", int_range(0, 3600), 5,
               "Seconds between two notifications to one registration: messages arriving "
               "meanwhile go out together, counted, at the end of it."),
        Option("timeout", int_range(1, 600), 30,
               "Seconds to wait for a push service's answer; a timeout keeps the "
               "registration (an error answer disables it)."),
        Option("include_sender", bool, False,
               "Tell push services (third parties) the sender of the last message."),
        Option("include_body", bool, False,
               "Tell push services (third parties) the text of the last message (never "
               "of an encrypted one)."),
    )

    def install(self, host):
        """Register the IQs, hooks and stage."""
        push = Push(host, host.config)
        host.add_feature(NS_PUSH)
        if host.has_service("disco"):     # installed first: extensions install in name order
            host.on_unload(host.service("disco").add_account_features((NS_PUSH,)))
        host.iq_handler("set", NS_PUSH, "enable", push.enable, to="user")
        host.iq_handler("set", NS_PUSH, "disable", push.disable, to="user")
        host.hook(dispatch.MESSAGE_OFFLINE, push.message_offline, priority=OFFLINE_PRIORITY)
        host.hook(dispatch.IQ_BARE, push.answer, priority=ANSWER_PRIORITY)
        host.hook(dispatch.SESSION_BOUND, push.session_bound)
        host.hook(dispatch.SESSION_DETACHED, push.detached, priority=DETACHED_PRIORITY)
        host.hook(dispatch.PRE_PRESENCE, push.directed_presence)
        host.hook(dispatch.USER_DELETED, push.user_deleted)
        host.add_outbound_stage(push.stage, priority=STAGE_PRIORITY)
        host.on_unload(push.notifier.stop)


class Push:
    """Push on one host: registrations, the triggers, the notifier."""

    def __init__(self, host, config):
        self.host = host
        self.max_registrations = config["max_registrations"]
        self.store = host.storage.keyvalue(STORE_NAME)
        self.turns = PerUserQueue()
        self.cache = OrderedDict()    # username -> tuple of registration dicts
        self.recent = deque(maxlen=16)   # (message, keys notified): one message, many sessions
        self.notifier = Notifier(host, config["interval"], config["timeout"],
                                 config["include_sender"], config["include_body"],
                                 self._disabled_by_service)

    # -- registrations ---------------------------------------------------------------------

    def registrations(self, username):
        """Deferred: the account's registrations (a tuple of dicts), from the cache."""
        cached = self.cache.get(username)
        if cached is not None:
            self.cache.move_to_end(username)
            return defer.succeed(cached)
        return self.turns.run(username, self._load, username)

    @defer.inlineCallbacks
    def _load(self, username):
        cached = self.cache.get(username)
        if cached is not None:
            return cached
        value = yield self.store.get(self.host.domain, username, STORE_KEY)
        return self._cached(username, value or ())

    def _cached(self, username, registrations):
        registrations = tuple(registrations)
        self.cache[username] = registrations
        self.cache.move_to_end(username)
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return registrations

    @defer.inlineCallbacks
    def _change(self, username, fn):
        """In the account's turn: the registrations after C{fn(list)} changed them, written
        before the cache sees them."""
        registrations = list((yield self._load(username)))
        fn(registrations)
        yield self.store.set(self.host.domain, username, STORE_KEY, registrations or None)
        return self._cached(username, registrations)

    # -- the protocol ------------------------------------------------------------------------

    def _own_account(self, iq):
        sender = dispatch.parse_jid_attr(iq, "from")
        target = dispatch.parse_jid_attr(iq, "to")
        if sender is None or target is None or sender.bare() != target:
            raise StanzaError("forbidden", "Push notifications are for your own account")
        return sender

    def enable(self, iq):
        """IQ set <enable/>: add or replace the registration of (jid, node)."""
        sender = self._own_account(iq)
        el = iq.find(f"{{{NS_PUSH}}}enable")
        push_jid = _push_jid(el)
        node = el.get("node")
        if not node:
            raise StanzaError("bad-request", "The node is missing")
        if len(node) > MAX_NODE:
            raise StanzaError("bad-request", "The node is too long")
        options = _publish_options(el)
        entry = {"jid": push_jid, "node": node, "options": options}

        def add(registrations):
            for i, known in enumerate(registrations):
                if (known["jid"], known["node"]) == (push_jid, node):
                    registrations[i] = entry
                    return
            if len(registrations) >= self.max_registrations:
                raise StanzaError("policy-violation", f"At most {self.max_registrations} "
                                  "push registrations per account")
            registrations.append(entry)

        d = self.turns.run(sender.local, self._change, sender.local, add)

        def enabled(_):
            session = self.host.sessions.get(sender)
            if session is not None:
                _state(session).keys.add((push_jid, node))
            self.host.log.info("push enabled for {user}", user=sender.bare())
            return None

        return d.addCallback(enabled)

    def disable(self, iq):
        """IQ set <disable/>: remove (jid, node), or every node of jid."""
        sender = self._own_account(iq)
        el = iq.find(f"{{{NS_PUSH}}}disable")
        push_jid = _push_jid(el)
        node = el.get("node") or None
        removed = []

        def remove(registrations):
            kept = [r for r in registrations
                    if r["jid"] != push_jid or (node is not None and r["node"] != node)]
            removed.extend(r for r in registrations if r not in kept)
            registrations[:] = kept

        d = self.turns.run(sender.local, self._change, sender.local, remove)
        return d.addCallback(lambda _: self._forget(sender.bare(), removed))

    def _forget(self, bare, removed):
        for registration in removed:
            pair = (registration["jid"], registration["node"])
            self.notifier.forget((str(bare), *pair))
            for session in self.host.sessions.resources(bare):
                state = session.state.get(KEY)
                if state is not None:
                    state.keys.discard(pair)
        return None

    def _disabled_by_service(self, key):
        """The service refused a notification: remove that registration."""
        user, push_jid, node = key
        bare = JID.parse(user)

        def remove(registrations):
            registrations[:] = [r for r in registrations
                                if (r["jid"], r["node"]) != (push_jid, node)]

        def removed(_):
            self._forget(bare, [{"jid": push_jid, "node": node}])
            self.host.log.info("push registration of {user} to {service} disabled after an "
                               "error answer", user=user, service=push_jid)

        d = self.turns.run(bare.local, self._change, bare.local, remove)
        d.addCallback(removed)
        d.addErrback(lambda failure: self.host.log.failure(
            "disabling a push registration of {user} failed", failure, user=user))

    def answer(self, iq, origin=None):
        """IQ_BARE: results and errors answering our publishes."""
        if iq.get("type") in ("result", "error") and self.notifier.answered(iq):
            return dispatch.HANDLED
        return None

    # -- triggers --------------------------------------------------------------------------

    def message_offline(self, message, origin=None):
        """MESSAGE_OFFLINE: a message about to be stored offline (left to offline)."""
        if message.get("type", "normal") not in ("chat", "normal"):
            return None
        if message.find(NO_STORE) is not None:
            return None
        for delay in message.iterchildren(DELAY):
            if delay.get("from") == self.host.domain:
                return None     # delivered (and notified) before: a re-route
        summary = summarize(message)
        if summary is not None:
            try:
                bare = JID.parse(message.get("to")).bare()
            except (InvalidJID, TypeError):
                return None
            self._notify(bare, message, [summary], ())
        return None

    def stage(self, session, stanza):
        """Outbound stage: a message to a hibernated session; a connected one resets."""
        if stanza.tag != st.MESSAGE:
            return stanza
        state = session.state.get(KEY)
        if _hibernated(session):
            summary = summarize(stanza, state.rooms if state is not None else None)
            if summary is not None:
                self._notify(session.jid.bare(), stanza, [summary], (session,))
        elif state is not None and state.keys:
            user = str(session.jid.bare())
            for pair in state.keys:
                self.notifier.reset((user, *pair))
        return stanza

    def detached(self, session):
        """SESSION_DETACHED: once stream management has kept the session, notify what its
        dead connection may never have shown."""
        self.host.call_later(0, self._hibernated, session)
        return None

    def _hibernated(self, session):
        if not _hibernated(session):
            return
        queue = getattr(session.state.get("sm"), "queue", None) or ()
        state = session.state.get(KEY)
        rooms = state.rooms if state is not None else None
        summaries = [s for s in (summarize(stanza, rooms) for _, stanza in queue
                                 if stanza.tag == st.MESSAGE) if s is not None]
        if summaries:
            self._notify(session.jid.bare(), None, summaries, (session,))

    def session_bound(self, session):
        """SESSION_BOUND: the user connected; counts start again."""
        self.notifier.reset_user(str(session.jid.bare()))

    def directed_presence(self, presence, origin=None):
        """PRE_PRESENCE: remember the user's nickname in the rooms it joins (mentions)."""
        to = presence.get("to")
        if origin is None or not to or "/" not in to:
            return None
        room, _, nick = to.partition("/")
        if presence.get("type") is None and presence.find(MUC_JOIN) is not None:
            _state(origin).rooms[room] = nick
        elif presence.get("type") == "unavailable":
            state = origin.state.get(KEY)
            if state is not None:
                state.rooms.pop(room, None)
        return None

    def user_deleted(self, bare_jid):
        """USER_DELETED: storage forgot the registrations; so does memory."""
        bare = bare_jid if isinstance(bare_jid, JID) else JID.parse(bare_jid)
        self.cache.pop(bare.local, None)
        self.notifier.forget_user(str(bare))

    # -- who is notified -----------------------------------------------------------------

    def _notify(self, bare, message, summaries, sleepers):
        d = self.registrations(bare.local)
        d.addCallback(self._targets, bare, message, summaries, sleepers)
        d.addErrback(lambda failure: self.host.log.failure(
            "reading the push registrations of {user} failed", failure, user=bare))

    def _targets(self, registrations, bare, message, summaries, sleepers):
        if not registrations:
            return
        sessions = self.host.sessions.resources(bare)
        wanted = set()
        for session in sleepers:
            state = session.state.get(KEY)
            if state is not None:
                wanted |= state.keys
        reachable = any(not _hibernated(s) and s.available and s.priority >= 0
                        for s in sessions)
        if not reachable:
            connected = set()
            for session in sessions:
                state = session.state.get(KEY)
                if state is not None and not _hibernated(session):
                    connected |= state.keys
            wanted |= {(r["jid"], r["node"]) for r in registrations} - connected
        if message is not None:
            for seen, keys in self.recent:
                if seen is message:
                    wanted -= keys
                    keys |= wanted
                    break
            else:
                self.recent.append((message, set(wanted)))
        user = str(bare)
        for registration in registrations:
            pair = (registration["jid"], registration["node"])
            if pair in wanted:
                self.notifier.add((user, *pair), registration["options"], summaries)


def _state(session):
    state = session.state.get(KEY)
    if state is None:
        state = session.state[KEY] = SessionPush()
    return state


def _hibernated(session):
    """Detached from its connection and kept (a FakeSession has no stream: connected)."""
    return getattr(session, "stream", True) is None and not getattr(session, "ended", False)


def _push_jid(el):
    """The push service's JID in C{el}'s jid attribute, normalised."""
    value = el.get("jid")
    if not value:
        raise StanzaError("bad-request", "The push service's jid is missing")
    try:
        return str(JID.parse(value))
    except InvalidJID:
        raise StanzaError("jid-malformed", "The push service's jid is not a JID") from None


def _publish_options(el):
    """The publish-options form of an <enable/> as XML text to store, or None."""
    found = list(el.iterchildren(forms.X))
    if not found:
        return None
    if len(found) > 1:
        raise StanzaError("bad-request", "At most one publish-options form")
    x = found[0]
    if x.get("type") not in (None, "submit"):
        raise StanzaError("bad-request", "The publish-options form must be submitted")
    try:
        form = forms.parse(x)
    except forms.FormError as e:
        raise e.stanza_error() from None
    if forms.form_type_of(x) != PUBLISH_OPTIONS:
        raise StanzaError("bad-request", f"The form's FORM_TYPE must be {PUBLISH_OPTIONS}")
    # A FORM_TYPE without type='hidden' in a form without type stays among the fields.
    fields = tuple(forms.Field(f.var, f.type, values=f.values) for f in form.fields
                   if f.var not in (None, forms.FORM_TYPE))
    text = serialize(forms.Form("submit", PUBLISH_OPTIONS, fields).to_element()).decode()
    if len(text) > MAX_OPTIONS:
        raise StanzaError("bad-request", "The publish-options form is too large")
    return text


push_notifications = PushNotifications()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
