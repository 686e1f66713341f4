"""
Stage 2 of StreamParser (see the theory of operation in jabberapp.xml.parser): finding the
stream header's start tag while it is buffered, with the checks that come before it (no byte
order mark, UTF-8 only, the XML declaration, no DOCTYPE or processing instruction), and the
canonical_from rewrite of its default namespace.
"""
import re

from jabberapp.xml.ns import NS_CLIENT
from jabberapp.xml.restricted import TAG, WS, stream_error

__all__ = ["HeaderStage"]

_WS_RUN = re.compile(rb"[ \t\r\n]*")
_XMLDECL = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:'1\.[0-9]+'|\"1\.[0-9]+\")"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*"
    rb"(?:'([A-Za-z][-A-Za-z0-9._]*)'|\"([A-Za-z][-A-Za-z0-9._]*)\"))?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:'(?:yes|no)'|\"(?:yes|no)\"))?"
    rb"[ \t\r\n]*\?>")
_HEADER_NAME = re.compile(rb"<[^ \t\r\n/>]+")
_HEADER_ATTR = re.compile(rb"""[ \t\r\n]+([^ \t\r\n=/>]+)[ \t\r\n]*=[ \t\r\n]*("[^"]*"|'[^']*')""")


class HeaderStage:
    """
    The header methods of StreamParser, a mixin: it uses the parser's C{_header_tag_at} (the
    offset of the header's '<' while its start tag is incomplete), C{_canonical_from} and
    C{_declared_ns}.
    """

    def _find_header(self, buf: bytes):
        """(offset of '<', offset after '>') of the stream header's start tag, or None."""
        n = len(buf)
        b0 = buf[0]
        if b0 == 0xEF:
            if buf.startswith(b"\xef\xbb\xbf"):
                # RFC 6120 §11.6: a U+FEFF is never a byte order mark on an XMPP stream,
                # so this is a character before the root element.
                raise stream_error("not-well-formed", "byte order mark before the stream header")
            if n < 3:
                return None
        if b0 in (0x00, 0xFE, 0xFF) or (n > 1 and buf[1] == 0):
            # UTF-16 or UTF-32, with or without a byte order mark (RFC 6120 §11.6).
            raise stream_error("unsupported-encoding")
        i = 0
        if buf.startswith(b"<?"):
            decl = _XMLDECL.match(buf)
            if decl is None:
                if n >= 6 and not (buf[2:5] == b"xml" and buf[5] in WS):
                    raise stream_error("restricted-xml", "processing instructions are not allowed")
                if buf.find(b"?>") >= 0:
                    raise stream_error("not-well-formed", "malformed XML declaration")
                return None
            encoding = decl.group(1) or decl.group(2)
            if encoding is not None and encoding.lower() != b"utf-8":
                raise stream_error("unsupported-encoding")
            i = decl.end()
        i = _WS_RUN.match(buf, i).end()
        if i == n:
            return None
        if buf[i] != 0x3C:
            raise stream_error("not-well-formed", "text before the stream header")
        if i + 1 == n:
            return None
        if buf[i + 1] == 0x21:
            raise stream_error("restricted-xml", "DOCTYPE and comments are not allowed")
        if buf[i + 1] == 0x3F:
            raise stream_error("restricted-xml", "processing instructions are not allowed")
        tag = TAG.match(buf, i)
        if tag is None:
            self._header_tag_at = i
            return None
        return i, tag.end()

    def _canonical_header(self, header: bytes, tag_start: int) -> bytes:
        """The header with a default namespace of canonical_from declared as jabber:client."""
        name = _HEADER_NAME.match(header, tag_start)
        if name is None:
            return header
        pos = name.end()
        wanted = self._canonical_from.encode("utf-8")
        while True:
            attr = _HEADER_ATTR.match(header, pos)
            if attr is None:
                return header
            if attr.group(1) == b"xmlns" and attr.group(2)[1:-1] == wanted:
                self._declared_ns = self._canonical_from
                quote = attr.group(2)[:1]
                value_at = attr.start(2)
                return b"".join((header[:value_at], quote, NS_CLIENT.encode("ascii"), quote,
                                 header[attr.end(2):]))
            pos = attr.end()
