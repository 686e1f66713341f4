"""End to end: XEP-0313 message archives with slixmpp's xep_0313 plugin and raw queries."""
import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e.harness import TIMEOUT, Client, ServerProcess, close, run

PASSWORD = "mam pw"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("mam"), config="""
        [extension:mam]
        max_page_size = 250
        """)
    for user in ("alice", "bob", "carol", "dave"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


async def login(server, jid):
    """A logged-in slixmpp client with the MAM plugin, available."""
    client = Client(jid, PASSWORD, server.certificate)
    client.register_plugin("xep_0313")
    client.connect("127.0.0.1", server.port)
    await asyncio.wait_for(client.started, TIMEOUT)
    client.send_presence()
    return client


async def bodies(client, count):
    """The next C{count} chat messages with a body that C{client} receives live."""
    got = []
    while len(got) < count:
        message = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if message["body"] and message["type"] == "chat":
            got.append(message)
    return got


def forwarded_body(result_message):
    """The body of the message a MAM result carries."""
    return result_message["mam_result"]["forwarded"]["stanza"]["body"]


async def raw_query(client, inner, to=None, queryid="raw"):
    """Send a MAM query with the raw XML C{inner}; (IQ result, the results received)."""
    results = []
    handler = Callback(f"mam {queryid}", MatchXPath(f"{{jabber:client}}message/"
                                                    f"{{{NS_MAM}}}result"),
                       lambda message: results.append(message))
    client.register_handler(handler)
    iq = client.make_iq_set(ito=to)
    iq.append(ET.fromstring(f"<query xmlns='{NS_MAM}' queryid='{queryid}'>{inner}</query>"))
    try:
        answer = await iq.send(timeout=TIMEOUT)
    finally:
        client.remove_handler(f"mam {queryid}")
    return answer, [m for m in results if m["mam_result"]["queryid"] == queryid]


def form(**fields):
    parts = ["<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
             f"<value>{NS_MAM}</value></field>"]
    for var, value in fields.items():
        parts.append(f"<field var='{var}'><value>{value}</value></field>")
    return "".join(parts) + "</x>"


def test_new_device_pages_history_from_the_end(server):
    """Two clients chat; a third resource logs in later and pages the whole history back
    from the end, in order; the ids match the stanza-ids the recipient got live."""
    async def scenario():
        alice = await login(server, "alice@localhost/phone")
        bob = await login(server, "bob@localhost/laptop")
        sent, stamps = [], []
        for n in range(23):
            if n % 3 == 2:
                bob.send_message(mto="alice@localhost", mbody=f"b{n}", mtype="chat")
                await bodies(alice, 1)
            else:
                alice.send_message(mto="bob@localhost", mbody=f"a{n}", mtype="chat")
                received = (await bodies(bob, 1))[0]
                stamp = received.xml.find(f"{{{NS_SID}}}stanza-id")
                assert stamp is not None and stamp.get("by") == "bob@localhost"
                stamps.append(stamp.get("id"))
            sent.append(f"{'b' if n % 3 == 2 else 'a'}{n}")
        tablet = await login(server, "alice@localhost/tablet")
        info = await tablet.plugin["xep_0030"].get_info(jid="alice@localhost")
        assert {NS_MAM, NS_MAM + "#extended"} <= set(info["disco_info"]["features"])
        assert "http://jabber.org/protocol/pubsub" in info["disco_info"]["features"]
        history = [m async for m in tablet.plugin["xep_0313"].iterate(reverse=True,
                                                                 rsm={"max": 5})]
        assert [forwarded_body(m) for m in reversed(history)] == sent
        # Bob's archive ids are the stanza-ids his client saw.
        bob_history = [m async for m in bob.plugin["xep_0313"].iterate(rsm={"max": 10})]
        assert len(bob_history) == 23
        assert [m["mam_result"]["id"] for m in bob_history
                if forwarded_body(m).startswith("a")] == stamps
        await close(alice, bob, tablet)
    run(scenario())


def test_full_text_search(server):
    """The XEP-0431 field finds messages by their words, whatever their case."""
    async def scenario():
        carol = await login(server, "carol@localhost/a")
        dave = await login(server, "dave@localhost/b")
        for body in ("Lunch at noon?", "the meeting moved", "LUNCH is cancelled"):
            carol.send_message(mto="dave@localhost", mbody=body, mtype="chat")
        await bodies(dave, 3)
        answer, results = await raw_query(
            dave, form(**{"{urn:xmpp:fulltext:0}fulltext": "lunch"}))
        assert [forwarded_body(r) for r in results] == ["Lunch at noon?", "LUNCH is cancelled"]
        fin = answer.xml.find(f"{{{NS_MAM}}}fin")
        assert fin.get("complete") == "true"
        await close(carol, dave)
    run(scenario())


def test_another_users_archive_is_forbidden(server):
    """A query, metadata or preferences request to someone else's archive is forbidden."""
    async def scenario():
        carol = await login(server, "carol@localhost/snoop")
        with pytest.raises(IqError) as raised:
            await carol.plugin["xep_0313"].retrieve(jid="alice@localhost")
        assert raised.value.condition == "forbidden"
        with pytest.raises(IqError) as raised:
            await carol.plugin["xep_0313"].get_archive_metadata(jid="alice@localhost")
        assert raised.value.condition == "forbidden"
        await close(carol)
    run(scenario())


def test_bad_paging_inputs(server):
    """Unknown ids, malformed forms and unknown fields get the errors the XEP names;
    an oversized page is reduced, not refused."""
    async def scenario():
        dave = await login(server, "dave@localhost/bad")
        carol = await login(server, "carol@localhost/c")
        carol.send_message(mto="dave@localhost", mbody="for the metadata", mtype="chat")
        await bodies(dave, 1)
        cases = [
            (f"<set xmlns='{NS_RSM}'><max>5</max><after>no-such-id</after></set>",
             "item-not-found"),
            (f"<set xmlns='{NS_RSM}'><max>-1</max></set>", "bad-request"),
            (form(start="last tuesday"), "bad-request"),
            (form(**{"include-groupchat": "true"}), "feature-not-implemented"),
        ]
        for inner, condition in cases:
            with pytest.raises(IqError) as raised:
                await raw_query(dave, inner)
            assert raised.value.condition == condition, inner
        answer, results = await raw_query(dave, f"<set xmlns='{NS_RSM}'><max>100000</max>"
                                                f"<before/></set>", queryid="big")
        assert answer["type"] == "result"
        metadata = await dave.plugin["xep_0313"].get_archive_metadata()
        assert metadata["mam_metadata"]["end"]["id"] == results[-1]["mam_result"]["id"]
        await close(dave, carol)
    run(scenario())
