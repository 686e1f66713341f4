"""End to end: XEP-0191 blocking with slixmpp's xep_0191 plugin, both ways, across logins
and a server restart."""
import asyncio

import pytest
from slixmpp import JID

from tests.e2e.harness import TIMEOUT, ServerProcess, close, login, run

PASSWORD = "blocking pw"
NS_BLOCKED = "{urn:xmpp:blocking:errors}blocked"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("blocking"))
    for user in ("alice", "bob", "carol", "dave", "erin"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


async def blocking_login(server, jid):
    """Log in with the disco and blocking plugins and request the blocklist (so this
    resource gets pushes, XEP-0191 §3.2)."""
    client = await login(server, jid, PASSWORD)
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0191")
    await client.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT)
    return client


async def next_message(client):
    """The next message (or message error) C{client} receives."""
    return await asyncio.wait_for(client.messages.get(), TIMEOUT)


async def delivered(sender, recipient, body):
    """Send a chat from C{sender} to C{recipient} and wait until it arrives."""
    sender.send_message(mto=recipient.boundjid.bare, mbody=body, mtype="chat")
    message = await next_message(recipient)
    assert (message["type"], message["body"]) == ("chat", body)
    return message


def test_discovery(server):
    """The server advertises urn:xmpp:blocking in its disco#info (XEP-0191 §3.1)."""
    async def scenario():
        alice = await blocking_login(server, "alice@localhost/disco")
        info = await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=TIMEOUT)
        assert "urn:xmpp:blocking" in info["disco_info"]["features"]
        await close(alice)
    run(scenario())


def test_block_both_ways_and_unblock(server):
    """Once alice blocks bob, bob's messages do not reach her (he gets
    service-unavailable) and hers to him are refused with <blocked/>; after the unblock
    both directions work again."""
    async def scenario():
        alice = await blocking_login(server, "alice@localhost/phone")
        bob = await blocking_login(server, "bob@localhost/laptop")
        carol = await blocking_login(server, "carol@localhost/desk")
        await delivered(bob, alice, "before")

        await alice.plugin["xep_0191"].block(JID("bob@localhost"), timeout=TIMEOUT)
        assert await alice.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT) == {
            JID("bob@localhost")}

        # bob -> alice: an error for bob, nothing for alice (carol's message comes first).
        bob.send_message(mto="alice@localhost", mbody="blocked?", mtype="chat")
        error = await next_message(bob)
        assert (error["type"], error["error"]["condition"]) == ("error",
                                                                "service-unavailable")
        assert error["from"] == "alice@localhost"
        await delivered(carol, alice, "from carol")

        # alice -> bob: refused with not-acceptable and the blocking app condition.
        alice.send_message(mto="bob@localhost", mbody="can you hear me?", mtype="chat")
        refusal = await next_message(alice)
        assert refusal["type"] == "error"
        assert refusal["error"]["condition"] == "not-acceptable"
        assert refusal.xml.find(f"{{jabber:client}}error/{NS_BLOCKED}") is not None
        await delivered(carol, bob, "bob still gets carol's")

        await alice.plugin["xep_0191"].unblock(JID("bob@localhost"), timeout=TIMEOUT)
        assert await alice.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT) == set()
        await delivered(bob, alice, "after")
        await delivered(alice, bob, "and back")
        await close(alice, bob, carol)
    run(scenario())


def test_push_to_other_resource(server):
    """A block from one resource is pushed to the user's other resource that requested
    the blocklist (XEP-0191 §3.3), and an unblock too (§3.4)."""
    async def scenario():
        first = await blocking_login(server, "dave@localhost/one")
        second = await blocking_login(server, "dave@localhost/two")
        pushes = asyncio.Queue()
        second.add_event_handler("blocked", pushes.put_nowait)
        second.add_event_handler("unblocked", pushes.put_nowait)
        await first.plugin["xep_0191"].block([JID("spam.example"), JID("erin@localhost")],
                                             timeout=TIMEOUT)
        push = await asyncio.wait_for(pushes.get(), TIMEOUT)
        assert {item["jid"] for item in push["block"]} == {JID("spam.example"),
                                                           JID("erin@localhost")}
        await first.plugin["xep_0191"].unblock(JID("spam.example"), timeout=TIMEOUT)
        push = await asyncio.wait_for(pushes.get(), TIMEOUT)
        assert [item["jid"] for item in push["unblock"]] == [JID("spam.example")]
        await close(first, second)
    run(scenario())


def test_presence_on_block_and_unblock(server):
    """A contact subscribed to erin's presence gets her unavailable presence when she
    blocks it (XEP-0191 §3.3) and her current presence again when she unblocks it (§3.4)."""
    async def scenario():
        erin = await blocking_login(server, "erin@localhost/pc")
        carol = await blocking_login(server, "carol@localhost/watcher")
        presences = asyncio.Queue()
        for event in ("presence_available", "presence_unavailable", "presence_subscribed"):
            carol.add_event_handler(event, presences.put_nowait)

        async def from_erin(type_):
            while True:
                presence = await asyncio.wait_for(presences.get(), TIMEOUT)
                if presence["from"].bare == "erin@localhost" and presence["type"] == type_:
                    return presence

        # carol subscribes to erin, whose client approves (slixmpp's auto_authorize).
        carol.send_presence_subscription(pto="erin@localhost")
        await from_erin("subscribed")
        await from_erin("available")

        await erin.plugin["xep_0191"].block(JID("carol@localhost"), timeout=TIMEOUT)
        gone = await from_erin("unavailable")
        assert gone["from"] == erin.boundjid

        await erin.plugin["xep_0191"].unblock(JID("carol@localhost"), timeout=TIMEOUT)
        back = await from_erin("available")
        assert back["from"] == erin.boundjid
        await close(erin, carol)
    run(scenario())


def test_blocklist_survives_relogin_and_restart(server):
    """alice's blocklist is there at her next login, and after a server restart, and
    still enforced."""
    async def block_and_leave():
        alice = await blocking_login(server, "alice@localhost/first")
        await alice.plugin["xep_0191"].block(JID("bob@localhost"), timeout=TIMEOUT)
        await close(alice)

    async def check():
        alice = await blocking_login(server, "alice@localhost/again")
        bob = await blocking_login(server, "bob@localhost/again")
        assert await alice.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT) == {
            JID("bob@localhost")}
        bob.send_message(mto="alice@localhost", mbody="still blocked?", mtype="chat")
        error = await next_message(bob)
        assert error["error"]["condition"] == "service-unavailable"
        await close(alice, bob)

    run(block_and_leave())
    run(check())
    server.stop()
    server.start()
    run(check())
