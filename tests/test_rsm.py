"""XEP-0059 Result Set Management helpers, and how they page an IArchiveStore."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.errors import StanzaError
from jabberapp.rsm import NS_RSM, ResultSetRequest, fetch_page, parse, parse_set, result_set
from jabberapp.storage.memory import MemoryStorage
from jabberapp.xml import parse_element

HOST = "example.org"


def request(inner, outer="<query xmlns='urn:example:q'>{}</query>"):
    """The parse() result for a <set/> holding C{inner} inside a query element."""
    return parse(parse_element(outer.format(f"<set xmlns='{NS_RSM}'>{inner}</set>")))


class ParseTests(SynchronousTestCase):
    def bad(self, inner):
        """The text of the bad-request a malformed <set/> gets."""
        with self.assertRaises(StanzaError) as caught:
            request(inner)
        self.assertEqual((caught.exception.condition, caught.exception.type),
                         ("bad-request", "modify"))
        return caught.exception.text

    def test_no_set(self):
        """Without a <set/> child there is no request."""
        self.assertIsNone(parse(parse_element("<query xmlns='urn:example:q'><x/></query>")))

    def test_empty_set(self):
        """An empty <set/> asks for nothing in particular."""
        self.assertEqual(request(""), ResultSetRequest())

    def test_max(self):
        """<max/> is the page size, surrounding whitespace allowed."""
        self.assertEqual(request("<max>10</max>"), ResultSetRequest(max=10))
        self.assertEqual(request("<max> 0\n</max>").max, 0)

    def test_after(self):
        """<after/> is kept as the opaque UID it is, spaces included."""
        self.assertEqual(request("<max>5</max><after> a b </after>"),
                         ResultSetRequest(max=5, after=" a b "))

    def test_before(self):
        """<before/> with a UID pages backwards from it; empty, from the end (§2.5)."""
        self.assertEqual(request("<before>uid-7</before>").before, "uid-7")
        self.assertEqual(request("<max>3</max><before/>"), ResultSetRequest(max=3, before=""))
        self.assertTrue(request("<before/>").backwards)
        self.assertFalse(request("<after>x</after>").backwards)

    def test_after_and_before(self):
        """<after/> and <before/> together bound a range; it pages backwards."""
        rsm = request("<after>a</after><before>b</before>")
        self.assertEqual((rsm.after, rsm.before, rsm.backwards), ("a", "b", True))

    def test_index(self):
        """<index/> asks for the page starting at that position (§2.6)."""
        self.assertEqual(request("<max>10</max><index>20</index>"),
                         ResultSetRequest(max=10, index=20))

    def test_ignored_elements(self):
        """Answer-only and foreign elements in a request are ignored."""
        self.assertEqual(request("<max>1</max><first>x</first><count>3</count>"
                                 "<extra xmlns='urn:example:x'>y</extra>"),
                         ResultSetRequest(max=1))

    def test_bad_numbers(self):
        """<max/> and <index/> must be integers from 0 to 2^31-1."""
        for text in ("-1", "abc", "", "1.5", "+3", "2147483648", "99999999999", "1 2", "٣"):
            for name in ("max", "index"):
                self.assertIn(f"<{name}/> must be an integer",
                              self.bad(f"<{name}>{text}</{name}>"))
        self.assertEqual(request("<max>2147483647</max>").max, 2147483647)

    def test_empty_after(self):
        """An empty <after/> names no item."""
        self.assertIn("<after/>", self.bad("<after/>"))

    def test_index_with_uid(self):
        """<index/> cannot be combined with <after/> or <before/>."""
        self.bad("<index>1</index><after>x</after>")
        self.bad("<index>1</index><before/>")

    def test_duplicates(self):
        """An element given twice, or two <set/>s, is a bad-request."""
        self.assertIn("<max/>", self.bad("<max>1</max><max>2</max>"))
        self.bad("<after>a</after><after>b</after>")
        with self.assertRaises(StanzaError):
            parse(parse_element(f"<q xmlns='urn:x'><set xmlns='{NS_RSM}'/>"
                                f"<set xmlns='{NS_RSM}'/></q>"))

    def test_nested_elements(self):
        """The elements hold text only."""
        self.bad("<after><x/></after>")

    def test_parse_set_directly(self):
        """parse_set reads a <set/> element itself."""
        self.assertEqual(parse_set(parse_element(f"<set xmlns='{NS_RSM}'><max>2</max></set>")),
                         ResultSetRequest(max=2))


class RequestValueTests(SynchronousTestCase):
    def test_frozen_and_hashable(self):
        """Requests are immutable values."""
        rsm = ResultSetRequest(max=1, after="a")
        self.assertEqual(hash(rsm), hash(ResultSetRequest(max=1, after="a")))
        with self.assertRaises(AttributeError):
            rsm.max = 3

    def test_checked(self):
        """Constructing a request the protocol cannot express is a ValueError."""
        for kwargs in ({"max": -1}, {"max": True}, {"index": "1"}, {"after": ""},
                       {"index": 1, "after": "a"}, {"index": 0, "before": ""},
                       {"max": 2**31}):
            with self.assertRaises(ValueError, msg=kwargs):
                ResultSetRequest(**kwargs)

    def test_page_size(self):
        """<max/> is the page size, else the default; the maximum caps both."""
        self.assertEqual(ResultSetRequest().page_size(20, 100), 20)
        self.assertEqual(ResultSetRequest(max=5).page_size(20, 100), 5)
        self.assertEqual(ResultSetRequest(max=500).page_size(20, 100), 100)
        self.assertEqual(ResultSetRequest(max=0).page_size(20, 100), 0)
        with self.assertRaises(ValueError):
            ResultSetRequest().page_size(200, 100)

    def test_query_args(self):
        """The IArchiveStore.query() arguments: after/before as given, the page as limit."""
        self.assertEqual(ResultSetRequest().query_args(10, 50),
                         {"after": None, "before": None, "limit": 10})
        self.assertEqual(ResultSetRequest(max=3, after="a").query_args(10, 50),
                         {"after": "a", "before": None, "limit": 3})
        self.assertEqual(ResultSetRequest(max=3, before="").query_args(10, 50, extra=1),
                         {"after": None, "before": "", "limit": 4})
        self.assertEqual(ResultSetRequest(max=3, index=7).query_args(10, 50),
                         {"after": None, "before": None, "limit": 10})

    def test_select(self):
        """select() drops the index, then keeps the page from the paging direction."""
        rows = list(range(10))
        self.assertEqual(ResultSetRequest(max=3).select(rows, 5, 9), [0, 1, 2])
        self.assertEqual(ResultSetRequest(max=3, before="").select(rows, 5, 9), [7, 8, 9])
        self.assertEqual(ResultSetRequest(max=3, index=4).select(rows, 5, 9), [4, 5, 6])
        self.assertEqual(ResultSetRequest(index=20).select(rows, 5, 9), [])

    def test_first_index(self):
        """The index of the first item is known from the start, an <index/> or the end."""
        self.assertEqual(ResultSetRequest(max=3).first_index(3, None), 0)
        self.assertEqual(ResultSetRequest(index=12).first_index(3, None), 12)
        self.assertEqual(ResultSetRequest(before="").first_index(3, 10), 7)
        self.assertEqual(ResultSetRequest(before="").first_index(3, 2), 0)
        self.assertIsNone(ResultSetRequest(before="").first_index(3, None))
        self.assertIsNone(ResultSetRequest(after="x").first_index(3, 10))
        self.assertIsNone(ResultSetRequest(before="x").first_index(3, 10))


class ResultSetTests(SynchronousTestCase):
    def children(self, answer):
        self.assertEqual(answer.tag, f"{{{NS_RSM}}}set")
        return [(child.tag.rpartition("}")[2], child.text, dict(child.attrib))
                for child in answer]

    def test_page(self):
        """A page names its first (with index) and last UIDs, and the count (§2.2)."""
        answer = result_set([("a", "<x/>"), ("b", "<y/>"), ("c", "<z/>")], count=10,
                            first_index=4)
        self.assertEqual(self.children(answer), [("first", "a", {"index": "4"}),
                                                 ("last", "c", {}), ("count", "10", {})])

    def test_one_item(self):
        """With one item, first and last are the same UID."""
        self.assertEqual(self.children(result_set([("a", None)], first_index=0)),
                         [("first", "a", {"index": "0"}), ("last", "a", {})])

    def test_empty_page(self):
        """An empty page has no first and last, only the count (§2.2, §2.7)."""
        self.assertEqual(self.children(result_set([], count=0)), [("count", "0", {})])
        self.assertEqual(self.children(result_set([])), [])

    def test_unknown_index_and_count(self):
        """Index and count are left out when not known."""
        self.assertEqual(self.children(result_set([("7", None)])),
                         [("first", "7", {}), ("last", "7", {})])


class FetchPageTests(SynchronousTestCase):
    """fetch_page() over the memory IArchiveStore (the sqlite one passes the same contract)."""

    def setUp(self):
        self.archive = MemoryStorage().archive("mam")
        # Appended out of time order: pages follow time, not ids.
        self.ids = {}
        for n, when in enumerate([5, 1, 3, 2, 4, 0, 6]):
            self.ids[when] = self.successResultOf(self.archive.append(
                HOST, "alice", f"<m n='{when}'/>", when,
                "bob@example.org" if when % 2 else "carol@example.org"))
        self.order = [self.ids[when] for when in range(7)]

    def fetch(self, rsm, default=3, maximum=5, **filters):
        """(ids, complete) of a page."""
        rows, complete = self.successResultOf(fetch_page(self.archive, HOST, "alice", rsm,
                                                         default, maximum, **filters))
        return [row[0] for row in rows], complete

    def test_first_page(self):
        """Without a request, the first page of the default size, and more to come."""
        self.assertEqual(self.fetch(None), (self.order[:3], False))

    def test_forward_paging(self):
        """Paging forward with <after/> set to the last UID visits every item once, and the
        last page says it is complete."""
        seen, after, complete = [], None, False
        while not complete:
            page, complete = self.fetch(ResultSetRequest(max=2, after=after))
            seen.extend(page)
            after = page[-1] if page else after
        self.assertEqual(seen, self.order)

    def test_exact_last_page(self):
        """A page ending exactly at the last item is complete."""
        self.assertEqual(self.fetch(ResultSetRequest(max=4, after=self.order[2])),
                         (self.order[3:], True))

    def test_last_page(self):
        """An empty <before/> gives the last items (§2.5)."""
        self.assertEqual(self.fetch(ResultSetRequest(max=2, before="")),
                         (self.order[5:], False))

    def test_backward_paging(self):
        """Paging backward with <before/> set to the first UID visits every item once."""
        seen, before, complete = [], "", False
        while not complete:
            page, complete = self.fetch(ResultSetRequest(max=3, before=before))
            seen[:0] = page
            before = page[0] if page else before
        self.assertEqual(seen, self.order)

    def test_range(self):
        """<after/> and <before/> together: the items strictly between, last ones first."""
        self.assertEqual(self.fetch(ResultSetRequest(after=self.order[1],
                                                     before=self.order[5])),
                         (self.order[2:5], True))

    def test_index(self):
        """<index/> skips that many items (§2.6)."""
        self.assertEqual(self.fetch(ResultSetRequest(max=2, index=3)),
                         (self.order[3:5], False))
        self.assertEqual(self.fetch(ResultSetRequest(max=5, index=5)),
                         (self.order[5:], True))
        self.assertEqual(self.fetch(ResultSetRequest(max=2, index=9)), ([], True))

    def test_count_only(self):
        """<max>0</max> returns no items; complete says whether there are any."""
        self.assertEqual(self.fetch(ResultSetRequest(max=0)), ([], False))
        self.assertEqual(self.fetch(ResultSetRequest(max=0, after=self.order[-1])), ([], True))

    def test_maximum(self):
        """A <max/> above the service's maximum is capped."""
        self.assertEqual(self.fetch(ResultSetRequest(max=1000)), (self.order[:5], False))

    def test_filters(self):
        """Filters are passed to the store."""
        self.assertEqual(self.fetch(ResultSetRequest(max=5), with_jid="bob@example.org"),
                         ([self.ids[1], self.ids[3], self.ids[5]], True))
        self.assertEqual(self.fetch(ResultSetRequest(max=5), start=2, end=3),
                         (self.order[2:4], True))

    def test_unknown_uid(self):
        """A UID the archive does not hold is item-not-found (§2.4)."""
        for rsm in (ResultSetRequest(after="nope"), ResultSetRequest(before="nope")):
            failure = self.failureResultOf(fetch_page(self.archive, HOST, "alice", rsm, 3, 5),
                                           StanzaError)
            self.assertEqual(failure.value.condition, "item-not-found")

    def test_answer_for_page(self):
        """A fetched page and the archive's count make the answer's <set/>."""
        rsm = ResultSetRequest(max=2, before="")
        rows, _ = self.successResultOf(fetch_page(self.archive, HOST, "alice", rsm, 3, 5))
        count = self.successResultOf(self.archive.count(HOST, "alice"))
        answer = result_set([(row[0], row[3]) for row in rows], count,
                            rsm.first_index(len(rows), count))
        self.assertEqual([(c.tag.rpartition("}")[2], c.text, c.get("index")) for c in answer],
                         [("first", self.order[5], "5"), ("last", self.order[6], None),
                          ("count", "7", None)])
