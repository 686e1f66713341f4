"""The BOSH <body/> wrapper (jabberapp.transports.bosh.body): reading requests, writing
responses."""
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.transports.bosh.body import (NS_HTTPBIND, NS_XBOSH, BadBody, parse_body,
                                            peek_sid, render_body)

HEAD = f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'"


class ParseTests(SynchronousTestCase):
    """parse_body applies the stream parser's rules to a request."""

    def test_attributes_and_content(self):
        """Plain, xml:lang and xmpp: attributes are read; the content is kept as bytes."""
        body = parse_body((f"<?xml version='1.0' encoding='utf-8'?>{HEAD} rid='5' "
                           "xml:lang='en' xmpp:version='1.0'><message xmlns='jabber:client'"
                           "><body>a &amp; b</body></message> <iq/></body>").encode(), 10000)
        self.assertEqual(body.attrs, {"rid": "5", "xml:lang": "en", "xmpp:version": "1.0"})
        self.assertEqual(body.content, b"<message xmlns='jabber:client'><body>a &amp; b"
                                       b"</body></message> <iq/>")
        self.assertEqual(body.integer("rid"), 5)

    def test_empty_bodies(self):
        """A self-closed body and one holding whitespace carry nothing."""
        for data in (f"{HEAD} rid='1'/>", f"{HEAD} rid='1'>\n  </body>"):
            self.assertTrue(parse_body(data.encode(), 100).empty)

    def test_refused(self):
        """Comments, entities, DOCTYPE, a wrong root, two roots, half a body, another
        encoding and a malformed number are BadBody."""
        for data in (f"{HEAD}><!-- c --></body>", f"{HEAD}>&ent;</body>",
                     f"<!DOCTYPE body>{HEAD}/>", "<presence xmlns='jabber:client'/>",
                     f"{HEAD}/>{HEAD}/>", f"{HEAD}><message>",
                     f"<?xml version='1.0' encoding='latin-1'?>{HEAD}/>", ""):
            with self.assertRaises(BadBody, msg=data):
                parse_body(data.encode("latin-1"), 1000)
        with self.assertRaises(BadBody):
            parse_body(f"{HEAD} rid='-1'/>".encode(), 100).integer("rid")

    def test_peek_sid(self):
        """The sid of a body too large to parse is read from its start tag only."""
        self.assertEqual(peek_sid(f"{HEAD} rid='1' sid='abc'>".encode() + b"x" * 1000),
                         "abc")
        self.assertIsNone(peek_sid(f"{HEAD} rid='1'><x sid='abc'/>".encode()))
        self.assertIsNone(peek_sid(b"x" * 1000 + b"<body sid='abc'>"))


class RenderTests(SynchronousTestCase):
    """render_body writes a response."""

    def test_attributes_and_payload(self):
        """Attributes are escaped, None left out, namespaces declared as needed."""
        data = render_body({"sid": "a'b", "xmpp:version": "1.0", "ack": None},
                           b"<message xmlns='jabber:client'/>")
        body = etree.fromstring(data)
        self.assertEqual((body.get("sid"), body.get(f"{{{NS_XBOSH}}}version"),
                          body.get("ack")), ("a'b", "1.0", None))
        self.assertEqual(body[0].tag, "{jabber:client}message")

    def test_empty(self):
        """Without payload the body is self-closed."""
        self.assertEqual(render_body({}), f"<body xmlns='{NS_HTTPBIND}'/>".encode())
