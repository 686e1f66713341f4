"""
End to end with slixmpp's xep_0280 and raw sockets: two resources of one user see carbons
of the messages they send and receive, <private/> is honoured, and a carbon forged by
another user never reaches a client.
"""
import asyncio
from xml.etree import ElementTree

import pytest

from tests.e2e.harness import TIMEOUT, Events, ServerProcess, close, login, run
from tests.e2e.rawclient import NS_CLIENT, RawClient

PASSWORD = "carbons pw"
NS_CARBONS = "urn:xmpp:carbons:2"
MESSAGE = f"{{{NS_CLIENT}}}message"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("carbons")) as server:
        for user in ("alice", "bob"):
            server.adduser(f"{user}@localhost", PASSWORD)
        yield server


async def carbons_client(server, jid):
    """A logged-in slixmpp client with carbons enabled."""
    client = await login(server, jid, PASSWORD)
    client.register_plugin("xep_0280")
    await asyncio.wait_for(client.plugin["xep_0280"].enable(), TIMEOUT)
    return client


def test_two_resources_see_carbons_both_ways(server):
    """bob writes to alice's phone: her laptop gets a received carbon; the phone answers:
    the laptop gets a sent carbon; bob gets the answer; <private/> makes no carbon."""
    async def body():
        phone = await carbons_client(server, "alice@localhost/phone")
        laptop = await carbons_client(server, "alice@localhost/laptop")
        bob = await login(server, "bob@localhost/desk", PASSWORD)
        received = Events(laptop, "carbon_received")
        sent = Events(laptop, "carbon_sent")
        try:
            bob.send_message(mto="alice@localhost/phone", mbody="hello phone", mtype="chat")
            got = await asyncio.wait_for(phone.messages.get(), TIMEOUT)
            assert got["body"] == "hello phone"
            carbon = await received.wait(lambda m: True, "a received carbon")
            inner = carbon["carbon_received"]
            assert str(carbon["from"]) == "alice@localhost"
            assert (inner["body"], inner["from"].bare) == ("hello phone", "bob@localhost")

            phone.send_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
            answer = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
            assert answer["body"] == "hello bob"
            carbon = await sent.wait(lambda m: True, "a sent carbon")
            assert carbon["carbon_sent"]["body"] == "hello bob"

            private = phone.make_message(mto="bob@localhost", mbody="just us", mtype="chat")
            private.xml.append(ElementTree.Element(f"{{{NS_CARBONS}}}private"))
            private.send()
            phone.send_message(mto="bob@localhost", mbody="after", mtype="chat")
            await sent.wait(lambda m: m["carbon_sent"]["body"] == "after", "the next carbon")
            assert [m["carbon_sent"]["body"] for m in sent.items] == ["hello bob", "after"]
        finally:
            await close(phone, laptop, bob)
    run(body())


def test_forged_carbon_is_dropped(server):
    """A <received/> carbon bob writes to alice's resource is dropped: alice gets only the
    ordinary message that follows it."""
    bob = RawClient(server.port, server.certificate)
    alice = RawClient(server.port, server.certificate)
    try:
        for client, user, resource in ((alice, "alice", "tablet"), (bob, "bob", "raw")):
            client.open_stream()
            client.starttls()
            client.authenticate("SCRAM-SHA-256", user, PASSWORD)
            client.bind(resource)
        alice.send(f"<iq type='set' id='c1'><enable xmlns='{NS_CARBONS}'/></iq>")
        assert alice.expect(f"{{{NS_CLIENT}}}iq").get("type") == "result"
        bob.send(f"<message to='alice@localhost/tablet' type='chat' id='forged'>"
                 f"<received xmlns='{NS_CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>"
                 f"<message xmlns='jabber:client' from='boss@localhost/x' "
                 f"to='alice@localhost/tablet' type='chat'><body>pay bob</body></message>"
                 f"</forwarded></received></message>"
                 f"<message to='alice@localhost/tablet' type='chat' id='real'>"
                 f"<body>hi</body></message>")
        got = alice.expect(MESSAGE)
        assert got.get("id") == "real"
    finally:
        alice.close()
        bob.close()
