"""
IMessageArchive for the sqlite backend: the tables of migration 2 (``mam_message``, its
FTS5 index ``mam_text``, ``mam_prefs``), as interactions on the database thread.

Each account's messages are numbered ``useq`` 1, 2, 3... in the order appended; the
archive order is that number, and as expiry and the size bound delete only the oldest, the
size of an archive is its last number minus its first plus one -- two index seeks, so the
bound costs nothing per message. ``seq`` (the rowid) links the full-text index.
A batch of appends is one ``BEGIN IMMEDIATE`` transaction: the commit (an fsync with
``synchronous=FULL``) is paid once per batch, not per message.
"""
from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from zope.interface import implementer

from jabberapp.interfaces import IMessageArchive
from jabberapp.storage import ItemNotFound, check_name, decode_value, encode_value
from jabberapp.storage.messages import (
    ArchivedMessage,
    ArchivePage,
    ArchiveQuery,
    check_message,
    fts_expression,
)

__all__ = ["SQLiteMessageArchive"]

_COLUMNS = 'useq, id, "when", with_jid, with_resource, stanza, text'
_CHUNK = 500    # ids per IN (...), well below SQLite's bound-parameter limit


@implementer(IMessageArchive)
class SQLiteMessageArchive:
    """IMessageArchive over one SQLite database; C{run} queues an interaction."""

    def __init__(self, run: Callable[..., defer.Deferred]) -> None:
        self._run = run

    # -- writing ------------------------------------------------------------------------

    def append(self, messages, keep=None):
        """See IMessageArchive.append."""
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int)
                                 or keep < 1):
            return defer.fail(ValueError("keep must be None or an int >= 1"))
        batch = list(messages)
        if not batch:
            return defer.succeed(0)
        # The messages are checked in the database thread, off the reactor; one that
        # does not fit rolls the whole batch back.
        return self._run(_append, batch, keep)

    def expire(self, host, before):
        """See IMessageArchive.expire."""
        return self._run(_expire, host, float(before))

    def purge(self, host, username):
        """See IMessageArchive.purge."""
        return self._run(_purge, host, username)

    def set_prefs(self, host, username, prefs):
        """See IMessageArchive.set_prefs."""
        try:
            check_name("host", host)
            check_name("username", username)
            text = None if prefs is None else encode_value(prefs)
        except (TypeError, ValueError):
            return defer.fail()
        return self._run(_set_prefs, host, username, text)

    # -- reading ------------------------------------------------------------------------

    def query(self, host, username, query):
        """See IMessageArchive.query."""
        if not isinstance(query, ArchiveQuery):
            return defer.fail(TypeError("query must be an ArchiveQuery"))
        return self._run(_query, host, username, query)

    def bounds(self, host, username):
        """See IMessageArchive.bounds."""
        return self._run(_bounds, host, username)

    def all_prefs(self, host):
        """See IMessageArchive.all_prefs."""
        return self._run(_all_prefs, host)


def _append(txn, batch, keep):
    txn.execute("BEGIN IMMEDIATE")
    last: dict[tuple[str, str], int | None] = {}    # account -> its last useq; None: none
    rows = []
    for m in map(check_message, batch):
        user = (m.host, m.username)
        if user not in last:
            txn.execute("SELECT 1 FROM accounts WHERE host = ? AND username = ?", user)
            if txn.fetchone() is None:
                last[user] = None
            else:
                txn.execute("SELECT MAX(useq) FROM mam_message WHERE host = ? AND username = ?",
                            user)
                last[user] = txn.fetchone()[0] or 0
        useq = last[user]
        if useq is None:
            continue
        last[user] = useq + 1
        rows.append((m.host, m.username, useq + 1, m.id, m.when, m.with_jid, m.with_resource,
                     m.stanza, m.text))
    # One statement for the batch. A duplicate id is skipped and leaves its number
    # unused: a gap only makes the size bound count one message too many.
    txn.executemany(f"INSERT OR IGNORE INTO mam_message (host, username, {_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    stored = txn.rowcount if rows else 0
    if keep is not None:
        for (host, username), useq in last.items():
            if useq is not None and useq > keep:
                txn.execute("DELETE FROM mam_message WHERE host = ? AND username = ? "
                            "AND useq <= ?", (host, username, useq - keep))
    return stored


def _expire(txn, host, before):
    txn.execute("BEGIN IMMEDIATE")
    txn.execute('DELETE FROM mam_message WHERE host = ? AND "when" < ?', (host, before))
    return txn.rowcount


def _purge(txn, host, username):
    txn.execute("BEGIN IMMEDIATE")
    for table in ("mam_message", "mam_prefs"):
        txn.execute(f"DELETE FROM {table} WHERE host = ? AND username = ?", (host, username))


def _set_prefs(txn, host, username, text):
    txn.execute("BEGIN IMMEDIATE")
    if text is None:
        txn.execute("DELETE FROM mam_prefs WHERE host = ? AND username = ?", (host, username))
    else:
        txn.execute("INSERT OR REPLACE INTO mam_prefs (host, username, prefs) VALUES (?, ?, ?)",
                    (host, username, text))


def _all_prefs(txn, host):
    txn.execute("SELECT username, prefs FROM mam_prefs WHERE host = ?", (host,))
    return {username: decode_value(text) for username, text in txn.fetchall()}


def _bounds(txn, host, username):
    txn.execute("BEGIN")
    ends = []
    for order in ("ASC", "DESC"):
        txn.execute(f'SELECT id, "when" FROM mam_message WHERE host = ? AND username = ? '
                    f"ORDER BY useq {order} LIMIT 1", (host, username))
        row = txn.fetchone()
        if row is None:
            return None
        ends.append((row[0], row[1]))
    return tuple(ends)


def _position(txn, host, username, item_id):
    txn.execute("SELECT useq FROM mam_message WHERE host = ? AND username = ? AND id = ?",
                (host, username, item_id))
    row = txn.fetchone()
    if row is None:
        raise ItemNotFound(item_id)
    return row[0]


def _query(txn, host, username, query: ArchiveQuery):
    txn.execute("BEGIN")   # one snapshot for the position look-ups, the page and the count
    where = ["host = ?", "username = ?"]
    args: list = [host, username]
    if query.with_jid is not None:
        where.append("with_jid = ?")
        args.append(query.with_jid)
    if query.with_resource is not None:
        where.append("with_resource = ?")
        args.append(query.with_resource)
    if query.start is not None:
        where.append('"when" >= ?')
        args.append(query.start)
    if query.end is not None:
        where.append('"when" <= ?')
        args.append(query.end)
    if query.after_id is not None:
        where.append("useq > ?")
        args.append(_position(txn, host, username, query.after_id))
    if query.before_id is not None:
        where.append("useq < ?")
        args.append(_position(txn, host, username, query.before_id))
    if query.ids is not None:
        found = {}
        ids = list(dict.fromkeys(query.ids))
        for i in range(0, len(ids), _CHUNK):
            part = ids[i:i + _CHUNK]
            txn.execute(f"SELECT id, useq FROM mam_message WHERE host = ? AND username = ? "
                        f"AND id IN ({', '.join('?' * len(part))})", (host, username, *part))
            found.update(txn.fetchall())
        for item_id in ids:
            if item_id not in found:
                raise ItemNotFound(item_id)
        # Selected by position (integers we read, inlined), which the index holds.
        where.append(f"useq IN ({', '.join(str(int(u)) for u in found.values()) or 'NULL'})")
    wanted = query.search_words()
    if wanted:
        where.append("seq IN (SELECT rowid FROM mam_text WHERE mam_text MATCH ?)")
        args.append(fts_expression(wanted))
    page_where, page_args = list(where), list(args)
    if query.after is not None:
        page_where.append("useq > ?")
        page_args.append(_position(txn, host, username, query.after))
    if query.before:
        page_where.append("useq < ?")
        page_args.append(_position(txn, host, username, query.before))
    order = "DESC" if query.backwards else "ASC"
    sql = (f"SELECT {_COLUMNS} FROM mam_message WHERE {' AND '.join(page_where)} "
           f"ORDER BY useq {order} LIMIT ?")
    page_args.append(query.limit + 1)
    if query.index is not None:
        sql += " OFFSET ?"
        page_args.append(query.index)
    txn.execute(sql, page_args)
    rows = txn.fetchall()
    complete = len(rows) <= query.limit
    rows = rows[:query.limit]
    if query.backwards:
        rows.reverse()
    messages = tuple(
        ArchivedMessage(host, username, item_id, when, with_jid, stanza, with_resource, text)
        for (_, item_id, when, with_jid, with_resource, stanza, text) in rows)
    count = first_index = None
    clause = " AND ".join(where)
    if query.count:
        txn.execute(f"SELECT COUNT(*) FROM mam_message WHERE {clause}", args)
        count = txn.fetchone()[0]
    if query.position:
        if rows:
            txn.execute(f"SELECT COUNT(*) FROM mam_message WHERE {clause} AND useq < ?",
                        (*args, rows[0][0]))
            first_index = txn.fetchone()[0]
    return ArchivePage(messages, complete, count, first_index)
