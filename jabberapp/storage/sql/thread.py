"""
The database thread: one dedicated thread owns the only connection and runs interactions from a
queue, so the reactor never waits on the database and calls are done in the order made.

Each interaction is one transaction. The connection must not open transactions by itself
(sqlite3 with ``isolation_level=None``, psycopg with autocommit): an interaction issues its own
BEGIN, so that DDL in migrations is transactional too, and the thread commits when it returns
or rolls back when it raises. (Twisted's adbapi did the same through its thread-pool machinery
at about twice the CPU per call; a login makes four.)
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["DatabaseThread"]


class DatabaseThread:
    """
    One thread and its one DB-API connection; run() queues an interaction for it.

    C{connect()} is called in the thread and returns the connection, set up for use; when it
    raises, every interaction fails with that failure until stop().
    """

    def __init__(self, connect: Callable, reactor, name: str) -> None:
        self._connect = connect
        self._reactor = reactor
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def run(self, interaction, *args) -> defer.Deferred:
        """Deferred: C{interaction(cursor, *args)} run in the thread as one transaction."""
        d = defer.Deferred()
        self._jobs.put((interaction, args, d))
        return d

    def stop(self) -> defer.Deferred:
        """Deferred fired once every queued interaction ran and the connection closed."""
        d = defer.Deferred()
        self._jobs.put((None, (), d))
        return d

    def is_alive(self) -> bool:
        """Whether the thread is still running."""
        return self._thread.is_alive()

    def _stopped(self, d) -> None:
        # The thread has nothing left to do but return: wait for that, so that the thread
        # is gone when the Deferred fires.
        self._thread.join()
        d.callback(None)

    def _work(self) -> None:
        call = self._reactor.callFromThread
        connection = None
        try:
            # Opened, used and closed in this thread only.
            connection = self._connect()
        except Exception:
            opened = Failure()
        else:
            opened = None
        while True:
            interaction, args, d = self._jobs.get()
            if interaction is None:
                if connection is not None:
                    connection.close()
                call(self._stopped, d)
                return
            if opened is not None:
                call(d.errback, opened)
                continue
            cursor = connection.cursor()
            try:
                result = interaction(cursor, *args)
                cursor.close()
                connection.commit()     # commits only what a BEGIN opened
            except BaseException:
                failure = Failure()
                try:
                    connection.rollback()
                except Exception:
                    # The interaction's own failure is the one to report; a connection
                    # that cannot even roll back fails the next interaction by itself.
                    pass
                call(d.errback, failure)
            else:
                call(d.callback, result)
