"""End to end: RFC 6121 rosters, subscriptions and presence with slixmpp clients."""
import asyncio

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from tests.e2e.harness import Client, Events, ServerProcess, TIMEOUT, close, run

PASSWORD = "roster pw"
NS_ROSTER = "jabber:iq:roster"
AVAILABLE = ("available", "away", "chat", "dnd", "xa")
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy",
         "kate", "leo", "mike", "nina", "oscar", "pat")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("roster"))
    for user in USERS:
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server



async def connect(server, jid, presence=True, roster=True, status=None):
    """Log in with automatic subscription handling off; watch presence and roster pushes."""
    client = Client(jid, PASSWORD, server.certificate)
    client.auto_authorize = None
    client.auto_subscribe = False
    client.presences = Events(client, "presence")
    client.pushes = Events(client, "roster_update")
    client.connect("127.0.0.1", server.port)
    done, _ = await asyncio.wait([client.started, client.failed], timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert client.started in done, f"{jid} could not log in"
    if roster:
        await client.get_roster()
    if presence:
        client.send_presence(pstatus=status)
    return client


def bare(client):
    return client.boundjid.bare


async def presence_from(client, sender, type_="available", status=None):
    """Wait until C{client} got presence of C{type_} from C{sender} (bare or full JID)."""
    def match(p):
        # slixmpp reports available presence by its <show/> ('away', 'dnd', ...).
        kind = "available" if p["type"] in AVAILABLE else p["type"]
        if kind != type_:
            return False
        if sender not in (str(p["from"]), p["from"].bare):
            return False
        return status is None or p["status"] == status
    return await client.presences.wait(match, f"{type_} presence from {sender}")


async def pushed(client, contact, subscription, ask=None):
    """Wait until a roster push or result showed C{contact} with C{subscription}."""
    def match(iq):
        item = iq["roster"]["items"].get(contact)
        return (item is not None and item["subscription"] == subscription
                and (ask is None or item.get("ask") == ask))
    return await client.pushes.wait(match, f"{contact} as {subscription} in a roster push")


async def befriend(a, b):
    """Mutual subscription between two connected clients, by hand as a user would."""
    a.send_presence_subscription(pto=bare(b))
    await presence_from(b, bare(a), "subscribe")
    b.send_presence_subscription(pto=bare(a), ptype="subscribed")
    b.send_presence_subscription(pto=bare(a))
    await presence_from(a, bare(b), "subscribe")
    a.send_presence_subscription(pto=bare(b), ptype="subscribed")
    await pushed(a, bare(b), "both")
    await pushed(b, bare(a), "both")


def test_mutual_subscription(server):
    """alice and bob subscribe to each other and then see each other's presence."""
    async def scenario():
        alice = await connect(server, "alice@localhost/home", status="alice here")
        bob = await connect(server, "bob@localhost/work", status="bob here")
        alice.send_presence_subscription(pto="bob@localhost")
        await pushed(alice, "bob@localhost", "none", ask="subscribe")
        request = await presence_from(bob, "alice@localhost", "subscribe")
        assert str(request["from"]) == "alice@localhost"     # stamped with the bare JID
        bob.send_presence_subscription(pto="alice@localhost", ptype="subscribed")
        await pushed(alice, "bob@localhost", "to")
        await pushed(bob, "alice@localhost", "from")
        await presence_from(alice, "bob@localhost/work", status="bob here")
        bob.send_presence_subscription(pto="alice@localhost")
        await presence_from(alice, "bob@localhost", "subscribe")
        alice.send_presence_subscription(pto="bob@localhost", ptype="subscribed")
        await pushed(alice, "bob@localhost", "both")
        await pushed(bob, "alice@localhost", "both")
        await presence_from(bob, "alice@localhost/home", status="alice here")
        assert alice.client_roster["bob@localhost"]["subscription"] == "both"
        bob.send_presence(pstatus="bob busy", pshow="dnd")
        await presence_from(alice, "bob@localhost/work", status="bob busy")
        await close(alice, bob)
    run(scenario())


def test_roster_push_to_second_resource(server):
    """A roster set from one resource is pushed to the user's other interested resource."""
    async def scenario():
        phone = await connect(server, "carol@localhost/phone")
        laptop = await connect(server, "carol@localhost/laptop")
        await phone.update_roster("dave@localhost", name="Dave", groups=["Friends"])
        push = await pushed(laptop, "dave@localhost", "none")
        item = push["roster"]["items"]["dave@localhost"]
        assert (item["name"], list(item["groups"])) == ("Dave", ["Friends"])
        assert laptop.client_roster["dave@localhost"]["name"] == "Dave"
        # The user's own resources see each other's presence.
        await presence_from(laptop, "carol@localhost/phone")
        await presence_from(phone, "carol@localhost/laptop")
        await close(phone, laptop)
    run(scenario())


def test_unavailable_on_logoff_and_abrupt_disconnect(server):
    """Two contacts of erin see her go unavailable on logoff and on a dropped connection."""
    async def scenario():
        erin = await connect(server, "erin@localhost/a")
        frank = await connect(server, "frank@localhost/a")
        gina = await connect(server, "gina@localhost/a")
        await befriend(erin, frank)
        await befriend(erin, gina)
        erin.send_presence(ptype="unavailable")
        for contact in (frank, gina):
            await presence_from(contact, "erin@localhost/a", "unavailable")
        await close(erin)
        erin = await connect(server, "erin@localhost/b", status="back")
        for contact in (frank, gina):
            await presence_from(contact, "erin@localhost/b", status="back")
        erin.transport.abort()      # no unavailable presence, no closing stream tag
        for contact in (frank, gina):
            await presence_from(contact, "erin@localhost/b", "unavailable")
        await asyncio.wait_for(erin.ended, TIMEOUT)
        await close(frank, gina)
    run(scenario())


def test_probe_answers_on_login(server):
    """At login, hank gets ivan's current presence (probe answer) and ivan gets hank's."""
    async def scenario():
        hank = await connect(server, "hank@localhost/a")
        ivan = await connect(server, "ivan@localhost/a")
        await befriend(hank, ivan)
        await close(hank)
        ivan.send_presence(pstatus="in a meeting", pshow="away")
        hank = await connect(server, "hank@localhost/b")
        answer = await presence_from(hank, "ivan@localhost/a", status="in a meeting")
        assert answer["show"] == "away"
        await presence_from(ivan, "hank@localhost/b")
        await close(hank, ivan)
    run(scenario())


def test_directed_presence_and_its_unavailable(server):
    """judy's directed presence reaches kate (no subscription); kate sees judy go when
    judy logs off."""
    async def scenario():
        judy = await connect(server, "judy@localhost/a")
        kate = await connect(server, "kate@localhost/a")
        judy.send_presence(pto="kate@localhost/a", pstatus="psst")
        await presence_from(kate, "judy@localhost/a", status="psst")
        await close(judy)
        await presence_from(kate, "judy@localhost/a", "unavailable")
        await close(kate)
    run(scenario())


def test_subscription_request_to_offline_user(server):
    """leo's request to offline mike reaches mike at login, and at every login until
    answered."""
    async def scenario():
        leo = await connect(server, "leo@localhost/a")
        leo.send_presence(pto="mike@localhost", ptype="subscribe", pstatus="it's leo")
        await pushed(leo, "mike@localhost", "none", ask="subscribe")
        for resource in ("first", "second"):
            mike = await connect(server, f"mike@localhost/{resource}")
            request = await presence_from(mike, "leo@localhost", "subscribe")
            assert request["status"] == "it's leo"
            await close(mike)
        mike = await connect(server, "mike@localhost/third")
        await presence_from(mike, "leo@localhost", "subscribe")
        mike.send_presence_subscription(pto="leo@localhost", ptype="subscribed")
        await pushed(leo, "mike@localhost", "to")
        await presence_from(leo, "mike@localhost", "subscribed")
        await close(mike)
        mike = await connect(server, "mike@localhost/fourth")
        await presence_from(leo, "mike@localhost/fourth")   # mike's presence reaches leo
        await mike.get_roster()     # a round trip after mike's initial presence
        assert not [p for p in mike.presences.items if p["type"] == "subscribe"]
        await close(leo, mike)
    run(scenario())


def test_remove_contact(server):
    """nina removes oscar: he is told 'unsubscribe' and 'unsubscribed' and his roster
    follows."""
    async def scenario():
        nina = await connect(server, "nina@localhost/a")
        oscar = await connect(server, "oscar@localhost/a")
        await befriend(nina, oscar)
        nina.del_roster_item("oscar@localhost")
        await pushed(nina, "oscar@localhost", "remove")
        await presence_from(oscar, "nina@localhost", "unsubscribe")
        await presence_from(oscar, "nina@localhost", "unsubscribed")
        await presence_from(oscar, "nina@localhost/a", "unavailable")
        await pushed(oscar, "nina@localhost", "none")
        assert "oscar@localhost" not in await fetch_roster(nina)
        await close(nina, oscar)
    run(scenario())


def test_pre_approval(server):
    """kate pre-approves pat; pat's later request is approved without kate being asked."""
    async def scenario():
        kate = await connect(server, "kate@localhost/pre")
        assert {"rosterver", "preapproval"} <= kate.features
        kate.send_presence_subscription(pto="pat@localhost", ptype="subscribed")
        push = await pushed(kate, "pat@localhost", "none")
        [item] = push.xml.iter(f"{{{NS_ROSTER}}}item")
        assert item.get("approved") == "true"
        pat = await connect(server, "pat@localhost/pre")
        pat.send_presence_subscription(pto="kate@localhost")
        await presence_from(pat, "kate@localhost", "subscribed")
        await pushed(pat, "kate@localhost", "to")
        await pushed(kate, "pat@localhost", "from")
        await presence_from(pat, "kate@localhost/pre")
        assert not [p for p in kate.presences.items if p["type"] == "subscribe"]
        await close(kate, pat)
    run(scenario())


async def fetch_roster(client):
    """The whole roster, asked for without a version (so never an empty answer)."""
    iq = client.Iq()
    iq["type"] = "get"
    iq.enable("roster")
    result = await iq.send(timeout=TIMEOUT)
    return result["roster"]["items"]


async def roster_set_error(client, payload):
    """Send a roster set with C{payload} and return the error condition."""
    iq = client.Iq()
    iq["type"] = "set"
    iq.append(ET.fromstring(f"<query xmlns='{NS_ROSTER}'>{payload}</query>"))
    with pytest.raises(IqError) as caught:
        await iq.send(timeout=TIMEOUT)
    return caught.value.iq["error"]["condition"]


def test_invalid_roster_set(server):
    """Malformed roster sets get the RFC 6121 errors and change nothing."""
    async def scenario():
        pat = await connect(server, "pat@localhost/a")
        before = await fetch_roster(pat)
        cases = [
            ("<item jid='a@localhost'/><item jid='b@localhost'/>", "bad-request"),
            ("<item jid='not@@valid'/>", "bad-request"),
            ("<item jid='a@localhost'><group>g</group><group>g</group></item>", "bad-request"),
            ("<item jid='a@localhost'><group/></item>", "not-acceptable"),
            ("<item jid='pat@localhost'/>", "not-allowed"),
            ("<item jid='nobody@localhost' subscription='remove'/>", "item-not-found"),
        ]
        for payload, condition in cases:
            assert await roster_set_error(pat, payload) == condition, payload
        assert await fetch_roster(pat) == before
        await close(pat)
    run(scenario())


def test_roster_survives_restart(server):
    """A roster stored before a restart is there after it (SQLite storage)."""
    async def scenario():
        alice = await connect(server, "alice@localhost/restart")
        await alice.update_roster("pat@localhost", name="Pat", groups=["Later"])
        await close(alice)
    run(scenario())
    server.restart()

    async def after():
        alice = await connect(server, "alice@localhost/again")
        items = await fetch_roster(alice)
        assert items["pat@localhost"]["name"] == "Pat"
        assert items["bob@localhost"]["subscription"] == "both"
        # XEP-0237: asking again with the version just received gets nothing new.
        unchanged = await alice.get_roster()
        assert list(unchanged["roster"]["items"]) == []
        assert alice.client_roster["pat@localhost"]["name"] == "Pat"
        await close(alice)
    run(after())
