"""
End to end over raw sockets: a graceful shutdown (SIGTERM) loses nothing. Messages a
stream-management client received but did not acknowledge, and messages to an offline user
that the server had acknowledged, are in offline storage after a restart, once each, in order.
"""
import pytest

from tests.e2e.harness import ServerProcess
from tests.e2e.rawclient import NS_CLIENT, RawClient, StreamClosed

PASSWORD = "shutdown pw"
NS_SM = "urn:xmpp:sm:3"
NS_DELAY = "urn:xmpp:delay"
MESSAGE = f"{{{NS_CLIENT}}}message"
BODY = f"{{{NS_CLIENT}}}body"


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path, config="""
        [extension:sm]
        request_every = 1000
        ack_timeout = 0
        """)
    for user in ("alice", "bob", "carol"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


def connect(server, user, resource):
    """STARTTLS, SCRAM, bind, initial presence (its echo read)."""
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    client.starttls()
    client.authenticate("SCRAM-SHA-256", user, PASSWORD)
    client.bind(resource)
    client.send("<presence/>")
    client.expect(f"{{{NS_CLIENT}}}presence")
    return client


def enable(client, resume):
    client.send(f"<enable xmlns='{NS_SM}' resume='{'true' if resume else 'false'}'/>")
    client.expect(f"{{{NS_SM}}}enabled")


def sync(client):
    """A ping the server answers after handling everything sent before it; the bodies of
    the messages that arrived meanwhile."""
    client.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
    bodies = []
    while True:
        el = client.next_element()
        if el.tag == f"{{{NS_CLIENT}}}iq" and el.get("id") == "sync":
            return bodies
        if el.tag == MESSAGE and el.findtext(BODY) is not None:
            bodies.append(el.findtext(BODY))


def bodies(client, count):
    """The next C{count} message bodies C{client} receives (other stanzas skipped)."""
    got = []
    while len(got) < count:
        el = client.next_element()
        if el.tag == MESSAGE and el.findtext(BODY) is not None:
            assert el.find(f"{{{NS_DELAY}}}delay") is not None
            got.append(el.findtext(BODY))
    return got


def test_sigterm_keeps_unacknowledged_and_accepted_offline_messages(server):
    """alice (stream management, resumable) reads five messages without acknowledging
    them and bob's messages to carol (offline) are acknowledged; SIGTERM ends alice's
    stream with system-shutdown; after a restart alice gets her five and carol her three
    from offline storage, exactly once and in order."""
    alice = connect(server, "alice", "phone")
    enable(alice, resume=True)
    bob = connect(server, "bob", "desk")
    enable(bob, resume=False)
    try:
        for n in range(5):
            bob.send(f"<message type='chat' to='alice@localhost/phone' id='a{n}'>"
                     f"<body>alice {n}</body></message>")
        for n in range(3):
            bob.send(f"<message type='chat' to='carol@localhost' id='c{n}'>"
                     f"<body>carol {n}</body></message>")
        bob.send(f"<r xmlns='{NS_SM}'/>")
        # An <a/> covering the five, the three and nothing less: carol's are in storage.
        while True:
            el = bob.next_element()
            if el.tag == f"{{{NS_SM}}}a" and int(el.get("h")) == 8:
                break
        got = []
        while len(got) < 5:
            el = alice.next_element()
            if el.tag == MESSAGE:
                got.append(el.findtext(BODY))
        assert got == [f"alice {n}" for n in range(5)]
        server.stop()       # SIGTERM, and the process exits
        with pytest.raises(StreamClosed) as closed:
            while True:
                alice.next_element()
        assert closed.value.error == "system-shutdown"
    finally:
        alice._sock.close()
        bob._sock.close()
    assert "Traceback" not in server.log(), server.log()
    server.start()
    alice = connect(server, "alice", "laptop")
    carol = connect(server, "carol", "home")
    try:
        assert bodies(alice, 5) == [f"alice {n}" for n in range(5)]
        assert sync(alice) == []        # nothing twice
        assert bodies(carol, 3) == [f"carol {n}" for n in range(3)]
        assert sync(carol) == []
    finally:
        alice.close()
        carol.close()
