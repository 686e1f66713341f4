"""
Tests for jabberapp.xml.parser: the sans-I/O stream parser (RFC 6120 §4, §11) and
parse_element().
"""
import copy
import ctypes
import gc
import os
import random
from unittest import mock

from hypothesis import HealthCheck, given, settings, strategies as st
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.errors import StreamError
from jabberapp.xml import namedict
from jabberapp.xml import parser as parser_module
from jabberapp.xml import (
    NS_CLIENT, NS_COMPONENT, NS_SERVER, StreamClosed, StreamOpened, StreamParser, parse_element,
    serialize,
)

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' "
          b"xml:lang='en'>")
S2S_HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
              b"xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' "
              b"to='example.com' from='example.net' version='1.0'>")

# A valid stream exercising what the parser has to get right across chunk boundaries.
VALID_STREAM = HEADER + (
    "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' type='chat' "
    "id='a>b\"c'><body>Art thou not Rom\u00e9o &amp; a Montague? &#169;&#x1F600; &lt;3 "
    "&gt; &apos; &quot; \U0001F600</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
    "</message>\n  \t\r\n"
    "<iq type='get' id=\"q'1\"><query xmlns='jabber:iq:roster' xml:lang='de'>"
    "<item jid='a@b' name='&lt;&amp;&gt;'><group>one</group></item></query></iq>"
    "<![CDATA[ \n ]]>"
    "<message><body><![CDATA[<not-a-tag> & <!-- still text --> <?pi?> ]]]]><![CDATA[>]]></body>"
    "<x:data xmlns:x='jabber:x:data'><x:field var='a'/></x:data></message> "
    "<presence/><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    "</stream:features>  </stream:stream>\n"
).encode("utf-8")


def describe(events):
    """Events as comparable values: stanzas serialized, markers kept."""
    return [serialize(e) if isinstance(e, etree._Element) else e for e in events]


def feed_chunks(parser, chunks):
    """Feed every chunk; the concatenated events."""
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events


def split(data, size):
    """data cut into pieces of `size` bytes."""
    return [data[i:i + size] for i in range(0, len(data), size)]


def condition(data, chunk=None, **kw):
    """The stream error condition raised for data (fed in chunks of `chunk` bytes), or None."""
    parser = StreamParser(**kw)
    try:
        feed_chunks(parser, [data] if chunk is None else split(data, chunk))
    except StreamError as err:
        return err.condition
    return None


def stanza_of_size(size, name=b"message"):
    """A well-formed stanza of exactly `size` bytes."""
    empty = b"<%s><body></body></%s>" % (name, name)
    return b"<%s><body>%s</body></%s>" % (name, b"x" * (size - len(empty)), name)


def rss_kib():
    """Resident set size of this process, in KiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class StreamEventTests(SynchronousTestCase):
    """What a valid stream turns into."""

    def test_stream_opened(self):
        """The header gives a StreamOpened with its plain attributes and content namespace."""
        events = StreamParser().feed(HEADER)
        self.assertEqual(events, [StreamOpened(
            {"to": "example.com", "version": "1.0", "xml:lang": "en"}, "jabber:client")])

    def test_stanzas_and_close(self):
        """Top-level children come out as elements in jabber:client, then StreamClosed."""
        events = StreamParser().feed(
            HEADER + b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq> <presence/>"
            b"</stream:stream>")
        self.assertEqual([e.tag for e in events[1:3]],
                         [f"{{{NS_CLIENT}}}iq", f"{{{NS_CLIENT}}}presence"])
        self.assertEqual(events[3], StreamClosed())
        self.assertEqual(events[1][0].tag, "{urn:xmpp:ping}ping")

    def test_stanza_is_standalone(self):
        """A returned stanza has no parent, no tail, and declares its own namespace."""
        events = StreamParser().feed(HEADER + b"<message to='a@b'><body>hi</body></message>  ")
        stanza = events[1]
        self.assertIsNone(stanza.getparent())
        self.assertIsNone(stanza.tail)
        self.assertEqual(etree.tostring(stanza),
                         b'<message xmlns="jabber:client" to="a@b"><body>hi</body></message>')

    def test_stream_level_elements(self):
        """Elements in the stream namespace (stream:error) keep their 'stream' prefix."""
        events = StreamParser().feed(
            HEADER + b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            b"</stream:error>")
        self.assertEqual(etree.tostring(events[1]),
                         b'<stream:error xmlns:stream="http://etherx.jabber.org/streams">'
                         b'<conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>')

    def test_header_without_declaration(self):
        """The XML declaration is optional, and may declare UTF-8 and standalone."""
        body = HEADER[len(b"<?xml version='1.0'?>"):]
        self.assertEqual(StreamParser().feed(body)[0].ns, NS_CLIENT)
        decl = b'<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>\n'
        self.assertEqual(StreamParser().feed(decl + body)[0].ns, NS_CLIENT)

    def test_other_stream_prefix(self):
        """Any prefix may bind the stream namespace (RFC 6120 §4.8.5 allows, XML requires)."""
        events = StreamParser().feed(
            b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>"
            b"<iq/></s:stream>")
        self.assertEqual(events[0].ns, NS_CLIENT)
        self.assertEqual(events[2], StreamClosed())

    def test_self_closing_root(self):
        """<stream:stream/> opens and closes the stream at once."""
        events = StreamParser().feed(
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>  ")
        self.assertEqual(events, [StreamOpened({}, None), StreamClosed()])

    def test_chunked_equals_whole(self):
        """Byte-by-byte, odd-sized and whole feeding of a valid stream give the same events."""
        whole = describe(StreamParser().feed(VALID_STREAM))
        self.assertIsInstance(whole[0], StreamOpened)
        self.assertEqual(whole[-1], StreamClosed())
        self.assertEqual(len(whole), 7)
        for size in (1, 2, 3, 7, 64, 1000):
            self.assertEqual(describe(feed_chunks(StreamParser(), split(VALID_STREAM, size))),
                             whole, f"chunk size {size}")

    def test_chunked_equals_whole_small_pieces(self):
        """Internal pieces smaller than the stream (a small stanza limit) change nothing."""
        whole = describe(StreamParser().feed(VALID_STREAM))
        self.assertEqual(describe(StreamParser(max_stanza_size=400).feed(VALID_STREAM)), whole)

    def test_text_content(self):
        """References, CDATA and UTF-8 arrive as text; CDATA markup inside stays text."""
        events = StreamParser().feed(VALID_STREAM)
        self.assertEqual(events[1][0].text,
                         "Art thou not Rom\u00e9o & a Montague? \u00a9\U0001F600 <3 > ' \" "
                         "\U0001F600")
        self.assertEqual(events[1].get("id"), 'a>b"c')
        self.assertEqual(events[3][0].text,
                         "<not-a-tag> & <!-- still text --> <?pi?> ]]>")
        self.assertEqual(events[2][0].get("{http://www.w3.org/XML/1998/namespace}lang"), "de")

    def test_whitespace_keepalives(self):
        """Whitespace between stanzas produces no events and is not kept."""
        parser = StreamParser()
        parser.feed(HEADER)
        for _ in range(1000):
            self.assertEqual(parser.feed(b" \n"), [])
        self.assertIsNone(parser._root.text)
        self.assertEqual(len(parser._root), 0)
        self.assertEqual(len(parser.feed(b"<iq/>\t")), 1)

    def test_keepalives_beyond_limit(self):
        """Far more keepalive bytes than max_stanza_size never count as a stanza."""
        parser = StreamParser(max_stanza_size=100)
        parser.feed(HEADER + b"<iq/>")
        for _ in range(20000):
            self.assertEqual(parser.feed(b" "), [])
        self.assertEqual(len(parser.feed(b"<iq/>")), 1)

    def test_large_whitespace_run(self):
        """A megabyte of whitespace between stanzas is ignored without being stored."""
        parser = StreamParser(max_stanza_size=1000)
        parser.feed(HEADER + b"<iq/>")
        self.assertEqual(parser.feed(b" " * 1_000_000), [])
        self.assertIsNone(parser._root.text)
        self.assertEqual(len(parser.feed(b"<iq/>")), 1)

    def test_root_stays_empty(self):
        """10,000 stanzas leave the stream root childless and memory flat."""
        parser = StreamParser()
        parser.feed(HEADER)
        chunk = (b"<message to='juliet@example.com' type='chat'><body>hello there</body>"
                 b"<active xmlns='http://jabber.org/protocol/chatstates'/></message> ") * 100
        for _ in range(20):                      # warm up allocator pools
            parser.feed(chunk)
        before = rss_kib()
        count = 0
        for _ in range(100):
            count += len(parser.feed(chunk))
        self.assertEqual(count, 10_000)
        self.assertEqual(len(parser._root), 0)
        self.assertIsNone(parser._root.text)
        self.assertLess(rss_kib() - before, 2048)

    def test_reset(self):
        """After reset() a new document starts, XML declaration and header included."""
        parser = StreamParser()
        parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        parser.reset()
        events = parser.feed(HEADER + b"<iq/>")
        self.assertIsInstance(events[0], StreamOpened)
        self.assertEqual(len(events), 2)

    def test_reset_frees_the_old_document_parser(self):
        """reset() closes the previous lxml parser at once: lxml's pull parser sits in a
        reference cycle, and an unclosed one would hold its libxml2 context until the
        cyclic garbage collector ran."""
        closed = []

        class Recording(etree.XMLPullParser):
            def close(self):
                closed.append(self)
                return super().close()

        with mock.patch.object(parser_module.etree, "XMLPullParser", Recording):
            parser = StreamParser()
            parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            self.assertEqual(closed, [])
            parser.reset()
            self.assertEqual(len(closed), 1)
            self.assertEqual(len(parser.feed(HEADER + b"<iq/>")), 2)
            parser.close()
            self.assertEqual(len(closed), 2)

    def test_feed_after_close(self):
        """Once close()d (the connection is gone) the parser refuses more bytes."""
        parser = StreamParser()
        parser.feed(HEADER)
        parser.close()
        self.assertRaises(StreamError, parser.feed, b"<iq/>")

    def test_reset_after_error(self):
        """reset() also revives a parser that raised."""
        parser = StreamParser()
        self.assertRaises(StreamError, parser.feed, HEADER + b"<!-- -->")
        parser.reset()
        self.assertEqual(len(parser.feed(HEADER + b"<iq/>")), 2)

    def test_feed_types(self):
        """bytearray and memoryview are accepted; str is our own bug and a TypeError."""
        parser = StreamParser()
        parser.feed(bytearray(HEADER))
        self.assertEqual(len(parser.feed(memoryview(b"<iq/>"))), 1)
        self.assertRaises(TypeError, parser.feed, "<iq/>")

    def test_empty_feed(self):
        """Feeding nothing, before or after the header, returns no events."""
        parser = StreamParser()
        self.assertEqual(parser.feed(b""), [])
        parser.feed(HEADER)
        self.assertEqual(parser.feed(b""), [])


class ClosedStreamTests(SynchronousTestCase):
    """After </stream:stream> only whitespace may follow (RFC 6120 §4.4)."""

    def test_whitespace_after_close(self):
        """Whitespace after the close, in the same or later feeds, is ignored."""
        parser = StreamParser()
        events = parser.feed(HEADER + b"</stream:stream> \n")
        self.assertEqual(events[-1], StreamClosed())
        self.assertEqual(parser.feed(b"\r\n\t "), [])

    def test_element_after_close(self):
        """An element after the close is not-well-formed, in the same feed or a later one."""
        self.assertEqual(condition(HEADER + b"</stream:stream><iq/>"), "not-well-formed")
        parser = StreamParser()
        parser.feed(HEADER + b"</stream:stream>")
        with self.assertRaises(StreamError) as cm:
            parser.feed(b" <iq/>")
        self.assertEqual(cm.exception.condition, "not-well-formed")

    def test_restricted_after_close(self):
        """Even a comment after the close is reported as not-well-formed: nothing is parsed."""
        self.assertEqual(condition(HEADER + b"</stream:stream><!-- -->"), "not-well-formed")
        self.assertEqual(condition(HEADER + b"</stream:stream>  <"), "not-well-formed")

    def test_text_before_close(self):
        """Text between the last stanza and the close is bad-format."""
        self.assertEqual(condition(HEADER + b"<iq/>oops</stream:stream>"), "bad-format")


class WellFormednessTests(SynchronousTestCase):
    """XML 1.0 and Namespaces in XML violations are not-well-formed (RFC 6120 §4.9.3.13)."""

    def assertCondition(self, data, expected):
        """data gives `expected` whether fed whole or byte by byte."""
        self.assertEqual(condition(data), expected)
        self.assertEqual(condition(data, chunk=1), expected)

    def test_mismatched_tags(self):
        """A mismatched end tag is not-well-formed."""
        self.assertCondition(HEADER + b"<message><body></message>", "not-well-formed")

    def test_stanza_left_open_at_close(self):
        """Closing the stream inside a stanza is not-well-formed."""
        self.assertCondition(HEADER + b"<message></stream:stream>", "not-well-formed")

    def test_bad_utf8(self):
        """Invalid UTF-8 (a stray continuation byte, an overlong form) is not-well-formed."""
        self.assertCondition(HEADER + b"<message><body>\xff</body></message>", "not-well-formed")
        self.assertCondition(HEADER + b"<message><body>\xc0\xaf</body></message>",
                             "not-well-formed")
        self.assertCondition(HEADER + b"<iq id='\xed\xa0\x80'/>", "not-well-formed")

    def test_invalid_characters(self):
        """Characters XML forbids, literal or as references, are not-well-formed."""
        self.assertCondition(HEADER + b"<iq>\x01</iq>", "not-well-formed")
        self.assertCondition(HEADER + b"<iq>&#0;</iq>", "not-well-formed")
        self.assertCondition(HEADER + b"<iq>&#xD800;</iq>", "not-well-formed")

    def test_malformed_references(self):
        """An '&' that starts no reference, or one without ';', is not-well-formed."""
        for body in (b"& b", b"&amp b", b"&#x;", b"&#12a;", b"&;", b"&#;"):
            self.assertCondition(HEADER + b"<iq>" + body + b"</iq>", "not-well-formed")

    def test_lt_in_attribute(self):
        """A literal '<' in an attribute value is rejected."""
        self.assertIsNotNone(condition(HEADER + b"<iq a='<'/>"))

    def test_duplicate_attribute(self):
        """A repeated attribute is not-well-formed."""
        self.assertCondition(HEADER + b"<iq a='1' a='2'/>", "not-well-formed")

    def test_undeclared_prefix(self):
        """An undeclared element or attribute prefix is not-well-formed (lxml only logs it)."""
        self.assertCondition(HEADER + b"<iq><x:query/></iq>", "not-well-formed")
        self.assertCondition(HEADER + b"<iq x:id='1'/>", "not-well-formed")
        self.assertCondition(b"<stream:stream xmlns='jabber:client'>", "not-well-formed")

    def test_empty_prefix_declaration(self):
        """xmlns:p='' is not allowed by Namespaces in XML 1.0."""
        self.assertCondition(HEADER + b"<iq xmlns:p=''/>", "not-well-formed")

    def test_undeclared_prefix_after_warnings(self):
        """libxml2 stops logging warnings after 100; later namespace errors are still seen."""
        stanzas = b"<iq xmlns='relative'/>" * 150
        self.assertEqual(condition(HEADER + stanzas + b"<x:iq/>"), "not-well-formed")

    def test_text_before_header(self):
        """Text before the stream header is not-well-formed."""
        self.assertCondition(b"hello" + HEADER, "not-well-formed")
        self.assertCondition(b"  hello <stream:stream>", "not-well-formed")

    def test_misplaced_declaration(self):
        """An XML declaration after whitespace is a processing instruction: restricted-xml."""
        self.assertCondition(b" " + HEADER, "restricted-xml")

    def test_malformed_declaration(self):
        """An XML declaration that does not parse is not-well-formed."""
        self.assertCondition(b"<?xml version='1.0' foo='bar'?><stream:stream>",
                             "not-well-formed")

    def test_nul(self):
        """A NUL byte is not-well-formed, even inside CDATA where libxml2 would stall on it."""
        self.assertCondition(HEADER + b"<iq><![CDATA[ \x00 ]]></iq><iq/>", "not-well-formed")
        self.assertCondition(HEADER + b"<iq>\x00</iq>", "not-well-formed")

    def test_byte_order_mark(self):
        """RFC 6120 §11.6: U+FEFF is a character, so a leading UTF-8 BOM is not-well-formed."""
        self.assertCondition(b"\xef\xbb\xbf" + HEADER, "not-well-formed")

    def test_dead_parser(self):
        """After an error every later feed() raises the same condition."""
        parser = StreamParser()
        self.assertRaises(StreamError, parser.feed, HEADER + b"<a></b>")
        for data in (b"", b"<iq/>", b" "):
            with self.assertRaises(StreamError) as cm:
                parser.feed(data)
            self.assertEqual(cm.exception.condition, "not-well-formed")


class RestrictedXMLTests(SynchronousTestCase):
    """RFC 6120 §11.1: no comments, PIs, DTDs or entity references but the predefined ones."""

    def assertRestricted(self, data):
        """data is restricted-xml whole, byte by byte and in 5-byte chunks."""
        for chunk in (None, 1, 5):
            self.assertEqual(condition(data, chunk=chunk), "restricted-xml", f"chunk {chunk}")

    def test_comment_in_stanza(self):
        """A comment inside a stanza is restricted-xml."""
        self.assertRestricted(HEADER + b"<message><!-- hi --></message>")

    def test_comment_between_stanzas(self):
        """A comment between stanzas is restricted-xml."""
        self.assertRestricted(HEADER + b"<iq/><!-- hi --><iq/>")

    def test_comment_before_header(self):
        """A comment before the stream header is restricted-xml."""
        self.assertRestricted(b"<?xml version='1.0'?><!-- hi -->" + HEADER[21:])
        self.assertRestricted(b"<!-- hi -->" + HEADER[21:])

    def test_doctype(self):
        """A DOCTYPE, with or without internal subset, is restricted-xml."""
        self.assertRestricted(b"<?xml version='1.0'?><!DOCTYPE stream:stream>" + HEADER[21:])
        self.assertRestricted(b"<!DOCTYPE x SYSTEM 'http://example.com/x.dtd'>" + HEADER[21:])
        self.assertRestricted(HEADER + b"<iq><!DOCTYPE x></iq>")

    def test_billion_laughs(self):
        """The billion laughs DTD is rejected before anything is expanded."""
        lol = (b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
               + b"".join(b"<!ENTITY lol%d '%s'>" % (i, b"&lol%d;" % (i - 1) * 10 if i > 1
                                                      else b"&lol;" * 10) for i in range(1, 10))
               + b"]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>&lol9;")
        self.assertRestricted(lol)

    def test_external_entity(self):
        """An external entity (XXE) is rejected and never fetched."""
        self.assertRestricted(b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
                              + HEADER[21:] + b"<iq>&e;</iq>")

    def test_processing_instruction(self):
        """A processing instruction anywhere is restricted-xml."""
        self.assertRestricted(HEADER + b"<iq><?php echo 1; ?></iq>")
        self.assertRestricted(HEADER + b"<?pi?>")
        self.assertRestricted(b"<?xml version='1.0'?><?xml-stylesheet href='a'?>" + HEADER[21:])
        self.assertRestricted(b"<?xml-stylesheet href='a'?>" + HEADER[21:])

    def test_second_declaration(self):
        """An XML declaration inside the stream is a processing instruction."""
        self.assertRestricted(HEADER + b"<?xml version='1.0'?>")

    def test_entity_reference_in_text(self):
        """An undeclared entity reference in text is restricted-xml."""
        self.assertRestricted(HEADER + b"<message><body>&nbsp;</body></message>")

    def test_entity_reference_in_attribute(self):
        """An entity reference in an attribute value is restricted-xml."""
        self.assertRestricted(HEADER + b"<iq id='&foo;'/>")
        self.assertRestricted(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'"
                              b" to='&foo;'>")

    def test_long_entity_name(self):
        """An overlong entity name is rejected without waiting for its ';'."""
        self.assertEqual(condition(HEADER + b"<iq>&" + b"a" * 100), "restricted-xml")

    def test_predefined_references_split(self):
        """Predefined and character references split across feeds are accepted."""
        for ref in (b"&amp;", b"&lt;", b"&gt;", b"&apos;", b"&quot;", b"&#65;", b"&#x41;"):
            data = HEADER + b"<iq a='" + ref + b"'>" + ref + b"</iq>"
            events = feed_chunks(StreamParser(), split(data, 1))
            self.assertEqual(len(events), 2, ref)

    def test_cdata_allowed(self):
        """CDATA sections are plain XML (RFC 6120 §11.1 does not forbid them)."""
        events = feed_chunks(StreamParser(), split(
            HEADER + b"<iq><![CDATA[ <!-- x --> &foo; <?pi?> <!DOCTYPE> ]]></iq>", 3))
        self.assertEqual(events[1].text, " <!-- x --> &foo; <?pi?> <!DOCTYPE> ")

    def test_cdata_lookalike(self):
        """'<![' that is not '<![CDATA[' is restricted-xml (a DTD conditional section)."""
        self.assertRestricted(HEADER + b"<iq><![IGNORE[ x ]]></iq>")

    def test_cdata_then_comment(self):
        """A comment right after a CDATA section is still caught."""
        self.assertRestricted(HEADER + b"<iq><![CDATA[x]]><!--c--></iq>")


class EncodingTests(SynchronousTestCase):
    """RFC 6120 §11.6: UTF-8 only."""

    def test_declared_latin1(self):
        """A declaration naming another encoding is unsupported-encoding."""
        for enc in (b"ISO-8859-1", b"UTF-16", b"us-ascii"):
            data = b"<?xml version='1.0' encoding='" + enc + b"'?>" + HEADER[21:]
            self.assertEqual(condition(data), "unsupported-encoding")
            self.assertEqual(condition(data, chunk=1), "unsupported-encoding")

    def test_declared_utf8(self):
        """encoding='utf-8' in any case is accepted."""
        for enc in (b"UTF-8", b"utf-8", b"Utf-8"):
            data = b"<?xml version='1.0' encoding='" + enc + b"'?>" + HEADER[21:]
            self.assertIsNone(condition(data))

    def test_utf16(self):
        """UTF-16 or UTF-32 data, with or without byte order mark, is unsupported-encoding."""
        text = HEADER.decode("utf-8")
        for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
            self.assertEqual(condition(text.encode(codec)), "unsupported-encoding", codec)
            self.assertEqual(condition(text.encode(codec), chunk=1), "unsupported-encoding",
                             codec)


class StreamHeaderTests(SynchronousTestCase):
    """The root element must be <stream:stream> (RFC 6120 §4.8)."""

    def test_wrong_namespace(self):
        """A stream element in another namespace is invalid-namespace (RFC 6120 §4.8.1)."""
        self.assertEqual(condition(b"<stream:stream xmlns:stream='urn:wrong'>"),
                         "invalid-namespace")
        self.assertEqual(condition(b"<html xmlns='http://www.w3.org/1999/xhtml'>"),
                         "invalid-namespace")

    def test_unprefixed_stream(self):
        """<stream> without the stream prefix is bad-namespace-prefix (RFC 6120 §4.9.3.2)."""
        self.assertEqual(condition(b"<stream xmlns='jabber:client' to='example.com'>"),
                         "bad-namespace-prefix")
        self.assertEqual(condition(b"<stream>"), "bad-namespace-prefix")

    def test_wrong_element(self):
        """Another element of the stream namespace as root is bad-format."""
        self.assertEqual(
            condition(b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"),
            "bad-format")

    def test_header_too_large(self):
        """A header longer than max_header_size is a policy-violation, even unfinished."""
        big = HEADER[:-1] + b" id='" + b"x" * 9000 + b"'>"
        self.assertEqual(condition(big), "policy-violation")
        self.assertEqual(condition(big, chunk=100), "policy-violation")
        self.assertEqual(condition(HEADER[:-1] + b" a='" + b"x" * 9000), "policy-violation")
        self.assertIsNone(condition(big, max_header_size=10000))

    def test_endless_whitespace_before_header(self):
        """Whitespace before the header counts towards the header limit."""
        self.assertEqual(condition(b" " * 10000, chunk=1000), "policy-violation")


class TextBetweenStanzasTests(SynchronousTestCase):
    """
    Non-whitespace text directly inside <stream:stream> is bad-format: it is well-formed
    XML (so not not-well-formed), we do not validate against a schema (so not invalid-xml),
    and RFC 6120 only allows whitespace there (§4.6.1 keepalives); bad-format is "XML that
    cannot be processed" (§4.9.3.1).  Prosody drops such text silently; we prefer to say so.
    """

    def assertBadFormat(self, data):
        """data is bad-format whole and byte by byte."""
        self.assertEqual(condition(data), "bad-format")
        self.assertEqual(condition(data, chunk=1), "bad-format")

    def test_text_after_header(self):
        """Text right after the header is bad-format."""
        self.assertBadFormat(HEADER + b"hello<iq/>")

    def test_text_between_stanzas(self):
        """Text between two stanzas is bad-format."""
        self.assertBadFormat(HEADER + b"<iq/> x <iq/>")

    def test_trailing_text(self):
        """Text after the last stanza is reported without waiting for more data."""
        self.assertBadFormat(HEADER + b"<iq/>hello")
        self.assertBadFormat(HEADER + b"hello")

    def test_trailing_text_after_cdata(self):
        """Trailing text is caught even when the same feed held a CDATA section."""
        self.assertBadFormat(HEADER + b"<iq><![CDATA[x]]></iq>hello")

    def test_non_ascii_space(self):
        """Only XML whitespace is allowed: a no-break space is text."""
        self.assertBadFormat(HEADER + "<iq/>\u00a0<iq/>".encode("utf-8"))

    def test_cdata_text(self):
        """Text in a CDATA section directly in the stream is text too."""
        self.assertEqual(condition(HEADER + b"<![CDATA[x]]><iq/>"), "bad-format")


class LimitTests(SynchronousTestCase):
    """Size and depth limits are policy-violation (STYLE.md §5, Prosody's behaviour)."""

    LIMIT = 100

    def test_exact_size(self):
        """A stanza of max_stanza_size bytes passes, one byte more does not, in any chunking."""
        for chunk in (None, 1, 2, 7, 33, 99, 100, 101):
            ok = HEADER + b"<iq/>\n  " + stanza_of_size(self.LIMIT) + b" <iq/>"
            self.assertIsNone(condition(ok, chunk, max_stanza_size=self.LIMIT), chunk)
            big = HEADER + b"<iq/>\n  " + stanza_of_size(self.LIMIT + 1) + b" <iq/>"
            self.assertEqual(condition(big, chunk, max_stanza_size=self.LIMIT),
                             "policy-violation", chunk)

    def test_counted_from_start_tag(self):
        """Whitespace and earlier stanzas in the same chunk do not count."""
        data = HEADER + (b" " * 500 + stanza_of_size(self.LIMIT)) * 20
        events = StreamParser(max_stanza_size=self.LIMIT).feed(data)
        self.assertEqual(len(events), 21)

    def test_self_closing_stanza_size(self):
        """A self-closing stanza is measured too."""
        exact = b"<iq a='" + b"x" * (self.LIMIT - 10) + b"'/>"
        self.assertEqual(len(exact), self.LIMIT)
        self.assertIsNone(condition(HEADER + exact + exact, 1, max_stanza_size=self.LIMIT))
        self.assertEqual(condition(HEADER + exact[:-3] + b"x'/>", 3,
                                   max_stanza_size=self.LIMIT), "policy-violation")

    def test_cdata_between_stanzas(self):
        """Whitespace CDATA between stanzas is neither a stanza nor charged to the next one."""
        data = HEADER + b"<![CDATA[  ]]>" + b" " * 500 + stanza_of_size(self.LIMIT)
        for chunk in (None, 1, 30):
            self.assertIsNone(condition(data, chunk, max_stanza_size=self.LIMIT), chunk)

    def test_nonzas_are_limited(self):
        """Every top-level element counts, not only stanzas."""
        self.assertEqual(condition(HEADER + stanza_of_size(self.LIMIT + 1, b"auth"),
                                   max_stanza_size=self.LIMIT), "policy-violation")

    def test_tricky_stanzas_at_limit(self):
        """'>' in attributes and '<' in CDATA do not confuse the byte accounting."""
        pad = b"<iq a='>>' b=\"'>\"><x><![CDATA[<a><b></b><c/>]]></x></iq>"
        exact = b"<message a='>'><x/><![CDATA[<<<<>>>]]><y a='&lt;'/></message>"
        exact = exact[:-10] + b"z" * (self.LIMIT - len(exact)) + exact[-10:]
        self.assertEqual(len(exact), self.LIMIT)
        for chunk in (None, 1, 13, 150):
            self.assertIsNone(
                condition(HEADER + pad + b" " + exact + pad + exact, chunk,
                          max_stanza_size=self.LIMIT), chunk)
            over = exact[:-10] + b"z" + exact[-10:]
            self.assertEqual(condition(HEADER + pad + over, chunk, max_stanza_size=self.LIMIT),
                             "policy-violation", chunk)

    def test_endless_text_node(self):
        """An unterminated text node is cut off at the limit, long before it ends."""
        limit = 262144
        parser = StreamParser()
        parser.feed(HEADER + b"<message><body>")
        before = rss_kib()
        fed = 0
        with self.assertRaises(StreamError) as cm:
            while fed < 10 * limit:
                parser.feed(b"a" * 4096)
                fed += 4096
                self.assertLess(len(parser._pending), 64)
        self.assertEqual(cm.exception.condition, "policy-violation")
        self.assertLessEqual(fed, limit)
        self.assertLess(rss_kib() - before, 4096)

    def test_endless_start_tag(self):
        """A start tag that never ends (open attribute value full of '>') is cut off."""
        parser = StreamParser(max_stanza_size=1000)
        parser.feed(HEADER + b"<iq a='")
        with self.assertRaises(StreamError) as cm:
            for _ in range(100):
                parser.feed(b">" * 50)
        self.assertEqual(cm.exception.condition, "policy-violation")

    def test_endless_malformed_tag(self):
        """A pending tag hidden behind a fake '<iq/>' in its attribute value is still bounded."""
        parser = StreamParser(max_stanza_size=1000)
        parser.feed(HEADER + b"<iq/><iq a='<iq/>")
        fed = 0
        with self.assertRaises(StreamError) as cm:
            while fed < 1_000_000:
                parser.feed(b" " * 500)
                fed += 500
        self.assertEqual(cm.exception.condition, "policy-violation")
        self.assertLess(fed, 1000 + 4096 + 1000)

    def test_one_huge_feed(self):
        """A single feed far larger than the limit is rejected by the limit."""
        data = HEADER + b"<message><body>" + b"a" * 5_000_000
        self.assertEqual(condition(data), "policy-violation")

    def test_depth(self):
        """max_depth levels inside a stanza are fine; one more is a policy-violation."""
        ok = HEADER + b"<a>" * 4 + b"</a>" * 4
        self.assertIsNone(condition(ok, max_depth=4))
        self.assertIsNone(condition(ok, 1, max_depth=4))
        deep = HEADER + b"<a>" * 5 + b"</a>" * 5
        self.assertEqual(condition(deep, max_depth=4), "policy-violation")
        self.assertEqual(condition(deep, 1, max_depth=4), "policy-violation")

    def test_depth_bomb(self):
        """Nesting beyond libxml2's own limit is a policy-violation too."""
        self.assertEqual(condition(HEADER + b"<a>" * 1000), "policy-violation")
        self.assertEqual(condition(HEADER + b"<a>" * 1000, max_depth=1000), "policy-violation")


class CanonicalNamespaceTests(SynchronousTestCase):
    """canonical_from: s2s and component stanzas are handed over in jabber:client."""

    def test_server_stanzas_become_client(self):
        """Stanzas and their default-namespace children move to jabber:client."""
        events = StreamParser(canonical_from=NS_SERVER).feed(
            S2S_HEADER + b"<message from='a@example.net' to='b@example.com' xml:lang='en'>"
            b"<body>hi</body><x xmlns='jabber:x:data'><field/></x></message>")
        self.assertEqual(events[0].ns, NS_SERVER)
        self.assertEqual(
            etree.tostring(events[1]),
            b'<message xmlns="jabber:client" from="a@example.net" to="b@example.com" '
            b'xml:lang="en"><body>hi</body><x xmlns="jabber:x:data"><field/></x></message>')

    def test_other_namespaces_untouched(self):
        """Dialback and stream elements keep their namespaces."""
        events = StreamParser(canonical_from=NS_SERVER).feed(
            S2S_HEADER + b"<db:result to='example.com' from='example.net'>key</db:result>")
        self.assertEqual(events[1].tag, "{jabber:server:dialback}result")

    def test_explicit_declaration(self):
        """A stanza that declares jabber:server itself is renamed as well."""
        events = StreamParser(canonical_from=NS_SERVER).feed(
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
            b"<message xmlns='jabber:server'><body>x</body></message>")
        self.assertEqual(etree.tostring(events[1]),
                         b'<message xmlns="jabber:client"><body>x</body></message>')

    def test_forwarded_client_message_kept(self):
        """A jabber:client message inside a foreign element stays jabber:client."""
        events = StreamParser(canonical_from=NS_SERVER).feed(
            S2S_HEADER + b"<message><forwarded xmlns='urn:xmpp:forward:0'>"
            b"<message xmlns='jabber:client'><body>x</body></message></forwarded></message>")
        inner = events[1][0][0]
        self.assertEqual(inner.tag, f"{{{NS_CLIENT}}}message")
        self.assertEqual(events[1].tag, f"{{{NS_CLIENT}}}message")

    def test_client_stream_not_renamed(self):
        """Without canonical_from, a jabber:server stream is reported as it is."""
        events = StreamParser().feed(S2S_HEADER + b"<iq/>")
        self.assertEqual(events[1].tag, f"{{{NS_SERVER}}}iq")

    def test_component_limits_exact(self):
        """Renaming a header of another length does not shift the size accounting."""
        header = (b"<stream:stream xmlns='jabber:component:accept' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' to='c.example.com'>")
        for chunk in (None, 1, 50):
            ok = header + stanza_of_size(100) + stanza_of_size(100)
            parser = StreamParser(max_stanza_size=100, canonical_from=NS_COMPONENT)
            events = feed_chunks(parser, [ok] if chunk is None else split(ok, chunk))
            self.assertEqual(events[0].ns, NS_COMPONENT)
            self.assertEqual([e.tag for e in events[1:]], [f"{{{NS_CLIENT}}}message"] * 2)
            self.assertEqual(condition(header + stanza_of_size(101), chunk, max_stanza_size=100,
                                       canonical_from=NS_COMPONENT), "policy-violation")


class ParseElementTests(SynchronousTestCase):
    """parse_element() parses one standalone stanza string."""

    def test_default_namespace(self):
        """Unqualified elements land in jabber:client; children keep their namespaces."""
        iq = parse_element("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(iq.tag, f"{{{NS_CLIENT}}}iq")
        self.assertEqual(iq[0].tag, "{urn:xmpp:ping}ping")
        self.assertIsNone(iq.getparent())

    def test_other_default(self):
        """default_ns chooses the namespace of unqualified elements."""
        self.assertEqual(parse_element(b"<iq/>", NS_SERVER).tag, f"{{{NS_SERVER}}}iq")

    def test_whitespace_around(self):
        """Surrounding whitespace is allowed."""
        self.assertEqual(parse_element("\n  <presence/>\n").tag, f"{{{NS_CLIENT}}}presence")

    def test_errors(self):
        """Anything but one safe, well-formed element is a ValueError."""
        for bad in ("", "<a/><b/>", "<a>", "text", "<a>&x;</a>", "<a><!--c--></a>",
                    "<!DOCTYPE a><a/>", "</stream:stream>"):
            self.assertRaises(ValueError, parse_element, bad)

    def test_cause(self):
        """The StreamError that made parsing fail is chained."""
        with self.assertRaises(ValueError) as cm:
            parse_element("<a>&x;</a>")
        self.assertEqual(cm.exception.__cause__.condition, "restricted-xml")


# -- property-based tests --------------------------------------------------------------

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SEED_STREAM = VALID_STREAM


def only_stream_errors(chunks, rest=False, **kw):
    """Feed chunks (with C{rest}, the parser rests after each when it can); return events, or
    the StreamError condition.  Anything else escapes."""
    parser = StreamParser(**kw)
    events = []
    try:
        for chunk in chunks:
            events += parser.feed(chunk)
            if rest:
                parser.rest()
            root = parser._root
            if root is not None:
                assert len(root) <= 1, "stream root grows"
    except StreamError as err:
        return err.condition
    return events


@st.composite
def mutated_stream(draw):
    """The seed stream with random insertions, deletions and byte flips, cut into chunks."""
    data = bytearray(SEED_STREAM)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "flip", "snippet"]))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        else:
            data[at:at] = draw(st.sampled_from([
                b"<!--", b"-->", b"<?", b"?>", b"<!DOCTYPE", b"&", b"&amp;", b"&foo;", b"<![CDATA[",
                b"]]>", b"<", b">", b"</", b"/>", b"'", b'"', b"x:", b"xmlns:x=''", b"\x00",
                b"\xff", b"\xef\xbb\xbf", b"</stream:stream>", b"<iq>", b"</iq>", b"&#0;",
                b"<?xml version='1.0'?>"]))
    return bytes(data), draw(chunking())


@st.composite
def chunking(draw):
    """A list of cut points, as chunk sizes."""
    return draw(st.lists(st.integers(1, 300), min_size=1, max_size=30))


def cut(data, sizes):
    """data cut into chunks of the given sizes (cycled)."""
    chunks, i, k = [], 0, 0
    while i < len(data):
        size = sizes[k % len(sizes)]
        chunks.append(data[i:i + size])
        i += size
        k += 1
    return chunks


class PropertyTests(SynchronousTestCase):
    """Fuzzing: the parser only ever returns events or raises StreamError."""

    @FUZZ
    @given(st.binary(max_size=2000), chunking())
    def test_arbitrary_bytes(self, data, sizes):
        """Random bytes give events or a StreamError, never another exception."""
        only_stream_errors(cut(data, sizes))

    @FUZZ
    @given(st.binary(max_size=1000), chunking())
    def test_arbitrary_bytes_after_header(self, data, sizes):
        """Random bytes after a valid header give events or a StreamError."""
        only_stream_errors([HEADER] + cut(data, sizes), max_stanza_size=500, max_depth=8)

    @FUZZ
    @given(mutated_stream())
    def test_mutations(self, case):
        """A mutated valid stream gives events or a StreamError, fed in any chunks."""
        data, sizes = case
        only_stream_errors(cut(data, sizes), max_stanza_size=300)
        only_stream_errors(cut(data, sizes), canonical_from=NS_SERVER)

    @FUZZ
    @given(mutated_stream())
    def test_mutations_deterministic(self, case):
        """Successful parses agree whatever the chunking."""
        data, sizes = case
        whole = only_stream_errors([data])
        chunked = only_stream_errors(cut(data, sizes))
        if isinstance(whole, list) and isinstance(chunked, list):
            self.assertEqual(describe(whole), describe(chunked))

    @FUZZ
    @given(mutated_stream())
    def test_mutations_resting(self, case):
        """Resting after every chunk it can changes neither events nor errors."""
        data, sizes = case
        for kw in ({"max_stanza_size": 300}, {"canonical_from": NS_SERVER}):
            plain = only_stream_errors(cut(data, sizes), **kw)
            rested = only_stream_errors(cut(data, sizes), rest=True, **kw)
            if isinstance(plain, list) and isinstance(rested, list):
                plain, rested = describe(plain), describe(rested)
            self.assertEqual(rested, plain)

    @FUZZ
    @given(chunking())
    def test_valid_stream_any_chunking(self, sizes):
        """The valid stream gives the same events in any chunking."""
        self.assertEqual(describe(only_stream_errors(cut(VALID_STREAM, sizes))),
                         describe(StreamParser().feed(VALID_STREAM)))

    @FUZZ
    @given(st.integers(30, 200), st.integers(0, 2**32), chunking())
    def test_limit_exact_under_any_chunking(self, limit, seed, sizes):
        """Random stanzas of random sizes pass exactly when they fit the limit."""
        rnd = random.Random(seed)
        parts, expected = [HEADER], None
        for _ in range(8):
            size = rnd.randint(limit - 3, limit + 1)
            parts.append(b" " * rnd.randint(0, 3) + stanza_of_size(size, b"iq"))
            if size > limit and expected is None:
                expected = "policy-violation"
        result = only_stream_errors(cut(b"".join(parts), sizes), max_stanza_size=limit)
        if expected is None:
            self.assertIsInstance(result, list)
            self.assertEqual(len(result), 9)
        else:
            self.assertEqual(result, expected)


TEXTS = [b"", b"hi", b" \n", b"&amp;", b"&#169;&#x41;", "caf\u00e9 \U0001F600".encode("utf-8"),
         b"<![CDATA[<a x='>'>&amp;</a>]]>", b"&lt;&gt;", b">", b"]]&gt;", b"<![CDATA[]]>"]
ATTR_VALUES = [b"'>'", b"\"'>\"", b"'x&amp;y'", b"''", "'\u00e9'".encode("utf-8"), b'"a]]>b"']


@st.composite
def random_element(draw, depth=0):
    """A random well-formed element with awkward attributes, CDATA and references."""
    name = draw(st.sampled_from([b"a", b"body", b"x"]))
    attrs = draw(st.lists(st.tuples(st.sampled_from([b"a", b"b", b"id"]),
                                    st.sampled_from(ATTR_VALUES)),
                          unique_by=lambda pair: pair[0], max_size=3))
    if draw(st.booleans()):
        attrs.append((b"xmlns", b"'urn:x'"))
    head = b"<" + name + b"".join(b" " + k + b"=" + v for k, v in attrs)
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return head + draw(st.sampled_from([b"/>", b" />"]))
    parts = [draw(st.sampled_from(TEXTS))]
    for _ in range(draw(st.integers(0, 3))):
        parts.append(draw(random_element(depth + 1)))
        parts.append(draw(st.sampled_from(TEXTS)))
    return head + b">" + b"".join(parts) + b"</" + name + b">"


class RandomStreamTests(SynchronousTestCase):
    """Random well-formed streams: exact limits and chunking independence."""

    @FUZZ
    @given(st.lists(random_element(), min_size=1, max_size=6),
           st.lists(st.sampled_from([b"", b" ", b"\n\t ", b"<![CDATA[ ]]>"]), min_size=6,
                    max_size=6),
           chunking())
    def test_random_streams(self, stanzas, gaps, sizes):
        """Any chunking gives the same stanzas; the largest one sets the exact limit."""
        data = HEADER + b"".join(gap + stanza for gap, stanza in zip(gaps, stanzas))
        biggest = max(len(stanza) for stanza in stanzas)
        whole = describe(StreamParser().feed(data))
        self.assertEqual(len(whole), len(stanzas) + 1)
        self.assertEqual(describe(only_stream_errors(cut(data, sizes), max_stanza_size=biggest)),
                         whole)
        self.assertEqual(only_stream_errors(cut(data, sizes), max_stanza_size=biggest - 1),
                         "policy-violation")
        s2s = S2S_HEADER + data[len(HEADER):]
        self.assertEqual(describe(only_stream_errors(cut(s2s, sizes), canonical_from=NS_SERVER,
                                                     max_stanza_size=biggest))[1:], whole[1:])
        self.assertEqual(describe(only_stream_errors(cut(data, sizes), rest=True,
                                                     max_stanza_size=biggest)), whole)
        self.assertEqual(only_stream_errors(cut(data, sizes), rest=True,
                                            max_stanza_size=biggest - 1), "policy-violation")


class FuzzFindingTests(SynchronousTestCase):
    """Inputs the fuzzing target (benchmarks/fuzz) found, kept as regressions."""

    def test_undeclared_prefix_before_a_syntax_error_in_one_chunk(self):
        """An element with an undeclared prefix followed, in the same chunk, by bytes that
        are not UTF-8 is not-well-formed, and the element is not among the stanzas handed
        on before the error (it reached a handler as the tag 'pres:lce')."""
        parser = StreamParser()
        parser.feed(HEADER)
        with self.assertRaises(StreamError) as caught:
            parser.feed(b"<pres:lce/>" + b"\xa8" * 8 + b"\xff" + b"\xa8" * 17 + b"\x02<iq type='")
        self.assertEqual(caught.exception.condition, "not-well-formed")
        self.assertEqual(list(getattr(caught.exception, "events", ())), [])


def unique_stanza(n: int) -> bytes:
    """A stanza with an element name, a namespace and an attribute name no other one uses."""
    return f"<message><x{n} xmlns='urn:n{n}' a{n}='v'/></message>".encode()


class NameDictionaryTests(SynchronousTestCase):
    """Names a peer invents are interned per stream and bounded (jabberapp.xml.namedict)."""

    def setUp(self):
        # Makes the thread's shared lxml context one of ours, as any feed() does.
        StreamParser().feed(HEADER)

    def test_available(self):
        """The installed lxml keeps its name dictionary where namedict reads it (if this
        fails after an lxml upgrade, names are neither scoped nor counted)."""
        self.assertTrue(namedict.available())
        self.assertIsNotNone(namedict.shared_names())
        self.assertIsNotNone(namedict._count_at)    # counts are read, not called for

    def test_distinct_names_limit(self):
        """A stream is ended with policy-violation by the stanza that takes it past
        max_names distinct names, and not before."""
        parser = StreamParser(max_names=300)
        parser.feed(HEADER)
        counts = []
        with self.assertRaises(StreamError) as caught:
            for n in range(1000):
                parser.feed(unique_stanza(n))
                counts.append(parser._names.names_in_use())
        self.assertEqual(caught.exception.condition, "policy-violation")
        self.assertEqual(caught.exception.text, "too many distinct names")
        self.assertLessEqual(counts[-1], 300)
        self.assertGreater(counts[-1] + 3, 300)     # each stanza adds three strings
        self.assertRaises(StreamError, parser.feed, b"<presence/>")

    def test_default_limit(self):
        """The default limit ends a stream of unique names after about
        MAX_STREAM_NAMES / 3 stanzas."""
        parser = StreamParser()
        parser.feed(HEADER)
        data = b"".join(unique_stanza(n) for n in range(namedict.MAX_STREAM_NAMES // 3 + 10))
        with self.assertRaises(StreamError) as caught:
            parser.feed(data)
        self.assertEqual(caught.exception.condition, "policy-violation")

    def test_repeated_names_do_not_count(self):
        """A long stream of ordinary stanzas reusing the same names stays far from the limit."""
        parser = StreamParser(max_names=300)
        parser.feed(HEADER)
        stanza = (b"<message to='juliet@example.com' type='chat' id='abcdef'><body>hello there"
                  b"</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
                  b"<iq type='get' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq><presence/>")
        for _ in range(2000):
            self.assertEqual(len(parser.feed(stanza)), 3)
        self.assertLess(parser._names.names_in_use(), 50)

    def test_stream_names_stay_out_of_the_shared_dictionary(self):
        """Names a stream's peer sent are not interned in the thread's shared dictionary."""
        before = namedict.shared_names()
        parser = StreamParser()
        parser.feed(HEADER)
        stanzas = parser.feed(b"".join(unique_stanza(n) for n in range(2000)))
        parser.close()
        self.assertEqual(len(stanzas), 2000)
        self.assertEqual(stanzas[5][0].tag, "{urn:n5}x5")
        self.assertLess(namedict.shared_names() - before, 20)

    def test_stream_dictionary_freed_with_its_last_stanza(self):
        """A stream's dictionary is kept by its parser and stanzas only, and freed when the
        parser is closed and the last stanza is gone (counted by libxml2's reference count)."""
        parser = StreamParser()
        parser.feed(HEADER)
        stanzas = parser.feed(b"".join(unique_stanza(n) for n in range(100)))
        pointer = namedict._pointer_at(parser._names._context, namedict._DICT_AT)
        self.assertNotEqual(pointer, 0)
        namedict._lib.xmlDictReference(ctypes.c_void_p(pointer))     # ours, to look at it
        try:
            references = ctypes.c_int.from_address(pointer)
            parser.close()
            gc.collect()
            self.assertGreater(references.value, 1)     # the stanzas still use it
            kept = stanzas[-1]
            del stanzas
            gc.collect()
            self.assertGreater(references.value, 1)
            self.assertEqual(kept[0].tag, "{urn:n99}x99")
            del kept
            gc.collect()
            self.assertEqual(references.value, 1)       # only ours is left
        finally:
            namedict._lib.xmlDictFree(ctypes.c_void_p(pointer))

    def test_shared_dictionary_replaced_past_its_limit(self):
        """Past MAX_SHARED_NAMES the thread gets a fresh shared dictionary at the next
        feed(); documents of the old one keep working and can be mixed with new ones."""
        self.patch(namedict, "MAX_SHARED_NAMES", 100)
        old = [etree.Element(f"{{urn:old{n}}}e{n}", {f"a{n}": "v"}) for n in range(200)]
        self.assertGreater(namedict.shared_names(), 100)
        StreamParser().feed(HEADER)
        self.assertLess(namedict.shared_names(), 100)
        wrapper = etree.Element("{urn:xmpp:forward:0}forwarded")
        for el in old[:3]:
            wrapper.append(el)
        del old
        gc.collect()
        self.assertEqual([child.tag for child in wrapper],
                         ["{urn:old0}e0", "{urn:old1}e1", "{urn:old2}e2"])
        self.assertIn(b'<ns0:e2 xmlns:ns0="urn:old2" a2="v"/>', etree.tostring(wrapper))

    def test_stanzas_move_between_dictionaries(self):
        """A stanza from a stream can be appended to the server's elements and copied, and
        outlives its stream with its names intact."""
        parser = StreamParser()
        parser.feed(HEADER)
        stanza, = parser.feed(unique_stanza(7))
        parser.close()
        del parser
        wrapper = etree.Element("{urn:xmpp:forward:0}forwarded")
        wrapper.append(copy.deepcopy(stanza))
        wrapper.append(stanza)
        del stanza
        gc.collect()
        for message in wrapper:
            self.assertEqual((message.tag, message[0].tag, message[0].attrib),
                             (f"{{{NS_CLIENT}}}message", "{urn:n7}x7", {"a7": "v"}))


class RestTests(SynchronousTestCase):
    """An idle parser frees lxml's state (rest) and makes it again at the next feed."""

    def setUp(self):
        parser_module.rest_idle()
        parser_module.rest_idle()   # nothing another test fed is left in the periods

    def test_rest_between_stanzas(self):
        """A parser resting between stanzas holds no lxml parser, and the stanzas after it
        keep the stream header's namespaces."""
        parser = StreamParser()
        parser.feed(HEADER + b"<message/> \n")
        self.assertTrue(parser.rest())
        self.assertIsNone(parser._parser)
        self.assertIsNone(parser._root)
        self.assertIsNone(parser._names)
        events = parser.feed(b"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>"
                             b"<stream:features/><presence xml:lang='de'/></stream:stream>")
        self.assertEqual(describe(events), [
            b'<iq xmlns="jabber:client" type="get" id="1"><query xmlns="jabber:iq:roster"/></iq>',
            b'<stream:features xmlns:stream="http://etherx.jabber.org/streams"/>',
            b'<presence xmlns="jabber:client" xml:lang="de"/>',
            StreamClosed()])

    def test_rest_is_refused_inside_anything(self):
        """Before the header, inside a stanza, a start tag, CDATA or a marker held back, and
        after the end of the stream, the parser does not rest."""
        for data in [b"", HEADER[:20], HEADER + b"<message><body>", HEADER + b"<mess",
                     HEADER + b"<![CDATA[ ", HEADER + b"<message/>&am", HEADER + b"<",
                     HEADER + b"</stream:stream>"]:
            parser = StreamParser()
            parser.feed(data)
            self.assertFalse(parser.rest(), data)
            self.assertIsNotNone(parser._parser, data)
        parser = StreamParser()
        parser.feed(HEADER)
        parser.close()
        self.assertFalse(parser.rest())

    def test_limits_hold_after_waking(self):
        """A stanza fed to a woken parser is limited like any other, counted from its '<'."""
        parser = StreamParser(max_stanza_size=100)
        parser.feed(HEADER)
        self.assertTrue(parser.rest())
        self.assertEqual(len(parser.feed(stanza_of_size(100))), 1)
        self.assertTrue(parser.rest())
        with self.assertRaises(StreamError) as caught:
            parser.feed(stanza_of_size(101))
        self.assertEqual(caught.exception.condition, "policy-violation")

    def test_errors_after_waking(self):
        """Undeclared prefixes, entities and text between stanzas are refused after waking."""
        for data, expected in [(b"<x:message/>", "not-well-formed"),
                               (b"<message>&foo;</message>", "restricted-xml"),
                               (b"text", "bad-format")]:
            parser = StreamParser()
            parser.feed(HEADER)
            self.assertTrue(parser.rest())
            with self.assertRaises(StreamError) as caught:
                parser.feed(data)
            self.assertEqual(caught.exception.condition, expected, data)

    def test_canonical_namespace_after_waking(self):
        """An s2s stream's stanzas are still renamed to jabber:client and its header's other
        prefixes still resolve after the parser rested."""
        parser = StreamParser(canonical_from=NS_SERVER)
        self.assertEqual(parser.feed(S2S_HEADER)[0].ns, NS_SERVER)
        self.assertTrue(parser.rest())
        message, result = parser.feed(b"<message to='a@example.com'/><db:result to='example.com'"
                                      b" from='example.net'>key</db:result>")
        self.assertEqual(message.tag, f"{{{NS_CLIENT}}}message")
        self.assertEqual(result.tag, "{jabber:server:dialback}result")

    def test_rest_frees_the_name_dictionary(self):
        """Resting lets the stream's name dictionary go with its last stanza, and the woken
        parser counts names in a new one, still bounded by max_names."""
        parser = StreamParser(max_names=300)
        parser.feed(HEADER)
        parser.feed(b"".join(unique_stanza(n) for n in range(50)))
        pointer = namedict._pointer_at(parser._names._context, namedict._DICT_AT)
        namedict._lib.xmlDictReference(ctypes.c_void_p(pointer))     # ours, to look at it
        try:
            references = ctypes.c_int.from_address(pointer)
            self.assertTrue(parser.rest())
            gc.collect()
            self.assertEqual(references.value, 1)       # only ours is left
        finally:
            namedict._lib.xmlDictFree(ctypes.c_void_p(pointer))
        parser.feed(b"<presence/>")
        self.assertLess(parser._names.names_in_use(), 20)
        with self.assertRaises(StreamError) as caught:
            parser.feed(b"".join(unique_stanza(n) for n in range(100, 300)))
        self.assertEqual(caught.exception.text, "too many distinct names")

    def test_rest_frees_memory(self):
        """A thousand resting parsers hold almost none of the C memory of a thousand working
        ones (malloc's bytes in use, which RSS would blur)."""
        try:
            mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
        except (OSError, AttributeError):
            self.skipTest("needs glibc's mallinfo2")
        fields = ["arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                  "uordblks", "fordblks", "keepcost"]
        mallinfo2.restype = type("mallinfo2", (ctypes.Structure,),
                                 {"_fields_": [(name, ctypes.c_size_t) for name in fields]})

        def in_use():
            info = mallinfo2()
            return info.uordblks + info.hblkhd

        def grow(rest):
            gc.collect()
            before = in_use()
            parsers = [StreamParser() for _ in range(1000)]
            for parser in parsers:
                parser.feed(HEADER + b"<presence/>")
                if rest:
                    parser.rest()
            gc.collect()
            return in_use() - before, parsers
        working, kept = grow(False)
        resting, kept2 = grow(True)
        self.assertGreater(working, 6000 * 1000)    # about 11 KiB each
        self.assertLess(resting, 1000 * 1000)

    def test_rest_idle_rests_parsers_idle_for_a_whole_period(self):
        """rest_idle() rests the parsers fed in the period before its previous call and not
        since, and no other."""
        idle, busy, late = StreamParser(), StreamParser(), StreamParser()
        idle.feed(HEADER)
        busy.feed(HEADER)
        self.assertEqual(parser_module.rest_idle(), 0)    # both fed in this period
        busy.feed(b"<presence/>")
        late.feed(HEADER)
        self.assertEqual(parser_module.rest_idle(), 1)
        self.assertIsNone(idle._parser)
        self.assertIsNotNone(busy._parser)
        self.assertEqual(parser_module.rest_idle(), 2)    # busy and late were idle since
        self.assertIsNone(busy._parser)
        self.assertEqual(parser_module.rest_idle(), 0)    # nothing fed: nothing to look at
        self.assertEqual(len(idle.feed(b"<presence/>")), 1)

    def test_finished_parsers_are_forgotten(self):
        """A closed parser, one whose stream ended, one that died of an error, and the one
        parse_element() used are not kept for rest_idle()."""
        closed, ended, dead = StreamParser(), StreamParser(), StreamParser()
        for parser in (closed, ended, dead):
            parser.feed(HEADER)
        closed.close()
        ended.feed(b"</stream:stream>")
        self.assertRaises(StreamError, dead.feed, b"<!-- -->")
        parse_element("<presence/>")
        self.assertEqual(parser_module._RECENT.fed, set())
        self.assertEqual(parser_module.rest_idle(), 0)
        self.assertEqual(parser_module.rest_idle(), 0)
