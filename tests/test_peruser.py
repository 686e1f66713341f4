"""Tests for jabberapp.peruser: one account's operations in order, accounts apart, no
recursion however long a queue of failures gets."""
import sys

from twisted.internet import defer
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.peruser import PerUserQueue

FLOOD = 10_000


class Refused(Exception):
    """What the flooded operations fail with."""


class OrderTests(SynchronousTestCase):
    def setUp(self):
        self.queue = PerUserQueue()
        self.log = []

    def test_one_at_a_time_in_order(self):
        """Operations of one key run one after the other, in the order they were queued."""
        first = defer.Deferred()
        d1 = self.queue.run("alice", lambda: self.log.append(1) or first)
        d2 = self.queue.run("alice", self.log.append, 2)
        d3 = self.queue.run("alice", self.log.append, 3)
        self.assertEqual(self.log, [1])
        first.callback("one")
        self.assertEqual(self.log, [1, 2, 3])
        self.assertEqual(self.successResultOf(d1), "one")
        self.successResultOf(d2)
        self.successResultOf(d3)

    def test_idle_key_starts_at_once(self):
        """An operation for an idle key runs before run() returns."""
        d = self.queue.run("alice", lambda: "now")
        self.assertEqual(self.successResultOf(d), "now")

    def test_keys_run_concurrently(self):
        """A slow operation of one key does not hold up another key."""
        slow = defer.Deferred()
        self.queue.run("alice", lambda: slow)
        d = self.queue.run("bob", lambda: "bob's")
        self.assertEqual(self.successResultOf(d), "bob's")
        self.assertTrue(self.queue.busy("alice"))
        self.assertFalse(self.queue.busy("bob"))

    def test_idle_keys_are_forgotten(self):
        """A key with nothing running or waiting takes no memory, whatever its history."""
        for n in range(100):
            self.queue.run(f"user{n}", lambda: None)
            self.queue.run(f"user{n}", lambda: defer.fail(Refused())).addErrback(
                lambda failure: failure.trap(Refused))
        self.assertEqual((len(self.queue), self.queue._queues), (0, {}))
        slow = defer.Deferred()
        self.queue.run("alice", lambda: slow)
        self.assertEqual(len(self.queue), 1)
        slow.callback(None)
        self.assertEqual(len(self.queue), 0)

    def test_failure_goes_to_its_caller_only(self):
        """A failing operation fails its own Deferred; the next one runs and succeeds."""
        slow = defer.Deferred()
        d1 = self.queue.run("alice", lambda: slow)
        d2 = self.queue.run("alice", lambda: 1 / 0)
        d3 = self.queue.run("alice", lambda: "fine")
        slow.errback(Refused())
        self.failureResultOf(d1, Refused)
        self.failureResultOf(d2, ZeroDivisionError)
        self.assertEqual(self.successResultOf(d3), "fine")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_returned_failure_and_coroutine(self):
        """A returned Failure fails the caller; a coroutine's result is awaited."""
        async def coroutine(value):
            return await defer.succeed(value)

        d1 = self.queue.run("alice", lambda: Failure(Refused()))
        d2 = self.queue.run("alice", coroutine, "awaited")
        self.failureResultOf(d1, Refused)
        self.assertEqual(self.successResultOf(d2), "awaited")

    def test_keyword_arguments(self):
        """Positional and keyword arguments reach the operation."""
        d = self.queue.run("alice", lambda a, b=None: (a, b), 1, b=2)
        self.assertEqual(self.successResultOf(d), (1, 2))

    def test_queueing_from_a_callback(self):
        """A caller that queues more work for the same key from its callback runs after
        what was already queued."""
        slow = defer.Deferred()
        d1 = self.queue.run("alice", lambda: slow)
        d1.addCallback(lambda _: self.queue.run("alice", self.log.append, "from callback"))
        self.queue.run("alice", self.log.append, "queued")
        slow.callback(None)
        self.assertEqual(self.log, ["queued", "from callback"])
        self.assertEqual(len(self.queue), 0)

    def test_cancel_waiting(self):
        """Cancelling a waiting operation removes it: it never runs, the rest do."""
        slow = defer.Deferred()
        self.queue.run("alice", lambda: slow)
        d2 = self.queue.run("alice", self.log.append, "cancelled")
        d3 = self.queue.run("alice", self.log.append, "kept")
        d2.cancel()
        self.failureResultOf(d2, defer.CancelledError)
        slow.callback(None)
        self.assertEqual(self.log, ["kept"])
        self.successResultOf(d3)
        self.assertEqual(len(self.queue), 0)

    def test_cancel_running(self):
        """Cancelling a running operation cancels what it returned; the next one runs."""
        slow = defer.Deferred()
        d1 = self.queue.run("alice", lambda: slow)
        d2 = self.queue.run("alice", lambda: "next")
        d1.cancel()
        self.failureResultOf(d1, defer.CancelledError)
        self.assertEqual(self.successResultOf(d2), "next")
        self.assertEqual(len(self.queue), 0)


class FloodTests(SynchronousTestCase):
    """Issue 10: 10 000 queued failing operations on one account drain without recursion."""

    def setUp(self):
        self.queue = PerUserQueue()
        # Well below the flood's size: any recursion per operation would blow it.
        self.addCleanup(sys.setrecursionlimit, sys.getrecursionlimit())
        sys.setrecursionlimit(500)

    def flood(self, operation):
        """Queue FLOOD calls of C{operation} behind a slow one; release; the results."""
        slow = defer.Deferred()
        first = self.queue.run("alice", lambda: slow)
        results = [self.queue.run("alice", operation, n) for n in range(FLOOD)]
        self.assertEqual(len(self.queue), 1)
        slow.errback(Refused())
        self.failureResultOf(first, Refused)
        return results

    def assertAnswersNext(self):
        """The account is free again and its next operation is answered."""
        self.assertEqual(len(self.queue), 0)
        self.assertEqual(self.successResultOf(self.queue.run("alice", lambda: "answered")),
                         "answered")

    def test_synchronous_failures(self):
        """Operations that raise at once all fail, in order, and free the account."""
        order = []

        def fail(n):
            order.append(n)
            raise Refused(n)

        for d in self.flood(fail):
            self.failureResultOf(d, Refused)
        self.assertEqual(order, list(range(FLOOD)))
        self.assertAnswersNext()

    def test_already_failed_deferreds(self):
        """Operations returning already-failed Deferreds (a cache hit that refuses) drain."""
        for d in self.flood(lambda n: defer.fail(Refused(n))):
            self.failureResultOf(d, Refused)
        self.assertAnswersNext()

    def test_failing_coroutines(self):
        """Coroutines that fail without waiting (the shape of the extensions' handlers)
        drain too."""
        async def fail(n):
            await defer.succeed(None)
            raise Refused(n)

        for d in self.flood(fail):
            self.failureResultOf(d, Refused)
        self.assertAnswersNext()

    def test_asynchronous_failures(self):
        """Operations that fail later (on a clock tick each) all fail and free the account."""
        clock = Clock()

        def fail(n):
            return deferLater(clock, 0, lambda: (_ for _ in ()).throw(Refused(n)))

        results = self.flood(fail)
        for _ in range(FLOOD):
            clock.advance(0)
        for d in results:
            self.failureResultOf(d, Refused)
        self.assertAnswersNext()

    def test_mixed_failures_and_successes(self):
        """Synchronous and asynchronous failures and successes, interleaved, each reach
        their own caller."""
        pending = []

        def op(n):
            kind = n % 4
            if kind == 0:
                raise Refused(n)
            if kind == 1:
                return defer.fail(Refused(n))
            if kind == 2:
                return n
            d = defer.Deferred()
            pending.append((d, n))
            return d

        results = self.flood(op)
        while pending:
            d, n = pending.pop()
            d.errback(Refused(n))
        for n, d in enumerate(results):
            if n % 4 == 2:
                self.assertEqual(self.successResultOf(d), n)
            else:
                self.failureResultOf(d, Refused)
        self.assertAnswersNext()
