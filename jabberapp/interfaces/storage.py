"""Storage: the backend, its stores, bulk import."""
from zope.interface import Attribute, Interface

__all__ = [
    "IStorage",
    "IBulkImport",
    "IStorageBackend",
    "IAccountStore",
    "IKeyValueStore",
    "IArchiveStore",
    "IMessageArchive",
]


class IStorage(Interface):
    """A storage backend opened for the process: accounts plus named generic stores."""

    accounts = Attribute("The IAccountStore.")

    def keyvalue(name):
        """The IKeyValueStore called C{name} (e.g. 'roster', 'vcard')."""

    def archive(name):
        """The IArchiveStore called C{name} (e.g. 'offline')."""

    def message_archive():
        """The IMessageArchive: the XEP-0313 archives of the accounts."""

    def delete_user(host, username):
        """
        Deferred: delete the account (host, username) with its credentials and every
        key-value document and archive item of that user, in every store, atomically
        (all or nothing). Fires with True when the account existed, False when there was
        none (its data, if any, is deleted all the same).
        """

    def close():
        """Deferred: release connections and threads."""


class IBulkImport(Interface):
    """
    An IStorage that can write a large import atomically (jabberappctl import). Optional:
    a backend without it still serves, it cannot be imported into.
    """

    def bulk_import(records):
        """
        Deferred: apply every record of the iterable C{records} -- AccountRecord,
        DocumentRecord and ArchiveRecord from jabberapp.storage -- in one transaction: all
        of them, or none when anything fails. Fires with the number of records applied.

        It fails, writing nothing, with AccountExists when an account exists already or
        is created twice, with TypeError or ValueError for a malformed record (a
        DocumentRecord's value must not be None), with whatever the iterable itself
        raises, or with the database's error.

        The iterable is consumed in the backend's own thread (it may be a generator that
        parses a file, but must not touch the reactor) and need not fit in memory: a
        database backend writes it in batches. ArchiveRecords get ids in the order given.
        A database backend holds its write lock for the whole call, so run it while the
        server is stopped, or expect the server's writes to wait.
        """


class IStorageBackend(Interface):
    """A plugin that opens an IStorage from the [storage] config section."""

    name = Attribute("Backend name as written in [storage] backend, e.g. 'sqlite'.")

    def open(config, reactor):
        """Deferred: an IStorage, with its schema migrated to the current version."""


class IAccountStore(Interface):
    """User accounts, keyed by (host, username); credentials as SCRAM material only."""

    def create(host, username, credentials):
        """
        Deferred: create the account with C{credentials}, a dict hash_name ->
        ScramCredentials. Fails with jabberapp.storage.AccountExists if it exists.
        """

    def get_credentials(host, username, hash_name):
        """Deferred: ScramCredentials for that hash, or None (no such user or hash)."""

    def set_credentials(host, username, credentials):
        """Deferred: replace all credentials. Fails with NoSuchAccount."""

    def delete(host, username):
        """Deferred: remove the account. Fails with NoSuchAccount."""

    def exists(host, username):
        """Deferred: bool."""

    def list_users(host):
        """Deferred: sorted list of usernames of C{host}."""


class IKeyValueStore(Interface):
    """Per-user JSON-serialisable documents keyed by (host, username, key)."""

    def get(host, username, key):
        """Deferred: the stored value, or None."""

    def set(host, username, key, value):
        """Deferred: store C{value} (None deletes)."""

    def keys(host, username):
        """Deferred: sorted list of keys stored for the user."""

    def delete_user(host, username):
        """Deferred: remove every key of the user."""


class IArchiveStore(Interface):
    """Append-only, time-ordered items per (host, username)."""

    def append(host, username, item, when, with_jid=None):
        """Deferred: store C{item} (str) at C{when} (POSIX seconds); fires with its id (str)."""

    def query(host, username, start=None, end=None, with_jid=None,
              after=None, before=None, limit=None):
        """Deferred: list of (id, when, with_jid, item) in time order."""

    def count(host, username):
        """Deferred: number of items stored for the user."""

    def delete(host, username, ids=None):
        """Deferred: delete the given ids, or every item of the user when None."""


class IMessageArchive(Interface):
    """
    The message archives of accounts (XEP-0313), one per (host, username).

    Values are those of jabberapp.storage.messages: an L{ArchivedMessage} is one stanza
    under an id the caller chose (unpredictable, unique in the account's archive); an
    archive keeps them in the order they were appended (XEP-0313 §3.1), with a full-text
    index of their text. L{ArchiveQuery} selects a page, L{ArchivePage} is the answer.
    Writes come in batches, each one transaction, so archiving does not cost a commit per
    message. The contract tests (tests/storage/test_archive.py) pin down the rules.
    """

    def append(messages, keep=None):
        """
        Deferred: store the ArchivedMessages of the iterable C{messages}, in order, in one
        transaction, each after the ones its account's archive holds. A message for an
        account that does not exist, or whose id its archive already holds, is skipped.
        With C{keep} (an int), each account written to keeps only its C{keep} newest
        messages (the oldest go first, so the archive has no holes). Fires with the number
        of messages stored.
        """

    def query(host, username, query):
        """
        Deferred: the L{ArchivePage} of the account's archive that C{query} (an
        ArchiveQuery) selects. Fails with jabberapp.storage.ItemNotFound when an id the
        query names (after_id, before_id, ids, RSM after/before) is not in the archive.
        """

    def bounds(host, username):
        """Deferred: ((id, when) of the first message, (id, when) of the last), or None
        for an empty archive."""

    def expire(host, before):
        """Deferred: delete every message of C{host}'s accounts archived before C{before}
        (POSIX seconds); fires with the number deleted."""

    def purge(host, username):
        """Deferred: delete the account's whole archive and its preferences."""

    def all_prefs(host):
        """Deferred: dict username -> preferences (a JSON-able value) of C{host}'s
        accounts that have some stored."""

    def set_prefs(host, username, prefs):
        """Deferred: store the account's preferences (JSON-able); None deletes them."""
