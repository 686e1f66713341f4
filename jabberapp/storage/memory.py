"""
The ``memory`` storage backend: everything in dicts, lost on exit.

For tests and for plugin authors who want a store without a database. It behaves exactly
as the sqlite backend does (the same contract tests run against both) and every method
returns an already-fired Deferred, so ``SynchronousTestCase.successResultOf`` works on it.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable

from twisted.internet import defer
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
    StorageError,
    archive_id,
    check_archive_args,
    check_credentials,
    check_limit,
    check_name,
    checked_record,
    decode_value,
    encode_value,
)
from jabberapp.storage.memory_messages import MemoryMessageArchive

__all__ = ["MemoryBackend", "MemoryStorage", "memory_backend"]


def _synchronously(method):
    """Run C{method} now; its result or exception becomes an already-fired Deferred."""

    def wrapper(self, *args, **kwargs):
        if self._storage.closed:
            return defer.fail(StorageError("the storage is closed"))
        return defer.maybeDeferred(method, self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


@implementer(IAccountStore)
class MemoryAccountStore:
    """IAccountStore in a dict: (host, username) -> {hash name: ScramCredentials}."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self._accounts: dict[tuple[str, str], dict] = {}

    @_synchronously
    def create(self, host, username, credentials):
        """See IAccountStore.create."""
        key = (check_name("host", host), check_name("username", username))
        credentials = check_credentials(credentials)
        if key in self._accounts:
            raise AccountExists(f"{username}@{host}")
        self._accounts[key] = credentials

    @_synchronously
    def get_credentials(self, host, username, hash_name):
        """See IAccountStore.get_credentials."""
        return self._accounts.get((host, username), {}).get(hash_name)

    @_synchronously
    def set_credentials(self, host, username, credentials):
        """See IAccountStore.set_credentials."""
        credentials = check_credentials(credentials)
        if (host, username) not in self._accounts:
            raise NoSuchAccount(f"{username}@{host}")
        self._accounts[(host, username)] = credentials

    @_synchronously
    def delete(self, host, username):
        """See IAccountStore.delete."""
        if self._accounts.pop((host, username), None) is None:
            raise NoSuchAccount(f"{username}@{host}")

    @_synchronously
    def exists(self, host, username):
        """See IAccountStore.exists."""
        return (host, username) in self._accounts

    @_synchronously
    def list_users(self, host):
        """See IAccountStore.list_users."""
        return sorted(user for (h, user) in self._accounts if h == host)


@implementer(IKeyValueStore)
class MemoryKeyValueStore:
    """IKeyValueStore in a dict: (host, username) -> {key: JSON text}."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self._users: dict[tuple[str, str], dict[str, str]] = {}

    @_synchronously
    def get(self, host, username, key):
        """See IKeyValueStore.get."""
        text = self._users.get((host, username), {}).get(key)
        return None if text is None else decode_value(text)

    @_synchronously
    def set(self, host, username, key, value):
        """See IKeyValueStore.set."""
        user = (check_name("host", host), check_name("username", username))
        check_name("key", key)
        if value is None:
            documents = self._users.get(user, {})
            documents.pop(key, None)
            if not documents:
                self._users.pop(user, None)
            return
        # Stored as JSON text so a caller mutating its value later changes nothing here.
        self._users.setdefault(user, {})[key] = encode_value(value)

    @_synchronously
    def keys(self, host, username):
        """See IKeyValueStore.keys."""
        return sorted(self._users.get((host, username), {}))

    @_synchronously
    def delete_user(self, host, username):
        """See IKeyValueStore.delete_user."""
        self._users.pop((host, username), None)


@implementer(IArchiveStore)
class MemoryArchiveStore:
    """IArchiveStore in lists kept sorted by (when, id), one per (host, username)."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self._users: dict[tuple[str, str], list[tuple[float, str, str | None, str]]] = {}
        self._last = 0

    @_synchronously
    def append(self, host, username, item, when, with_jid=None):
        """See IArchiveStore.append."""
        user = (check_name("host", host), check_name("username", username))
        when = check_archive_args(item, when, with_jid)
        self._last += 1
        item_id = archive_id(self._last)
        bisect.insort(self._users.setdefault(user, []), (when, item_id, with_jid, item))
        return item_id

    def _position(self, rows, item_id) -> tuple[float, str]:
        for when, row_id, _, _ in rows:
            if row_id == item_id:
                return (when, row_id)
        raise ItemNotFound(item_id)

    @_synchronously
    def query(self, host, username, start=None, end=None, with_jid=None,
              after=None, before=None, limit=None):
        """See IArchiveStore.query and the query rules in jabberapp.storage."""
        limit = check_limit(limit)
        rows = self._users.get((host, username), [])
        low = self._position(rows, after) if after is not None else None
        high = self._position(rows, before) if before else None
        selected = [
            (row_id, when, row_with, item) for (when, row_id, row_with, item) in rows
            if (start is None or when >= start) and (end is None or when <= end)
            and (with_jid is None or row_with == with_jid)
            and (low is None or (when, row_id) > low)
            and (high is None or (when, row_id) < high)
        ]
        if limit is not None:
            # Paging backwards (RSM <before/>) takes the matches nearest the end.
            selected = (selected[max(len(selected) - limit, 0):] if before is not None
                        else selected[:limit])
        return selected

    @_synchronously
    def count(self, host, username):
        """See IArchiveStore.count."""
        return len(self._users.get((host, username), []))

    @_synchronously
    def delete(self, host, username, ids=None):
        """See IArchiveStore.delete."""
        user = (host, username)
        if ids is None:
            self._users.pop(user, None)
            return
        doomed = set(_check_ids(ids))
        rows = [row for row in self._users.get(user, []) if row[1] not in doomed]
        if rows:
            self._users[user] = rows
        else:
            self._users.pop(user, None)


def _check_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str):
        raise TypeError("ids must be a collection of ids, not a str")
    return list(ids)


@implementer(IStorage, IBulkImport)
class MemoryStorage:
    """IStorage in memory: one account store plus the named stores, created on first use."""

    def __init__(self) -> None:
        self.closed = False
        self.accounts = MemoryAccountStore(self)
        self._keyvalue: dict[str, MemoryKeyValueStore] = {}
        self._archive: dict[str, MemoryArchiveStore] = {}
        self._messages = MemoryMessageArchive(self)

    def message_archive(self):
        """See IStorage.message_archive."""
        return self._messages

    def keyvalue(self, name):
        """See IStorage.keyvalue."""
        check_name("store name", name)
        if name not in self._keyvalue:
            self._keyvalue[name] = MemoryKeyValueStore(self)
        return self._keyvalue[name]

    def archive(self, name):
        """See IStorage.archive."""
        check_name("store name", name)
        if name not in self._archive:
            self._archive[name] = MemoryArchiveStore(self)
        return self._archive[name]

    def delete_user(self, host, username):
        """See IStorage.delete_user: everything goes at once, so it is atomic."""
        if self.closed:
            return defer.fail(StorageError("the storage is closed"))
        user = (host, username)
        existed = self.accounts._accounts.pop(user, None) is not None
        for store in (*self._keyvalue.values(), *self._archive.values()):
            store._users.pop(user, None)
        self._messages.delete_user(host, username)
        return defer.succeed(existed)

    def bulk_import(self, records):
        """See IBulkImport.bulk_import: every record is checked first, then all are applied
        at once (nothing after the checks can fail), so it is atomic."""
        if self.closed:
            return defer.fail(StorageError("the storage is closed"))
        accounts: dict[tuple[str, str], dict] = {}
        staged = []
        try:
            for record in records:
                checked = checked_record(record)
                if checked[0] == "account":
                    user = checked[1:3]
                    if user in accounts or user in self.accounts._accounts:
                        raise AccountExists(f"{user[1]}@{user[0]}")
                    accounts[user] = checked[3]
                else:
                    staged.append(checked)
        except Exception:
            return defer.fail()
        self.accounts._accounts.update(accounts)
        for checked in staged:
            if checked[0] == "document":
                _, store, host, username, key, text = checked
                self.keyvalue(store)._users.setdefault((host, username), {})[key] = text
            else:
                _, store, host, username, item, when, with_jid = checked
                archive = self.archive(store)
                archive._last += 1
                bisect.insort(archive._users.setdefault((host, username), []),
                              (when, archive_id(archive._last), with_jid, item))
        return defer.succeed(len(accounts) + len(staged))

    def close(self):
        """See IStorage.close. Later calls on the stores fail with StorageError."""
        self.closed = True
        return defer.succeed(None)


@implementer(IPlugin, IStorageBackend)
class MemoryBackend:
    """The ``memory`` IStorageBackend: each open() returns a new, empty MemoryStorage."""

    name = "memory"

    def open(self, config, reactor):
        """See IStorageBackend.open; C{config} and C{reactor} are not used."""
        return defer.succeed(MemoryStorage())


memory_backend = MemoryBackend()
