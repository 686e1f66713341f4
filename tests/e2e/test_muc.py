"""End to end: XEP-0045 multi-user chat at conference.localhost with slixmpp's xep_0045."""
import asyncio

import pytest
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream import ET

from tests.e2e.harness import Client, Events, ServerProcess, TIMEOUT, close, run

PASSWORD = "muc pw"
USERS = ("alice", "bob", "carol")
MUC = "conference.localhost"
NS_USER = "http://jabber.org/protocol/muc#user"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("muc"))
    for user in USERS:
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server



async def connect(server, user, resource="muc"):
    """Log in with the MUC plugin; record groupchat messages, MUC presence and messages."""
    client = Client(f"{user}@localhost/{resource}", PASSWORD, server.certificate)
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0004")
    client.register_plugin("xep_0045")
    client.groupchat = Events(client, "groupchat_message")
    client.muc_presence = Events(client, "groupchat_presence")
    client.chats = Events(client, "message")
    client.connect("127.0.0.1", server.port)
    done, _ = await asyncio.wait([client.started, client.failed], timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert client.started in done, f"{user} could not log in"
    client.send_presence()
    return client


def muc(client):
    """The client's xep_0045 plugin."""
    return client.plugin["xep_0045"]


async def create(client, room, nick, **fields):
    """Join a new room (it is created locked), then submit its form with C{fields}."""
    presence, _, _, _ = await muc(client).join_muc_wait(room, nick, maxstanzas=0,
                                                        timeout=TIMEOUT)
    assert 201 in presence["muc"]["status_codes"]
    form = await muc(client).get_room_config(room, timeout=TIMEOUT)
    for var, value in fields.items():
        form.get_fields()[f"muc#roomconfig_{var}"]["value"] = value
    await muc(client).set_room_config(room, form, timeout=TIMEOUT)


async def refused(client, room, nick, **kwargs):
    """Join and expect a presence error; return its condition."""
    with pytest.raises(PresenceError) as error:
        await muc(client).join_muc_wait(room, nick, timeout=TIMEOUT, **kwargs)
    return error.value.condition


def status_presence(client, room, nick, code, type_="unavailable"):
    """Wait for a MUC presence from C{room}/C{nick} with status C{code}."""
    return client.muc_presence.wait(
        lambda p: (str(p["from"]) == f"{room}/{nick}" and p["type"] == type_
                   and code in p["muc"]["status_codes"]),
        f"presence {code} from {room}/{nick}")


def test_create_talk_history_subject(server):
    """alice creates a room, sets the subject and talks; bob joins, gets history and talks."""
    async def scenario():
        room = f"tea@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await create(alice, room, "alice")
        muc(alice).set_subject(room, "Tea time")
        alice.send_message(mto=room, mbody="first", mtype="groupchat")
        alice.send_message(mto=room, mbody="second", mtype="groupchat")
        await alice.groupchat.wait(lambda m: m["body"] == "second", "alice's own echo")
        presence, subject, occupants, history = await muc(bob).join_muc_wait(
            room, "bob", maxstanzas=1, timeout=TIMEOUT)
        assert presence["muc"]["role"] == "participant"
        assert subject["subject"] == "Tea time"
        assert [str(p["from"]) for p in occupants] == [f"{room}/alice", f"{room}/bob"]
        assert [m["body"] for m in history] == ["second"]
        assert history[0]["delay"]["stamp"] is not None
        bob.send_message(mto=room, mbody="hello from bob", mtype="groupchat")
        got = await alice.groupchat.wait(lambda m: m["body"] == "hello from bob", "bob's line")
        assert str(got["from"]) == f"{room}/bob"
        await close(alice, bob)
    run(scenario())


def test_private_message_and_nick_change(server):
    """Occupants exchange a private message, and a nick change is seen by the others."""
    async def scenario():
        room = f"pm@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await create(alice, room, "alice")
        await muc(bob).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        bob.send_message(mto=f"{room}/alice", mbody="psst", mtype="chat")
        got = await alice.chats.wait(lambda m: m["body"] == "psst", "bob's private message")
        assert str(got["from"]) == f"{room}/bob" and got["type"] == "chat"
        assert await muc(bob).set_self_nick(room, "robert", timeout=TIMEOUT) == "robert"
        await status_presence(alice, room, "bob", 303)
        await alice.muc_presence.wait(
            lambda p: str(p["from"]) == f"{room}/robert" and p["type"] != "unavailable",
            "robert's presence")
        # carol cannot take a nick in use.
        carol = await connect(server, "carol")
        assert await refused(carol, room, "alice") == "conflict"
        await close(alice, bob, carol)
    run(scenario())


def test_kick_and_ban(server):
    """The owner kicks bob (307) and bans carol (301), who then cannot come back."""
    async def scenario():
        room = f"mod@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        carol = await connect(server, "carol")
        await create(alice, room, "alice")
        await muc(bob).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        await muc(carol).join_muc_wait(room, "carol", maxstanzas=0, timeout=TIMEOUT)
        await muc(alice).set_role(room, "bob", "none", reason="be nice", timeout=TIMEOUT)
        kicked = await status_presence(bob, room, "bob", 307)
        assert 110 in kicked["muc"]["status_codes"]
        await status_presence(carol, room, "bob", 307)
        await muc(alice).set_affiliation(room, "outcast", jid="carol@localhost",
                                         timeout=TIMEOUT)
        await status_presence(carol, room, "carol", 301)
        outcasts = await muc(alice).get_affiliation_list(room, "outcast", timeout=TIMEOUT)
        assert [str(j) for j in outcasts] == ["carol@localhost"]
        assert await refused(carol, room, "carol") == "forbidden"
        # bob was only kicked: he may come back.
        await muc(bob).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        await close(alice, bob, carol)
    run(scenario())


def test_password_room(server):
    """A password-protected room refuses a wrong password and admits the right one."""
    async def scenario():
        room = f"secret@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await create(alice, room, "alice", passwordprotectedroom=True, roomsecret="s3cret")
        assert await refused(bob, room, "bob") == "not-authorized"
        assert await refused(bob, room, "bob", password="wrong") == "not-authorized"
        await muc(bob).join_muc_wait(room, "bob", password="s3cret", maxstanzas=0,
                                     timeout=TIMEOUT)
        await close(alice, bob)
    run(scenario())


def test_members_only_room(server):
    """A members-only room admits bob only once the owner made him a member."""
    async def scenario():
        room = f"club@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await create(alice, room, "alice", membersonly=True)
        assert await refused(bob, room, "bob") == "registration-required"
        await muc(alice).set_affiliation(room, "member", jid="bob@localhost", timeout=TIMEOUT)
        presence, _, _, _ = await muc(bob).join_muc_wait(room, "bob", maxstanzas=0,
                                                         timeout=TIMEOUT)
        assert presence["muc"]["affiliation"] == "member"
        await close(alice, bob)
    run(scenario())


def test_persistent_room_survives_restart(tmp_path):
    """A persistent room keeps its configuration, members and subject across a restart."""
    server = ServerProcess(tmp_path)
    for user in USERS:
        server.adduser(f"{user}@localhost", PASSWORD)
    room = f"lasting@{MUC}"

    async def before():
        alice = await connect(server, "alice")
        await create(alice, room, "alice", persistentroom=True, membersonly=True,
                     roomname="Lasting")
        await muc(alice).set_affiliation(room, "member", jid="bob@localhost", timeout=TIMEOUT)
        muc(alice).set_subject(room, "Still here")
        # The subject is stored once the room has broadcast it back.
        await asyncio.wait_for(_subject_echo(alice, room), TIMEOUT)
        await close(alice)

    async def after():
        bob = await connect(server, "bob")
        carol = await connect(server, "carol")
        assert await refused(carol, room, "carol") == "registration-required"
        presence, subject, _, _ = await muc(bob).join_muc_wait(room, "bob", maxstanzas=0,
                                                               timeout=TIMEOUT)
        assert presence["muc"]["affiliation"] == "member"
        assert subject["subject"] == "Still here"
        info = await bob.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT)
        assert "muc_persistent" in info["disco_info"]["features"]
        await close(bob, carol)

    with server:
        run(before())
        server.restart()
        run(after())


async def _subject_echo(client, room):
    """Wait until the room has broadcast the subject "Still here" back to C{client}."""
    future = asyncio.get_event_loop().create_future()

    def subject(message):
        if message["subject"] == "Still here" and not future.done():
            future.set_result(message)

    client.add_event_handler(f"muc::{room}::groupchat_subject", subject)
    await future


def test_disco_invite_destroy(server):
    """A public room is listed, a mediated invitation arrives, and destroy names the venue."""
    async def scenario():
        room = f"lobby@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        invites = Events(bob, "groupchat_invite")
        await create(alice, room, "alice", roomname="The Lobby")
        items = await alice.plugin["xep_0030"].get_items(jid=MUC, timeout=TIMEOUT)
        assert (room, None, "The Lobby") in items["disco_items"]["items"]
        services = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=TIMEOUT)
        assert MUC in [item[0] for item in services["disco_items"]["items"]]
        muc(alice).invite(room, "bob@localhost", reason="come in")
        invite = await invites.wait(lambda m: True, "the invitation")
        assert str(invite["from"]) == room
        assert str(invite["muc"]["invite"]["from"]) == "alice@localhost"
        await muc(bob).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        await muc(alice).destroy(room, reason="moving", altroom=f"hall@{MUC}", timeout=TIMEOUT)
        gone = await bob.muc_presence.wait(
            lambda p: p["type"] == "unavailable" and str(p["from"]) == f"{room}/bob",
            "the destroy presence")
        destroy = gone.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}destroy")
        assert destroy.get("jid") == f"hall@{MUC}"
        items = await alice.plugin["xep_0030"].get_items(jid=MUC, timeout=TIMEOUT)
        assert room not in [item[0] for item in items["disco_items"]["items"]]
        await close(alice, bob)
    run(scenario())


def test_disconnect_leaves_room(server):
    """An occupant whose client disconnects is seen leaving by the others."""
    async def scenario():
        room = f"door@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await create(alice, room, "alice")
        await muc(bob).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        await close(bob)
        await alice.muc_presence.wait(
            lambda p: p["type"] == "unavailable" and str(p["from"]) == f"{room}/bob",
            "bob leaving")
        await close(alice)
    run(scenario())


NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
NS_REQUEST = "http://jabber.org/protocol/muc#request"


def register_submission(room, client, nick):
    """The IQ set submitting the muc#register form with C{nick}."""
    query = ET.fromstring(
        f"<query xmlns='{NS_REGISTER}'><x xmlns='{NS_DATA}' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
        f"<field var='muc#register_roomnick'><value>{nick}</value></field></x></query>")
    return client.make_iq_set(query, ito=room)


def test_register_nick(server):
    """bob reserves a nick: carol cannot take it, disco shows it, and bob enters as member."""
    async def scenario():
        room = f"names@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        carol = await connect(server, "carol")
        await create(alice, room, "alice")
        form = await bob.make_iq_get(NS_REGISTER, ito=room).send(timeout=TIMEOUT)
        fields = form.xml.find(f"{{{NS_REGISTER}}}query/{{{NS_DATA}}}x")
        assert "muc#register_roomnick" in [f.get("var") for f in fields]
        await register_submission(room, bob, "bobby").send(timeout=TIMEOUT)
        assert await refused(carol, room, "bobby") == "conflict"
        info = await bob.plugin["xep_0030"].get_info(jid=room, node="x-roomuser-item",
                                                     timeout=TIMEOUT)
        assert [i[3] for i in info["disco_info"]["identities"]] == ["bobby"]
        with pytest.raises(IqError) as error:
            await register_submission(room, carol, "bobby").send(timeout=TIMEOUT)
        assert error.value.condition == "conflict"
        presence, _, _, _ = await muc(bob).join_muc_wait(room, "bobby", maxstanzas=0,
                                                         timeout=TIMEOUT)
        assert presence["muc"]["affiliation"] == "member"
        # Released, the nick is free for carol.
        remove = bob.make_iq_set(ET.fromstring(f"<query xmlns='{NS_REGISTER}'><remove/></query>"),
                                 ito=room)
        await remove.send(timeout=TIMEOUT)
        muc(bob).leave_muc(room, "bobby")
        await alice.muc_presence.wait(
            lambda p: p["type"] == "unavailable" and str(p["from"]) == f"{room}/bobby",
            "bobby leaving")
        await muc(carol).join_muc_wait(room, "bobby", maxstanzas=0, timeout=TIMEOUT)
        await close(alice, bob, carol)
    run(scenario())


def test_voice_request(server):
    """A visitor asks for voice; the moderator gets the approval form and grants it."""
    async def scenario():
        room = f"stage@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await create(alice, room, "alice", moderatedroom=True)
        presence, _, _, _ = await muc(bob).join_muc_wait(room, "bob", maxstanzas=0,
                                                         timeout=TIMEOUT)
        assert presence["muc"]["role"] == "visitor"
        forms = Events(alice, "message_xform")
        muc(bob).request_voice(room, "participant")
        request = await forms.wait(
            lambda m: m["form"]["type"] == "form" and str(m["from"]) == room,
            "the voice request form")
        values = request["form"].get_values()
        assert values["muc#roomnick"] == "bob" and values["muc#jid"] == "bob@localhost/muc"
        answer = alice.make_message(mto=room)
        form = answer["form"]
        form["type"] = "submit"
        form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_REQUEST)
        form.add_field(var="muc#roomnick", value="bob")
        form.add_field(var="muc#request_allow", ftype="boolean", value=True)
        answer.send()
        await bob.muc_presence.wait(
            lambda p: str(p["from"]) == f"{room}/bob" and p["muc"]["role"] == "participant",
            "bob's voice")
        bob.send_message(mto=room, mbody="thank you", mtype="groupchat")
        await alice.groupchat.wait(lambda m: m["body"] == "thank you", "bob speaking")
        await close(alice, bob)
    run(scenario())


def test_private_iq(server):
    """A version query to an occupant JID is answered by that occupant's client."""
    async def scenario():
        room = f"iq@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        bob.register_plugin("xep_0092", {"software_name": "BobClient", "version": "1.0"})
        alice.register_plugin("xep_0092")
        await create(alice, room, "alice")
        await muc(bob).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        version = await alice.plugin["xep_0092"].get_version(f"{room}/bob", timeout=TIMEOUT)
        assert str(version["from"]) == f"{room}/bob"
        assert version["software_version"]["name"] == "BobClient"
        with pytest.raises(IqError) as error:
            await alice.plugin["xep_0092"].get_version(f"{room}/nobody", timeout=TIMEOUT)
        assert error.value.condition == "item-not-found"
        await close(alice, bob)
    run(scenario())


def test_occupant_items_and_leave_status(server):
    """A non-anonymous room lists its occupants; a leave carries its status text."""
    async def scenario():
        room = f"open@{MUC}"
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        await create(alice, room, "alice", whois="anyone")
        await muc(bob).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        items = await bob.plugin["xep_0030"].get_items(jid=room, timeout=TIMEOUT)
        assert sorted(str(i[0]) for i in items["disco_items"]["items"]) == [
            f"{room}/alice", f"{room}/bob"]
        muc(bob).leave_muc(room, "bob", msg="off to lunch")
        gone = await alice.muc_presence.wait(
            lambda p: p["type"] == "unavailable" and str(p["from"]) == f"{room}/bob",
            "bob leaving")
        assert gone["status"] == "off to lunch"
        await close(alice, bob)
    run(scenario())


def test_two_sessions_one_nick(server):
    """bob joins from two resources with one nick: both get the room's messages."""
    async def scenario():
        room = f"devices@{MUC}"
        alice = await connect(server, "alice")
        desktop = await connect(server, "bob", resource="desktop")
        phone = await connect(server, "bob", resource="phone")
        await create(alice, room, "alice")
        await muc(desktop).join_muc_wait(room, "bob", maxstanzas=0, timeout=TIMEOUT)
        presence, _, occupants, _ = await muc(phone).join_muc_wait(
            room, "bob", maxstanzas=0, timeout=TIMEOUT)
        assert 110 in presence["muc"]["status_codes"]
        assert [str(p["from"]) for p in occupants] == [f"{room}/alice", f"{room}/bob"]
        alice.send_message(mto=room, mbody="to every device", mtype="groupchat")
        for client in (desktop, phone):
            await client.groupchat.wait(lambda m: m["body"] == "to every device",
                                        "the message on each session")
        joined = [p for p in alice.muc_presence.items if str(p["from"]) == f"{room}/bob"]
        assert len(joined) == 1
        await close(alice, desktop, phone)
    run(scenario())
