"""
Building and writing stanzas: element(), serialize(), stream_header().

Internally every stanza lives in the canonical content namespace jabber:client (DESIGN.md §1).
serialize() writes it in the namespace the peer's stream uses (jabber:server on s2s,
jabber:component:accept on components) without touching the element.

How the namespace is rewritten: a stanza serialized by libxml2 declares its own namespace on its
start tag (``<message xmlns="jabber:client" ...>``) and every descendant that inherits that
declaration carries no declaration of its own.  Changing the URI of that one declaration in the
output therefore moves exactly the elements bound to it -- the stanza, <body/>, <subject/>, ... --
into the stream's namespace, while children in other namespaces (<x xmlns='jabber:x:data'/>) and
jabber:client elements that declare it themselves (the <message/> inside a XEP-0297 <forwarded/>)
are written unchanged, which is what XEP-0297 requires.  It costs one bytes splice, not a tree copy.
"""
import re

from lxml import etree

from jabberapp.xml.ns import NS_CLIENT, NS_STREAMS, NS_XML

__all__ = ["element", "serialize", "stream_header"]

XML_LANG = f"{{{NS_XML}}}lang"
_CLIENT_PREFIX = f"{{{NS_CLIENT}}}"
_DECLS = {}     # (prefix, old namespace, new namespace) -> (old, new) declaration bytes

# The start of a serialized element: its name, then the namespace declarations that libxml2
# always writes before any attribute.  Values are double-quoted with '"' escaped as &quot;.
_HEAD = re.compile(rb'<[^\s/>]+(?: xmlns(?::[^\s=]+)?="[^"]*")*')

# Characters XML 1.0 does not allow anywhere (§2.2), which no escaping can represent.
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTR_NAME = re.compile(r"[A-Za-z_][-A-Za-z0-9._]*(?::[A-Za-z_][-A-Za-z0-9._]*)?\Z")
_ATTR_ESCAPES = str.maketrans({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;",
    # Escaped so that attribute-value normalisation on the peer cannot turn them into spaces.
    "\t": "&#9;", "\n": "&#10;", "\r": "&#13;",
})


def element(ns: str, name: str, attrs: dict | None = None, text: str | None = None,
            **kw_attrs) -> etree._Element:
    """
    A new element {ns}name that declares ns as its default namespace.

    Attributes come from C{attrs} (keys used as given) and from keyword arguments, whose one
    trailing underscore is dropped so Python keywords can be written (C{type_="get"},
    C{from_=...}).  The key 'xml:lang' means the xml:lang attribute; attributes whose value is
    None are left out.  Elements of the stream namespace get the conventional 'stream' prefix
    (<stream:features/>), which older clients match literally.
    """
    nsmap = {"stream": NS_STREAMS} if ns == NS_STREAMS else {None: ns}
    el = etree.Element(f"{{{ns}}}{name}", nsmap=nsmap)
    if attrs:
        for key, value in attrs.items():
            if value is not None:
                el.set(XML_LANG if key == "xml:lang" else key, value)
    for key, value in kw_attrs.items():
        if value is not None:
            if key.endswith("_"):
                key = key[:-1]
            el.set(XML_LANG if key == "xml:lang" else key, value)
    if text is not None:
        el.text = text
    return el


def serialize(el, stream_ns: str = NS_CLIENT) -> bytes:
    """
    The UTF-8 bytes of C{el} for writing on a stream whose content namespace is C{stream_ns}.

    No XML declaration and no tail are written.  On a jabber:client stream this is plain
    etree.tostring(); on other streams the jabber:client declaration on the top element -- and
    so the stanza and every element inheriting it -- is written as C{stream_ns} instead (see the
    module docstring).  C{el} is never modified.
    """
    out = etree.tostring(el, encoding="utf-8", xml_declaration=False, with_tail=False)
    if stream_ns == NS_CLIENT:
        return out
    rewritten = rebind(out, None, NS_CLIENT, stream_ns)
    if rewritten is out:
        # No default declaration of jabber:client: the stanza may use a prefix for it.
        tag = el.tag
        if isinstance(tag, str) and tag.startswith(_CLIENT_PREFIX) and el.prefix is not None:
            return rebind(out, el.prefix, NS_CLIENT, stream_ns)
    return rewritten


def rebind(out: bytes, prefix: str | None, old_ns: str, new_ns: str) -> bytes:
    """
    Change the declaration of C{old_ns} (for C{prefix}) on the top element of the serialized
    element C{out} to C{new_ns}: every element bound to that declaration changes namespace.
    """
    key = (prefix, old_ns, new_ns)
    decls = _DECLS.get(key)
    if decls is None:
        attr = b' xmlns="' if prefix is None else b" xmlns:" + prefix.encode("utf-8") + b'="'
        decls = (attr + _escape_attr(old_ns) + b'"', attr + _escape_attr(new_ns) + b'"')
        if len(_DECLS) < 256:
            _DECLS[key] = decls
    old, new = decls
    head = _HEAD.match(out)
    at = out.find(old, 0, head.end()) if head is not None else -1
    if at < 0:
        # libxml2 always declares the top element's namespace on its start tag; if it did not,
        # the element was not in old_ns and there is nothing to rewrite.
        return out
    return b"".join((out[:at], new, out[at + len(old):]))


def stream_header(attrs: dict, stream_ns: str) -> bytes:
    """
    The opening bytes of a stream: the XML declaration and the <stream:stream> start tag with
    C{stream_ns} as the default (content) namespace and the 'stream' prefix declared.

    C{attrs} maps attribute names to values, written in order: 'to', 'from', 'id', 'version',
    'xml:lang' (or its Clark name), and prefixed declarations such as 'xmlns:db' for dialback.
    None values are left out.  Values are escaped; a name or value that cannot be written as XML
    raises ValueError (it is our own bug, not the peer's).
    """
    parts = [
        b"<?xml version='1.0'?><stream:stream xmlns='", _escape_attr(stream_ns),
        b"' xmlns:stream='", NS_STREAMS.encode("ascii"), b"'",
    ]
    for key, value in attrs.items():
        if value is None:
            continue
        if key == XML_LANG:
            key = "xml:lang"
        if not _ATTR_NAME.match(key) or key in ("xmlns", "xmlns:stream"):
            raise ValueError(f"cannot write stream header attribute {key!r}")
        parts += (b" ", key.encode("ascii"), b"='", _escape_attr(value), b"'")
    parts.append(b">")
    return b"".join(parts)


def _escape_attr(value: str) -> bytes:
    """C{value} escaped for an attribute value (either quote style) and encoded as UTF-8."""
    if not isinstance(value, str):
        raise TypeError(f"attribute value must be str, not {type(value).__name__}")
    if _INVALID_XML_CHARS.search(value):
        raise ValueError("attribute value contains characters not allowed in XML")
    return value.translate(_ATTR_ESCAPES).encode("utf-8")
