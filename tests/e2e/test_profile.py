"""End to end: profiles as clients use them -- XEP-0054 vCards, XEP-0049 private XML,
XEP-0012 last activity and XEP-0157 contact addresses -- with slixmpp's xep_0054, xep_0049,
xep_0012 and xep_0030 plugins, across logins and a server restart."""
import asyncio

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ElementBase, ET

from tests.e2e.harness import TIMEOUT, ServerProcess, close, login, run

PASSWORD = "profile pw"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"


class Prefs(ElementBase):
    """A client's preferences, kept in private XML storage."""

    name = "prefs"
    namespace = "urn:example:prefs"
    plugin_attrib = "prefs"
    interfaces = {"theme"}
    sub_interfaces = interfaces


class Notes(ElementBase):
    """A client's notes about contacts, kept in private XML storage."""

    name = "notes"
    namespace = "urn:example:notes"
    plugin_attrib = "notes"
    interfaces = {"note"}
    sub_interfaces = interfaces


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("profile"), config="""\
        [extension:vcard]
        max_size = 4096
        [extension:contact_addresses]
        abuse = mailto:abuse@localhost, xmpp:abuse@localhost
        support = https://localhost/support
        """)
    for user in ("alice", "bob", "carol", "dave"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


async def profile_login(server, jid, presence=True):
    """Log in with the profile plugins registered."""
    client = await login(server, jid, PASSWORD, presence=presence)
    for plugin in ("xep_0030", "xep_0054", "xep_0049", "xep_0012", "xep_0128"):
        client.register_plugin(plugin)
    client.plugin["xep_0049"].register(Prefs)
    client.plugin["xep_0049"].register(Notes)
    return client


async def refused(request):
    """The error condition of an IQ request that must fail."""
    with pytest.raises(IqError) as caught:
        await request
    return caught.value.iq["error"]["condition"]


async def raw_iq(client, type_, xml, to=None):
    """Send an IQ with the payload C{xml} (text); the answer, or IqError."""
    iq = client.make_iq(itype=type_, ito=to)
    iq.append(ET.fromstring(xml))
    return await iq.send(timeout=TIMEOUT)


async def publish_card(client, **fields):
    """Publish a vCard with C{fields} (FN, NICKNAME, ...) from C{client}."""
    vcard = client.plugin["xep_0054"].make_vcard()
    for name, value in fields.items():
        vcard[name] = value
    await client.plugin["xep_0054"].publish_vcard(vcard, timeout=TIMEOUT)


async def card_of(client, jid):
    """The vCard C{client} gets for C{jid}."""
    iq = await client.plugin["xep_0054"].get_vcard(JID(jid), timeout=TIMEOUT)
    return iq["vcard_temp"]


async def last_of(client, jid):
    """(seconds, status) of C{client}'s last activity query to C{jid}."""
    iq = await client.plugin["xep_0012"].get_last_activity(JID(jid), timeout=TIMEOUT)
    return iq["last_activity"]["seconds"], iq["last_activity"]["status"] or ""


async def log_off(client, status):
    """Send unavailable presence with C{status}, then disconnect."""
    client.send_presence(ptype="unavailable", pstatus=status)
    await close(client)


def test_discovery(server):
    """The server lists vcard-temp, jabber:iq:private and jabber:iq:last, and its contact
    addresses as a serverinfo form (XEP-0157 §3) in disco#info."""
    async def scenario():
        alice = await profile_login(server, "alice@localhost/disco")
        info = await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=TIMEOUT)
        features = info["disco_info"]["features"]
        for feature in ("vcard-temp", "jabber:iq:private", "jabber:iq:last"):
            assert feature in features
        (form,) = info.xml.findall(f"{{{NS_DISCO_INFO}}}query/{{{NS_DATA}}}x")
        fields = {field.get("var"): [v.text for v in field.findall(f"{{{NS_DATA}}}value")]
                  for field in form.findall(f"{{{NS_DATA}}}field")}
        assert fields == {
            "FORM_TYPE": ["http://jabber.org/network/serverinfo"],
            "abuse-addresses": ["mailto:abuse@localhost", "xmpp:abuse@localhost"],
            "support-addresses": ["https://localhost/support"],
        }
        await close(alice)
    run(scenario())


def test_vcard_publish_and_view(server):
    """alice publishes her vCard; she and bob read it back, field for field, and she
    also gets it with a 'to'-less get (XEP-0054 §3.1, §3.3)."""
    async def scenario():
        alice = await profile_login(server, "alice@localhost/phone")
        bob = await profile_login(server, "bob@localhost/laptop")
        await publish_card(alice, FN="Alice Liddell", NICKNAME="alice",
                           DESC="Curiouser & curiouser ☃")
        for client in (alice, bob):
            card = await card_of(client, "alice@localhost")
            assert (card["FN"], card["NICKNAME"], card["DESC"]) == (
                "Alice Liddell", ["alice"], "Curiouser & curiouser ☃")
        own = await raw_iq(alice, "get", "<vCard xmlns='vcard-temp'/>")
        assert own["vcard_temp"]["FN"] == "Alice Liddell"
        await close(alice, bob)
    run(scenario())


def test_vcard_refusals_change_nothing(server):
    """No vCard and no account look alike (service-unavailable, XEP-0054 §3.3); bob
    cannot set alice's (forbidden, §3.2); an oversize vCard is refused with
    not-acceptable naming the limit; alice's vCard is unchanged after all of it."""
    async def scenario():
        alice = await profile_login(server, "alice@localhost/guard")
        bob = await profile_login(server, "bob@localhost/mallory")
        await publish_card(alice, FN="Alice Liddell")
        xep_0054 = bob.plugin["xep_0054"]
        assert await refused(xep_0054.get_vcard(JID("carol@localhost"), timeout=TIMEOUT)
                             ) == "service-unavailable"
        assert await refused(xep_0054.get_vcard(JID("ghost@localhost"), timeout=TIMEOUT)
                             ) == "service-unavailable"
        fake = xep_0054.make_vcard()
        fake["FN"] = "Mallory"
        assert await refused(xep_0054.publish_vcard(fake, jid=JID("alice@localhost"),
                                                    timeout=TIMEOUT)) == "forbidden"
        huge = alice.plugin["xep_0054"].make_vcard()
        huge["FN"] = "Alice"
        huge["DESC"] = "x" * 5000
        with pytest.raises(IqError) as caught:
            await alice.plugin["xep_0054"].publish_vcard(huge, timeout=TIMEOUT)
        assert caught.value.iq["error"]["condition"] == "not-acceptable"
        assert "4096 bytes" in caught.value.iq["error"]["text"]
        assert (await card_of(bob, "alice@localhost"))["FN"] == "Alice Liddell"
        await close(alice, bob)
    run(scenario())


def test_private_storage(server):
    """alice stores two elements in one set, reads each back from another resource,
    gets an empty element for what she never stored, and bob cannot read hers
    (XEP-0049)."""
    async def scenario():
        phone = await profile_login(server, "alice@localhost/phone")
        prefs, notes = Prefs(), Notes()
        prefs["theme"] = "dark"
        notes["note"] = "bob likes tea"
        await phone.plugin["xep_0049"].store([prefs, notes], timeout=TIMEOUT)
        laptop = await profile_login(server, "alice@localhost/laptop")
        got = await laptop.plugin["xep_0049"].retrieve("prefs", timeout=TIMEOUT)
        assert got["private"]["prefs"]["theme"] == "dark"
        got = await laptop.plugin["xep_0049"].retrieve("notes", timeout=TIMEOUT)
        assert got["private"]["notes"]["note"] == "bob likes tea"
        empty = await raw_iq(laptop, "get", "<query xmlns='jabber:iq:private'>"
                                            "<other xmlns='urn:example:other'/></query>")
        (element,) = empty.xml.find("{jabber:iq:private}query")
        assert (element.tag, len(element), element.text) == ("{urn:example:other}other", 0,
                                                             None)
        bob = await profile_login(server, "bob@localhost/snoop")
        assert await refused(raw_iq(bob, "get", "<query xmlns='jabber:iq:private'>"
                                                "<prefs xmlns='urn:example:prefs'/></query>",
                                    to="alice@localhost")) == "forbidden"
        await close(phone, laptop, bob)
    run(scenario())


def test_private_refusals_change_nothing(server):
    """Reserved namespaces and empty queries are not-acceptable (XEP-0049 §2.3), and a
    refused set stores none of its elements."""
    async def scenario():
        dave = await profile_login(server, "dave@localhost/pc")
        prefs = Prefs()
        prefs["theme"] = "light"
        await dave.plugin["xep_0049"].store(prefs, timeout=TIMEOUT)
        for payload in ("<query xmlns='jabber:iq:private'><vCard xmlns='vcard-temp'/></query>",
                        "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>"
                        "<theme>evil</theme></prefs><q xmlns='jabber:iq:roster'/></query>",
                        "<query xmlns='jabber:iq:private'/>"):
            assert await refused(raw_iq(dave, "set", payload)) == "not-acceptable"
        got = await dave.plugin["xep_0049"].retrieve("prefs", timeout=TIMEOUT)
        assert got["private"]["prefs"]["theme"] == "light"
        await close(dave)
    run(scenario())


def test_server_uptime(server):
    """A last activity query to the server answers its uptime (XEP-0012 §5)."""
    async def scenario():
        alice = await profile_login(server, "alice@localhost/uptime")
        seconds, status = await last_of(alice, "localhost")
        assert 0 <= seconds < 600 and status == ""
        await close(alice)
    run(scenario())


def test_last_activity_of_a_contact(server):
    """bob, subscribed to carol's presence, learns how long ago she logged off and her
    parting status; dave, not subscribed, is refused; once carol is back, bob gets 0
    (XEP-0012 §3)."""
    async def scenario():
        carol = await profile_login(server, "carol@localhost/phone")
        bob = await profile_login(server, "bob@localhost/watcher")
        dave = await profile_login(server, "dave@localhost/stranger")
        subscribed = asyncio.get_running_loop().create_future()
        bob.add_event_handler("presence_subscribed", lambda presence: subscribed.done()
                              or subscribed.set_result(presence))
        bob.send_presence_subscription(pto="carol@localhost")   # carol's client approves
        await asyncio.wait_for(subscribed, TIMEOUT)

        await log_off(carol, "Heading home")
        seconds, status = await last_of(bob, "carol@localhost")
        assert 0 <= seconds < 60 and status == "Heading home"
        assert await refused(dave.plugin["xep_0012"].get_last_activity(
            JID("carol@localhost"), timeout=TIMEOUT)) == "forbidden"

        carol = await profile_login(server, "carol@localhost/back")
        await card_of(carol, "carol@localhost")     # a round trip: her presence is in
        assert await last_of(bob, "carol@localhost") == (0, "")
        await close(carol, bob, dave)
    run(scenario())


def test_own_last_activity(server):
    """alice, connected without presence, sees when her last resource logged off and its
    status; with a resource online she gets 0."""
    async def scenario():
        phone = await profile_login(server, "alice@localhost/phone")
        await log_off(phone, "Battery low")
        quiet = await profile_login(server, "alice@localhost/quiet", presence=False)
        seconds, status = await last_of(quiet, "alice@localhost")
        assert 0 <= seconds < 60 and status == "Battery low"
        online = await profile_login(server, "alice@localhost/online")
        await card_of(online, "alice@localhost")
        assert await last_of(quiet, "alice@localhost") == (0, "")
        await close(quiet, online)
    run(scenario())


def test_profile_survives_restart(server):
    """vCards, private XML and the last logoff are still there after a server restart."""
    async def before():
        dave = await profile_login(server, "dave@localhost/before")
        await publish_card(dave, FN="Dave Bowman")
        prefs = Prefs()
        prefs["theme"] = "pod bay"
        await dave.plugin["xep_0049"].store(prefs, timeout=TIMEOUT)
        await log_off(dave, "Open the pod bay doors")

    async def after():
        dave = await profile_login(server, "dave@localhost/after", presence=False)
        assert (await card_of(dave, "dave@localhost"))["FN"] == "Dave Bowman"
        got = await dave.plugin["xep_0049"].retrieve("prefs", timeout=TIMEOUT)
        assert got["private"]["prefs"]["theme"] == "pod bay"
        seconds, status = await last_of(dave, "dave@localhost")
        assert 0 <= seconds < 120 and status == "Open the pod bay doors"
        await close(dave)

    run(before())
    server.restart()
    run(after())
