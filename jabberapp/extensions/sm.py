"""
XEP-0198: Stream Management (urn:xmpp:sm:3) -- acks and resumption for c2s sessions.

Theory of operation
-------------------
One IStreamFeature step, one outbound stage and three session hooks, all through IHost:

- **Enable.** <sm/> is advertised once the stream is authenticated. <enable/> on a bound
  stream starts counting both ways; with resume='true' the session gets an unguessable id
  and may outlive its connection for ``resume_timeout`` seconds (``max`` in <enabled/>).
  <enable/> before binding, or twice, is <failed/> with <unexpected-request/>.
- **Inbound count.** h is the number of the client's stanzas handled since <enable/>
  (``session.handled``): delivered, answered or bounced at once, or -- a message stored
  offline -- once the write has committed (or failed and been bounced). The core keeps the
  count in order (jabberapp.stream.intake): it stops before the oldest stanza whose write is
  not over. <r/> is answered at once with that count: XEP-0198 §4 says the answer "MUST
  NOT be withheld for any condition other than a timeout" (Prosody and ejabberd answer at
  once too, counting a stanza as it arrives). When stanzas were still being written, an
  unsolicited <a/> (allowed at any time, §4) follows as soon as they are all handled, so
  a client learns without asking again. <resume/> waits for those writes before it
  answers: an h short of a message being stored would make the client send it again, and
  it would be stored twice.
- **Outbound queue.** The stage, registered last before the wire, numbers every stanza to
  an enabled session and keeps it until the client's <a h=…/> acknowledges it -- as the
  bytes the client is sent: the stage serialises the stanza once and writes those bytes
  to the stream itself (a snapshot, so a later hook altering the shared element changes
  nothing kept, and no stanza is serialised twice). They are transport-neutral: a c2s
  stream, TCP or framed (WebSocket, BOSH), writes every stanza as the standalone element
  C{serialize()} makes (it declares xmlns='jabber:client'), so a resumption on another
  kind of transport writes them as they are. Only the rare paths that need elements
  parse them back (``SMState.queue``: the end of the session, push notifications). Once
  ``request_every`` stanzas are unacknowledged an <r/> follows them (written on the next
  reactor turn, after the stanza; one reactor call per turn for all the sessions). Past
  ``max_queue`` unacknowledged stanzas the session is closed with <policy-violation/>, as
  Prosody does. An h above what was sent is <undefined-condition/> with
  <handled-count-too-high/>.
- **Ack timeout.** An <r/> of ours not answered with an <a/> within ``ack_timeout``
  seconds (60, as ejabberd; 0: never) means the connection is dead although TCP has not
  noticed: the session is detached at once as if it had dropped (``Session.drop``), so a
  resumable one waits for its resumption and any other ends as below. One timer per
  outstanding <r/>, none while nothing is unacknowledged.
- **Drop and resume.** A connection that drops without a close detaches the session;
  SESSION_DETACHED keeps it when resumption was enabled and starts the resumption timer
  (``resume_timeout``, or the client's own shorter ``max``). The session stays bound and
  available meanwhile: its contacts see no unavailable presence unless it times out.
  While detached the stage still numbers and queues (nothing is written). A new stream,
  authenticated as the same account and not bound, sends <resume previd=… h=…/>: the
  session is adopted by the new stream (an old stream still attached is closed: the
  client came back before the server saw the drop), <resumed/> carries our h, and every
  stanza after the client's h is written again, in order, once. An unknown or expired id,
  or one of another account, is <failed/> with <item-not-found/> and tells nothing more --
  except that the owner of a session that ended gets its last h in <failed/> (XEP-0198
  §5), so its client resends only what the server had not handled.
- **The end.** A session that times out, closes cleanly or is closed for any reason ends
  as the core ends sessions (unavailable presence, unbind, SESSION_CLOSED); then its
  unacknowledged stanzas are handled as RFC 6121 says for undelivered ones: chat and
  normal messages go back through delivery to the bare JID (another resource, else
  offline storage, else the core's error) with a XEP-0203 <delay/> of when they were first
  sent; IQ requests are answered with <service-unavailable/>; presence, headlines,
  groupchat and errors are dropped.
"""
import secrets
from collections import OrderedDict, deque
from datetime import datetime, timezone

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError, StreamError
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.specs import Spec
from jabberapp.xml import element, parse_element, serialize

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"
MOD = 2 ** 32                      # h wraps at 2^32 (XEP-0198 §5)
# Last before the wire: what the client is sent is what is numbered and kept.
STAGE_PRIORITY = -1000
# Ended resumable sessions whose h a late <resume/> of their owner is told (as Prosody's
# smacks_max_old_sessions): a few dozen bytes each, the oldest forgotten first.
ENDED_KEPT = 10000


class HandledCountTooHigh(StreamError):
    """<undefined-condition/> with XEP-0198's <handled-count-too-high/> (§4)."""

    def __init__(self, h, sent):
        super().__init__("undefined-condition", "You acknowledged stanzas never sent")
        self.h = h
        self.sent = sent

    def to_element(self):
        error = super().to_element()
        error.append(element(NS_SM, "handled-count-too-high", h=str(self.h),
                             **{"send-count": str(self.sent)}))
        return error


class SMState:
    """One session's stream management: counts, the unacknowledged queue, resumption."""

    __slots__ = ("id", "resume", "max", "base", "acked", "sent", "kept", "timer",
                 "requested", "request_due", "ack_timer", "owed", "settling")

    def __init__(self, base, resume, max_seconds):
        self.id = secrets.token_urlsafe(18) if resume else None
        self.resume = resume
        self.max = max_seconds    # the resumption timeout of this session
        self.base = base          # session.received at <enable/>
        self.acked = 0            # stanzas the client acknowledged (unbounded int)
        self.sent = 0             # stanzas numbered by the stage (unbounded int)
        self.kept = deque()       # (sent-at seconds, stanza bytes) for acked+1 .. sent
        self.timer = None         # the resumption timeout while detached
        self.requested = False    # an <r/> is outstanding
        self.request_due = False  # an <r/> is scheduled for the next turn
        self.ack_timer = None     # the ack timeout of the outstanding <r/>
        self.owed = None          # an <a/> answered short: send one once this is handled
        self.settling = None      # [(count, Deferred)]: resumptions waiting for writes

    def handled(self, session):
        """Our h: the stanzas of the client handled since <enable/>."""
        return max(session.handled - self.base, 0) % MOD

    def acknowledge(self, h):
        """Drop what the client's C{h} acknowledges; False when h is above what was sent."""
        delta = (h - self.acked) % MOD
        if delta > self.sent - self.acked:
            return False
        popleft = self.kept.popleft
        for _ in range(delta):
            popleft()
        self.acked += delta
        return True

    @property
    def queue(self):
        """The unacknowledged stanzas as (sent-at seconds, element), parsed from the bytes
        kept: new elements, in order (for the rare readers that need elements)."""
        return [(sent_at, parse_element(data)) for sent_at, data in self.kept]


@implementer(IPlugin, IExtension)
class StreamManagement:
    """The stream management extension (see the module docstring)."""

    name = "sm"
    depends = ()
    specs = (Spec("XEP-0198", "1.6", "Stream Management",
                  "acks and resumption on c2s; unacknowledged messages re-routed or stored "
                  "offline when a session ends"),)
    options = (
        Option("resume_timeout", int_range(1, 3600), default=300,
               doc="Seconds a session whose connection dropped is kept for a resumption "
                   "(the 'max' of <enabled/>; a client may ask for less); then it ends and "
                   "its unacknowledged messages go to another resource or offline storage."),
        Option("max_queue", int_range(1, 100000), default=500,
               doc="Unacknowledged stanzas kept per session; a client that falls further "
                   "behind is disconnected with a policy-violation stream error."),
        Option("request_every", int_range(1, 10000), default=5,
               doc="Ask the client for an acknowledgement (<r/>) once this many stanzas "
                   "sent to it are unacknowledged."),
        Option("ack_timeout", int_range(0, 3600), default=60,
               doc="Seconds to wait for the answer to an <r/>; a connection that does "
                   "not answer in time is taken for dead and dropped: a resumable session "
                   "then awaits its resumption, another ends. 0: wait forever."),
    )

    def install(self, host):
        """Register the stream feature, the outbound stage and the session hooks."""
        manager = SMManager(host, host.config["resume_timeout"], host.config["max_queue"],
                            host.config["request_every"], host.config["ack_timeout"])
        host.add_stream_feature(manager)
        # XEP-0198 §: <enable/> inline in Bind2, <resume/> inline in SASL2.
        host.add_bind2_feature(NS_SM, manager.enable)
        host.add_sasl2_feature(NS_SM, "sm", manager.resume)
        host.add_outbound_stage(manager.registered, priority=STAGE_PRIORITY)
        host.hook(dispatch.SESSION_DETACHED, manager.detached)
        host.hook(dispatch.SESSION_CLOSED, manager.closed)
        host.hook(dispatch.SESSION_HANDLED, manager.progressed)
        host.on_unload(manager.unload)


@implementer(IStreamFeature)
class SMManager:
    """Stream management on one host: the step, the stage, the resumable sessions."""

    namespace = NS_SM
    key = "sm"   # in session.state

    def __init__(self, host, resume_timeout, max_queue, request_every, ack_timeout=0):
        self.host = host
        self.resume_timeout = resume_timeout
        self.max_queue = max_queue
        self.request_every = request_every
        self.ack_timeout = ack_timeout
        self.resumable = {}      # id -> session
        self.registered = self.stage   # the bound method the pipeline holds (see stage())
        self._due = None         # [(session, state)] whose <r/> goes out next turn
        self.ended = OrderedDict()  # id -> (username, h) of ended sessions, newest last

    # -- IStreamFeature ---------------------------------------------------------------------

    def advertise(self, stream):
        """<sm/> once authenticated (XEP-0198 §2)."""
        return element(NS_SM, "sm") if stream.username is not None else None

    def handle(self, stream, el):
        """<enable/>, <resume/>, <r/>, <a/>."""
        name = el.tag.rpartition("}")[2]
        handler = self._handlers.get(name)
        if handler is None:
            raise StreamError("unsupported-stanza-type")
        return handler(self, stream, el)    # a Deferred holds the stream's next elements

    def _enable(self, stream, el):
        stream.send(self.enable(stream, el))

    def enable(self, stream, el):
        """The answer to <enable/> on C{stream}: on its own, or inline in Bind2."""
        session = stream.session
        if session is None or self.key in session.state:
            return failed("unexpected-request")
        resume = el.get("resume") in ("true", "1")
        # The client may ask for a shorter resumption timeout (XEP-0198 §3), never longer.
        max_seconds = self.resume_timeout
        wanted = el.get("max", "")
        if wanted.isascii() and wanted.isdigit() and 0 < int(wanted) < max_seconds:
            max_seconds = int(wanted)
        state = SMState(session.received, resume, max_seconds)
        session.state[self.key] = state
        if resume:
            self.resumable[state.id] = session
            return element(NS_SM, "enabled", id=state.id, resume="true", max=str(max_seconds))
        return element(NS_SM, "enabled")

    def _request(self, stream, el):
        state = self._state_of(stream)
        session = stream.session
        stream.send(element(NS_SM, "a", h=str(state.handled(session))))
        if session.unhandled is not None:
            state.owed = session.received       # the rest follows once written

    def _ack(self, stream, el):
        state = self._state_of(stream)
        state.requested = False
        self._cancel_ack_timer(state)
        self._acknowledge(state, el)
        if len(state.kept) >= self.request_every:
            self._schedule_request(stream.session, state)

    def _resume(self, stream, el):
        return self.resume(stream, el, stream.send)

    def resume(self, stream, el, answer):
        """<resume/> on C{stream}: C{answer(element)} gets <resumed/> or <failed/> before
        the queue is written again (inline in SASL2, it goes into <success/>)."""
        if stream.username is None or stream.session is not None:
            answer(failed("unexpected-request"))
            return
        previd = el.get("previd") or ""
        session = self.resumable.get(previd)
        if session is None or session.ended or session.jid.local != stream.username:
            # Another account's id is refused exactly as an unknown one. The owner of a
            # session that ended learns its last h, so it resends only what was not handled.
            username, h = self.ended.get(previd, (None, None))
            answer(failed("item-not-found", h if username == stream.username else None))
            return None
        state = session.state[self.key]
        if session.unhandled is not None:
            # Our h must cover the messages being stored, or the client sends them again.
            return self._settled(session, state).addCallback(
                lambda _: self.resume(stream, el, answer))
        h = parse_h(el)
        delta = (h - state.acked) % MOD
        if delta > state.sent - state.acked:
            answer(failed("undefined-condition", h=state.handled(session)))
            return
        self._cancel_timer(state)
        self._cancel_ack_timer(state)
        stream.adopt(session)     # closes an old stream still attached
        state.requested = False
        state.owed = None         # <resumed/> carries the count
        state.acknowledge(h)
        self.host.log.info("session {jid} resumed", jid=session.jid)
        answer(element(NS_SM, "resumed", previd=state.id, h=str(state.handled(session))))
        # The bytes as they were first written: valid on any c2s transport (see the module
        # docstring), so a session resumed on WebSocket gets what TCP would have had.
        for _, data in state.kept:
            write_serialized(session, data)
        if len(state.kept) >= self.request_every:
            self._schedule_request(session, state)
        return None

    def _settled(self, session, state):
        """A Deferred that fires once every stanza received so far is handled."""
        d = defer.Deferred()
        if state.settling is None:
            state.settling = []
        state.settling.append((session.received, d))
        return d

    _handlers = {"enable": _enable, "r": _request, "a": _ack, "resume": _resume}

    def _state_of(self, stream):
        session = stream.session
        state = None if session is None else session.state.get(self.key)
        if state is None:
            raise StreamError("unsupported-stanza-type", "Stream management is not enabled")
        return state

    def _acknowledge(self, state, el):
        h = parse_h(el)
        if not state.acknowledge(h):
            raise HandledCountTooHigh(h, state.sent % MOD)

    # -- the outbound stage -------------------------------------------------------------------

    def stage(self, session, stanza):
        """Number and keep each stanza to an enabled session; being the last stage, write
        the bytes kept to the attached stream itself (the session then writes nothing)."""
        state = session.state.get(self.key)
        if state is None:
            return stanza
        state.sent += 1
        data = serialize(stanza)
        kept = state.kept
        kept.append((self.host.clock.seconds(), data))
        unacked = len(kept)
        if unacked > self.max_queue:
            self.host.log.info("session {jid}: {n} stanzas unacknowledged, closing",
                               jid=session.jid, n=unacked)
            # Kept in the queue: the end re-routes it with the rest.
            session.close(StreamError("policy-violation", "Too many unacknowledged stanzas"))
            return None
        if unacked >= self.request_every:
            self._schedule_request(session, state)
        stream = getattr(session, "stream", None)
        if stream is None or session._pipeline.stages[-1] is not self.registered:
            # Detached (nothing is written), a session without a stream of its own (a test
            # double), or a stage after ours: the stanza goes on as an element.
            return stanza
        stream.send_serialized(data)
        return None

    def _schedule_request(self, session, state):
        if state.requested or state.request_due or session.stream is None:
            return
        state.request_due = True
        # Next turn: the <r/> goes after the stanza being sent now (and after a burst).
        # One reactor call a turn for every session with an <r/> due.
        due = self._due
        if due is None:
            due = self._due = []
            self.host.clock.callLater(0, self._send_requests)
        due.append((session, state))

    def _send_requests(self):
        due, self._due = self._due, None
        for session, state in due:
            try:
                self._send_request(session, state)
            except Exception:
                self.host.log.failure("sending <r/> to {jid} failed", jid=session.jid)

    def _send_request(self, session, state):
        state.request_due = False
        if session.ended or state.requested or not state.kept:
            return
        if session.write(element(NS_SM, "r")):
            state.requested = True
            if self.ack_timeout:
                state.ack_timer = self.host.clock.callLater(
                    self.ack_timeout, self._ack_timed_out, session, state)

    def _ack_timed_out(self, session, state):
        state.ack_timer = None
        if session.ended or session.stream is None or session.state.get(self.key) is not state:
            return
        self.host.log.info("session {jid}: no answer to <r/> in {timeout} s, dropping its "
                           "connection", jid=session.jid, timeout=self.ack_timeout)
        session.drop()      # detached: resumable sessions wait, others end

    def _cancel_ack_timer(self, state):
        if state.ack_timer is not None and state.ack_timer.active():
            state.ack_timer.cancel()
        state.ack_timer = None

    def progressed(self, session):
        """SESSION_HANDLED: writes the client's stanzas waited for are over; owe no <a/>
        and hold no resumption longer than needed."""
        state = session.state.get(self.key)
        if state is None:
            return
        handled = session.handled
        if state.owed is not None and handled >= state.owed:
            state.owed = None
            session.write(element(NS_SM, "a", h=str(state.handled(session))))
        if state.settling:
            self._settle(state, handled)

    def _settle(self, state, handled):
        waiting = state.settling
        state.settling = [(count, d) for count, d in waiting if count > handled] or None
        for count, d in waiting:
            if count <= handled:
                d.callback(None)

    # -- the session's life ---------------------------------------------------------------------

    def detached(self, session):
        """SESSION_DETACHED: keep a resumable session for resume_timeout seconds."""
        state = session.state.get(self.key)
        if state is None or not state.resume:
            return None
        state.requested = False
        state.owed = None
        self._cancel_ack_timer(state)
        self._cancel_timer(state)
        state.timer = self.host.clock.callLater(state.max, self._expired, session)
        self.host.log.info("session {jid} awaits resumption", jid=session.jid)
        return dispatch.HANDLED

    def _expired(self, session):
        state = session.state.get(self.key)
        if state is not None:
            state.timer = None
        if session.stream is None and not session.ended:
            self.host.log.info("session {jid} not resumed in time", jid=session.jid)
            session.close()

    def closed(self, session):
        """SESSION_CLOSED: forget the session; what it did not acknowledge is delivered
        elsewhere (messages), answered (IQ requests) or dropped."""
        state = session.state.get(self.key)
        if state is None:
            return
        self._cancel_timer(state)
        self._cancel_ack_timer(state)
        if state.id is not None:
            self.resumable.pop(state.id, None)
            self.ended[state.id] = (session.jid.local, state.handled(session))
            if len(self.ended) > ENDED_KEPT:
                self.ended.popitem(last=False)
        if state.settling:
            self._settle(state, float("inf"))   # they find the session ended
        kept, state.kept = state.kept, deque()
        for sent_at, data in kept:
            try:
                self._undelivered(session, parse_element(data), sent_at)
            except Exception:
                self.host.log.failure("re-routing an unacknowledged stanza of {jid} failed",
                                      jid=session.jid)

    def _undelivered(self, session, stanza, sent_at):
        tag = stanza.tag
        if tag == st.MESSAGE:
            if stanza.get("type", "normal") not in ("chat", "normal"):
                return
            if stanza.find(f"{{{NS_DELAY}}}delay") is None:
                stanza.append(element(NS_DELAY, "delay", {"from": self.host.domain},
                                      stamp=timestamp(sent_at)))
            # Back through delivery to the account: another resource, or offline storage.
            stanza.set("to", str(session.jid.bare()))
            self.host.send(stanza)
        elif tag == st.IQ and stanza.get("type") in ("get", "set"):
            if stanza.get("from") is not None:
                self.host.send(st.error_reply(stanza, StanzaError("service-unavailable")))

    def _cancel_timer(self, state):
        if state.timer is not None and state.timer.active():
            state.timer.cancel()
        state.timer = None

    def unload(self):
        """The extension is going: end the sessions awaiting a resumption."""
        for session in list(self.resumable.values()):
            if session.stream is None:
                session.close()


def write_serialized(session, data):
    """Write the serialised stanza C{data} to C{session}'s stream; False while detached."""
    stream = session.stream
    if stream is None:
        return False
    stream.send_serialized(data)
    return True


def parse_h(el):
    """The h attribute of <a/> or <resume/>: an unsigned 32-bit integer."""
    try:
        h = int(el.get("h", ""))
    except ValueError:
        raise StreamError("bad-format", "h is not a number") from None
    if not 0 <= h < MOD:
        raise StreamError("bad-format", "h is out of range")
    return h


def failed(condition, h=None):
    """<failed/> with a stanza error condition (XEP-0198 §3, §5)."""
    attrs = {} if h is None else {"h": str(h)}
    el = element(NS_SM, "failed", attrs)
    el.append(element(NS_STANZAS, condition))
    return el


def timestamp(seconds):
    """XEP-0082 date-time in UTC with milliseconds."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


stream_management = StreamManagement()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
