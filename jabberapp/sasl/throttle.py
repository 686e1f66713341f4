"""
Slow down repeated authentication failures, per account and per client address.

The caller asks L{FailureThrottle.delay} before answering an attempt, waits that long (with
the injected clock), then reports the outcome with L{FailureThrottle.failed} or
L{FailureThrottle.succeeded}. Keys are any hashable values, e.g. ('ip', '192.0.2.1') and
('user', 'example.org', 'alice'): keep the kinds apart so an address never collides with
an account name.
"""
from collections import OrderedDict


class FailureThrottle:
    """Exponential back-off after failures: base_delay * 2 ** (failures - 1), capped.

    A key's failures are forgotten C{forget_after} seconds after its latest failure, and
    at most C{max_keys} keys are remembered (the least recently failed go first), so the
    memory used is bounded whatever a client sends.
    """

    def __init__(self, clock, base_delay: float = 1.0, max_delay: float = 30.0,
                 forget_after: float = 300.0, max_keys: int = 100000):
        if base_delay < 0 or max_delay < 0 or forget_after <= 0:
            raise ValueError("delays must not be negative and forget_after must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock = clock
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._forget_after = forget_after
        self._max_keys = max_keys
        # key -> (failure count, time of latest failure), oldest failure first.
        self._entries: OrderedDict = OrderedDict()

    def __len__(self):
        """The number of keys currently remembered."""
        self._expire(self._clock.seconds())
        return len(self._entries)

    def delay(self, *keys) -> float:
        """Seconds to wait before answering the next attempt for any of C{keys} (the max)."""
        self._expire(self._clock.seconds())
        longest = 0.0
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                longest = max(longest, self._delay_for(entry[0]))
        return longest

    def failed(self, *keys) -> None:
        """Record one failed attempt for each of C{keys}."""
        now = self._clock.seconds()
        self._expire(now)
        for key in keys:
            entry = self._entries.pop(key, None)
            count = 1 if entry is None else entry[0] + 1
            while len(self._entries) >= self._max_keys:
                self._entries.popitem(last=False)
            self._entries[key] = (count, now)

    def succeeded(self, *keys) -> None:
        """Forget the failures of each of C{keys}."""
        for key in keys:
            self._entries.pop(key, None)

    def _delay_for(self, count: int) -> float:
        # Past 64 doublings the cap has long been reached; stop before floats overflow.
        if count > 64:
            return float(self._max_delay)
        return float(min(self._max_delay, self._base_delay * 2 ** (count - 1)))

    def _expire(self, now: float) -> None:
        # Entries are ordered by their latest failure, so the stale ones are at the front.
        entries = self._entries
        while entries:
            key, (_, when) = next(iter(entries.items()))
            if now - when < self._forget_after:
                break
            del entries[key]
