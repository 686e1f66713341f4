"""End to end: XEP-0160 offline messages with delay stamps, across server restarts."""
import asyncio

import pytest

from tests.e2e.harness import TIMEOUT, ServerProcess, close, login, run

PASSWORD = "offline pw"
MAX_MESSAGES = 3
NS_DELAY = "urn:xmpp:delay"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("offline"), config=f"""
        [extension:offline]
        max_messages = {MAX_MESSAGES}
        """)
    for user in ("alice", "bob", "carol", "dave"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


async def stored(server, user, count=1):
    """Wait until the server has logged C{count} offline messages stored for C{user}."""
    wanted = f"offline message stored for {user}@localhost"

    def wait():
        seen = 0
        for line in server.lines_until(lambda line: seen >= count):
            seen += wanted in line

    # The server's log is read in a thread: the clients' event loop must keep running.
    await asyncio.to_thread(wait)


async def bodies(client, count):
    """The next C{count} messages with a body that C{client} receives."""
    got = []
    while len(got) < count:
        message = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if message["body"]:
            got.append(message)
    return got


def delay_of(message):
    """The <delay/> element of a slixmpp message, or None."""
    return message.xml.find(f"{{{NS_DELAY}}}delay")


def test_messages_delivered_in_order_at_login(server):
    """Three messages to offline bob reach him in order, delay-stamped, when he logs in."""
    async def scenario():
        alice = await login(server, "alice@localhost/phone", PASSWORD)
        for body in ("one", "two", "three"):
            alice.send_message(mto="bob@localhost", mbody=body, mtype="chat")
        await stored(server, "bob", 3)
        bob = await login(server, "bob@localhost/laptop", PASSWORD)
        messages = await bodies(bob, 3)
        assert [m["body"] for m in messages] == ["one", "two", "three"]
        assert {m["from"] for m in messages} == {"alice@localhost/phone"}
        for message in messages:
            delay = delay_of(message)
            assert delay is not None and delay.get("from") == "localhost"
            assert delay.get("stamp").endswith("Z")
        assert alice.messages.empty()   # no error came back for stored messages
        await close(alice, bob)
    run(scenario())


def test_quota_full_is_refused(server):
    """Past max_messages the sender gets service-unavailable saying storage is full."""
    async def scenario():
        alice = await login(server, "alice@localhost/quota", PASSWORD)
        for n in range(MAX_MESSAGES + 1):
            message = alice.make_message(mto="carol@localhost", mbody=f"m{n}", mtype="chat")
            message["id"] = f"q{n}"
            message.send()
        error = await asyncio.wait_for(alice.messages.get(), TIMEOUT)
        assert error["type"] == "error"
        assert error["id"] == f"q{MAX_MESSAGES}"
        assert error["error"]["condition"] == "service-unavailable"
        assert "full" in error["error"]["text"]
        carol = await login(server, "carol@localhost/c", PASSWORD)
        messages = await bodies(carol, MAX_MESSAGES)
        assert [m["body"] for m in messages] == [f"m{n}" for n in range(MAX_MESSAGES)]
        await close(alice, carol)
    run(scenario())


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_offline_message_survives_restart(server, crash):
    """A stored message survives a stop (or a crash) and a new server process."""
    body = f"across the restart ({'crash' if crash else 'stop'})"

    async def send_and_wait():
        alice = await login(server, "alice@localhost/restart", PASSWORD)
        alice.send_message(mto="dave@localhost", mbody=body, mtype="chat")
        await stored(server, "dave")
        await close(alice)

    run(send_and_wait())
    server.restart(crash=crash)

    async def receive():
        dave = await login(server, "dave@localhost/back", PASSWORD)
        [message] = await bodies(dave, 1)
        assert message["body"] == body
        assert message["from"] == "alice@localhost/restart"
        assert delay_of(message) is not None
        await close(dave)

    run(receive())
