"""
What RFC 6120 §11.1 forbids, found in the raw bytes before lxml sees them (stage 1 of the
theory of operation in jabberapp.xml.parser), and the stream error for each violation.

lxml cannot be trusted to report these: with resolve_entities=False it silently skips
undeclared entities, and libxml2's push parser stalls forever on '&' without a ';' and stops
without an error on a NUL byte inside CDATA.  ``RestrictedScan._scan`` finds, with bytes.find
('&', '!', '?' and NUL, all memchr-fast), the longest prefix of a buffer that may be fed to
lxml, and the violation that stops it; a marker that more bytes may complete ('<', '<!',
'&am') is held back.  It keeps the CDATA sections it crosses (absolute offsets), because the
size accounting of the parser must skip a '<' inside one.
"""
import re

from lxml import etree

from jabberapp.errors import StreamError

__all__ = ["CDATA_OPEN", "RestrictedScan", "TAG", "WS", "inside", "lxml_error", "overlaps",
           "stream_error"]

WS = b" \t\r\n"
CDATA_OPEN = b"<![CDATA["

# A complete start or end tag from its '<': quotes are balanced, as libxml2's push parser
# requires before it reports the tag.
TAG = re.compile(rb"""<[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""")
# References: the allowed ones, an entity name, and prefixes that more bytes may complete.
_AMP_OK = re.compile(rb"&(?:lt|gt|amp|apos|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_AMP_NAME = re.compile(rb"&[A-Za-z_:\x80-\xff][-.0-9A-Za-z_:\x80-\xff]*")
_AMP_CHARREF = re.compile(rb"&#(?:x[0-9a-fA-F]*|[0-9]*)")
_MAX_REF = 64

_HOLD = object()
# libxml2 2.12+ (older ones report the nesting limit as an internal error, matched by text).
_ERR_RESOURCE_LIMIT = getattr(etree.ErrorTypes, "ERR_RESOURCE_LIMIT", -1)

# Texts sent to the peer; fixed strings, so nothing the peer sent is echoed back.
_TEXT = {
    "not-well-formed": "XML is not well-formed",
    "restricted-xml": ("comments, processing instructions, DTDs and entity references are "
                       "not allowed"),
    "policy-violation": "size or depth limit exceeded",
    "bad-format": "non-whitespace text between stanzas",
    "unsupported-encoding": "only UTF-8 is supported",
}


def stream_error(condition, text=None):
    """The StreamError for C{condition}, with a fixed text (nothing the peer sent)."""
    return StreamError(condition, text or _TEXT.get(condition))


def lxml_error(err: etree.XMLSyntaxError):
    """The stream error for an error lxml raised."""
    if err.code == _ERR_RESOURCE_LIMIT or "Excessive depth" in (err.msg or ""):
        # libxml2's own limits (nesting deeper than 256, 10 MB text nodes) are limits too.
        return stream_error("policy-violation")
    if err.code == etree.ErrorTypes.ERR_UNDECLARED_ENTITY:
        return stream_error("restricted-xml")
    return stream_error("not-well-formed")


class RestrictedScan:
    """
    Stage 1 of StreamParser: the scan of raw bytes for forbidden markup.

    A mixin: it uses the parser's C{_base} (the absolute offset of buf[0]), C{_in_cdata}
    (the last buffer ended inside a CDATA section) and C{_cdata} (the [start, end or None]
    absolute offsets of the CDATA sections not yet fed).
    """

    def _scan(self, buf: bytes, i: int):
        """
        Check buf[i:] for markup RFC 6120 §11.1 forbids.  Returns (safe, violation): buf[:safe]
        may be fed to lxml; violation is a StreamError for the markup at safe, or None when
        buf[safe:] only needs more bytes to be judged.
        """
        safe, violation = self._scan_markup(buf, i)
        # NUL is never XML, and libxml2's push parser stops silently on one in CDATA.
        nul = buf.find(b"\x00", i, safe + 1)
        if nul >= 0:
            return nul, stream_error("not-well-formed", "NUL character")
        return safe, violation

    def _scan_markup(self, buf: bytes, i: int):
        n = len(buf)
        find = buf.find
        base = self._base
        if self._in_cdata:
            end = find(b"]]>", i)
            if end < 0:
                return max(i, n - _trailing_brackets(buf)), None
            i = end + 3
            self._in_cdata = False
            self._cdata[-1][1] = base + i
        amp = find(b"&", i)
        bang = find(b"!", i)
        query = find(b"?", i)
        if amp < 0:
            amp = n
        if bang < 0:
            bang = n
        if query < 0:
            query = n
        while True:
            if amp < bang and amp < query:
                p = amp
                if _AMP_OK.match(buf, p) is None:
                    verdict = _reference_verdict(buf, p)
                    if verdict is _HOLD:
                        return p, None
                    return p, verdict
                amp = find(b"&", p + 1)
                if amp < 0:
                    amp = n
            elif bang < query:
                p = bang
                if p >= n:
                    break
                if p and buf[p - 1] == 0x3C:
                    s = p - 1
                    if buf.startswith(CDATA_OPEN, s):
                        end = find(b"]]>", s + 9)
                        if end < 0:
                            self._in_cdata = True
                            self._cdata.append([base + s, None])
                            return max(s + 9, n - _trailing_brackets(buf)), None
                        self._cdata.append([base + s, base + end + 3])
                        i = end + 3
                        amp, bang, query = find(b"&", i), find(b"!", i), find(b"?", i)
                        if amp < 0:
                            amp = n
                        if bang < 0:
                            bang = n
                        if query < 0:
                            query = n
                        continue
                    if CDATA_OPEN.startswith(buf[s:]):
                        return s, None
                    return s, stream_error("restricted-xml", "DOCTYPE and comments are not allowed")
                bang = find(b"!", p + 1)
                if bang < 0:
                    bang = n
            else:
                p = query
                if p >= n:
                    break
                if p and buf[p - 1] == 0x3C and base + p - 1 != 0:
                    # Offset 0 is the XML declaration, which _find_header checked.
                    return p - 1, stream_error("restricted-xml",
                                         "processing instructions are not allowed")
                query = find(b"?", p + 1)
                if query < 0:
                    query = n
        if n > i and buf[n - 1] == 0x3C:
            return n - 1, None      # could become '<!' or '<?'
        return n, None


def inside(ranges, offset: int) -> bool:
    """Whether offset is in one of the CDATA sections (its '<![CDATA[' included)."""
    for start, end in ranges:
        if start <= offset and (end is None or offset < end):
            return True
    return False


def overlaps(ranges, lo: int, hi: int) -> bool:
    for start, end in ranges:
        if start < hi and (end is None or end > lo):
            return True
    return False


def _trailing_brackets(buf: bytes) -> int:
    """How many bytes at the end of buf could start ']]>'."""
    if buf.endswith(b"]]"):
        return 2
    if buf.endswith(b"]"):
        return 1
    return 0


def _reference_verdict(buf: bytes, p: int):
    """For an '&' at p that is not an allowed reference: _HOLD or the StreamError."""
    n = len(buf)
    name = _AMP_NAME.match(buf, p)
    if name is not None:
        end = name.end()
        if end < n:
            if buf[end] == 0x3B:
                return stream_error("restricted-xml", "entity references are not allowed")
            return stream_error("not-well-formed", "malformed reference")
        if end - p <= _MAX_REF:
            return _HOLD
        return stream_error("restricted-xml", "entity references are not allowed")
    ref = _AMP_CHARREF.match(buf, p)
    if ref is not None:
        if ref.end() == n and n - p <= _MAX_REF:
            return _HOLD
        return stream_error("not-well-formed", "malformed character reference")
    if p + 1 == n:
        return _HOLD
    return stream_error("not-well-formed", "malformed reference")

