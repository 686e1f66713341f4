"""The c2s stream over element framing (jabberapp.stream.framed) driven with plain bytes."""
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp.c2s.stream import CORE_STEPS
from jabberapp.errors import StreamError
from jabberapp.interfaces import IClientStream, IFramedTransport
from jabberapp.stream.framed import FramedClientStream, close_frame, open_frame
from tests.c2s_bytes import NS_SASL, PASSWORD, World, b64, text_of, unb64
from tests.scram_client import Client

OPEN = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>"
CLOSE = b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


@implementer(IFramedTransport)
class FramedTransport:
    """An IFramedTransport without a socket: records what the stream gives it, in order,
    as ('open', attrs), ('element', bytes) and ('close', error bytes or None)."""

    can_start_tls = False

    def __init__(self, secure=True, peer_address="198.51.100.9", bindings=None):
        self.secure = secure
        self.peer_address = peer_address
        self.bindings = bindings or {}
        self.out = []
        self.closed = False
        self.stream = None

    def open(self, attrs):
        self.out.append(("open", attrs))

    def write(self, data):
        self.out.append(("element", data))

    def close_stream(self, error=None):
        self.out.append(("close", error))

    def start_tls(self):
        raise AssertionError("STARTTLS is never offered on a framed transport")

    def channel_bindings(self):
        return self.bindings

    def close(self):
        self.closed = True

    def take(self):
        """What the stream gave since the last take()."""
        out, self.out = self.out, []
        return out

    def elements(self):
        """The elements written since the last take(), parsed."""
        return [etree.fromstring(data) for kind, data in self.take() if kind == "element"]


class FramedWorld(World):
    """tests.c2s_bytes.World with framed streams."""

    def connect(self, **kwargs):
        transport = FramedTransport(**kwargs)
        transport.stream = FramedClientStream(transport, self.listener, CORE_STEPS)
        return transport

    def scram(self, transport, user="alice", password=PASSWORD):
        """SCRAM-SHA-256 over frames, then the client's new <open/>; returns the output
        after it."""
        stream = transport.stream
        client = Client("sha256", user, password)
        stream.frame_received(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                              f"{b64(client.first())}</auth>".encode())
        server_first = unb64(text_of(_joined(transport.take()), "challenge"))
        stream.frame_received(f"<response xmlns='{NS_SASL}'>"
                              f"{b64(client.final(server_first))}</response>".encode())
        client.verify(unb64(text_of(_joined(transport.take()), "success")))
        stream.frame_received(OPEN)
        return transport.take()

    def login(self, user="alice", resource="r"):
        transport = self.connect()
        transport.stream.frame_received(OPEN)
        transport.take()
        self.scram(transport, user)
        transport.stream.frame_received(
            f"<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='{NS_BIND}'>"
            f"<resource>{resource}</resource></bind></iq>".encode())
        transport.take()
        return transport


def _joined(out):
    return b"".join(data for kind, data in out if kind == "element")


def _features(out):
    [(kind, data)] = [item for item in out if item[0] == "element"]
    features = etree.fromstring(data)
    return [(etree.QName(c).namespace, etree.QName(c).localname) for c in features]


class FramedNegotiationTests(SynchronousTestCase):
    """Opening, SASL, bind and closing over frames."""

    def setUp(self):
        self.world = FramedWorld()

    def test_interfaces(self):
        """The fake transport provides IFramedTransport and the stream IClientStream."""
        transport = self.world.connect()
        verifyObject(IFramedTransport, transport)
        verifyObject(IClientStream, transport.stream)

    def test_open_answers_header_attributes_and_features_without_starttls(self):
        """<open/> is answered with the header attributes, then standalone
        <stream:features/> offering SASL and never STARTTLS."""
        transport = self.world.connect()
        transport.stream.frame_received(OPEN)
        out = transport.take()
        kind, attrs = out[0]
        self.assertEqual(kind, "open")
        self.assertEqual(attrs["from"], "example.org")
        self.assertEqual(attrs["version"], "1.0")
        self.assertEqual(len(attrs["id"]), 32)
        self.assertTrue(out[1][1].startswith(
            b'<stream:features xmlns:stream="http://etherx.jabber.org/streams">'))
        self.assertEqual(_features(out[1:]), [(NS_SASL, "mechanisms"),
                                              ("urn:xmpp:sasl:2", "authentication")])

    def test_plain_transport_offers_no_starttls(self):
        """A framed transport that is not secure offers nothing to a listener that requires
        encryption (no STARTTLS), so nobody authenticates in clear text."""
        transport = self.world.connect(secure=False)
        transport.stream.frame_received(OPEN)
        self.assertEqual(_features(transport.take()), [])

    def test_full_scram_login_and_bind(self):
        """SCRAM-SHA-256, a restart by <open/>, bind: the session is registered, secure, and
        stanzas go both ways as standalone jabber:client elements."""
        world = self.world
        transport = world.connect()
        transport.stream.frame_received(OPEN)
        transport.take()
        after = world.scram(transport)
        self.assertEqual(after[0][0], "open")
        self.assertEqual(_features(after[1:]), [(NS_BIND, "bind"),
                                                ("urn:ietf:params:xml:ns:xmpp-session",
                                                 "session")])
        transport.stream.frame_received(
            f"<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='{NS_BIND}'>"
            f"<resource>web</resource></bind></iq>".encode())
        [result] = transport.take()
        self.assertTrue(result[1].startswith(b'<iq xmlns="jabber:client"'))
        self.assertIn(b"<jid>alice@example.org/web</jid>", result[1])
        session = transport.stream.session
        self.assertIs(world.host.sessions.get(session.jid), session)
        self.assertTrue(session.secure)
        bob = world.login("bob")
        bob.stream.frame_received(b"<message xmlns='jabber:client' to='alice@example.org/web'"
                                  b" type='chat'><body>hi</body></message>")
        [message] = transport.elements()
        self.assertEqual(message.tag, "{jabber:client}message")
        self.assertEqual(message.get("from"), "bob@example.org/r")
        self.assertEqual(message.findtext("{jabber:client}body"), "hi")

    def test_channel_bindings_come_from_the_transport(self):
        """The -PLUS mechanisms are offered when the transport reports channel bindings."""
        transport = self.world.connect(bindings={"tls-exporter": b"x" * 32})
        transport.stream.frame_received(OPEN)
        out = _joined(transport.take())
        self.assertIn(b"SCRAM-SHA-256-PLUS", out)

    def test_restart_drops_elements_queued_behind_sasl_success(self):
        """Elements that came with the SASL response that succeeds (one BOSH body) are
        dropped with the restart; an element sent before the new <open/> is
        not-well-formed."""
        transport = self.world.connect()
        stream = transport.stream
        stream.frame_received(OPEN)
        transport.take()
        client = Client("sha256", "alice", PASSWORD)
        stream.frame_received(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                              f"{b64(client.first())}</auth>".encode())
        server_first = unb64(text_of(_joined(transport.take()), "challenge"))
        stream.elements_received(f"<response xmlns='{NS_SASL}'>"
                                 f"{b64(client.final(server_first))}</response>"
                                 f"<presence xmlns='jabber:client'/>".encode())
        out = transport.take()
        self.assertIn(b"<success", _joined(out))
        self.assertFalse(transport.closed)
        stream.frame_received(b"<presence xmlns='jabber:client'/>")
        out = transport.take()
        self.assertEqual(out[-1][0], "close")
        self.assertIn(b"not-well-formed", out[-1][1])

    def test_close_frame_closes_the_stream(self):
        """The client's <close/> is answered with the transport's close, no error; the
        bound session ends."""
        world = self.world
        transport = world.login()
        session = transport.stream.session
        ended = []
        world.host.dispatcher.hooks.add(dispatch.SESSION_CLOSED, ended.append)
        transport.stream.frame_received(CLOSE)
        self.assertEqual(transport.take(), [("close", None)])
        self.assertTrue(transport.closed)
        transport.stream.connection_lost()
        self.assertEqual(ended, [session])

    def test_dropped_connection_detaches_like_tcp(self):
        """A connection lost without <close/> reports to the session as not closed (an
        extension may keep it for a resumption)."""
        world = self.world
        transport = world.login()
        kept = []

        def keep(session):
            kept.append(session)
            return dispatch.HANDLED
        world.host.dispatcher.hooks.add(dispatch.SESSION_DETACHED, keep)
        session = transport.stream.session
        transport.stream.connection_lost()
        self.assertEqual(kept, [session])
        self.assertFalse(session.ended)

    def test_open_and_close_received_without_frames(self):
        """open_received and close_received (BOSH) open and close the stream like frames."""
        transport = self.world.connect()
        transport.stream.open_received({"to": "example.org", "version": "1.0"})
        out = transport.take()
        self.assertEqual(out[0][0], "open")
        transport.stream.close_received()
        self.assertEqual(transport.take(), [("close", None)])

    def test_elements_received_takes_several(self):
        """elements_received handles every complete element of a body, in order."""
        transport = self.world.login()
        transport.stream.elements_received(
            b"<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
            b" <iq xmlns='jabber:client' type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual([el.get("id") for el in transport.elements()], ["1", "2"])


class FramedErrorTests(SynchronousTestCase):
    """Frames that are not one element, bad headers, and the stream errors they end in."""

    def setUp(self):
        self.world = FramedWorld()

    def error_of(self, frames, transport=None):
        """The condition of the stream error after C{frames}, checking the close."""
        transport = transport or self.world.connect()
        for frame in frames:
            transport.stream.frame_received(frame)
        out = transport.take()
        kind, data = out[-1]
        self.assertEqual(kind, "close")
        self.assertTrue(transport.closed)
        error = etree.fromstring(data)
        self.assertEqual(error.tag, "{http://etherx.jabber.org/streams}error")
        return etree.QName(error[0]).localname

    def test_two_elements_in_one_frame(self):
        """A frame with two elements is not-well-formed, and neither is handled."""
        transport = self.world.login()
        self.assertEqual(self.error_of([b"<presence xmlns='jabber:client'/>"
                                        b"<presence xmlns='jabber:client'/>"], transport),
                         "not-well-formed")

    def test_half_an_element(self):
        """A frame with an incomplete element is not-well-formed."""
        self.assertEqual(self.error_of([OPEN, b"<iq xmlns='jabber:client' type='get'>"]),
                         "not-well-formed")

    def test_element_and_a_start(self):
        """A complete element followed by the start of another is not-well-formed."""
        self.assertEqual(self.error_of([OPEN, b"<presence xmlns='jabber:client'/><pres"]),
                         "not-well-formed")

    def test_unframed_stream_header(self):
        """A TCP stream header (<stream:stream>) in a frame is not-well-formed, answered
        with an <open/> first (the stream was never opened)."""
        transport = self.world.connect()
        condition = self.error_of([b"<stream:stream xmlns='jabber:client' xmlns:stream="
                                   b"'http://etherx.jabber.org/streams' to='example.org'"
                                   b" version='1.0'>"], transport)
        self.assertEqual(condition, "not-well-formed")

    def test_stream_close_tag(self):
        """A bare </stream:stream> frame is not-well-formed."""
        self.assertEqual(self.error_of([OPEN, b"</stream:stream>"]), "not-well-formed")

    def test_element_before_open(self):
        """A stanza before <open/> is not-well-formed; the error follows an <open/>."""
        transport = self.world.connect()
        transport.stream.frame_received(b"<presence xmlns='jabber:client'/>")
        out = transport.take()
        self.assertEqual([kind for kind, _ in out], ["open", "close"])
        self.assertIn(b"not-well-formed", out[1][1])

    def test_second_open(self):
        """A second <open/> without a restart is not-well-formed."""
        self.assertEqual(self.error_of([OPEN, OPEN]), "not-well-formed")

    def test_unknown_host(self):
        """An <open/> to a domain not served is host-unknown."""
        self.assertEqual(self.error_of([OPEN.replace(b"example.org", b"example.net")]),
                         "host-unknown")

    def test_bad_version(self):
        """An <open/> without version 1.0 is unsupported-version."""
        self.assertEqual(self.error_of([OPEN.replace(b" version='1.0'", b"")]),
                         "unsupported-version")

    def test_oversized_frame(self):
        """An element over max_stanza_size is policy-violation."""
        self.world.listener.max_stanza_size = 1000
        frame = (b"<message xmlns='jabber:client'><body>" + b"x" * 2000
                 + b"</body></message>")
        self.assertEqual(self.error_of([OPEN, frame]), "policy-violation")

    def test_restricted_xml(self):
        """A comment in a frame is restricted-xml, as on TCP."""
        self.assertEqual(self.error_of([OPEN, b"<presence xmlns='jabber:client'><!-- x -->"
                                              b"</presence>"]), "restricted-xml")

    def test_cdata_with_markup_is_one_element(self):
        """A '<' inside CDATA does not make a complete element look unfinished."""
        transport = self.world.login()
        transport.stream.frame_received(
            b"<message xmlns='jabber:client' to='alice@example.org/r'><body><![CDATA[a <b"
            b" c]]></body></message>")
        [message] = transport.elements()
        self.assertEqual(message.findtext("{jabber:client}body"), "a <b c")

    def test_whitespace_frame_is_ignored(self):
        """A frame of whitespace only changes nothing."""
        transport = self.world.login()
        transport.stream.frame_received(b" \n")
        self.assertEqual(transport.take(), [])
        self.assertFalse(transport.closed)

    def test_error_goes_to_close_stream(self):
        """A session closed with an error hands the serialised <stream:error/> to
        close_stream and nothing else after it."""
        transport = self.world.login()
        transport.stream.session.close(StreamError("conflict"))
        out = transport.take()
        self.assertEqual(len(out), 1)
        kind, data = out[0]
        self.assertEqual(kind, "close")
        self.assertTrue(data.startswith(b'<stream:error xmlns:stream='))
        self.assertIn(b"<conflict", data)


class FrameTests(SynchronousTestCase):
    """The RFC 7395 framing elements."""

    def test_open_frame(self):
        """open_frame writes the header attributes on <open/> in the framing namespace."""
        data = open_frame({"from": "example.org", "id": "abc", "version": "1.0",
                           "xml:lang": "en"})
        el = etree.fromstring(data)
        self.assertEqual(el.tag, "{urn:ietf:params:xml:ns:xmpp-framing}open")
        self.assertEqual(el.get("from"), "example.org")
        self.assertEqual(el.get("{http://www.w3.org/XML/1998/namespace}lang"), "en")

    def test_close_frame(self):
        """close_frame is an empty <close/>, or one with see-other-uri."""
        self.assertEqual(close_frame(),
                         b'<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>')
        el = etree.fromstring(close_frame("wss://other.example/xmpp-websocket"))
        self.assertEqual(el.get("see-other-uri"), "wss://other.example/xmpp-websocket")

