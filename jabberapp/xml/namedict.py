"""
Bounded name dictionaries for lxml: what a peer's invented element and attribute names cost.

libxml2 interns element and attribute names, namespace prefixes and URIs, and very short text
(three bytes or less, or whitespace) in a dictionary (xmlDict) that only ever grows and is freed
when its last user (parser, document, lxml context) lets go of it.  lxml 6 shares one such
dictionary per thread: every parser and every document made in the reactor thread adds to it,
and it lives as long as the thread.  So a peer that sends names nobody used before grew the
server by about 90 MiB per 1 000 000 stanzas, for good (benchmarks/namedict.py, RESULTS.md).

lxml finds the dictionary through a context object it keeps in the thread state dictionary
(under "_ParserDictionaryContext"); a context takes the dictionary of the first parser it
serves, or makes one.  Two uses of that, both cheap (a few dictionary operations and ctypes
calls per feed(), nothing per element):

* Each stream has a NameScope: a context of its own, installed while its StreamParser works
  (feed(), close()).  The stream's parser, its document and the stanzas detached from it
  intern their names in the stream's own dictionary, which is freed with the stream and the
  last of its stanzas.  Its size is the number of distinct strings the peer used, so the
  parser ends a stream past MAX_STREAM_NAMES with policy-violation: one stream cannot grow
  its dictionary without bound.
* Every other document (the server's own elements, and copies of peers' stanzas made by
  handlers: presence broadcasts, MUC and offline copies, items parsed back from storage) uses
  the thread's shared context.  When its dictionary holds more than MAX_SHARED_NAMES strings
  (checked each time a stream parser starts work), the thread gets a fresh shared context;
  the old dictionary is freed once the last document made with it is gone.  lxml handles
  documents with different dictionaries (it does so across threads): names are looked up
  again when a node moves between them.

What stays: a document kept by the server (an offline message, MUC history, a presence)
keeps its dictionary alive, so at most MAX_STREAM_NAMES or MAX_SHARED_NAMES strings (about
32 bytes each) per kept document, and only while it is kept.

This relies on lxml 6's layout of that context (checked once, when first used: see _probe()).
If the check fails (another lxml), NameScope does nothing and names_in_use() returns None;
tests/test_xml_parser.py fails loudly in that case.  lxml 7 gives each parser its own
dictionary, which makes the first use above unnecessary.
"""
import ctypes
import threading

from lxml import etree

__all__ = ["MAX_SHARED_NAMES", "MAX_STREAM_NAMES", "NameScope", "TRUNK_STREAM_NAMES", "available",
           "shared_names"]

# Distinct strings one stream may intern.  A client's whole vocabulary is a few hundred names
# and namespaces (everything the test suite sends, all XEPs together, is about 1 500 strings,
# most of them short attribute values); the rest are short values and texts (XEP-0198 'h'
# counters up to 999, three-letter ids and bodies), at most a few thousand in a long session.
MAX_STREAM_NAMES = 20000
# s2s links and component streams carry many users' traffic for days (short texts and
# values of up to 3 bytes are interned too): they get a larger allowance.
TRUNK_STREAM_NAMES = 100000
# Strings the thread's shared dictionary may hold before it is replaced.  Replacing is cheap
# (names are interned again as they are used), so this is only a bound, not a cache size.
MAX_SHARED_NAMES = 50000

_KEY = "_ParserDictionaryContext"     # lxml's key in the thread state dictionary
_STATE = "jabberapp.xml.namedict"     # ours: [the shared context we installed, its xmlDict*]

# The C function returns a borrowed reference: typed c_void_p and turned into an object with
# cast(), which counts the reference (typed py_object, ctypes would steal one per call).
_thread_state_dict = ctypes.pythonapi.PyThreadState_GetDict
_thread_state_dict.restype = ctypes.c_void_p
_thread_state_dict.argtypes = []
_local = threading.local()


def _get_thread_dict() -> dict:
    """The current thread's state dictionary (where lxml keeps its context); cached, as the
    ctypes call takes microseconds."""
    try:
        return _local.tsd
    except AttributeError:
        pointer = _thread_state_dict()
        tsd = _local.tsd = ctypes.cast(pointer, ctypes.py_object).value if pointer else {}
        return tsd

_lib = ctypes.CDLL(etree.__file__)    # lxml's own libxml2 (static in wheels, or linked)
_dict_size = _lib.xmlDictSize
_dict_size.restype = ctypes.c_int
_dict_size.argtypes = [ctypes.c_void_p]
_dict_exists = _lib.xmlDictExists
_dict_exists.restype = ctypes.c_void_p
_dict_exists.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]

# Offsets in lxml 6's _ParserDictionaryContext (a Cython class: object header, vtable, then
# its fields in order: xmlDict* _c_dict, _BaseParser _default_parser, list).
_BASICSIZE = 48
_DICT_AT = 24
_PARSER_AT = 32
# Offset of nbElems in libxml2's struct _xmlDict (int, xmlDictEntry*, size_t, unsigned int).
_COUNT_AT = 24
_context_type = None      # set by _probe(); None until then, False if lxml does not fit
_count_at = None          # _COUNT_AT once _probe() has checked it, else xmlDictSize() is called


def _pointer_at(obj, offset: int) -> int:
    return ctypes.c_void_p.from_address(id(obj) + offset).value or 0


def _probe() -> bool:
    """Check, with a context of our own, that lxml keeps its dictionary where we read it."""
    global _context_type, _count_at
    if _context_type is not None:
        return _context_type is not False
    _context_type = False
    tsd = _get_thread_dict()
    if _KEY not in tsd:
        etree.get_default_parser()      # lxml sets up the thread's context on first use
    current = tsd.get(_KEY)
    kind = type(current)
    if (current is None or kind.__name__ != "_ParserDictionaryContext"
            or kind.__basicsize__ != _BASICSIZE):
        return False
    context = kind.__new__(kind)
    if _pointer_at(context, _DICT_AT) != 0 or _pointer_at(context, _PARSER_AT) != id(None):
        return False
    tsd[_KEY] = context
    try:
        parser = etree.get_default_parser()
        etree.fromstring(b"<jabberapp-namedict-probe/>", parser)
        pointer = _pointer_at(context, _DICT_AT)
        if pointer == 0 or _pointer_at(context, _PARSER_AT) != id(parser):
            return False
        if not _dict_exists(pointer, b"jabberapp-namedict-probe", -1):
            return False
        # The count can be read straight from the dictionary (libxml2 2.12+ layout) if it
        # follows xmlDictSize() as names are added.
        view = ctypes.c_uint.from_address(pointer + _COUNT_AT)
        before = _dict_size(pointer)
        etree.fromstring(b"<jabberapp-namedict-probe-2 jabberapp-namedict-probe-3=''/>", parser)
        after = _dict_size(pointer)
        if view.value == after and after == before + 2:
            _count_at = _COUNT_AT
    finally:
        tsd[_KEY] = current
    _context_type = kind
    return True


def available() -> bool:
    """Whether this lxml lets names be scoped and counted (lxml 6: yes)."""
    return _probe()


class _SizeCall:
    """Stands in for a view of the count where the layout check failed."""

    __slots__ = ("_pointer",)

    def __init__(self, pointer: int):
        self._pointer = pointer

    @property
    def value(self) -> int:
        return _dict_size(self._pointer)


def _count_of(context):
    """Something whose .value is the number of strings in C{context}'s dictionary (which the
    context keeps alive), or None while it has none."""
    pointer = _pointer_at(context, _DICT_AT)
    if pointer == 0:
        return None
    if _count_at is None:
        return _SizeCall(pointer)
    return ctypes.c_uint.from_address(pointer + _count_at)


def _fresh_shared(tsd):
    # lxml's own context of the main thread is a module global that is never freed; ours
    # are freed with the last document that uses their dictionary.
    fresh = _context_type.__new__(_context_type)
    tsd[_KEY] = fresh
    tsd[_STATE] = [fresh, None]
    return fresh


def shared_names() -> int | None:
    """Strings in the current thread's shared dictionary, or None (not ours, or not
    available)."""
    if not _probe():
        return None
    tsd = _get_thread_dict()
    state = tsd.get(_STATE)
    if state is None or tsd.get(_KEY) is not state[0]:
        return None
    count = _count_of(state[0])
    return 0 if count is None else count.value


class NameScope:
    """
    The name dictionary of one stream.  enter() installs it for the current thread and
    returns a token for leave(), which puts the shared one back (not re-entrant: a scope is
    entered around lxml calls only); names_in_use() counts its strings.
    """

    __slots__ = ("_context", "_count")

    def __init__(self):
        self._context = _context_type.__new__(_context_type) if _probe() else None
        self._count = None

    def enter(self):
        """Make lxml intern names in this scope's dictionary, until leave(token); replace
        the thread's shared context first if it is lxml's or has grown too large."""
        context = self._context
        if context is None:
            return None
        try:
            tsd = _local.tsd
        except AttributeError:
            tsd = _get_thread_dict()
        saved = tsd.get(_KEY)
        state = tsd.get(_STATE)
        if state is None or saved is not state[0]:
            saved = _fresh_shared(tsd)
        else:
            count = state[1]
            if count is None:
                count = state[1] = _count_of(saved)
            if count is not None and count.value > MAX_SHARED_NAMES:
                saved = _fresh_shared(tsd)
        tsd[_KEY] = context
        return tsd, saved

    @staticmethod
    def leave(token) -> None:
        """Undo enter()."""
        if token is not None:
            tsd, saved = token
            tsd[_KEY] = saved

    def names_in_use(self) -> int | None:
        """Distinct strings interned in this scope so far (None: not available)."""
        count = self._count
        if count is None:
            if self._context is None:
                return None
            # lxml gives the context its dictionary when the first parser is fed.
            count = self._count = _count_of(self._context)
            if count is None:
                return 0
        return count.value
