"""
End to end: XEP-0357 push notifications received by a test app server, an external
component (XEP-0114, slixmpp's ComponentXMPP), for a message to a session that stream
management keeps after its connection was cut (raw socket client) and to an offline user
(slixmpp client); an error answer from the app server disables the registration.

slixmpp 1.17 has no XEP-0357 plugin: the slixmpp client enables push with a plain IQ.
"""
import asyncio

import pytest
import slixmpp
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e.harness import TIMEOUT, ServerProcess, _settle, close, free_port, login, run
from tests.e2e.rawclient import NS_CLIENT, RawClient

PASSWORD = "push tests pw"
SECRET = "app-server-secret-never-logged"
APP = "push.localhost"
NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_SM = "urn:xmpp:sm:3"
NS_COMPONENT = "jabber:component:accept"
OPTIONS_FORM = (f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'>"
                "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
                "<field var='secret'><value>tok-123</value></field></x>")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    server = ServerProcess(tmp_path_factory.mktemp("push"), config=f"""\
        [components]
        port = {port}
        [component:{APP}]
        secret = {SECRET}
        [extension:sm]
        resume_timeout = 60
        [extension:push]
        interval = 1
        timeout = 10
        include_sender = yes
        """)
    server.component_port = port
    for user in ("alice", "bob", "carol", "dave"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


class AppServer(slixmpp.ComponentXMPP):
    """The push service: records every publish; refuses those to nodes in C{refuse}."""

    def __init__(self, server):
        super().__init__(APP, SECRET, "127.0.0.1", server.component_port)
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.ended = loop.create_future()
        self.published = asyncio.Queue()
        self.refuse = set()
        self.add_event_handler("session_start", lambda _: _settle(self.started, True))
        self.add_event_handler("disconnected", lambda _: _settle(self.ended, True))
        self.register_handler(Callback("push publish", MatchXPath(
            f"{{{NS_COMPONENT}}}iq/{{{NS_PUBSUB}}}pubsub"), self._publish))

    def _publish(self, iq):
        publish = iq.xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish")
        fields = {}
        for field in iq.xml.iter(f"{{{NS_DATA}}}field"):
            fields.setdefault(field.get("var"), field.findtext(f"{{{NS_DATA}}}value"))
        node = publish.get("node")
        self.published.put_nowait((str(iq["from"]), node, fields))
        if node in self.refuse:
            reply = iq.reply(clear=True)
            reply["type"] = "error"
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = "item-not-found"
            reply.send()
        else:
            iq.reply(clear=True).send()

    async def next(self):
        return await asyncio.wait_for(self.published.get(), TIMEOUT)


async def app_server(server):
    app = AppServer(server)
    app.connect()
    await asyncio.wait_for(app.started, TIMEOUT)
    return app


async def stop(app):
    app.disconnect()
    await asyncio.wait_for(app.ended, TIMEOUT)


async def enable(client, node, form=OPTIONS_FORM):
    """Enable push to the app server's C{node} with a plain IQ (result or error)."""
    iq = client.Iq()
    iq["type"] = "set"
    iq.append(ET.fromstring(f"<enable xmlns='{NS_PUSH}' jid='{APP}' node='{node}'>{form}"
                            "</enable>"))
    return await iq.send(timeout=TIMEOUT)


def raw_login(server, user, resource):
    """A raw client bound, available, with resumable stream management enabled."""
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    client.starttls()
    client.authenticate("SCRAM-SHA-256", user, PASSWORD)
    client.bind(resource)
    client.send("<presence/>")
    client.expect(f"{{{NS_CLIENT}}}presence")
    client.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    client.expect(f"{{{NS_SM}}}enabled")
    return client


def test_hibernated_session_gets_a_push(server):
    """A message to alice's phone while its connection is cut (stream management keeps
    the session) is published to the app server with the publish options, from alice's
    bare JID; a burst is coalesced with the right count."""
    async def scenario():
        app = await app_server(server)
        alice = await asyncio.to_thread(raw_login, server, "alice", "phone")
        alice.send(f"<iq type='set' id='p1'><enable xmlns='{NS_PUSH}' jid='{APP}' "
                   f"node='alice-phone'>{OPTIONS_FORM}</enable></iq>")
        answer = await asyncio.to_thread(alice.expect, f"{{{NS_CLIENT}}}iq")
        assert answer.get("type") == "result"
        alice._sock.close()
        for _ in server.lines_until(lambda l: "alice@localhost/phone awaits resumption" in l):
            pass
        bob = await login(server, "bob@localhost/desk", PASSWORD)
        bob.send_message(mto="alice@localhost/phone", mbody="wake up", mtype="chat")
        sender, node, fields = await app.next()
        assert (sender, node) == ("alice@localhost", "alice-phone")
        assert fields["FORM_TYPE"] == "urn:xmpp:push:summary"
        assert fields["message-count"] == "1"
        assert fields["last-message-sender"] == "bob@localhost/desk"
        assert "last-message-body" not in fields
        assert fields["secret"] == "tok-123"
        for i in range(5):
            bob.send_message(mto="alice@localhost/phone", mbody=f"more {i}", mtype="chat")
        counts = []
        while not counts or counts[-1] != 6:    # coalesced: fewer notifications than messages
            counts.append(int((await app.next())[2]["message-count"]))
        assert counts == sorted(counts) and len(counts) < 5, counts
        await close(bob)
        await stop(app)
    run(scenario())


def test_offline_user_gets_a_push(server):
    """carol enables push from slixmpp and logs out; a message stored offline for her is
    published to her node."""
    async def scenario():
        app = await app_server(server)
        carol = await login(server, "carol@localhost/phone", PASSWORD)
        await enable(carol, "carol-phone")
        await close(carol)
        bob = await login(server, "bob@localhost/desk2", PASSWORD)
        bob.send_message(mto="carol@localhost", mbody="are you there?", mtype="chat")
        sender, node, fields = await app.next()
        assert (sender, node, fields["message-count"]) == ("carol@localhost", "carol-phone",
                                                           "1")
        await close(bob)
        await stop(app)
    run(scenario())


def test_bad_enable_refused(server):
    """The account and the server advertise urn:xmpp:push:0; an enable without node is
    bad-request; to another account, forbidden."""
    async def scenario():
        dave = await login(server, "dave@localhost/phone", PASSWORD)
        dave.register_plugin("xep_0030")
        for jid in ("dave@localhost", "localhost"):
            info = await dave.plugin["xep_0030"].get_info(jid=jid, timeout=TIMEOUT)
            assert NS_PUSH in info["disco_info"]["features"], jid
        iq = dave.Iq()
        iq["type"] = "set"
        iq.append(ET.fromstring(f"<enable xmlns='{NS_PUSH}' jid='{APP}'/>"))
        with pytest.raises(slixmpp.exceptions.IqError) as error:
            await iq.send(timeout=TIMEOUT)
        assert error.value.iq["error"]["condition"] == "bad-request"
        iq = dave.Iq()
        iq["type"] = "set"
        iq["to"] = "carol@localhost"
        iq.append(ET.fromstring(f"<enable xmlns='{NS_PUSH}' jid='{APP}' node='x'/>"))
        with pytest.raises(slixmpp.exceptions.IqError) as error:
            await iq.send(timeout=TIMEOUT)
        assert error.value.iq["error"]["condition"] == "forbidden"
        await close(dave)
    run(scenario())


def test_app_server_error_disables(server):
    """The app server answers item-not-found: the registration is disabled and the next
    offline message is not published to it."""
    async def scenario():
        app = await app_server(server)
        app.refuse.add("dave-gone")
        dave = await login(server, "dave@localhost/phone2", PASSWORD)
        await enable(dave, "dave-gone", form="")
        await enable(dave, "dave-ok", form="")
        await close(dave)
        bob = await login(server, "bob@localhost/desk3", PASSWORD)
        bob.send_message(mto="dave@localhost", mbody="one", mtype="chat")
        first = {(await app.next())[1], (await app.next())[1]}
        assert first == {"dave-gone", "dave-ok"}
        for _ in server.lines_until(lambda l: "disabled after an error" in l):
            pass
        bob.send_message(mto="dave@localhost", mbody="two", mtype="chat")
        _, node, fields = await app.next()
        assert node == "dave-ok" and fields["message-count"] == "2"
        await asyncio.sleep(0.5)     # an absence: nothing more arrives for dave-gone
        assert app.published.empty()
        await close(bob)
        await stop(app)
    run(scenario())
