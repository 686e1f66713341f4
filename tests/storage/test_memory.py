"""The storage contract run against the memory backend, plus its own promises."""
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from jabberapp.config import StorageConfig
from jabberapp.interfaces import IStorageBackend
from jabberapp.storage import UnknownBackend, open_storage
from jabberapp.storage.memory import MemoryStorage, memory_backend

from .contract import (
    HOST,
    AccountStoreContract,
    ArchiveStoreContract,
    BulkImportContract,
    KeyValueStoreContract,
    StorageContract,
    creds,
)


class MemoryMixin:
    def make_storage(self):
        return MemoryStorage()


class MemoryStorageTests(MemoryMixin, StorageContract, TestCase):
    """IStorage contract for the memory backend."""


class MemoryAccountStoreTests(MemoryMixin, AccountStoreContract, TestCase):
    """IAccountStore contract for the memory backend."""


class MemoryKeyValueStoreTests(MemoryMixin, KeyValueStoreContract, TestCase):
    """IKeyValueStore contract for the memory backend."""


class MemoryArchiveStoreTests(MemoryMixin, ArchiveStoreContract, TestCase):
    """IArchiveStore contract for the memory backend."""


class MemoryBulkImportTests(MemoryMixin, BulkImportContract, TestCase):
    """IBulkImport contract for the memory backend."""


class MemoryBackendTests(SynchronousTestCase):
    def test_backend_interface(self):
        """The memory backend plugin provides IStorageBackend under the name 'memory'."""
        verifyObject(IStorageBackend, memory_backend)
        self.assertEqual(memory_backend.name, "memory")

    def test_already_fired(self):
        """Every call returns an already-fired Deferred, failures included."""
        storage = self.successResultOf(memory_backend.open(StorageConfig("memory", ""), None))
        self.successResultOf(storage.accounts.create(HOST, "alice", {"sha1": creds(b"1")}))
        self.assertEqual(self.successResultOf(storage.accounts.list_users(HOST)), ["alice"])
        self.failureResultOf(storage.accounts.delete(HOST, "bob"))
        item_id = self.successResultOf(storage.archive("a").append(HOST, "alice", "x", 1))
        self.assertEqual(self.successResultOf(storage.archive("a").query(HOST, "alice")),
                         [(item_id, 1.0, None, "x")])
        self.successResultOf(storage.close())

    def test_each_open_is_empty(self):
        """Each open() gives a new, empty storage."""
        one = self.successResultOf(memory_backend.open(StorageConfig("memory", ""), None))
        self.successResultOf(one.keyvalue("k").set(HOST, "alice", "k", 1))
        two = self.successResultOf(memory_backend.open(StorageConfig("memory", ""), None))
        self.assertIsNone(self.successResultOf(two.keyvalue("k").get(HOST, "alice", "k")))


class OpenStorageTests(SynchronousTestCase):
    def test_by_name(self):
        """open_storage() finds the memory backend among the plugins by name."""
        storage = self.successResultOf(open_storage(StorageConfig("memory", ""), None))
        self.assertIsInstance(storage, MemoryStorage)

    def test_unknown_backend(self):
        """An unknown backend name fails with UnknownBackend listing the installed ones."""
        failure = self.failureResultOf(open_storage(StorageConfig("postgres", ""), None),
                                       UnknownBackend)
        self.assertEqual(str(failure.value),
                         "unknown storage backend 'postgres' (installed: memory, sqlite)")
