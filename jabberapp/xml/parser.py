"""
Sans-I/O XMPP stream parser (RFC 6120 §4 and §11): bytes in, events out.

Theory of operation
-------------------
Bytes go through three stages on every feed():

1. A cheap scan of the raw bytes (bytes.find on '&', '!' and '?', all memchr-fast) rejects
   what RFC 6120 §11.1 forbids before lxml sees it: '<!' that does not open a CDATA section
   (comments, DOCTYPE), '<?' other than the XML declaration (processing instructions), and
   entity references other than the five predefined ones.  lxml cannot be trusted to report
   these: with resolve_entities=False it silently skips undeclared entities, and libxml2's
   push parser stalls forever on '&' without a ';'.  A marker that may be split across two
   feed() calls ('<', '<!', '&am') is held back and scanned again with the next bytes.

2. Until the stream header's start tag is complete, bytes are buffered (at most
   max_header_size); the XML declaration is checked for its encoding, the header's default
   namespace may be renamed (canonical_from, below), then it is fed to lxml on its own.

3. Everything else goes to one lxml XMLPullParser per stream document (reset() starts a new
   one), in pieces of at most min(max_stanza_size, 64 KiB).  Each finished top-level element
   is copied into its own document (so it declares its namespace itself, <message
   xmlns="jabber:client">) and deleted from the stream root, and text directly inside the
   root is checked and dropped: a stream of any length keeps a childless root.

Size limits are counted on raw input bytes and enforced exactly, while the stanza streams in.
The "unit" is the open top-level element (or the start tag that will open one); _unit_start
is the absolute offset of its '<'.  libxml2 reports a start or end tag as soon as its '>' has
been fed (tests check this), so: before feeding a piece that would take the open unit past its
limit, only the bytes up to the limit are fed; if the unit has not ended by then it is too
large.  After a piece, the '<' of a stanza that started inside it is found by walking back over
the start tags lxml reported for it ('<' never occurs in XML text or attribute values, only in
CDATA, whose ranges the scan records).  A stanza that starts and ends inside one piece cannot
exceed the limit, as pieces are never longer than it.  Malformed input can fool that walk (a
'<' inside a quoted attribute value that libxml2 has not judged yet), so a second, cruder count
backs it up: bytes fed since lxml last reported anything, minus whitespace it turned into
text.  libxml2 only ever holds such bytes back when it waits for the end of a tag (or for at
most ~300 bytes of whitespace), so that count bounds its buffer whatever the input.

Things libxml2 gets wrong in push mode, and which are therefore checked here: it accepts
undeclared namespace prefixes (logged, not raised: we read the log), it silently ignores
undeclared entities when not resolving them, it waits forever for the ';' of '& x', and it
stops without an error on a NUL byte inside CDATA.

Resting: an idle stream costs ~11 KiB of libxml2 parser (its input buffer alone ~5 KiB), so a
parser between stanzas can rest() -- lxml's parser, the stream document and its name dictionary
are freed, and the stream header's start tag is kept (serialised from the root, a few hundred
bytes).  The next feed() makes a fresh lxml parser and feeds it that start tag first, so the
stanzas that follow see the same namespace declarations; nothing else changes (the offsets and
counts above are ours, not lxml's).  Only a stream exactly between two top-level elements
rests: nothing pending, no unit open, no CDATA; whitespace libxml2 held back is dropped, as it
would have been.  rest_idle() rests every parser fed in the period before its previous call
and not since (a caller with a clock runs it periodically: jabberapp.c2s.stream); resting and
waking cost ~20 us, so only parsers idle for a whole period pay it.  A woken stream's document
has a new name dictionary, so max_names bounds each dictionary, as a new connection's would be.

canonical_from (s2s, components): the stream header's default namespace declaration is
rewritten to jabber:client before lxml parses it, so every stanza inheriting it is parsed
straight into the canonical namespace at no per-stanza cost; a stanza that declares
canonical_from itself is renamed when it is detached.  StreamOpened.ns still reports what the
peer declared.

Where the code is: stage 1 and the stream error of each violation in jabberapp.xml.restricted
(RestrictedScan), stage 2 in jabberapp.xml.header (HeaderStage), both mixed into StreamParser
below, which does stage 3; the events in jabberapp.xml.events.
"""
from lxml import etree

from jabberapp.errors import StreamError
from jabberapp.xml.events import StreamClosed, StreamOpened
from jabberapp.xml.header import HeaderStage
from jabberapp.xml.namedict import MAX_STREAM_NAMES, NameScope
from jabberapp.xml.ns import NS_CLIENT, NS_STREAMS, NS_XML
from jabberapp.xml.restricted import (TAG, WS, RestrictedScan, inside, overlaps,
                                      lxml_error, stream_error)
from jabberapp.xml.serializer import rebind

__all__ = ["StreamOpened", "StreamClosed", "StreamParser", "parse_element", "rest_idle"]

_STREAM_TAG = f"{{{NS_STREAMS}}}stream"
_XML_LANG = f"{{{NS_XML}}}lang"
_WS_STR = " \t\r\n"
_PIECE = 65536
_STALL_SLACK = 4096


class _Recent:
    """The stream parsers fed lately (rest_idle() looks at nothing else)."""

    __slots__ = ("fed", "before")

    def __init__(self):
        self.fed = set()        # fed since the last rest_idle()
        self.before = set()     # fed in the period before that


_RECENT = _Recent()


def _forget(parser):
    # A closed, dead or ended parser is not kept for rest_idle() (nor kept alive by it).
    _RECENT.fed.discard(parser)
    _RECENT.before.discard(parser)


def rest_idle() -> int:
    """
    Rest (L{StreamParser.rest}) every stream parser fed between the two previous calls and
    not since; returns how many rested.  Called every few seconds, it rests parsers idle for
    one to two periods, and costs nothing for those already resting.
    """
    recent = _RECENT
    idle = recent.before
    idle -= recent.fed
    recent.before, recent.fed = recent.fed, set()
    return sum(1 for parser in idle if parser.rest())


class StreamParser(HeaderStage, RestrictedScan):
    """
    Turns the bytes of one XMPP stream into events: a L{StreamOpened}, detached lxml elements
    (the stream's top-level children), and a L{StreamClosed}.

    feed() raises L{jabberapp.errors.StreamError} on anything RFC 6120 forbids; the parser is
    then dead and every later feed() raises the same condition.  reset() starts a fresh XML
    document, as required after STARTTLS and SASL success (RFC 6120 §5.4.3.3, §6.4.6).

    @param max_stanza_size: bytes a top-level element may take, from the '<' of its start tag.
    @param max_depth: nesting allowed inside a stanza; the stanza itself is depth 1.  libxml2
        caps nesting at 255 whatever this says.
    @param canonical_from: a content namespace (jabber:server, jabber:component:accept) whose
        stanzas are returned in jabber:client, the canonical namespace (DESIGN.md §1).
    @param max_header_size: bytes the XML declaration plus the stream header may take.
    @param max_names: distinct names (and short strings) libxml2 may intern for one stream
        document; past it the stream ends with policy-violation (jabberapp.xml.namedict).
    """

    def __init__(self, max_stanza_size: int = 262144, max_depth: int = 64,
                 canonical_from: str | None = None, *, max_header_size: int = 8192,
                 max_names: int = MAX_STREAM_NAMES):
        if max_stanza_size < 1 or max_depth < 1 or max_header_size < 1 or max_names < 1:
            raise ValueError("limits must be positive")
        self._max_names = max_names
        self._limit = max_stanza_size
        self._max_depth = max_depth
        self._max_header = max_header_size
        self._piece = min(max_stanza_size, _PIECE)
        self._canonical_from = canonical_from
        self._canonical_prefix = f"{{{canonical_from}}}" if canonical_from else None
        self._dead = None
        self._parser = None
        self._names = None
        self.reset()

    def reset(self) -> None:
        """Start a new stream document: the next bytes fed begin with a fresh header."""
        self._free_lxml()
        # Each stream document interns its names in a dictionary of its own, freed with it
        # and the last stanza detached from it (jabberapp.xml.namedict).
        self._names = NameScope()
        self._parser = _new_lxml_parser()
        self._resting = None    # while resting: the stream header's start tag (rest())
        self._pending = b""     # bytes received but not fed to lxml yet
        self._fed = 0           # absolute offset (in this document) of the next byte to feed
        self._base = 0          # absolute offset of buf[0] during one feed()
        self._root = None       # the stream element, while it is open
        self._started = False   # the stream header has been parsed
        self._depth = 0         # open elements, the stream root included
        self._closed = False
        self._in_cdata = False
        self._cdata = []        # [start, end or None] absolute offsets of CDATA sections
        self._unit_start = None
        self._units_done = 0    # headers, stanzas and closes completed so far
        self._units_seen = 0    # _units_done before the last piece
        self._stall = 0         # bytes fed since lxml last reported anything
        self._header_tag_at = None
        self._log_len = 0
        self._declared_ns = None
        self._dead = None

    def close(self) -> None:
        """The connection is gone: free the parser now. feed() raises afterwards."""
        self._free_lxml()
        self._resting = None
        self._dead = ("undefined-condition", "the stream parser is closed")
        _forget(self)

    def rest(self) -> bool:
        """
        Free lxml's parser, the stream document and its name dictionary if the stream is
        between two top-level elements (see "Resting" in the module docstring); the next
        feed() makes them again.  Returns whether it rested.
        """
        root = self._root
        if (self._parser is None or root is None or self._depth != 1 or self._pending
                or self._unit_start is not None or self._cdata or self._in_cdata
                or len(root) or root.text is not None):
            return False
        # The root serialised alone is the header's start tag with every namespace it
        # declared, self-closed: "<stream:stream xmlns=... to=.../>".
        self._resting = etree.tostring(root)[:-2] + b">"
        self._free_lxml()
        self._stall = 0
        return True

    def _wake(self) -> None:
        """After rest(): a fresh lxml parser and name dictionary, inside the stream root."""
        header, self._resting = self._resting, None
        self._names = names = NameScope()
        self._parser = parser = _new_lxml_parser()
        token = names.enter()
        try:
            parser.feed(header)
            for _event, root in parser.read_events():
                self._root = root
        finally:
            names.leave(token)
        self._log_len = len(parser.feed_error_log)

    def _free_lxml(self) -> None:
        # lxml's pull parser sits in a reference cycle, so a dropped one keeps its libxml2
        # context (about 6 KiB) until the cyclic garbage collector runs -- and every login
        # drops three (two stream restarts and the end). close() frees it at once.
        parser, self._parser = self._parser, None
        names, self._names = self._names, None
        self._root = None       # the stream document, which holds the parser and names
        if parser is not None:
            # In the document's own name scope: lxml re-assigns the dictionary of the
            # document it frees to the current one, which must be the one its names are in.
            token = names.enter()
            try:
                parser.close()
            except etree.XMLSyntaxError:
                pass    # the document was incomplete, as it always is mid-stream
            finally:
                names.leave(token)

    def feed(self, data: bytes) -> list:
        """
        Parse C{data}, the next bytes of the stream, and return the events it completed.
        Raises L{jabberapp.errors.StreamError} on a violation.
        """
        if self._dead is not None:
            raise StreamError(*self._dead)
        if not isinstance(data, bytes):
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError(f"feed() takes bytes, not {type(data).__name__}")
        if self._closed:
            if data.strip(WS):
                self._die(stream_error("not-well-formed", "data after the end of the stream"))
            return []
        _RECENT.fed.add(self)
        if self._parser is None:
            self._wake()    # it was resting: dead and closed parsers raised above
        out = []
        names = self._names
        token = names.enter()
        try:
            return self._feed(data, out)
        except StreamError as err:
            err.events = out  # what this chunk completed before the violation
            self._die(err)
        except etree.XMLSyntaxError as err:
            error = lxml_error(err)
            error.events = out
            self._die(error)
        finally:
            names.leave(token)

    def _die(self, err):
        _forget(self)
        self._dead = (err.condition, err.text)
        self._parser = self._root = None
        self._names = None      # its dictionary goes with the last stanza detached
        self._pending = b""
        raise err

    # -- stage 1 and 2: scanning and the header ------------------------------------------

    def _feed(self, data: bytes, out: list) -> list:
        if not self._started:
            if self._header_tag_at is not None and b">" not in data:
                # Inside the header's start tag: only a '>' can complete it.
                self._pending += data
                if len(self._pending) > self._max_header:
                    raise stream_error("policy-violation", "stream header too large")
                return out
            buf = self._pending + data
            self._pending = b""
            self._base = 0
            if not buf:
                return out
            header = self._find_header(buf)
            if header is None:
                if len(buf) > self._max_header:
                    raise stream_error("policy-violation", "stream header too large")
                self._pending = buf
                return out
            tag_start, start = header
            if start > self._max_header:
                raise stream_error("policy-violation", "stream header too large")
            safe, violation = self._scan(buf, 0)
            if violation is not None and safe < start:
                raise violation
            self._feed_header(buf, tag_start, start, out)
        else:
            buf = self._pending + data if self._pending else data
            self._pending = b""
            self._base = self._fed
            start = 0
            safe, violation = self._scan(buf, 0)

        i = start
        piece = self._piece
        while i < safe and not self._closed:
            j = min(safe, i + piece)
            self._feed_piece(buf, i, j, out)
            i = j
        if self._closed:
            if buf[self._fed - self._base:].strip(WS):
                raise stream_error("not-well-formed", "data after the end of the stream")
            return out
        if violation is not None:
            raise violation
        self._pending = buf[safe:]
        return out

    def _feed_header(self, buf: bytes, tag_start: int, end: int, out: list) -> None:
        header = buf[:end]
        if self._canonical_from is not None:
            header = self._canonical_header(header, tag_start)
        self._lxml_feed(header, out)
        if not out:
            raise stream_error("not-well-formed", "incomplete stream header")
        self._fed = end
        self._unit_start = None
        self._units_seen = self._units_done

    # -- stage 3: lxml ----------------------------------------------------------------

    def _feed_piece(self, buf: bytes, lo: int, hi: int, out: list) -> None:
        """Feed buf[lo:hi], never letting the open unit run past max_stanza_size."""
        base = self._base
        limit = self._limit
        while lo < hi:
            unit = self._unit_start
            if unit is not None and base + hi - unit > limit:
                # The open unit must end within the next `stop - lo` bytes.
                stop = max(lo, unit + limit - base)
                done = self._units_done
                self._feed_range(buf, lo, stop, out)
                if self._units_done == done:
                    raise stream_error("policy-violation", "stanza too large")
                lo = stop
                if self._closed:
                    return
                continue
            self._feed_range(buf, lo, hi, out)
            return

    def _feed_range(self, buf: bytes, lo: int, hi: int, out: list) -> None:
        if lo == hi:
            return
        started, count, progressed = self._lxml_feed(buf[lo:hi], out)
        base = self._base
        self._fed = base + hi
        if self._closed:
            self._unit_start = None
            return

        # Where does the unit open after this piece start?  (Exact for well-formed XML; the
        # stall count below bounds what malformed XML could make us miss.)
        depth = self._depth
        text_from = -1
        if depth >= 2:
            if started:
                at = self._locate(buf, lo, hi, count)
                if at >= 0:
                    self._unit_start = base + at
                elif self._unit_start is None:
                    self._unit_start = base + lo    # not expected; never over-count
        elif self._units_done != self._units_seen:
            # Something ended here; what follows the last tag is whitespace or a new tag.
            at = self._last_lt(buf, lo, hi)
            tag = TAG.match(buf, at, hi) if at >= 0 else None
            if at >= 0 and tag is None:
                self._unit_start = base + at
            else:
                self._unit_start = None
                text_from = tag.end() if tag is not None else buf.rfind(b">", lo, hi) + 1
        elif self._unit_start is None:
            # Nothing was reported, so a '<' here opens a tag lxml is still waiting for.
            at = self._first_lt(buf, lo, hi)
            if at >= 0:
                self._unit_start = base + at
            else:
                text_from = lo
        # Text after the last tag, which libxml2 keeps until it sees the next '<': judge
        # it now rather than when the peer sends more.
        if (text_from >= 0 and buf[text_from:hi].strip(WS)
                and not (self._cdata and overlaps(self._cdata, base + text_from, base + hi))):
            raise stream_error("bad-format")
        self._units_seen = self._units_done

        if self._unit_start is not None and base + hi - self._unit_start > self._limit:
            raise stream_error("policy-violation", "stanza too large")
        if self._cdata:
            self._cdata = [r for r in self._cdata if r[1] is None or r[1] > base + hi]

        # Text directly inside the root: whitespace keepalives are dropped so that they
        # never accumulate; anything else is not allowed there.  Removing these text nodes
        # leaves the root with no children but the stanza being parsed, so libxml2 never
        # appends to a node we freed.
        root = self._root
        text = root.text
        consumed = 0
        if text is not None:
            if text.strip(_WS_STR):
                raise stream_error("bad-format")
            root.text = None
            consumed = len(text)

        # Safety net: bytes lxml neither reported as markup nor turned into whitespace text
        # are being buffered by libxml2 (at most ~300 bytes of whitespace look-ahead when the
        # XML is well-formed).  Whatever confuses the exact count above, this stays bounded.
        if progressed:
            self._stall = 0
        else:
            self._stall += hi - lo - consumed
            if self._stall > self._limit + _STALL_SLACK:
                raise stream_error("policy-violation", "stanza too large")

    def _lxml_feed(self, data: bytes, out: list):
        """
        Feed lxml and turn its events into ours.  Returns (whether a stanza started, how many
        start tags lxml reported from the last stanza start on, whether there was any event).
        """
        parser = self._parser
        try:
            parser.feed(data)
        except etree.XMLSyntaxError as error:
            # Stanzas completed before the error in this chunk still count; then the error.
            syntax_error = error
        else:
            syntax_error = None
        names = self._names.names_in_use()
        if names is not None and names > self._max_names:
            # Checked per piece (at most 64 KiB, so a few thousand names past the limit).
            raise stream_error("policy-violation", "too many distinct names")
        log = parser.feed_error_log
        if len(log) != self._log_len:
            # libxml2 logs namespace errors (an undeclared prefix, xmlns:p='') without
            # stopping; they make the stream not namespace-well-formed (RFC 6120 §4.9.3.13).
            # Checked before any event of this chunk is taken, also when a syntax error
            # ended it: an element with an undeclared prefix must never reach a handler.
            entries = list(log)[self._log_len:]
            self._log_len = len(log)
            for entry in entries:
                if entry.level < etree.ErrorLevels.ERROR:
                    continue
                if entry.type == etree.ErrorTypes.ERR_UNDECLARED_ENTITY:
                    raise stream_error("restricted-xml")
                if syntax_error is None or entry.domain == etree.ErrorDomains.NAMESPACE:
                    raise stream_error("not-well-formed")

        depth = self._depth
        started = False
        count = 0
        limit = self._max_depth + 1
        event = None
        for event, el in parser.read_events():
            if event == "start":
                depth += 1
                if depth == 2:
                    started = True
                    count = 1
                elif depth > 2:
                    count += 1
                    if depth > limit:
                        raise stream_error("policy-violation", "elements nested too deeply")
                else:
                    out.append(self._opened(el))
            else:
                depth -= 1
                if depth == 1:
                    out.append(self._detach(el))
                    el = None
                elif depth == 0:
                    text = el.text
                    if text is not None and text.strip(_WS_STR):
                        raise stream_error("bad-format")
                    self._closed = True
                    self._units_done += 1
                    out.append(StreamClosed())
                    self._root = None
                    _forget(self)   # it cannot rest any more
        self._depth = depth
        if syntax_error is not None:
            raise syntax_error
        return started, count, event is not None

    def _opened(self, root) -> StreamOpened:
        tag = root.tag
        if tag != _STREAM_TAG:
            local = tag.rpartition("}")[2]
            if local == "stream" and root.prefix is None and not tag.startswith(
                    f"{{{NS_STREAMS}}}"):
                # RFC 6120 §4.9.3.2: <stream> sent without the prefix that binds it to the
                # stream namespace, so it fell into the content (or no) namespace.
                raise stream_error("bad-namespace-prefix",
                             "the stream element is not in the stream namespace")
            if tag.startswith(f"{{{NS_STREAMS}}}"):
                # Right namespace, wrong element: not a namespace problem, so not
                # invalid-namespace; the XML simply cannot be processed as a stream.
                raise stream_error("bad-format", "the root element must be <stream:stream>")
            # RFC 6120 §4.8.1: the stream header is not qualified by the stream namespace;
            # the SHOULD is <invalid-namespace/> (Prosody sends the same).
            raise stream_error("invalid-namespace", "the stream namespace must be " + NS_STREAMS)
        attrs = {}
        for key, value in root.items():
            attrs["xml:lang" if key == _XML_LANG else key] = value
        ns = self._declared_ns or root.nsmap.get(None)
        self._root = root
        self._started = True
        self._units_done += 1
        return StreamOpened(attrs, ns)

    def _detach(self, el):
        """A stanza, copied into a document of its own, and deleted from the stream root."""
        stanza = el.__copy__()
        # Delete by position: it is the root's first element, as earlier ones are gone.
        del self._root[0]
        self._units_done += 1
        tail = stanza.tail
        if tail is not None:
            if tail.strip(_WS_STR):
                raise stream_error("bad-format")
            stanza.tail = None
        prefix = self._canonical_prefix
        if prefix is not None and stanza.tag.startswith(prefix):
            stanza = etree.fromstring(
                rebind(etree.tostring(stanza), stanza.prefix, self._canonical_from, NS_CLIENT),
                _SAFE_PARSER)
        return stanza

    def _locate(self, buf: bytes, lo: int, hi: int, count: int) -> int:
        """
        The offset in buf of the '<' of the stanza open after buf[lo:hi] was fed, given that
        lxml reported `count` start tags from it in that piece; -1 if it lies before lo.
        """
        cdata = self._cdata
        base = self._base
        at = hi
        last = True
        while True:
            at = buf.rfind(b"<", lo, at)
            if at < 0:
                return -1
            if cdata and inside(cdata, base + at):
                continue
            if last:
                last = False
                if TAG.match(buf, at, hi) is None:
                    continue        # an incomplete tag lxml has not reported yet
            if buf[at + 1] in b"/!":
                continue            # end tag, CDATA section
            count -= 1
            if count == 0:
                return at

    def _first_lt(self, buf: bytes, lo: int, hi: int) -> int:
        """The offset of the first '<' in buf[lo:hi] outside CDATA sections, or -1."""
        at = buf.find(b"<", lo, hi)
        cdata = self._cdata
        if cdata:
            base = self._base
            while at >= 0 and inside(cdata, base + at):
                at = buf.find(b"<", at + 1, hi)
        return at

    def _last_lt(self, buf: bytes, lo: int, hi: int) -> int:
        """The offset of the last '<' in buf[lo:hi] outside CDATA sections, or -1."""
        at = buf.rfind(b"<", lo, hi)
        cdata = self._cdata
        if cdata:
            base = self._base
            while at >= 0 and inside(cdata, base + at):
                at = buf.rfind(b"<", lo, at)
        return at


def _new_lxml_parser():
    return etree.XMLPullParser(
        events=("start", "end"), encoding="utf-8",
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        attribute_defaults=False, huge_tree=False, collect_ids=False, strip_cdata=True,
        remove_comments=False, remove_pis=False)


_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, collect_ids=False)

def parse_element(data: str | bytes, default_ns: str = NS_CLIENT) -> etree._Element:
    """
    Parse one standalone element, such as "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    as if it had been a stanza on a stream whose content namespace is C{default_ns}.

    The stream parser's rules apply (no DTD, comments, processing instructions or entities).
    Anything but exactly one element, optionally surrounded by whitespace, raises ValueError
    (the StreamError that caused it is chained).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    parser = StreamParser(max_stanza_size=len(data) + 64)
    header = (f"<stream:stream xmlns='{_attr(default_ns)}' "
              f"xmlns:stream='{NS_STREAMS}'>").encode("utf-8")
    try:
        events = parser.feed(header)
        events += parser.feed(data)
        events += parser.feed(b"</stream:stream>")
    except StreamError as err:
        raise ValueError(f"not a well-formed XMPP element ({err.condition})") from err
    finally:
        parser.close()      # lxml's parser now, not when the cyclic collector runs
    elements = [event for event in events if isinstance(event, etree._Element)]
    if len(elements) != 1 or not isinstance(events[-1], StreamClosed):
        raise ValueError(f"expected exactly one element, got {len(elements)}")
    return elements[0]


def _attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
            .replace('"', "&quot;"))
