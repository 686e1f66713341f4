"""The SQL-generic database thread, driven with a fake DB-API connection."""
import threading

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from jabberapp.storage.sql.thread import DatabaseThread


class FakeConnection:
    """A DB-API connection that records what the thread does with it."""

    def __init__(self):
        self.calls = []

    def cursor(self):
        self.calls.append("cursor")
        return FakeCursor(self.calls)

    def commit(self):
        self.calls.append("commit")

    def rollback(self):
        self.calls.append("rollback")

    def close(self):
        self.calls.append(("close", threading.get_ident()))


class FakeCursor:
    def __init__(self, calls):
        self.calls = calls

    def close(self):
        self.calls.append("cursor.close")


class DatabaseThreadTests(TestCase):
    def start(self, connect):
        database = DatabaseThread(connect, reactor, "test database")
        self.addCleanup(lambda: database.stop() if database.is_alive() else None)
        return database

    @defer.inlineCallbacks
    def test_commit_and_rollback(self):
        """An interaction that returns is committed; one that raises is rolled back and fails."""
        connection = FakeConnection()
        database = self.start(lambda: connection)
        self.assertEqual((yield database.run(lambda cursor, x: x + 1, 41)), 42)

        def broken(cursor):
            raise KeyError("no")

        yield self.assertFailure(database.run(broken), KeyError)
        self.assertEqual(connection.calls,
                         ["cursor", "cursor.close", "commit", "cursor", "rollback"])

    @defer.inlineCallbacks
    def test_connection_in_its_thread(self):
        """connect() and close() run in the database thread, which stop() ends."""
        connection = FakeConnection()
        opened_in = []

        def connect():
            opened_in.append(threading.get_ident())
            return connection

        database = self.start(connect)
        ran_in = yield database.run(lambda cursor: threading.get_ident())
        yield database.stop()
        self.assertFalse(database.is_alive())
        self.assertEqual(opened_in, [ran_in])
        self.assertEqual(connection.calls[-1], ("close", ran_in))
        self.assertNotEqual(ran_in, threading.get_ident())

    @defer.inlineCallbacks
    def test_connect_fails(self):
        """When connect() raises, every interaction fails with that error until stop()."""
        def connect():
            raise OSError("no database here")

        database = self.start(connect)
        for _ in range(2):
            failure = yield self.assertFailure(database.run(lambda cursor: 1), OSError)
            self.assertEqual(str(failure), "no database here")
        yield database.stop()
        self.assertFalse(database.is_alive())
