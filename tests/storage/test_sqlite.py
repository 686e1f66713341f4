"""The storage contract run against the sqlite backend, plus its schema and thread rules."""
import os
import shutil
import sqlite3
import tempfile
import threading

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from jabberapp.config import StorageConfig
from jabberapp.interfaces import IStorageBackend
from jabberapp.storage import SchemaTooNew, StorageError, open_storage
from jabberapp.storage import sqlite as sqlite_module
from jabberapp.storage.sqlite import SQLiteStorage, open_sqlite, sqlite_backend
from jabberapp.storage.sqlite import migrations as migrations_module
from jabberapp.storage.sqlite import stores as stores_module
from jabberapp.storage.sqlite.migrations import MIGRATIONS

from .contract import (
    HOST,
    AccountStoreContract,
    ArchiveStoreContract,
    BulkImportContract,
    KeyValueStoreContract,
    StorageContract,
    creds,
)


class SQLiteMixin:
    def temp_path(self, *parts):
        directory = tempfile.mkdtemp(prefix="jabberapp-sqlite-")
        self.addCleanup(shutil.rmtree, directory)
        return os.path.join(directory, *parts)

    def make_storage(self):
        return open_sqlite(self.temp_path("jabberapp.sqlite"), reactor)


class SQLiteStorageTests(SQLiteMixin, StorageContract, TestCase):
    """IStorage contract for the sqlite backend."""


class SQLiteAccountStoreTests(SQLiteMixin, AccountStoreContract, TestCase):
    """IAccountStore contract for the sqlite backend."""


class SQLiteKeyValueStoreTests(SQLiteMixin, KeyValueStoreContract, TestCase):
    """IKeyValueStore contract for the sqlite backend."""


class SQLiteArchiveStoreTests(SQLiteMixin, ArchiveStoreContract, TestCase):
    """IArchiveStore contract for the sqlite backend."""


class SQLiteBulkImportTests(SQLiteMixin, BulkImportContract, TestCase):
    """IBulkImport contract for the sqlite backend."""


def schema_version(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version FROM schema_version").fetchall()


def tables(path):
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}


class SQLiteBackendTests(SQLiteMixin, TestCase):
    def open(self, path):
        d = open_sqlite(path, reactor)
        d.addCallback(lambda storage: (self.addCleanup(storage.close), storage)[1])
        return d

    def test_backend_interface(self):
        """The sqlite backend plugin provides IStorageBackend under the name 'sqlite'."""
        verifyObject(IStorageBackend, sqlite_backend)
        self.assertEqual(sqlite_backend.name, "sqlite")

    @defer.inlineCallbacks
    def test_open_storage(self):
        """open_storage() opens the sqlite backend at the configured path, creating dirs."""
        path = self.temp_path("nested", "dir", "db.sqlite")
        storage = yield open_storage(StorageConfig("sqlite", path), reactor)
        self.addCleanup(storage.close)
        self.assertIsInstance(storage, SQLiteStorage)
        self.assertTrue(os.path.exists(path))

    @defer.inlineCallbacks
    def test_persistence(self):
        """Data written before close() is there after reopening the file."""
        path = self.temp_path("db.sqlite")
        storage = yield open_sqlite(path, reactor)
        yield storage.accounts.create(HOST, "alice", {"sha256": creds(b"1")})
        yield storage.keyvalue("roster").set(HOST, "alice", "r", {"a": 1})
        item_id = yield storage.archive("mam").append(HOST, "alice", "<m/>", 5)
        yield storage.close()
        storage = yield self.open(path)
        self.assertEqual((yield storage.accounts.get_credentials(HOST, "alice", "sha256")),
                         creds(b"1"))
        self.assertEqual((yield storage.keyvalue("roster").get(HOST, "alice", "r")), {"a": 1})
        self.assertEqual((yield storage.archive("mam").query(HOST, "alice")),
                         [(item_id, 5.0, None, "<m/>")])
        self.assertGreater((yield storage.archive("mam").append(HOST, "alice", "2", 6)),
                           item_id)

    @defer.inlineCallbacks
    def test_schema_version(self):
        """A new database is migrated to the latest version, recorded in schema_version."""
        path = self.temp_path("db.sqlite")
        yield self.open(path)
        self.assertEqual(schema_version(path), [(len(MIGRATIONS),)])
        self.assertTrue({"accounts", "credentials", "keyvalue", "archive"} <= tables(path))

    @defer.inlineCallbacks
    def test_no_password_column(self):
        """Credentials are stored as SCRAM material per hash; no column holds a password."""
        path = self.temp_path("db.sqlite")
        yield self.open(path)
        with sqlite3.connect(path) as db:
            columns = [row[1] for row in db.execute("PRAGMA table_info(credentials)")]
            every = [row[1] for table in tables(path)
                     for row in db.execute(f"PRAGMA table_info({table})")]
        self.assertEqual(columns, ["host", "username", "hash_name", "salt", "iterations",
                                   "stored_key", "server_key"])
        self.assertFalse([c for c in every if "password" in c.lower()])

    @defer.inlineCallbacks
    def test_too_new(self):
        """A database from a newer jabberapp is refused with a clear error."""
        path = self.temp_path("db.sqlite")
        storage = yield open_sqlite(path, reactor)
        yield storage.close()
        with sqlite3.connect(path) as db:
            db.execute("UPDATE schema_version SET version = 99")
        failure = yield self.assertFailure(open_sqlite(path, reactor), SchemaTooNew)
        self.assertEqual(
            str(failure),
            f"{path}: database schema version 99 is newer than this jabberapp supports "
            f"({len(MIGRATIONS)}); run a newer jabberapp or restore a backup")

    @defer.inlineCallbacks
    def test_failed_migration_rolls_back(self):
        """A migration that fails leaves the database exactly at its previous version."""
        path = self.temp_path("db.sqlite")
        storage = yield open_sqlite(path, reactor)
        yield storage.close()

        def broken(txn):
            txn.execute("CREATE TABLE half_done (x)")
            raise RuntimeError("migration bug")

        self.patch(migrations_module, "MIGRATIONS", (*MIGRATIONS, broken))
        yield self.assertFailure(open_sqlite(path, reactor), RuntimeError)
        self.assertEqual(schema_version(path), [(len(MIGRATIONS),)])
        self.assertNotIn("half_done", tables(path))

    @defer.inlineCallbacks
    def test_migration_applied(self):
        """A new migration is applied to an existing database, and only once."""
        path = self.temp_path("db.sqlite")
        storage = yield open_sqlite(path, reactor)
        yield storage.close()
        self.patch(migrations_module, "MIGRATIONS",
                   (*MIGRATIONS, ("CREATE TABLE added_later (x)",)))
        storage = yield open_sqlite(path, reactor)
        yield storage.close()
        yield self.open(path)
        self.assertEqual(schema_version(path), [(len(MIGRATIONS) + 1,)])
        self.assertIn("added_later", tables(path))

    @defer.inlineCallbacks
    def test_unopenable(self):
        """A path SQLite cannot open fails with StorageError naming it."""
        path = self.temp_path("dir")
        os.makedirs(path)
        failure = yield self.assertFailure(open_sqlite(path, reactor), StorageError)
        self.assertTrue(str(failure).startswith(f"{path}: cannot open the database"))

    @defer.inlineCallbacks
    def test_pragmas(self):
        """The connection uses WAL, syncs fully, enforces foreign keys and waits when busy."""
        storage = yield self.open(self.temp_path("db.sqlite"))
        rows = yield storage._run(lambda txn: [
            txn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")])
        self.assertEqual(rows, ["wal", 2, 1, sqlite_module.BUSY_TIMEOUT_MS])

    @defer.inlineCallbacks
    def test_off_the_reactor_thread(self):
        """Database work runs in the pool's thread, not the reactor's."""
        storage = yield self.open(self.temp_path("db.sqlite"))
        ident = yield storage._run(lambda txn: threading.get_ident())
        self.assertNotEqual(ident, threading.get_ident())

    @defer.inlineCallbacks
    def test_delete_user_is_one_transaction(self):
        """A delete_user() failing half-way rolls back: account and data are all still there."""
        storage = yield self.open(self.temp_path("db.sqlite"))
        yield storage.accounts.create(HOST, "alice", {"sha1": creds(b"1")})
        yield storage.keyvalue("roster").set(HOST, "alice", "k", 1)
        yield storage.archive("offline").append(HOST, "alice", "<m/>", 1.0)
        real = stores_module.store_names

        def fail_on_archive(txn, table):
            if table == "archive":
                raise RuntimeError("disk gone")
            return real(txn, table)

        self.patch(stores_module, "store_names", fail_on_archive)
        yield self.assertFailure(storage.delete_user(HOST, "alice"), RuntimeError)
        self.assertTrue((yield storage.accounts.exists(HOST, "alice")))
        self.assertEqual((yield storage.accounts.get_credentials(HOST, "alice", "sha1")),
                         creds(b"1"))
        self.assertEqual((yield storage.keyvalue("roster").get(HOST, "alice", "k")), 1)
        self.assertEqual((yield storage.archive("offline").count(HOST, "alice")), 1)

    @defer.inlineCallbacks
    def test_delete_user_uses_indexes(self):
        """delete_user() finds store names and rows through indexes, never a table scan."""
        storage = yield self.open(self.temp_path("db.sqlite"))
        plans = yield storage._run(lambda txn: [
            " ".join(row[-1] for row in txn.execute("EXPLAIN QUERY PLAN " + sql, args))
            for sql, args in [
                ("SELECT MIN(store) FROM keyvalue WHERE store > ?", ("",)),
                ("SELECT MIN(store) FROM archive WHERE store > ?", ("",)),
                ("DELETE FROM keyvalue WHERE store = ? AND host = ? AND username = ?",
                 ("s", HOST, "alice")),
                ("DELETE FROM archive WHERE store = ? AND host = ? AND username = ?",
                 ("s", HOST, "alice"))]])
        for plan in plans:
            self.assertIn("USING", plan)
            self.assertNotRegex(plan, r"SCAN (keyvalue|archive)$")

    @defer.inlineCallbacks
    def test_close_stops_thread(self):
        """close() closes the connection and stops the database thread."""
        storage = yield open_sqlite(self.temp_path("db.sqlite"), reactor)
        yield storage.accounts.exists(HOST, "alice")
        database = storage._database
        yield storage.close()
        self.assertFalse(database.is_alive())
        failure = yield self.assertFailure(storage.accounts.exists(HOST, "alice"), StorageError)
        self.assertIn("closed", str(failure))
