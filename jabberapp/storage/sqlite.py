"""
The ``sqlite`` storage backend: one SQLite file (WAL mode) in the data directory.

Theory of operation: every database call runs in one dedicated thread (``_DatabaseThread``)
that owns the only connection, so the reactor never waits on SQLite and there is exactly one
writer, whose queue also orders the calls. Each call is one transaction (``BEGIN IMMEDIATE``
for writes, so a second process such as jabberappctl waits on busy_timeout instead of
failing half-way), committed when the interaction returns or rolled back when it raises.
(Twisted's adbapi did the same through its thread-pool machinery at about twice the CPU
per call; a login makes four.)

The schema is versioned: ``schema_version`` holds the number of MIGRATIONS applied; open()
applies the missing ones in one transaction and refuses a database newer than the code.
Add a migration by appending to MIGRATIONS; never edit one that has shipped.
"""
from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.interfaces import (
    IAccountStore,
    IArchiveStore,
    IBulkImport,
    IKeyValueStore,
    IStorage,
    IStorageBackend,
)
from jabberapp.storage import (
    AccountExists,
    ItemNotFound,
    NoSuchAccount,
    SchemaTooNew,
    StorageError,
    archive_id,
    archive_number,
    check_archive_args,
    check_credentials,
    check_limit,
    check_name,
    checked_record,
    decode_value,
    encode_value,
)

__all__ = ["MIGRATIONS", "SQLiteBackend", "SQLiteStorage", "open_sqlite", "sqlite_backend"]

log = Logger()

BUSY_TIMEOUT_MS = 5000

#: bulk_import() writes its records with one executemany per table every this many records.
BULK_BATCH = 1000

#: Each migration is a sequence of SQL statements or a callable taking the cursor.
#: Migration N (1-based) brings the schema from version N-1 to N.
MIGRATIONS: Sequence[Sequence[str] | Callable] = (
    # 1: accounts with SCRAM credentials, key-value documents, archives.
    (
        """CREATE TABLE accounts (
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               PRIMARY KEY (host, username)
           ) WITHOUT ROWID""",
        """CREATE TABLE credentials (
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               hash_name TEXT NOT NULL,
               salt BLOB NOT NULL,
               iterations INTEGER NOT NULL,
               stored_key BLOB NOT NULL,
               server_key BLOB NOT NULL,
               PRIMARY KEY (host, username, hash_name),
               FOREIGN KEY (host, username) REFERENCES accounts (host, username)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
        """CREATE TABLE keyvalue (
               store TEXT NOT NULL,
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               key TEXT NOT NULL,
               value TEXT NOT NULL,
               PRIMARY KEY (store, host, username, key)
           ) WITHOUT ROWID""",
        # AUTOINCREMENT: an id is never reused, even after the newest item is deleted.
        """CREATE TABLE archive (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               store TEXT NOT NULL,
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               "when" REAL NOT NULL,
               with_jid TEXT,
               item TEXT NOT NULL
           )""",
        'CREATE INDEX archive_by_time ON archive (store, host, username, "when", id)',
        'CREATE INDEX archive_by_with ON archive (store, host, username, with_jid, "when", id)',
    ),
)


class _DatabaseThread:
    """One thread and its one connection; run() queues an interaction for it."""

    def __init__(self, path: str, reactor) -> None:
        self._path = path
        self._reactor = reactor
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=f"sqlite {path}",
                                        daemon=True)
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
            # Autocommit at the driver level: each interaction issues its own BEGIN, so DDL
            # in migrations is transactional too (the sqlite3 module would not BEGIN for it).
            # Opened, used and closed in this thread only.
            connection = sqlite3.connect(self._path, isolation_level=None)
            _on_connect(connection)
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
                except sqlite3.Error:
                    pass
                call(d.errback, failure)
            else:
                call(d.callback, result)


def _on_connect(connection: sqlite3.Connection) -> None:
    # Runs in the database thread for its one connection.
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA foreign_keys = ON")
    # FULL, whatever the build's default: an acknowledged write survives power loss
    # (DESIGN.md section 7), not just a crash of the process.
    connection.execute("PRAGMA synchronous = FULL")


def _migrate(txn, path: str) -> int:
    txn.execute("BEGIN IMMEDIATE")
    txn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    txn.execute("SELECT version FROM schema_version")
    rows = txn.fetchall()
    current = rows[0][0] if rows else 0
    target = len(MIGRATIONS)
    if len(rows) > 1 or current < 0:
        raise StorageError(f"{path}: the schema_version table is corrupt")
    if current > target:
        raise SchemaTooNew(
            f"{path}: database schema version {current} is newer than this jabberapp "
            f"supports ({target}); run a newer jabberapp or restore a backup")
    for version in range(current + 1, target + 1):
        step = MIGRATIONS[version - 1]
        if callable(step):
            step(txn)
        else:
            for statement in step:
                txn.execute(statement)
    if not rows:
        txn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
    elif current != target:
        txn.execute("UPDATE schema_version SET version = ?", (target,))
    return current


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
    database = _DatabaseThread(path, reactor)
    storage = SQLiteStorage(database, path)

    def migrated(previous):
        if previous != len(MIGRATIONS):
            log.info("migrated {path} from schema version {old} to {new}",
                     path=path, old=previous, new=len(MIGRATIONS))
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

    d = database.run(_migrate, path)
    d.addCallbacks(migrated, failed)
    return d


class _Store:
    """Common plumbing: run an interaction on the storage's database thread."""

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    def _run(self, interaction, *args) -> defer.Deferred:
        return self._storage._run(interaction, *args)


def _begin_write(txn) -> None:
    txn.execute("BEGIN IMMEDIATE")


@implementer(IAccountStore)
class SQLiteAccountStore(_Store):
    """IAccountStore over the accounts and credentials tables."""

    def create(self, host, username, credentials):
        """See IAccountStore.create."""
        try:
            check_name("host", host)
            check_name("username", username)
            credentials = check_credentials(credentials)
        except (TypeError, ValueError):
            return defer.fail()
        return self._run(self._create, host, username, credentials)

    @staticmethod
    def _create(txn, host, username, credentials):
        _begin_write(txn)
        txn.execute("SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, username))
        if txn.fetchone() is not None:
            raise AccountExists(f"{username}@{host}")
        txn.execute("INSERT INTO accounts (host, username) VALUES (?, ?)", (host, username))
        _insert_credentials(txn, host, username, credentials)

    def get_credentials(self, host, username, hash_name):
        """See IAccountStore.get_credentials."""
        return self._run(self._get_credentials, host, username, hash_name)

    @staticmethod
    def _get_credentials(txn, host, username, hash_name):
        # Imported here: the storage layer must not pull in SASL when it is imported.
        from jabberapp.sasl.scram import ScramCredentials

        txn.execute(
            "SELECT salt, iterations, stored_key, server_key FROM credentials "
            "WHERE host = ? AND username = ? AND hash_name = ?", (host, username, hash_name))
        row = txn.fetchone()
        if row is None:
            return None
        salt, iterations, stored_key, server_key = row
        return ScramCredentials(salt=bytes(salt), iterations=iterations,
                                stored_key=bytes(stored_key), server_key=bytes(server_key))

    def set_credentials(self, host, username, credentials):
        """See IAccountStore.set_credentials."""
        try:
            credentials = check_credentials(credentials)
        except TypeError:
            return defer.fail()
        return self._run(self._set_credentials, host, username, credentials)

    @staticmethod
    def _set_credentials(txn, host, username, credentials):
        _begin_write(txn)
        txn.execute("SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, username))
        if txn.fetchone() is None:
            raise NoSuchAccount(f"{username}@{host}")
        txn.execute("DELETE FROM credentials WHERE host = ? AND username = ?",
                    (host, username))
        _insert_credentials(txn, host, username, credentials)

    def delete(self, host, username):
        """See IAccountStore.delete."""
        return self._run(self._delete, host, username)

    @staticmethod
    def _delete(txn, host, username):
        _begin_write(txn)
        # Credentials go with the account (ON DELETE CASCADE).
        txn.execute("DELETE FROM accounts WHERE host = ? AND username = ?", (host, username))
        if txn.rowcount == 0:
            raise NoSuchAccount(f"{username}@{host}")

    def exists(self, host, username):
        """See IAccountStore.exists."""
        return self._run(self._exists, host, username)

    @staticmethod
    def _exists(txn, host, username):
        txn.execute("SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, username))
        return txn.fetchone() is not None

    def list_users(self, host):
        """See IAccountStore.list_users."""
        return self._run(self._list_users, host)

    @staticmethod
    def _list_users(txn, host):
        txn.execute("SELECT username FROM accounts WHERE host = ? ORDER BY username", (host,))
        return [row[0] for row in txn.fetchall()]


def _insert_credentials(txn, host, username, credentials):
    txn.executemany(
        "INSERT INTO credentials (host, username, hash_name, salt, iterations, stored_key, "
        "server_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(host, username, hash_name, c.salt, c.iterations, c.stored_key, c.server_key)
         for hash_name, c in credentials.items()])


@implementer(IKeyValueStore)
class SQLiteKeyValueStore(_Store):
    """IKeyValueStore over the keyvalue table, rows tagged with the store name."""

    def __init__(self, storage: SQLiteStorage, name: str) -> None:
        super().__init__(storage)
        self._name = name

    def get(self, host, username, key):
        """See IKeyValueStore.get."""
        return self._run(self._get, host, username, key)

    def _get(self, txn, host, username, key):
        txn.execute("SELECT value FROM keyvalue WHERE store = ? AND host = ? AND username = ? "
                    "AND key = ?", (self._name, host, username, key))
        row = txn.fetchone()
        return None if row is None else decode_value(row[0])

    def set(self, host, username, key, value):
        """See IKeyValueStore.set."""
        try:
            check_name("host", host)
            check_name("username", username)
            check_name("key", key)
            # Encoded here, in the caller's thread: the value may be mutated right after.
            text = None if value is None else encode_value(value)
        except (TypeError, ValueError):
            return defer.fail()
        return self._run(self._set, host, username, key, text)

    def _set(self, txn, host, username, key, text):
        _begin_write(txn)
        if text is None:
            txn.execute("DELETE FROM keyvalue WHERE store = ? AND host = ? AND username = ? "
                        "AND key = ?", (self._name, host, username, key))
        else:
            txn.execute("INSERT OR REPLACE INTO keyvalue (store, host, username, key, value) "
                        "VALUES (?, ?, ?, ?, ?)", (self._name, host, username, key, text))

    def keys(self, host, username):
        """See IKeyValueStore.keys."""
        return self._run(self._keys, host, username)

    def _keys(self, txn, host, username):
        txn.execute("SELECT key FROM keyvalue WHERE store = ? AND host = ? AND username = ? "
                    "ORDER BY key", (self._name, host, username))
        return [row[0] for row in txn.fetchall()]

    def delete_user(self, host, username):
        """See IKeyValueStore.delete_user."""
        return self._run(self._delete_user, host, username)

    def _delete_user(self, txn, host, username):
        _begin_write(txn)
        txn.execute("DELETE FROM keyvalue WHERE store = ? AND host = ? AND username = ?",
                    (self._name, host, username))


@implementer(IArchiveStore)
class SQLiteArchiveStore(_Store):
    """IArchiveStore over the archive table; ids are the zero-padded AUTOINCREMENT rowid."""

    def __init__(self, storage: SQLiteStorage, name: str) -> None:
        super().__init__(storage)
        self._name = name

    def append(self, host, username, item, when, with_jid=None):
        """See IArchiveStore.append."""
        try:
            check_name("host", host)
            check_name("username", username)
            when = check_archive_args(item, when, with_jid)
        except (TypeError, ValueError):
            return defer.fail()
        return self._run(self._append, host, username, item, when, with_jid)

    def _append(self, txn, host, username, item, when, with_jid):
        _begin_write(txn)
        txn.execute('INSERT INTO archive (store, host, username, "when", with_jid, item) '
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (self._name, host, username, when, with_jid, item))
        return archive_id(txn.lastrowid)

    def query(self, host, username, start=None, end=None, with_jid=None,
              after=None, before=None, limit=None):
        """See IArchiveStore.query and the query rules in jabberapp.storage."""
        try:
            limit = check_limit(limit)
        except (TypeError, ValueError):
            return defer.fail()
        return self._run(self._query, host, username, start, end, with_jid, after, before,
                         limit)

    def _position(self, txn, host, username, item_id):
        number = archive_number(item_id)
        if number is not None:
            txn.execute('SELECT "when" FROM archive WHERE id = ? AND store = ? AND host = ? '
                        "AND username = ?", (number, self._name, host, username))
            row = txn.fetchone()
            if row is not None:
                return row[0], number
        raise ItemNotFound(item_id)

    def _query(self, txn, host, username, start, end, with_jid, after, before, limit):
        txn.execute("BEGIN")   # one snapshot for the position look-ups and the select
        where = ["store = ?", "host = ?", "username = ?"]
        args: list = [self._name, host, username]
        if start is not None:
            where.append('"when" >= ?')
            args.append(start)
        if end is not None:
            where.append('"when" <= ?')
            args.append(end)
        if with_jid is not None:
            where.append("with_jid = ?")
            args.append(with_jid)
        if after is not None:
            when, number = self._position(txn, host, username, after)
            where.append('("when" > ? OR ("when" = ? AND id > ?))')
            args.extend((when, when, number))
        if before:
            when, number = self._position(txn, host, username, before)
            where.append('("when" < ? OR ("when" = ? AND id < ?))')
            args.extend((when, when, number))
        # Paging backwards (RSM <before/>) takes the matches nearest the end.
        backwards = before is not None and limit is not None
        order = 'DESC' if backwards else 'ASC'
        sql = (f'SELECT id, "when", with_jid, item FROM archive WHERE {" AND ".join(where)} '
               f'ORDER BY "when" {order}, id {order}')
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        txn.execute(sql, args)
        rows = [(archive_id(row_id), when, row_with, item)
                for row_id, when, row_with, item in txn.fetchall()]
        if backwards:
            rows.reverse()
        return rows

    def count(self, host, username):
        """See IArchiveStore.count."""
        return self._run(self._count, host, username)

    def _count(self, txn, host, username):
        txn.execute("SELECT COUNT(*) FROM archive WHERE store = ? AND host = ? AND "
                    "username = ?", (self._name, host, username))
        return txn.fetchone()[0]

    def delete(self, host, username, ids=None):
        """See IArchiveStore.delete; unknown ids are ignored."""
        if ids is not None:
            if isinstance(ids, str):
                return defer.fail(TypeError("ids must be a collection of ids, not a str"))
            numbers = [n for n in map(archive_number, ids) if n is not None]
        else:
            numbers = None
        return self._run(self._delete, host, username, numbers)

    def _delete(self, txn, host, username, numbers):
        _begin_write(txn)
        base = "DELETE FROM archive WHERE store = ? AND host = ? AND username = ?"
        if numbers is None:
            txn.execute(base, (self._name, host, username))
            return
        chunk = 500   # well below SQLite's limit on bound parameters
        for i in range(0, len(numbers), chunk):
            part = numbers[i:i + chunk]
            txn.execute(f"{base} AND id IN ({', '.join('?' * len(part))})",
                        (self._name, host, username, *part))


def _delete_user(txn, host, username):
    _begin_write(txn)
    # Credentials go with the account (ON DELETE CASCADE). Anything raised rolls back.
    txn.execute("DELETE FROM accounts WHERE host = ? AND username = ?", (host, username))
    existed = txn.rowcount > 0
    for table in ("keyvalue", "archive"):
        # One delete per store name, so each uses the index that starts with the store.
        for store in _store_names(txn, table):
            txn.execute(f"DELETE FROM {table} WHERE store = ? AND host = ? AND username = ?",
                        (store, host, username))
    return existed


def _store_names(txn, table):
    """The distinct store names of C{table}: one index seek per name, not a table scan."""
    names, last = [], ""    # store names are never empty, so every name is > ""
    while True:
        txn.execute(f"SELECT MIN(store) FROM {table} WHERE store > ?", (last,))
        last = txn.fetchone()[0]
        if last is None:
            return names
        names.append(last)


class _BulkWriter:
    """
    The rows of one bulk_import() transaction, written with executemany every BULK_BATCH
    records. Accounts are checked against the table before each write, so an existing one
    is named (AccountExists) rather than reported as a constraint failure.
    """

    def __init__(self, txn) -> None:
        self.txn = txn
        self.count = 0
        self.seen: set[tuple[str, str]] = set()
        self.accounts: list[tuple[str, str]] = []
        self.credentials: list[tuple] = []
        self.documents: list[tuple] = []
        self.items: list[tuple] = []

    def add(self, checked: tuple) -> None:
        kind = checked[0]
        if kind == "account":
            _, host, username, credentials = checked
            if (host, username) in self.seen:
                raise AccountExists(f"{username}@{host}")
            self.seen.add((host, username))
            self.accounts.append((host, username))
            self.credentials.extend(
                (host, username, hash_name, c.salt, c.iterations, c.stored_key, c.server_key)
                for hash_name, c in credentials.items())
        elif kind == "document":
            self.documents.append(checked[1:])
        else:
            self.items.append(checked[1:])
        self.count += 1
        if self.count % BULK_BATCH == 0:
            self.flush()

    def flush(self) -> None:
        txn = self.txn
        if self.accounts:
            self._check_new(self.accounts)
            txn.executemany("INSERT INTO accounts (host, username) VALUES (?, ?)",
                            self.accounts)
            txn.executemany(
                "INSERT INTO credentials (host, username, hash_name, salt, iterations, "
                "stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)", self.credentials)
        if self.documents:
            txn.executemany("INSERT OR REPLACE INTO keyvalue (store, host, username, key, "
                            "value) VALUES (?, ?, ?, ?, ?)", self.documents)
        if self.items:
            txn.executemany('INSERT INTO archive (store, host, username, item, "when", '
                            "with_jid) VALUES (?, ?, ?, ?, ?, ?)", self.items)
        self.accounts, self.credentials, self.documents, self.items = [], [], [], []

    def _check_new(self, accounts) -> None:
        by_host: dict[str, list[str]] = {}
        for host, username in accounts:
            by_host.setdefault(host, []).append(username)
        existing = set()
        chunk = 500   # well below SQLite's limit on bound parameters
        for host, usernames in by_host.items():
            for i in range(0, len(usernames), chunk):
                part = usernames[i:i + chunk]
                self.txn.execute(f"SELECT username FROM accounts WHERE host = ? AND username "
                                 f"IN ({', '.join('?' * len(part))})", (host, *part))
                existing.update((host, row[0]) for row in self.txn.fetchall())
        for host, username in accounts:
            if (host, username) in existing:
                raise AccountExists(f"{username}@{host}")


def _bulk_import(txn, records):
    _begin_write(txn)
    writer = _BulkWriter(txn)
    for record in records:
        writer.add(checked_record(record))
    writer.flush()
    return writer.count


@implementer(IStorage, IBulkImport)
class SQLiteStorage:
    """IStorage over one SQLite database; build it with open_sqlite()."""

    def __init__(self, database: _DatabaseThread, path: str) -> None:
        self._database = database
        self.path = path
        self.closed = False
        # None: open; a list of Deferreds: closing; a fired Deferred: closed.
        self._closing: list[defer.Deferred] | defer.Deferred | None = None
        self.accounts = SQLiteAccountStore(self)
        self._keyvalue: dict[str, SQLiteKeyValueStore] = {}
        self._archive: dict[str, SQLiteArchiveStore] = {}

    def _run(self, interaction, *args) -> defer.Deferred:
        if self.closed:
            return defer.fail(StorageError("the storage is closed"))
        return self._database.run(interaction, *args)

    def keyvalue(self, name):
        """See IStorage.keyvalue."""
        check_name("store name", name)
        if name not in self._keyvalue:
            self._keyvalue[name] = SQLiteKeyValueStore(self, name)
        return self._keyvalue[name]

    def archive(self, name):
        """See IStorage.archive."""
        check_name("store name", name)
        if name not in self._archive:
            self._archive[name] = SQLiteArchiveStore(self, name)
        return self._archive[name]

    def delete_user(self, host, username):
        """See IStorage.delete_user: one transaction over every table."""
        return self._run(_delete_user, host, username)

    def bulk_import(self, records):
        """See IBulkImport.bulk_import: one BEGIN IMMEDIATE transaction on the database
        thread, rolled back when anything raises."""
        return self._run(_bulk_import, records)

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
