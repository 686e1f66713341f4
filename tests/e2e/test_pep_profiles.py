"""End to end: XEP-0163 PEP node profiles between two mutual contacts whose caps say
+notify -- XEP-0118 user tune, XEP-0080 user location, XEP-0172 user nickname (slixmpp's
xep_0118, xep_0080 and xep_0172 plugins) and the OMEMO device list and bundle nodes (raw
payloads with publish-options access_model open) -- and a contact without +notify."""
import asyncio

import pytest
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e.harness import TIMEOUT, Client, ServerProcess, close, run

PASSWORD = "pep profiles pw"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
TUNE = "http://jabber.org/protocol/tune"
GEOLOC = "http://jabber.org/protocol/geoloc"
NICK = "http://jabber.org/protocol/nick"
OMEMO = "eu.siacs.conversations.axolotl"
DEVICELIST = f"{OMEMO}.devicelist"
BUNDLES = f"{OMEMO}.bundles"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivy", "judy",
         "kim", "liam", "mona")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("pep-profiles"))
    for user in USERS:
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


async def caps_verified(server, jid):
    """Wait until the server has verified the caps of C{jid}."""
    await asyncio.to_thread(lambda: [None for _ in server.lines_until(
        lambda line: "caps" in line and "verified from " + jid in line)])


async def connect(server, jid, plugins=(), interests=()):
    """Log in with C{plugins} (their PEP nodes get +notify), advertise +notify for
    C{interests} and a feature of the client's own -- so its caps are a ver the server has
    not seen -- and send available presence once the server has verified those caps."""
    client = Client(jid, PASSWORD, server.certificate)
    for plugin in ("xep_0030", "xep_0060", "xep_0115", "xep_0163", *plugins):
        client.register_plugin(plugin)
    client.events = asyncio.Queue()
    # Every PEP notification, whether or not a plugin maps its node to an event name.
    client.register_handler(Callback("pep notification", MatchXPath(
        f"{{jabber:client}}message/{{{NS_EVENT}}}event"), client.events.put_nowait))
    client.connect("127.0.0.1", server.port)
    done, _ = await asyncio.wait([client.started, client.failed], timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert client.started in done, f"{jid} could not log in"
    disco = client.plugin["xep_0030"]
    for namespace in interests:
        disco.add_feature(f"{namespace}+notify")
    disco.add_feature(f"urn:test:pep-profiles:{client.boundjid.user}")
    await client.plugin["xep_0115"].update_caps(broadcast=False)
    await client.get_roster()
    verified = asyncio.ensure_future(caps_verified(server, client.boundjid.full))
    client.send_presence()
    await asyncio.wait_for(verified, TIMEOUT)
    return client


async def befriend(a, b):
    """Mutual presence subscription between two clients (slixmpp auto-authorizes)."""
    changed = asyncio.Event()
    for client in (a, b):
        client.add_event_handler("roster_update", lambda _: changed.set())
    a.send_presence(pto=b.boundjid.bare, ptype="subscribe")
    while (a.client_roster[b.boundjid.bare]["subscription"] != "both"
           or b.client_roster[a.boundjid.bare]["subscription"] != "both"):
        changed.clear()
        await asyncio.wait_for(changed.wait(), TIMEOUT)


async def notification(client, node):
    """The next PEP notification at C{client}: (from, node, item element)."""
    msg = await asyncio.wait_for(client.events.get(), TIMEOUT)
    items = msg.xml.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}items")
    assert items is not None and items.get("node") == node
    item = items.find(f"{{{NS_EVENT}}}item")
    assert item is not None
    return str(msg["from"]), item


async def retrieve(client, owner, node):
    """Items get on C{owner}'s PEP node: the list of <item/> elements."""
    result = await client.plugin["xep_0060"].get_items(owner, node)
    return [i.xml for i in result["pubsub"]["items"]]


def publish_options(client, **options):
    form = client.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in options.items():
        form.add_field(var=f"pubsub#{var}", value=value)
    return form


def test_user_tune(server):
    """XEP-0118: alice's tune reaches bob (tune+notify) with its payload; bob reads it."""
    async def scenario():
        alice = await connect(server, "alice@localhost/player", plugins=("xep_0118",))
        bob = await connect(server, "bob@localhost/phone", plugins=("xep_0118",))
        await befriend(alice, bob)
        await alice.plugin["xep_0118"].publish_tune(
            artist="Yes", title="Heart of the Sunrise", source="Fragile", track="3",
            length=686, rating=8, uri="http://www.yesworld.com/lyrics/Fragile.html#9")
        sender, item = await notification(bob, TUNE)
        assert sender == "alice@localhost"
        tune = item.find(f"{{{TUNE}}}tune")
        assert tune.findtext(f"{{{TUNE}}}artist") == "Yes"
        assert tune.findtext(f"{{{TUNE}}}title") == "Heart of the Sunrise"
        assert tune.findtext(f"{{{TUNE}}}length") == "686"
        [stored] = await retrieve(bob, "alice@localhost", TUNE)
        assert stored.get("id") == item.get("id")
        assert stored.find(f"{{{TUNE}}}tune/{{{TUNE}}}source").text == "Fragile"
        await alice.plugin["xep_0118"].stop()     # an empty <tune/>: the tune stopped
        _, item = await notification(bob, TUNE)
        assert len(item.find(f"{{{TUNE}}}tune")) == 0
        await close(alice, bob)
    run(scenario())


def test_user_location(server):
    """XEP-0080: alice's geoloc reaches bob (geoloc+notify) with its payload; bob reads it."""
    async def scenario():
        alice = await connect(server, "carol@localhost/gps", plugins=("xep_0080",))
        bob = await connect(server, "dave@localhost/map", plugins=("xep_0080",))
        await befriend(alice, bob)
        await alice.plugin["xep_0080"].publish_location(
            lat=45.44, lon=12.33, locality="Venice", country="Italy", accuracy=20)
        sender, item = await notification(bob, GEOLOC)
        assert sender == "carol@localhost"
        geoloc = item.find(f"{{{GEOLOC}}}geoloc")
        assert float(geoloc.findtext(f"{{{GEOLOC}}}lat")) == 45.44
        assert float(geoloc.findtext(f"{{{GEOLOC}}}lon")) == 12.33
        assert geoloc.findtext(f"{{{GEOLOC}}}locality") == "Venice"
        [stored] = await retrieve(bob, "carol@localhost", GEOLOC)
        assert stored.find(f"{{{GEOLOC}}}geoloc/{{{GEOLOC}}}country").text == "Italy"
        await close(alice, bob)
    run(scenario())


def test_user_nickname(server):
    """XEP-0172: alice's nick reaches bob (nick+notify) with its payload; bob reads it."""
    async def scenario():
        alice = await connect(server, "erin@localhost/desk", plugins=("xep_0172",))
        bob = await connect(server, "frank@localhost/desk", plugins=("xep_0172",))
        await befriend(alice, bob)
        await alice.plugin["xep_0172"].publish_nick("Erin the Great")
        sender, item = await notification(bob, NICK)
        assert sender == "erin@localhost"
        assert item.findtext(f"{{{NICK}}}nick") == "Erin the Great"
        [stored] = await retrieve(bob, "erin@localhost", NICK)
        assert stored.findtext(f"{{{NICK}}}nick") == "Erin the Great"
        await close(alice, bob)
    run(scenario())


def test_omemo_devicelist_and_bundle(server):
    """OMEMO: the device list published with access_model open reaches bob
    (devicelist+notify); the bundle node (access_model open) is read by bob, who has no
    subscription to it, and by a stranger, with an items get."""
    async def scenario():
        alice = await connect(server, "gina@localhost/conversations")
        bob = await connect(server, "hank@localhost/dino", interests=(DEVICELIST,))
        stranger = await connect(server, "ivy@localhost/other")
        await befriend(alice, bob)
        open_access = publish_options(alice, access_model="open")
        devices = ET.Element(f"{{{OMEMO}}}list")
        ET.SubElement(devices, f"{{{OMEMO}}}device", id="31415")
        await alice.plugin["xep_0060"].publish(None, DEVICELIST, id="current",
                                               payload=devices, options=open_access)
        sender, item = await notification(bob, DEVICELIST)
        assert sender == "gina@localhost"
        assert [d.get("id") for d in item.iter(f"{{{OMEMO}}}device")] == ["31415"]
        [stored] = await retrieve(bob, "gina@localhost", DEVICELIST)
        assert [d.get("id") for d in stored.iter(f"{{{OMEMO}}}device")] == ["31415"]

        bundle = ET.Element(f"{{{OMEMO}}}bundle")
        ET.SubElement(bundle, f"{{{OMEMO}}}signedPreKeyPublic",
                      signedPreKeyId="1").text = "BASE64SPK"
        ET.SubElement(bundle, f"{{{OMEMO}}}signedPreKeySignature").text = "BASE64SIG"
        ET.SubElement(bundle, f"{{{OMEMO}}}identityKey").text = "BASE64IK"
        prekeys = ET.SubElement(bundle, f"{{{OMEMO}}}prekeys")
        for key_id in ("1", "2"):
            ET.SubElement(prekeys, f"{{{OMEMO}}}preKeyPublic",
                          preKeyId=key_id).text = f"BASE64PK{key_id}"
        node = f"{BUNDLES}:31415"
        await alice.plugin["xep_0060"].publish(
            None, node, id="current", payload=bundle,
            options=publish_options(alice, access_model="open"))
        for reader in (bob, stranger):
            [stored] = await retrieve(reader, "gina@localhost", node)
            got = stored.find(f"{{{OMEMO}}}bundle")
            assert got.findtext(f"{{{OMEMO}}}identityKey") == "BASE64IK"
            assert [k.get("preKeyId") for k in got.iter(f"{{{OMEMO}}}preKeyPublic")] == [
                "1", "2"]
        subscriptions = await bob.plugin["xep_0060"].get_subscriptions("gina@localhost")
        assert len(subscriptions["pubsub"]["subscriptions"]) == 0
        # The device list's publish-options hold as preconditions on the next publish.
        ET.SubElement(devices, f"{{{OMEMO}}}device", id="27182")
        await alice.plugin["xep_0060"].publish(
            None, DEVICELIST, id="current", payload=devices,
            options=publish_options(alice, access_model="open"))
        _, item = await notification(bob, DEVICELIST)
        assert [d.get("id") for d in item.iter(f"{{{OMEMO}}}device")] == ["31415", "27182"]
        [stored] = await retrieve(stranger, "gina@localhost", DEVICELIST)
        assert len(list(stored.iter(f"{{{OMEMO}}}device"))) == 2
        await close(alice, bob, stranger)
    run(scenario())


def test_tune_not_sent_without_notify(server):
    """A contact whose verified caps lack tune+notify gets no tune notification, while a
    contact with it does; a later chat message from the publisher arrives first."""
    async def scenario():
        alice = await connect(server, "judy@localhost/player", plugins=("xep_0118",))
        bob = await connect(server, "kim@localhost/phone", plugins=("xep_0118",))
        carol = await connect(server, "liam@localhost/phone")
        await befriend(alice, bob)
        await befriend(alice, carol)
        await alice.plugin["xep_0118"].publish_tune(artist="Miles Davis", title="So What")
        sender, item = await notification(bob, TUNE)
        assert sender == "judy@localhost"
        assert item.find(f"{{{TUNE}}}tune/{{{TUNE}}}title").text == "So What"
        # Sent after the publish was answered: had carol been notified, it came first.
        alice.send_message(mto="liam@localhost", mbody="barrier", mtype="chat")
        while True:
            msg = await asyncio.wait_for(carol.messages.get(), TIMEOUT)
            if msg["body"] == "barrier":
                break
        assert carol.events.empty()
        # carol may still read the tune (presence access model, she is a contact).
        [stored] = await retrieve(carol, "judy@localhost", TUNE)
        assert stored.find(f"{{{TUNE}}}tune/{{{TUNE}}}artist").text == "Miles Davis"
        await close(alice, bob, carol)
    run(scenario())
