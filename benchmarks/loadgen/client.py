"""
Client sessions of the load generator: raw asyncio sockets, pre-serialised stanzas and byte
scanning (regular expressions and bytes.find on the raw stream) instead of XML parsing.

Every session logs in the way a real client does (RFC 6120, RFC 6121):

  TCP connect ─▶ stream header ─▶ <starttls/> ─▶ TLS 1.3 handshake (certificate pinned)
    ─▶ stream header ─▶ SASL SCRAM-SHA-1/-256 (RFC 5802, two round trips)
    ─▶ stream header ─▶ resource binding ─▶ roster get ─▶ initial presence
    ─▶ the server reflects the presence back to us: the login is complete.

After login a scenario installs its own ``on_data`` callback and sees the decrypted bytes.
A real client would compute PBKDF2 once per login; we cache the salted password per (salt,
iteration count), which changes nothing on the server side (SCRAM costs the server no
PBKDF2) and keeps the generator from spending its core on it.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

NS_STREAMS = "http://etherx.jabber.org/streams"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

MECHANISMS = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}

# <stream:features/> on TCP; over WebSocket a server may also write it unprefixed.
_FEATURES = re.compile(rb"<(?:stream:)?features\b[^>]*?(?:/>|>.*?</(?:stream:)?features>)",
                       re.S)
_PROCEED = re.compile(rb"<proceed\b[^>]*>")
_CHALLENGE = re.compile(rb"<challenge\b[^>]*>([^<]*)</challenge>")
_SUCCESS = re.compile(rb"<success\b[^>]*?(?:/>|>([^<]*)</success>)")
_JID = re.compile(rb"<jid>([^<]+)</jid>")
_FAILURE = re.compile(rb"<failure\b[^>]*(?:/>|>.*?</failure>)", re.S)
_STREAM_ERROR = re.compile(rb"<stream:error>.*?</stream:error>", re.S)
_IQ_ATTR_TYPE = re.compile(rb"""\stype=["'](\w+)["']""")
_PING = re.compile(rb"""<iq\b[^>]*?\sid=["']([^"']+)["'][^>]*>\s*<ping xmlns=["']urn:xmpp:ping""")

_salted_cache: dict = {}


class LoginError(Exception):
    """A session could not log in; the message names the step and what the server said."""


@dataclass
class Target:
    """Where and as whom sessions log in."""

    host: str = "127.0.0.1"
    port: int = 5222
    domain: str = "localhost"
    cafile: str | None = None          # the server certificate (pinned); None: no verification
    password: str = "bench-password"
    mechanism: str = "SCRAM-SHA-1"
    resource: str = "bench"
    sources: tuple = ()                # local source addresses to spread connections over
    server_pid: int | None = None      # for /proc measurements
    timeout: float = 30.0              # bound on any single login
    transport: str = "tcp"             # 'tcp' (STARTTLS) or 'ws' (RFC 7395 over wss://)
    ws_port: int | None = None         # the server's HTTPS port with the WebSocket endpoint
    ws_path: str = "/xmpp-websocket"
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)
    _next_source: int = 0

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.maximum_version = ssl.TLSVersion.TLSv1_3
            if self.cafile:
                context.load_verify_locations(self.cafile)
                context.check_hostname = True
            else:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl = context
        return self._ssl

    def source(self):
        if not self.sources:
            return None
        address = self.sources[self._next_source % len(self.sources)]
        self._next_source += 1
        return address

    def header(self) -> bytes:
        return (f"<?xml version='1.0'?><stream:stream to='{self.domain}' xmlns='jabber:client' "
                f"xmlns:stream='{NS_STREAMS}' version='1.0'>").encode()


def salted_password(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    key = (hash_name, password, salt, iterations)
    salted = _salted_cache.get(key)
    if salted is None:
        salted = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
        if len(_salted_cache) < 1024:
            _salted_cache[key] = salted
    return salted


class ScramClient:
    """The client side of one SCRAM exchange (RFC 5802), without channel binding."""

    def __init__(self, hash_name: str, username: str, password: str):
        self.hash_name = hash_name
        self.password = password.encode("utf-8")
        self.nonce = base64.b64encode(os.urandom(18)).decode("ascii")
        self.first_bare = f"n={username},r={self.nonce}"
        self.server_signature = None

    def first(self) -> bytes:
        return ("n,," + self.first_bare).encode("utf-8")

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8")
        attrs = dict(part.split("=", 1) for part in text.split(","))
        if not attrs.get("r", "").startswith(self.nonce):
            raise LoginError("SCRAM: server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = salted_password(self.hash_name, self.password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self.hash_name)
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        auth_message = f"{self.first_bare},{text},{without_proof}".encode("utf-8")
        signature = hmac.digest(stored_key, auth_message, self.hash_name)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.digest(salted, b"Server Key", self.hash_name)
        self.server_signature = hmac.digest(server_key, auth_message, self.hash_name)
        return (without_proof + ",p=" + base64.b64encode(proof).decode("ascii")).encode()

    def verify(self, server_final: bytes) -> None:
        text = server_final.decode("utf-8")
        if not text.startswith("v=") or base64.b64decode(text[2:]) != self.server_signature:
            raise LoginError(f"SCRAM: bad server signature {text!r}")


class Session(asyncio.Protocol):
    """One client connection. During login the bytes are buffered and scanned for the next
    expected element; afterwards every chunk goes to C{on_data(session, data)}."""

    __slots__ = ("index", "user", "jid", "transport", "buf", "_pattern", "_future",
                 "on_data", "on_lost", "lost", "roster_items", "roster_ok", "state",
                 "login_latency", "sm", "on_elements")

    def __init__(self, index=0, user=""):
        self.index = index
        self.user = user
        self.jid = None
        self.transport = None
        self.buf = bytearray()
        self._pattern = None
        self._future = None
        self.on_data = None
        self.on_lost = None
        self.lost = False
        self.roster_items = 0
        self.roster_ok = None
        self.state = None          # free for the scenario
        self.login_latency = None
        self.sm = None             # stream management (benchmarks/loadgen/sm.py), if enabled
        self.on_elements = None    # with sm: the scenario's handler of received elements

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.on_data is not None:
            self.on_data(self, data)
            return
        self.buf += data
        if self._future is not None:
            self._scan()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost = True
        if self._future is not None and not self._future.done():
            self._future.set_exception(LoginError(f"connection lost: {exc or 'closed'}; "
                                                  f"received {bytes(self.buf[-300:])!r}"))
            self._future = None
        if self.on_lost is not None:
            self.on_lost(self)

    # -- login helpers ----------------------------------------------------------------

    def stream_open(self, target) -> bytes:
        """What opens (and restarts) the stream on this transport."""
        return target.header()

    def write(self, data: bytes):
        """Send one element (over WebSocket: one frame)."""
        self.transport.write(data)

    def write_many(self, elements):
        """Send several elements at once (one TCP write; over WebSocket a frame each)."""
        self.transport.write(b"".join(elements))

    def expect(self, pattern) -> asyncio.Future:
        """A future for the next match of C{pattern} in the input (consumed up to its end)."""
        self._pattern = pattern
        self._future = asyncio.get_running_loop().create_future()
        future = self._future
        self._scan()
        return future

    def _scan(self):
        match = self._pattern.search(self.buf)
        future = self._future
        if match is not None:
            self._future = None
            groups = (match.group(0),) + match.groups()
            del self.buf[:match.end()]
            future.set_result(groups)
            return
        error = _STREAM_ERROR.search(self.buf) or _FAILURE.search(self.buf)
        if error is not None:
            self._future = None
            future.set_exception(LoginError(error.group(0).decode("utf-8", "replace")))

    def close(self):
        """Say goodbye and close (TLS close_notify); abort() is for when that takes too long."""
        if self.transport is not None and not self.lost:
            try:
                self.transport.write(b"</stream:stream>")
            except Exception:
                pass
            self.transport.close()

    def abort(self):
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def cut(self):
        """Drop the connection the way a network change does for the server: no stream
        close, no TLS close_notify, a TCP reset (SO_LINGER 0) instead of a FIN."""
        if self.transport is None or self.lost:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()


def connect_socket(target: Target):
    """A non-blocking socket bound to the next source address, or None without sources."""
    source = target.source()
    if source is None:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect(loop, target: Target, session: Session):
    sock = connect_socket(target)
    if sock is None:
        await loop.create_connection(lambda: session, target.host, target.port)
        return
    try:
        await loop.sock_connect(sock, (target.host, target.port))
    except BaseException:
        sock.close()
        raise
    await loop.create_connection(lambda: session, sock=sock)


def new_session(target: Target, index: int = 0, user: str = "") -> Session:
    """A Session for C{target}'s transport."""
    if target.transport == "ws":
        from benchmarks.loadgen.websocket import WebSocketSession
        return WebSocketSession(index, user)
    return Session(index, user)


async def login(target: Target, index: int, user: str, presence: bytes | None = None,
                session: Session | None = None) -> Session:
    """Log C{user} in (see the module docstring); returns the Session, bound and available.

    C{presence} replaces the plain initial presence. Raises LoginError or asyncio.TimeoutError.
    """
    session = session or new_session(target, index, user)
    try:
        return await asyncio.wait_for(_login(target, session, presence), target.timeout)
    except BaseException:
        session.abort()
        raise


async def _login(target: Target, session: Session, presence: bytes | None) -> Session:
    started = time.perf_counter()
    await authenticate(target, session)
    await bind(target, session)
    await present(session, presence)
    session.login_latency = time.perf_counter() - started
    return session


async def authenticate(target: Target, session: Session) -> bytes:
    """Connect, encrypt (STARTTLS, or TLS first for WebSocket), SASL, restart the stream;
    returns the features of the authenticated stream."""
    loop = asyncio.get_running_loop()
    if target.transport == "ws":
        from benchmarks.loadgen import websocket
        await websocket.connect(loop, target, session)
        header = session.stream_open(target)
        session.write(header)
    else:
        await connect(loop, target, session)
        header = session.stream_open(target)
        session.write(header)
        (features,) = await session.expect(_FEATURES)
        if b"starttls" not in features:
            raise LoginError("no STARTTLS offered")
        session.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await session.expect(_PROCEED)
        session.buf.clear()
        session.transport = await loop.start_tls(session.transport, session,
                                                 target.ssl_context(),
                                                 server_hostname=target.domain)
        session.write(header)
    (features,) = await session.expect(_FEATURES)
    mechanism = target.mechanism.encode()
    if b">" + mechanism + b"<" not in features:
        raise LoginError(f"{target.mechanism} not offered: {features!r}")
    scram = ScramClient(MECHANISMS[target.mechanism], session.user, target.password)
    session.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mechanism
                  + b"'>" + base64.b64encode(scram.first()) + b"</auth>")
    _, challenge = await session.expect(_CHALLENGE)
    session.write(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                  + base64.b64encode(scram.final(base64.b64decode(challenge)))
                  + b"</response>")
    _, final = await session.expect(_SUCCESS)
    if final:
        scram.verify(base64.b64decode(final))
    session.write(header)
    (features,) = await session.expect(_FEATURES)
    return features


async def bind(target: Target, session: Session) -> None:
    """Resource binding (RFC 6120 §7); sets session.jid."""
    session.write(b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  b"<resource>" + target.resource.encode() + b"</resource></bind></iq>")
    (bound,) = await session.expect(_iq_end(b"bind1"))
    jid = _JID.search(bound)
    if jid is None:
        raise LoginError(f"bind failed: {bound!r}")
    session.jid = jid.group(1)


async def present(session: Session, presence: bytes | None = None) -> None:
    """Roster get and initial presence; done when the server reflects the presence."""
    session.write(b"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
    (roster,) = await session.expect(_iq_end(b"roster1"))
    kind = _IQ_ATTR_TYPE.search(roster)
    session.roster_ok = kind is not None and kind.group(1) == b"result"
    session.roster_items = roster.count(b"<item ")
    session.write(presence or b"<presence/>")
    await session.expect(_own_presence(session.jid))


def _iq_end(iq_id: bytes):
    # An <iq/> with this id, up to its end: self-closing or up to </iq> (no nested iq).
    quoted = re.escape(iq_id)
    return re.compile(rb"<iq\b[^>]*?\sid=[\"']" + quoted + rb"[\"'][^>]*?(?:/>|>.*?</iq>)",
                      re.S)


def _own_presence(jid: bytes):
    return re.compile(rb"<presence\b[^>]*?\sfrom=[\"']" + re.escape(jid) + rb"[\"'][^>]*?"
                      rb"(?:/>|>.*?</presence>)", re.S)


def answer_pings(session: Session, data: bytes) -> None:
    """Answer XEP-0199 pings from the server (idle sessions must stay up)."""
    if b"urn:xmpp:ping" in data:
        for match in _PING.finditer(data):
            session.write(b"<iq type='result' id='" + match.group(1) + b"'/>")


async def close_all(sessions, timeout=10.0):
    """Close every session; abort those not closed after C{timeout} seconds."""
    waiters = []
    loop = asyncio.get_running_loop()
    for session in sessions:
        if session.lost or session.transport is None:
            continue
        done = loop.create_future()
        previous = session.on_lost

        def lost(s, done=done, previous=previous):
            if previous is not None:
                previous(s)
            if not done.done():
                done.set_result(None)

        session.on_lost = lost
        session.on_data = _discard
        session.close()
        waiters.append(done)
    if waiters:
        await asyncio.wait(waiters, timeout=timeout)
    for session in sessions:
        session.abort()


def _discard(session, data):
    pass
