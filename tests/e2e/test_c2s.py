"""End to end over real sockets: the server in a subprocess, slixmpp and raw sockets as clients."""
import asyncio
import base64
import socket

import pytest

from tests.e2e.harness import TIMEOUT, ServerProcess, close, login, run

PASSWORD = "s3cret pässword"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("c2s"))
    for user in ("alice", "bob", "carol"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_login_with_each_mechanism(server, mechanism):
    """A slixmpp client logs in over STARTTLS with each mechanism and is bound to its JID."""
    async def scenario():
        client = await login(server, "alice@localhost/m", PASSWORD, mechanism)
        assert str(client.boundjid) == "alice@localhost/m"
        await close(client)
    run(scenario())


def test_direct_tls_login(server):
    """A client connecting with direct TLS (XEP-0368) logs in without STARTTLS."""
    async def scenario():
        client = await login(server, "bob@localhost/direct", PASSWORD, direct_tls=True)
        assert str(client.boundjid) == "bob@localhost/direct"
        await close(client)
    run(scenario())


def test_wrong_password_is_refused(server):
    """A wrong password fails authentication and the client never gets a session."""
    async def scenario():
        with pytest.raises(AssertionError, match="could not log in"):
            await login(server, "carol@localhost/x", "wrong password", "SCRAM-SHA-256")
    run(scenario())


def test_unknown_user_is_refused(server):
    """An account that does not exist fails like a wrong password."""
    async def scenario():
        with pytest.raises(AssertionError, match="could not log in"):
            await login(server, "nobody@localhost/x", PASSWORD, "SCRAM-SHA-1")
    run(scenario())


def test_message_between_two_accounts(server):
    """A chat message from alice reaches bob with alice's full JID stamped as sender."""
    async def scenario():
        alice = await login(server, "alice@localhost/phone", PASSWORD)
        bob = await login(server, "bob@localhost/laptop", PASSWORD)
        alice.send_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
        message = await asyncio.wait_for(_next_with_body(bob), TIMEOUT)
        assert message["from"] == "alice@localhost/phone"
        assert message["body"] == "hello bob"
        await close(alice, bob)
    run(scenario())


def test_message_to_unknown_user_gets_service_unavailable(server):
    """A message to a user that does not exist comes back as service-unavailable."""
    async def scenario():
        alice = await login(server, "alice@localhost/err", PASSWORD)
        alice.send_message(mto="ghost@localhost", mbody="anyone?", mtype="chat")
        error = await asyncio.wait_for(_next_error(alice), TIMEOUT)
        assert error["error"]["condition"] == "service-unavailable"
        assert error["from"] == "ghost@localhost"
        await close(alice)
    run(scenario())


def test_bind_conflict_replaces_older_session(server):
    """Binding an already bound full JID closes the older session with a conflict error."""
    async def scenario():
        first = await login(server, "carol@localhost/same", PASSWORD)
        second = await login(server, "carol@localhost/same", PASSWORD)
        await asyncio.wait_for(first.ended, TIMEOUT)
        assert [e["condition"] for e in first.stream_errors] == ["conflict"]
        assert str(second.boundjid) == "carol@localhost/same"
        await close(second)
    run(scenario())


def test_ping_and_disco_of_the_server(server):
    """The server answers XEP-0199 pings and lists its features in disco#info."""
    async def scenario():
        client = await login(server, "alice@localhost/disco", PASSWORD)
        client.register_plugin("xep_0030")
        client.register_plugin("xep_0199")
        rtt = await client.plugin["xep_0199"].ping("localhost", timeout=TIMEOUT)
        assert rtt is not None
        info = await client.plugin["xep_0030"].get_info(jid="localhost", timeout=TIMEOUT)
        features = info["disco_info"]["features"]
        assert "urn:xmpp:ping" in features
        assert "http://jabber.org/protocol/disco#info" in features
        await close(client)
    run(scenario())


async def _next_with_body(client):
    while True:
        message = await client.messages.get()
        if message["body"]:
            return message


async def _next_error(client):
    while True:
        message = await client.messages.get()
        if message["type"] == "error":
            return message


# -- raw sockets: protocol violations ----------------------------------------------------

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


def raw_exchange(server, data):
    """Send C{data} on a fresh plain c2s connection; return everything until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(data)
        received = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return received
            received += chunk


def test_stanza_before_tls_is_not_authorized(server):
    """A message sent before STARTTLS and authentication ends the stream with not-authorized."""
    reply = raw_exchange(server, HEADER + b"<message to='bob@localhost'><body>x</body></message>")
    assert b"<starttls" in reply and b"<required/>" in reply
    assert b"<not-authorized xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>" in reply
    assert reply.endswith(b"</stream:stream>")


def test_oversized_stanza_is_a_policy_violation(server):
    """A stanza larger than max_stanza_size ends the stream with policy-violation."""
    reply = raw_exchange(server, HEADER + b"<message><body>" + b"a" * 300_000)
    assert b"<policy-violation xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>" in reply


def test_not_well_formed_xml(server):
    """Broken XML ends the stream with not-well-formed."""
    reply = raw_exchange(server, HEADER + b"<message><body></message>")
    assert b"<not-well-formed xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>" in reply


def test_dtd_is_restricted_xml(server):
    """A document type declaration is refused with restricted-xml and nothing is expanded."""
    dtd = (b"<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]>"
           b"<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
           b"xmlns:stream='http://etherx.jabber.org/streams'>")
    reply = raw_exchange(server, dtd)
    assert b"<restricted-xml xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>" in reply


def test_unknown_host_is_host_unknown(server):
    """A stream to a domain the server does not serve gets host-unknown."""
    reply = raw_exchange(server, HEADER.replace(b"to='localhost'", b"to='elsewhere.example'"))
    assert b"<host-unknown xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>" in reply


def test_no_secret_reaches_the_log(server):
    """Passwords, SASL data and message bodies never appear in the server's log."""
    secret_body = "body-7f3a9c-must-not-be-logged"

    async def scenario():
        alice = await login(server, "alice@localhost/logcheck", PASSWORD, "PLAIN")
        bob = await login(server, "bob@localhost/logcheck", PASSWORD, "SCRAM-SHA-256")
        alice.send_message(mto="bob@localhost/logcheck", mbody=secret_body, mtype="chat")
        await asyncio.wait_for(_next_with_body(bob), TIMEOUT)
        await close(alice, bob)
    run(scenario())
    for _ in server.lines_until(lambda line: "bob@localhost/logcheck closed" in line):
        pass
    log = server.log()
    assert "alice@localhost/logcheck" in log  # the log does record the session
    plain = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, secret_body, plain):
        assert secret not in log
