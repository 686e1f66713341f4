"""The WebSocket transport (jabberapp.transports.websocket) inside a twisted.web Site, driven
with RFC 6455 frames over a StringTransport."""
import base64
import os
import shutil
import struct
import tempfile

import txaio
from lxml import etree
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp.config import ConfigError, load_config
from jabberapp.interfaces import IFramedTransport
from jabberapp.transports.websocket import websocket_resource
from tests.c2s_bytes import NS_SASL, PASSWORD, World, b64, text_of, unb64
from tests.scram_client import Client

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = f"<open xmlns='{NS_FRAMING}' to='example.org' version='1.0'/>".encode()
TEXT, BINARY, CLOSE = 1, 2, 8


def client_frame(payload, opcode=TEXT, fin=True, length=None):
    """A masked client frame (RFC 6455 §5.2); C{length} overrides the announced length."""
    length = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data):
    """The (opcode, payload) of the unmasked server frames in C{data}."""
    frames = []
    while data:
        opcode = data[0] & 0x0F
        length = data[1] & 0x7F
        at = 2
        if length == 126:
            length, at = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            length, at = struct.unpack("!Q", data[2:10])[0], 10
        frames.append((opcode, data[at:at + length]))
        data = data[at + length:]
    return frames


class Connection(StringTransport):
    """A StringTransport whose unregisterProducer, like Twisted's TCP and TLS transports,
    does nothing when no producer is registered (Autobahn unregisters when it drops)."""

    def unregisterProducer(self):
        self.producer = None


class Browser:
    """One WebSocket client connection into the Site: send(), frames(), texts()."""

    def __init__(self, site, protocols=b"xmpp", origin=None, path=b"/xmpp-websocket",
                 headers=b""):
        self.transport = Connection()
        self.channel = site.buildProtocol(None)
        self.transport.protocol = self.channel
        self.channel.makeConnection(self.transport)
        request = (b"GET " + path + b" HTTP/1.1\r\nHost: xmpp.example.org\r\n"
                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
                   b"Sec-WebSocket-Version: 13\r\n")
        if protocols is not None:
            request += b"Sec-WebSocket-Protocol: " + protocols + b"\r\n"
        if origin is not None:
            request += b"Origin: " + origin + b"\r\n"
        self.channel.dataReceived(request + headers + b"\r\n")
        response = self.transport.value()
        self.status = int(response.split(b" ", 2)[1])
        self.response = response
        self.transport.clear()
        self.protocol = self.transport.protocol    # Autobahn's, once it took over

    def send(self, payload, opcode=TEXT, **kwargs):
        self.transport.protocol.dataReceived(client_frame(payload, opcode, **kwargs))

    def raw(self, data):
        self.transport.protocol.dataReceived(data)

    def frames(self):
        """The server's frames since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return server_frames(data)

    def texts(self):
        """The payloads of the server's text frames since the last call."""
        return [payload for opcode, payload in self.frames() if opcode == TEXT]


def close_code(frames):
    """The status code of the close frame among C{frames}."""
    [payload] = [payload for opcode, payload in frames if opcode == CLOSE]
    return struct.unpack("!H", payload[:2])[0]


class FakeHTTP:
    """The request facts of jabberapp.web's HTTPService: a fixed client address and
    security, and the origins of a list (empty: any)."""

    def __init__(self, address="203.0.113.5", secure=True, origins=()):
        self.address = address
        self.secure = secure
        self.origins = origins
        self.asked = []

    def client_address(self, request):
        return self.address

    def is_secure(self, request):
        return self.secure

    def origin_allowed(self, origin, request):
        self.asked.append(origin)
        return not self.origins or origin.decode().lower() in self.origins


class WebSocketTests(SynchronousTestCase):
    """Handshake, login, stanzas and every bad input of RFC 7395."""

    def setUp(self):
        # Autobahn's handshake timers run on txaio's loop: a clock of the test's, so none
        # is left on the global reactor.
        loop, txaio.config.loop = txaio.config.loop, Clock()
        self.addCleanup(setattr, txaio.config, "loop", loop)
        self.world = World()
        self.addresses = []
        self.site = self.make_site()

    def make_site(self, http=None, **options):
        root = Resource()
        options.setdefault("ping_interval", 0)
        root.putChild(b"xmpp-websocket", websocket_resource(
            self.world.listener, http=http or FakeHTTP(), **options))
        return Site(root, reactor=Clock())     # its channels' timeouts off the global reactor

    def login(self, browser, user="alice", resource="web"):
        """SCRAM-SHA-256 and bind over C{browser}; returns its stream."""
        browser.send(OPEN)
        texts = browser.texts()
        self.assertIn(b"SCRAM-SHA-256", texts[1])
        client = Client("sha256", user, PASSWORD)
        browser.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                     f"{b64(client.first())}</auth>".encode())
        [challenge] = browser.texts()
        browser.send(f"<response xmlns='{NS_SASL}'>"
                     f"{b64(client.final(unb64(text_of(challenge, 'challenge'))))}"
                     f"</response>".encode())
        [success] = browser.texts()
        client.verify(unb64(text_of(success, "success")))
        browser.send(OPEN)
        browser.texts()
        browser.send(f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns="
                     f"'urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource>"
                     f"</bind></iq>".encode())
        [bound] = browser.texts()
        self.assertIn(f"<jid>{user}@example.org/{resource}</jid>".encode(), bound)
        return browser.protocol.stream

    def test_handshake_selects_xmpp(self):
        """A handshake offering 'xmpp' is answered 101 with the xmpp subprotocol, and the
        protocol is an IFramedTransport with the request's address and security."""
        browser = Browser(self.site, protocols=b"chat, xmpp")
        self.assertEqual(browser.status, 101)
        self.assertIn(b"Sec-WebSocket-Protocol: xmpp\r\n", browser.response)
        self.assertNotIn(b"Autobahn", browser.response)
        verifyObject(IFramedTransport, browser.protocol)
        self.assertEqual(browser.protocol.peer_address, "203.0.113.5")
        self.assertTrue(browser.protocol.secure)
        self.assertFalse(browser.protocol.can_start_tls)

    def test_handshake_without_xmpp_is_refused(self):
        """Without the 'xmpp' subprotocol the handshake is refused with HTTP 400."""
        for protocols in (None, b"chat"):
            browser = Browser(self.site, protocols=protocols)
            self.assertEqual(browser.status, 400)
            self.assertIsNone(getattr(browser.protocol, "stream", None))

    def test_plain_get_and_other_methods(self):
        """A GET without Upgrade gets a short page saying what the URL is (no Autobahn
        version); other methods get 405 with Allow."""
        for method, code in ((b"GET", b"200"), (b"POST", b"405")):
            transport = Connection()
            channel = self.site.buildProtocol(None)
            transport.protocol = channel
            channel.makeConnection(transport)
            channel.dataReceived(method + b" /xmpp-websocket HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: 0\r\n\r\n")
            response = transport.value()
            self.assertTrue(response.startswith(b"HTTP/1.1 " + code), response)
            self.assertNotIn(b"Autobahn", response)
        self.assertIn(b"Allow: GET, HEAD", response)

    def test_origins(self):
        """Only origins the HTTP service allows may connect (403 otherwise); no Origin is a
        non-browser client and is accepted without asking."""
        http = FakeHTTP(origins=("https://chat.example.org",))
        site = self.make_site(http=http)
        self.assertEqual(Browser(site, origin=b"https://chat.example.org").status, 101)
        self.assertEqual(Browser(site, origin=b"https://evil.example").status, 403)
        self.assertEqual(http.asked, [b"https://chat.example.org", b"https://evil.example"])
        self.assertEqual(Browser(site).status, 101)
        self.assertEqual(len(http.asked), 2)

    def test_without_http_service(self):
        """Without an HTTP service the request's own peer and isSecure() are used."""
        root = Resource()
        root.putChild(b"xmpp-websocket", websocket_resource(self.world.listener,
                                                            ping_interval=0))
        browser = Browser(Site(root, reactor=Clock()), origin=b"https://any.example")
        self.assertEqual(browser.status, 101)
        self.assertEqual(browser.protocol.peer_address, "192.168.1.1")
        self.assertFalse(browser.protocol.secure)

    def test_login_and_messages_both_ways(self):
        """SCRAM and bind over WebSocket; a TCP client's message arrives as one text
        message in jabber:client, and the WebSocket client's reaches the TCP client."""
        browser = Browser(self.site)
        stream = self.login(browser)
        session = stream.session
        self.assertTrue(session.secure)
        self.assertEqual(stream.peer_address, "203.0.113.5")
        tcp = self.world.login("bob", "tcp")
        tcp.feed(b"<message to='alice@example.org/web' type='chat'><body>hi</body></message>")
        [text] = browser.texts()
        message = etree.fromstring(text)
        self.assertEqual(message.tag, "{jabber:client}message")
        self.assertEqual(message.get("from"), "bob@example.org/tcp")
        browser.send(b"<message xmlns='jabber:client' to='bob@example.org/tcp' type='chat'>"
                     b"<body>hello</body></message>")
        self.assertIn(b"<body>hello</body>", tcp.take())

    def test_output_flow_is_registered(self):
        """The stream's OutputFlow is the connection's producer (backpressure as on TCP)."""
        browser = Browser(self.site)
        protocol = browser.protocol
        self.assertIs(browser.transport.producer, protocol.flow)
        self.assertIs(protocol.flow.stream, protocol.stream)

    def test_client_close(self):
        """The client's <close/> is answered with <close/> and the close handshake (1000);
        the session ends when the connection goes."""
        browser = Browser(self.site)
        stream = self.login(browser)
        session = stream.session
        browser.send(f"<close xmlns='{NS_FRAMING}'/>".encode())
        frames = browser.frames()
        self.assertEqual(frames[0], (TEXT, f'<close xmlns="{NS_FRAMING}"/>'.encode()))
        self.assertEqual(close_code(frames), 1000)
        browser.raw(client_frame(struct.pack("!H", 1000), CLOSE))
        browser.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(session.ended)

    def test_dropped_connection_detaches(self):
        """A connection lost without <close/> only detaches the session when an extension
        keeps it (as stream management does)."""
        self.world.host.dispatcher.hooks.add(dispatch.SESSION_DETACHED,
                                             lambda session: dispatch.HANDLED)
        browser = Browser(self.site)
        session = self.login(browser).session
        browser.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(session.stream)
        self.assertFalse(session.ended)

    def test_binary_message(self):
        """A binary message ends the stream with bad-format and close code 1003."""
        browser = Browser(self.site)
        browser.send(OPEN)
        browser.frames()
        browser.send(b"<presence/>", BINARY)
        frames = browser.frames()
        self.assertIn(b"<bad-format", frames[0][1])
        self.assertEqual(frames[1], (TEXT, f'<close xmlns="{NS_FRAMING}"/>'.encode()))
        self.assertEqual(close_code(frames), 1003)

    def test_oversized_frame_refused_before_its_payload(self):
        """A frame announcing more than max_stanza_size ends the stream with
        policy-violation and close code 1009 before any payload arrives."""
        browser = Browser(self.site)
        browser.send(OPEN)
        browser.frames()
        limit = self.world.listener.max_stanza_size
        browser.raw(client_frame(b"", length=limit + 1)[:14])
        frames = browser.frames()
        self.assertIn(b"<policy-violation", frames[0][1])
        self.assertEqual(close_code(frames), 1009)

    def test_oversized_fragmented_message(self):
        """Fragments adding up to more than max_stanza_size end the stream the same way."""
        browser = Browser(self.site)
        browser.send(OPEN)
        browser.frames()
        limit = self.world.listener.max_stanza_size
        browser.send(b"<message xmlns='jabber:client'><body>" + b"x" * (limit // 2), fin=False)
        browser.send(b"x" * (limit // 2), opcode=0, fin=False)
        frames = browser.frames()
        self.assertIn(b"<policy-violation", frames[0][1])
        self.assertEqual(close_code(frames), 1009)

    def test_unframed_xml(self):
        """A TCP stream header sent as a message is not-well-formed; the close is 1000."""
        browser = Browser(self.site)
        browser.send(b"<stream:stream xmlns='jabber:client' xmlns:stream="
                     b"'http://etherx.jabber.org/streams' to='example.org' version='1.0'>")
        frames = browser.frames()
        self.assertTrue(frames[0][1].startswith(f"<open xmlns=\"{NS_FRAMING}\"".encode()))
        self.assertIn(b"<not-well-formed", frames[1][1])
        self.assertEqual(close_code(frames), 1000)

    def test_invalid_utf8(self):
        """Text that is not UTF-8 is refused by the WebSocket layer (close code 1007)."""
        browser = Browser(self.site)
        browser.send(b"<presence>\xff</presence>")
        self.assertEqual(close_code(browser.frames()), 1007)

    def test_see_other_uri(self):
        """With see_other_uri, the client's <open/> is answered with a redirecting <close/>
        and the close handshake; no stream is opened."""
        site = self.make_site(see_other_uri="wss://other.example.org/xmpp-websocket")
        browser = Browser(site)
        browser.send(OPEN)
        frames = browser.frames()
        close = etree.fromstring(frames[0][1])
        self.assertEqual(close.tag, f"{{{NS_FRAMING}}}close")
        self.assertEqual(close.get("see-other-uri"), "wss://other.example.org/xmpp-websocket")
        self.assertEqual(close_code(frames), 1000)
        self.assertIsNone(browser.protocol.stream)

    def test_plain_request_without_tls_offers_no_mechanism(self):
        """A request that is not secure (and no STARTTLS) gets no SASL mechanism while the
        listener requires encryption."""
        browser = Browser(self.make_site(http=FakeHTTP(secure=False)))
        self.assertFalse(browser.protocol.secure)
        browser.send(OPEN)
        texts = browser.texts()
        self.assertNotIn(b"mechanism", texts[1])
        self.assertNotIn(b"starttls", texts[1])
        self.assertEqual(browser.protocol.channel_bindings(), {})

    def test_ping_interval_and_limits(self):
        """The factory pings every ping_interval seconds and caps frames at the stanza
        size; no compression is negotiated."""
        resource = websocket_resource(self.world.listener, ping_interval=25.0)
        factory = resource._factory
        self.assertEqual(factory.autoPingInterval, 25.0)
        self.assertEqual(factory.autoPingTimeout, 25.0)
        self.assertEqual(factory.maxFramePayloadSize, self.world.listener.max_stanza_size)
        self.assertFalse(factory.failByDrop)


class WebSocketConfigTests(SynchronousTestCase):
    """The [websocket] section."""

    def load(self, text):
        directory = tempfile.mkdtemp(prefix="jabberapp-ws-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "jabberapp.ini")
        with open(path, "w") as f:
            f.write(text)
        return load_config(path).websocket

    def test_defaults(self):
        """On (when [http] is), a ping a minute, no redirect."""
        config = load_config(None).websocket
        self.assertEqual((config.enabled, config.ping_interval, config.see_other_uri),
                         (True, 60.0, ""))

    def test_values(self):
        """Every option is parsed; see_other_uri must be a ws:// or wss:// URL."""
        config = self.load("[websocket]\nenabled = no\nping_interval = 0\n"
                           "see_other_uri = wss://other.example.org:5281/xmpp-websocket\n")
        self.assertEqual((config.enabled, config.ping_interval, config.see_other_uri),
                         (False, 0.0, "wss://other.example.org:5281/xmpp-websocket"))
        error = self.assertRaises(ConfigError, self.load,
                                  "[websocket]\nsee_other_uri = https://x.example/\n")
        self.assertIn("[websocket] see_other_uri", str(error))
