"""End to end: BOSH (XEP-0124, XEP-0206) at https://.../http-bind of the real server, driven
by a BOSH client of the test's own (plain HTTP/1.1 over asyncio TLS streams, SCRAM from
tests.scram_client), next to slixmpp over TCP; and each bad input's terminal condition."""
import asyncio
import base64
import random
import time

import pytest
from lxml import etree

from tests.e2e.harness import TIMEOUT, ServerProcess, client_ssl_context, close, login, run
from tests.scram_client import Client as Scram

PASSWORD = "b0sh pässword"
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "http://etherx.jabber.org/streams"
MAX_STANZA = 20000
INACTIVITY = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with HTTPS, a small stanza limit and a short BOSH inactivity period."""
    server = ServerProcess(tmp_path_factory.mktemp("bosh"), s2s="enabled = no", http="",
                           c2s=f"max_stanza_size = {MAX_STANZA}",
                           config=f"[bosh]\nmax_inactivity = {INACTIVITY}\nmax_wait = 10\n"
                                  "max_hold = 2\n")
    for user in ("alice", "bob", "carol"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


async def http(server, method, data=b"", headers=()):
    """One HTTPS request to /http-bind on its own connection: (status, headers, body)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.https_port, ssl=client_ssl_context(server.certificate),
        server_hostname="localhost")
    lines = [f"{method} /http-bind HTTP/1.1", f"Host: localhost:{server.https_port}",
             "Connection: close", "Content-Type: text/xml; charset=utf-8",
             f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in headers)]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    try:
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in
              (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), fields, payload


class BOSHClient:
    """A minimal BOSH client: consecutive rids, one connection per request."""

    def __init__(self, server):
        self.server = server
        self.rid = random.randint(10**9, 10**12)
        self.sid = None
        self.inbox = []         # stanzas received, in order

    def wrap(self, payload="", rid=None, sid=None, **attrs):
        rid = self.rid if rid is None else rid
        sid = self.sid if sid is None else sid
        attrs = {"rid": rid, "sid": sid, **attrs}
        text = " ".join(f"{k.replace('__', ':')}='{v}'" for k, v in attrs.items()
                        if v is not None)
        return (f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' {text}>{payload}"
                f"</body>").encode()

    async def post(self, payload="", raw=None, **attrs):
        """Post the next body (or C{raw} bytes); returns the response <body/>."""
        data = raw if raw is not None else self.wrap(payload, **attrs)
        if raw is None and "rid" not in attrs:
            self.rid += 1
        status, _, payload = await http(self.server, "POST", data)
        assert status == 200, (status, payload)
        body = etree.fromstring(payload)
        self.inbox.extend(child for child in body
                          if etree.QName(child).namespace == "jabber:client")
        return body

    async def create(self, **attrs):
        body = await self.post(**{"to": "localhost", "wait": "10", "hold": "1",
                                  "ver": "1.6", "xmpp__version": "1.0", "xml__lang": "en",
                                  **attrs})
        self.sid = body.get("sid")
        return body

    async def login(self, user, resource):
        """Create, SCRAM-SHA-256, restart, bind, initial presence."""
        created = await self.create()
        features = created.find(f"{{{NS_STREAMS}}}features")
        if features is None:
            features = (await self.post())[0]
        mechanisms = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert "SCRAM-SHA-256" in mechanisms, mechanisms
        scram = Scram("sha256", user, PASSWORD)
        challenge = await self.post(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                                    f"{b64(scram.first())}</auth>")
        server_first = base64.b64decode(challenge[0].text)
        success = await self.post(f"<response xmlns='{NS_SASL}'>"
                                  f"{b64(scram.final(server_first))}</response>")
        assert etree.QName(success[0]).localname == "success", etree.tostring(success)
        scram.verify(base64.b64decode(success[0].text))
        restarted = await self.post(to="localhost", xmpp__restart="true")
        assert restarted[0].find(f"{{{NS_BIND}}}bind") is not None
        bound = await self.post(f"<iq xmlns='jabber:client' type='set' id='b1'>"
                                f"<bind xmlns='{NS_BIND}'><resource>{resource}</resource>"
                                f"</bind></iq>")
        self.inbox.clear()
        jid = bound[0].findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        await self.post("<presence xmlns='jabber:client'/>")
        return jid

    async def poll_until(self, predicate):
        """Long-poll until a received stanza matches C{predicate}; returns it."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for stanza in self.inbox:
                if predicate(stanza):
                    return stanza
            await self.post()
        raise AssertionError("timed out waiting for a stanza over BOSH")


def b64(data):
    return base64.b64encode(data).decode()


def condition(body):
    return body.get("type"), body.get("condition")


def test_login_and_messages_with_tcp_client(server):
    """A BOSH client logs in with SCRAM over HTTPS, binds, and exchanges messages both
    ways with a slixmpp client on TCP."""
    async def scenario():
        alice = BOSHClient(server)
        assert await alice.login("alice", "web") == "alice@localhost/web"
        bob = await login(server, "bob@localhost/tcp", PASSWORD)
        bob.send_message(mto="alice@localhost/web", mbody="hi over bosh", mtype="chat")
        message = await alice.poll_until(
            lambda s: s.findtext("{jabber:client}body") == "hi over bosh")
        assert message.get("from") == "bob@localhost/tcp"
        await alice.post("<message xmlns='jabber:client' to='bob@localhost/tcp' "
                         "type='chat'><body>hello over tcp</body></message>")
        while True:
            got = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
            if got["body"] == "hello over tcp":
                break
        assert got["from"] == "alice@localhost/web"
        body = await alice.post("<presence xmlns='jabber:client' type='unavailable'/>",
                                type="terminate")
        assert condition(body) == ("terminate", None)
        await close(bob)
    run(scenario())


def test_creation_response(server):
    """The creation response carries the session's attributes and the stream's."""
    async def scenario():
        body = await BOSHClient(server).create()
        assert body.get("sid") and len(body.get("sid")) >= 22
        assert (body.get("wait"), body.get("hold"), body.get("requests"),
                body.get("inactivity"), body.get("ver"), body.get("from")) == (
            "10", "1", "2", str(INACTIVITY), "1.6", "localhost")
        assert body.get(f"{{{NS_XBOSH}}}version") == "1.0"
    run(scenario())


def test_replayed_rid_gets_the_same_response(server):
    """A request repeated with its rid gets the very same response."""
    async def scenario():
        client = BOSHClient(server)
        created = await client.create()
        again = await client.post(rid=client.rid - 1, to="localhost", ver="1.6")
        assert etree.tostring(again) == etree.tostring(created)
    run(scenario())


def test_replayed_old_rid_is_item_not_found(server):
    """A rid older than the responses kept ends the session with item-not-found."""
    async def scenario():
        client = BOSHClient(server)
        await client.create()
        first = client.rid - 1
        for _ in range(3):
            await client.post(pause="5")
        body = await client.post(rid=first)
        assert condition(body) == ("terminate", "item-not-found")
        body = await client.post()
        assert condition(body) == ("terminate", "item-not-found")
    run(scenario())


def test_skipped_rid_is_item_not_found(server):
    """A rid far beyond the window ends the session with item-not-found."""
    async def scenario():
        client = BOSHClient(server)
        await client.create()
        body = await client.post(rid=client.rid + 10)
        assert condition(body) == ("terminate", "item-not-found")
    run(scenario())


def test_borrowed_sid_reads_nothing(server):
    """A client using another session's sid with its own rids gets item-not-found, never
    the other session's stanzas."""
    async def scenario():
        carol = BOSHClient(server)
        await carol.login("carol", "web")
        bob = await login(server, "bob@localhost/spy", PASSWORD)
        bob.send_message(mto="carol@localhost/web", mbody="secret", mtype="chat")
        # Answered after the message was routed (a stream is handled in order): the
        # secret is waiting in carol's session now.
        await bob.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info",
                              ito="localhost").send(timeout=TIMEOUT)
        mallory = BOSHClient(server)
        body = await mallory.post(sid=carol.sid)
        assert condition(body) == ("terminate", "item-not-found")
        assert b"secret" not in etree.tostring(body)
        await close(bob)
    run(scenario())


def test_too_many_requests_is_policy_violation(server):
    """More simultaneous requests than 'requests' end the session with policy-violation
    (other-request for the other two): with hold=2 none of three is answered before the
    third arrives. The first is known to be held before the other two are sent (else the
    third rid, arriving first on a loaded machine, is beyond the window: item-not-found);
    those two may arrive in either order."""
    async def scenario():
        client = BOSHClient(server)
        created = await client.create(hold="2")
        assert (created.get("hold"), created.get("requests")) == ("2", "2")
        rid = client.rid
        # The same rid twice: once it is held, the server answers its older connection
        # empty (a repeat takes over a held request), so an empty answer means it is held.
        copies = [asyncio.ensure_future(client.post(rid=rid)) for _ in range(2)]
        done, (held,) = await asyncio.wait(copies, timeout=TIMEOUT,
                                           return_when=asyncio.FIRST_COMPLETED)
        assert [condition(task.result()) for task in done] == [(None, None)]
        answers = await asyncio.gather(held, *(client.post(rid=rid + n) for n in (1, 2)))
        # The one too many gets policy-violation, the other two other-request.
        assert sorted(condition(body) for body in answers) == [
            ("terminate", "other-request")] * 2 + [("terminate", "policy-violation")]
    run(scenario())


def test_oversized_body_is_policy_violation(server):
    """A body larger than the stanza limit ends its session with policy-violation."""
    async def scenario():
        client = BOSHClient(server)
        await client.create()
        body = await client.post("<message xmlns='jabber:client' to='bob@localhost'>"
                                 f"<body>{'x' * MAX_STANZA}</body></message>")
        assert condition(body) == ("terminate", "policy-violation")
        status, _, _ = await http(server, "POST", b" " * (3 * MAX_STANZA))
        assert status == 413
    run(scenario())


def test_idle_session_times_out(server):
    """A session with no request for 'inactivity' seconds is gone: its next request gets
    item-not-found."""
    async def scenario():
        carol = BOSHClient(server)
        await carol.login("carol", "idle")
        await asyncio.sleep(INACTIVITY + 1.5)
        body = await carol.post()
        assert condition(body) == ("terminate", "item-not-found")
    run(scenario())


def test_http_edges(server):
    """GET answers a page, OPTIONS is a CORS preflight, PUT is 405, a malformed body 400,
    and host-meta lists the BOSH endpoint."""
    async def scenario():
        status, _, page = await http(server, "GET")
        assert status == 200 and b"BOSH" in page
        status, fields, _ = await http(server, "OPTIONS", headers=[
            ("Origin", "https://chat.example"), ("Access-Control-Request-Method", "POST")])
        assert status == 204 and "POST" in fields["access-control-allow-methods"]
        status, fields, _ = await http(server, "PUT", b"x")
        assert status == 405
        status, _, payload = await http(server, "POST", b"<body")
        assert status == 400 and b"bad-request" in payload
    run(scenario())
