"""
IMessageArchive in memory, for the ``memory`` backend: lists per account, every call an
already-fired Deferred. It follows the same rules as the sqlite one (the contract tests in
tests/storage/test_archive.py run on both).
"""
from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from jabberapp.interfaces import IMessageArchive
from jabberapp.storage import ItemNotFound, StorageError, check_name, encode_value, decode_value
from jabberapp.storage.messages import ArchivePage, ArchiveQuery, check_message, matches_text

__all__ = ["MemoryMessageArchive", "select_page"]


def select_page(rows: list, position_of, query: ArchiveQuery) -> ArchivePage:
    """
    The page of C{rows} (the account's (seq, ArchivedMessage) in archive order) that
    C{query} selects; C{position_of(id)} is the seq of an id of the account's archive
    (ItemNotFound when none). Shared by the memory backend and the tests.
    """
    low = position_of(query.after_id) if query.after_id is not None else None
    high = position_of(query.before_id) if query.before_id is not None else None
    wanted_ids = None
    if query.ids is not None:
        for item_id in query.ids:
            position_of(item_id)
        wanted_ids = set(query.ids)
    wanted_words = query.search_words()
    matched = [
        (seq, m) for seq, m in rows
        if (query.with_jid is None or m.with_jid == query.with_jid)
        and (query.with_resource is None or m.with_resource == query.with_resource)
        and (query.start is None or m.when >= query.start)
        and (query.end is None or m.when <= query.end)
        and (low is None or seq > low) and (high is None or seq < high)
        and (wanted_ids is None or m.id in wanted_ids)
        and matches_text(m.text, wanted_words)
    ]
    page_low = position_of(query.after) if query.after is not None else None
    page_high = position_of(query.before) if query.before else None
    window = [(seq, m) for seq, m in matched
              if (page_low is None or seq > page_low) and (page_high is None or seq < page_high)]
    if query.index is not None:
        window = window[query.index:]
    if query.backwards:
        page = window[max(len(window) - query.limit, 0):]
    else:
        page = window[:query.limit]
    complete = len(page) == len(window)
    count = first_index = None
    if query.count:
        count = len(matched)
    if query.position:
        if page:
            first_seq = page[0][0]
            first_index = sum(1 for seq, _ in matched if seq < first_seq)
    return ArchivePage(tuple(m for _, m in page), complete, count, first_index)


@implementer(IMessageArchive)
class MemoryMessageArchive:
    """IMessageArchive over dicts; C{storage} is the MemoryStorage (closed, accounts)."""

    def __init__(self, storage) -> None:
        self._storage = storage
        self._seq = 0
        self._users: dict[tuple[str, str], list] = {}    # (host, user) -> [(seq, message)]
        self._ids: dict[tuple[str, str], set] = {}       # (host, user) -> ids ever stored
        self._prefs: dict[tuple[str, str], str] = {}     # (host, user) -> JSON text

    def _check_open(self):
        if self._storage.closed:
            raise StorageError("the storage is closed")

    def append(self, messages, keep=None):
        """See IMessageArchive.append."""
        try:
            self._check_open()
            batch = [check_message(m) for m in messages]
            if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int)
                                     or keep < 1):
                raise ValueError("keep must be None or an int >= 1")
        except Exception:
            return defer.fail()
        accounts = self._storage.accounts._accounts
        stored = 0
        touched = set()
        for message in batch:
            user = (message.host, message.username)
            if user not in accounts:
                continue
            rows = self._users.setdefault(user, [])
            ids = self._ids.setdefault(user, set())
            if message.id in ids:
                continue
            ids.add(message.id)
            self._seq += 1
            rows.append((self._seq, message))
            touched.add(user)
            stored += 1
        if keep is not None:
            for user in touched:
                rows = self._users[user]
                dropped = rows[:max(len(rows) - keep, 0)]
                del rows[:len(dropped)]
                self._ids[user].difference_update(m.id for _, m in dropped)
        return defer.succeed(stored)

    def query(self, host, username, query):
        """See IMessageArchive.query."""
        try:
            self._check_open()
            if not isinstance(query, ArchiveQuery):
                raise TypeError("query must be an ArchiveQuery")
            rows = self._users.get((host, username), [])
            positions = {m.id: seq for seq, m in rows}

            def position_of(item_id):
                try:
                    return positions[item_id]
                except KeyError:
                    raise ItemNotFound(item_id) from None

            return defer.succeed(select_page(rows, position_of, query))
        except Exception:
            return defer.fail()

    def bounds(self, host, username):
        """See IMessageArchive.bounds."""
        if self._storage.closed:
            return defer.fail(StorageError("the storage is closed"))
        rows = self._users.get((host, username))
        if not rows:
            return defer.succeed(None)
        first, last = rows[0][1], rows[-1][1]
        return defer.succeed(((first.id, first.when), (last.id, last.when)))

    def expire(self, host, before):
        """See IMessageArchive.expire."""
        if self._storage.closed:
            return defer.fail(StorageError("the storage is closed"))
        deleted = 0
        for user in [u for u in self._users if u[0] == host]:
            rows = self._users[user]
            kept = [(seq, m) for seq, m in rows if m.when >= before]
            deleted += len(rows) - len(kept)
            self._ids[user].difference_update(m.id for _, m in rows if m.when < before)
            if kept:
                self._users[user] = kept
            else:
                del self._users[user]
        return defer.succeed(deleted)

    def purge(self, host, username):
        """See IMessageArchive.purge."""
        if self._storage.closed:
            return defer.fail(StorageError("the storage is closed"))
        self.delete_user(host, username)
        return defer.succeed(None)

    def delete_user(self, host, username):
        """Forget the account's messages and preferences at once (IStorage.delete_user)."""
        self._users.pop((host, username), None)
        self._ids.pop((host, username), None)
        self._prefs.pop((host, username), None)

    def all_prefs(self, host):
        """See IMessageArchive.all_prefs."""
        if self._storage.closed:
            return defer.fail(StorageError("the storage is closed"))
        return defer.succeed({user: decode_value(text)
                              for (h, user), text in self._prefs.items() if h == host})

    def set_prefs(self, host, username, prefs):
        """See IMessageArchive.set_prefs."""
        try:
            self._check_open()
            user = (check_name("host", host), check_name("username", username))
            if prefs is None:
                self._prefs.pop(user, None)
            else:
                self._prefs[user] = encode_value(prefs)
        except Exception:
            return defer.fail()
        return defer.succeed(None)
