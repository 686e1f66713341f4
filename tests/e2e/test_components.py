"""End to end: an external component (XEP-0114) written with slixmpp's ComponentXMPP."""
import asyncio

import pytest
import slixmpp

from tests.e2e.harness import TIMEOUT, ServerProcess, _settle, close, free_port, login, run

PASSWORD = "c0mponent tests"
SECRET = "echo-secret-5f1d-never-logged"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    server = ServerProcess(tmp_path_factory.mktemp("components"), config=f"""\
        [components]
        port = {port}
        [component:echo.localhost]
        secret = {SECRET}
        name = Echo service
        """)
    server.component_port = port
    server.adduser("alice@localhost", PASSWORD)
    with server:
        yield server


class EchoComponent(slixmpp.ComponentXMPP):
    """Answers every chat or normal message with 'echo: ' and its body."""

    def __init__(self, server, secret=SECRET, jid="echo.localhost"):
        super().__init__(jid, secret, "127.0.0.1", server.component_port)
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.ended = loop.create_future()
        self.stream_errors = []
        self.add_event_handler("session_start", lambda _: _settle(self.started, True))
        self.add_event_handler("disconnected", lambda _: _settle(self.ended, True))
        self.add_event_handler("stream_error", self.stream_errors.append)
        self.add_event_handler("message", self._echo)

    def _echo(self, message):
        if message["type"] in ("chat", "normal") and message["body"]:
            message.reply("echo: " + message["body"]).send()


async def connect_component(server, **kwargs):
    """Connect an EchoComponent; wait until it is accepted or its connection ends."""
    component = EchoComponent(server, **kwargs)
    component.connect()
    await asyncio.wait([component.started, component.ended], timeout=TIMEOUT,
                       return_when=asyncio.FIRST_COMPLETED)
    return component


async def disconnect_component(component):
    component.disconnect()
    await asyncio.wait_for(component.ended, TIMEOUT)


async def next_message(client, type_):
    while True:
        message = await client.messages.get()
        if message["type"] == type_:
            return message


def test_component_receives_and_answers(server):
    """A user's message to a JID of the component's domain is answered by the component."""
    async def scenario():
        component = await connect_component(server)
        assert component.started.done(), server.log()
        alice = await login(server, "alice@localhost/echo", PASSWORD)
        alice.send_message(mto="bot@echo.localhost", mbody="ping 1", mtype="chat")
        answer = await asyncio.wait_for(next_message(alice, "chat"), TIMEOUT)
        assert answer["body"] == "echo: ping 1"
        assert answer["from"] == "bot@echo.localhost"
        await close(alice)
        await disconnect_component(component)
    run(scenario())


def test_component_listed_in_disco_items(server):
    """The host's disco#items list the connected component with its configured name."""
    async def scenario():
        component = await connect_component(server)
        alice = await login(server, "alice@localhost/disco", PASSWORD)
        alice.register_plugin("xep_0030")
        items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=TIMEOUT)
        assert ("echo.localhost", None, "Echo service") in items["disco_items"]["items"]
        await disconnect_component(component)
        items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=TIMEOUT)
        assert "echo.localhost" not in {item[0] for item in items["disco_items"]["items"]}
        await close(alice)
    run(scenario())


def test_wrong_secret_is_not_authorized(server):
    """A component with the wrong secret is refused with a not-authorized stream error."""
    async def scenario():
        component = await connect_component(server, secret="not the secret")
        await asyncio.wait_for(component.ended, TIMEOUT)
        assert not component.started.done()
        assert [e["condition"] for e in component.stream_errors] == ["not-authorized"]
        component.disconnect()
    run(scenario())


def test_unknown_domain_is_host_unknown(server):
    """A component for a domain that is not configured gets host-unknown."""
    async def scenario():
        component = await connect_component(server, jid="other.localhost")
        await asyncio.wait_for(component.ended, TIMEOUT)
        assert [e["condition"] for e in component.stream_errors] == ["host-unknown"]
        component.disconnect()
    run(scenario())


def test_second_connection_is_conflict(server):
    """A second connection for a connected component is refused; the first keeps working."""
    async def scenario():
        first = await connect_component(server)
        assert first.started.done()
        second = await connect_component(server)
        await asyncio.wait_for(second.ended, TIMEOUT)
        assert [e["condition"] for e in second.stream_errors] == ["conflict"]
        second.disconnect()
        alice = await login(server, "alice@localhost/conflict", PASSWORD)
        alice.send_message(mto="echo.localhost", mbody="still there?", mtype="chat")
        answer = await asyncio.wait_for(next_message(alice, "chat"), TIMEOUT)
        assert answer["body"] == "echo: still there?"
        await close(alice)
        await disconnect_component(first)
    run(scenario())


def test_message_bounces_after_component_disconnects(server):
    """Once the component has gone, a message to its domain comes back as an error."""
    async def scenario():
        component = await connect_component(server)
        await disconnect_component(component)
        alice = await login(server, "alice@localhost/bounce", PASSWORD)
        alice.send_message(mto="bot@echo.localhost", mbody="anyone?", mtype="chat")
        error = await asyncio.wait_for(next_message(alice, "error"), TIMEOUT)
        assert error["error"]["condition"] == "service-unavailable"
        assert error["error"]["type"] == "wait"
        assert error["from"] == "bot@echo.localhost"
        await close(alice)
    run(scenario())


def test_secret_never_logged(server):
    """The component's secret does not reach the server's log."""
    async def scenario():
        component = await connect_component(server)
        await disconnect_component(component)
    run(scenario())
    for _ in server.lines_until(lambda line: "component echo.localhost disconnected" in line):
        pass
    assert "component echo.localhost connected" in server.log()
    assert SECRET not in server.log()
