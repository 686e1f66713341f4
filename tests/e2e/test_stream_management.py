"""
End to end over raw sockets and slixmpp's xep_0198: XEP-0198 resumption after the TCP connection is cut, and a
session that is not resumed in time leaving its messages in offline storage.
"""
import asyncio

import pytest
from lxml import etree

from tests.e2e.harness import TIMEOUT, Client, Events, ServerProcess, close, login, run
from tests.e2e.rawclient import NS_CLIENT, RawClient, StreamClosed

PASSWORD = "sm pw"
NS_SM = "urn:xmpp:sm:3"
NS_DELAY = "urn:xmpp:delay"
MESSAGE = f"{{{NS_CLIENT}}}message"


def make_server(directory, timeout, ack_timeout=60, request_every=5):
    server = ServerProcess(directory, config=f"""
        [extension:sm]
        resume_timeout = {timeout}
        ack_timeout = {ack_timeout}
        request_every = {request_every}
        """)
    for user in ("alice", "bob", "carol"):
        server.adduser(f"{user}@localhost", PASSWORD)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with make_server(tmp_path_factory.mktemp("sm"), 60) as server:
        yield server


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory):
    with make_server(tmp_path_factory.mktemp("sm-timeout"), 2) as server:
        yield server


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory):
    with make_server(tmp_path_factory.mktemp("sm-ack-timeout"), 60, ack_timeout=2,
                     request_every=1) as server:
        yield server


def connect(server, user, resource=None):
    """STARTTLS and SCRAM; bound to C{resource} unless None. The client and its features."""
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    client.starttls()
    features = client.authenticate("SCRAM-SHA-256", user, PASSWORD)
    if resource is not None:
        client.bind(resource)
    return client, features


def enable_resumable(server):
    """alice/phone, available, with resumption enabled: the client and the id."""
    alice, features = connect(server, "alice")
    assert features.find(f"{{{NS_SM}}}sm") is not None, etree.tostring(features)
    alice.bind("phone")
    alice.send("<presence/>")
    alice.expect(f"{{{NS_CLIENT}}}presence")
    alice.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    enabled = alice.expect(f"{{{NS_SM}}}enabled")
    assert enabled.get("resume") == "true"
    return alice, enabled.get("id")


def cut(server, client):
    """Close the socket with no </stream:stream>; wait until the server keeps the session."""
    client._sock.close()
    for _ in server.lines_until(lambda line: "alice@localhost/phone awaits resumption" in line):
        pass


def send_messages(bob, bodies, to="alice@localhost/phone"):
    """Bob sends chat messages, then a ping the server answers after handling them all."""
    for body in bodies:
        bob.send(f"<message type='chat' to='{to}' id='m{body}'><body>{body}</body></message>")
    bob.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
    while bob.expect(f"{{{NS_CLIENT}}}iq", MESSAGE, f"{{{NS_CLIENT}}}presence").get("id") != "sync":
        pass


def next_bodies(client, count):
    """The bodies of the next C{count} messages C{client} receives (other stanzas skipped)."""
    bodies = []
    while len(bodies) < count:
        el = client.next_element()
        if el.tag == MESSAGE and el.findtext(f"{{{NS_CLIENT}}}body") is not None:
            bodies.append(el)
    return bodies


def test_resume_after_cut_gets_every_message_once_in_order(server):
    """Messages sent while alice's connection is cut arrive once, in order, after she
    resumes on a new connection; the next live message follows them directly."""
    alice, previd = enable_resumable(server)
    bob, _ = connect(server, "bob", "desk")
    try:
        send_messages(bob, ["1", "2"])
        assert [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(alice, 2)] == ["1", "2"]
        cut(server, alice)
        send_messages(bob, ["3", "4", "5"])
        alice, features = connect(server, "alice")
        assert features.find(f"{{{NS_SM}}}sm") is not None
        alice.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='2'/>")
        resumed = alice.expect(f"{{{NS_SM}}}resumed")
        assert resumed.get("previd") == previd
        got = [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(alice, 3)]
        assert got == ["3", "4", "5"]
        send_messages(bob, ["6"])
        assert [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(alice, 1)] == ["6"]
        # Everything acknowledged: nothing is left to go offline when she closes.
        alice.send(f"<a xmlns='{NS_SM}' h='6'/><r xmlns='{NS_SM}'/>")
        assert alice.expect(f"{{{NS_SM}}}a", MESSAGE).tag == f"{{{NS_SM}}}a"
    finally:
        alice.close()
        bob.close()


def test_acks_count_handled_stanzas_and_wait_for_storage(server):
    """alice's <r/> is answered with the number of stanzas she sent since <enable/>; a
    message to carol, who is offline, is counted once it is in storage: the last <a/>
    covers all five, and carol finds the message at her next login."""
    alice, _ = enable_resumable(server)
    bob, _ = connect(server, "bob", "desk")
    carol = None
    try:
        for n in range(3):
            alice.send(f"<message type='chat' to='bob@localhost/desk' id='b{n}'>"
                       f"<body>to bob {n}</body></message>")
        alice.send("<message type='chat' to='carol@localhost' id='c1'><body>to carol</body>"
                   "</message><iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        alice.send(f"<r xmlns='{NS_SM}'/>")
        h = None
        while h != 5:
            el = alice.next_element()
            if el.tag == f"{{{NS_SM}}}a":
                assert h is None or int(el.get("h")) > h
                h = int(el.get("h"))
                assert h <= 5
        assert len(next_bodies(bob, 3)) == 3
        carol, _ = connect(server, "carol", "home")
        carol.send("<presence/>")
        assert [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(carol, 1)] == [
            "to carol"]
    finally:
        for client in (alice, bob, carol):
            if client is not None:
                client.close()


def test_cut_mid_traffic_resends_from_the_client_h(server):
    """alice's connection is cut while a burst is arriving: she resumes with the count of
    the messages she had read, and gets the rest of the burst and what was sent during the
    gap once each, in order."""
    alice, previd = enable_resumable(server)
    bob, _ = connect(server, "bob", "desk")
    try:
        for n in range(10):
            bob.send(f"<message type='chat' to='alice@localhost/phone' id='m{n}'>"
                     f"<body>{n}</body></message>")
        read = [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(alice, 4)]
        assert read == ["0", "1", "2", "3"]
        cut(server, alice)
        send_messages(bob, ["10", "11", "12"])
        alice, _ = connect(server, "alice")
        alice.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='4'/>")
        alice.expect(f"{{{NS_SM}}}resumed")
        got = [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(alice, 9)]
        assert got == [str(n) for n in range(4, 13)]
        alice.send(f"<a xmlns='{NS_SM}' h='13'/><r xmlns='{NS_SM}'/>")
        while alice.next_element().tag != f"{{{NS_SM}}}a":
            pass
    finally:
        alice.close()
        bob.close()


def test_unanswered_request_drops_the_connection(impatient_server):
    """alice stops answering the server's <r/>: after ack_timeout her connection is
    dropped though TCP is fine, her session waits for her, and she resumes it on a new
    connection and gets the unacknowledged message again."""
    server = impatient_server
    alice, previd = enable_resumable(server)
    bob, _ = connect(server, "bob", "desk")
    try:
        send_messages(bob, ["ping me"])
        assert alice.expect(MESSAGE).findtext(f"{{{NS_CLIENT}}}body") == "ping me"
        alice.expect(f"{{{NS_SM}}}r")
        for _ in server.lines_until(lambda line: "no answer to <r/>" in line):
            pass
        for _ in server.lines_until(lambda line: "alice@localhost/phone awaits resumption"
                                    in line):
            pass
        with pytest.raises(StreamClosed):
            while True:
                alice.next_element()
        alice._sock.close()
        alice, _ = connect(server, "alice")
        alice.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        alice.expect(f"{{{NS_SM}}}resumed")
        assert [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(alice, 1)] == [
            "ping me"]
        alice.send(f"<a xmlns='{NS_SM}' h='1'/>")
    finally:
        alice.close()
        bob.close()


def test_resume_with_unknown_id_fails(server):
    """A resumption with an id the server never gave is <failed/> with item-not-found."""
    alice, _ = connect(server, "alice")
    try:
        alice.send(f"<resume xmlns='{NS_SM}' previd='no-such-id' h='0'/>")
        failed = alice.expect(f"{{{NS_SM}}}failed")
        assert failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
    finally:
        alice.close()


def test_not_resumed_in_time_goes_offline(quick_server):
    """alice does not come back within the resumption timeout: the messages sent to her
    meanwhile are stored offline and reach her, in order and delay-stamped, at her next
    login."""
    server = quick_server
    alice, _ = enable_resumable(server)
    bob, _ = connect(server, "bob", "desk")
    try:
        cut(server, alice)
        send_messages(bob, ["a", "b", "c"])
        stored = 0
        for line in server.lines_until(lambda line: stored >= 3):
            stored += "offline message stored for alice@localhost" in line
        alice, _ = connect(server, "alice", "laptop")
        alice.send("<presence/>")
        messages = next_bodies(alice, 3)
        assert [m.findtext(f"{{{NS_CLIENT}}}body") for m in messages] == ["a", "b", "c"]
        assert all(m.find(f"{{{NS_DELAY}}}delay") is not None for m in messages)
    finally:
        alice.close()
        bob.close()


async def slixmpp_alice(server, resource):
    """alice with slixmpp's xep_0198 (resumption on), logged in and available."""
    client = Client(f"alice@localhost/{resource}", PASSWORD, server.certificate)
    client.register_plugin("xep_0198")
    client.resumed = asyncio.get_event_loop().create_future()
    client.add_event_handler("session_resumed", lambda _: client.resumed.done()
                             or client.resumed.set_result(True))
    enabled = asyncio.get_event_loop().create_future()
    client.add_event_handler("sm_enabled", lambda _: enabled.done() or enabled.set_result(True))
    client.connect("127.0.0.1", server.port)
    await asyncio.wait_for(asyncio.gather(client.started, enabled), TIMEOUT)
    client.send_presence()
    return client


async def slixmpp_bodies(client, count):
    got = []
    while len(got) < count:
        message = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if message["body"]:
            got.append(message["body"])
    return got


def test_slixmpp_acks_and_resumes(server):
    """slixmpp's XEP-0198 client sees its stanzas acknowledged, and after its TCP
    connection is aborted it resumes and gets the messages sent meanwhile once, in order."""
    async def scenario():
        alice = await slixmpp_alice(server, "mobile")
        acked = Events(alice, "stanza_acked")
        bob = await login(server, "bob@localhost/desk", PASSWORD)
        for n in range(3):
            alice.send_message(mto="bob@localhost/desk", mbody=f"to bob {n}", mtype="chat")
        assert len(await slixmpp_bodies(bob, 3)) == 3
        alice.plugin["xep_0198"].request_ack()
        await acked.wait(lambda _: len(acked.items) >= 4, "acks of presence and 3 messages")
        bob.send_message(mto="alice@localhost/mobile", mbody="live", mtype="chat")
        assert await slixmpp_bodies(alice, 1) == ["live"]
        alice.transport.abort()          # no </stream:stream>: the connection is just gone
        await asyncio.to_thread(lambda: [None for _ in server.lines_until(
            lambda line: "alice@localhost/mobile awaits resumption" in line)])
        for n in range(4):
            bob.send_message(mto="alice@localhost/mobile", mbody=f"gap {n}", mtype="chat")
        alice.connect("127.0.0.1", server.port)
        await asyncio.wait_for(alice.resumed, TIMEOUT)
        assert await slixmpp_bodies(alice, 4) == [f"gap {n}" for n in range(4)]
        bob.send_message(mto="alice@localhost/mobile", mbody="after", mtype="chat")
        assert await slixmpp_bodies(alice, 1) == ["after"]
        await close(alice, bob)

    run(scenario())
