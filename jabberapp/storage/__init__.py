"""
Storage: the domain exceptions of the stores and ``open_storage()``, which opens the backend
named in [storage] backend among the IStorageBackend plugins of jabberapp.plugins.

Backends shipped here: ``sqlite`` (jabberapp.storage.sqlite, the embedded default) and
``memory`` (jabberapp.storage.memory, volatile, for tests and plugin authors). Both pass the
same contract tests (tests/storage/contract.py), which also pin down the behaviour the
interfaces leave open:

- IArchiveStore ids are strings that sort, as strings, in insertion order.
- query() bounds: ``start``/``end`` are inclusive POSIX times; ``with_jid`` matches exactly;
  ``after``/``before`` are ids, exclusive, positioned in the (when, id) order of the user's
  archive, and an id the user's archive does not hold fails with ItemNotFound. With a
  ``limit``, ``before`` (or ``before=""``: the end of the archive, RSM's empty <before/>)
  selects the *last* ``limit`` matches; otherwise the first. Results are in (when, id) order.
- IKeyValueStore values go through JSON: what get() returns is a fresh copy (tuples come
  back as lists) and a value JSON cannot encode fails with TypeError or ValueError.
- IBulkImport.bulk_import() takes the records defined here (AccountRecord, DocumentRecord,
  ArchiveRecord); ``checked_record()`` checks one the way both backends do.

Storage code raises these exceptions and never imports jabberapp.errors: callers map them to
stanza errors at their protocol edge.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.plugin import getPlugins

from jabberapp.interfaces import IStorageBackend

if TYPE_CHECKING:
    from jabberapp.config import StorageConfig

__all__ = [
    "AccountExists",
    "AccountRecord",
    "ArchiveRecord",
    "DocumentRecord",
    "ItemNotFound",
    "NoSuchAccount",
    "SchemaTooNew",
    "StorageError",
    "UnknownBackend",
    "archive_id",
    "archive_number",
    "check_archive_args",
    "check_credentials",
    "check_limit",
    "check_name",
    "checked_record",
    "decode_value",
    "encode_value",
    "open_storage",
]


class StorageError(Exception):
    """Base class of the storage layer's own exceptions."""


class AccountExists(StorageError):
    """IAccountStore.create(): the account (host, username) already exists."""


class NoSuchAccount(StorageError):
    """IAccountStore: the account (host, username) does not exist."""


class ItemNotFound(StorageError):
    """IArchiveStore.query(): the ``after`` or ``before`` id is not in the user's archive."""


class SchemaTooNew(StorageError):
    """The database was written by a newer jabberapp: refuse to touch it."""


class UnknownBackend(StorageError):
    """[storage] backend names no installed IStorageBackend plugin."""


def _backends() -> dict[str, list]:
    import jabberapp.plugins

    found: dict[str, list] = {}
    for backend in getPlugins(IStorageBackend, jabberapp.plugins):
        found.setdefault(backend.name, []).append(backend)
    return found


def open_storage(config: StorageConfig, reactor) -> defer.Deferred:
    """
    Deferred: the IStorage of the backend named C{config.backend}, opened and migrated.

    Fails with UnknownBackend (listing the installed backends) when no plugin has that
    name, or when two plugins claim it (which one to use cannot be guessed).
    """
    backends = _backends()
    candidates = backends.get(config.backend, [])
    if not candidates:
        known = ", ".join(sorted(backends)) or "none"
        return defer.fail(UnknownBackend(
            f"unknown storage backend {config.backend!r} (installed: {known})"))
    if len(candidates) > 1:
        modules = ", ".join(sorted(type(b).__module__ for b in candidates))
        return defer.fail(UnknownBackend(
            f"storage backend {config.backend!r} is provided twice ({modules})"))
    return defer.maybeDeferred(candidates[0].open, config, reactor)


# -- helpers shared by the backends (and for plugin authors writing one) ---------------------

ARCHIVE_ID_DIGITS = 16


def archive_id(number: int) -> str:
    """The archive id string of the C{number}th item: zero-padded so ids sort as strings."""
    return f"{number:0{ARCHIVE_ID_DIGITS}d}"


def archive_number(item_id: object) -> int | None:
    """The number of a well-formed archive id, or None (never matches a stored item)."""
    if (isinstance(item_id, str) and len(item_id) == ARCHIVE_ID_DIGITS
            and item_id.isascii() and item_id.isdigit()):
        return int(item_id)
    return None


def encode_value(value: object) -> str:
    """JSON text of a key-value store value; TypeError/ValueError when JSON cannot hold it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode_value(text: str) -> object:
    """The value of JSON C{text} written by encode_value()."""
    return json.loads(text)


def check_name(kind: str, value: object) -> str:
    """C{value} if it is a non-empty str; TypeError/ValueError naming C{kind} otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{kind} must not be empty")
    return value


def check_credentials(credentials: object) -> dict:
    """
    A copy of C{credentials} (hash name -> ScramCredentials) after checking its shape;
    TypeError when it is not one.
    """
    if not isinstance(credentials, Mapping):
        raise TypeError("credentials must be a mapping of hash name to ScramCredentials")
    checked = {}
    for hash_name, cred in credentials.items():
        check_name("hash name", hash_name)
        if not (isinstance(getattr(cred, "salt", None), bytes)
                and isinstance(getattr(cred, "iterations", None), int)
                and isinstance(getattr(cred, "stored_key", None), bytes)
                and isinstance(getattr(cred, "server_key", None), bytes)):
            raise TypeError(f"credentials[{hash_name!r}] is not a ScramCredentials")
        checked[hash_name] = cred
    return checked


def check_archive_args(item: object, when: object, with_jid: object) -> float:
    """Check IArchiveStore.append() arguments; returns C{when} as a float."""
    if not isinstance(item, str):
        raise TypeError(f"item must be a str, not {type(item).__name__}")
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise TypeError(f"when must be a number of seconds, not {type(when).__name__}")
    if with_jid is not None and not isinstance(with_jid, str):
        raise TypeError(f"with_jid must be a str or None, not {type(with_jid).__name__}")
    when = float(when)
    if when != when or when in (float("inf"), float("-inf")):
        raise ValueError("when must be finite")
    return when


def check_limit(limit: object) -> int | None:
    """Check a query() limit: None or an int >= 0."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
    if limit < 0:
        raise ValueError("limit must not be negative")
    return limit


# -- the records of IBulkImport.bulk_import -------------------------------------------------


@dataclass(frozen=True)
class AccountRecord:
    """Create the account (host, username) with C{credentials}: hash name -> ScramCredentials
    (possibly none: the account exists, but nobody can log in until a password is set)."""

    host: str
    username: str
    credentials: Mapping


@dataclass(frozen=True)
class DocumentRecord:
    """Store C{value} (not None) as the document C{key} of the user in key-value store
    C{store}, replacing what is there, as IKeyValueStore.set does."""

    store: str
    host: str
    username: str
    key: str
    value: object


@dataclass(frozen=True)
class ArchiveRecord:
    """Append C{item} to the user's archive in store C{store}, as IArchiveStore.append does."""

    store: str
    host: str
    username: str
    item: str
    when: float
    with_jid: str | None = None


def checked_record(record: object) -> tuple:
    """
    The bulk_import record C{record} checked, as a plain tuple:
    ("account", host, username, credentials), ("document", store, host, username, key,
    JSON text) or ("archive", store, host, username, item, when as float, with_jid).
    TypeError or ValueError for anything else.
    """
    if isinstance(record, AccountRecord):
        return ("account", check_name("host", record.host),
                check_name("username", record.username), check_credentials(record.credentials))
    if isinstance(record, DocumentRecord):
        if record.value is None:
            raise ValueError("a DocumentRecord's value must not be None")
        return ("document", check_name("store name", record.store),
                check_name("host", record.host), check_name("username", record.username),
                check_name("key", record.key), encode_value(record.value))
    if isinstance(record, ArchiveRecord):
        when = check_archive_args(record.item, record.when, record.with_jid)
        return ("archive", check_name("store name", record.store),
                check_name("host", record.host), check_name("username", record.username),
                record.item, when, record.with_jid)
    raise TypeError(f"not a bulk_import record: {type(record).__name__}")
