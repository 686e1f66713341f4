"""RFC 6121 §2 roster get/set/remove, XEP-0237 versioning, the size limit and storage."""
from twisted.internet import defer
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import stanza as st
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.roster.extension import NS_PREAPPROVAL, NS_ROSTERVER, roster
from jabberapp.extensions.roster.interfaces import IRosterService
from jabberapp.extensions.roster.items import NS_ROSTER, Roster, RosterItem, RosterStore
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.jid import JID
from jabberapp.plugins import jabberapp_builtin
from jabberapp.storage.memory import MemoryStorage
from jabberapp.xml.ns import NS_DISCO_INFO
from tests.extensions.roster.helpers import (
    ITEM, QUERY, World, error_condition, error_text, presences, pushes)

ALICE = "alice@example.org/home"


def item_xml(jid="bob@example.org", name=None, groups=(), extra=""):
    attrs = f" jid='{jid}'" if jid is not None else ""
    if name is not None:
        attrs += f" name='{name}'"
    body = "".join(f"<group>{g}</group>" for g in groups)
    return f"<item{attrs}{extra}>{body}</item>"


class RosterIQTestCase(SynchronousTestCase):
    """alice with one interested resource, on a host with the roster extension."""

    options = {}

    def setUp(self):
        self.world = World(**self.options)
        self.host = self.world.host
        self.alice = self.world.login(ALICE)

    def roster_set(self, *items, sender=ALICE, to=None, iq_id="s1"):
        to_attr = f" to='{to}'" if to else ""
        self.host.receive(f"<iq type='set' id='{iq_id}' from='{sender}'{to_attr}>"
                          f"<query xmlns='{NS_ROSTER}'>{''.join(items)}</query></iq>")
        return self.reply(iq_id, sender)

    def roster_get(self, ver=None, sender=ALICE, iq_id="g1"):
        attr = "" if ver is None else f" ver='{ver}'"
        self.host.receive(f"<iq type='get' id='{iq_id}' from='{sender}'>"
                          f"<query xmlns='{NS_ROSTER}'{attr}/></iq>")
        return self.reply(iq_id, sender)

    def reply(self, iq_id, to):
        for stanza in reversed(self.host.sent):
            if stanza.tag == st.IQ and stanza.get("id") == iq_id and stanza.get("to") == to:
                return stanza
        self.fail(f"no reply to {iq_id}")

    def items(self, user="alice"):
        return self.world.roster(user).items

    def assertError(self, reply, condition):
        self.assertEqual((reply.get("type"), error_condition(reply)), ("error", condition))


class PluginTests(RosterIQTestCase):
    def test_interface(self):
        """The plugin object provides IPlugin and IExtension and is a built-in."""
        verifyObject(IExtension, roster)
        self.assertTrue(IPlugin.providedBy(roster))
        self.assertIs(jabberapp_builtin.roster, roster)
        self.assertEqual([o.name for o in roster.options], ["max_items"])

    def test_service(self):
        """The "roster" service provides IRosterService."""
        verifyObject(IRosterService, self.host.service("roster"))

    def test_disco_feature(self):
        """jabber:iq:roster is a disco feature of the host."""
        self.assertIn(NS_ROSTER, self.host.features)

    def test_stream_features_after_authentication(self):
        """<ver/> and <sub/> are advertised to authenticated streams only."""
        features = self.host.virtual_host.stream_features
        for feature in features:
            verifyObject(IStreamFeature, feature)

        class Stream:
            username = None

        self.assertEqual([f.advertise(Stream()) for f in features], [None, None])
        Stream.username = "alice"
        offered = [f.advertise(Stream()).tag for f in features]
        self.assertEqual(offered, [f"{{{NS_ROSTERVER}}}ver", f"{{{NS_PREAPPROVAL}}}sub"])


class GetTests(RosterIQTestCase):
    def test_empty(self):
        """An empty roster is an empty query."""
        reply = self.roster_get()
        self.assertEqual(reply.get("type"), "result")
        self.assertEqual(len(reply.find(QUERY)), 0)
        self.assertIsNone(reply.find(QUERY).get("ver"))

    def test_items(self):
        """Items carry jid, name, subscription, ask, approved and groups, sorted by JID."""
        self.roster_set(item_xml("bob@example.org", "Bob", ["Friends", "Work"]))
        self.world.set_state("alice", "bob@example.org", "From + Pending Out")
        self.world.set_state("alice", "carol@example.org", "None (pre-approved)")
        items = self.roster_get().find(QUERY).findall(ITEM)
        self.assertEqual([dict(i.attrib) for i in items], [
            {"jid": "bob@example.org", "name": "Bob", "subscription": "from",
             "ask": "subscribe"},
            {"jid": "carol@example.org", "subscription": "none", "approved": "true"}])
        self.assertEqual([g.text for g in items[0]], ["Friends", "Work"])

    def test_pending_in_is_not_an_item(self):
        """A request from someone not in the roster creates no roster item."""
        self.host.receive("<presence from='dave@remote.example' to='alice@example.org' "
                          "type='subscribe'/>")
        self.assertEqual(len(self.roster_get().find(QUERY)), 0)

    def test_other_users_roster_is_forbidden(self):
        """A roster get addressed to another user's JID is forbidden."""
        self.host.receive("<iq type='get' id='x' from='bob@example.org/b' "
                          f"to='alice@example.org'><query xmlns='{NS_ROSTER}'/></iq>")
        self.assertError(self.reply("x", "bob@example.org/b"), "forbidden")

    def test_remote_entity_is_forbidden(self):
        """A roster get from another domain is forbidden."""
        self.host.receive("<iq type='get' id='x' from='eve@remote.example/r' "
                          f"to='alice@example.org'><query xmlns='{NS_ROSTER}'/></iq>")
        self.assertError(self.host.remote.received[-1], "forbidden")


class VersioningTests(RosterIQTestCase):
    def test_ver_returned(self):
        """A get with ver='' (XEP-0237) gets the roster with its version."""
        self.roster_set(item_xml())
        query = self.roster_get(ver="").find(QUERY)
        self.assertEqual(query.get("ver"), self.world.roster("alice").ver)
        self.assertEqual(len(query), 1)

    def test_current_version_is_an_empty_result(self):
        """A get with the current version is answered with an empty result."""
        self.roster_set(item_xml())
        ver = self.roster_get(ver="").find(QUERY).get("ver")
        reply = self.roster_get(ver=ver, iq_id="g2")
        self.assertEqual((reply.get("type"), len(reply)), ("result", 0))

    def test_stale_version_gets_the_roster(self):
        """After a change, the old version gets the whole roster with the new version."""
        self.roster_set(item_xml())
        ver = self.roster_get(ver="").find(QUERY).get("ver")
        self.roster_set(item_xml("carol@example.org"), iq_id="s2")
        query = self.roster_get(ver=ver, iq_id="g2").find(QUERY)
        self.assertNotEqual(query.get("ver"), ver)
        self.assertEqual(len(query), 2)

    def test_every_change_is_a_new_version(self):
        """Each stored change gives a version no earlier state had."""
        seen = {self.world.roster("alice").ver}
        for n in range(3):
            self.roster_set(item_xml(name=f"Bob {n}"), iq_id=f"s{n}")
            seen.add(self.world.roster("alice").ver)
        self.assertEqual(len(seen), 4)

    def test_push_carries_version_for_versioning_clients(self):
        """Pushes carry 'ver' to a resource that sent one, not to one that did not."""
        modern = self.world.login("alice@example.org/modern", ver="")
        self.roster_set(item_xml())
        ver = self.world.roster("alice").ver
        [modern_push] = [s for s in modern.sent if s.get("type") == "set"]
        [plain_push] = [s for s in self.alice.sent if s.get("type") == "set"]
        self.assertEqual(modern_push.find(QUERY).get("ver"), ver)
        self.assertIsNone(plain_push.find(QUERY).get("ver"))


class SetTests(RosterIQTestCase):
    def test_add(self):
        """A set adds the item with subscription none and pushes it; the result is empty."""
        reply = self.roster_set(item_xml("bob@example.org", "Bob", ["Friends"]))
        self.assertEqual((reply.get("type"), len(reply)), ("result", 0))
        item = self.items()[JID.parse("bob@example.org")]
        self.assertEqual((item.name, item.groups, item.subscription), ("Bob", ("Friends",),
                                                                      "none"))
        [pushed] = pushes(self.alice)
        self.assertEqual((pushed.get("jid"), pushed.get("name"), pushed.get("subscription")),
                         ("bob@example.org", "Bob", "none"))

    def test_push_to_interested_resources_only(self):
        """Pushes go to every resource that requested the roster and to no other (§2.1.6)."""
        other = self.world.login("alice@example.org/tablet")
        quiet = self.world.login("alice@example.org/watch", roster=False)
        self.roster_set(item_xml())
        self.assertEqual(len(pushes(other)), 1)
        self.assertEqual(len(pushes(self.alice)), 1)
        self.assertEqual(pushes(quiet), [])
        push = [s for s in other.sent if s.tag == st.IQ][0]
        self.assertEqual((push.get("type"), push.get("from"), push.get("to")),
                         ("set", "alice@example.org", "alice@example.org/tablet"))

    def test_interested_without_presence(self):
        """A resource that requested the roster but sent no presence still gets pushes."""
        other = self.world.login("alice@example.org/tablet", presence=False)
        self.roster_set(item_xml())
        self.assertEqual(len(pushes(other)), 1)

    def test_update_replaces_name_and_groups(self):
        """An update is atomic: name and groups become exactly what the set says."""
        self.roster_set(item_xml("bob@example.org", "Bob", ["A", "B"]))
        self.roster_set(item_xml("bob@example.org", None, ["C"]), iq_id="s2")
        item = self.items()[JID.parse("bob@example.org")]
        self.assertEqual((item.name, item.groups), (None, ("C",)))

    def test_update_keeps_subscription(self):
        """Changing the handle leaves the subscription state as it was."""
        self.world.set_state("alice", "bob@example.org", "Both")
        self.roster_set(item_xml("bob@example.org", "Bobby"))
        item = self.items()[JID.parse("bob@example.org")]
        self.assertEqual((item.name, item.subscription), ("Bobby", "both"))

    def test_subscription_attribute_is_ignored(self):
        """§2.1.2.5: subscription values other than 'remove' (and ask) are ignored."""
        reply = self.roster_set(item_xml(extra=" subscription='both' ask='subscribe'"))
        self.assertEqual(reply.get("type"), "result")
        item = self.items()[JID.parse("bob@example.org")]
        self.assertEqual((item.subscription, item.ask), ("none", False))

    def test_jid_is_normalised(self):
        """The item's JID is stored prepared (case-folded local part and domain)."""
        self.roster_set(item_xml("Bob@Example.ORG"))
        self.assertIn(JID.parse("bob@example.org"), self.items())

    def test_remote_contact(self):
        """Contacts on other domains and domain JIDs (transports) are allowed."""
        self.roster_set(item_xml("romeo@remote.example"))
        self.roster_set(item_xml("gateway.remote.example"), iq_id="s2")
        self.assertEqual(len(self.items()), 2)

    def test_persisted(self):
        """The roster is in storage: a new host over the same storage reads it back."""
        self.roster_set(item_xml("bob@example.org", "Bob", ["Friends"]))
        again = World(storage=self.host.storage)
        item = again.roster("alice").items[JID.parse("bob@example.org")]
        self.assertEqual((item.name, item.groups), ("Bob", ("Friends",)))


class RemoveTests(RosterIQTestCase):
    def remove(self, jid="bob@example.org", iq_id="r1"):
        return self.roster_set(item_xml(jid, extra=" subscription='remove'"), iq_id=iq_id)

    def test_remove(self):
        """A remove deletes the item and pushes subscription='remove'."""
        self.roster_set(item_xml())
        self.alice.sent.clear()
        self.assertEqual(self.remove().get("type"), "result")
        self.assertEqual(self.items(), {})
        [pushed] = pushes(self.alice)
        self.assertEqual(dict(pushed.attrib),
                         {"jid": "bob@example.org", "subscription": "remove"})

    def test_remove_unknown_is_item_not_found(self):
        """§2.5.3: removing a contact that is not in the roster is item-not-found."""
        self.assertError(self.remove(), "item-not-found")
        self.assertEqual(pushes(self.alice), [])

    def test_remove_both_cancels_both_ways(self):
        """Removing a 'both' contact sends unavailable, 'unsubscribed' and 'unsubscribe'."""
        self.world.set_state("alice", "romeo@remote.example", "Both")
        self.remove("romeo@remote.example")
        sent = [(s.get("type"), s.get("from")) for s in self.host.remote.received]
        self.assertEqual(sent, [("unavailable", ALICE),
                                ("unsubscribed", "alice@example.org"),
                                ("unsubscribe", "alice@example.org")])

    def test_remove_pending_in_denies(self):
        """Removing a contact whose request is pending answers it with 'unsubscribed'."""
        self.world.set_state("alice", "romeo@remote.example", "To + Pending In")
        self.remove("romeo@remote.example")
        sent = [s.get("type") for s in self.host.remote.received]
        self.assertEqual(sent, ["unsubscribed", "unsubscribe"])
        self.assertEqual(self.world.roster("alice").pending, {})

    def test_remove_pending_out_cancels_request(self):
        """Removing a contact alice asked to subscribe to sends 'unsubscribe' only."""
        self.world.set_state("alice", "romeo@remote.example", "None + Pending Out")
        self.remove("romeo@remote.example")
        self.assertEqual([s.get("type") for s in self.host.remote.received], ["unsubscribe"])

    def test_remove_none_sends_nothing(self):
        """Removing a contact without any subscription sends no presence."""
        self.roster_set(item_xml("romeo@remote.example"))
        self.remove("romeo@remote.example")
        self.assertEqual(self.host.remote.received, [])

    def test_remove_between_local_users(self):
        """bob's roster follows when alice removes him: 'both' becomes none for bob."""
        self.world.set_state("alice", "bob@example.org", "Both")
        self.world.set_state("bob", "alice@example.org", "Both")
        self.remove()
        self.assertEqual(self.world.state("bob", "alice@example.org").subscription, "none")


class ErrorTests(RosterIQTestCase):
    """Bad roster sets get the RFC 6121 §2.3.3 errors and change nothing."""

    def setUp(self):
        super().setUp()
        self.roster_set(item_xml("carol@example.org", "Carol"), iq_id="setup")
        self.before = self.world.roster("alice")
        self.alice.sent.clear()

    def assertRefused(self, reply, condition):
        self.assertError(reply, condition)
        self.assertIs(self.world.roster("alice"), self.before)
        self.assertEqual(pushes(self.alice), [])

    def test_two_items(self):
        """More than one <item/> is bad-request."""
        self.assertRefused(self.roster_set(item_xml(), item_xml("dave@example.org")),
                           "bad-request")

    def test_no_item(self):
        """A set without an <item/> is bad-request."""
        self.assertRefused(self.roster_set(), "bad-request")

    def test_missing_jid(self):
        """An item without 'jid' is bad-request."""
        self.assertRefused(self.roster_set(item_xml(None)), "bad-request")

    def test_invalid_jid(self):
        """An item whose 'jid' is not a JID is bad-request."""
        self.assertRefused(self.roster_set(item_xml("bad@@example.org")), "bad-request")
        self.assertRefused(self.roster_set(item_xml("bob@"), iq_id="s2"), "bad-request")

    def test_full_jid(self):
        """An item for a full JID is bad-request."""
        self.assertRefused(self.roster_set(item_xml("bob@example.org/phone")), "bad-request")

    def test_own_jid(self):
        """An item for the user's own bare JID is not-allowed."""
        self.assertRefused(self.roster_set(item_xml("alice@example.org")), "not-allowed")

    def test_duplicate_groups(self):
        """A group named twice is bad-request."""
        self.assertRefused(self.roster_set(item_xml(groups=["A", "A"])), "bad-request")

    def test_empty_group(self):
        """An empty group is not-acceptable."""
        self.assertRefused(self.roster_set(item_xml(groups=[""])), "not-acceptable")

    def test_group_too_long(self):
        """A group name over the limit is not-acceptable."""
        self.assertRefused(self.roster_set(item_xml(groups=["g" * 1024])), "not-acceptable")

    def test_name_too_long(self):
        """A handle over the limit is not-acceptable."""
        self.assertRefused(self.roster_set(item_xml(name="n" * 1024)), "not-acceptable")

    def test_too_many_groups(self):
        """More groups than the limit is not-acceptable."""
        groups = [f"g{n}" for n in range(101)]
        self.assertRefused(self.roster_set(item_xml(groups=groups)), "not-acceptable")

    def test_other_users_roster(self):
        """A set addressed to another user's bare JID is forbidden."""
        self.assertRefused(self.roster_set(item_xml(), to="bob@example.org"), "forbidden")
        self.assertEqual(self.world.roster("bob").items, {})

    def test_update_of_existing_unchanged_on_error(self):
        """A refused update of an existing item leaves it as it was."""
        self.assertRefused(self.roster_set(item_xml("carol@example.org", "C", ["", "x"])),
                           "not-acceptable")
        self.assertEqual(self.items()[JID.parse("carol@example.org")].name, "Carol")


class LimitTests(RosterIQTestCase):
    options = {"max_items": 2}

    def setUp(self):
        super().setUp()
        self.roster_set(item_xml("bob@example.org"), iq_id="a")
        self.roster_set(item_xml("carol@example.org"), iq_id="b")
        self.alice.sent.clear()

    def test_set_over_limit(self):
        """A new item past max_items is not-allowed with a text saying why."""
        reply = self.roster_set(item_xml("dave@example.org"))
        self.assertError(reply, "not-allowed")
        self.assertIn("at most 2", error_text(reply))
        self.assertEqual(len(self.items()), 2)

    def test_update_at_limit(self):
        """Updating an existing item of a full roster works."""
        self.assertEqual(self.roster_set(item_xml("bob@example.org", "B")).get("type"),
                         "result")

    def test_subscribe_over_limit(self):
        """A subscription request that would add a contact to a full roster is refused."""
        self.host.receive(f"<presence from='{ALICE}' to='dave@remote.example' "
                          "type='subscribe'/>")
        [error] = presences(self.alice.sent, "error")
        self.assertEqual(error_condition(error), "not-allowed")
        self.assertEqual(self.host.remote.received, [])
        self.assertEqual(len(self.items()), 2)

    def test_too_many_pending_requests_are_ignored(self):
        """Inbound requests beyond the limit are dropped, not stored."""
        for n in range(3):
            self.host.receive(f"<presence from='u{n}@remote.example' to='alice@example.org' "
                              "type='subscribe'/>")
        self.assertEqual(len(self.world.roster("alice").pending), 2)
        self.assertEqual(len(presences(self.alice.sent, "subscribe")), 2)


class ServiceTests(RosterIQTestCase):
    def setUp(self):
        super().setUp()
        self.service = self.host.service("roster")
        self.world.set_state("alice", "bob@example.org", "Both")
        self.world.set_state("alice", "carol@example.org", "To")
        self.world.set_state("alice", "dave@remote.example", "None + Pending In")

    def test_get_items(self):
        """get_items() is the roster by bare JID."""
        items = self.successResultOf(self.service.get_items("alice"))
        self.assertEqual(sorted(map(str, items)), ["bob@example.org", "carol@example.org"])

    def test_subscription(self):
        """subscription() names the state; unknown contacts are 'none'."""
        for jid, expected in (("bob@example.org/x", "both"), ("carol@example.org", "to"),
                              ("nobody@example.org", "none")):
            self.assertEqual(self.successResultOf(
                self.service.subscription("alice", JID.parse(jid))), expected)

    def test_can_see_presence(self):
        """can_see_presence() is True for from/both contacts and the user, else False."""
        for jid, expected in (("bob@example.org", True), ("carol@example.org", False),
                              ("alice@example.org/other", True), ("eve@example.org", False)):
            self.assertEqual(self.successResultOf(
                self.service.can_see_presence("alice", JID.parse(jid))), expected)

    def test_pending_requests(self):
        """pending_requests() lists the unanswered inbound requests."""
        self.assertEqual(self.successResultOf(self.service.pending_requests("alice")),
                         [JID.parse("dave@remote.example")])

    def test_set_items_replaces_the_roster(self):
        """set_items() replaces items and pending requests wholesale, and is stored."""
        item = RosterItem(JID.parse("erin@example.org"), "Erin", ("X",), "from")
        self.successResultOf(self.service.set_items(
            "alice", [item], pending=[JID.parse("frank@remote.example/r")]))
        again = World(storage=self.host.storage)
        stored = again.roster("alice")
        self.assertEqual(list(stored.items.values()), [item])
        self.assertEqual(list(stored.pending), [JID.parse("frank@remote.example")])

    def test_set_items_refuses_bad_input(self):
        """set_items() refuses the user's own JID and duplicates."""
        own = RosterItem(JID.parse("alice@example.org"))
        self.assertRaises(ValueError, self.service.set_items, "alice", [own])
        bob = RosterItem(JID.parse("bob@example.org"))
        self.assertRaises(ValueError, self.service.set_items, "alice", [bob, bob])

    def test_user_deleted_drops_cache(self):
        """After the account's data is deleted, USER_DELETED makes the roster empty."""
        self.successResultOf(self.host.storage.keyvalue("roster").delete_user(
            "example.org", "alice"))
        self.assertEqual(len(self.world.roster("alice").items), 2)     # still cached
        self.host.user_deleted(JID.parse("alice@example.org"))
        self.assertEqual(self.world.roster("alice").items, {})


class DiscoTests(SynchronousTestCase):
    def setUp(self):
        self.world = World()
        self.host = self.world.host
        self.host.install(service_discovery)
        self.world.set_state("alice", "bob@example.org", "From")

    def info(self, sender):
        self.host.receive(f"<iq type='get' id='d1' from='{sender}' to='alice@example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'/></iq>")
        return self.host.sent[-1]

    def test_contact_sees_account(self):
        """A contact allowed to see alice's presence gets her account identity."""
        reply = self.info("bob@example.org/b")
        self.assertEqual(reply.get("type"), "result")
        identity = reply.find(f"{{{NS_DISCO_INFO}}}query/{{{NS_DISCO_INFO}}}identity")
        self.assertEqual((identity.get("category"), identity.get("type")),
                         ("account", "registered"))

    def test_stranger_gets_nothing(self):
        """Someone without a subscription gets service-unavailable."""
        self.assertEqual(error_condition(self.info("carol@example.org/c")),
                         "service-unavailable")


class _SlowKeyValue:
    """A key-value store whose writes complete only when the test says so."""

    def __init__(self, store):
        self.store = store
        self.writes = []

    def get(self, host, username, key):
        return self.store.get(host, username, key)

    def set(self, host, username, key, value):
        d = defer.Deferred()
        self.writes.append((d, lambda: self.store.set(host, username, key, value)))
        return d

    def flush(self):
        while self.writes:
            d, write = self.writes.pop(0)
            write()
            d.callback(None)


class _Host:
    domain = "example.org"

    def __init__(self, store):
        self.storage = self
        self._store = store

    def keyvalue(self, name):
        return self._store


class StoreTests(SynchronousTestCase):
    def setUp(self):
        self.slow = _SlowKeyValue(MemoryStorage().keyvalue("roster"))
        self.store = RosterStore(_Host(self.slow))

    def add(self, jid):
        item = RosterItem(JID.parse(jid))
        return self.store.modify("alice", lambda r: r.items.__setitem__(item.jid, item))

    def test_concurrent_changes_are_serialised(self):
        """Two changes in flight for one user both end up stored, one after the other."""
        first, second = self.add("bob@example.org"), self.add("carol@example.org")
        self.assertEqual(len(self.slow.writes), 1)      # the second waits for the lock
        self.slow.flush()
        self.slow.flush()
        self.successResultOf(first)
        self.successResultOf(second)
        stored = Roster.from_json(self.successResultOf(
            self.slow.store.get("example.org", "alice", "roster")))
        self.assertEqual(len(stored.items), 2)
        self.assertEqual(stored.version, 2)

    def test_flood_of_refused_changes_drains(self):
        """Thousands of changes refused at once (a full roster, served from the cache),
        queued behind a slow write, all fail without recursion and the user's next change
        is stored (issue 11 §3: this used to wedge the roster with RecursionError)."""
        def refuse(roster):
            raise ValueError("roster full")

        first = self.add("bob@example.org")
        refused = [self.store.modify("alice", refuse) for _ in range(5000)]
        self.slow.flush()
        self.successResultOf(first)
        for d in refused:
            self.failureResultOf(d, ValueError)
        after = self.add("carol@example.org")
        self.slow.flush()
        self.assertEqual(len(self.successResultOf(after)[1].items), 2)
        self.assertEqual(len(self.store._turns), 0)

    def test_readers_see_stored_state_only(self):
        """A change is visible to readers only once it is stored."""
        self.add("bob@example.org")
        self.assertEqual(self.successResultOf(self.store.load("alice")).items, {})
        self.slow.flush()
        self.assertEqual(len(self.successResultOf(self.store.load("alice")).items), 1)

    def test_failed_change_stores_nothing(self):
        """A change that raises leaves the roster as it was."""
        def boom(roster):
            roster.items[JID.parse("bob@example.org")] = RosterItem(JID.parse("bob@example.org"))
            raise ValueError("no")

        self.failureResultOf(self.store.modify("alice", boom), ValueError)
        self.assertEqual(self.slow.writes, [])
        self.assertEqual(self.successResultOf(self.store.load("alice")).items, {})
        self.assertEqual(len(self.store._turns), 0)

    def test_damaged_document_items_are_skipped(self):
        """An unreadable stored item is dropped instead of making the roster unreadable."""
        roster = Roster.from_json({"items": {"bad@@jid": {}, "bob@example.org": {
            "subscription": "both"}}, "pending": {"x@@y": ""}})
        self.assertEqual(list(map(str, roster.items)), ["bob@example.org"])
        self.assertEqual(roster.pending, {})
