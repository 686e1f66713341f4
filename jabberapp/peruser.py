"""
Per-account serialisation: the operations of one account run one at a time, in the order
they were asked for; different accounts run concurrently.

Extensions that read, change and write back an account's document (roster, blocklist,
private XML, offline messages, PEP nodes) queue each such operation here under the account's
key (a bare JID, a username, or any hashable value)::

    queue = PerUserQueue()
    d = queue.run("alice", change_roster, "alice", item)   # Deferred of change_roster's result

Theory of operation. A key is in C{_queues} exactly while it has work: its deque holds the
running operation first and the waiting ones behind it, so an idle account costs nothing and
a server that has seen a million accounts keeps no trace of them. Every step -- start the
head operation of a key, or finish one and hand its result to the caller -- is a small task
put on one work deque per queue and run by a loop (L{_drain}); whoever makes work while the
loop runs (an operation that completes synchronously, a caller's callback that queues more)
only appends to the deque. So a thousand queued operations that all fail or complete at once
run one after the other in that loop, never one inside the other: nothing here recurses,
unlike a DeferredLock, whose release runs the next waiter inside the previous one's stack
(and a long queue of synchronous failures ends in RecursionError with the lock held for
good).

An operation may return a plain value, a Deferred, a coroutine, or raise. Its result or
failure goes to its own caller's Deferred only; the next operation starts whatever happened.
Cancelling a caller's Deferred before its operation started removes it from the queue;
cancelling it while it runs cancels the Deferred the operation returned.
"""
from collections import deque
from functools import partial
from inspect import iscoroutine

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["PerUserQueue"]


class _Operation:
    """One queued call and the Deferred its caller holds."""

    __slots__ = ("fn", "args", "kwargs", "result", "started", "running")

    def __init__(self, fn, args, kwargs):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.result = None      # the caller's Deferred
        self.started = False
        self.running = None     # the Deferred the operation returned, while it runs


class PerUserQueue:
    """
    Runs operations keyed by account one at a time per key, in order, without recursion.
    See the module docstring.
    """

    def __init__(self):
        self._queues = {}       # key -> deque of _Operation, the running one first
        self._work = deque()    # the loop's tasks: start or finish an operation
        self._draining = False

    def run(self, key, fn, *args, **kwargs):
        """
        Run C{fn(*args, **kwargs)} once every operation queued for C{key} before it has
        finished; a Deferred that fires with its result (a Deferred or coroutine result is
        waited for) or fails with its exception.
        """
        operation = _Operation(fn, args, kwargs)
        operation.result = defer.Deferred(partial(self._cancel, key, operation))
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(operation)
            return operation.result
        self._queues[key] = deque((operation,))
        self._work.append(partial(self._start, key))
        self._drain()
        return operation.result

    def busy(self, key):
        """True while C{key} has an operation running or waiting."""
        return key in self._queues

    def __len__(self):
        """The number of keys with an operation running or waiting."""
        return len(self._queues)

    # -- the loop -------------------------------------------------------------------------

    def _drain(self):
        """Run the queued tasks until none is left, unless this loop already runs them."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._work:
                self._work.popleft()()
        finally:
            self._draining = False

    def _start(self, key):
        """Start the operation at the head of C{key}'s queue (if one is still waiting)."""
        queue = self._queues.get(key)
        if not queue or queue[0].started:
            return
        operation = queue[0]
        operation.started = True
        try:
            result = operation.fn(*operation.args, **operation.kwargs)
            if iscoroutine(result):
                result = defer.Deferred.fromCoroutine(result)
        except BaseException:
            result = Failure()
        if isinstance(result, defer.Deferred):
            operation.running = result
            # Fires at once if the Deferred already has its result: _completed only queues
            # the finish, which this loop runs next.
            result.addBoth(self._completed, key, operation)
        else:
            self._completed(result, key, operation)

    def _completed(self, result, key, operation):
        self._work.append(partial(self._finish, key, operation, result))
        self._drain()
        return None     # the failure, if any, is the caller's now; not an unhandled error

    def _finish(self, key, operation, result):
        """Take the finished operation off its queue, let the next one start, answer."""
        queue = self._queues[key]
        queue.popleft()
        if queue:
            self._work.append(partial(self._start, key))
        else:
            del self._queues[key]
        operation.running = None
        if operation.result.called:
            return          # cancelled by its caller meanwhile
        if isinstance(result, Failure):
            operation.result.errback(result)
        else:
            operation.result.callback(result)

    def _cancel(self, key, operation, _):
        """The caller cancelled: drop a waiting operation, or cancel a running one."""
        if operation.running is not None:
            operation.running.cancel()
            return
        if operation.started:
            return          # finished; its answer is on the way
        queue = self._queues.get(key)
        if queue is None:
            return
        try:
            queue.remove(operation)
        except ValueError:
            return
        if not queue:
            del self._queues[key]
        # Deferred.cancel errbacks the caller with CancelledError after this returns.
