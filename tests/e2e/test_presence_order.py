"""
End to end (issue 11 §9): presence sent to a user's bare JID right after both sides' initial
presence, as aioxmpp's presence tests do, over real sockets with the raw client.

What aioxmpp's test missed was its own race: its client reports "connected" once the
initial presence is written to its buffer, so the other client's presence to the bare JID
can reach the server first; the server then has no available resource to deliver it to and
ignores it (RFC 6121 §8.5.2.2.1, as Prosody does). Against Prosody the test passes because
Prosody offers stream management and aioxmpp then waits for the server's ack of the initial
presence. These tests wait the way an ack would (for the server's echo of the recipient's
own initial presence), so what they check is the server: the presence is delivered, and a
contact sees a user's presences in the order they were sent, also when the user's roster
must first be read from storage.
"""
import os

import pytest
from lxml import etree

from tests.e2e.harness import ServerProcess, ctl
from tests.e2e.rawclient import NS_CLIENT, RawClient

DOMAIN = "localhost"
PASSWORD = "order pw"
ROUNDS = 5
PRESENCE = f"{{{NS_CLIENT}}}presence"
SHOW = f"{{{NS_CLIENT}}}show"
CONTACTS = [f"friend{i}" for i in range(ROUNDS)]
STRANGERS = [f"stranger{i}" for i in range(2 * ROUNDS)]


def _accounts_file():
    """
    XEP-0227: bob, contacts whose rosters list him as subscribed to their presence
    ('from'), and strangers. bob's own roster does not list the contacts, so his login
    sends them no probes: answering a probe would read their rosters into the server's
    cache, and the test needs each contact's roster still in storage when it logs in.
    """
    def user(name, items=()):
        roster = "".join(f"<item jid='{jid}@{DOMAIN}' subscription='from'/>" for jid in items)
        return (f"<user name='{name}' password='{PASSWORD}'>"
                f"<query xmlns='jabber:iq:roster'>{roster}</query></user>")
    users = [user("bob")]
    users += [user(name, ["bob"]) for name in CONTACTS]
    users += [user(name) for name in STRANGERS]
    return (f"<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0'>"
            f"<host jid='{DOMAIN}'>{''.join(users)}</host></server-data>")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Accounts imported before the start: no roster is in the server's cache yet."""
    directory = tmp_path_factory.mktemp("presence-order")
    server = ServerProcess(directory)
    path = os.path.join(str(directory), "accounts.xml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_accounts_file())
    result = ctl(server.config_path, "import", path)
    assert result.returncode == 0, result.stderr
    with server:
        yield server


def login(server, username, resource):
    """A raw client logged in as C{username} and bound to C{resource}; (client, full JID)."""
    client = RawClient(server.port, server.certificate, DOMAIN)
    try:
        client.open_stream()
        client.starttls()
        client.authenticate("SCRAM-SHA-256", username, PASSWORD)
        jid = client.bind(resource)
    except BaseException:
        client.close()
        raise
    return client, jid


def next_presence(client, sender):
    """The next presence C{client} receives from C{sender} (a full JID); others skipped.
    Bounded: the raw client's reads time out."""
    while True:
        el = client.next_element()
        if el.tag == PRESENCE and el.get("from") == sender:
            return el


def shown(presence):
    """The <show/> of an available presence ('available' without one), else its type."""
    if presence.get("type") is not None:
        return presence.get("type")
    return presence.findtext(SHOW) or "available"


def available(client, jid):
    """Initial presence; returns once the server has echoed it (RFC 6121 §4.2.2): from then
    on the server counts C{jid} as an available resource."""
    client.send("<presence/>")
    assert shown(next_presence(client, jid)) == "available"


def test_presence_to_bare_jid_after_both_initial_presences(server):
    """Two users who are not contacts: both send initial presence, then one sends presence
    to the other's bare JID, pipelined right behind its own initial presence; the other
    receives it every time."""
    for round_ in range(ROUNDS):
        sender, sender_jid = login(server, STRANGERS[2 * round_], "a")
        recipient, recipient_jid = login(server, STRANGERS[2 * round_ + 1], "b")
        bare = recipient_jid.partition("/")[0]
        try:
            available(recipient, recipient_jid)
            sender.send(f"<presence/><presence to='{bare}'><show>dnd</show></presence>")
            got = next_presence(recipient, sender_jid)
            assert (shown(got), got.get("to")) == ("dnd", bare), \
                f"round {round_}: {etree.tostring(got)!r}"
        finally:
            sender.close()
            recipient.close()


def test_contact_sees_presences_in_the_order_sent(server):
    """A contact logs in (its roster not cached: the broadcast waits for a read from
    storage) and sends initial presence then presence to bob's bare JID in one write; bob
    receives them in that order, so the last presence he keeps is the directed one."""
    bob, bob_jid = login(server, "bob", "b")
    try:
        available(bob, bob_jid)
        for round_, name in enumerate(CONTACTS):
            contact, contact_jid = login(server, name, "c")
            try:
                contact.send(f"<presence><show>away</show></presence>"
                             f"<presence to='bob@{DOMAIN}'><show>dnd</show></presence>")
                seen = [shown(next_presence(bob, contact_jid)) for _ in range(2)]
                assert seen == ["away", "dnd"], f"round {round_}: bob saw {seen}"
            finally:
                contact.close()
    finally:
        bob.close()
