"""
Tests for jabberapp.xml.serializer: element(), serialize() and stream_header().
"""
import copy

from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.errors import StanzaError, StreamError
from jabberapp.xml import (
    NS_CLIENT, NS_COMPONENT, NS_SERVER, NS_STREAMS, NS_XML, StreamOpened, StreamParser, element,
    parse_element, serialize, stream_header,
)

XML_LANG = f"{{{NS_XML}}}lang"


def parse_on(stream_ns, data, canonical_from=None):
    """The single stanza `data` as parsed from a stream whose content namespace is stream_ns."""
    parser = StreamParser(canonical_from=canonical_from)
    events = parser.feed(stream_header({"to": "example.com"}, stream_ns) + data)
    return events[1]


class ElementTests(SynchronousTestCase):
    """element() builds stanzas and payloads."""

    def test_namespace(self):
        """The element is {ns}name and declares ns as its default namespace."""
        el = element(NS_CLIENT, "iq")
        self.assertEqual(el.tag, "{jabber:client}iq")
        self.assertEqual(el.nsmap, {None: NS_CLIENT})
        self.assertEqual(etree.tostring(el), b'<iq xmlns="jabber:client"/>')

    def test_keyword_attributes(self):
        """Keyword arguments become attributes, one trailing underscore dropped."""
        el = element(NS_CLIENT, "iq", type_="get", id="1", from_="a@b/c")
        self.assertEqual(dict(el.attrib), {"type": "get", "id": "1", "from": "a@b/c"})

    def test_attrs_dict(self):
        """attrs keys are used as given, xml:lang meaning the XML namespace attribute."""
        el = element(NS_CLIENT, "message", {"to": "a@b", "xml:lang": "en", "type_": "x"})
        self.assertEqual(el.get("to"), "a@b")
        self.assertEqual(el.get(XML_LANG), "en")
        self.assertEqual(el.get("type_"), "x")

    def test_none_values_skipped(self):
        """Attributes whose value is None are left out."""
        el = element(NS_CLIENT, "iq", {"to": None}, type_="get", id=None)
        self.assertEqual(dict(el.attrib), {"type": "get"})

    def test_text(self):
        """text becomes the element's text."""
        el = element("urn:xmpp:ping", "ping", text="hi")
        self.assertEqual(etree.tostring(el), b'<ping xmlns="urn:xmpp:ping">hi</ping>')

    def test_stream_namespace_prefix(self):
        """Stream-level elements use the conventional 'stream' prefix."""
        el = element(NS_STREAMS, "features")
        self.assertEqual(etree.tostring(el),
                         b'<stream:features xmlns:stream="http://etherx.jabber.org/streams"/>')

    def test_children_share_declaration(self):
        """Children built separately in the same namespace do not redeclare it."""
        message = element(NS_CLIENT, "message")
        message.append(element(NS_CLIENT, "body", text="x"))
        etree.SubElement(message, f"{{{NS_CLIENT}}}subject").text = "s"
        self.assertEqual(etree.tostring(message),
                         b'<message xmlns="jabber:client"><body>x</body>'
                         b'<subject>s</subject></message>')


class SerializeTests(SynchronousTestCase):
    """serialize() on client streams: plain lxml serialization, as UTF-8."""

    def test_client_is_tostring(self):
        """On a jabber:client stream the output is etree.tostring's, in UTF-8."""
        el = element(NS_CLIENT, "message", to="a@b")
        element_body = element(NS_CLIENT, "body", text="caf\u00e9 \U0001F600")
        el.append(element_body)
        self.assertEqual(serialize(el), etree.tostring(el, encoding="utf-8"))
        self.assertEqual(serialize(el),
                         '<message xmlns="jabber:client" to="a@b"><body>caf\u00e9 \U0001F600'
                         '</body></message>'.encode("utf-8"))

    def test_no_declaration_no_tail(self):
        """Neither an XML declaration nor the element's tail is written."""
        parent = element(NS_CLIENT, "x")
        child = etree.SubElement(parent, f"{{{NS_CLIENT}}}iq")
        child.tail = "tail"
        self.assertEqual(serialize(child, NS_SERVER), b'<iq xmlns="jabber:server"/>')
        self.assertFalse(serialize(child).startswith(b"<?xml"))
        self.assertNotIn(b"tail", serialize(child))

    def test_escaping(self):
        """Text and attribute values are escaped, CR and tabs preserved."""
        el = element(NS_CLIENT, "message", id="a'b\"c<d>&e\tf")
        el.text = "x < y & z > w \r"
        out = serialize(el)
        self.assertEqual(out, b'<message xmlns="jabber:client" '
                              b'id="a\'b&quot;c&lt;d&gt;&amp;e&#9;f">'
                              b'x &lt; y &amp; z &gt; w &#13;</message>')
        again = parse_element(out)
        self.assertEqual((again.get("id"), again.text), (el.get("id"), el.text))

    def test_round_trip(self):
        """A parsed stanza serializes to equivalent XML that parses back to the same tree."""
        source = ("<message to='a@b' xml:lang='en'><body>hi &amp; bye</body>"
                  "<x xmlns='jabber:x:data' type='form'><field var='a'><value>1</value></field></x>"
                  "<p:q xmlns:p='urn:p' p:attr='v'/></message>")
        first = parse_element(source)
        out = serialize(first)
        second = parse_element(out)
        self.assertEqual(serialize(second), out)
        self.assertEqual(second.get(XML_LANG), "en")
        self.assertEqual(second[2].get("{urn:p}attr"), "v")

    def test_stream_error_element(self):
        """StreamError and StanzaError elements serialize with proper namespaces."""
        out = serialize(StreamError("policy-violation", "too big").to_element())
        self.assertTrue(out.startswith(b'<stream:error xmlns:stream="http://etherx.jabber.org/'
                                       b'streams"><policy-violation xmlns="urn:ietf:params:xml:'
                                       b'ns:xmpp-streams"/>'))
        reply = element(NS_CLIENT, "iq", type_="error")
        reply.append(StanzaError("item-not-found").to_element())
        self.assertEqual(serialize(reply, NS_SERVER),
                         b'<iq xmlns="jabber:server" type="error"><error type="cancel">'
                         b'<item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
                         b'</error></iq>')


class ServerNamespaceTests(SynchronousTestCase):
    """serialize() on jabber:server and jabber:component:accept streams."""

    MESSAGE = ("<message from='a@example.com' to='b@example.net' xml:lang='en'>"
               "<body>hi</body><thread>t</thread>"
               "<x xmlns='jabber:x:data'><field var='f'/></x>"
               "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='c@d'>"
               "<body>inner</body></message></forwarded></message>")

    def test_default_namespace_children(self):
        """The stanza and its default-namespace children are written in jabber:server."""
        out = serialize(parse_element(self.MESSAGE), NS_SERVER)
        self.assertTrue(out.startswith(b'<message xmlns="jabber:server" from="a@example.com" '
                                       b'to="b@example.net" xml:lang="en"><body>hi</body>'
                                       b'<thread>t</thread>'))
        reparsed = parse_element(out, NS_SERVER)
        self.assertEqual([child.tag for child in reparsed][:2],
                         [f"{{{NS_SERVER}}}body", f"{{{NS_SERVER}}}thread"])

    def test_foreign_children_untouched(self):
        """Children in other namespaces are written unchanged."""
        reparsed = parse_element(serialize(parse_element(self.MESSAGE), NS_SERVER), NS_SERVER)
        self.assertEqual(reparsed[2].tag, "{jabber:x:data}x")
        self.assertEqual(reparsed[2][0].tag, "{jabber:x:data}field")

    def test_forwarded_stays_client(self):
        """A XEP-0297 forwarded <message xmlns='jabber:client'> keeps its namespace."""
        reparsed = parse_element(serialize(parse_element(self.MESSAGE), NS_SERVER), NS_SERVER)
        inner = reparsed[3][0]
        self.assertEqual(inner.tag, f"{{{NS_CLIENT}}}message")
        self.assertEqual(inner[0].tag, f"{{{NS_CLIENT}}}body")

    def test_not_mutated(self):
        """Serializing for s2s leaves the element as it was."""
        el = parse_element(self.MESSAGE)
        before = etree.tostring(el)
        serialize(el, NS_SERVER)
        self.assertEqual(etree.tostring(el), before)
        self.assertEqual(el.tag, f"{{{NS_CLIENT}}}message")

    def test_text_mentioning_namespace(self):
        """Text or attributes containing the namespace string are never rewritten."""
        el = element(NS_CLIENT, "message", id='xmlns="jabber:client"')
        etree.SubElement(el, f"{{{NS_CLIENT}}}body").text = ' xmlns="jabber:client"'
        out = serialize(el, NS_SERVER)
        reparsed = parse_element(out, NS_SERVER)
        self.assertEqual(reparsed.get("id"), 'xmlns="jabber:client"')
        self.assertEqual(reparsed[0].text, ' xmlns="jabber:client"')
        self.assertEqual(reparsed[0].tag, f"{{{NS_SERVER}}}body")

    def test_built_stanza(self):
        """Stanzas built with element() and appended children are rewritten too."""
        iq = element(NS_CLIENT, "iq", type_="result", id="1")
        iq.append(element("urn:xmpp:ping", "ping"))
        error = etree.SubElement(iq, f"{{{NS_CLIENT}}}error")
        self.assertEqual(serialize(iq, NS_COMPONENT),
                         b'<iq xmlns="jabber:component:accept" type="result" id="1">'
                         b'<ping xmlns="urn:xmpp:ping"/><error/></iq>')
        self.assertEqual(error.tag, f"{{{NS_CLIENT}}}error")

    def test_prefixed_client_stanza(self):
        """A stanza whose jabber:client namespace is bound to a prefix is rewritten as well."""
        el = etree.Element(f"{{{NS_CLIENT}}}presence")     # lxml picks the prefix ns0
        etree.SubElement(el, f"{{{NS_CLIENT}}}show").text = "away"
        reparsed = parse_element(serialize(el, NS_SERVER), NS_SERVER)
        self.assertEqual([reparsed.tag, reparsed[0].tag],
                         [f"{{{NS_SERVER}}}presence", f"{{{NS_SERVER}}}show"])

    def test_other_namespaces_unchanged(self):
        """Elements outside jabber:client are written exactly as on a client stream."""
        result = element("jabber:server:dialback", "result", to="a", from_="b", text="key")
        self.assertEqual(serialize(result, NS_SERVER), serialize(result))
        features = element(NS_STREAMS, "features")
        self.assertEqual(serialize(features, NS_SERVER), serialize(features))

    def test_s2s_round_trip(self):
        """Writing on s2s and parsing with canonical_from gives the original stanza back."""
        original = parse_element(self.MESSAGE)
        wire = serialize(original, NS_SERVER)
        back = parse_on(NS_SERVER, wire, canonical_from=NS_SERVER)
        self.assertEqual(serialize(back), serialize(original))

    def test_deep_copy_independent(self):
        """A deep copy serializes like the original on every stream type."""
        el = parse_element(self.MESSAGE)
        clone = copy.deepcopy(el)
        for ns in (NS_CLIENT, NS_SERVER, NS_COMPONENT):
            self.assertEqual(serialize(clone, ns), serialize(el, ns))


class StreamHeaderTests(SynchronousTestCase):
    """stream_header() writes the opening of our stream."""

    def test_bytes(self):
        """The XML declaration, both namespace declarations and the attributes, in order."""
        header = stream_header({"from": "example.com", "id": "abc", "version": "1.0",
                                "xml:lang": "en"}, NS_CLIENT)
        self.assertEqual(header,
                         b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                         b"xmlns:stream='http://etherx.jabber.org/streams' from='example.com' "
                         b"id='abc' version='1.0' xml:lang='en'>")

    def test_parses_back(self):
        """Our parser reads the header back with the same attributes and namespace."""
        attrs = {"to": "a'b\"c&d<e>", "from": "example.com", "xml:lang": "en", "id": "\u00e9\t"}
        events = StreamParser().feed(stream_header(attrs, NS_SERVER))
        self.assertEqual(events, [StreamOpened(attrs, NS_SERVER)])

    def test_clark_lang_and_none(self):
        """The Clark name of xml:lang is accepted; None values are left out."""
        header = stream_header({XML_LANG: "de", "to": None}, NS_COMPONENT)
        self.assertTrue(header.endswith(b" xml:lang='de'>"))
        self.assertNotIn(b"to=", header)
        self.assertIn(b"xmlns='jabber:component:accept'", header)

    def test_extra_declarations(self):
        """Prefixed declarations such as the dialback namespace can be added."""
        header = stream_header({"xmlns:db": "jabber:server:dialback"}, NS_SERVER)
        events = StreamParser().feed(header + b"<db:result/>")
        self.assertEqual(events[1].tag, "{jabber:server:dialback}result")

    def test_bad_attributes(self):
        """Names we cannot write, or values with characters XML forbids, are ValueErrors."""
        self.assertRaises(ValueError, stream_header, {"a b": "x"}, NS_CLIENT)
        self.assertRaises(ValueError, stream_header, {"xmlns": "x"}, NS_CLIENT)
        self.assertRaises(ValueError, stream_header, {"to": "a\x00b"}, NS_CLIENT)
        self.assertRaises(TypeError, stream_header, {"to": 5}, NS_CLIENT)
