"""
The ``sqlite`` storage backend: one SQLite file (WAL mode) in the data directory.

Theory of operation: every database call runs in one dedicated thread
(jabberapp.storage.sql.thread) that owns the only connection, so the reactor never waits on
SQLite and there is exactly one writer, whose queue also orders the calls. Each call is one
transaction (``BEGIN IMMEDIATE`` for writes, so a second process such as jabberappctl waits on
busy_timeout instead of failing half-way), committed when the interaction returns or rolled
back when it raises.

This module is the backend itself (open_sqlite(), SQLiteStorage, the plugin object); its
parts are ``migrations`` (the versioned schema, applied at open), ``stores`` (accounts,
key-value, archive) and ``bulk`` (IBulkImport). Those import nothing from each other or from
here, so the package has no import cycle.
"""
from __future__ import annotations

import os
import sqlite3

from twisted.internet import defer
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.interfaces import IBulkImport, IStorage, IStorageBackend
from jabberapp.storage import StorageError, check_name
from jabberapp.storage.sql.thread import DatabaseThread
from jabberapp.storage.sqlite import bulk, migrations, stores
from jabberapp.storage.sqlite.messages import SQLiteMessageArchive
from jabberapp.storage.sqlite.migrations import MIGRATIONS
from jabberapp.storage.sqlite.stores import (
    SQLiteAccountStore,
    SQLiteArchiveStore,
    SQLiteKeyValueStore,
)

__all__ = ["MIGRATIONS", "SQLiteBackend", "SQLiteStorage", "open_sqlite", "sqlite_backend"]

log = Logger()

BUSY_TIMEOUT_MS = 5000


def _connect(path: str) -> sqlite3.Connection:
    # Runs in the database thread, which owns the connection. Autocommit at the driver level:
    # each interaction issues its own BEGIN, so DDL in migrations is transactional too (the
    # sqlite3 module would not BEGIN for it).
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        # FULL, whatever the build's default: an acknowledged write survives power loss
        # (DESIGN.md section 7), not just a crash of the process.
        connection.execute("PRAGMA synchronous = FULL")
    except BaseException:
        connection.close()
        raise
    return connection


def open_sqlite(path: str, reactor) -> defer.Deferred:
    """Deferred: an SQLiteStorage for the database file C{path}, created and migrated."""
    if path != ":memory:":
        # Startup, before anything is served: a blocking mkdir is harmless here.
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            return defer.fail(StorageError(
                f"{path}: cannot create the directory: {exc.strerror or exc}"))
    database = DatabaseThread(lambda: _connect(path), reactor, f"sqlite {path}")
    storage = SQLiteStorage(database, path)

    def migrated(versions):
        previous, current = versions
        if previous != current:
            log.info("migrated {path} from schema version {old} to {new}",
                     path=path, old=previous, new=current)
        return storage

    def failed(reason):
        closing = storage.close()

        def wrap(_):
            if reason.check(StorageError):
                return reason
            if reason.check(sqlite3.Error):
                raise StorageError(f"{path}: cannot open the database: {reason.value}")
            return reason

        return closing.addBoth(wrap)

    d = database.run(migrations.migrate, path)
    d.addCallbacks(migrated, failed)
    return d


@implementer(IStorage, IBulkImport)
class SQLiteStorage:
    """IStorage over one SQLite database; build it with open_sqlite()."""

    def __init__(self, database: DatabaseThread, path: str) -> None:
        self._database = database
        self.path = path
        self.closed = False
        # None: open; a list of Deferreds: closing; a fired Deferred: closed.
        self._closing: list[defer.Deferred] | defer.Deferred | None = None
        self.accounts = SQLiteAccountStore(self._run)
        self._keyvalue: dict[str, SQLiteKeyValueStore] = {}
        self._archive: dict[str, SQLiteArchiveStore] = {}
        self._messages = SQLiteMessageArchive(self._run)

    def _run(self, interaction, *args) -> defer.Deferred:
        if self.closed:
            return defer.fail(StorageError("the storage is closed"))
        return self._database.run(interaction, *args)

    def keyvalue(self, name):
        """See IStorage.keyvalue."""
        check_name("store name", name)
        if name not in self._keyvalue:
            self._keyvalue[name] = SQLiteKeyValueStore(self._run, name)
        return self._keyvalue[name]

    def archive(self, name):
        """See IStorage.archive."""
        check_name("store name", name)
        if name not in self._archive:
            self._archive[name] = SQLiteArchiveStore(self._run, name)
        return self._archive[name]

    def message_archive(self):
        """See IStorage.message_archive."""
        return self._messages

    def delete_user(self, host, username):
        """See IStorage.delete_user: one transaction over every table."""
        return self._run(stores.delete_user, host, username)

    def bulk_import(self, records):
        """See IBulkImport.bulk_import: one BEGIN IMMEDIATE transaction on the database
        thread, rolled back when anything raises."""
        return self._run(bulk.bulk_import, records)

    def close(self):
        """
        See IStorage.close: calls already made complete first; later ones fail with
        StorageError. The connection is closed in its own thread, then the thread stops.
        """
        if self._closing is None:
            self.closed = True
            waiters: list[defer.Deferred] = []

            def stopped(_):
                self._closing = defer.succeed(None)
                for waiter in waiters:
                    waiter.callback(None)

            self._closing = waiters
            d = self._database.stop()    # queued behind every pending interaction
            d.addErrback(lambda f: log.failure("closing {path}", f, path=self.path))
            d.addCallback(stopped)
        if isinstance(self._closing, list):
            waiter = defer.Deferred()
            self._closing.append(waiter)
            return waiter
        return defer.succeed(None)


@implementer(IPlugin, IStorageBackend)
class SQLiteBackend:
    """The ``sqlite`` IStorageBackend: opens [storage] path."""

    name = "sqlite"

    def open(self, config, reactor):
        """See IStorageBackend.open."""
        return open_sqlite(config.path, reactor)


sqlite_backend = SQLiteBackend()
