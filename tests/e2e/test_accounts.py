"""End to end: XEP-0077 in-band registration, password change and account removal, and
XEP-0115 caps, with slixmpp clients (and raw sockets where slixmpp would not misbehave)."""
import asyncio
import socket

import pytest
from slixmpp.exceptions import IqError

from tests.e2e.harness import TIMEOUT, Client, ServerProcess, close, login, run
from tests.e2e.rawclient import RawClient, StreamClosed

PASSWORD = "s3cret pässword"
NEW_PASSWORD = "n3w-pässword-5e1f"
REGISTERED_PASSWORD = "fresh-pässword-9d2c"
NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
NS_CAPS = "http://jabber.org/protocol/caps"
CAPS_NODE = "https://jabberapp.example/caps"
# Failing clients try one mechanism only: each failure slows the next one from the same
# address down (the SASL throttle), and slixmpp would otherwise try all four in turn.
MECHANISM = "SCRAM-SHA-256"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Registration on, one registration per address per hour."""
    server = ServerProcess(tmp_path_factory.mktemp("accounts"), config="""\
        [extension:register]
        allow_registration = yes
        min_seconds_between_registrations = 3600
        """)
    for user in ("alice", "bob", "carol"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


@pytest.fixture(scope="module")
def closed_server(tmp_path_factory):
    """The defaults: in-band registration off."""
    with ServerProcess(tmp_path_factory.mktemp("accounts-closed")) as server:
        yield server


def _settle(future, value):
    if not future.done():
        future.set_result(value)


async def connect(client, server):
    """Connect C{client} and wait until it has a session (True) or failed to log in."""
    client.connect("127.0.0.1", server.port)
    done, _ = await asyncio.wait([client.started, client.failed], timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert done, "neither a session nor an authentication failure in time"
    return client.started in done


class Registrant(Client):
    """A slixmpp client that registers its JID in-band (XEP-0077) before logging in;
    C{registered} resolves to None on success or the error condition."""

    def __init__(self, jid, password, cafile):
        super().__init__(jid, password, cafile, mechanism=MECHANISM)
        self.register_plugin("xep_0077")
        self.registered = asyncio.get_event_loop().create_future()
        self.add_event_handler("register", self._register)

    async def _register(self, form):
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        try:
            await iq.send(timeout=TIMEOUT)
        except IqError as e:
            _settle(self.registered, (e.iq["error"]["condition"], e.iq["error"]["type"]))
            return
        _settle(self.registered, None)


async def register(server, jid, password):
    """Register C{jid} in-band; return (registration outcome, whether it then logged in)."""
    client = Registrant(jid, password, server.certificate)
    logged_in = await connect(client, server)
    outcome = await asyncio.wait_for(client.registered, TIMEOUT)
    client.disconnect()
    await asyncio.wait_for(client.ended, TIMEOUT)
    return outcome, logged_in


async def cannot_login(server, jid, password):
    with pytest.raises(AssertionError, match="could not log in"):
        await login(server, jid, password, MECHANISM)


def test_register_conflict_then_new_account_then_rate_limit(server):
    """A taken name is a conflict; a new account is registered and logs in at once and
    later; a second registration from the same address is refused (resource-constraint)."""
    async def scenario():
        outcome, logged_in = await register(server, "alice@localhost/r", "not alices")
        assert (outcome, logged_in) == (("conflict", "cancel"), False)

        outcome, logged_in = await register(server, "newbie@localhost/r",
                                            REGISTERED_PASSWORD)
        assert (outcome, logged_in) == (None, True)
        client = await login(server, "newbie@localhost/again", REGISTERED_PASSWORD)
        assert str(client.boundjid) == "newbie@localhost/again"
        await close(client)

        outcome, logged_in = await register(server, "second@localhost/r", PASSWORD)
        assert (outcome, logged_in) == (("resource-constraint", "wait"), False)
        await cannot_login(server, "second@localhost/r", PASSWORD)
    run(scenario())
    for _ in server.lines_until(lambda line: "registered newbie@localhost in-band" in line):
        pass
    assert REGISTERED_PASSWORD not in server.log()


def test_no_registration_before_tls(server):
    """A registration IQ on a stream without TLS ends it with not-authorized, unanswered."""
    header = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
              b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(header + f"<iq type='get' id='r'><query xmlns='{NS_REGISTER}'/>"
                           f"</iq>".encode())
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    assert NS_REGISTER_FEATURE.encode() not in received   # only STARTTLS before TLS
    assert b"<not-authorized xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>" in received
    assert b"<query" not in received


def test_change_password(server):
    """A user changes its password in-band: the new one logs in, the old one no longer."""
    async def scenario():
        client = await login(server, "bob@localhost/pw", PASSWORD)
        client.register_plugin("xep_0077")
        info = await client.plugin["xep_0077"].get_registration(jid="localhost",
                                                                timeout=TIMEOUT)
        assert info["register"]["registered"]
        assert info["register"]["username"] == "bob"
        await client.plugin["xep_0077"].change_password(NEW_PASSWORD, timeout=TIMEOUT)
        await close(client)
        client = await login(server, "bob@localhost/new", NEW_PASSWORD)
        await close(client)
        await cannot_login(server, "bob@localhost/old", PASSWORD)
    run(scenario())


def test_remove_account(server):
    """Removing the account answers the request, ends every session of the account with
    not-authorized, and the account can no longer log in."""
    async def scenario():
        phone = await login(server, "carol@localhost/phone", PASSWORD)
        laptop = await login(server, "carol@localhost/laptop", PASSWORD)
        phone.register_plugin("xep_0077")
        await phone.plugin["xep_0077"].cancel_registration(timeout=TIMEOUT)
        await asyncio.wait_for(asyncio.gather(phone.ended, laptop.ended), TIMEOUT)
        for client in (phone, laptop):
            assert [e["condition"] for e in client.stream_errors] == ["not-authorized"]
        await cannot_login(server, "carol@localhost/again", PASSWORD)
    run(scenario())


def test_registration_off_by_default(closed_server):
    """With the defaults no <register/> feature is offered and a registration attempt is
    answered service-unavailable; the stream stays up and login still works."""
    with RawClient(closed_server.port, closed_server.certificate) as raw:
        raw.open_stream()
        features = raw.starttls()
        assert features.find(f"{{{NS_REGISTER_FEATURE}}}register") is None
        for type_, payload in [("get", ""), ("set", "<username>x</username>"
                                                    "<password>y</password>")]:
            raw.send(f"<iq type='{type_}' id='r-{type_}'><query xmlns='{NS_REGISTER}'>"
                     f"{payload}</query></iq>")
            reply = raw.expect("{jabber:client}iq")
            assert (reply.get("type"), reply.get("id")) == ("error", f"r-{type_}")
            assert reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}"
                              "service-unavailable") is not None
    closed_server.adduser("dora@localhost", PASSWORD)

    async def scenario():
        client = await login(closed_server, "dora@localhost/r", PASSWORD)
        await close(client)
        await cannot_login(closed_server, "x@localhost/r", "y")
    run(scenario())


def test_registration_feature_offered_when_on(server):
    """With registration on, <register/> is offered after STARTTLS, before SASL."""
    with RawClient(server.port, server.certificate) as raw:
        raw.open_stream()
        features = raw.starttls()
        assert features.find(f"{{{NS_REGISTER_FEATURE}}}register") is not None
        with pytest.raises(StreamClosed):   # nothing else to do before authenticating
            raw.send("<message to='alice@localhost'/>")
            raw.next_element()


def test_server_caps_match_disco(server):
    """slixmpp sees <c/> in the stream features, and its own XEP-0115 code hashes the
    server's disco#info for node#ver to that same ver."""
    async def scenario():
        client = Client("alice@localhost/caps-server", PASSWORD, server.certificate)
        client.register_plugin("xep_0115")
        advertised = asyncio.get_event_loop().create_future()
        client.add_event_handler(
            "entity_caps",
            lambda presence: _settle(advertised, dict(presence["caps"].values))
            if presence["from"] == "localhost" else None)
        assert await connect(client, server)
        caps = await asyncio.wait_for(advertised, TIMEOUT)
        assert (caps["hash"], caps["node"]) == ("sha-1", CAPS_NODE)
        info = await client.plugin["xep_0030"].get_info(
            jid="localhost", node=f"{CAPS_NODE}#{caps['ver']}", timeout=TIMEOUT)
        assert info["disco_info"]["node"] == f"{CAPS_NODE}#{caps['ver']}"
        assert client.plugin["xep_0115"].generate_verstring(info["disco_info"],
                                                           "sha-1") == caps["ver"]
        assert NS_CAPS in info["disco_info"]["features"]
        await close(client)
    run(scenario())


def test_client_caps_are_verified(server):
    """A client's caps presence makes the server ask it for node#ver; the answer verifies
    and the ver is cached. Observed in the server's debug log: the cache has no other
    outside view, and a test-only query would be a backdoor."""
    async def scenario():
        client = await login(server, "alice@localhost/caps-client", PASSWORD, presence=False)
        client.register_plugin("xep_0115")
        await client.plugin["xep_0115"].update_caps(broadcast=False)
        ver = await client.plugin["xep_0115"].get_verstring()
        client.send_presence()
        line = await asyncio.to_thread(_log_line, server,
                                       f"caps {ver} verified from alice@localhost/caps-client")
        assert "features" in line
        await close(client)
    run(scenario())


def _log_line(server, text):
    found = []
    for line in server.lines_until(lambda line: text in line):
        found.append(line)
    return found[-1]
