"""
XMPP over WebSocket (RFC 7395) for the load generator: a minimal RFC 6455 client on the same
asyncio Protocol as the TCP sessions, so that scenarios run unchanged over either transport.

    TCP connect ─▶ TLS 1.3 (certificate pinned: wss://) ─▶ HTTP/1.1 Upgrade, subprotocol
    'xmpp' ─▶ 101 Switching Protocols (Sec-WebSocket-Accept checked) ─▶ text frames, one
    XML element each: <open/> ... <close/> (urn:ietf:params:xml:ns:xmpp-framing)

Frames the server sends are taken apart here and their payloads, concatenated, go to the
session's usual byte handling (login patterns, then the scenario's ``on_data``): every
payload is a complete element, so the byte scanners work as on TCP. Frames we send are
masked (a fresh random key per frame, XORed as one big integer: C speed). Server pings are
answered with pongs; a close frame is answered and the connection closed. Fragmented
messages (continuation frames) are reassembled.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct

from benchmarks.loadgen.client import LoginError, Session

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MASKS = bytearray()              # random masking keys, drawn 4 bytes at a time


def _mask_key() -> bytes:
    global _MASKS
    if len(_MASKS) < 4:
        _MASKS = bytearray(os.urandom(4096))
    key = bytes(_MASKS[-4:])
    del _MASKS[-4:]
    return key


def frame(payload: bytes, opcode: int = 1) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = _mask_key()
    if n:
        mask = int.from_bytes((key * (n // 4 + 1))[:n], "little")
        payload = (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")
    return head + key + payload


_STANZA_NAMES = ((b"<message", 8), (b"<presence", 9), (b"<iq", 3))
_JABBER_CLIENT = b" xmlns='jabber:client'"


def qualify(element: bytes) -> bytes:
    """A stanza with its namespace declared: over WebSocket every frame is a document of its
    own, so stanzas carry xmlns='jabber:client' (RFC 7395 §3.3.3); other elements (SM, SASL,
    <open/>) already have theirs."""
    for name, n in _STANZA_NAMES:
        if element.startswith(name) and element[n:n + 1] in (b" ", b"/", b">"):
            head = element[:element.find(b">")]
            if b"xmlns=" in head:
                return element
            return element[:n] + _JABBER_CLIENT + element[n:]
    return element


class WebSocketSession(Session):
    """A Session whose bytes travel in WebSocket text frames (see the module docstring)."""

    __slots__ = ("ws_open", "ws_in", "ws_fragments", "ws_handshake", "ws_key")

    def __init__(self, index=0, user=""):
        super().__init__(index, user)
        self.ws_open = False            # past the 101 response
        self.ws_in = bytearray()        # undecoded frame bytes
        self.ws_fragments = []          # payloads of an unfinished fragmented message
        self.ws_handshake = None        # future of the 101 response
        self.ws_key = None

    def stream_open(self, target) -> bytes:
        return (f"<open xmlns='{NS_FRAMING}' to='{target.domain}' version='1.0'/>").encode()

    def write(self, data: bytes):
        self.transport.write(frame(qualify(data)))

    def write_many(self, elements):
        self.transport.write(b"".join([frame(qualify(e)) for e in elements]))

    def close(self):
        if self.transport is not None and not self.lost:
            try:
                self.transport.write(frame(f"<close xmlns='{NS_FRAMING}'/>".encode())
                                     + frame(struct.pack("!H", 1000), opcode=8))
            except Exception:
                pass
            self.transport.close()

    # -- the HTTP upgrade -------------------------------------------------------------------

    async def upgrade(self, target):
        """Send the opening handshake and wait for the server's 101 (RFC 6455 §4)."""
        self.ws_key = base64.b64encode(os.urandom(16))
        self.ws_handshake = asyncio.get_running_loop().create_future()
        host = f"{target.domain}:{target.ws_port}".encode()
        self.transport.write(
            b"GET " + target.ws_path.encode() + b" HTTP/1.1\r\nHost: " + host
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
            + self.ws_key + b"\r\nSec-WebSocket-Version: 13\r\n"
            + b"Sec-WebSocket-Protocol: xmpp\r\n\r\n")
        await self.ws_handshake

    def _handshake_received(self):
        end = self.ws_in.find(b"\r\n\r\n")
        if end < 0:
            if len(self.ws_in) > 65536:
                self._fail_handshake("no end of the HTTP response in 64 KiB")
            return
        head = bytes(self.ws_in[:end]).decode("latin-1")
        del self.ws_in[:end + 4]
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(status) < 2 or status[1] != "101":
            self._fail_handshake(f"HTTP {lines[0]!r} instead of 101 ({headers})")
            return
        accept = base64.b64encode(hashlib.sha1(self.ws_key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            self._fail_handshake("wrong Sec-WebSocket-Accept")
            return
        if headers.get("sec-websocket-protocol", "").lower() != "xmpp":
            self._fail_handshake(f"subprotocol {headers.get('sec-websocket-protocol')!r}, "
                                 "not xmpp")
            return
        self.ws_open = True
        future, self.ws_handshake = self.ws_handshake, None
        if future is not None and not future.done():
            future.set_result(None)

    def _fail_handshake(self, why):
        future, self.ws_handshake = self.ws_handshake, None
        if future is not None and not future.done():
            future.set_exception(LoginError(f"WebSocket handshake: {why}"))
        self.abort()

    def connection_lost(self, exc):
        if self.ws_handshake is not None:
            self._fail_handshake(f"connection lost: {exc or 'closed'}")
        super().connection_lost(exc)

    # -- frames in ----------------------------------------------------------------------------

    def data_received(self, data):
        buf = self.ws_in
        buf += data
        if not self.ws_open:
            self._handshake_received()
            if not self.ws_open:
                return
        payloads = []
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if b1 & 0x80:           # a masked server frame: not allowed, but readable
                head += 4
            end = pos + head + n
            if end > size:
                break
            payload = bytes(buf[pos + head:end])
            if b1 & 0x80:
                key = buf[pos + head - 4:pos + head]
                mask = int.from_bytes((bytes(key) * (n // 4 + 1))[:n], "little")
                payload = (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")
            pos = end
            opcode = b0 & 0x0F
            if opcode in (0, 1, 2):
                if not b0 & 0x80:
                    self.ws_fragments.append(payload)
                    continue
                if self.ws_fragments:
                    payload = b"".join(self.ws_fragments) + payload
                    self.ws_fragments = []
                payloads.append(payload)
            elif opcode == 9:       # ping
                self.transport.write(frame(payload, opcode=10))
            elif opcode == 8:       # close: answer it, the server closes the TCP connection
                if not self.lost:
                    self.transport.write(frame(payload[:2], opcode=8))
        del buf[:pos]
        if payloads:
            Session.data_received(self, b"".join(payloads))


async def connect(loop, target, session: WebSocketSession):
    """TLS straight away (wss://), then the HTTP upgrade."""
    from benchmarks.loadgen.client import connect_socket

    sock = connect_socket(target)
    if sock is None:
        await loop.create_connection(lambda: session, target.host, target.ws_port,
                                     ssl=target.ssl_context(), server_hostname=target.domain)
    else:
        await loop.sock_connect(sock, (target.host, target.ws_port))
        await loop.create_connection(lambda: session, sock=sock, ssl=target.ssl_context(),
                                     server_hostname=target.domain)
    await session.upgrade(target)
