"""
A bound client session (IClientSession), apart from the connection it arrived on.

Theory of operation
-------------------
Negotiation on a transport ends in ClientStream.bind() (or, for a resumption, adopt()), which
attaches the stream to a Session: the session is the resource in the host's registry, its
presence and per-extension state; the stream is only where its stanzas come from and go to.

    router ─▶ dispatcher ─▶ session.send(stanza) ─▶ outbound pipeline ─▶ stream ─▶ transport

send() runs the host's outbound stages (none: straight to the stream) and writes what comes
out to the attached stream; while detached nothing is written. A session is detached when its
connection drops without a close: SESSION_DETACHED asks the extensions whether to keep it
(stream management keeps it for a resumption); unless one does, or after close(), the session
ends: unavailable presence, unbind, SESSION_CLOSED -- exactly once.

Stanzas in. The stream counts the stanzas the session's intake took (C{received}). A stanza
whose handling ends in a write to storage (an offline message) is handled only once the write
is over: the intake registers the write (jabberapp.stream.intake.handled_when), and
C{handled} -- the count XEP-0198 acknowledges -- stops before the oldest stanza still waiting,
so it covers a prefix, in order. Nothing is kept while nothing waits (C{unhandled} is None).
"""
from collections import deque

from zope.interface import implementer

from jabberapp import dispatch
from jabberapp.interfaces import IClientSession
from jabberapp.logging import logger
from jabberapp.sessions import session_ended

log = logger(__name__)


@implementer(IClientSession)
class Session:
    """One bound c2s resource of C{host}; see the module docstring."""

    # An idle session costs this much and no more: no per-instance dict.
    __slots__ = ("host", "jid", "priority", "available", "presence", "state", "stream",
                 "secure", "ended", "flow", "received", "unhandled", "_closing",
                 "_pipeline", "__weakref__")

    def __init__(self, host, jid):
        self.host = host
        self.jid = jid              # the bound full JID
        self.priority = 0
        self.available = False      # sent available broadcast presence
        self.presence = None        # the last available broadcast presence (for probes)
        self.state = {}             # per-extension session state, keyed by extension name
        self.stream = None          # the attached ClientStream; None while detached
        self.secure = False
        self.ended = False
        self.flow = None            # the OutputFlow while the connection is congested
        self.received = 0           # stanzas its client sent that the intake took
        self.unhandled = None       # [number, writes left] of stanzas waiting for storage
        self._closing = False
        self._pipeline = host.outbound

    # -- out ------------------------------------------------------------------------------

    def send(self, stanza):
        """See IClientSession.send."""
        flow = self.flow
        if flow is not None and not flow.admit(self, stanza):
            return      # the send buffer is full: refused and answered (stream/flow.py)
        pipeline = self._pipeline
        if pipeline.stages:
            if self.ended:
                return      # no stage hears of a session that is over (checked only here:
                            # without stages the detached stream already writes nothing)
            stanza = pipeline.run(self, stanza)
            if stanza is None:
                return
        stream = self.stream
        if stream is not None:
            stream.send(stanza)

    def release(self, stanza, after):
        """See IClientSession.release."""
        pipeline = self._pipeline
        stanza = pipeline.run(self, stanza, pipeline.after(after))
        if stanza is not None:
            self.write(stanza)

    def write(self, element):
        """See IClientSession.write."""
        stream = self.stream
        if stream is None:
            return False
        stream.send(element)
        return True

    # -- in ---------------------------------------------------------------------------------

    @property
    def handled(self):
        """The stanzas of its client handled so far (XEP-0198's h): every one received,
        up to the oldest one whose write to storage is not over yet."""
        waiting = self.unhandled
        return self.received if waiting is None else waiting[0][0] - 1

    def handled_when(self, number, d):
        """Stanza C{number} (counted in C{received}) is handled only once C{d} has fired;
        C{d}'s result passes through. SESSION_HANDLED fires when C{handled} moves on."""
        if number <= self.handled:
            return d        # already counted as handled: h never goes back
        waiting = self.unhandled
        if waiting is None:
            waiting = self.unhandled = deque()
        at = len(waiting)
        while at and waiting[at - 1][0] > number:
            at -= 1         # a continuation of an older stanza (intake.continuing)
        if at and waiting[at - 1][0] == number:
            entry = waiting[at - 1]
            entry[1] += 1
        else:
            entry = [number, 1]
            waiting.insert(at, entry)
        d.addBoth(self._written, entry)
        return d

    def _written(self, result, entry):
        entry[1] -= 1
        waiting = self.unhandled
        if entry[1] or waiting is None or waiting[0] is not entry:
            return result
        while waiting and not waiting[0][1]:
            waiting.popleft()
        if not waiting:
            self.unhandled = None
        if entry[0] <= self.received:      # else the stream has not counted it yet
            self.host.dispatcher.hooks.fire(dispatch.SESSION_HANDLED, self)
        return result

    # -- transports -------------------------------------------------------------------------

    def attach(self, stream):
        """See IClientSession.attach."""
        old = self.stream
        if old is stream:
            return
        if old is not None:
            self.detach()
            if not old.closed:
                old.close()
        self.stream = stream
        self.secure = stream.secure
        stream.session = self

    def detach(self):
        """See IClientSession.detach."""
        old, self.stream = self.stream, None
        if old is not None and old.session is self:
            old.session = None
        return old

    def transport_lost(self, stream, closed):
        """The connection of C{stream} is gone; C{closed} when the stream was closed first
        (by either side: a stream error, the client's </stream:stream>, close())."""
        if stream is not self.stream or self.ended:
            return      # a stream this session no longer uses
        self.stream = None
        self._gone(closed)

    def _gone(self, closed):
        if not closed and not self._closing:
            if self.host.dispatcher.hooks.fire(dispatch.SESSION_DETACHED, self):
                log.info("session {jid} detached", jid=self.jid)
                return
        self.end()

    def drop(self):
        """Take the attached connection for dead (a peer that stopped answering): the
        session detaches at once as if it had dropped -- SESSION_DETACHED may keep it for a
        resumption, else it ends -- and the connection is closed with nothing more written
        to it or read from it (no </stream:stream>: the session is not over)."""
        stream = self.detach()
        if stream is None or self.ended:
            return
        stream.stream_lost()
        stream.lose_connection()
        self._gone(False)

    # -- the end ---------------------------------------------------------------------------

    def close(self, error=None):
        """See ISession.close: end the session, closing its stream with C{error}."""
        if self.ended:
            return
        self._closing = True
        stream = self.stream
        if stream is None or stream.closed:
            self.end()
        else:
            # The session ends when the connection is gone (transport_lost).
            stream.close(error)

    def end(self):
        """Unavailable presence when available, unbind, SESSION_CLOSED; once."""
        if self.ended:
            return
        self.ended = True
        self._closing = True
        stream = self.detach()
        if stream is not None and not stream.closed:
            stream.close()
        session_ended(self.host, self)
        log.info("session {jid} closed", jid=self.jid)

    def __repr__(self):
        attached = "detached" if self.stream is None else "attached"
        return f"<Session {self.jid} {attached}>"
