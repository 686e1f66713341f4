"""
The stores of the sqlite backend: accounts (with SCRAM credentials), key-value documents and
archives, as interactions run on the database thread, plus delete_user() across them all.

The statements use SQLite's dialect (``?`` parameters, ``INSERT OR REPLACE``, ``BEGIN
IMMEDIATE`` for writes, so a second process such as jabberappctl waits on busy_timeout instead
of failing half-way); the argument checks before a call is queued are the backends' shared
ones in jabberapp.storage.
"""
from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from zope.interface import implementer

from jabberapp.interfaces import IAccountStore, IArchiveStore, IKeyValueStore
from jabberapp.storage import (
    AccountExists,
    ItemNotFound,
    NoSuchAccount,
    archive_id,
    archive_number,
    check_archive_args,
    check_credentials,
    check_limit,
    check_name,
    decode_value,
    encode_value,
)

__all__ = [
    "SQLiteAccountStore",
    "SQLiteArchiveStore",
    "SQLiteKeyValueStore",
    "begin_write",
    "delete_user",
    "store_names",
]


class _Store:
    """Common plumbing: C{run(interaction, *args)} runs an interaction on the storage's
    database thread (SQLiteStorage._run, which refuses calls once the storage is closed)."""

    def __init__(self, run: Callable[..., defer.Deferred]) -> None:
        self._run = run


def begin_write(txn) -> None:
    """Open a write transaction now, so a second writer waits on busy_timeout."""
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
        begin_write(txn)
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
        begin_write(txn)
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
        begin_write(txn)
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

    def __init__(self, run: Callable[..., defer.Deferred], name: str) -> None:
        super().__init__(run)
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
        begin_write(txn)
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
        begin_write(txn)
        txn.execute("DELETE FROM keyvalue WHERE store = ? AND host = ? AND username = ?",
                    (self._name, host, username))


@implementer(IArchiveStore)
class SQLiteArchiveStore(_Store):
    """IArchiveStore over the archive table; ids are the zero-padded AUTOINCREMENT rowid."""

    def __init__(self, run: Callable[..., defer.Deferred], name: str) -> None:
        super().__init__(run)
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
        begin_write(txn)
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
        begin_write(txn)
        base = "DELETE FROM archive WHERE store = ? AND host = ? AND username = ?"
        if numbers is None:
            txn.execute(base, (self._name, host, username))
            return
        chunk = 500   # well below SQLite's limit on bound parameters
        for i in range(0, len(numbers), chunk):
            part = numbers[i:i + chunk]
            txn.execute(f"{base} AND id IN ({', '.join('?' * len(part))})",
                        (self._name, host, username, *part))


def delete_user(txn, host, username):
    """IStorage.delete_user as one interaction: True when the account existed."""
    begin_write(txn)
    # Credentials go with the account (ON DELETE CASCADE). Anything raised rolls back.
    txn.execute("DELETE FROM accounts WHERE host = ? AND username = ?", (host, username))
    existed = txn.rowcount > 0
    for table in ("keyvalue", "archive"):
        # One delete per store name, so each uses the index that starts with the store.
        for store in store_names(txn, table):
            txn.execute(f"DELETE FROM {table} WHERE store = ? AND host = ? AND username = ?",
                        (store, host, username))
    for table in ("mam_message", "mam_prefs"):     # the message archive (migration 2)
        txn.execute(f"DELETE FROM {table} WHERE host = ? AND username = ?", (host, username))
    return existed


def store_names(txn, table):
    """The distinct store names of C{table}: one index seek per name, not a table scan."""
    names, last = [], ""    # store names are never empty, so every name is > ""
    while True:
        txn.execute(f"SELECT MIN(store) FROM {table} WHERE store > ?", (last,))
        last = txn.fetchone()[0]
        if last is None:
            return names
        names.append(last)
