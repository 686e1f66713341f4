"""End to end: XEP-0060 pubsub at pubsub.localhost and XEP-0163 PEP, with slixmpp's
xep_0060, xep_0163, xep_0084, xep_0115, xep_0048 and xep_0223 plugins."""
import asyncio

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from tests.e2e.harness import TIMEOUT, Client, ServerProcess, close, run

PASSWORD = "pubsub pw"
SERVICE = "pubsub.localhost"
AVATAR = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("pubsub"))
    for user in ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivy",
                 "judy"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


def entry(text):
    payload = ET.Element("{urn:test:feed}entry")
    payload.text = text
    return payload


async def connect(server, jid, interests=(), presence=True):
    """Log in with the pubsub plugins; advertise +notify for C{interests} in caps."""
    client = Client(jid, PASSWORD, server.certificate)
    for plugin in ("xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0084"):
        client.register_plugin(plugin)
    client.events = asyncio.Queue()
    client.add_event_handler("pubsub_publish", client.events.put_nowait)
    client.add_event_handler("pubsub_retract", client.events.put_nowait)
    client.connect("127.0.0.1", server.port)
    done, _ = await asyncio.wait([client.started, client.failed], timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert client.started in done, f"{jid} could not log in"
    for namespace in interests:
        client.plugin["xep_0030"].add_feature(f"{namespace}+notify")
    await client.plugin["xep_0115"].update_caps(broadcast=False)
    await client.get_roster()     # an interested resource gets roster pushes
    if presence:
        client.send_presence()
    return client


async def next_event(client):
    return await asyncio.wait_for(client.events.get(), TIMEOUT)


async def caps_verified(server, jid):
    """Wait until the server has verified (or already knew) the caps of C{jid}."""
    await asyncio.to_thread(lambda: [None for _ in server.lines_until(
        lambda line: "caps" in line and "verified from " + jid in line)])


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


def test_service_publish_subscribe_retract(server):
    """On the service: create, subscribe, publish (event with payload), items, retract."""
    async def scenario():
        alice = await connect(server, "alice@localhost/feed")
        bob = await connect(server, "bob@localhost/reader")
        ps_a, ps_b = alice.plugin["xep_0060"], bob.plugin["xep_0060"]
        await ps_a.create_node(SERVICE, "news")
        with pytest.raises(IqError) as exc:
            await ps_a.create_node(SERVICE, "news")
        assert exc.value.condition == "conflict"
        await ps_b.subscribe(SERVICE, "news", bare=False)
        result = await ps_a.publish(SERVICE, "news", id="n1", payload=entry("first"))
        assert result["pubsub"]["publish"]["item"]["id"] == "n1"
        event = await next_event(bob)
        assert event["type"] == "headline"
        item = event["pubsub_event"]["items"]["item"]
        assert item["id"] == "n1"
        assert item.xml.find("{urn:test:feed}entry").text == "first"
        await ps_a.publish(SERVICE, "news", id="n2", payload=entry("second"))
        assert (await next_event(bob))["pubsub_event"]["items"]["item"]["id"] == "n2"
        items = await ps_b.get_items(SERVICE, "news")
        assert [i["id"] for i in items["pubsub"]["items"]] == ["n1", "n2"]
        last = await ps_b.get_items(SERVICE, "news", max_items=1)
        assert [i["id"] for i in last["pubsub"]["items"]] == ["n2"]
        await ps_a.retract(SERVICE, "news", "n1", notify=True)
        retract = await next_event(bob)
        assert retract["pubsub_event"]["items"]["retract"]["id"] == "n1"
        with pytest.raises(IqError) as exc:
            await ps_b.publish(SERVICE, "news", payload=entry("not mine"))
        assert exc.value.condition == "forbidden"
        await ps_b.unsubscribe(SERVICE, "news", bare=False)
        await close(alice, bob)
    run(scenario())


def test_pep_avatar_reaches_contact_with_notify(server):
    """Avatar metadata published to PEP reaches a contact whose caps say +notify."""
    async def scenario():
        carol = await connect(server, "carol@localhost/phone")
        verified = asyncio.ensure_future(caps_verified(server, "dave@localhost/phone"))
        # A feature of its own makes dave's caps a ver the server has not verified yet.
        dave = await connect(server, "dave@localhost/phone",
                             interests=(AVATAR, "urn:test:dave"))
        await asyncio.wait_for(verified, TIMEOUT)
        await befriend(carol, dave)
        await carol.plugin["xep_0084"].publish_avatar_metadata(
            {"id": "0123abcd", "type": "image/png", "bytes": 42})
        event = await next_event(dave)
        assert event["from"] == "carol@localhost"
        item = event["pubsub_event"]["items"]["item"]
        assert item["id"] == "0123abcd"
        assert event["pubsub_event"]["items"]["node"] == AVATAR
        await close(carol, dave)
    run(scenario())


def test_bookmarks_sync_between_resources(server):
    """A XEP-0402 bookmark published with publish-options reaches the other resource."""
    async def scenario():
        phone = await connect(server, "erin@localhost/phone", interests=(BOOKMARKS,),
                              presence=False)
        laptop = await connect(server, "erin@localhost/laptop", interests=(BOOKMARKS,),
                               presence=False)
        verified = asyncio.ensure_future(caps_verified(server, "erin@localhost/"))
        seen = asyncio.get_event_loop().create_future()
        phone.add_event_handler("presence_available", lambda p: str(p["from"]).endswith(
            "/laptop") and not seen.done() and seen.set_result(True))
        phone.send_presence()
        laptop.send_presence()
        # Both presences processed (the phone saw the laptop's), the shared ver verified.
        await asyncio.wait_for(asyncio.gather(verified, seen), TIMEOUT)
        options = phone.plugin["xep_0004"].make_form(ftype="submit")
        options.add_field(var="FORM_TYPE", ftype="hidden",
                          value="http://jabber.org/protocol/pubsub#publish-options")
        options.add_field(var="pubsub#persist_items", value="true")
        options.add_field(var="pubsub#max_items", value="max")
        options.add_field(var="pubsub#send_last_published_item", value="never")
        options.add_field(var="pubsub#access_model", value="whitelist")
        conference = ET.Element(f"{{{BOOKMARKS}}}conference", name="Team", autojoin="true")
        await phone.plugin["xep_0060"].publish(None, BOOKMARKS, id="team@conference.localhost",
                                        payload=conference, options=options)
        event = await next_event(laptop)
        assert event["pubsub_event"]["items"]["item"]["id"] == "team@conference.localhost"
        items = await laptop.plugin["xep_0060"].get_items(None, BOOKMARKS)
        assert [i["id"] for i in items["pubsub"]["items"]] == ["team@conference.localhost"]
        options.field["pubsub#access_model"].set_value("open")
        with pytest.raises(IqError) as exc:
            await phone.plugin["xep_0060"].publish(None, BOOKMARKS, id="x@conference.localhost",
                                            payload=conference, options=options)
        assert exc.value.condition == "conflict"
        await close(phone, laptop)
    run(scenario())


def test_service_access_models(server):
    """A whitelist node refuses a stranger (closed-node) until the owner makes it a member."""
    async def scenario():
        alice = await connect(server, "alice@localhost/owner")
        bob = await connect(server, "bob@localhost/stranger")
        config = alice.plugin["xep_0004"].make_form(ftype="submit")
        config.add_field(var="FORM_TYPE", ftype="hidden",
                         value="http://jabber.org/protocol/pubsub#node_config")
        config.add_field(var="pubsub#access_model", value="whitelist")
        await alice.plugin["xep_0060"].create_node(SERVICE, "private-feed", config=config)
        with pytest.raises(IqError) as exc:
            await bob.plugin["xep_0060"].subscribe(SERVICE, "private-feed")
        assert exc.value.condition == "not-allowed"
        assert exc.value.iq.xml.find(
            ".//{http://jabber.org/protocol/pubsub#errors}closed-node") is not None
        await alice.plugin["xep_0060"].modify_affiliations(
            SERVICE, "private-feed", [("bob@localhost", "member")])
        await bob.plugin["xep_0060"].subscribe(SERVICE, "private-feed")
        await alice.plugin["xep_0060"].publish(SERVICE, "private-feed", id="m1",
                                               payload=entry("members only"))
        assert (await next_event(bob))["pubsub_event"]["items"]["item"]["id"] == "m1"
        await close(alice, bob)
    run(scenario())


def test_pep_last_item_at_login(server):
    """A contact logging in later gets the last avatar metadata once its caps are known."""
    async def scenario():
        frank = await connect(server, "frank@localhost/desk")
        gina = await connect(server, "gina@localhost/desk")
        await befriend(frank, gina)
        await close(gina)
        await frank.plugin["xep_0084"].publish_avatar_metadata(
            {"id": "feedbeef", "type": "image/png", "bytes": 7})
        gina = await connect(server, "gina@localhost/tablet",
                             interests=(AVATAR, "urn:test:gina"))
        event = await next_event(gina)
        assert event["from"] == "frank@localhost"
        assert event["pubsub_event"]["items"]["item"]["id"] == "feedbeef"
        await close(frank, gina)
    run(scenario())


def test_items_survive_restart(server):
    """Service items are in storage: they are there after a restart."""
    async def scenario():
        alice = await connect(server, "alice@localhost/keep")
        await alice.plugin["xep_0060"].create_node(SERVICE, "durable")
        await alice.plugin["xep_0060"].publish(SERVICE, "durable", id="d1", payload=entry("kept"))
        await close(alice)
    run(scenario())
    server.restart()

    async def after():
        alice = await connect(server, "alice@localhost/keep")
        items = await alice.plugin["xep_0060"].get_items(SERVICE, "durable")
        got = [(i["id"], i.xml.find("{urn:test:feed}entry").text)
               for i in items["pubsub"]["items"]]
        assert got == [("d1", "kept")]
        await close(alice)
    run(after())


def test_service_authorize_access_model(server):
    """Authorize: a request is pending and reads are refused until the owner approves it
    with the subscription authorization form; an owner subscriptions set denies."""
    async def scenario():
        hank = await connect(server, "hank@localhost/owner")
        ivy = await connect(server, "ivy@localhost/reader")
        judy = await connect(server, "judy@localhost/reader")
        requests = asyncio.Queue()
        hank.add_event_handler("message_xform", requests.put_nowait)
        changes = {ivy: asyncio.Queue(), judy: asyncio.Queue()}
        for client, queue in changes.items():
            client.add_event_handler("pubsub_subscription", queue.put_nowait)
        config = hank.plugin["xep_0004"].make_form(ftype="submit")
        config.add_field(var="FORM_TYPE", ftype="hidden",
                         value="http://jabber.org/protocol/pubsub#node_config")
        config.add_field(var="pubsub#access_model", value="authorize")
        await hank.plugin["xep_0060"].create_node(SERVICE, "club", config=config)
        result = await ivy.plugin["xep_0060"].subscribe(SERVICE, "club")
        assert result["pubsub"]["subscription"]["subscription"] == "pending"
        with pytest.raises(IqError) as exc:
            await ivy.plugin["xep_0060"].get_items(SERVICE, "club")
        assert exc.value.condition == "not-authorized"
        assert exc.value.iq.xml.find(
            ".//{http://jabber.org/protocol/pubsub#errors}pending-subscription") is not None
        request = await asyncio.wait_for(requests.get(), TIMEOUT)
        assert request["from"] == SERVICE
        form = request["form"]
        assert form.get_values()["pubsub#subscriber_jid"] == "ivy@localhost"
        answer = hank.make_message(mto=SERVICE)
        reply = hank.plugin["xep_0004"].make_form(ftype="submit")
        values = {var: value[0] if isinstance(value, list) else str(value)
                  for var, value in form.get_values().items()}
        for var in ("FORM_TYPE", "pubsub#subid", "pubsub#node", "pubsub#subscriber_jid"):
            reply.add_field(var=var, value=values[var])
        reply.add_field(var="pubsub#allow", ftype="boolean", value=True)
        answer.append(reply)
        answer.send()
        approved = await asyncio.wait_for(changes[ivy].get(), TIMEOUT)
        assert approved["pubsub_event"]["subscription"]["subscription"] == "subscribed"
        await hank.plugin["xep_0060"].publish(SERVICE, "club", id="c1", payload=entry("in"))
        assert (await next_event(ivy))["pubsub_event"]["items"]["item"]["id"] == "c1"
        items = await ivy.plugin["xep_0060"].get_items(SERVICE, "club")
        assert [i["id"] for i in items["pubsub"]["items"]] == ["c1"]
        result = await judy.plugin["xep_0060"].subscribe(SERVICE, "club")
        assert result["pubsub"]["subscription"]["subscription"] == "pending"
        await asyncio.wait_for(requests.get(), TIMEOUT)
        await hank.plugin["xep_0060"].modify_subscriptions(
            SERVICE, "club", [("judy@localhost", "none")])
        denied = await asyncio.wait_for(changes[judy].get(), TIMEOUT)
        assert denied["pubsub_event"]["subscription"]["subscription"] == "none"
        with pytest.raises(IqError) as exc:
            await judy.plugin["xep_0060"].get_items(SERVICE, "club")
        assert exc.value.condition == "not-authorized"
        await close(hank, ivy, judy)
    run(scenario())


def test_legacy_bookmarks_via_pep(server):
    """XEP-0048 bookmarks stored with slixmpp's XEP-0223 method read back on another
    resource."""
    async def scenario():
        phone = await connect(server, "hank@localhost/phone")
        laptop = await connect(server, "hank@localhost/laptop")
        for client in (phone, laptop):
            client.register_plugin("xep_0048")
        bookmarks = phone.plugin["xep_0048"].stanza.Bookmarks()
        bookmarks.add_conference("team@conference.localhost", "hank", name="Team",
                                 autojoin=True)
        await phone.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0223")
        result = await laptop.plugin["xep_0048"].get_bookmarks(method="xep_0223")
        stored = result["pubsub"]["items"]["item"].xml.find(
            "{storage:bookmarks}storage/{storage:bookmarks}conference")
        assert stored.get("jid") == "team@conference.localhost"
        assert stored.get("autojoin") in ("true", "1")
        await close(phone, laptop)
    run(scenario())


def test_private_xml_bookmarks_are_pep_bookmarks(server):
    """XEP-0048 bookmarks in private XML (XEP-0049) and XEP-0402 PEP bookmarks are the
    same data, and the account advertises urn:xmpp:bookmarks:1#compat."""
    async def scenario():
        legacy = await connect(server, "judy@localhost/legacy")
        modern = await connect(server, "judy@localhost/modern")
        legacy.register_plugin("xep_0048")
        info = await modern.plugin["xep_0030"].get_info(jid="judy@localhost")
        assert f"{BOOKMARKS}#compat" in info["disco_info"]["features"]
        bookmarks = legacy.plugin["xep_0048"].stanza.Bookmarks()
        bookmarks.add_conference("ops@conference.localhost", "judy", name="Ops",
                                 autojoin=True)
        await legacy.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0049")
        items = await modern.plugin["xep_0060"].get_items(None, BOOKMARKS)
        [item] = items["pubsub"]["items"]
        assert item["id"] == "ops@conference.localhost"
        conference = item.xml.find(f"{{{BOOKMARKS}}}conference")
        assert (conference.get("name"), conference.get("autojoin")) == ("Ops", "true")
        assert conference.findtext(f"{{{BOOKMARKS}}}nick") == "judy"
        options = modern.plugin["xep_0004"].make_form(ftype="submit")
        options.add_field(var="FORM_TYPE", ftype="hidden",
                          value="http://jabber.org/protocol/pubsub#publish-options")
        for var, value in (("persist_items", "true"), ("max_items", "max"),
                           ("send_last_published_item", "never"),
                           ("access_model", "whitelist")):
            options.add_field(var=f"pubsub#{var}", value=value)
        added = ET.Element(f"{{{BOOKMARKS}}}conference", name="Dev", autojoin="false")
        await modern.plugin["xep_0060"].publish(None, BOOKMARKS, id="dev@conference.localhost",
                                                payload=added, options=options)
        result = await legacy.plugin["xep_0048"].get_bookmarks(method="xep_0049")
        rooms = sorted(c.get("jid") for c in result.xml.iter("{storage:bookmarks}conference"))
        assert rooms == ["dev@conference.localhost", "ops@conference.localhost"]
        await close(legacy, modern)
    run(scenario())


def test_subscription_show_values(server):
    """pubsub#show-values: notifications wait until the subscriber's presence matches."""
    async def scenario():
        alice = await connect(server, "alice@localhost/shows")
        bob = await connect(server, "bob@localhost/shows")
        await alice.plugin["xep_0060"].create_node(SERVICE, "moods")
        await bob.plugin["xep_0060"].subscribe(SERVICE, "moods", bare=False)
        form = bob.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden",
                       value="http://jabber.org/protocol/pubsub#subscribe_options")
        form.add_field(var="pubsub#show-values", ftype="list-multi", value=["dnd"])
        # COMPAT: slixmpp's set_subscription_options() sends type 'get'.
        iq = bob.Iq(sto=SERVICE, stype="set")
        iq["pubsub"]["options"]["node"] = "moods"
        iq["pubsub"]["options"]["jid"] = bob.boundjid.full
        iq["pubsub"]["options"].append(form)
        await iq.send()
        await alice.plugin["xep_0060"].publish(SERVICE, "moods", id="m1",
                                               payload=entry("while online"))
        bob.send_presence(pshow="dnd")
        await bob.plugin["xep_0060"].get_items(SERVICE, "moods")   # presence processed
        await alice.plugin["xep_0060"].publish(SERVICE, "moods", id="m2",
                                               payload=entry("while busy"))
        event = await next_event(bob)
        assert event["pubsub_event"]["items"]["item"]["id"] == "m2"
        await close(alice, bob)
    run(scenario())
