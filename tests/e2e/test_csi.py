"""
End to end over raw sockets and slixmpp's xep_0352: an inactive client's presence updates
are held until a message with a body (or <active/>) flushes them, in order, and stream
management's counts and acknowledgements stay right across the holding.
"""
import asyncio

import pytest

from tests.e2e.harness import TIMEOUT, Client, Events, ServerProcess, close, login, run
from tests.e2e.rawclient import NS_CLIENT, RawClient

PASSWORD = "csi pw"
NS_CSI = "urn:xmpp:csi:0"
NS_SM = "urn:xmpp:sm:3"
PRESENCE = f"{{{NS_CLIENT}}}presence"
MESSAGE = f"{{{NS_CLIENT}}}message"
IQ = f"{{{NS_CLIENT}}}iq"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("csi"), config="""
            [extension:sm]
            request_every = 3
            """) as server:
        for user in ("alice", "bob"):
            server.adduser(f"{user}@localhost", PASSWORD)
        yield server


def raw_login(server, user, resource):
    """A raw client, bound, with its post-authentication features."""
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    client.starttls()
    features = client.authenticate("SCRAM-SHA-256", user, PASSWORD)
    client.bind(resource)
    return client, features


def ping(client, id):
    """A ping to the server; every element up to its answer."""
    client.send(f"<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>")
    seen = []
    while True:
        el = client.next_element()
        seen.append(el)
        if el.tag == IQ and el.get("id") == id:
            return seen


def test_presence_held_until_body_then_active_with_sm_acks(server):
    """Inactive: bob's directed presence updates are held (the newest kept); his message
    with a body brings them first, then itself; more presence waits for <active/>.
    Stream management numbers only what was written: the server's <r/> comes after the
    third stanza (p1 never counted) and an <a h='3'/> is accepted."""
    alice, features = raw_login(server, "alice", "phone")
    bob, _ = raw_login(server, "bob", "desk")
    try:
        assert features.find(f"{{{NS_CSI}}}csi") is not None
        alice.send("<presence/>")
        alice.expect(PRESENCE)
        alice.send(f"<enable xmlns='{NS_SM}'/>")
        alice.expect(f"{{{NS_SM}}}enabled")
        alice.send(f"<inactive xmlns='{NS_CSI}'/>")
        ping(alice, "sync1")     # the nonza is handled before bob starts
        bob.send("<presence to='alice@localhost/phone' id='p1'><show>away</show></presence>"
                 "<presence to='alice@localhost/phone' id='p2'><show>dnd</show></presence>")
        ping(bob, "b1")
        bob.send("<message to='alice@localhost/phone' type='chat' id='m1'><body>wake</body>"
                 "</message>")
        got = [alice.expect(PRESENCE, MESSAGE).get("id") for _ in range(2)]
        assert got == ["p2", "m1"]
        # Numbered: the ping's result, p2, m1 -- the third is followed by <r/>.
        alice.expect(f"{{{NS_SM}}}r")
        alice.send(f"<a xmlns='{NS_SM}' h='3'/>")
        bob.send("<presence to='alice@localhost/phone' id='p3'><show>xa</show></presence>")
        ping(bob, "b2")
        alice.send(f"<active xmlns='{NS_CSI}'/>")
        assert alice.expect(PRESENCE).get("id") == "p3"
        seen = ping(alice, "sync3")
        assert all(el.tag != f"{{{NS_CLIENT}}}stream-error" for el in seen)
    finally:
        alice.close()
        bob.close()


def test_slixmpp_inactive_then_active(server):
    """slixmpp's xep_0352: while inactive two presence updates of a contact are held and
    collapsed; send_active delivers only the newest."""
    async def body():
        alice = Client("alice@localhost/laptop", PASSWORD, server.certificate)
        alice.register_plugin("xep_0352")
        alice.register_plugin("xep_0199")
        alice.connect("127.0.0.1", server.port)
        await asyncio.wait_for(alice.started, TIMEOUT)
        assert alice.plugin["xep_0352"].enabled     # it saw <csi/> in the features
        bob = await login(server, "bob@localhost/pc", PASSWORD, presence=False)
        bob.register_plugin("xep_0199")
        away = Events(alice, "presence_away")
        dnd = Events(alice, "presence_dnd")
        try:
            alice.plugin["xep_0352"].send_inactive()
            # alice's nonza is handled before bob's presence: her own ping's answer
            # (an IQ, important) comes back after it.
            await asyncio.wait_for(alice.plugin["xep_0199"].ping("localhost"), TIMEOUT)
            bob.send_presence(pto="alice@localhost/laptop", pshow="away")
            bob.send_presence(pto="alice@localhost/laptop", pshow="dnd")
            await asyncio.wait_for(bob.plugin["xep_0199"].ping("localhost"), TIMEOUT)
            alice.plugin["xep_0352"].send_active()
            await dnd.wait(lambda p: str(p["from"]) == "bob@localhost/pc",
                           "bob's presence after <active/>")
            # Had it not been held, the older one would have arrived first.
            assert away.items == []
        finally:
            await close(alice, bob)
    run(body())
