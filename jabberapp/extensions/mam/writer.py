"""
Archive appends coalesced into batches: one storage transaction for many messages.

Theory of operation: C{add()} only queues the message. The first message queued while
nothing is being written schedules a flush for the next reactor turn (C{clock.callLater(0)}),
so every message that arrives in the same turn -- a burst read from many connections --
goes in one batch. While a batch is being written, new messages wait; when it completes the
next batch starts with everything that arrived meanwhile (group commit). So at low load a
message is written at once in its own transaction, and under load the batches grow with
the database's latency instead of the number of transactions growing with the load: the
commit, an fsync, is paid per batch. At most C{max_batch} messages go in one batch; past
C{max_pending} waiting messages (a database that cannot keep up) new ones are not archived
and an error is logged, so memory stays bounded.

Nothing waits for these writes: the archive is not what XEP-0198 acknowledges (offline
storage is), and a failed batch is logged and dropped. C{flush()} on unload queues what is
pending before the storage closes, so a graceful shutdown loses nothing.
"""
from __future__ import annotations

__all__ = ["BatchWriter"]

MAX_BATCH = 5000
#: Messages waiting past this (the database cannot keep up) are not archived, and that is
#: logged: memory must not grow without bound.
MAX_PENDING = 200_000


class BatchWriter:
    """Batches appends to an IMessageArchive; see the module docstring."""

    def __init__(self, store, clock, log, keep=None, max_batch=MAX_BATCH,
                 max_pending=MAX_PENDING) -> None:
        self.store = store
        self.clock = clock
        self.log = log
        self.keep = keep
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.dropped = 0            # messages not archived because too many waited
        self.pending: list = []
        self.writing = None         # the Deferred of the batch being written
        self._call = None
        self.batches = 0            # batches written (for tests and metrics)

    def add(self, message) -> None:
        """Queue C{message} (an ArchivedMessage) for the next batch."""
        if len(self.pending) >= self.max_pending:
            if self.dropped % 10_000 == 0:
                self.log.error("archive writes are {count} behind: messages are not "
                               "being archived", count=len(self.pending))
            self.dropped += 1
            return
        self.pending.append(message)
        if self._call is None and self.writing is None:
            self._call = self.clock.callLater(0, self._flush)

    def _flush(self):
        self._call = None
        if self.writing is not None or not self.pending:
            return
        batch = self.pending[:self.max_batch]
        del self.pending[:self.max_batch]
        self.batches += 1
        d = self.store.append(batch, keep=self.keep)
        self.writing = d
        d.addErrback(self._failed, len(batch))
        d.addBoth(self._written, d)

    def _failed(self, failure, size):
        self.log.failure("archiving {count} messages failed", failure, count=size)

    def _written(self, _, d):
        if self.writing is d:
            self.writing = None
        if self.pending and self._call is None:
            self._flush()

    def flush(self) -> None:
        """Queue every pending message now (the extension is going)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        while self.pending:
            batch = self.pending[:self.max_batch]
            del self.pending[:self.max_batch]
            self.store.append(batch, keep=self.keep).addErrback(
                self._failed, len(batch))
