"""
Retention: messages older than ``[extension:mam] expire_after`` are deleted on a timer.

The sweep runs at start and then every C{interval(expire_after)} seconds (a tenth of the
retention, between a minute and an hour) on the host's clock; each sweep is one
IMessageArchive.expire() call for the host. XEP-0313 §3.2 allows a server to keep messages
only until they reach an age; as the oldest go first, the archive has no holes.
"""
from __future__ import annotations

import re

from jabberapp.storage import StorageError

__all__ = ["Retention", "duration", "interval"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST = 100 * 365 * 86400


def duration(raw: str) -> float:
    """An Option type: seconds, or a number with a unit (30d, 12h, 15m, 2w); 0: never."""
    match = _DURATION.fullmatch(raw.strip().lower())
    if match is None:
        raise ValueError("expected seconds or a number with s, m, h, d or w (0: never)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > _LONGEST:
        raise ValueError("expected at most 100 years")
    return seconds


duration.description = "seconds, or with a unit: 30d, 12h, 15m, 2w; 0 for never"


def interval(expire_after: float) -> float:
    """Seconds between sweeps for a retention of C{expire_after} seconds."""
    return min(max(expire_after / 10, 60.0), 3600.0)


class Retention:
    """The expiry timer of one host."""

    def __init__(self, host, store, expire_after: float) -> None:
        self.host = host
        self.store = store
        self.expire_after = expire_after
        self.sweeps = 0

    def start(self) -> None:
        """Sweep now and then every interval (nothing when expire_after is 0)."""
        if self.expire_after > 0:
            self.sweep()

    def sweep(self):
        """Delete the expired messages, then schedule the next sweep."""
        cutoff = self.host.clock.seconds() - self.expire_after
        self.sweeps += 1
        d = self.store.expire(self.host.domain, cutoff)
        d.addCallback(self._swept)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure):
        if failure.check(StorageError) and getattr(self.host.storage, "closed", False):
            return None     # stopping: no next sweep
        self.host.log.failure("expiring archived messages failed", failure)
        self.host.call_later(interval(self.expire_after), self.sweep)
        return None

    def _swept(self, deleted):
        if deleted:
            self.host.log.info("{count} archived messages expired", count=deleted)
        self.host.call_later(interval(self.expire_after), self.sweep)
