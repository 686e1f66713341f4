"""
XEP-0059: Result Set Management -- parsing <set/> requests and building <set/> answers, for
the protocols that page through archives (MAM, offline retrieval, disco items of big services).

A request is read once into a frozen L{ResultSetRequest}; anything malformed is a
StanzaError('bad-request') with a text saying what (XEP-0059 §2.1 to §2.7):

    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>          a non-negative integer: the page size (0 asks for the count only)
      <after>uid</after>     page forward from the item with that UID (never empty)
      <before>uid</before>   page backward up to it; an empty <before/> is the last page
      <index>20</index>      the page starting at that position (not with after/before)
    </set>

How it maps onto L{jabberapp.interfaces.IArchiveStore.query} (whose rules the storage
contract tests pin down): the archive's ids are the UIDs. C{after} and C{before} are passed
through unchanged -- both exclusive, with C{before=""} meaning the end of the archive and a
C{limit} with C{before} selecting the *last* matches, exactly RSM's backward paging. An
<index/> has no storage counterpart: the first C{index + page} matches are read and the
first C{index} dropped (XEP-0059 §2.6 allows this cost, or feature-not-implemented). An id
the archive does not hold fails with jabberapp.storage.ItemNotFound, which is RSM's
<item-not-found/> (§2.4); L{fetch_page} does all of this, and reads one item more than the
page to tell whether the page is the last one (XEP-0313's 'complete').

The answer (§2.2): L{result_set} writes <first index='n'/>, <last/> and <count/>; <first/>
and <last/> are left out for an empty page, and the index when it is not known cheaply
(L{ResultSetRequest.first_index} knows it in the common cases).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from twisted.internet import defer

from jabberapp.errors import StanzaError
from jabberapp.storage import ItemNotFound
from jabberapp.xml import element

__all__ = ["NS_RSM", "ResultSetRequest", "fetch_page", "parse", "result_set"]

NS_RSM = "http://jabber.org/protocol/rsm"
SET = f"{{{NS_RSM}}}set"
_MAX_INT = 2**31 - 1    # xs:int, the schema type of <max/> and <index/>
_DIGITS = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class ResultSetRequest:
    """
    One parsed <set/> request. C{max} and C{index} are ints or None; C{after} is a UID or
    None; C{before} is a UID, "" (the last page) or None.
    """

    max: int | None = None
    after: str | None = None
    before: str | None = None
    index: int | None = None

    def __post_init__(self):
        for name in ("max", "index"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= _MAX_INT):
                raise ValueError(f"{name} must be None or an int from 0 to {_MAX_INT}")
        if self.after == "":
            raise ValueError("after must be None or a non-empty UID")
        if self.index is not None and (self.after is not None or self.before is not None):
            raise ValueError("index cannot be combined with after or before")

    @property
    def backwards(self) -> bool:
        """True when paging backwards (a <before/>, possibly empty): the page is the last
        items before the position, as IArchiveStore.query takes them."""
        return self.before is not None

    def page_size(self, default: int, maximum: int) -> int:
        """The number of items to return: <max/> when given, else C{default}, never
        above C{maximum} (a service's cap, which XEP-0059 lets the responder impose)."""
        if not 0 <= default <= maximum:
            raise ValueError("need 0 <= default <= maximum")
        return min(self.max if self.max is not None else default, maximum)

    def query_args(self, default: int, maximum: int, extra: int = 0) -> dict:
        """
        Keyword arguments for IArchiveStore.query(): after, before and limit, the limit
        being the page size plus C{extra} items (plus C{index} for an index request, whose
        first C{index} rows L{select} then drops).
        """
        limit = self.page_size(default, maximum) + extra
        if self.index is not None:
            limit += self.index
        return {"after": self.after, "before": self.before, "limit": limit}

    def select(self, rows: list, default: int, maximum: int) -> list:
        """The page from C{rows}, what query_args() made the store return: the index
        skipped for an index request, then at most page_size() rows -- from the end when
        paging backwards, so the page touches the <before/> position."""
        size = self.page_size(default, maximum)
        if self.index is not None:
            rows = rows[self.index:]
        if self.backwards:
            return rows[max(len(rows) - size, 0):]
        return rows[:size]

    def first_index(self, page_length: int, count: int | None) -> int | None:
        """
        The position of the page's first item in the full set, when it follows from the
        request: 0 from the start, the <index/> asked for, or C{count - page_length} for
        the last page (empty <before/>). None otherwise (the caller may count itself).
        """
        if self.index is not None:
            return self.index
        if self.after is None and self.before is None:
            return 0
        if self.before == "" and self.after is None and count is not None:
            return max(count - page_length, 0)
        return None


def parse(parent) -> ResultSetRequest | None:
    """
    The ResultSetRequest of the <set xmlns='http://jabber.org/protocol/rsm'/> child of
    C{parent} (e.g. a MAM <query/>), None when there is none. Raises
    StanzaError('bad-request') for a malformed one.
    """
    sets = list(parent.iterchildren(SET))
    if not sets:
        return None
    if len(sets) > 1:
        raise StanzaError("bad-request", "More than one RSM <set/>")
    return parse_set(sets[0])


def parse_set(rsm_set) -> ResultSetRequest:
    """The ResultSetRequest of a <set/> element; StanzaError('bad-request') if malformed.
    Elements of other names and namespaces are ignored, for forward compatibility;
    the answer-only <first/>, <last/> and <count/> too."""
    values = {}
    for child in rsm_set.iterchildren("{%s}*" % NS_RSM):
        name = child.tag[len(NS_RSM) + 2:]
        if name not in ("max", "after", "before", "index"):
            continue
        if name in values:
            raise StanzaError("bad-request", f"More than one RSM <{name}/>")
        if len(child):
            raise StanzaError("bad-request", f"RSM <{name}/> holds text only")
        values[name] = child.text or ""
    for name in ("max", "index"):
        if name in values:
            text = values[name].strip()
            if not _DIGITS.fullmatch(text) or int(text) > _MAX_INT:
                raise StanzaError("bad-request",
                                  f"RSM <{name}/> must be an integer from 0 to {_MAX_INT}")
            values[name] = int(text)
    if values.get("after") == "":
        raise StanzaError("bad-request", "RSM <after/> must name an item")
    if "index" in values and ("after" in values or "before" in values):
        raise StanzaError("bad-request", "RSM <index/> cannot be combined with "
                                         "<after/> or <before/>")
    return ResultSetRequest(**values)


def result_set(page, count: int | None = None, first_index: int | None = None):
    """
    The <set/> of an answer: C{page} is the returned (id, item) pairs in order; <first/>
    (with C{first_index} as its 'index' when known) and <last/> name the first and last ids
    and are absent for an empty page (§2.2); <count/> is C{count}, the size of the full
    result set, when given.
    """
    answer = element(NS_RSM, "set")
    if page:
        first = element(NS_RSM, "first", text=str(page[0][0]))
        if first_index is not None:
            first.set("index", str(first_index))
        answer.append(first)
        answer.append(element(NS_RSM, "last", text=str(page[-1][0])))
    if count is not None:
        answer.append(element(NS_RSM, "count", text=str(count)))
    return answer


@defer.inlineCallbacks
def fetch_page(archive, host: str, username: str, request: ResultSetRequest | None,
               default: int, maximum: int, **filters):
    """
    Deferred (rows, complete): the page of C{username}'s items in C{archive} (an
    IArchiveStore) that C{request} asks for (None: the first page of C{default} items), as
    query() returns rows, and whether no item lies beyond the page in its direction.
    C{filters} are passed to query() (start, end, with_jid). An after/before id the archive
    does not hold fails with StanzaError('item-not-found') (XEP-0059 §2.4).
    """
    if request is None:
        request = ResultSetRequest()
    try:
        rows = yield archive.query(host, username, **filters,
                                   **request.query_args(default, maximum, extra=1))
    except ItemNotFound:
        raise StanzaError("item-not-found", "No item with that RSM UID") from None
    page = request.select(rows, default, maximum)
    skipped = request.index if request.index is not None else 0
    complete = len(rows) - skipped <= len(page)
    return page, complete
