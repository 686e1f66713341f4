"""
Archive queries of one session: one at a time, at most C{rate} per second after a burst.

A session asking faster than the rate is slowed, not refused: its next query waits for its
turn (a token bucket of C{burst} tokens refilled at C{rate} per second, one timer while a
query waits). Queries run one at a time, so the results of two queries of one session are
never interleaved. Only a session with C{max_waiting} queries already waiting is told
<resource-constraint/> (type wait). Each session has its own gate (in its C{state}), so
other sessions and other users are not slowed.
"""
from __future__ import annotations

from collections import deque

from twisted.internet import defer
from twisted.python.failure import Failure

from jabberapp.errors import StanzaError

__all__ = ["QueryGate"]


class QueryGate:
    """The queries of one session; see the module docstring."""

    def __init__(self, clock, rate: float, burst: int, max_waiting: int = 10) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.max_waiting = max_waiting
        self.tokens = float(burst)
        self.updated = clock.seconds()
        self.waiting: deque = deque()
        self.busy = False
        self.timer = None

    def run(self, fn, *args) -> defer.Deferred:
        """Deferred: C{fn(*args)}'s result, once this session's turn comes."""
        if len(self.waiting) >= self.max_waiting:
            return defer.fail(StanzaError("resource-constraint",
                                          "Too many archive queries; wait for the answers"))
        d = defer.Deferred()
        self.waiting.append((fn, args, d))
        self._pump()
        return d

    def _refill(self):
        now = self.clock.seconds()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def _pump(self):
        if self.busy or not self.waiting:
            return
        self._refill()
        if self.tokens < 1:
            if self.timer is None:
                self.timer = self.clock.callLater((1 - self.tokens) / self.rate, self._woken)
            return
        self.tokens -= 1
        fn, args, d = self.waiting.popleft()
        self.busy = True
        defer.maybeDeferred(fn, *args).addBoth(self._finished, d)

    def _woken(self):
        self.timer = None
        self._pump()

    def _finished(self, result, d):
        # The answer first (the IQ result after its messages), then the next query.
        self.busy = False
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
        self._pump()

    def cancel(self):
        """Stop the timer (the extension is going)."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
