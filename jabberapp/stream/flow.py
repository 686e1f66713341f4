"""
Flow control for connections: read rate limits (a token bucket per connection) and output
backpressure (a bound on what one c2s session may have queued for sending).

Theory of operation
-------------------
Both work by not reading: a connection that is not read from sends nothing more into the
server, its peer's TCP window closes, and the kernel holds the rest. Nothing is dropped.

Reading. Each connection's bytes reach its stream through an Intake (``Intake.read`` is the
transport's dataReceived). It spends the bytes from the connection's token bucket (``rate``
bytes per second, ``burst`` seconds' worth saved up; Prosody's mod_limits has the same two
numbers); when the balance goes below zero the connection is paused for exactly as long as it
takes to come back to zero -- one timer per paused connection, none per stanza. While the bytes
are handled, ``NOW.intake`` names the Intake: whoever a stanza is delivered to can tell which
connection it came from without anything being passed along the delivery path.

Writing. A c2s connection's OutputFlow is registered with Twisted as a streaming producer,
so Twisted tells it when the connection's write buffer passes Twisted's high-water mark
(pauseProducing, 64 KiB) and when it is empty again (resumeProducing). It is made the first
time bytes wait in that buffer (jabberapp.transports.tcp: the socket did not take a write at
once), so a connection whose peer keeps up -- nearly all of them -- never has one. Only between the two
does its session look at anything (``Session.flow``); otherwise sending costs one attribute
read. While congested, each stanza for the session is admitted while fewer than
``max_send_buffer`` bytes are queued; past that it is refused (``refuse``: offline storage or
an error to its sender, RFC 6120 §8.3.3.18 resource-constraint, never dropped without a word
where the RFCs allow an answer) and the connection being read at that moment -- the sender --
is paused until the slow session drains or goes. Server-to-server links are never paused
this way: one carries many users' stanzas, and a local user who stops reading must not stall
federation with a whole domain; what they bring for a full session is refused all the same. A session whose buffer is still full
``send_buffer_timeout`` seconds after the first refusal is closed with policy-violation, its
queued bytes thrown away first (the client was not reading them) and its connection aborted,
so their memory is freed at once and not when the peer finally times out.
"""
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from jabberapp import stanza as st
from jabberapp.errors import StreamError
from jabberapp.logging import logger

log = logger(__name__)

__all__ = ["BLOCKED", "Intake", "NOW", "OutputFlow", "RATE", "TokenBucket", "file_descriptor",
           "queued_bytes", "refuse"]

# Why a connection is not being read (bits: both may hold at once).
RATE = 1        # its token bucket is empty
BLOCKED = 2     # it sent to a session whose send buffer is full


class _Reading:
    """Which connection's bytes are being handled right now (None: none)."""

    __slots__ = ("intake",)

    def __init__(self):
        self.intake = None


NOW = _Reading()


class TokenBucket:
    """
    C{rate} bytes per second, at most C{burst} seconds' worth saved up; full at the start.
    """

    __slots__ = ("rate", "size", "tokens", "stamp")

    def __init__(self, rate, burst, now):
        self.rate = float(rate)
        self.size = self.rate * burst
        self.tokens = self.size
        self.stamp = now

    def take(self, amount, now):
        """Spend C{amount} bytes at time C{now}: 0.0 while the balance stays at or above
        zero, else the seconds until it is back at zero."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.size:
            tokens = self.size
        tokens -= amount
        self.tokens = tokens
        self.stamp = now
        if tokens >= 0:
            return 0.0
        return -tokens / self.rate


class Intake:
    """
    The read side of one connection: C{handle(data)} (the stream's data_received) behind a
    token bucket (C{rate} bytes/s, C{burst} seconds; rate 0: no limit); pauses and resumes
    the Twisted C{transport} (an IProducer: pauseProducing stops reading) for each reason
    separately. C{name} is shown in log lines. A C{blockable} connection is paused while
    it sends to a session whose send buffer is full; others only have such stanzas refused.
    """

    __slots__ = ("transport", "handle", "clock", "bucket", "paused", "name", "_timer",
                 "blockable")

    def __init__(self, transport, handle, clock, rate=0, burst=0.0, name=None,
                 blockable=True):
        self.transport = transport
        self.handle = handle
        self.clock = clock
        self.bucket = TokenBucket(rate, burst, clock.seconds()) if rate else None
        self.paused = 0             # RATE | BLOCKED bits
        self.name = name
        self._timer = None          # the end of a RATE pause
        # Whether NOW.intake names it while it is read (not a reference to itself: a cycle
        # would keep the connection's objects until the cyclic collector ran).
        self.blockable = blockable

    def read(self, data):
        """Bytes read from the connection (this is its dataReceived)."""
        bucket = self.bucket
        if bucket is not None:
            delay = bucket.take(len(data), self.clock.seconds())
            if delay and self._timer is None:
                log.debug("read rate of {name} exceeded: not reading for {delay:.2f} s",
                          name=self.name, delay=delay)
                self.pause(RATE)
                self._timer = self.clock.callLater(delay, self._refilled)
        now = NOW
        previous, now.intake = now.intake, self if self.blockable else None
        try:
            self.handle(data)
        finally:
            now.intake = previous

    def _refilled(self):
        self._timer = None
        self.resume(RATE)

    def pause(self, reason):
        """Stop reading for C{reason} (RATE or BLOCKED)."""
        if not self.paused:
            self.transport.pauseProducing()
        self.paused |= reason

    def resume(self, reason):
        """C{reason} no longer holds; read again when no other reason does."""
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused:
                self.transport.resumeProducing()

    def stop(self):
        """The connection is gone: no timer stays behind."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def __repr__(self):
        return f"<Intake {self.name!r} paused={self.paused}>"


def queued_bytes(fd):
    """Bytes queued in Twisted FileDescriptor C{fd}, not yet taken by the kernel."""
    return len(fd.dataBuffer) - fd.offset + fd._tempDataLen


def file_descriptor(transport):
    """The FileDescriptor under C{transport} (TLS wrappers have it as their .transport);
    anything with its buffer attributes will do (test doubles); None if there is none."""
    while not hasattr(transport, "dataBuffer"):
        inner = getattr(transport, "transport", None)
        if inner is None:
            return None     # a test double: nothing queued we could measure
        transport = inner
    return transport


@implementer(IPushProducer)
class OutputFlow:
    """
    The write side of one c2s connection: see the module docstring. C{transport} is the
    Twisted transport under C{stream} (a ClientStream), C{intake} its Intake.
    """

    __slots__ = ("transport", "fd", "stream", "intake", "clock", "limit", "timeout",
                 "congested", "waiters", "refused", "_timer", "_registered")

    def __init__(self, transport, stream, intake, clock, limit, timeout):
        self.transport = transport
        self.fd = file_descriptor(transport)
        self.stream = stream
        self.intake = intake
        self.clock = clock
        self.limit = limit          # max_send_buffer
        self.timeout = timeout      # send_buffer_timeout
        self.congested = False      # Twisted paused us: past its high-water mark
        self.waiters = []           # Intakes paused (BLOCKED) until this one drains
        self.refused = 0            # stanzas refused in this congestion
        self._timer = None          # the close of a session that stays full
        transport.registerProducer(self, True)
        self._registered = True

    # -- IPushProducer: what Twisted tells us about the write buffer ------------------------

    def pauseProducing(self):
        """The write buffer passed Twisted's high-water mark: the session checks each
        stanza from now on."""
        self.congested = True
        session = self.stream.session
        if session is not None:
            session.flow = self

    def resumeProducing(self):
        """The write buffer is empty again."""
        self.congested = False
        if self.refused:
            log.info("send buffer of {jid} drained; {count} stanzas were refused",
                     jid=self.stream.jid, count=self.refused)
            self.refused = 0
        self._unhook()

    def stopProducing(self):
        """The connection is gone."""
        self._registered = False
        self.release()

    # -- the session's question -----------------------------------------------------------

    def queued(self):
        """Bytes waiting in the connection's write buffer."""
        fd = self.fd
        return 0 if fd is None else queued_bytes(fd)

    def admit(self, session, stanza):
        """Whether C{stanza} may be queued for C{session} now; a refused one is answered
        (refuse) and the connection being read is paused until this one drains."""
        if session.stream is not self.stream:
            session.flow = None         # the session moved to another connection
            return True
        queued = self.queued()
        if queued < self.limit:
            return True
        if not self.refused:
            log.info("send buffer of {jid} full ({queued} bytes queued, limit {limit}): "
                     "refusing stanzas to it and pausing their senders",
                     jid=session.jid, queued=queued, limit=self.limit)
        self.refused += 1
        reader = NOW.intake
        if reader is not None and reader not in self.waiters:
            log.debug("not reading from {name} until {jid} drains", name=reader.name,
                      jid=session.jid)
            reader.pause(BLOCKED)
            self.waiters.append(reader)
        if self._timer is None:
            self._timer = self.clock.callLater(self.timeout, self._stalled)
        refuse(session, stanza)
        return False

    def _stalled(self):
        """The buffer stayed full for C{timeout} seconds: close the session."""
        self._timer = None
        log.info("closing {jid}: its send buffer stayed full for {timeout} s "
                 "({queued} bytes queued)", jid=self.stream.jid, timeout=self.timeout,
                 queued=self.queued())
        self.abort()

    def abort(self):
        """Throw the queued bytes away, close the stream with policy-violation and abort
        the connection (a peer that does not read would hold a graceful close open)."""
        fd = self.fd
        if fd is not None:
            # Freed now, not when the connection object is finally collected.
            fd.dataBuffer = b""
            fd.offset = 0
            fd._tempDataBuffer = []
            fd._tempDataLen = 0
        self.release()
        self.stream.close(StreamError("policy-violation", "Not reading what was sent"))
        self.transport.abortConnection()

    def _unhook(self):
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        session = self.stream.session
        if session is not None and session.flow is self:
            session.flow = None
        waiters, self.waiters = self.waiters, []
        for intake in waiters:
            intake.resume(BLOCKED)

    def release(self):
        """The connection closes: senders waiting on it read again, no timer stays, and the
        producer is unregistered (Twisted would hold a close back for it)."""
        self.congested = False
        self._unhook()
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()


def refuse(session, stanza):
    """
    Answer C{stanza}, which C{session}'s full send buffer cannot take: a chat or normal
    message from someone else, when the user has no other available resource, takes the
    undeliverable path (offline storage, or service-unavailable: RFC 6121 §8.5.2.1); other
    messages and IQ requests get resource-constraint (RFC 6120 §8.3.3.18). Errors and IQ
    results cannot be answered (RFC 6120 §8.3.1); presence is not answered (RFC 6121
    §8.5.3.2.2: it is not for an unavailable resource either; subscription requests wait
    in the roster).
    """
    tag = stanza.tag
    dispatcher = session.host.dispatcher
    if tag == st.MESSAGE:
        bare = session.jid.bare()
        if (stanza.get("type", "normal") in ("chat", "normal")
                and not _from_account(stanza.get("from"), str(bare))
                and not any(other is not session
                            for other in session.host.sessions.available(bare))):
            dispatcher.undeliverable(stanza, bare)
            return
        dispatcher.bounce(stanza, "resource-constraint")
    elif tag == st.IQ:
        dispatcher.bounce(stanza, "resource-constraint")


def _from_account(sender, bare):
    """Whether C{sender} is the account C{bare} itself (carbons, archive results): those
    are copies of what the account already has, not messages to store for it."""
    return sender is not None and (sender == bare or sender.startswith(bare + "/"))
