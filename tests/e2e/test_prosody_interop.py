"""
Interop with Prosody (Debian's prosody package) as the second domain on loopback.

jabberapp serves ja.example, Prosody serves pro.example. Both find each other the way servers
on the Internet do -- _xmpp-server._tcp SRV records, then A records -- from a test DNS server
on a loopback port (tests/e2e/dnsserver.py; see tests/e2e/prosody.py for why). Names under
.example, because libunbound answers every name under .test itself (NXDOMAIN, RFC 6761).

Variants: dialback over TLS with untrusted self-signed certificates (each side dials the
other back); certificates trusted on both sides with dialback switched off (SASL EXTERNAL in
both directions); and trusted certificates plus Prosody's XEP-0288 module (mod_s2s_bidi), so
that everything -- Prosody's answers and its own stanzas -- travels on the one stream
jabberapp opened.
"""
import asyncio
import os

import pytest

from jabberapp import tls
from tests.e2e.harness import TIMEOUT, ServerProcess, close, free_port, login, run
from tests.e2e.prosody import DNSProcess, ProsodyProcess, prosody_missing

PASSWORD = "interop pässword"

VARIANTS = {
    # (jabberapp [s2s] options, Prosody options)
    "dialback": ("", {}),
    "external": ("trust_self_signed = pro.example\nallow_dialback = no",
                 {"cafile": "ja", "secure_auth": True}),
    "bidi": ("trust_self_signed = pro.example",
             {"cafile": "ja", "modules": ("s2s_bidi",)}),
}


@pytest.fixture(scope="module")
def prosody_available():
    missing = prosody_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Prosody interop must run in CI: {missing}")
        pytest.skip(missing)


@pytest.fixture(params=sorted(VARIANTS))
def federation(request, prosody_available, tmp_path):
    variant = request.param
    ja_options, prosody_options = VARIANTS[variant]
    ja_s2s, pro_s2s = free_port(), free_port()
    (tmp_path / "ja").mkdir()
    ja_cert, _ = tls.ensure_self_signed(str(tmp_path / "ja" / "data"), "ja.example")
    pro_cert, pro_key = tls.ensure_self_signed(str(tmp_path / "pro-certs"), "pro.example")
    records = [f"SRV _xmpp-server._tcp.ja.example 0 5 {ja_s2s} ja.example",
               "A ja.example 127.0.0.1",
               f"SRV _xmpp-server._tcp.pro.example 0 5 {pro_s2s} pro.example",
               "A pro.example 127.0.0.1"]
    with DNSProcess(records) as dns:
        options = dict(prosody_options)
        if options.get("cafile") == "ja":
            options["cafile"] = ja_cert
        prosody = ProsodyProcess(tmp_path / "pro", "pro.example", dns.port, pro_cert, pro_key,
                                 s2s_port=pro_s2s, **options)
        prosody.adduser("pat", PASSWORD)
        jabberapp = ServerProcess(tmp_path / "ja", hosts=("ja.example",), s2s_port=ja_s2s,
                                  s2s=f"dns_servers = 127.0.0.1:{dns.port}\n{ja_options}")
        jabberapp.adduser("alice@ja.example", PASSWORD)
        with prosody, jabberapp:
            yield variant, jabberapp, prosody


async def presence_from(client, jid_prefix):
    while True:
        presence = await asyncio.wait_for(client.presences.get(), TIMEOUT)
        if str(presence["from"]).startswith(jid_prefix) and presence["type"] in (
                "available", "chat", "away", "dnd", "xa", ""):
            return presence


async def message_from(client, jid_prefix):
    while True:
        message = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if str(message["from"]).startswith(jid_prefix):
            return message


async def connect(server, jid):
    client = await login(server, jid, PASSWORD, presence=False)
    client.presences = asyncio.Queue()
    client.add_event_handler("presence_available", client.presences.put_nowait)
    client.register_plugin("xep_0199")
    return client


def test_jabberapp_and_prosody_users_federate(federation):
    """A jabberapp user and a Prosody user subscribe to each other, see each other's
    presence, exchange messages in both directions and ping each other's server."""
    variant, jabberapp, prosody = federation

    async def scenario():
        alice = await connect(jabberapp, "alice@ja.example/desk")
        pat = await connect(prosody, "pat@pro.example/phone")
        alice.send_presence()
        pat.send_presence()
        # slixmpp approves subscription requests and subscribes back on its own: one
        # request sets up the subscription in both directions.
        alice.send_presence(pto="pat@pro.example", ptype="subscribe")
        seen_by_alice = await presence_from(alice, "pat@pro.example/phone")
        seen_by_pat = await presence_from(pat, "alice@ja.example/desk")
        assert seen_by_alice is not None and seen_by_pat is not None

        alice.send_message(mto="pat@pro.example", mbody="hi from jabberapp", mtype="chat")
        message = await message_from(pat, "alice@ja.example/desk")
        assert message["body"] == "hi from jabberapp"
        pat.send_message(mto="alice@ja.example/desk", mbody="hi from prosody", mtype="chat")
        message = await message_from(alice, "pat@pro.example/phone")
        assert message["body"] == "hi from prosody"

        assert await alice.plugin["xep_0199"].ping("pro.example", timeout=TIMEOUT) >= 0
        assert await pat.plugin["xep_0199"].ping("ja.example", timeout=TIMEOUT) >= 0
        await close(alice, pat)

    try:
        run(scenario())
    finally:
        # Stopping collects the rest of both logs (for the assertions and for debugging).
        jabberapp.stop()
        prosody.stop()
        print("---- prosody ----\n" + prosody.log()[-30000:])
        print("---- jabberapp ----\n" + jabberapp.log()[-30000:])
    up = [line for line in jabberapp.log().splitlines() if "s2s link up" in line]
    expected = "dialback" if variant == "dialback" else "SASL EXTERNAL"
    assert any("outbound ja.example -> pro.example" in line for line in up), up
    assert all(f"auth {expected}" in line and "TLSv1." in line for line in up), up
    if variant == "bidi":
        # One stream, opened by jabberapp, carried both directions.
        assert len(up) == 1 and "bidirectional" in up[0], up
    else:
        assert any("inbound ja.example <- pro.example" in line for line in up), up
