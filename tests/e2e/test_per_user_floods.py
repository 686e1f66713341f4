"""End to end (issue 11 §3): no per-user flood wedges an account. Each test floods one
account over a real socket -- roster sets past the roster limit, block commands past the
blocklist limit, private XML, vCards, PEP publishes past the node limit, offline messages
past the quota -- all pipelined without waiting, then makes a normal request on that account
and requires an answer. The floods are bounded; every wait is for a reply."""

import pytest
from lxml import etree

from tests.e2e.harness import ServerProcess
from tests.e2e.rawclient import NS_CLIENT, RawClient

PASSWORD = "flood pw"
LIMIT = 5           # roster and blocklist entries
FLOOD = 600         # stanzas per flood: far more than a DeferredLock could recurse through
MAX_MESSAGES = 10
MAX_NODES = 3
USERS = ("roster", "rostercontact", "blocking", "private", "vcard", "pep", "pepnodes",
         "offline", "sender")

NS_ROSTER = "jabber:iq:roster"
NS_BLOCKING = "urn:xmpp:blocking"
NS_PRIVATE = "jabber:iq:private"
NS_VCARD = "vcard-temp"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
IQ = f"{{{NS_CLIENT}}}iq"
MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("floods"), config=f"""
        [extension:roster]
        max_items = {LIMIT}
        [extension:blocking]
        max_items = {LIMIT}
        [extension:private]
        max_size = 1024
        [extension:vcard]
        max_size = 1024
        [extension:offline]
        max_messages = {MAX_MESSAGES}
        [extension:pep]
        max_nodes = {MAX_NODES}
        """)
    for user in USERS:
        server.adduser(f"{user}@localhost", PASSWORD)
    # The floods make the server log hundreds of lines (a refused offline message is one
    # each): the harness reads its output as it comes, so the pipe never fills.
    with server:
        yield server


class Account:
    """A logged-in raw connection that keeps what it read while waiting for something."""

    def __init__(self, server, user, presence=True):
        self.jid = f"{user}@localhost"
        self.raw = RawClient(server.port, server.certificate)
        self.raw.open_stream()
        self.raw.starttls()
        self.raw.authenticate("SCRAM-SHA-256", user, PASSWORD)
        self.raw.bind("flood")
        self.seen = []
        if presence:
            self.raw.send("<presence/>")

    def send(self, stanzas):
        """Send C{stanzas} (a list of XML strings) in one write: a pipelined flood."""
        self.raw.send("".join(stanzas))

    def wait(self, predicate, what):
        """The first element read (before or now) that satisfies C{predicate}."""
        for el in self.seen:
            if predicate(el):
                self.seen.remove(el)
                return el
        while True:
            try:
                el = self.raw.next_element()
            except TimeoutError:
                raise AssertionError(f"{self.jid}: no answer: {what}") from None
            if predicate(el):
                return el
            self.seen.append(el)

    def answers(self, ids):
        """The IQ replies to C{ids}, by id, once every one has come."""
        wanted, got = set(ids), {}
        while wanted:
            el = self.wait(lambda el: el.tag == IQ and el.get("id") in wanted,
                           f"{len(wanted)} IQ replies, e.g. {sorted(wanted)[:3]}")
            wanted.discard(el.get("id"))
            got[el.get("id")] = el
        self.seen = [el for el in self.seen if el.tag != IQ or el.get("type") != "set"]
        return got

    def request(self, stanza, id_):
        """Send one IQ and return its reply."""
        self.raw.send(stanza)
        return self.answers([id_])[id_]

    def close(self):
        self.raw.close()


def condition(reply):
    """The defined condition of an error reply, or None for a result."""
    if reply.get("type") == "result":
        return None
    error = reply.find(f"{{{NS_CLIENT}}}error")
    return next(etree.QName(c).localname for c in error
                if etree.QName(c).namespace == NS_STANZAS and etree.QName(c).localname != "text")


def flood_and_count(account, stanzas):
    """Send the IQs C{stanzas} ({id: xml}) at once; the conditions answered, counted."""
    account.send(list(stanzas.values()))
    counts = {}
    for reply in account.answers(stanzas).values():
        counts[condition(reply)] = counts.get(condition(reply), 0) + 1
    return counts


def test_roster_flood_past_the_limit(server):
    """A flood of roster sets past max_items is refused item by item, and the account's
    roster still answers: a rename, a removal, a get, and a subscription request from
    another user are all served (it used to wedge until restart with RecursionError)."""
    account = Account(server, "roster")
    contact = Account(server, "rostercontact")
    try:
        sets = {f"r{n}": f"<iq type='set' id='r{n}'><query xmlns='{NS_ROSTER}'>"
                         f"<item jid='c{n}@example.net'/></query></iq>"
                for n in range(FLOOD)}
        assert flood_and_count(account, sets) == {None: LIMIT, "not-allowed": FLOOD - LIMIT}

        rename = account.request(f"<iq type='set' id='rename'><query xmlns='{NS_ROSTER}'>"
                                 f"<item jid='c0@example.net' name='renamed'/></query></iq>",
                                 "rename")
        assert condition(rename) is None
        remove = account.request(f"<iq type='set' id='remove'><query xmlns='{NS_ROSTER}'>"
                                 f"<item jid='c1@example.net' subscription='remove'/>"
                                 f"</query></iq>", "remove")
        assert condition(remove) is None
        roster = account.request(f"<iq type='get' id='get'><query xmlns='{NS_ROSTER}'/></iq>",
                                 "get")
        items = roster.findall(f"{{{NS_ROSTER}}}query/{{{NS_ROSTER}}}item")
        assert len(items) == LIMIT - 1
        assert {i.get("jid"): i.get("name") for i in items}["c0@example.net"] == "renamed"

        contact.send([f"<presence to='{account.jid}' type='subscribe'/>"])
        request = account.wait(lambda el: el.tag == PRESENCE and el.get("type") == "subscribe",
                               "the subscription request")
        assert request.get("from") == contact.jid
    finally:
        account.close()
        contact.close()


def test_blocklist_flood_past_the_limit(server):
    """A flood of block commands past the blocklist limit is refused one by one, and the
    account still unblocks and answers its blocklist."""
    account = Account(server, "blocking")
    try:
        blocks = {f"b{n}": f"<iq type='set' id='b{n}'><block xmlns='{NS_BLOCKING}'>"
                           f"<item jid='spam{n}@example.net'/></block></iq>"
                  for n in range(FLOOD)}
        assert flood_and_count(account, blocks) == {None: LIMIT,
                                                    "policy-violation": FLOOD - LIMIT}
        unblock = account.request(f"<iq type='set' id='unblock'><unblock xmlns='{NS_BLOCKING}'>"
                                  f"<item jid='spam0@example.net'/></unblock></iq>", "unblock")
        assert condition(unblock) is None
        blocklist = account.request(f"<iq type='get' id='list'>"
                                    f"<blocklist xmlns='{NS_BLOCKING}'/></iq>", "list")
        assert len(blocklist.findall(f"{{{NS_BLOCKING}}}blocklist/{{{NS_BLOCKING}}}item")) \
            == LIMIT - 1
    finally:
        account.close()


def test_private_xml_flood(server):
    """A flood of private XML sets, most past max_size, is answered set by set, and the
    account still stores and returns its private XML."""
    account = Account(server, "private")
    try:
        sets = {f"p{n}": f"<iq type='set' id='p{n}'><query xmlns='{NS_PRIVATE}'>"
                         f"<n{n} xmlns='urn:example:flood'>{'x' * 100}</n{n}></query></iq>"
                for n in range(FLOOD)}
        counts = flood_and_count(account, sets)
        assert set(counts) == {None, "not-acceptable"} and sum(counts.values()) == FLOOD
        stored = account.request(f"<iq type='set' id='small'><query xmlns='{NS_PRIVATE}'>"
                                 f"<n0 xmlns='urn:example:flood'>kept</n0></query></iq>",
                                 "small")
        assert condition(stored) is None
        got = account.request(f"<iq type='get' id='get'><query xmlns='{NS_PRIVATE}'>"
                              f"<n0 xmlns='urn:example:flood'/></query></iq>", "get")
        assert got.findtext(f"{{{NS_PRIVATE}}}query/{{urn:example:flood}}n0") == "kept"
    finally:
        account.close()


def test_vcard_flood(server):
    """A flood of vCard sets, every other one past max_size, is answered set by set, and
    the account's vCard is then served."""
    account = Account(server, "vcard")
    try:
        sets = {f"v{n}": f"<iq type='set' id='v{n}'><vCard xmlns='{NS_VCARD}'>"
                         f"<FN>{'x' * (2000 if n % 2 else 10)}{n}</FN></vCard></iq>"
                for n in range(FLOOD)}
        assert flood_and_count(account, sets) == {None: FLOOD // 2,
                                                  "not-acceptable": FLOOD // 2}
        card = account.request(f"<iq type='get' id='get'><vCard xmlns='{NS_VCARD}'/></iq>",
                               "get")
        assert card.findtext(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}FN") == f"{'x' * 10}{FLOOD - 2}"
    finally:
        account.close()


def publish(n, node):
    """A PEP publish of item i<n> to C{node}, id e<n>."""
    return (f"<iq type='set' id='e{n}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'>"
            f"<item id='i{n}'><entry xmlns='urn:example:flood'>{n}</entry></item></publish>"
            f"</pubsub></iq>")


def test_pep_publish_flood(server):
    """A flood of PEP publishes, most to new nodes past max_nodes, is answered publish by
    publish, and the account's items are then retrieved."""
    account = Account(server, "pep")
    try:
        for n in range(MAX_NODES):      # the nodes it may have, one at a time
            assert condition(account.request(publish(n, f"urn:example:flood:{n}"),
                                             f"e{n}")) is None
        publishes = {f"e{n}": publish(n, f"urn:example:flood:{n % 50}")
                     for n in range(MAX_NODES, FLOOD)}
        allowed = sum(1 for n in range(MAX_NODES, FLOOD) if n % 50 < MAX_NODES)
        assert flood_and_count(account, publishes) == {
            None: allowed, "policy-violation": len(publishes) - allowed}
        node = "urn:example:flood:0"
        items = account.request(f"<iq type='get' id='items'><pubsub xmlns='{NS_PUBSUB}'>"
                                f"<items node='{node}' max_items='1'/></pubsub></iq>", "items")
        assert condition(items) is None
        (item,) = items.iterfind(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}items/"
                                 f"{{{NS_PUBSUB}}}item")
        assert item.get("id") == f"i{FLOOD - 50}"
    finally:
        account.close()


def test_pep_node_limit_under_pipelined_creation(server):
    """Publishes to new nodes sent together create no more than max_nodes nodes."""
    account = Account(server, "pepnodes")
    try:
        publishes = {f"e{n}": publish(n, f"urn:example:new:{n}") for n in range(10)}
        assert flood_and_count(account, publishes) == {
            None: MAX_NODES, "policy-violation": 10 - MAX_NODES}
    finally:
        account.close()


def test_offline_message_flood(server):
    """A flood of messages to an offline account past its quota is stored up to
    max_messages and refused after; the account then gets its stored messages at login
    and live messages after them."""
    sender = Account(server, "sender")
    try:
        sender.send([f"<message to='offline@localhost' type='chat' id='m{n}'>"
                     f"<body>{n}</body></message>" for n in range(FLOOD)])
        for _ in range(FLOOD - MAX_MESSAGES):
            error = sender.wait(lambda el: el.tag == MESSAGE and el.get("type") == "error",
                                "the quota errors")
            assert condition(error) == "service-unavailable"
        account = Account(server, "offline")
        try:
            bodies = [account.wait(lambda el: el.tag == MESSAGE, "a stored message")
                      .findtext(f"{{{NS_CLIENT}}}body") for _ in range(MAX_MESSAGES)]
            assert bodies == [str(n) for n in range(MAX_MESSAGES)]
            sender.send(["<message to='offline@localhost' type='chat'><body>live</body>"
                         "</message>"])
            live = account.wait(lambda el: el.tag == MESSAGE, "the live message")
            assert live.findtext(f"{{{NS_CLIENT}}}body") == "live"
        finally:
            account.close()
    finally:
        sender.close()
