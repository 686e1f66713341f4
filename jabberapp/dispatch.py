"""
Per-host dispatcher: hook chains with priorities, the IQ handler table, local delivery.

Theory of operation
-------------------
The router hands every stanza addressed to this host's domain to L{Dispatcher.dispatch}. The
stanza's 'to' decides the addressee kind -- the host itself, a user's bare JID or a user's full
JID -- and with the stanza kind that names one event (MESSAGE_BARE, IQ_HOST, ...). The event's
hook chain runs in priority order (higher first); a hook returning HANDLED ends it. When nobody
handled the stanza, the default rules of RFC 6120 §10 and RFC 6121 §8 apply: IQs go to the IQ
table (one owner per type, namespace, element name and addressee), messages and presence are
delivered to bound sessions, and whatever has no destination gets the standard error -- never
for a stanza of type 'error' or 'result'.

Stanzas a local client sends first pass the PRE_* chains (for blocking, carbons, privacy) in
L{Dispatcher.outgoing} before they are routed. Hooks take (stanza, origin); origin is the
sending ISession or None. Session events take (session,).
"""
import inspect

from twisted.internet import defer
from twisted.python.failure import Failure
from jabberapp.logging import logger

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.jid import InvalidJID, JID

log = logger(__name__)

HANDLED = object()  # returned by a hook to stop the chain

# Stanzas addressed to this host, by addressee kind.
MESSAGE_HOST = "message/host"
MESSAGE_BARE = "message/bare"
MESSAGE_FULL = "message/full"
PRESENCE_HOST = "presence/host"
PRESENCE_BARE = "presence/bare"
PRESENCE_FULL = "presence/full"
IQ_HOST = "iq/host"
IQ_BARE = "iq/bare"
IQ_FULL = "iq/full"
# Stanzas a local session sends, before routing.
PRE_MESSAGE = "pre-message"
PRE_PRESENCE = "pre-presence"
PRE_IQ = "pre-iq"
# Presence without 'to' from a local session (RFC 6121 §4.2, §4.4): roster broadcast.
PRESENCE_BROADCAST = "presence/broadcast"
# A message for a user's bare JID that no resource can take now: (message, None). Offline
# storage handles it; unhandled, the sender gets service-unavailable.
MESSAGE_OFFLINE = "message/offline"
# Session lifecycle: fn(session).
SESSION_BOUND = "session/bound"
SESSION_AVAILABLE = "session/available"  # initial presence sent, after its broadcast
SESSION_CLOSED = "session/closed"

_EVENTS = {
    (st.MESSAGE, "host"): MESSAGE_HOST, (st.MESSAGE, "bare"): MESSAGE_BARE,
    (st.MESSAGE, "full"): MESSAGE_FULL, (st.PRESENCE, "host"): PRESENCE_HOST,
    (st.PRESENCE, "bare"): PRESENCE_BARE, (st.PRESENCE, "full"): PRESENCE_FULL,
    (st.IQ, "host"): IQ_HOST, (st.IQ, "bare"): IQ_BARE, (st.IQ, "full"): IQ_FULL,
}
_PRE_EVENTS = {st.MESSAGE: PRE_MESSAGE, st.PRESENCE: PRE_PRESENCE, st.IQ: PRE_IQ}

IQ_ADDRESSEES = ("host", "user", "any")


def addressee_kind(jid):
    """'host' for the domain (with or without resource), 'bare' or 'full' for a user."""
    if jid.local is None:
        return "host"
    return "bare" if jid.resource is None else "full"


class Hooks:
    """Named chains of (priority, handler); higher priority first, ties in insertion order."""

    def __init__(self):
        self._chains = {}

    def add(self, event, handler, priority=0):
        chain = self._chains.setdefault(event, [])
        chain.append((priority, handler))
        # Stable sort keeps insertion order among equal priorities.
        chain.sort(key=lambda entry: -entry[0])

    def remove(self, event, handler):
        chain = self._chains.get(event, [])
        chain[:] = [entry for entry in chain if entry[1] is not handler]

    def fire(self, event, *args):
        """Run the chain; True when a hook returned HANDLED."""
        chain = self._chains.get(event)
        if not chain:
            return False
        for _, handler in tuple(chain):
            try:
                if handler(*args) is HANDLED:
                    return True
            except Exception:
                log.failure("hook {event} failed", event=event)
        return False


class Dispatcher:
    """Delivers stanzas addressed to one host; see the module docstring."""

    def __init__(self, host):
        self.host = host  # the VirtualHost: domain, sessions, router, storage
        self.hooks = Hooks()
        self._iq_table = {}
        self._pending = {}  # (id, addressee JID) -> (Deferred, timeout call)

    # -- registration ---------------------------------------------------------------------

    def add_iq_handler(self, type, namespace, name, handler, to="host"):
        if type not in ("get", "set"):
            raise ValueError(f"IQ handlers are for 'get' or 'set', not {type!r}")
        if to not in IQ_ADDRESSEES:
            raise ValueError(f"IQ addressee must be one of {IQ_ADDRESSEES}, not {to!r}")
        key = (type, f"{{{namespace}}}{name}", to)
        if key in self._iq_table:
            raise ValueError(f"IQ handler for {key} is already registered")
        self._iq_table[key] = handler

    def remove_iq_handler(self, type, namespace, name, to="host"):
        self._iq_table.pop((type, f"{{{namespace}}}{name}", to), None)

    # -- inbound: stanzas addressed to this host ------------------------------------------

    def dispatch(self, stanza, origin=None):
        """Handle a stanza whose 'to' domain is this host."""
        to = JID.parse(stanza.get("to"))
        kind = addressee_kind(to)
        if self.hooks.fire(_EVENTS[stanza.tag, kind], stanza, origin):
            return
        tag = stanza.tag
        if tag == st.IQ:
            self._default_iq(stanza, to, kind)
        elif tag == st.MESSAGE:
            self._default_message(stanza, to, kind)
        else:
            self._default_presence(stanza, to, kind)

    def outgoing(self, stanza, origin):
        """Run the PRE_* chain for a stanza a local session sent; True when a hook took it."""
        return self.hooks.fire(_PRE_EVENTS[stanza.tag], stanza, origin)

    def _default_iq(self, iq, to, kind):
        type_ = iq.get("type")
        if type_ in ("result", "error"):
            if kind == "full":
                self._deliver_full(iq, to)
            elif kind == "host":
                self._answered(iq)
            return
        if kind == "full":
            if not self._deliver_full(iq, to):
                self.bounce(iq, "service-unavailable")
            return
        payload = _single_child(iq)
        if payload is None:
            self.bounce(iq, "bad-request", "An IQ get or set has exactly one child element")
            return
        addressee = "host" if kind == "host" else "user"
        handler = (self._iq_table.get((type_, payload.tag, addressee))
                   or self._iq_table.get((type_, payload.tag, "any")))
        if handler is None:
            self.bounce(iq, "service-unavailable")
            return
        self.run_iq_handler(handler, iq)

    def run_iq_handler(self, handler, iq):
        """Call an IQ handler and route its result or error reply."""
        try:
            result = handler(iq)
            if inspect.iscoroutine(result):
                result = defer.Deferred.fromCoroutine(result)
        except Exception as exc:
            self._iq_failed(iq, exc)
            return
        if isinstance(result, defer.Deferred):
            result.addCallbacks(lambda payload: self._iq_answered(iq, payload),
                                lambda failure: self._iq_failed(iq, failure.value, failure))
        else:
            self._iq_answered(iq, result)

    def _iq_answered(self, iq, payload):
        answer = st.reply(iq)
        if payload is not None:
            try:
                answer.append(payload)
            except TypeError as exc:
                self._iq_failed(iq, exc)
                return
        self.host.router.route(answer)

    def _iq_failed(self, iq, exc, failure=None):
        if isinstance(exc, StanzaError):
            self.host.router.route(st.error_reply(iq, exc))
            return
        # Our bug: log it, tell the peer nothing about the internals.
        if failure is None:
            log.failure("IQ handler failed for id {id}", Failure(exc), id=iq.get("id"))
        else:
            log.failure("IQ handler failed for id {id}", failure, id=iq.get("id"))
        self.host.router.route(st.error_reply(iq, StanzaError("internal-server-error")))

    def _default_message(self, message, to, kind):
        type_ = message.get("type", "normal")
        if kind == "host":
            if type_ not in ("error", "headline", "groupchat"):
                self.bounce(message, "service-unavailable")
            return
        if kind == "full":
            if self._deliver_full(message, to):
                return
            # RFC 6121 §8.5.3.2.1: no such resource; only chat falls back to the bare JID.
            if type_ == "chat":
                self.deliver_bare_message(message, to.bare())
            elif type_ != "error":
                self.bounce(message, "service-unavailable")
            return
        self.deliver_bare_message(message, to)

    def deliver_bare_message(self, message, bare):
        """RFC 6121 §8.5.2: deliver by type to the user's available resources; True if any."""
        type_ = message.get("type", "normal")
        available = [s for s in self.host.sessions.available(bare) if s.priority >= 0]
        if type_ == "error":
            return False
        if type_ == "groupchat":
            self.bounce(message, "service-unavailable")
            return False
        if available:
            if type_ in ("chat", "normal"):
                # The highest-priority resources only.
                top = max(s.priority for s in available)
                available = [s for s in available if s.priority == top]
            for session in available:
                session.send(message)
            return True
        if type_ == "headline":
            return False
        self.undeliverable(message, bare)
        return False

    def undeliverable(self, message, bare):
        """No resource can take the message now: MESSAGE_OFFLINE hooks (offline storage)
        may take it; otherwise the sender gets service-unavailable."""
        if not self.hooks.fire(MESSAGE_OFFLINE, message, None):
            self.bounce(message, "service-unavailable")

    def _default_presence(self, presence, to, kind):
        if kind == "host":
            return
        if kind == "full":
            self._deliver_full(presence, to)
            return
        if presence.get("type") in ("probe", "error"):
            return
        for session in self.host.sessions.available(to):
            session.send(presence)

    def _deliver_full(self, stanza, to):
        session = self.host.sessions.get(to)
        if session is None:
            return False
        session.send(stanza)
        return True

    # -- errors -------------------------------------------------------------------------------

    def bounce(self, stanza, condition, text=None):
        """Answer C{stanza} with an error, unless it is an error or result itself."""
        if st.is_error_or_result(stanza) or stanza.get("from") is None:
            return
        self.host.router.route(st.error_reply(stanza, StanzaError(condition, text)))

    # -- requests the server sends (XEP-0199 pings and the like) -------------------------

    def request(self, iq, timeout=60.0):
        """Send an IQ get/set from this host; Deferred fires with the result stanza, or fails
        with StanzaError (error reply) or defer.TimeoutError. Cancelling it forgets it."""
        iq_id = iq.get("id")
        if not iq_id or iq.get("to") is None:
            raise ValueError("a request needs an id and a 'to'")
        key = (iq_id, JID.parse(iq.get("to")))
        if key in self._pending:
            raise ValueError(f"a request {iq_id!r} to {iq.get('to')} is already pending")

        def forget(_):
            entry = self._pending.pop(key, None)
            if entry is not None and entry[1].active():
                entry[1].cancel()

        d = defer.Deferred(canceller=forget)
        call = self.host.clock.callLater(timeout, self._timed_out, key)
        self._pending[key] = (d, call)
        self.host.router.route(iq)
        return d

    def _timed_out(self, key):
        entry = self._pending.pop(key, None)
        if entry is not None:
            entry[0].errback(defer.TimeoutError(f"no answer to {key[0]}"))

    def _answered(self, iq):
        try:
            key = (iq.get("id"), JID.parse(iq.get("from") or ""))
        except InvalidJID:
            return
        entry = self._pending.pop(key, None)
        if entry is None:
            return
        d, call = entry
        call.cancel()
        if iq.get("type") == "result":
            d.callback(iq)
        else:
            d.errback(_error_of(iq))

    def cancel_requests(self):
        """Fail every pending request (the host is stopping)."""
        pending, self._pending = self._pending, {}
        for d, call in pending.values():
            call.cancel()
            d.errback(defer.CancelledError())


def _single_child(iq):
    children = [c for c in iq if isinstance(c.tag, str)]
    return children[0] if len(children) == 1 else None


def _error_of(stanza):
    """A StanzaError from an error stanza's <error/> (undefined-condition when unreadable)."""
    error = stanza.find(st.ERROR)
    if error is not None:
        for condition in error:
            name = condition.tag.rpartition("}")[2]
            try:
                return StanzaError(name, type=error.get("type"))
            except ValueError:
                continue
    return StanzaError("undefined-condition")


def parse_jid_attr(stanza, attr):
    """The JID in C{attr}, None when absent; raises StanzaError('jid-malformed') when bad."""
    value = stanza.get(attr)
    if value is None:
        return None
    try:
        return JID.parse(value)
    except InvalidJID:
        raise StanzaError("jid-malformed", f"Invalid JID in '{attr}'") from None
