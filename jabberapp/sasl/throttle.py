"""
Slow down password guessing, per account and per client address, before the password is checked.

Theory of operation. A mechanism that is about to check credentials for an account asks
L{FailureThrottle.admit} for a turn (the stream passes the account's key and the address's,
see L{address_key}). The returned L{Attempt} is registered at once; its C{wait} is None when
the check may run now (the common case: no failures anywhere, no timer, no Deferred) or a
Deferred that fires when it may. The check reports its outcome on the attempt:
C{succeeded()} forgets the failures of both keys, C{failed()} counts one more for each.

A key with failures lets the next check start only C{delay(failures)} seconds after its latest
checked failure (base_delay doubling per failure up to max_delay). On top of that an account
runs one check at a time: the others wait in its queue, so parallel connections cannot check
more than one guess per account per delay; and an address with failures starts one check per
delay, on whatever account. When the account's turn comes, the waiting attempt
whose address has the fewest failures goes first (the owner from a clean address is not stuck
behind an attacker's queue), the oldest among equals.

Dropping the connection does not escape the count: an attempt is registered when it starts, and
one whose connection is gone is counted as a failure without checking anything, and leaves the
queue -- at once when the stream reports it (C{abandon}), else when its turn comes (its C{alive}
says so). Such abandoned attempts raise the delay but do not restart it (only a checked failure
does), so however many an attacker abandons, the owner's correct password is checked within
max_delay of the latest check. There is no lockout.

Memory is bounded: a key's failures are forgotten C{forget_after} seconds after its latest
failure, at most C{max_keys} keys are remembered (the least recently failed go first) and an
account queues at most C{max_waiting} attempts (more are refused at once, uncounted).

Keys are any hashable values, e.g. ('address', '192.0.2.1') and ('account', 'example.org',
'alice'): keep the kinds apart so an address never collides with an account name.
"""
import ipaddress
from collections import OrderedDict

from twisted.internet import defer


def address_key(address: str):
    """The throttle key of a client address: an IPv4 address itself, an IPv6 address's /64
    (one subscriber usually holds a whole /64), anything else as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ("address", address)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return ("address", str(ip.ipv4_mapped))
        return ("address", str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))))
    return ("address", address)


class ThrottleFull(Exception):
    """Too many attempts already wait for this account; try again later (nothing was counted)."""


class _Entry:
    """What the throttle remembers of a key with failures."""

    __slots__ = ("failures", "last", "checked")

    def __init__(self, checked):
        self.failures = 0
        self.last = checked       # latest failure, checked or abandoned: for forgetting
        self.checked = checked    # latest checked failure: the delay runs from here


class _Queue:
    """One account's running check and waiting attempts (only while there are any)."""

    __slots__ = ("running", "waiting", "timer")

    def __init__(self, running=None):
        self.running = running
        self.waiting = []
        self.timer = None


class Attempt:
    """One credential check's turn, from L{FailureThrottle.admit} to its outcome.

    C{wait} is None when the check may run at once, else a Deferred that fires (with None)
    when it may; cancelling it abandons the attempt (counted as a failure), as C{abandon} does
    without firing it. Report the outcome with exactly one of C{succeeded}, C{failed} or
    C{release} (no outcome: an uncounted refusal); later calls do nothing.
    """

    __slots__ = ("_throttle", "account", "address", "alive", "wait", "_order", "_done")

    def __init__(self, throttle, account, address, alive, order):
        self._throttle = throttle
        self.account = account
        self.address = address
        self.alive = alive
        self.wait = None
        self._order = order
        self._done = False

    def succeeded(self):
        """The credentials were right: forget both keys' failures."""
        if self._finish():
            self._throttle.succeeded(self.account, self.address)
            self._throttle._release(self)

    def failed(self):
        """The credentials were checked and wrong: one more failure for both keys."""
        if self._finish():
            self._throttle._count(True, self.account, self.address)
            self._throttle._release(self)

    def release(self):
        """No credentials were checked after all: give the turn back, count nothing."""
        if self._finish():
            self._throttle._release(self)

    def abandon(self):
        """The attempt's connection is gone: if it still waits for its turn, it is counted as
        a failure, unchecked, and leaves the queue now (its C{wait} then never fires); a check
        already under way is left to report its outcome."""
        if self.wait is not None:
            self._throttle._abandon(self)

    def _finish(self):
        if self._done:
            return False
        self._done = True
        return True


class FailureThrottle:
    """Back-off before credential checks: base_delay * 2 ** (failures - 1), capped; see the
    module docstring."""

    def __init__(self, clock, base_delay: float = 1.0, max_delay: float = 30.0,
                 forget_after: float = 300.0, max_keys: int = 100000, max_waiting: int = 64):
        if base_delay < 0 or max_delay < 0 or forget_after <= 0:
            raise ValueError("delays must not be negative and forget_after must be positive")
        if max_keys < 1 or max_waiting < 1:
            raise ValueError("max_keys and max_waiting must be at least 1")
        self._clock = clock
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._forget_after = forget_after
        self._max_keys = max_keys
        self._max_waiting = max_waiting
        # key -> _Entry, least recent failure first.
        self._entries: OrderedDict = OrderedDict()
        # account key -> _Queue, while a check runs or attempts wait for that account.
        self._queues: dict = {}
        self._order = 0

    def __len__(self):
        """The number of keys with failures currently remembered."""
        self._expire(self._clock.seconds())
        return len(self._entries)

    def queued(self) -> int:
        """The number of attempts running or waiting, over all accounts."""
        return sum((queue.running is not None) + len(queue.waiting)
                   for queue in self._queues.values())

    # -- before a check -------------------------------------------------------------------

    def admit(self, account, address, alive=lambda: True) -> Attempt:
        """Register an attempt to check credentials for C{account} from C{address} (keys).

        C{alive} tells whether the attempt's connection is still there. Raises L{ThrottleFull}
        when C{max_waiting} attempts already wait for the account.
        """
        now = self._clock.seconds()
        self._expire(now)
        self._order += 1
        attempt = Attempt(self, account, address, alive, self._order)
        queue = self._queues.get(account)
        if queue is None:
            if self._ready_at(account) <= now and self._ready_at(address) <= now:
                self._queues[account] = _Queue(attempt)     # the hot path: run at once
                if self._entries:
                    self._reserve(address, now)
                return attempt
            queue = self._queues[account] = _Queue()
        elif len(queue.waiting) >= self._max_waiting:
            self._purge(queue, now)
            if len(queue.waiting) >= self._max_waiting:
                raise ThrottleFull()
        attempt.wait = defer.Deferred(lambda _: self._abandon(attempt))
        queue.waiting.append(attempt)
        self._pump(account)
        return attempt

    def delay(self, *keys) -> float:
        """The back-off of the most failed of C{keys}: base_delay * 2 ** (failures - 1)."""
        self._expire(self._clock.seconds())
        longest = 0.0
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                longest = max(longest, self._delay_for(entry.failures))
        return longest

    # -- outcomes -------------------------------------------------------------------------

    def failed(self, *keys) -> None:
        """Record one checked failure for each of C{keys} (outside any attempt)."""
        self._count(True, *keys)

    def succeeded(self, *keys) -> None:
        """Forget the failures of each of C{keys}."""
        for key in keys:
            self._entries.pop(key, None)

    # -- inside ---------------------------------------------------------------------------

    def _reserve(self, address, now):
        # A failing address's next check, on any account, starts a full delay after this one
        # starts: parallel connections from it cannot check a wave of accounts at once.
        entry = self._entries.get(address)
        if entry is not None:
            entry.checked = now

    def _ready_at(self, key) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return entry.checked + self._delay_for(entry.failures)

    def _count(self, checked, *keys):
        now = self._clock.seconds()
        self._expire(now)
        entries = self._entries
        for key in keys:
            entry = entries.pop(key, None)
            if entry is None:
                entry = _Entry(now)
                while len(entries) >= self._max_keys:
                    entries.popitem(last=False)
            entry.failures += 1
            entry.last = now
            if checked:
                entry.checked = now
            entries[key] = entry

    def _abandon(self, attempt):
        # Its connection is gone (or its wait was cancelled) before its turn: counted, unchecked.
        if not attempt._finish():
            return
        queue = self._queues.get(attempt.account)
        if queue is not None and attempt in queue.waiting:
            queue.waiting.remove(attempt)
        self._count(False, attempt.account, attempt.address)
        if queue is not None:
            self._pump(attempt.account)

    def _release(self, attempt):
        queue = self._queues.get(attempt.account)
        if queue is None:
            return
        if queue.running is attempt:
            if not queue.waiting and queue.timer is None:
                del self._queues[attempt.account]       # the hot path: nobody else waits
                return
            queue.running = None
        elif attempt in queue.waiting:
            queue.waiting.remove(attempt)
        self._pump(attempt.account)

    def _purge(self, queue, now):
        gone = [attempt for attempt in queue.waiting if not attempt.alive()]
        if gone:
            queue.waiting = [attempt for attempt in queue.waiting if attempt not in gone]
            for attempt in gone:
                if attempt._finish():
                    self._count(False, attempt.account, attempt.address)

    def _pump(self, account):
        """Start the account's next check if its turn has come, else wake up when it may."""
        queue = self._queues.get(account)
        if queue is None:
            return
        if queue.timer is not None:
            if queue.timer.active():
                queue.timer.cancel()
            queue.timer = None
        if queue.running is not None:
            return
        now = self._clock.seconds()
        self._expire(now)
        self._purge(queue, now)
        if not queue.waiting:
            del self._queues[account]
            return
        account_ready = self._ready_at(account)
        best = best_rank = soonest = None
        for attempt in queue.waiting:
            ready = max(account_ready, self._ready_at(attempt.address))
            if ready > now:
                soonest = ready if soonest is None else min(soonest, ready)
                continue
            entry = self._entries.get(attempt.address)
            rank = (0 if entry is None else entry.failures, attempt._order)
            if best is None or rank < best_rank:
                best, best_rank = attempt, rank
        if best is None:
            queue.timer = self._clock.callLater(soonest - now, self._pump, account)
            return
        queue.waiting.remove(best)
        queue.running = best
        self._reserve(best.address, now)
        wait, best.wait = best.wait, None
        wait.callback(None)     # the check may run inside this call, and pump again

    def _delay_for(self, count: int) -> float:
        # Past 64 doublings the cap has long been reached; stop before floats overflow.
        if count > 64:
            return float(self._max_delay)
        return float(min(self._max_delay, self._base_delay * 2 ** (count - 1)))

    def _expire(self, now: float) -> None:
        # Entries are ordered by their latest failure, so the stale ones are at the front.
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            if now - entry.last < self._forget_after:
                break
            del entries[key]
