"""Unit tests of the XEP-0402 §5.3 bridge between private XML bookmarks and PEP."""
from jabberapp.extensions.private import private_storage
from tests.extensions.pubsub.helpers import NS_EVENT, NS_PUBSUB, PubSubTestCase

ALICE = "alice@example.org/legacy"
ALICE2 = "alice@example.org/modern"
OWN = "alice@example.org"
NODE = "urn:xmpp:bookmarks:1"
LEGACY = "storage:bookmarks"
STORAGE = (f"<storage xmlns='{LEGACY}'>"
           "<conference jid='team@conference.example.org' name='Team' autojoin='true'>"
           "<nick>al</nick><password>pw</password></conference>"
           "<conference jid='lobby@conference.example.org' autojoin='0'/>"
           "<url name='web' url='https://example.org/'/></storage>")


class BookmarksCompatTests(PubSubTestCase):
    def setUp(self):
        super().setUp()
        self.host.install(private_storage)

    def private(self, type_, inner, sender=ALICE):
        return self.iq(sender, type_, f"<query xmlns='jabber:iq:private'>{inner}</query>",
                       to=OWN)

    def pep_items(self):
        reply = self.ok(ALICE2, "get", self.pubsub(f"<items node='{NODE}'/>"), to=OWN)
        return {i.get("id"): i[0] for i in reply.iter(f"{{{NS_PUBSUB}}}item")}

    def legacy(self):
        reply = self.private("get", f"<storage xmlns='{LEGACY}'/>")
        self.assertEqual(reply.get("type"), "result")
        return {c.get("jid"): c for c in reply.iter(f"{{{LEGACY}}}conference")}

    def test_compat_feature(self):
        """The account advertises urn:xmpp:bookmarks:1#compat to its owner."""
        reply = self.ok(ALICE, "get",
                        "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=OWN)
        self.assertIn(f"{NODE}#compat", {f.get("var") for f in reply[0]})

    def test_private_set_becomes_pep(self):
        """A private XML set of storage:bookmarks publishes XEP-0402 items, notifying."""
        self.bind(ALICE2, [f"{NODE}+notify"])
        self.assertEqual(self.private("set", STORAGE).get("type"), "result")
        items = self.pep_items()
        self.assertEqual(sorted(items), ["lobby@conference.example.org",
                                         "team@conference.example.org"])
        team = items["team@conference.example.org"]
        self.assertEqual((team.tag, team.get("name"), team.get("autojoin")),
                         (f"{{{NODE}}}conference", "Team", "true"))
        self.assertEqual(team.findtext(f"{{{NODE}}}nick"), "al")
        self.assertIsNone(items["lobby@conference.example.org"].get("autojoin"))
        self.assertEqual(len(self.events(ALICE2)), 2)
        conf = self.ok(ALICE, "get", self.pubsub(f"<configure node='{NODE}'/>", owner=True),
                       to=OWN)
        values = {f.get("var"): f.findtext("{jabber:x:data}value")
                  for f in conf.iter("{jabber:x:data}field")}
        self.assertEqual(values["pubsub#access_model"], "whitelist")
        # A second set retracts what is gone and leaves unchanged items alone.
        self.private("set", f"<storage xmlns='{LEGACY}'><conference "
                            "jid='team@conference.example.org' name='Team' autojoin='true'>"
                            "<nick>al</nick><password>pw</password></conference></storage>")
        self.assertEqual(list(self.pep_items()), ["team@conference.example.org"])
        retracts = [e for e in self.events(ALICE2)
                    if e.find(f".//{{{NS_EVENT}}}retract") is not None]
        self.assertEqual(len(retracts), 1)
        self.assertEqual(len(self.events(ALICE2)), 3)

    def test_pep_seen_in_private(self):
        """XEP-0402 items published over PEP are what a private XML get returns."""
        options = {"persist_items": "true", "max_items": "max",
                   "send_last_published_item": "never", "access_model": "whitelist"}
        self.do_publish(NODE, f"<conference xmlns='{NODE}' name='Ops' autojoin='1'>"
                              "<nick>alice</nick></conference>",
                        item_id="ops@conference.example.org", sender=ALICE2,
                        options=options, to=OWN)
        [(jid, conference)] = self.legacy().items()
        self.assertEqual((jid, conference.get("name"), conference.get("autojoin")),
                         ("ops@conference.example.org", "Ops", "true"))
        self.assertEqual(conference.findtext(f"{{{LEGACY}}}nick"), "alice")

    def test_other_private_data_untouched(self):
        """Other private XML, and requests for someone else's, go to private storage."""
        self.private("set", "<prefs xmlns='urn:test:prefs'>x</prefs>")
        reply = self.private("get", "<prefs xmlns='urn:test:prefs'/>")
        self.assertEqual(reply[0][0].text, "x")
        reply = self.iq("bob@example.org/r", "get",
                        f"<query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'/>"
                        "</query>", to=OWN)
        self.assertEqual(reply.get("type"), "error")

    def test_empty_and_legacy_data_migrated(self):
        """Without a PEP node a get answers from private XML; the owner's first XEP-0402
        retrieval moves those bookmarks to PEP."""
        self.assertEqual(self.legacy(), {})
        self.host.unload("pep")
        self.private("set", STORAGE)     # stored by the private extension itself
        self.host.install(pep_extension())
        self.assertEqual(sorted(self.legacy()), ["lobby@conference.example.org",
                                                 "team@conference.example.org"])
        items = self.pep_items()
        self.assertEqual(items["team@conference.example.org"].findtext(f"{{{NODE}}}password"),
                         "pw")
        self.assertEqual(len(items), 2)

    def test_bad_conference(self):
        """A conference without a valid room JID is not-acceptable and stores nothing."""
        reply = self.private("set", f"<storage xmlns='{LEGACY}'><conference name='x'/>"
                                    "</storage>")
        self.assertEqual(reply.get("type"), "error")
        self.assertEqual(self.legacy(), {})


def pep_extension():
    from jabberapp.extensions.pubsub.plugin import pep
    return pep
