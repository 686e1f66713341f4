"""
One BOSH session (XEP-0124, XEP-0206), sans-I/O: the requests it holds, the order of their
'rid's, its timers, and the stream it carries.

Theory of operation
-------------------
An HTTP request reaches handle(body, channel) with its parsed Body and a channel, the one
way to answer it (channel.respond(code, data); the HTTP side calls lost(channel) if the
client goes first). The session is also the stream's IFramedTransport: what the stream
writes (open, write, close_stream) is kept until a held request can carry it.

    rid:  ... answered (replayed from the buffer) | self.rid | next ... window | too far
                                                     └ highest handled in order

- A request with the next rid is handled at once: its payload goes to the stream, then it is
  held. One with a later rid inside the window (self.rid + requests) waits until the gap is
  filled; handled out of order it would reorder the client's stanzas. Its gap must fill
  within 'wait' seconds. A rid already answered gets the same response again from the
  buffer of the last 'requests' responses; any other rid (beyond the window, or behind the
  buffer) ends the session with item-not-found (§14).
- At most 'hold' requests are held: one more answers the oldest. Output answers the oldest
  held request with everything pending, batched at the end of the reactor turn (clock
  callLater 0), so a burst of stanzas takes one response. A held request is answered empty
  after 'wait' seconds. Responses always go out in rid order.
- While no request is held the inactivity timer runs ('inactivity' seconds, or the 'pause' a
  client asked for, at most 'maxpause'): when it fires the session is dropped like a lost TCP
  connection -- its stream's Session is detached, so XEP-0198 may keep it for a resumption.
- More simultaneous requests than 'requests' (one more for a pause or a terminate), or, in
  a polling session (hold or wait 0), two empty requests closer than 'polling' seconds
  while the first got nothing, end the session with policy-violation (§11, §12).
- Acknowledgements (§9): a client that sent ack='1' at creation gets 'ack' on responses
  answering a rid lower than the highest received, and a request acknowledging less than
  what was answered more than REPORT_AFTER seconds ago is answered at once with 'report'
  and 'time' (the response it missed can then be asked for again by its rid).
- A terminate request hands its payload to the stream, closes it (the Session ends:
  unavailable presence) and is answered type='terminate'. The stream's own end (a stream
  error, a conflict, shutdown) becomes a terminate response with remote-stream-error and the
  <stream:error/>; the server closing it without an error (a refused STARTTLS, a Session
  closed by the server) is undefined-condition. A terminal response nobody is holding a
  request for waits for the next request until the inactivity timer drops it.
- One request carries the terminal response: the one that caused the end (or, when none
  did, the one being handled, else the oldest); every other request held or waiting is
  answered type='terminate' condition='other-request' without stanzas (§17.2). An
  unexpected exception while handling a request is logged (by the caller) and ends the
  session with internal-server-error.
- A client that did not send 'ver' is a legacy client (§17.1): bad-request, policy-violation
  and item-not-found are HTTP 400, 403 and 404 for it.
"""
from collections import OrderedDict

from zope.interface import implementer

from jabberapp.errors import StreamError
from jabberapp.interfaces import IFramedTransport
from jabberapp.logging import logger
from jabberapp.transports.bosh.body import BadBody, parse_version, render_body, stream_header
from jabberapp.transports.bosh.requests import Held, Terminal, Waiting

__all__ = ["BOSHSession", "REPORT_AFTER", "VERSION"]

log = logger(__name__)

VERSION = (1, 11)               # the XEP-0124 version implemented
REPORT_AFTER = 2.0              # seconds a response may stay unacknowledged before a report
_LEGACY_CODES = {"bad-request": 400, "policy-violation": 403, "item-not-found": 404}
_HOST_CONDITIONS = ("host-unknown", "improper-addressing")
_ITEM_NOT_FOUND = render_body({"type": "terminate", "condition": "item-not-found"})
_OTHER_REQUEST = render_body({"type": "terminate", "condition": "other-request"})


@implementer(IFramedTransport)
class BOSHSession:
    """
    One session: created from its session creation request C{body} (already checked by
    the service) with the unguessable C{sid}; C{open_stream(self)} makes its stream (a
    FramedClientStream); C{on_end(self)} is told once when it is gone. C{secure} and
    C{peer_address} are those of the creation request.
    """

    can_start_tls = False       # TLS belongs to the HTTP layer

    def __init__(self, sid, body, limits, clock, open_stream, on_end, secure=False,
                 peer_address="?"):
        self.sid = sid
        self.clock = clock
        self.secure = secure
        self.peer_address = peer_address
        self._on_end = on_end
        self.rid = body.integer("rid")
        self.legacy = body.get("ver") is None
        client_version = parse_version(body.get("ver")) or VERSION
        self.version = min(VERSION, client_version)
        self.wait = min(body.integer("wait", limits.max_wait), limits.max_wait)
        self.hold = min(body.integer("hold", limits.max_hold), limits.max_hold)
        self.requests = max(1, min(self.hold + 1, limits.max_requests))
        self.polling = limits.polling
        self.polling_session = self.hold == 0 or self.wait == 0
        # A polling client waits 'polling' between requests: give it that on top.
        self.inactivity = limits.max_inactivity + (self.polling if self.polling_session
                                                   else 0)
        self.max_pause = limits.max_pause
        self.acks = body.get("ack") is not None
        self.held = []                  # Held, oldest first
        self.waiting = {}               # rid -> Waiting
        self.responses = OrderedDict()  # rid -> (data, sent at, carried payload)
        self.pending = []               # serialised elements not yet sent
        self.ended = False              # terminated or dropped: no more requests
        self.final = None               # the terminal response, kept for the next request
        self._creation = None           # the creation response's attributes, until sent
        self._flush_call = None
        self._inactive_call = None
        self._pause = None              # seconds of an agreed pause, until the next request
        self._last_empty_at = None      # when the latest empty request arrived
        self._stream_attrs = {}         # the stream header's, for the next response
        self._pending_bytes = 0
        self.max_pending = limits.max_pending
        self._final_code = 200
        self._lost_told = False         # the stream heard connection_lost
        self._lost_call = None
        self._creation_body = body
        self._cause = None              # the request being handled, while it is
        self._client_terminating = False
        self.stream = open_stream(self)

    def __repr__(self):
        return f"<BOSHSession {self.sid[:8]}... rid={self.rid}>"

    # -- creation ----------------------------------------------------------------------------

    def start(self, channel):
        """Answer the creation request on C{channel}: the stream is opened with its 'to',
        'xml:lang' and 'xmpp:version'; the response carries the session's attributes, the
        stream's and its features (XEP-0206 §5)."""
        body = self._creation_body
        self._creation_body = None
        attrs = {
            "sid": self.sid, "wait": self.wait, "requests": self.requests,
            "hold": self.hold, "inactivity": self.inactivity, "polling": self.polling,
            "maxpause": self.max_pause, "ver": "%d.%d" % self.version,
            # The connection manager and the server are one process: that link is secure.
            "secure": "true", "ack": self.rid if self.acks else None,
        }
        self._creation = attrs
        self._hold(self.rid, channel)
        self._cause = channel
        try:
            self.stream.open_received(stream_header(body))
        finally:
            self._cause = None

    # -- requests --------------------------------------------------------------------------

    def handle(self, body, channel):
        """A request of this session (its 'sid' matched)."""
        self._cause = channel
        try:
            self._handle(body, channel)
        except Terminal as terminal:
            self.terminate(terminal.condition, channel)
        except BadBody:
            self.terminate("bad-request", channel)
        except Exception:
            log.failure("BOSH request failed")
            self.fail(channel)
        finally:
            self._cause = None

    def _handle(self, body, channel):
        rid = body.integer("rid")
        if rid is None:
            raise Terminal("bad-request")
        if self.final is not None:
            if self.rid < rid <= self.rid + self.requests + 1:
                self._answer_final(channel)
            else:
                # Whoever this is, the last stanzas are not theirs to read.
                _answer(channel, self._code("item-not-found"), _ITEM_NOT_FOUND)
                self._end()
            return
        if rid <= self.rid:
            self._repeat(rid, channel)
            return
        extra = body.get("pause") is not None or body.get("type") == "terminate"
        if rid > self.rid + self.requests + extra:
            raise Terminal("item-not-found")
        waiting = self.waiting.get(rid)
        if waiting is not None:         # the same request again: its connection broke
            old, waiting.channel = waiting.channel, channel
            _answer(old, 200, render_body({}))
            return
        if len(self.held) + len(self.waiting) + 1 > self.requests + extra:
            raise Terminal("policy-violation")
        if rid != self.rid + 1:
            timer = self.clock.callLater(self.wait or self.polling, self._gap_expired)
            self.waiting[rid] = Waiting(body, channel, timer)
            return
        self._process(body, channel)
        while not self.ended and self.rid + 1 in self.waiting:
            waiting = self.waiting.pop(self.rid + 1)
            _cancel(waiting.timer)
            self._process(waiting.body, waiting.channel)

    def _repeat(self, rid, channel):
        """A rid already received: its response again, or a newer connection for it."""
        kept = self.responses.get(rid)
        if kept is not None:
            _answer(channel, 200, kept[0])
            return
        for held in self.held:
            if held.rid == rid:
                old, held.channel = held.channel, channel
                _answer(old, 200, render_body({}))
                return
        raise Terminal("item-not-found")

    def _gap_expired(self):
        # A request ahead of a gap that never filled: the missing one is lost for good.
        for waiting in self.waiting.values():
            _cancel(waiting.timer)
        self.terminate("item-not-found")

    def _process(self, body, channel):
        """Handle the request with the next rid."""
        now = self.clock.seconds()
        self.rid = rid = body.integer("rid")
        self._cause = channel
        self._stop_inactivity()
        self._pause = None
        report = self._check_ack(body, now)
        pause = body.integer("pause")
        terminate = body.get("type") == "terminate"
        restart = body.get("xmpp:restart") in ("true", "1")
        if body.empty and pause is None and not terminate and not restart:
            self._check_polling(now)
            self._last_empty_at = now
        else:
            self._last_empty_at = None
        if terminate:
            self._client_terminates(body, channel)
            return
        if pause is not None:
            self._paused(min(pause, self.max_pause), rid, channel)
            return
        self._hold(rid, channel, report)
        if restart:
            self.stream.open_received(stream_header(body))
        elif not body.empty:
            self.stream.elements_received(body.content)

    def _check_ack(self, body, now):
        """XEP-0124 §9.2: drop acknowledged responses; (report, time) when the client
        missed one answered long enough ago."""
        if not self.acks:
            return None
        ack = body.integer("ack")
        if ack is None:
            return None
        for rid in [rid for rid in self.responses if rid <= ack]:
            del self.responses[rid]
        missed = self.responses.get(ack + 1)
        if missed is not None and now - missed[1] >= REPORT_AFTER:
            return ack + 1, int((now - missed[1]) * 1000)
        return None

    def _check_polling(self, now):
        """§12: in a polling session, two empty requests closer than 'polling' seconds
        while the first got nothing are too frequent. (A long-polling session's empty
        requests are held, so they cost nothing; §11's stricter rule for them would end
        clients that keep 'requests' requests open.)"""
        last = self._last_empty_at
        if last is None or not self.polling_session or now - last >= self.polling:
            return
        previous = self.responses.get(self.rid - 1)
        got_nothing = (not previous[2]) if previous is not None else not self.pending
        if got_nothing:
            raise Terminal("policy-violation")

    def _paused(self, seconds, rid, channel):
        """§10: every held request answered now, the pause request without payload; the
        inactivity period is C{seconds} until the next request."""
        while self.held:
            self._answer_oldest()
        self._pause = seconds
        self._record(rid, channel, render_body(self._response_attrs(rid)), False)

    def _client_terminates(self, body, channel):
        """§13: the payload (unavailable presence, usually) goes to the stream, which is
        then closed; the Session ends as after a closed TCP stream."""
        stream = self.stream
        self._client_terminating = True
        if not body.empty:
            stream.elements_received(body.content)
        stream.close_received()
        if not stream.closed:
            # Its queue waits on a negotiation step (SASL, bind): nothing of a session
            # is behind it, so the stream is closed now.
            stream.close()
        # Output the payload caused (errors to the client's last stanzas) goes with it.
        self.end_quietly(channel)

    # -- holding and answering -----------------------------------------------------------------

    def _hold(self, rid, channel, report=None):
        held = Held(rid, channel, report=report)
        self.held.append(held)
        if report is not None:
            while self.held:
                self._answer_oldest()
            return
        if self.wait:
            held.timer = self.clock.callLater(self.wait, self._wait_expired, held)
        # Beyond 'hold', the oldest is answered now; a polling session's one request is
        # answered at the end of the turn, with what its payload caused.
        while len(self.held) > max(self.hold, 1):
            self._answer_oldest()
        if (self.pending or self._creation is not None or len(self.held) > self.hold
                or not self.wait):
            self._schedule_flush()

    def _wait_expired(self, held):
        held.timer = None
        if held in self.held:
            # Responses go in rid order: older held requests are answered first.
            while self.held and self.held[0] is not held:
                self._answer_oldest()
            self._answer_oldest()

    def _schedule_flush(self):
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self):
        self._flush_call = None
        if self.held and (self.pending or self._creation is not None):
            self._answer_oldest()
        while len(self.held) > self.hold or (self.held and not self.wait):
            self._answer_oldest()

    def _answer_oldest(self):
        """Answer the oldest held request with everything pending."""
        held = self.held.pop(0)
        if held.timer is not None and held.timer.active():
            held.timer.cancel()
        attrs = self._response_attrs(held.rid)
        if held.report is not None:
            attrs["report"], attrs["time"] = held.report
        payload = b"".join(self.pending)
        self.pending.clear()
        self._pending_bytes = 0
        self._record(held.rid, held.channel, render_body(attrs, payload), bool(payload))

    def _response_attrs(self, rid):
        attrs = {}
        creation = self._creation
        if creation is not None:
            self._creation = None
            attrs.update(creation)
        attrs.update(self._stream_attrs)
        self._stream_attrs = {}
        if self.acks and creation is None and self.rid > rid:
            attrs["ack"] = self.rid
        return attrs

    def _record(self, rid, channel, data, payload):
        """Answer request C{rid} with C{data} and keep it for a repeat of that rid."""
        self.responses[rid] = (data, self.clock.seconds(), payload)
        while len(self.responses) > self.requests:
            self.responses.popitem(last=False)
        _answer(channel, 200, data)
        if not self.held and not self.waiting and not self.ended:
            self._start_inactivity()

    def lost(self, channel):
        """The client closed the connection of a request before it was answered."""
        for held in self.held:
            if held.channel is channel:
                # Answered empty, into the void: a repeat of its rid gets this, and what
                # is pending waits for the next request.
                held.channel = None
                index = self.held.index(held)
                if held.timer is not None and held.timer.active():
                    held.timer.cancel()
                del self.held[index]
                self._record(held.rid, None, render_body(self._response_attrs(held.rid)),
                             False)
                return
        for rid, waiting in list(self.waiting.items()):
            if waiting.channel is channel:
                _cancel(waiting.timer)
                del self.waiting[rid]
                if not self.held and not self.waiting and not self.ended:
                    self._start_inactivity()
                return

    # -- inactivity ----------------------------------------------------------------------------

    def _start_inactivity(self):
        self._stop_inactivity()
        seconds = self.inactivity if self._pause is None else self._pause
        self._inactive_call = self.clock.callLater(seconds, self._inactive)

    def _stop_inactivity(self):
        if self._inactive_call is not None and self._inactive_call.active():
            self._inactive_call.cancel()
        self._inactive_call = None

    def _inactive(self):
        """§10: no request for 'inactivity' seconds: the client is gone. Its stream is lost
        without a close, as a dropped TCP connection's."""
        self._inactive_call = None
        log.info("BOSH session inactive")
        self._drop(StreamError("connection-timeout"))

    # -- the end ---------------------------------------------------------------------------

    def terminate(self, condition, channel=None, payload=None):
        """
        End the session with the terminal binding C{condition}: held and waiting requests
        (and C{channel}, the request that caused it) get the terminal response; the stream
        is closed, so its Session ends as after a stream error. With C{payload} (the
        stream's own end: its <stream:error/>), what was pending goes first; otherwise
        the response carries nothing, as the request causing it may be anyone's.
        """
        if self.final is not None:
            if channel is not None:
                self._answer_final(channel)
            return
        log.info("BOSH session terminated: {condition}", condition=condition)
        code = self._code(condition)
        attrs = {"type": "terminate", "condition": condition}
        content = b"" if payload is None else b"".join(self.pending) + payload
        self._set_final(render_body(attrs, content), code)
        if not self.stream.closed:
            self.stream.close()         # its close_stream comes back here: ignored
        self._finish(channel)

    def _code(self, condition):
        """The HTTP status of a terminal response: 200, or for a legacy client the
        deprecated code of C{condition} (§17.1)."""
        return _LEGACY_CODES.get(condition, 200) if self.legacy else 200

    def fail(self, channel=None):
        """An unexpected exception while handling C{channel}'s request (the caller logged
        it): the session ends with internal-server-error, never a hung request."""
        try:
            self.terminate("internal-server-error", channel)
        except Exception:
            # Closing the stream failed too: the requests are answered and the stream
            # hears of a lost connection at the end of the turn, as after close().
            if self.final is None:
                self._set_final(render_body({"type": "terminate",
                                             "condition": "internal-server-error"}), 200)
            self._finish(channel)
            self._end()
            self.close()

    def end_quietly(self, channel=None, condition=None):
        """End with a type='terminate' response carrying what is pending: without a
        condition after the client's terminate, with C{condition} otherwise."""
        if self.final is not None:
            if channel is not None:
                self._answer_final(channel)
            return
        attrs = {"type": "terminate", "condition": condition}
        self._set_final(render_body(attrs, b"".join(self.pending)), 200)
        self._finish(channel)

    def _set_final(self, data, code):
        self.final = data
        self._final_code = code
        self.pending.clear()
        self._pending_bytes = 0

    def _finish(self, channel):
        """Answer with the final response C{channel}, the request that caused the end
        (None: the request being handled, else the oldest held or waiting); every other
        request gets other-request. The session is gone once a request carried the final
        response, or after the inactivity period when none comes."""
        others = []
        for held in self.held:
            _cancel(held.timer)
            others.append(held.channel)
        self.held.clear()
        for _, waiting in sorted(self.waiting.items()):
            _cancel(waiting.timer)
            others.append(waiting.channel)
        self.waiting.clear()
        if channel is None:
            channel = self._cause
            if channel is None:
                channel = next((other for other in others if other is not None), None)
            elif channel not in others:
                channel = None      # a terminate request: its handler answers it next
        for other in others:
            if other is not channel:
                _answer(other, 200, _OTHER_REQUEST)
        answered = _answer(channel, self._final_code, self.final)
        if answered:
            self._end()
        else:
            self._start_inactivity()

    def _answer_final(self, channel):
        _answer(channel, self._final_code, self.final)
        self._end()

    def _drop(self, reason):
        """The session is gone without a word to the client (inactivity): its stream is
        lost unclosed, as a dropped TCP connection's."""
        self._end()
        self._tell_lost(reason)

    def _tell_lost(self, reason=None):
        if not self._lost_told:
            self._lost_told = True
            self.stream.connection_lost(reason)

    def _end(self):
        if self.ended:
            return
        self.ended = True
        self._stop_inactivity()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        for held in self.held:
            if held.timer is not None and held.timer.active():
                held.timer.cancel()
            _answer(held.channel, 200, render_body({}))
        self.held.clear()
        for waiting in self.waiting.values():
            _cancel(waiting.timer)
        self.waiting.clear()
        self.responses.clear()
        self.pending.clear()
        self._on_end(self)

    # -- the stream's transport (IFramedTransport) ---------------------------------------------

    def open(self, attrs):
        """See IFramedTransport.open: XEP-0206 puts the stream header on the next response
        (at creation: the creation response)."""
        self._stream_attrs = {"from": attrs.get("from"), "authid": attrs.get("id"),
                              "xmpp:version": attrs.get("version", "1.0")}

    def write(self, data):
        """See IFramedTransport.write: one element for the next response."""
        if self.final is not None:
            return
        self.pending.append(data)
        self._pending_bytes += len(data)
        if self.held:
            self._schedule_flush()
        elif self._pending_bytes > self.max_pending:
            # A client that stopped asking while its stanzas pile up (until the
            # inactivity timer would notice): bounded like a TCP send buffer.
            self.terminate("policy-violation")

    def close_stream(self, error=None):
        """See IFramedTransport.close_stream: the server ends the stream; with an error,
        the client gets remote-stream-error and the <stream:error/> (host-unknown or
        improper-addressing when the session request named no host we serve)."""
        if self.final is not None:
            return
        if error is None:
            # After the client's terminate the plain response; otherwise the server ended
            # the stream for a reason XEP-0124 has no name for.
            self.end_quietly(condition=None if self._client_terminating
                             else "undefined-condition")
            return
        if self._creation is not None:
            for condition in _HOST_CONDITIONS:
                if b"<" + condition.encode() in error:
                    self.terminate(condition)
                    return
        self.terminate("remote-stream-error", payload=error)

    def close(self):
        """See ITransport.close: after close_stream the connection is over; the stream
        hears of it at the end of the turn, as from a TCP connection."""
        if not self._lost_told and self._lost_call is None:
            self._lost_call = self.clock.callLater(0, self._tell_lost)

    def start_tls(self):
        """See ITransport.start_tls: never offered."""
        raise RuntimeError("STARTTLS is not offered over BOSH")

    def channel_bindings(self):
        """See ITransport.channel_bindings: none; each request may be another TLS
        connection, so -PLUS mechanisms cannot be bound to one."""
        return {}


def _cancel(call):
    if call is not None and call.active():
        call.cancel()


def _answer(channel, code, data):
    """Write a response on C{channel} (None: the client is gone); True when written."""
    if channel is None:
        return False
    channel.respond(code, data)
    return True
