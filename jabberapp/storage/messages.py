"""
The values of IMessageArchive (XEP-0313 message archives) and the rules every backend
shares: argument checks, the query, and the full-text matching the memory backend does the
way SQLite's FTS5 ``unicode61`` tokenizer does.

Order: an archive keeps its messages in the order they were appended (XEP-0313 §3.1), not
by timestamp; ``start``/``end`` filter by ``when`` (inclusive), every id bound by position.

A query (L{ArchiveQuery}) has two parts:

- the filters, which make the result set: ``with_jid`` (a bare JID matches the messages
  whose ``with_jid`` is that bare JID, whatever the resource; a full JID only those with
  that resource), ``start``/``end``, ``after_id``/``before_id`` (exclusive positions),
  ``ids`` (only those), ``text`` (every word of it in the message's text);
- the page within the result set (XEP-0059): ``after`` (exclusive), ``before`` (exclusive;
  ``""`` is the end of the set, RSM's empty <before/>), ``index``, ``limit``. Paging
  backwards (a ``before``) takes the last ``limit`` matches before the position.

The answer (L{ArchivePage}) holds the page in archive order, ``complete`` (no match lies
beyond the page in its direction), with ``count`` the size of the result set, and with
``position`` the position of the page's first message in it (each one more count).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from jabberapp.storage import check_name

__all__ = [
    "ArchiveQuery",
    "ArchivePage",
    "ArchivedMessage",
    "check_message",
    "fts_expression",
    "matches_text",
    "words",
]

_WORD = re.compile(r"[^\W_]+")


class ArchivedMessage(NamedTuple):
    """
    One archived stanza of the account (host, username): C{id} (chosen by the caller),
    C{when} (POSIX seconds), C{with_jid} (the other party's bare JID), C{with_resource}
    (its resource, or None), C{stanza} (the serialized stanza) and C{text} (what the
    full-text search looks in, e.g. the bodies; None for nothing). A named tuple: one is
    made for every message archived, and a tuple is made fastest.
    """

    host: str
    username: str
    id: str
    when: float
    with_jid: str
    stanza: str
    with_resource: str | None = None
    text: str | None = None


def check_message(message: object) -> ArchivedMessage:
    """C{message} if it is a well-formed ArchivedMessage; TypeError/ValueError otherwise."""
    if not isinstance(message, ArchivedMessage):
        raise TypeError(f"not an ArchivedMessage: {type(message).__name__}")
    check_name("host", message.host)
    check_name("username", message.username)
    check_name("id", message.id)
    check_name("with_jid", message.with_jid)
    if not isinstance(message.stanza, str):
        raise TypeError("stanza must be a str")
    if isinstance(message.when, bool) or not isinstance(message.when, (int, float)):
        raise TypeError("when must be a number of seconds")
    if message.when != message.when or message.when in (float("inf"), float("-inf")):
        raise ValueError("when must be finite")
    for name in ("with_resource", "text"):
        if getattr(message, name) is not None and not isinstance(getattr(message, name), str):
            raise TypeError(f"{name} must be a str or None")
    return message


@dataclass(frozen=True)
class ArchiveQuery:
    """The filters and the page of one archive query; see the module docstring."""

    with_jid: str | None = None
    with_resource: str | None = None
    start: float | None = None
    end: float | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple | None = None
    text: str | None = None
    after: str | None = None
    before: str | None = None
    index: int | None = None
    limit: int = 50
    count: bool = False
    position: bool = False

    def __post_init__(self):
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError("limit must be an int >= 0")
        if self.index is not None and (not isinstance(self.index, int) or self.index < 0):
            raise ValueError("index must be None or an int >= 0")
        if self.index is not None and (self.after is not None or self.before is not None):
            raise ValueError("index cannot be combined with after or before")
        if self.with_resource is not None and self.with_jid is None:
            raise ValueError("with_resource needs with_jid")
        if self.ids is not None:
            object.__setattr__(self, "ids", tuple(self.ids))

    @property
    def backwards(self) -> bool:
        """True when paging backwards from C{before} (possibly the end)."""
        return self.before is not None

    def search_words(self) -> list[str]:
        """The words of C{text} the search looks for (none: no text filter)."""
        return words(self.text) if self.text else []


@dataclass(frozen=True)
class ArchivePage:
    """
    A query's answer: C{messages} (ArchivedMessage, archive order), C{complete}, with a
    count asked C{count} (matches of the filters), with the position asked C{first_index}
    (the position of the first message of the page among them; None for an empty page).
    """

    messages: tuple
    complete: bool
    count: int | None = None
    first_index: int | None = None


def words(text: str) -> list[str]:
    """The words of C{text} as FTS5's unicode61 tokenizer cuts and folds them: runs of
    letters and digits, case-folded, without diacritics."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return _WORD.findall(plain)


def matches_text(text: str | None, wanted: list[str]) -> bool:
    """True when every word of C{wanted} is a word of C{text}."""
    if not wanted:
        return True
    if not text:
        return False
    have = set(words(text))
    return all(word in have for word in wanted)


def fts_expression(wanted: list[str]) -> str:
    """An FTS5 MATCH expression requiring every word of C{wanted}, each a quoted string,
    so nothing a user types is read as FTS5 syntax."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in wanted)
