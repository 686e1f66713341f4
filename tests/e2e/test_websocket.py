"""
End to end over WebSocket (RFC 7395): the tests' own client (the `websockets` library) logs in
with SCRAM over wss (and over ws through a trusted reverse proxy), exchanges messages with a
slixmpp TCP client, gets a clean close for each bad input, and resumes onto WebSocket a
XEP-0198 session that began on TCP.
"""
import asyncio
import base64
import hashlib
import os
import socket
import ssl
import struct

import pytest
from lxml import etree
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from tests.e2e.harness import TIMEOUT, Events, ServerProcess, close, login, run
from tests.e2e.rawclient import NS_BIND, NS_CLIENT, NS_SASL, RawClient
from tests.e2e.test_limits import CLOSED, FULL, LIMIT, STALL, Flood, plain_login
from tests.e2e.test_limits import PASSWORD as FLOOD_PASSWORD
from tests.scram_client import Client as Scram

PASSWORD = "ws pw"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SM = "urn:xmpp:sm:3"
MESSAGE = f"{{{NS_CLIENT}}}message"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("websocket"), http="""
        trusted_proxies = 127.0.0.2
        cors_origins = https://chat.example.org
        """, config="""
        [extension:sm]
        resume_timeout = 60
        [websocket]
        ping_interval = 2
        """)
    for user in ("alice", "bob", "carol"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


def wss_url(server):
    return f"wss://localhost:{server.https_port}/xmpp-websocket"


def tls_context(server):
    context = ssl.create_default_context(cafile=server.certificate)
    context.check_hostname = True
    return context


class WSClient:
    """One RFC 7395 client connection: every message is one element."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def connect(cls, server, secure=True, subprotocols=("xmpp",), origin=None,
                      headers=None, local_address="127.0.0.1"):
        if secure:
            url, context = wss_url(server), tls_context(server)
        else:
            url, context = f"ws://127.0.0.1:{server.http_port}/xmpp-websocket", None
        ws = await connect(url, ssl=context, subprotocols=list(subprotocols) or None,
                           origin=origin, additional_headers=headers, proxy=None,
                           compression=None, ping_interval=None, max_size=None,
                           open_timeout=TIMEOUT, local_addr=(local_address, 0))
        return cls(ws)

    async def send(self, data):
        """Send one text message (or a binary one when C{data} is bytes)."""
        await self.ws.send(data)

    async def next_element(self):
        data = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        return etree.fromstring(data.encode() if isinstance(data, str) else data)

    async def expect(self, *tags):
        el = await self.next_element()
        assert el.tag in tags, f"expected {' or '.join(tags)}, got {etree.tostring(el)!r}"
        return el

    async def open(self, to="localhost"):
        """<open/>; the server's <open/> must come back, then the features (returned)."""
        await self.send(f"<open xmlns='{NS_FRAMING}' to='{to}' version='1.0'/>")
        opened = await self.expect(f"{{{NS_FRAMING}}}open")
        assert opened.get("from") == to and opened.get("version") == "1.0"
        return await self.expect(f"{{{NS_STREAMS}}}features")

    async def authenticate(self, user, mechanism="SCRAM-SHA-256", cb_type=None, cb_data=b""):
        """SCRAM; the features after the restart (a new <open/>)."""
        hash_name = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}[
            mechanism.removesuffix("-PLUS")]
        gs2 = f"p={cb_type},," if cb_type else "n,,"
        scram = Scram(hash_name, user, PASSWORD, nonce=base64.b64encode(os.urandom(18)).decode(),
                      gs2_header=gs2, cb_data=cb_data)
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>"
                        f"{base64.b64encode(scram.first()).decode()}</auth>")
        challenge = await self.expect(f"{{{NS_SASL}}}challenge")
        await self.send(f"<response xmlns='{NS_SASL}'>"
                        f"{base64.b64encode(scram.final(base64.b64decode(challenge.text))).decode()}"
                        f"</response>")
        success = await self.expect(f"{{{NS_SASL}}}success")
        scram.verify(base64.b64decode(success.text))
        return await self.open()

    async def bind(self, resource):
        await self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'>"
                        f"<resource>{resource}</resource></bind></iq>")
        iq = await self.expect(f"{{{NS_CLIENT}}}iq")
        assert iq.get("type") == "result", etree.tostring(iq)
        return iq.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")

    async def login(self, user, resource):
        features = await self.open()
        assert "SCRAM-SHA-256" in mechanisms(features)
        await self.authenticate(user)
        return await self.bind(resource)

    async def closed(self):
        """Wait for the server's close: (the elements sent before it, the close code)."""
        elements = []
        try:
            while True:
                elements.append(await self.next_element())
        except ConnectionClosed as closed:
            return elements, closed.rcvd.code if closed.rcvd else None

    async def close(self):
        await self.ws.close()


def mechanisms(features):
    return [m.text for m in features.iterfind(f"{{{NS_SASL}}}mechanisms/{{{NS_SASL}}}mechanism")]


def stream_error(elements):
    """The condition of the <stream:error/> among C{elements}; the <close/> must follow."""
    assert elements[-1].tag == f"{{{NS_FRAMING}}}close", [e.tag for e in elements]
    error = elements[-2]
    assert error.tag == f"{{{NS_STREAMS}}}error"
    return etree.QName(error[0]).localname


def body(el):
    return el.findtext(f"{{{NS_CLIENT}}}body")


def test_scram_login_and_messages_with_a_tcp_client(server):
    """A WebSocket client logs in with SCRAM over wss, binds, and exchanges messages both
    ways with a slixmpp client on TCP; its <close/> is answered with <close/>."""
    async def scenario():
        ws = await WSClient.connect(server)
        assert await ws.login("alice", "browser") == "alice@localhost/browser"
        bob = await login(server, "bob@localhost", PASSWORD)
        messages = Events(bob, "message")
        try:
            await ws.send(f"<message xmlns='{NS_CLIENT}' to='bob@localhost' type='chat'>"
                          f"<body>from the browser</body></message>")
            got = await messages.wait(lambda m: m["body"] == "from the browser")
            assert str(got["from"]) == "alice@localhost/browser"
            bob.send_message(mto="alice@localhost/browser", mbody="from tcp", mtype="chat")
            while True:
                el = await ws.next_element()
                if el.tag == MESSAGE:
                    break
            assert body(el) == "from tcp" and el.get("from").startswith("bob@localhost/")
            await ws.send(f"<close xmlns='{NS_FRAMING}'/>")
            elements, code = await ws.closed()
            assert elements[-1].tag == f"{{{NS_FRAMING}}}close"
            assert code == 1000
        finally:
            await close(bob)
    run(scenario())


def test_channel_binding_over_wss(server):
    """Over wss the server's TLS gives channel bindings: SCRAM-SHA-256-PLUS with
    tls-server-end-point (computed from the certificate the client saw) logs in."""
    async def scenario():
        ws = await WSClient.connect(server)
        features = await ws.open()
        assert "SCRAM-SHA-256-PLUS" in mechanisms(features)
        der = ws.ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        await ws.authenticate("carol", "SCRAM-SHA-256-PLUS", "tls-server-end-point",
                              hashlib.sha256(der).digest())
        assert await ws.bind("plus") == "carol@localhost/plus"
        await ws.close()
    run(scenario())


def test_plain_ws_through_a_trusted_proxy(server):
    """Plain ws from a trusted reverse proxy that says X-Forwarded-Proto: https is secure
    (SCRAM offered, no -PLUS: the TLS is the proxy's), and the client's address is the
    forwarded one; from any other address the same headers are ignored."""
    async def scenario():
        ws = await WSClient.connect(server, secure=False, local_address="127.0.0.2",
                                    headers={"X-Forwarded-Proto": "https",
                                             "X-Forwarded-For": "198.51.100.23"})
        for _ in server.lines_until(lambda line: "WebSocket from 198.51.100.23" in line):
            pass
        features = await ws.open()
        assert "SCRAM-SHA-256" in mechanisms(features)
        assert not any(name.endswith("-PLUS") for name in mechanisms(features))
        await ws.authenticate("alice")
        await ws.close()
        spoofed = await WSClient.connect(server, secure=False,
                                         headers={"X-Forwarded-Proto": "https"})
        assert mechanisms(await spoofed.open()) == []
        await spoofed.close()
    run(scenario())


def test_handshake_without_xmpp_subprotocol_is_refused(server):
    """A handshake that does not offer the xmpp subprotocol is refused with HTTP 400."""
    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            await WSClient.connect(server, subprotocols=())
        assert refused.value.response.status_code == 400
        with pytest.raises(InvalidStatus) as refused:
            await WSClient.connect(server, subprotocols=("chat",))
        assert refused.value.response.status_code == 400
    run(scenario())


def test_origin_not_allowed_is_refused(server):
    """A page from an origin not in [http] cors_origins is refused with 403; an allowed one
    connects."""
    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            await WSClient.connect(server, origin="https://evil.example")
        assert refused.value.response.status_code == 403
        ws = await WSClient.connect(server, origin="https://chat.example.org")
        await ws.open()
        await ws.close()
    run(scenario())


def test_binary_message_closes_with_1003(server):
    """A binary message ends the stream with bad-format, <close/>, and close code 1003."""
    async def scenario():
        ws = await WSClient.connect(server)
        await ws.open()
        await ws.send(b"<presence xmlns='jabber:client'/>")
        elements, code = await ws.closed()
        assert stream_error(elements) == "bad-format"
        assert code == 1003
    run(scenario())


def test_unframed_xml_is_not_well_formed(server):
    """A TCP stream header sent as a message (unframed XML) is not-well-formed, after the
    server's <open/>; the close is a normal one. With an XML declaration in front it is
    restricted-xml: a framed stream has no document start, so the declaration is a
    processing instruction."""
    async def scenario():
        header = (f"<stream:stream to='localhost' version='1.0' xmlns='{NS_CLIENT}' "
                  f"xmlns:stream='{NS_STREAMS}'>")
        for message, condition in ((header, "not-well-formed"),
                                   ("<?xml version='1.0'?>" + header, "restricted-xml")):
            ws = await WSClient.connect(server)
            await ws.send(message)
            elements, code = await ws.closed()
            assert elements[0].tag == f"{{{NS_FRAMING}}}open"
            assert stream_error(elements) == condition
            assert code == 1000
    run(scenario())


def test_two_elements_in_one_message(server):
    """A message holding two elements is not-well-formed."""
    async def scenario():
        ws = await WSClient.connect(server)
        await ws.open()
        await ws.send(f"<presence xmlns='{NS_CLIENT}'/><presence xmlns='{NS_CLIENT}'/>")
        elements, _ = await ws.closed()
        assert stream_error(elements) == "not-well-formed"
    run(scenario())


def test_oversized_message_closes_with_1009(server):
    """A message over the c2s max_stanza_size ends the stream with policy-violation and
    close code 1009."""
    async def scenario():
        ws = await WSClient.connect(server)
        await ws.login("alice", "big")
        await ws.send(f"<message xmlns='{NS_CLIENT}' to='bob@localhost'><body>"
                      + "x" * 300_000 + "</body></message>")
        elements, code = await ws.closed()
        assert stream_error(elements) == "policy-violation"
        assert code == 1009
    run(scenario())


def first_message(client):
    """Read what C{client} (a RawClient) receives up to its first message."""
    while client.expect(MESSAGE, f"{{{NS_CLIENT}}}presence").tag != MESSAGE:
        pass


def test_resume_a_tcp_session_over_websocket(server):
    """A raw TCP client enables resumable stream management and is cut; the messages sent
    meanwhile arrive once, in order, after it resumes over WebSocket with previd and h,
    and the next message follows them there."""
    async def scenario():
        alice = RawClient(server.port, server.certificate)
        alice.open_stream()
        alice.starttls()
        alice.authenticate("SCRAM-SHA-256", "alice", PASSWORD)
        alice.bind("phone")
        alice.send("<presence/>")
        alice.expect(f"{{{NS_CLIENT}}}presence")
        alice.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        previd = alice.expect(f"{{{NS_SM}}}enabled").get("id")
        bob = await login(server, "bob@localhost", PASSWORD)
        bob.register_plugin("xep_0199")
        try:
            bob.send_message(mto="alice@localhost/phone", mbody="1", mtype="chat")
            # The raw client blocks: it reads on a thread while slixmpp's loop runs.
            await asyncio.to_thread(first_message, alice)
            alice._sock.close()
            await asyncio.to_thread(lambda: [None for _ in server.lines_until(
                lambda line: "alice@localhost/phone awaits resumption" in line)])
            for text in ("2", "3", "4"):
                bob.send_message(mto="alice@localhost/phone", mbody=text, mtype="chat")
            await bob.plugin["xep_0199"].ping("localhost", timeout=TIMEOUT)  # all handled
            ws = await WSClient.connect(server)
            await ws.open()
            features = await ws.authenticate("alice")
            assert features.find(f"{{{NS_SM}}}sm") is not None
            await ws.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='1'/>")
            resumed = await ws.expect(f"{{{NS_SM}}}resumed")
            assert resumed.get("previd") == previd
            got = []
            while len(got) < 3:
                el = await ws.next_element()
                if el.tag == MESSAGE:
                    got.append(body(el))
            assert got == ["2", "3", "4"]
            bob.send_message(mto="alice@localhost/phone", mbody="5", mtype="chat")
            while True:
                el = await ws.next_element()
                if el.tag == MESSAGE:
                    break
            assert body(el) == "5"
            await ws.send(f"<a xmlns='{NS_SM}' h='5'/>")
            await ws.send(f"<close xmlns='{NS_FRAMING}'/>")
            await ws.closed()
        finally:
            await close(bob)
    run(scenario())


class RawWebSocket:
    """A blocking ws:// client on a plain socket (RFC 6455 by hand), so a test can stop
    reading it and hold a small receive window."""

    def __init__(self, port, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost:{port}\r\n"
                          f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                          f"Sec-WebSocket-Protocol: xmpp\r\n\r\n".encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        return data

    def send(self, text):
        payload = text.encode()
        head = bytes([0x81])
        if len(payload) < 126:
            head += bytes([0x80 | len(payload)])
        else:
            head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def next_frame(self):
        """The next frame: (opcode, payload)."""
        while len(self.buffer) < 2 or len(self.buffer) < self._frame_end():
            self.buffer += self._recv()
        end = self._frame_end()
        opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        start = {126: 4, 127: 10}.get(length, 2)
        payload, self.buffer = self.buffer[start:end], self.buffer[end:]
        return opcode, payload

    def next_element(self):
        """The next text message, parsed (control frames are skipped)."""
        while True:
            while len(self.buffer) < 2 or len(self.buffer) < self._frame_end():
                self.buffer += self._recv()
            end = self._frame_end()
            opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            start = {126: 4, 127: 10}.get(length, 2)
            payload, self.buffer = self.buffer[start:end], self.buffer[end:]
            if opcode == 1:
                return etree.fromstring(payload)

    def _frame_end(self):
        length = self.buffer[1] & 0x7F
        if length == 126:
            if len(self.buffer) < 4:
                return 4
            return 4 + struct.unpack("!H", self.buffer[2:4])[0]
        if length == 127:
            if len(self.buffer) < 10:
                return 10
            return 10 + struct.unpack("!Q", self.buffer[2:10])[0]
        return 2 + length

    def expect(self, tag):
        el = self.next_element()
        assert el.tag == tag, etree.tostring(el)
        return el

    def login(self, user, resource):
        """<open/>, SCRAM-SHA-256, <open/>, bind."""
        self.send(f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>")
        self.expect(f"{{{NS_FRAMING}}}open")
        self.expect(f"{{{NS_STREAMS}}}features")
        scram = Scram("sha256", user, PASSWORD, nonce=base64.b64encode(os.urandom(18)).decode())
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                  f"{base64.b64encode(scram.first()).decode()}</auth>")
        challenge = base64.b64decode(self.expect(f"{{{NS_SASL}}}challenge").text)
        self.send(f"<response xmlns='{NS_SASL}'>"
                  f"{base64.b64encode(scram.final(challenge)).decode()}</response>")
        self.expect(f"{{{NS_SASL}}}success")
        self.send(f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>")
        self.expect(f"{{{NS_FRAMING}}}open")
        self.expect(f"{{{NS_STREAMS}}}features")
        self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='b'><bind xmlns='{NS_BIND}'>"
                  f"<resource>{resource}</resource></bind></iq>")
        self.expect(f"{{{NS_CLIENT}}}iq")


@pytest.fixture
def flood_server(tmp_path):
    server = ServerProcess(tmp_path, http="tls_port = 0", c2s=f"""
        require_encryption = no
        max_send_buffer = {LIMIT}
        send_buffer_timeout = {STALL}
        read_rate = 0
        """)
    server.adduser("sleeper@localhost", PASSWORD)
    server.adduser("sender@localhost", FLOOD_PASSWORD)     # test_limits' plain_login
    with server:
        yield server


def test_non_reading_websocket_client_is_bounded_and_closed(flood_server):
    """The send buffer bound holds under WebSocket: a flood to a WebSocket client that does
    not read stops being queued at max_send_buffer, the sender is paused and answered
    resource-constraint, and the sleeper is closed with policy-violation after
    send_buffer_timeout."""
    server = flood_server
    sleeper = RawWebSocket(server.http_port, rcvbuf=4096)
    sleeper.login("sleeper", "ws")
    sender = plain_login(server, "sender", "flood")
    flood = Flood(sender, "sleeper@localhost/ws", count=4000)
    try:
        for line in server.lines_until(lambda line: FULL.search(line) is not None):
            full = FULL.search(line)
        assert full.group(1) == "sleeper@localhost/ws"
        assert LIMIT <= int(full.group(2)) < LIMIT + 8192
        for line in server.lines_until(lambda line: CLOSED.search(line) is not None):
            closed = CLOSED.search(line)
        assert closed.group(1) == "sleeper@localhost/ws"
        assert int(closed.group(2)) < LIMIT + 8192
        assert "not reading from <ClientStream sender@localhost/flood>" in server.log()
    finally:
        flood.finish()
        sleeper.sock.close()
        sender._sock.close()
    assert flood.errors.get("resource-constraint", 0) >= 1, flood.errors


def test_pings_and_a_client_that_does_not_answer(server):
    """The server pings every ping_interval; a client that answers no ping is disconnected
    one interval later, while one that answers (the websockets library) stays."""
    async def scenario():
        answering = await WSClient.connect(server)
        await answering.open()
        silent = await asyncio.to_thread(RawWebSocket, server.http_port)
        opcode, _ = await asyncio.to_thread(silent.next_frame)
        assert opcode == 9      # a ping
        with pytest.raises(ConnectionError):
            while True:
                await asyncio.to_thread(silent.next_frame)
        assert answering.ws.state is State.OPEN
        await answering.close()
    run(scenario())
