"""
The IMessageArchive contract (XEP-0313 message archives), run on the memory and sqlite
backends; a PostgreSQL backend inherits MessageArchiveContract the same way.
"""
import os
import shutil
import sqlite3
import tempfile

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from jabberapp.interfaces import IMessageArchive
from jabberapp.storage import ItemNotFound
from jabberapp.storage.memory import MemoryStorage
from jabberapp.storage.messages import ArchivedMessage, ArchiveQuery, words
from jabberapp.storage.sqlite import open_sqlite

from .contract import HOST, OTHER_HOST, creds


def message(n, username="alice", when=None, with_jid="bob@example.net", resource="r",
            text=None, host=HOST):
    """The archived message number C{n} (id 'm<n>', stanza '<m n/>')."""
    return ArchivedMessage(host, username, f"m{n}", float(n if when is None else when),
                           with_jid, f"<message n='{n}'/>", resource,
                           f"body {n}" if text is None else text)


def ids(page):
    return [m.id for m in page.messages]


class MessageArchiveContract:
    """IMessageArchive: what every backend does."""

    def make_storage(self):
        raise NotImplementedError

    @defer.inlineCallbacks
    def setUp(self):
        self.storage = yield defer.maybeDeferred(self.make_storage)
        self.addCleanup(self.storage.close)
        for host, user in ((HOST, "alice"), (HOST, "bob"), (OTHER_HOST, "alice")):
            yield self.storage.accounts.create(host, user, {"sha256": creds(b"x")})
        self.archive = self.storage.message_archive()

    def fill(self, count, **kwargs):
        return self.archive.append([message(n, **kwargs) for n in range(1, count + 1)])

    def query(self, username="alice", **kwargs):
        return self.archive.query(HOST, username, ArchiveQuery(**kwargs))

    def test_interface(self):
        """The message archive provides IMessageArchive."""
        verifyObject(IMessageArchive, self.archive)

    @defer.inlineCallbacks
    def test_append_and_read_back(self):
        """Appended messages come back whole, in order, with complete set."""
        stored = yield self.fill(3)
        self.assertEqual(stored, 3)
        page = yield self.query()
        self.assertEqual(list(page.messages), [message(n) for n in (1, 2, 3)])
        self.assertTrue(page.complete)

    @defer.inlineCallbacks
    def test_order_is_append_order(self):
        """The archive order is the order appended, not the timestamps."""
        yield self.archive.append([message(1, when=50), message(2, when=10)])
        self.assertEqual(ids((yield self.query())), ["m1", "m2"])

    @defer.inlineCallbacks
    def test_unknown_account_skipped(self):
        """Messages for an account that does not exist are not stored."""
        stored = yield self.archive.append([message(1, username="nobody"), message(2)])
        self.assertEqual(stored, 1)
        self.assertEqual(ids((yield self.query(username="nobody"))), [])

    @defer.inlineCallbacks
    def test_duplicate_id_skipped(self):
        """An id the account's archive holds already is not stored twice."""
        yield self.fill(1)
        stored = yield self.archive.append([message(1, text="again"), message(2)])
        self.assertEqual(stored, 1)
        self.assertEqual([m.text for m in (yield self.query()).messages], ["body 1", "body 2"])

    @defer.inlineCallbacks
    def test_accounts_apart(self):
        """Each account (and host) sees only its own archive."""
        yield self.fill(2)
        yield self.archive.append([message(9, username="bob"),
                                   message(8, host=OTHER_HOST)])
        self.assertEqual(ids((yield self.query())), ["m1", "m2"])
        self.assertEqual(ids((yield self.query(username="bob"))), ["m9"])

    @defer.inlineCallbacks
    def test_with_bare_and_full(self):
        """with_jid matches the bare JID; with_resource narrows it to one resource."""
        yield self.archive.append([message(1), message(2, with_jid="carol@example.com"),
                                   message(3, resource="other"), message(4, resource=None)])
        self.assertEqual(ids((yield self.query(with_jid="bob@example.net"))),
                         ["m1", "m3", "m4"])
        self.assertEqual(ids((yield self.query(with_jid="bob@example.net",
                                               with_resource="other"))), ["m3"])

    @defer.inlineCallbacks
    def test_time_bounds_inclusive(self):
        """start and end are inclusive."""
        yield self.fill(5)
        self.assertEqual(ids((yield self.query(start=2, end=4))), ["m2", "m3", "m4"])

    @defer.inlineCallbacks
    def test_id_bounds_exclusive(self):
        """after_id and before_id are exclusive positions."""
        yield self.fill(5)
        self.assertEqual(ids((yield self.query(after_id="m1", before_id="m4"))),
                         ["m2", "m3"])

    @defer.inlineCallbacks
    def test_ids(self):
        """ids selects exactly those messages, in archive order."""
        yield self.fill(5)
        self.assertEqual(ids((yield self.query(ids=("m4", "m2")))), ["m2", "m4"])

    @defer.inlineCallbacks
    def test_unknown_ids_fail(self):
        """An id no message of the account has fails with ItemNotFound, wherever named."""
        yield self.fill(2)
        yield self.archive.append([message(7, username="bob")])
        for kwargs in ({"after_id": "m7"}, {"before_id": "zz"}, {"ids": ("m1", "m7")},
                       {"after": "m7"}, {"before": "m7"}):
            yield self.assertFailure(self.query(**kwargs), ItemNotFound)

    @defer.inlineCallbacks
    def test_full_text(self):
        """text finds messages holding every word, ignoring case and diacritics."""
        yield self.archive.append([
            message(1, text="Meet me at the Café tonight"),
            message(2, text="no coffee today"),
            message(3, text="cafe or coffee?"),
            message(4, text=None),
        ])
        self.assertEqual(ids((yield self.query(text="cafe"))), ["m1", "m3"])
        self.assertEqual(ids((yield self.query(text="COFFEE cafe"))), ["m3"])
        self.assertEqual(ids((yield self.query(text='"TONIGHT*'))), ["m1"])
        self.assertEqual(ids((yield self.query(text="nothing"))), [])

    @defer.inlineCallbacks
    def test_full_text_per_account(self):
        """A search finds only the account's own messages."""
        yield self.archive.append([message(1, text="secret"),
                                   message(2, username="bob", text="secret")])
        self.assertEqual(ids((yield self.query(username="bob", text="secret"))), ["m2"])

    @defer.inlineCallbacks
    def test_forward_paging(self):
        """limit pages forward; after continues; complete only on the last page."""
        yield self.fill(5)
        first = yield self.query(limit=2)
        self.assertEqual((ids(first), first.complete), (["m1", "m2"], False))
        second = yield self.query(limit=2, after="m2")
        self.assertEqual((ids(second), second.complete), (["m3", "m4"], False))
        last = yield self.query(limit=2, after="m4")
        self.assertEqual((ids(last), last.complete), (["m5"], True))

    @defer.inlineCallbacks
    def test_backward_paging(self):
        """before='' is the last page; before continues backwards; complete at the start."""
        yield self.fill(5)
        last = yield self.query(limit=2, before="")
        self.assertEqual((ids(last), last.complete), (["m4", "m5"], False))
        middle = yield self.query(limit=2, before="m4")
        self.assertEqual((ids(middle), middle.complete), (["m2", "m3"], False))
        first = yield self.query(limit=2, before="m2")
        self.assertEqual((ids(first), first.complete), (["m1"], True))

    @defer.inlineCallbacks
    def test_exact_page_is_complete(self):
        """A page that holds exactly the rest of the set is complete."""
        yield self.fill(2)
        self.assertTrue((yield self.query(limit=2)).complete)
        self.assertTrue((yield self.query(limit=2, before="")).complete)

    @defer.inlineCallbacks
    def test_paging_within_filters(self):
        """Paging positions apply within the filtered set."""
        yield self.archive.append([message(n, with_jid="carol@example.com" if n % 2 else
                                           "bob@example.net") for n in range(1, 9)])
        page = yield self.query(with_jid="bob@example.net", limit=2, after="m2")
        self.assertEqual(ids(page), ["m4", "m6"])
        page = yield self.query(with_jid="bob@example.net", limit=2, before="", count=True,
                                position=True)
        self.assertEqual((ids(page), page.count, page.first_index), (["m6", "m8"], 4, 2))

    @defer.inlineCallbacks
    def test_count_and_index(self):
        """count is the size of the filtered set; first_index the page's position in it."""
        yield self.fill(6)
        page = yield self.query(limit=2, after="m2", count=True, start=2, position=True)
        self.assertEqual((ids(page), page.count, page.first_index), (["m3", "m4"], 5, 1))
        page = yield self.query(limit=2, index=3, position=True)
        self.assertEqual((ids(page), page.first_index, page.complete), (["m4", "m5"], 3, False))
        empty = yield self.query(limit=2, text="nothing", count=True, position=True)
        self.assertEqual((ids(empty), empty.count, empty.first_index, empty.complete),
                         ([], 0, None, True))

    @defer.inlineCallbacks
    def test_count_without_position(self):
        """Without position asked, first_index is None."""
        yield self.fill(3)
        page = yield self.query(limit=2, count=True)
        self.assertEqual((page.count, page.first_index), (3, None))

    @defer.inlineCallbacks
    def test_zero_limit(self):
        """limit 0 returns no messages (a count-only request)."""
        yield self.fill(3)
        page = yield self.query(limit=0, count=True)
        self.assertEqual((ids(page), page.count, page.complete), ([], 3, False))

    @defer.inlineCallbacks
    def test_bounds(self):
        """bounds gives the first and last (id, when); None for an empty archive."""
        self.assertIsNone((yield self.archive.bounds(HOST, "alice")))
        yield self.fill(3)
        self.assertEqual((yield self.archive.bounds(HOST, "alice")),
                         (("m1", 1.0), ("m3", 3.0)))

    @defer.inlineCallbacks
    def test_keep_drops_oldest(self):
        """With keep, an account keeps only its newest messages."""
        yield self.fill(3)
        yield self.archive.append([message(4), message(5)], keep=3)
        self.assertEqual(ids((yield self.query())), ["m3", "m4", "m5"])
        yield self.archive.append([message(6, username="bob")], keep=3)
        self.assertEqual(ids((yield self.query())), ["m3", "m4", "m5"])

    @defer.inlineCallbacks
    def test_keep_and_search(self):
        """Messages dropped by keep are gone from the full-text index too."""
        yield self.archive.append([message(1, text="old words"), message(2)], keep=1)
        self.assertEqual(ids((yield self.query(text="old"))), [])

    @defer.inlineCallbacks
    def test_expire(self):
        """expire deletes the host's messages older than the time given."""
        yield self.fill(4)
        yield self.archive.append([message(1, host=OTHER_HOST)])
        deleted = yield self.archive.expire(HOST, 3)
        self.assertEqual(deleted, 2)
        self.assertEqual(ids((yield self.query())), ["m3", "m4"])
        self.assertEqual(ids((yield self.query(text="1"))), [])
        other = yield self.archive.query(OTHER_HOST, "alice", ArchiveQuery())
        self.assertEqual(ids(other), ["m1"])

    @defer.inlineCallbacks
    def test_purge(self):
        """purge deletes the account's messages and preferences only."""
        yield self.fill(2)
        yield self.archive.append([message(3, username="bob")])
        yield self.archive.set_prefs(HOST, "alice", {"default": "never"})
        yield self.archive.purge(HOST, "alice")
        self.assertEqual(ids((yield self.query())), [])
        self.assertEqual(ids((yield self.query(username="bob"))), ["m3"])
        self.assertEqual((yield self.archive.all_prefs(HOST)), {})

    @defer.inlineCallbacks
    def test_delete_user(self):
        """IStorage.delete_user deletes the account's archive and preferences."""
        yield self.fill(2)
        yield self.archive.set_prefs(HOST, "alice", {"default": "never"})
        yield self.storage.delete_user(HOST, "alice")
        self.assertEqual(ids((yield self.query())), [])
        self.assertEqual((yield self.archive.all_prefs(HOST)), {})

    @defer.inlineCallbacks
    def test_prefs(self):
        """Preferences are stored per account and host; None deletes them."""
        yield self.archive.set_prefs(HOST, "alice", {"default": "roster", "never": ["x@y"]})
        yield self.archive.set_prefs(HOST, "bob", {"default": "never"})
        yield self.archive.set_prefs(OTHER_HOST, "alice", {"default": "always"})
        self.assertEqual((yield self.archive.all_prefs(HOST)),
                         {"alice": {"default": "roster", "never": ["x@y"]},
                          "bob": {"default": "never"}})
        yield self.archive.set_prefs(HOST, "bob", None)
        self.assertEqual(set((yield self.archive.all_prefs(HOST))), {"alice"})

    @defer.inlineCallbacks
    def test_bad_messages(self):
        """append refuses what is not a well-formed ArchivedMessage, storing nothing."""
        yield self.assertFailure(self.archive.append(["<m/>"]), TypeError)
        yield self.assertFailure(self.archive.append([message(1, when=float("nan"))]),
                                 ValueError)
        yield self.assertFailure(self.archive.append([message(1)], keep=0), ValueError)
        self.assertEqual(ids((yield self.query())), [])

    @defer.inlineCallbacks
    def test_bad_batch_stores_nothing(self):
        """A batch with one malformed message stores none of it."""
        bad = ArchivedMessage(HOST, "alice", "m2", 2.0, "b@x", None)    # no stanza
        yield self.assertFailure(self.archive.append([message(1), bad]), TypeError)
        self.assertEqual(ids((yield self.query())), [])


class MemoryMessageArchiveTests(MessageArchiveContract, TestCase):
    """IMessageArchive contract for the memory backend."""

    def make_storage(self):
        return MemoryStorage()


class SQLiteMessageArchiveTests(MessageArchiveContract, TestCase):
    """IMessageArchive contract for the sqlite backend, and what only it can show."""

    def make_storage(self):
        directory = tempfile.mkdtemp(prefix="jabberapp-mam-")
        self.addCleanup(shutil.rmtree, directory)
        self.path = os.path.join(directory, "db.sqlite")
        return open_sqlite(self.path, reactor)

    @defer.inlineCallbacks
    def test_indexes_used(self):
        """The last-page and 'with' queries read the per-account indexes, not the table."""
        yield self.fill(3)
        with sqlite3.connect(self.path) as db:
            plans = [" ".join(row[3] for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM mam_message WHERE host = ? AND "
                f"username = ? {extra} ORDER BY useq DESC LIMIT 10", args))
                for extra, args in (("", (HOST, "alice")),
                                    ("AND with_jid = ?", (HOST, "alice", "b@x")))]
        self.assertIn("mam_by_user", plans[0])
        self.assertIn("mam_by_with", plans[1])
        for plan in plans:
            self.assertNotIn("TEMP B-TREE", plan)


class WordsTests(TestCase):
    def test_words(self):
        """words() cuts and folds as FTS5's unicode61 tokenizer does."""
        self.assertEqual(words("Héllo, WORLD_x 42!"), ["hello", "world", "x", "42"])
