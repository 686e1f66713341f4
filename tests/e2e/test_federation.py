"""
Federation end to end: two jabberapp processes serving a.test and b.test on loopback, with
static routes to each other's s2s port, and raw sockets playing misbehaving servers.
"""
import asyncio
import base64
import re
import socket
import ssl

import pytest
from lxml import etree

from jabberapp import tls
from tests.e2e.harness import TIMEOUT, ServerProcess, close, ctl, free_port, login, run

PASSWORD = "fed3ration pässword"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_DB = "jabber:server:dialback"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"

VARIANTS = {
    # Self-signed certificates nobody trusts: TLS, then dialback (XEP-0220 over TLS).
    "dialback": ("", ""),
    # Each side trusts the other's self-signed certificate for its domain: SASL EXTERNAL.
    "external": ("trust_self_signed = b.test", "trust_self_signed = a.test"),
    # Each side has the other's certificate in its trust store (ca_file): SASL EXTERNAL.
    "ca_file": ("ca_file = {b_cert}", "ca_file = {a_cert}"),
    # Dialback without XEP-0288: answers travel on a second connection.
    "no_bidi": ("bidi = no", "bidi = no"),
    # a.test reaches b.test on its direct TLS port (XEP-0368) instead of STARTTLS.
    "direct_tls": ("", "direct_tls_port = {b_direct_port}"),
}


def make_pair(tmp_path, variant, a_extra="", b_extra="", a_routes=""):
    """Two servers, a.test and b.test, routed to each other (not started); a.test also
    routes nowhere.test to a closed port, plus C{a_routes}."""
    a_port, b_port, dead_port, b_direct_port = (free_port() for _ in range(4))
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    # Certificates made before the start, so each side's trust store can name the other's.
    a_cert, _ = tls.ensure_self_signed(str(a_dir / "data"), "a.test")
    b_cert, _ = tls.ensure_self_signed(str(b_dir / "data"), "b.test")
    a_variant, b_variant = (text.format(a_cert=a_cert, b_cert=b_cert,
                                        b_direct_port=b_direct_port)
                            for text in VARIANTS[variant])
    b_target = (f"tls:127.0.0.1:{b_direct_port}" if variant == "direct_tls"
                else f"127.0.0.1:{b_port}")
    a = ServerProcess(a_dir, hosts=("a.test",), s2s_port=a_port, s2s=f"""
        routes = b.test={b_target}, nowhere.test=127.0.0.1:{dead_port}{a_routes}
        {a_variant}
        {a_extra}
        """)
    b = ServerProcess(b_dir, hosts=("b.test",), s2s_port=b_port, s2s=f"""
        routes = a.test=127.0.0.1:{a_port}
        {b_variant}
        {b_extra}
        """)
    b.s2s_direct_tls_port = b_direct_port
    a.adduser("alice@a.test", PASSWORD)
    b.adduser("bob@b.test", PASSWORD)
    return a, b


@pytest.fixture(params=sorted(VARIANTS))
def pair(request, tmp_path):
    a, b = make_pair(tmp_path, request.param)
    with a, b:
        yield request.param, a, b


async def next_message(client, predicate=lambda m: True):
    while True:
        message = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if predicate(message):
            return message


async def presence_from(client, full_jid):
    while True:
        presence = await asyncio.wait_for(client.presences.get(), TIMEOUT)
        if str(presence["from"]) == full_jid:
            return presence


def wait_for_line(server, pattern):
    """The first server log line (already read or still to come) matching C{pattern}."""
    regex = re.compile(pattern)
    for line in server.output:
        if regex.search(line):
            return line
    for line in server.lines_until(regex.search):
        pass
    return line


def test_messages_both_ways(pair):
    """alice@a.test and bob@b.test subscribe to each other, see each other's presence and
    exchange messages and an IQ across the two servers, authenticated with dialback or SASL
    EXTERNAL as each variant's certificates allow."""
    variant, a, b = pair

    async def scenario():
        alice = await login(a, "alice@a.test/phone", PASSWORD, presence=False)
        bob = await login(b, "bob@b.test/laptop", PASSWORD, presence=False)
        for client in (alice, bob):
            client.presences = asyncio.Queue()
            client.add_event_handler("presence_available", client.presences.put_nowait)
            client.send_presence()
        # RFC 6121 across domains: slixmpp approves the request and subscribes back on its
        # own, so one request sets up a mutual subscription; each then sees the other online.
        alice.send_presence(pto="bob@b.test", ptype="subscribe")
        assert await presence_from(alice, "bob@b.test/laptop")
        assert await presence_from(bob, "alice@a.test/phone")
        alice.send_message(mto="bob@b.test", mbody="hello from a", mtype="chat")
        message = await next_message(bob, lambda m: m["body"])
        assert (str(message["from"]), message["body"]) == ("alice@a.test/phone", "hello from a")
        bob.send_message(mto="alice@a.test/phone", mbody="hello from b", mtype="chat")
        message = await next_message(alice, lambda m: m["body"])
        assert (str(message["from"]), message["body"]) == ("bob@b.test/laptop", "hello from b")
        # A server-to-server IQ round trip: alice pings the remote server itself.
        alice.register_plugin("xep_0199")
        rtt = await alice.plugin["xep_0199"].ping("b.test", timeout=TIMEOUT)
        assert rtt >= 0
        await close(alice, bob)

    run(scenario())
    expected = "SASL EXTERNAL" if variant in ("external", "ca_file") else "dialback"
    up = wait_for_line(a, r"s2s link up: outbound a\.test -> b\.test")
    assert f"auth {expected}" in up and "TLSv1." in up, up
    if variant == "direct_tls":
        assert f"(127.0.0.1:{b.s2s_direct_tls_port})" in up, up
    up = wait_for_line(b, r"s2s link up: inbound b\.test <- a\.test")
    assert f"auth {expected}" in up, up
    if variant == "no_bidi":
        # Without XEP-0288 b.test answers on a stream of its own.
        up = wait_for_line(b, r"s2s link up: outbound b\.test -> a\.test")
        assert "bidirectional" not in up, up
    for server in (a, b):
        assert PASSWORD not in server.log() and "hello from" not in server.log()
    # The operator's view of the same link, from the running server's status.
    listing = ctl(a.config_path, "links")
    assert listing.returncode == 0, listing.stderr
    assert re.search(rf"^outbound a\.test -> b\.test up TLSv1\.\d {expected} ", listing.stdout,
                     re.M), listing.stdout


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """a.test (short negotiation timeout, spoof-testing domain trusted) and b.test."""
    tmp_path = tmp_path_factory.mktemp("fed")
    evil_cert, evil_key = tls.ensure_self_signed(str(tmp_path / "evil"), "evil.test")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)   # accepts connections and never says a word
    a, b = make_pair(tmp_path, "dialback", a_extra="""
        negotiation_timeout = 4
        trust_self_signed = evil.test
        """, a_routes=f", silent.test=127.0.0.1:{silent.getsockname()[1]}")
    with a, b:
        yield a, b, (evil_cert, evil_key)
    silent.close()


def test_unreachable_domain_bounces(servers):
    """A message to a domain whose server refuses connections comes back to the sender
    as remote-server-not-found."""
    a, _, _ = servers

    async def scenario():
        alice = await login(a, "alice@a.test/err", PASSWORD)
        alice.send_message(mto="someone@nowhere.test", mbody="anyone?", mtype="chat")
        error = await next_message(alice, lambda m: m["type"] == "error")
        assert error["error"]["condition"] == "remote-server-not-found"
        assert str(error["from"]) == "someone@nowhere.test"
        await close(alice)
    run(scenario())


def test_silent_server_times_out(servers):
    """A server that accepts the connection but never answers: every queued stanza comes
    back as remote-server-timeout once the negotiation timeout is over."""
    a, _, _ = servers

    async def scenario():
        alice = await login(a, "alice@a.test/slow", PASSWORD)
        for n in range(3):
            message = alice.make_message(mto="someone@silent.test", mbody=f"hello {n}",
                                         mtype="chat")
            message["id"] = f"m{n}"
            message.send()
        ids = []
        for _ in range(3):
            error = await next_message(alice, lambda m: m["type"] == "error")
            assert error["error"]["condition"] == "remote-server-timeout"
            ids.append(error["id"])
        assert ids == ["m0", "m1", "m2"]
        await close(alice)
    run(scenario())


# -- raw sockets playing remote servers ---------------------------------------------------


class RawServerStream:
    """A bare-bones initiating server over a socket: header, STARTTLS, elements."""

    def __init__(self, port, sender, receiver="a.test"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sender = sender
        self.receiver = receiver
        self._new_parser()

    def _new_parser(self):
        self.parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False)
        self.depth = 0
        self.header = None

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def open(self):
        self._new_parser()
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  f"xmlns:stream='{NS_STREAMS}' xmlns:db='{NS_DB}' from='{self.sender}' "
                  f"to='{self.receiver}' version='1.0'>")
        return self.next()   # the features

    def next(self):
        """The next top-level element; None when the stream or the connection ended."""
        while True:
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                    if self.depth == 1:
                        self.header = el
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        return el
                    if self.depth == 0:
                        return None
            data = self.sock.recv(65536)
            if not data:
                return None
            self.parser.feed(data)

    def starttls(self, cert=None, key=None):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        proceed = self.next()
        assert proceed.tag == f"{{{NS_TLS}}}proceed"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if cert:
            context.load_cert_chain(cert, key)
        self.sock = context.wrap_socket(self.sock, server_hostname=self.receiver)
        return self.open()

    def stream_error(self):
        """The condition of the stream error that ends the stream (None if none)."""
        while True:
            el = self.next()
            if el is None:
                return None
            if el.tag == f"{{{NS_STREAMS}}}error":
                for child in el:
                    if child.tag.startswith(f"{{{NS_STREAM_ERRORS}}}") and \
                            not child.tag.endswith("}text"):
                        return child.tag.rpartition("}")[2]

    def close(self):
        self.sock.close()


def test_fake_server_with_unverifiable_domain_is_refused(servers):
    """A raw socket claiming b.test with a made-up dialback key: a.test asks b.test, which
    does not know the key, so the claim is answered invalid and the stream closed."""
    a, _, _ = servers
    fake = RawServerStream(a.s2s_port, sender="b.test")
    try:
        features = fake.open()
        assert features.find(f"{{{NS_TLS}}}starttls/{{{NS_TLS}}}required") is not None
        features = fake.starttls()
        assert features.find("{urn:xmpp:features:dialback}dialback") is not None
        assert features.find(f"{{{NS_SASL}}}mechanisms") is None   # no valid certificate
        fake.send(f"<db:result from='b.test' to='a.test'>{'0' * 64}</db:result>")
        verdict = fake.next()
        assert verdict.tag == f"{{{NS_DB}}}result"
        assert verdict.get("type") == "invalid"
        assert fake.stream_error() == "not-authorized"
    finally:
        fake.close()


def test_fake_server_for_unreachable_domain_is_refused(servers):
    """A claim for a domain whose Authoritative Server cannot be reached is answered with a
    dialback error and the stream is closed."""
    a, _, _ = servers
    fake = RawServerStream(a.s2s_port, sender="nowhere.test")
    try:
        fake.open()
        fake.starttls()
        fake.send(f"<db:result from='nowhere.test' to='a.test'>{'1' * 64}</db:result>")
        verdict = fake.next()
        assert verdict.get("type") == "error"
        assert verdict.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}remote-server-not-found") \
            is not None
        assert fake.stream_error() == "remote-connection-failed"
    finally:
        fake.close()


def test_stanza_before_authentication_is_not_authorized(servers):
    """A peer that sends a stanza before authenticating gets <not-authorized/>."""
    a, _, _ = servers
    fake = RawServerStream(a.s2s_port, sender="b.test")
    try:
        fake.open()
        fake.starttls()
        fake.send("<message from='x@b.test' to='alice@a.test'><body>hi</body></message>")
        assert fake.stream_error() == "not-authorized"
    finally:
        fake.close()


def test_spoofed_from_closes_stream(servers):
    """A peer authenticated as evil.test (SASL EXTERNAL with a certificate trusted for that
    domain) that sends a stanza from b.test has its stream closed with invalid-from."""
    a, _, (evil_cert, evil_key) = servers
    fake = RawServerStream(a.s2s_port, sender="evil.test")
    try:
        fake.open()
        features = fake.starttls(evil_cert, evil_key)
        mechanisms = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert mechanisms == ["EXTERNAL"]
        fake.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>"
                  f"{base64.b64encode(b'evil.test').decode()}</auth>")
        assert fake.next().tag == f"{{{NS_SASL}}}success"
        fake.open()
        fake.send("<message from='mallory@evil.test/x' to='alice@a.test' type='chat'>"
                  "<body>legit</body></message>")
        fake.send("<message from='bob@b.test/x' to='alice@a.test' type='chat'>"
                  "<body>spoofed</body></message>")
        assert fake.stream_error() == "invalid-from"
    finally:
        fake.close()
    assert "s2s link up: inbound a.test <- evil.test" in a.log() or wait_for_line(
        a, r"s2s link up: inbound a\.test <- evil\.test")


def test_sasl_external_for_another_domain_fails(servers):
    """A certificate trusted for evil.test cannot authenticate b.test with SASL EXTERNAL."""
    a, _, (evil_cert, evil_key) = servers
    fake = RawServerStream(a.s2s_port, sender="b.test")
    try:
        fake.open()
        features = fake.starttls(evil_cert, evil_key)
        assert features.find(f"{{{NS_SASL}}}mechanisms") is None
        fake.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>"
                  f"{base64.b64encode(b'b.test').decode()}</auth>")
        failure = fake.next()
        assert failure.tag == f"{{{NS_SASL}}}failure"
        assert failure.find(f"{{{NS_SASL}}}not-authorized") is not None
    finally:
        fake.close()
