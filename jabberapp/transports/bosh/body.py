"""
The <body/> wrapper of XEP-0124 §6: reading a request's, writing a response's.

A request body is checked by the stream parser's own rules (jabberapp.xml.parser: no DTD,
comments, processing instructions or entities; the size and depth limits), parsed as the one
element of a stream primed for it, and split into its attributes and the raw bytes of its
content: those go to the stream (FramedClientStream.elements_received), which parses them as
stanzas of a c2s stream. Anything that is not one <body/> of the httpbind namespace is a
BadBody (HTTP 400, condition bad-request).
"""
import re

from lxml import etree

from jabberapp.errors import StreamError
from jabberapp.xml import StreamParser
from jabberapp.xml.ns import NS_STREAMS, NS_XML
from jabberapp.xml.restricted import TAG, WS

__all__ = ["BadBody", "Body", "NS_HTTPBIND", "NS_XBOSH", "parse_body", "parse_version",
           "peek_sid", "render_body", "stream_header"]

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"

_BODY = f"{{{NS_HTTPBIND}}}body"
_XML_LANG = f"{{{NS_XML}}}lang"
_XBOSH_PREFIX = f"{{{NS_XBOSH}}}"
_PRIMER = f"<stream:stream xmlns='{NS_HTTPBIND}' xmlns:stream='{NS_STREAMS}'>".encode()
_XMLDECL = re.compile(rb"[ \t\r\n]*<\?xml[ \t\r\n][^?>]*\?>")
_UTF8 = re.compile(rb"""encoding[ \t\r\n]*=[ \t\r\n]*["'](?:utf-8|UTF-8|utf8|UTF8)["']""")
_SID = re.compile(rb"""[ \t\r\n]sid[ \t\r\n]*=[ \t\r\n]*(?:"([^"<&]{1,128})"|'([^'<&]{1,128})')""")


class BadBody(Exception):
    """The request is not one well-formed, allowed <body/> (XEP-0124 bad-request)."""


class Body:
    """
    One request's <body/>: C{attrs} (plain names; 'xml:lang'; XEP-0206 attributes as
    'xmpp:version', 'xmpp:restart') and C{content}, the bytes between its tags (b'' when
    it is empty or holds only whitespace).
    """

    __slots__ = ("attrs", "content")

    def __init__(self, attrs, content=b""):
        self.attrs = attrs
        self.content = content

    def get(self, name, default=None):
        """The attribute C{name}, or C{default}."""
        return self.attrs.get(name, default)

    def integer(self, name, default=None):
        """The attribute C{name} as a non-negative integer, C{default} when absent; a
        BadBody when it is no such integer."""
        value = self.attrs.get(name)
        if value is None:
            return default
        value = value.strip()
        if not value.isdigit() or len(value) > 16:
            raise BadBody(f"{name} is not a non-negative integer")
        return int(value)

    @property
    def empty(self):
        """True when the body carries no payload."""
        return not self.content

    def __repr__(self):
        return f"<Body {self.attrs!r} {len(self.content)} bytes>"


def _attributes(el):
    attrs = {}
    for key, value in el.items():
        if key == _XML_LANG:
            key = "xml:lang"
        elif key.startswith(_XBOSH_PREFIX):
            key = "xmpp:" + key[len(_XBOSH_PREFIX):]
        elif key.startswith("{"):
            continue        # other namespaces' attributes mean nothing here
        attrs[key] = value
    return attrs


def parse_body(data, limit):
    """
    The Body of a request of C{data} (bytes); a BadBody when it is not one <body/> of
    the httpbind namespace, holds what RFC 6120 §11 forbids, or nests too deep. The caller
    checks C{limit} first: bodies longer than it never get here.
    """
    decl = _XMLDECL.match(data)
    if decl is not None:
        if b"encoding" in decl.group() and not _UTF8.search(decl.group()):
            raise BadBody("only UTF-8 is supported")
        data = data[decl.end():]
    parser = StreamParser(max_stanza_size=max(limit, len(data)) + 1)
    try:
        events = parser.feed(_PRIMER)
        events += parser.feed(data)
        events += parser.feed(b"</stream:stream>")
    except StreamError as error:
        raise BadBody(error.condition) from None
    finally:
        parser.close()
    elements = [event for event in events if isinstance(event, etree._Element)]
    if len(elements) != 1 or elements[0].tag != _BODY:
        raise BadBody("the request is not one <body/>")
    body = elements[0]
    content = b""
    if len(body) or (body.text and body.text.strip(" \t\r\n")):
        start = data.find(b"<")
        tag_end = TAG.match(data, start).end()
        content = data[tag_end:data.rfind(b"</")].strip(WS)
    return Body(_attributes(body), content)


def stream_header(body):
    """The stream header a session request or restart stands for (XEP-0206 §5)."""
    header = {key: body.get(key) for key in ("to", "from", "xml:lang")
              if body.get(key) is not None}
    header["version"] = body.get("xmpp:version") or "1.0"
    return header


def parse_version(text):
    """'1.6' -> (1, 6); None when absent or malformed."""
    if not text:
        return None
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)


def peek_sid(data):
    """The 'sid' attribute of the <body/> start tag at the head of C{data} (a request too
    large to parse), or None: it names the session a refusal terminates."""
    start = data.find(b"<body")
    if start < 0 or start > 512:
        return None
    tag = TAG.match(data, start)
    if tag is None:
        return None
    found = _SID.search(data, start, tag.end())
    if found is None:
        return None
    return (found.group(1) or found.group(2)).decode("utf-8", "replace")


def _escape(value):
    return (str(value).replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
            .replace('"', "&quot;"))


def render_body(attrs, payload=b""):
    """
    A response's <body/> as bytes: C{attrs} (name -> value; None values left out; names
    'xmpp:...' and 'xml:lang' as they are) around C{payload}, the elements already
    serialised standalone (each declares its namespace).
    """
    parts = [b"<body xmlns='", NS_HTTPBIND.encode(), b"'"]
    if any(key.startswith("xmpp:") for key in attrs):
        parts.append(f" xmlns:xmpp='{NS_XBOSH}'".encode())
    if attrs.get("xmpp:version") is not None or attrs.get("condition"):
        parts.append(f" xmlns:stream='{NS_STREAMS}'".encode())
    for key, value in attrs.items():
        if value is not None:
            parts.append(f" {key}='{_escape(value)}'".encode("utf-8"))
    if not payload:
        parts.append(b"/>")
        return b"".join(parts)
    parts.append(b">")
    parts.append(payload)
    parts.append(b"</body>")
    return b"".join(parts)
