"""
Storage contract tests: one mixin per interface, inherited once per backend.

A backend's test module mixes each contract into a twisted.trial.unittest.TestCase and
defines ``make_storage()``, returning an opened IStorage (or a Deferred of one) that is
empty; the fixture closes it after each test. Every backend must pass every test here.
"""
from __future__ import annotations

from twisted.internet import defer
from zope.interface.verify import verifyObject

from jabberapp.interfaces import (
    IAccountStore,
    IArchiveStore,
    IBulkImport,
    IKeyValueStore,
    IStorage,
)
from jabberapp.sasl.scram import ScramCredentials, derive_all
from jabberapp.storage import (
    AccountExists,
    AccountRecord,
    ArchiveRecord,
    DocumentRecord,
    ItemNotFound,
    NoSuchAccount,
    StorageError,
)

HOST = "example.org"
OTHER_HOST = "example.net"


def creds(tag: bytes, iterations: int = 4096) -> ScramCredentials:
    """Distinct, binary SCRAM material (not derived: the store does not care)."""
    return ScramCredentials(salt=b"\x00salt" + tag, iterations=iterations,
                            stored_key=b"\xffstored\x00" + tag, server_key=b"server\n" + tag)


class _StorageFixture:
    """setUp opens the storage from make_storage(); a cleanup closes it."""

    def make_storage(self):
        """Return an empty, opened IStorage or a Deferred firing with one."""
        raise NotImplementedError(f"{type(self).__name__} must define make_storage()")

    @defer.inlineCallbacks
    def setUp(self):
        self.storage = yield defer.maybeDeferred(self.make_storage)
        self.addCleanup(self.storage.close)


class StorageContract(_StorageFixture):
    """IStorage: named stores and closing."""

    def test_interface(self):
        """The storage provides IStorage."""
        verifyObject(IStorage, self.storage)

    @defer.inlineCallbacks
    def test_same_name_same_data(self):
        """Asking twice for a store name gives access to the same data."""
        yield self.storage.keyvalue("roster").set(HOST, "alice", "k", 1)
        self.assertEqual((yield self.storage.keyvalue("roster").get(HOST, "alice", "k")), 1)
        yield self.storage.archive("mam").append(HOST, "alice", "<m/>", 1.0)
        self.assertEqual((yield self.storage.archive("mam").count(HOST, "alice")), 1)

    def test_bad_store_name(self):
        """A store name must be a non-empty str."""
        self.assertRaises(ValueError, self.storage.keyvalue, "")
        self.assertRaises(TypeError, self.storage.archive, None)

    @defer.inlineCallbacks
    def test_close_waits_and_is_idempotent(self):
        """Calls made before close() complete; close() may be called twice."""
        pending = self.storage.keyvalue("k").set(HOST, "alice", "k", "v")
        yield defer.gatherResults([self.storage.close(), self.storage.close()])
        yield pending
        yield self.storage.close()

    @defer.inlineCallbacks
    def test_calls_after_close_fail(self):
        """Every store call after close() fails with StorageError."""
        kv = self.storage.keyvalue("k")
        archive = self.storage.archive("a")
        yield self.storage.close()
        for d in [self.storage.accounts.exists(HOST, "alice"), kv.get(HOST, "alice", "k"),
                  archive.count(HOST, "alice"), self.storage.delete_user(HOST, "alice")]:
            yield self.assertFailure(d, StorageError)

    @defer.inlineCallbacks
    def fill_user(self, host, username, account=True):
        """An account (unless not C{account}) with documents and items in two stores each."""
        if account:
            yield self.storage.accounts.create(host, username, {"sha1": creds(b"1")})
        for name in ("roster", "vcard"):
            yield self.storage.keyvalue(name).set(host, username, "k", name)
            yield self.storage.keyvalue(name).set(host, username, "k2", [1])
        for name in ("offline", "mam"):
            yield self.storage.archive(name).append(host, username, f"<{name}/>", 1.0)

    @defer.inlineCallbacks
    def user_data(self, host, username):
        """What the stores of fill_user() hold for the user: (exists, keys..., counts...)."""
        data = [(yield self.storage.accounts.exists(host, username)),
                (yield self.storage.accounts.get_credentials(host, username, "sha1"))]
        for name in ("roster", "vcard"):
            data.append((yield self.storage.keyvalue(name).keys(host, username)))
        for name in ("offline", "mam"):
            data.append((yield self.storage.archive(name).count(host, username)))
        return data

    @defer.inlineCallbacks
    def test_delete_user(self):
        """delete_user() removes the account, its credentials and all its data, only its."""
        yield self.fill_user(HOST, "alice")
        yield self.fill_user(HOST, "bob")
        yield self.fill_user(OTHER_HOST, "alice")
        full = [True, creds(b"1"), ["k", "k2"], ["k", "k2"], 1, 1]
        self.assertIs((yield self.storage.delete_user(HOST, "alice")), True)
        self.assertEqual((yield self.user_data(HOST, "alice")), [False, None, [], [], 0, 0])
        self.assertEqual((yield self.user_data(HOST, "bob")), full)
        self.assertEqual((yield self.user_data(OTHER_HOST, "alice")), full)
        self.assertEqual((yield self.storage.accounts.list_users(HOST)), ["bob"])
        # The name is free again, with nothing left over from the old account.
        yield self.storage.accounts.create(HOST, "alice", {"sha256": creds(b"2")})
        self.assertEqual((yield self.user_data(HOST, "alice")), [True, None, [], [], 0, 0])

    @defer.inlineCallbacks
    def test_delete_user_missing(self):
        """delete_user() without an account fires False, and still deletes data stored
        under that name (left by a writer that raced the deletion, say)."""
        yield self.fill_user(HOST, "ghost", account=False)
        yield self.fill_user(HOST, "bob")
        self.assertIs((yield self.storage.delete_user(HOST, "ghost")), False)
        self.assertEqual((yield self.user_data(HOST, "ghost")), [False, None, [], [], 0, 0])
        self.assertEqual((yield self.user_data(HOST, "bob")),
                         [True, creds(b"1"), ["k", "k2"], ["k", "k2"], 1, 1])
        self.assertIs((yield self.storage.delete_user(HOST, "nobody")), False)


class AccountStoreContract(_StorageFixture):
    """IAccountStore: accounts keyed by (host, username) with SCRAM credentials only."""

    def setUp(self):
        d = super().setUp()
        d.addCallback(lambda _: setattr(self, "accounts", self.storage.accounts))
        return d

    def test_interface(self):
        """The account store provides IAccountStore."""
        verifyObject(IAccountStore, self.accounts)

    @defer.inlineCallbacks
    def test_create(self):
        """A created account exists and returns its credentials per hash, byte for byte."""
        credentials = {"sha1": creds(b"1"), "sha256": creds(b"256", 10000)}
        self.assertIsNone((yield self.accounts.create(HOST, "alice", credentials)))
        self.assertTrue((yield self.accounts.exists(HOST, "alice")))
        self.assertEqual((yield self.accounts.get_credentials(HOST, "alice", "sha1")),
                         creds(b"1"))
        got = yield self.accounts.get_credentials(HOST, "alice", "sha256")
        self.assertEqual(got, creds(b"256", 10000))
        self.assertIsInstance(got, ScramCredentials)

    @defer.inlineCallbacks
    def test_derived_credentials(self):
        """Credentials from derive_all() round-trip for every hash."""
        credentials = derive_all("correct horse", 4096)
        yield self.accounts.create(HOST, "alice", credentials)
        for hash_name, expected in credentials.items():
            self.assertEqual(
                (yield self.accounts.get_credentials(HOST, "alice", hash_name)), expected)

    @defer.inlineCallbacks
    def test_missing_credentials(self):
        """An unknown user or hash gives None."""
        yield self.accounts.create(HOST, "alice", {"sha1": creds(b"1")})
        self.assertIsNone((yield self.accounts.get_credentials(HOST, "alice", "sha512")))
        self.assertIsNone((yield self.accounts.get_credentials(HOST, "bob", "sha1")))
        self.assertIsNone((yield self.accounts.get_credentials(OTHER_HOST, "alice", "sha1")))

    @defer.inlineCallbacks
    def test_create_existing(self):
        """Creating an existing account fails with AccountExists and changes nothing."""
        yield self.accounts.create(HOST, "alice", {"sha1": creds(b"1")})
        yield self.assertFailure(
            self.accounts.create(HOST, "alice", {"sha1": creds(b"2")}), AccountExists)
        self.assertEqual((yield self.accounts.get_credentials(HOST, "alice", "sha1")),
                         creds(b"1"))

    @defer.inlineCallbacks
    def test_hosts_are_separate(self):
        """The same username on two hosts is two accounts."""
        yield self.accounts.create(HOST, "alice", {"sha1": creds(b"1")})
        self.assertFalse((yield self.accounts.exists(OTHER_HOST, "alice")))
        yield self.accounts.create(OTHER_HOST, "alice", {"sha1": creds(b"2")})
        self.assertEqual((yield self.accounts.get_credentials(OTHER_HOST, "alice", "sha1")),
                         creds(b"2"))
        self.assertEqual((yield self.accounts.get_credentials(HOST, "alice", "sha1")),
                         creds(b"1"))

    @defer.inlineCallbacks
    def test_set_credentials_replaces_all(self):
        """set_credentials() replaces every hash: hashes not given are gone."""
        yield self.accounts.create(HOST, "alice", {"sha1": creds(b"1"), "sha256": creds(b"2")})
        yield self.accounts.set_credentials(HOST, "alice", {"sha512": creds(b"3")})
        self.assertIsNone((yield self.accounts.get_credentials(HOST, "alice", "sha1")))
        self.assertIsNone((yield self.accounts.get_credentials(HOST, "alice", "sha256")))
        self.assertEqual((yield self.accounts.get_credentials(HOST, "alice", "sha512")),
                         creds(b"3"))

    @defer.inlineCallbacks
    def test_set_credentials_missing(self):
        """set_credentials() on an unknown account fails with NoSuchAccount."""
        yield self.assertFailure(
            self.accounts.set_credentials(HOST, "nobody", {"sha1": creds(b"1")}),
            NoSuchAccount)
        self.assertFalse((yield self.accounts.exists(HOST, "nobody")))

    @defer.inlineCallbacks
    def test_delete(self):
        """A deleted account and its credentials are gone; the name can be reused."""
        yield self.accounts.create(HOST, "alice", {"sha1": creds(b"1")})
        yield self.accounts.delete(HOST, "alice")
        self.assertFalse((yield self.accounts.exists(HOST, "alice")))
        self.assertIsNone((yield self.accounts.get_credentials(HOST, "alice", "sha1")))
        yield self.accounts.create(HOST, "alice", {"sha256": creds(b"2")})
        self.assertIsNone((yield self.accounts.get_credentials(HOST, "alice", "sha1")))

    @defer.inlineCallbacks
    def test_delete_missing(self):
        """Deleting an unknown account fails with NoSuchAccount."""
        yield self.assertFailure(self.accounts.delete(HOST, "nobody"), NoSuchAccount)

    @defer.inlineCallbacks
    def test_list_users(self):
        """list_users() is the sorted usernames of one host only."""
        for host, user in [(HOST, "carol"), (HOST, "alice"), (OTHER_HOST, "bob"),
                           (HOST, "\u00e9mile"), (HOST, "bob")]:
            yield self.accounts.create(host, user, {"sha1": creds(b"x")})
        self.assertEqual((yield self.accounts.list_users(HOST)),
                         ["alice", "bob", "carol", "\u00e9mile"])
        self.assertEqual((yield self.accounts.list_users(OTHER_HOST)), ["bob"])
        self.assertEqual((yield self.accounts.list_users("empty.example")), [])

    @defer.inlineCallbacks
    def test_not_credentials(self):
        """Anything but ScramCredentials values (a password, say) is refused."""
        yield self.assertFailure(
            self.accounts.create(HOST, "alice", {"sha1": "hunter2"}), TypeError)
        yield self.assertFailure(self.accounts.create(HOST, "alice", "hunter2"), TypeError)
        self.assertFalse((yield self.accounts.exists(HOST, "alice")))


class KeyValueStoreContract(_StorageFixture):
    """IKeyValueStore: JSON documents per (host, username, key), per store name."""

    def setUp(self):
        d = super().setUp()
        d.addCallback(lambda _: setattr(self, "kv", self.storage.keyvalue("roster")))
        return d

    def test_interface(self):
        """The key-value store provides IKeyValueStore."""
        verifyObject(IKeyValueStore, self.kv)

    @defer.inlineCallbacks
    def test_missing(self):
        """An unknown key gives None and an unknown user no keys."""
        self.assertIsNone((yield self.kv.get(HOST, "alice", "nothing")))
        self.assertEqual((yield self.kv.keys(HOST, "alice")), [])

    @defer.inlineCallbacks
    def test_round_trip(self):
        """A JSON document comes back equal, including Unicode and nested values."""
        value = {"items": [{"jid": "b\u00f6b@example.org", "groups": ["Friends"],
                            "subscription": "both", "approved": True, "ask": None}],
                 "version": 3, "ratio": 0.5, "emoji": "\U0001f600"}
        yield self.kv.set(HOST, "alice", "roster", value)
        self.assertEqual((yield self.kv.get(HOST, "alice", "roster")), value)

    @defer.inlineCallbacks
    def test_falsy_values(self):
        """Falsy values other than None are stored, not mistaken for deletion."""
        for key, value in [("zero", 0), ("empty", ""), ("list", []), ("dict", {}),
                           ("false", False)]:
            yield self.kv.set(HOST, "alice", key, value)
            self.assertEqual((yield self.kv.get(HOST, "alice", key)), value)
        self.assertEqual(len((yield self.kv.keys(HOST, "alice"))), 5)

    @defer.inlineCallbacks
    def test_json_semantics(self):
        """Values go through JSON: tuples come back as lists."""
        yield self.kv.set(HOST, "alice", "t", {"pair": (1, 2)})
        self.assertEqual((yield self.kv.get(HOST, "alice", "t")), {"pair": [1, 2]})

    @defer.inlineCallbacks
    def test_copies(self):
        """Mutating a value after set() or after get() does not change the stored one."""
        value = {"a": [1]}
        yield self.kv.set(HOST, "alice", "k", value)
        value["a"].append(2)
        got = yield self.kv.get(HOST, "alice", "k")
        self.assertEqual(got, {"a": [1]})
        got["a"].append(3)
        self.assertEqual((yield self.kv.get(HOST, "alice", "k")), {"a": [1]})

    @defer.inlineCallbacks
    def test_overwrite_and_delete(self):
        """set() overwrites; set(None) deletes the key."""
        yield self.kv.set(HOST, "alice", "k", 1)
        yield self.kv.set(HOST, "alice", "k", 2)
        self.assertEqual((yield self.kv.get(HOST, "alice", "k")), 2)
        yield self.kv.set(HOST, "alice", "k", None)
        self.assertIsNone((yield self.kv.get(HOST, "alice", "k")))
        self.assertEqual((yield self.kv.keys(HOST, "alice")), [])
        yield self.kv.set(HOST, "alice", "never-set", None)

    @defer.inlineCallbacks
    def test_keys_sorted(self):
        """keys() lists the user's keys sorted."""
        for key in ["vcard", "bookmarks", "\u00e9", "avatar"]:
            yield self.kv.set(HOST, "alice", key, key)
        self.assertEqual((yield self.kv.keys(HOST, "alice")),
                         ["avatar", "bookmarks", "vcard", "\u00e9"])

    @defer.inlineCallbacks
    def test_scoping(self):
        """Users, hosts and store names are separate namespaces."""
        vcard = self.storage.keyvalue("vcard")
        yield self.kv.set(HOST, "alice", "k", "roster")
        yield vcard.set(HOST, "alice", "k", "vcard")
        yield self.kv.set(HOST, "bob", "k", "bob")
        yield self.kv.set(OTHER_HOST, "alice", "k", "other")
        self.assertEqual((yield self.kv.get(HOST, "alice", "k")), "roster")
        self.assertEqual((yield vcard.get(HOST, "alice", "k")), "vcard")
        self.assertEqual((yield self.kv.get(HOST, "bob", "k")), "bob")
        self.assertEqual((yield self.kv.get(OTHER_HOST, "alice", "k")), "other")

    @defer.inlineCallbacks
    def test_delete_user(self):
        """delete_user() removes every key of that user in that store only."""
        vcard = self.storage.keyvalue("vcard")
        yield self.kv.set(HOST, "alice", "a", 1)
        yield self.kv.set(HOST, "alice", "b", 2)
        yield self.kv.set(HOST, "bob", "a", 3)
        yield vcard.set(HOST, "alice", "a", 4)
        yield self.kv.delete_user(HOST, "alice")
        self.assertEqual((yield self.kv.keys(HOST, "alice")), [])
        self.assertEqual((yield self.kv.get(HOST, "bob", "a")), 3)
        self.assertEqual((yield vcard.get(HOST, "alice", "a")), 4)
        yield self.kv.delete_user(HOST, "nobody")

    @defer.inlineCallbacks
    def test_not_json(self):
        """A value JSON cannot hold fails the Deferred and stores nothing."""
        yield self.assertFailure(self.kv.set(HOST, "alice", "k", {1, 2}), TypeError)
        yield self.assertFailure(self.kv.set(HOST, "alice", "k", float("nan")), ValueError)
        yield self.assertFailure(self.kv.set(HOST, "alice", 7, "v"), TypeError)
        self.assertEqual((yield self.kv.keys(HOST, "alice")), [])


class ArchiveStoreContract(_StorageFixture):
    """IArchiveStore: time-ordered items with string ids and RSM-style paging."""

    def setUp(self):
        d = super().setUp()
        d.addCallback(lambda _: setattr(self, "archive", self.storage.archive("mam")))
        return d

    @defer.inlineCallbacks
    def fill(self, whens, user="alice", with_jid=None):
        """Append one item per time in C{whens}; return {item: id}."""
        ids = {}
        for n, when in enumerate(whens):
            item = f"<m n='{n}'/>"
            ids[item] = yield self.archive.append(HOST, user, item, when, with_jid)
        return ids

    def test_interface(self):
        """The archive store provides IArchiveStore."""
        verifyObject(IArchiveStore, self.archive)

    @defer.inlineCallbacks
    def test_ids_sort_in_insertion_order(self):
        """Ids are distinct strings that sort, as strings, in insertion order."""
        ids = []
        for n in range(12):
            ids.append((yield self.archive.append(HOST, "alice", str(n), 100.0)))
            ids.append((yield self.archive.append(HOST, "bob", str(n), 100.0)))
        self.assertTrue(all(isinstance(i, str) for i in ids))
        self.assertEqual(sorted(ids), ids)
        self.assertEqual(len(set(ids)), len(ids))

    @defer.inlineCallbacks
    def test_concurrent_appends(self):
        """Appends issued together all get distinct ids in the order they were issued."""
        ids = yield defer.gatherResults([
            self.archive.append(HOST, "alice", str(n), 1.0) for n in range(50)])
        self.assertEqual(len(set(ids)), 50)
        self.assertEqual(sorted(ids), ids)
        rows = yield self.archive.query(HOST, "alice")
        self.assertEqual([row[3] for row in rows], [str(n) for n in range(50)])

    @defer.inlineCallbacks
    def test_query_all(self):
        """query() returns (id, when, with_jid, item) tuples in time order."""
        a = yield self.archive.append(HOST, "alice", "<b/>", 20, "bob@example.org")
        b = yield self.archive.append(HOST, "alice", "<a/>", 10.5)
        rows = yield self.archive.query(HOST, "alice")
        self.assertEqual([tuple(row) for row in rows],
                         [(b, 10.5, None, "<a/>"), (a, 20.0, "bob@example.org", "<b/>")])
        self.assertIsInstance(rows[1][1], float)

    @defer.inlineCallbacks
    def test_same_time_in_insertion_order(self):
        """Items with the same time come back in insertion order."""
        ids = yield self.fill([5, 5, 5])
        self.assertEqual([row[0] for row in (yield self.archive.query(HOST, "alice"))],
                         list(ids.values()))

    @defer.inlineCallbacks
    def test_time_bounds_inclusive(self):
        """start and end are inclusive bounds on the item time."""
        yield self.fill([1, 2, 3, 4, 5])
        rows = yield self.archive.query(HOST, "alice", start=2, end=4)
        self.assertEqual([row[1] for row in rows], [2.0, 3.0, 4.0])
        rows = yield self.archive.query(HOST, "alice", start=4.5)
        self.assertEqual([row[1] for row in rows], [5.0])

    @defer.inlineCallbacks
    def test_with_jid(self):
        """with_jid selects the items stored with exactly that JID."""
        yield self.archive.append(HOST, "alice", "1", 1, "bob@example.org")
        yield self.archive.append(HOST, "alice", "2", 2, "carol@example.org")
        yield self.archive.append(HOST, "alice", "3", 3)
        yield self.archive.append(HOST, "alice", "4", 4, "bob@example.org/phone")
        rows = yield self.archive.query(HOST, "alice", with_jid="bob@example.org")
        self.assertEqual([row[3] for row in rows], ["1"])

    @defer.inlineCallbacks
    def test_after_and_before(self):
        """after and before are exclusive, positioned in time order, not id order."""
        ids = yield self.fill([30, 10, 20, 40])
        order = [ids["<m n='1'/>"], ids["<m n='2'/>"], ids["<m n='0'/>"], ids["<m n='3'/>"]]
        rows = yield self.archive.query(HOST, "alice", after=order[0])
        self.assertEqual([row[0] for row in rows], order[1:])
        rows = yield self.archive.query(HOST, "alice", before=order[3])
        self.assertEqual([row[0] for row in rows], order[:3])
        rows = yield self.archive.query(HOST, "alice", after=order[0], before=order[3])
        self.assertEqual([row[0] for row in rows], order[1:3])

    @defer.inlineCallbacks
    def test_limit(self):
        """limit keeps the first matches, or the last ones when paging with before."""
        ids = list((yield self.fill(range(10))).values())
        rows = yield self.archive.query(HOST, "alice", limit=3)
        self.assertEqual([row[0] for row in rows], ids[:3])
        rows = yield self.archive.query(HOST, "alice", before=ids[8], limit=3)
        self.assertEqual([row[0] for row in rows], ids[5:8])
        rows = yield self.archive.query(HOST, "alice", before="", limit=4)
        self.assertEqual([row[0] for row in rows], ids[6:])
        rows = yield self.archive.query(HOST, "alice", before="")
        self.assertEqual([row[0] for row in rows], ids)
        self.assertEqual((yield self.archive.query(HOST, "alice", limit=0)), [])
        self.assertEqual(len((yield self.archive.query(HOST, "alice", limit=50))), 10)

    @defer.inlineCallbacks
    def test_paging(self):
        """Paging forward with after and limit yields every item exactly once."""
        ids = list((yield self.fill([3, 1, 2, 2, 5, 4, 0])).values())
        seen, after = [], None
        while True:
            page = yield self.archive.query(HOST, "alice", after=after, limit=2)
            if not page:
                break
            seen.extend(row[0] for row in page)
            after = page[-1][0]
        self.assertEqual(sorted(seen), sorted(ids))
        self.assertEqual(len(seen), len(ids))

    @defer.inlineCallbacks
    def test_unknown_position(self):
        """An after/before id not in the user's archive fails with ItemNotFound."""
        ids = yield self.fill([1, 2])
        bobs = yield self.archive.append(HOST, "bob", "x", 1)
        for bad in ["nonsense", "1", bobs, ""]:
            yield self.assertFailure(self.archive.query(HOST, "alice", after=bad),
                                     ItemNotFound)
        yield self.assertFailure(self.archive.query(HOST, "alice", before=bobs), ItemNotFound)
        yield self.assertFailure(
            self.storage.archive("other").query(HOST, "alice", after=list(ids.values())[0]),
            ItemNotFound)

    @defer.inlineCallbacks
    def test_bad_limit(self):
        """A negative limit is refused."""
        yield self.assertFailure(self.archive.query(HOST, "alice", limit=-1), ValueError)

    @defer.inlineCallbacks
    def test_count(self):
        """count() counts the items of one user in one store."""
        yield self.fill([1, 2, 3])
        yield self.fill([1], user="bob")
        yield self.storage.archive("offline").append(HOST, "alice", "x", 1)
        self.assertEqual((yield self.archive.count(HOST, "alice")), 3)
        self.assertEqual((yield self.archive.count(HOST, "bob")), 1)
        self.assertEqual((yield self.archive.count(HOST, "nobody")), 0)

    @defer.inlineCallbacks
    def test_delete_ids(self):
        """delete(ids) removes those items of that user only, ignoring unknown ids."""
        ids = list((yield self.fill([1, 2, 3])).values())
        bobs = yield self.archive.append(HOST, "bob", "x", 1)
        yield self.archive.delete(HOST, "alice", [ids[0], ids[2], bobs, "junk"])
        self.assertEqual([row[0] for row in (yield self.archive.query(HOST, "alice"))],
                         [ids[1]])
        self.assertEqual((yield self.archive.count(HOST, "bob")), 1)

    @defer.inlineCallbacks
    def test_delete_all(self):
        """delete() without ids empties the user's archive in that store only."""
        yield self.fill([1, 2])
        yield self.fill([1], user="bob")
        offline = self.storage.archive("offline")
        yield offline.append(HOST, "alice", "x", 1)
        yield self.archive.delete(HOST, "alice")
        self.assertEqual((yield self.archive.count(HOST, "alice")), 0)
        self.assertEqual((yield self.archive.count(HOST, "bob")), 1)
        self.assertEqual((yield offline.count(HOST, "alice")), 1)

    @defer.inlineCallbacks
    def test_ids_not_reused(self):
        """Deleting the newest item does not let its id be given out again."""
        first = yield self.archive.append(HOST, "alice", "1", 1)
        yield self.archive.delete(HOST, "alice", [first])
        second = yield self.archive.append(HOST, "alice", "2", 2)
        self.assertGreater(second, first)

    @defer.inlineCallbacks
    def test_scoping(self):
        """Stores, users and hosts are separate archives."""
        yield self.archive.append(HOST, "alice", "mam", 1)
        yield self.storage.archive("offline").append(HOST, "alice", "offline", 1)
        yield self.archive.append(OTHER_HOST, "alice", "other", 1)
        self.assertEqual([row[3] for row in (yield self.archive.query(HOST, "alice"))],
                         ["mam"])
        self.assertEqual([row[3] for row in (yield self.archive.query(OTHER_HOST, "alice"))],
                         ["other"])
        self.assertEqual((yield self.archive.query(HOST, "bob")), [])

    @defer.inlineCallbacks
    def test_bad_arguments(self):
        """A non-str item or a non-numeric time is refused and nothing is stored."""
        yield self.assertFailure(self.archive.append(HOST, "alice", b"<m/>", 1), TypeError)
        yield self.assertFailure(self.archive.append(HOST, "alice", "<m/>", "now"), TypeError)
        yield self.assertFailure(self.archive.append(HOST, "alice", "<m/>", float("inf")),
                                 ValueError)
        self.assertEqual((yield self.archive.count(HOST, "alice")), 0)


class BulkImportContract(_StorageFixture):
    """IBulkImport: many records in one transaction, all or nothing."""

    def records(self, users=3, items=2, host=HOST):
        """An account, a document in two stores and C{items} archive items per user."""
        for n in range(users):
            username = f"user{n}"
            yield AccountRecord(host, username, {"sha1": creds(b"%d" % n)})
            yield DocumentRecord("roster", host, username, "roster", {"n": n, "l": [1]})
            yield DocumentRecord("vcard", host, username, "vcard", f"<vCard n='{n}'/>")
            for i in range(items):
                yield ArchiveRecord("offline", host, username, f"<m n='{n}.{i}'/>",
                                    1000.0 - i, f"contact{i}@example.net")

    @defer.inlineCallbacks
    def assert_untouched(self, host=HOST):
        """Nothing of records() is stored: no accounts but the test's own, no data."""
        for username in ("user0", "user1", "user2"):
            self.assertIs((yield self.storage.accounts.exists(host, username)), False)
            self.assertEqual((yield self.storage.keyvalue("roster").keys(host, username)), [])
            self.assertEqual((yield self.storage.archive("offline").count(host, username)), 0)

    def test_interface(self):
        """The storage provides IBulkImport."""
        verifyObject(IBulkImport, self.storage)

    @defer.inlineCallbacks
    def test_import(self):
        """Accounts, documents and archive items land in the ordinary stores."""
        count = yield self.storage.bulk_import(self.records())
        self.assertEqual(count, 3 * 5)
        self.assertEqual((yield self.storage.accounts.list_users(HOST)),
                         ["user0", "user1", "user2"])
        self.assertEqual((yield self.storage.accounts.get_credentials(HOST, "user1", "sha1")),
                         creds(b"1"))
        self.assertEqual((yield self.storage.keyvalue("roster").get(HOST, "user2", "roster")),
                         {"n": 2, "l": [1]})
        self.assertEqual((yield self.storage.keyvalue("vcard").get(HOST, "user0", "vcard")),
                         "<vCard n='0'/>")
        rows = yield self.storage.archive("offline").query(HOST, "user1")
        self.assertEqual([(when, with_jid, item) for _, when, with_jid, item in rows],
                         [(999.0, "contact1@example.net", "<m n='1.1'/>"),
                          (1000.0, "contact0@example.net", "<m n='1.0'/>")])

    @defer.inlineCallbacks
    def test_archive_ids_in_order(self):
        """Imported items get ids after the existing ones, in the order given."""
        existing = yield self.storage.archive("offline").append(HOST, "user0", "<old/>", 5.0)
        yield self.storage.bulk_import(
            ArchiveRecord("offline", HOST, "user0", f"<m n='{n}'/>", 5.0) for n in range(3))
        rows = yield self.storage.archive("offline").query(HOST, "user0")
        self.assertEqual([item for _, _, _, item in rows],
                         ["<old/>", "<m n='0'/>", "<m n='1'/>", "<m n='2'/>"])
        ids = [row_id for row_id, _, _, _ in rows]
        self.assertEqual(ids[0], existing)
        self.assertEqual(ids, sorted(ids))

    @defer.inlineCallbacks
    def test_many_records(self):
        """An import larger than any batch a backend writes at once is applied whole."""
        count = yield self.storage.bulk_import(self.records(users=700, items=1))
        self.assertEqual(count, 700 * 4)
        self.assertEqual(len((yield self.storage.accounts.list_users(HOST))), 700)
        self.assertEqual((yield self.storage.archive("offline").count(HOST, "user699")), 1)

    @defer.inlineCallbacks
    def test_existing_account(self):
        """An account that exists fails the whole import with AccountExists."""
        yield self.storage.accounts.create(HOST, "user2", {"sha1": creds(b"x")})
        yield self.assertFailure(self.storage.bulk_import(self.records()), AccountExists)
        for username in ("user0", "user1"):
            self.assertIs((yield self.storage.accounts.exists(HOST, username)), False)
        self.assertEqual((yield self.storage.keyvalue("vcard").keys(HOST, "user2")), [])
        self.assertEqual((yield self.storage.accounts.get_credentials(HOST, "user2", "sha1")),
                         creds(b"x"))

    @defer.inlineCallbacks
    def test_duplicate_account(self):
        """The same account twice in the records fails the import, writing nothing."""
        records = [*self.records(users=1), AccountRecord(HOST, "user0", {})]
        yield self.assertFailure(self.storage.bulk_import(records), AccountExists)
        yield self.assert_untouched()

    @defer.inlineCallbacks
    def test_iterable_fails(self):
        """What the iterable raises, even after thousands of records, fails the import
        with that exception, and nothing is written."""
        class Broken(Exception):
            pass

        def records():
            yield from self.records(users=3)
            yield from self.records(users=1500, items=0, host=OTHER_HOST)
            raise Broken()

        yield self.assertFailure(self.storage.bulk_import(records()), Broken)
        yield self.assert_untouched()
        self.assertEqual((yield self.storage.accounts.list_users(OTHER_HOST)), [])

    @defer.inlineCallbacks
    def test_bad_records(self):
        """A record that is not one, or a bad field, fails the import; nothing is written."""
        bad = [object(),
               DocumentRecord("roster", HOST, "user0", "k", None),
               DocumentRecord("roster", HOST, "user0", "k", {1, 2}),
               DocumentRecord("", HOST, "user0", "k", 1),
               ArchiveRecord("offline", HOST, "user0", b"<bytes/>", 1.0),
               ArchiveRecord("offline", HOST, "user0", "<m/>", float("nan")),
               AccountRecord(HOST, "", {}),
               AccountRecord(HOST, "user0", {"sha1": "not credentials"})]
        for record in bad:
            d = self.storage.bulk_import([*self.records(), record])
            yield self.assertFailure(d, TypeError, ValueError)
            yield self.assert_untouched()

    @defer.inlineCallbacks
    def test_account_without_credentials(self):
        """An account may be imported without credentials: it exists, nobody can log in."""
        yield self.storage.bulk_import([AccountRecord(HOST, "user0", {})])
        self.assertIs((yield self.storage.accounts.exists(HOST, "user0")), True)
        self.assertIsNone((yield self.storage.accounts.get_credentials(HOST, "user0", "sha1")))

    @defer.inlineCallbacks
    def test_after_close(self):
        """bulk_import() after close() fails with StorageError."""
        yield self.storage.close()
        yield self.assertFailure(self.storage.bulk_import(self.records()), StorageError)
