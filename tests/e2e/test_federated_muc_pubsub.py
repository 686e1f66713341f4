"""
Federated MUC, pubsub and PEP end to end: bob@b.test uses the services of a.test
(conference.a.test, pubsub.a.test, alice's PEP) over one dialback s2s pair on loopback.
"""
import asyncio

import pytest
from slixmpp.xmlstream import ET

from jabberapp import tls
from tests.e2e.harness import Client, Events, ServerProcess, TIMEOUT, close, free_port, run

PASSWORD = "fed services pw"
MUC = "conference.a.test"
SERVICE = "pubsub.a.test"
NS_TUNE = "urn:test:federated:tune"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """a.test and b.test on loopback with static routes (b.test also routes a.test's
    service subdomains), self-signed certificates, hence dialback."""
    tmp_path = tmp_path_factory.mktemp("fedsvc")
    a_port, b_port = free_port(), free_port()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    tls.ensure_self_signed(str(a_dir / "data"), "a.test")
    tls.ensure_self_signed(str(b_dir / "data"), "b.test")
    a = ServerProcess(a_dir, hosts=("a.test",), s2s_port=a_port, s2s=f"""
        routes = b.test=127.0.0.1:{b_port}
        """)
    b = ServerProcess(b_dir, hosts=("b.test",), s2s_port=b_port, s2s=f"""
        routes = a.test=127.0.0.1:{a_port}, {MUC}=127.0.0.1:{a_port}, {SERVICE}=127.0.0.1:{a_port}
        """)
    a.adduser("alice@a.test", PASSWORD)
    b.adduser("bob@b.test", PASSWORD)
    with a, b:
        yield a, b



async def connect(server, jid, interests=(), presence=True):
    """Log in with the MUC and pubsub plugins, recording what arrives."""
    client = Client(jid, PASSWORD, server.certificate)
    for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0060", "xep_0115", "xep_0163"):
        client.register_plugin(plugin)
    client.groupchat = Events(client, "groupchat_message")
    client.muc_presence = Events(client, "groupchat_presence")
    client.pubsub = Events(client, "pubsub_publish")
    client.connect("127.0.0.1", server.port)
    done, _ = await asyncio.wait([client.started, client.failed], timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert client.started in done, f"{jid} could not log in"
    for namespace in interests:
        client.plugin["xep_0163"].add_interest(namespace)
    await client.plugin["xep_0115"].update_caps(broadcast=False)
    await client.get_roster()
    if presence:
        client.send_presence()
    return client


def muc(client):
    return client.plugin["xep_0045"]


def entry(text):
    payload = ET.Element(f"{{{NS_TUNE}}}entry")
    payload.text = text
    return payload


def item_event(client, node, item_id):
    """Wait for the pubsub event of C{node} carrying item C{item_id}."""
    return client.pubsub.wait(
        lambda m: (m["pubsub_event"]["items"]["node"] == node
                   and m["pubsub_event"]["items"]["item"]["id"] == item_id),
        f"item {item_id} of {node}")


async def befriend(a, b):
    """Mutual presence subscription (slixmpp approves and subscribes back on its own)."""
    changed = asyncio.Event()
    for client in (a, b):
        client.add_event_handler("roster_update", lambda _: changed.set())
    a.send_presence(pto=b.boundjid.bare, ptype="subscribe")
    while (a.client_roster[b.boundjid.bare]["subscription"] != "both"
           or b.client_roster[a.boundjid.bare]["subscription"] != "both"):
        changed.clear()
        await asyncio.wait_for(changed.wait(), TIMEOUT)


def test_remote_occupant_talks_and_is_kicked(pair):
    """bob@b.test joins alice's room at conference.a.test: both see each other's presence,
    exchange groupchat messages, and alice (owner) kicks bob, who gets the 307 presence."""
    a, b = pair

    async def scenario():
        room = f"lounge@{MUC}"
        alice = await connect(a, "alice@a.test/muc")
        bob = await connect(b, "bob@b.test/muc")
        presence, _, _, _ = await muc(alice).join_muc_wait(room, "alice", maxstanzas=0,
                                                           timeout=TIMEOUT)
        assert 201 in presence["muc"]["status_codes"]
        form = await muc(alice).get_room_config(room, timeout=TIMEOUT)
        await muc(alice).set_room_config(room, form, timeout=TIMEOUT)
        presence, _, occupants, _ = await muc(bob).join_muc_wait(room, "bob", maxstanzas=0,
                                                                 timeout=TIMEOUT)
        assert presence["muc"]["role"] == "participant"
        assert [str(p["from"]) for p in occupants] == [f"{room}/alice", f"{room}/bob"]
        seen = await alice.muc_presence.wait(
            lambda p: str(p["from"]) == f"{room}/bob" and p["type"] != "unavailable",
            "bob's presence in the room")
        # alice moderates: the room shows her bob's real JID on b.test.
        assert seen["muc"]["jid"].bare == "bob@b.test"
        bob.send_message(mto=room, mbody="hi from b.test", mtype="groupchat")
        got = await alice.groupchat.wait(lambda m: m["body"] == "hi from b.test", "bob's line")
        assert str(got["from"]) == f"{room}/bob"
        alice.send_message(mto=room, mbody="welcome from a.test", mtype="groupchat")
        got = await bob.groupchat.wait(lambda m: m["body"] == "welcome from a.test",
                                       "alice's line")
        assert str(got["from"]) == f"{room}/alice"
        await muc(alice).set_role(room, "bob", "none", reason="bye", timeout=TIMEOUT)
        kicked = await bob.muc_presence.wait(
            lambda p: (str(p["from"]) == f"{room}/bob" and p["type"] == "unavailable"
                       and 307 in p["muc"]["status_codes"]), "bob's 307")
        assert 110 in kicked["muc"]["status_codes"]
        await alice.muc_presence.wait(
            lambda p: (str(p["from"]) == f"{room}/bob" and p["type"] == "unavailable"
                       and 307 in p["muc"]["status_codes"]), "alice sees the kick")
        await close(alice, bob)
    run(scenario())


def test_remote_subscriber_gets_service_notification(pair):
    """bob@b.test subscribes to a node at pubsub.a.test and gets the published item."""
    a, b = pair

    async def scenario():
        alice = await connect(a, "alice@a.test/feed")
        bob = await connect(b, "bob@b.test/reader")
        await alice.plugin["xep_0060"].create_node(SERVICE, "fednews")
        result = await bob.plugin["xep_0060"].subscribe(SERVICE, "fednews", bare=False,
                                                        timeout=TIMEOUT)
        assert result["pubsub"]["subscription"]["subscription"] == "subscribed"
        await alice.plugin["xep_0060"].publish(SERVICE, "fednews", id="f1",
                                               payload=entry("across domains"))
        event = await item_event(bob, "fednews", "f1")
        assert str(event["from"]) == SERVICE
        assert event["pubsub_event"]["items"]["item"].xml.find(
            f"{{{NS_TUNE}}}entry").text == "across domains"
        await close(alice, bob)
    run(scenario())


def test_pep_notification_to_remote_contact(pair):
    """alice@a.test and bob@b.test are mutual contacts; bob's caps say NS_TUNE+notify, a.test
    verifies them across s2s and alice's PEP items reach bob."""
    a, b = pair

    async def scenario():
        alice = await connect(a, "alice@a.test/pep")
        bob = await connect(b, "bob@b.test/pep")
        await befriend(alice, bob)
        # New caps (a new ver) announced now that alice's roster has bob as a contact.
        bob.plugin["xep_0163"].add_interest(NS_TUNE)
        await bob.plugin["xep_0115"].update_caps(broadcast=True)
        # update_caps addresses its presence to each contact, which leaves b.test's record of
        # bob's broadcast presence (what it answers a.test's probes with) on the old caps:
        # a broadcast makes both servers agree, so a late probe answer cannot undo it.
        bob.send_presence()
        await alice.plugin["xep_0060"].publish(None, NS_TUNE, id="t1", payload=entry("one"))
        # Delivered on publish if a.test verified bob's caps already, else as the last
        # item once it has: either way a notification from alice's bare JID.
        event = await item_event(bob, NS_TUNE, "t1")
        assert str(event["from"]) == "alice@a.test"
        assert event["pubsub_event"]["items"]["item"].xml.find(
            f"{{{NS_TUNE}}}entry").text == "one"
        # Caps verified by now: the next publication is a plain notification.
        await alice.plugin["xep_0060"].publish(None, NS_TUNE, id="t2", payload=entry("two"))
        event = await item_event(bob, NS_TUNE, "t2")
        assert str(event["from"]) == "alice@a.test"
        await close(alice, bob)
    run(scenario())
