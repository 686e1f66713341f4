"""Unit tests of KeyValueNodeStore, the INodeStore over the key-value storage."""
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.extensions.pubsub.interfaces import (
    INodeStore, NodeExists, NodeLimitReached, NodeNotFound)
from jabberapp.extensions.pubsub.store import KeyValueNodeStore
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import HeldKeyValue

SERVICE = "pubsub.example.org"
USER = "alice@example.org"


class StoreTests(SynchronousTestCase):
    def setUp(self):
        self.storage = MemoryStorage()
        self.store = KeyValueNodeStore(self.storage.keyvalue("pubsub"))

    def test_interface(self):
        """KeyValueNodeStore provides INodeStore."""
        verifyObject(INodeStore, self.store)

    def test_create_list_delete(self):
        """Nodes are created once, listed per owner and deleted with their items."""
        self.successResultOf(self.store.create_node(SERVICE, "a", {"x": 1}, {USER: "owner"}))
        self.failureResultOf(self.store.create_node(SERVICE, "a", {}, {}), NodeExists)
        self.assertEqual(self.successResultOf(self.store.list_nodes(SERVICE)), ["a"])
        self.assertEqual(self.successResultOf(self.store.list_nodes(USER)), [])
        self.successResultOf(self.store.delete_node(SERVICE, "a"))
        self.failureResultOf(self.store.get_items(SERVICE, "a"), NodeNotFound)
        self.failureResultOf(self.store.delete_node(SERVICE, "a"), NodeNotFound)

    def test_publish_replace_and_limit(self):
        """Same id replaces and moves to newest; the oldest beyond max_items are dropped."""
        self.successResultOf(self.store.create_node(USER, "n", {}, {}))
        for item_id in ("1", "2", "1"):
            self.successResultOf(self.store.publish(USER, "n", item_id, "<p/>", USER, 0, 5))
        items = self.successResultOf(self.store.get_items(USER, "n"))
        self.assertEqual([i[0] for i in items], ["2", "1"])
        dropped = self.successResultOf(self.store.publish(USER, "n", "3", None, USER, 0, 2))
        self.assertEqual(dropped, ["2"])
        self.assertTrue(self.successResultOf(self.store.retract(USER, "n", "3")))
        self.assertFalse(self.successResultOf(self.store.retract(USER, "n", "3")))

    def test_account_deletion_removes_pep_nodes(self):
        """A user's PEP nodes live under the account: deleting it deletes them."""
        self.successResultOf(self.store.create_node(USER, "n", {}, {}))
        self.successResultOf(self.storage.delete_user("example.org", "alice"))
        self.assertEqual(self.successResultOf(self.store.list_nodes(USER)), [])

    def test_affiliations_and_subscriptions(self):
        """Affiliations and subscriptions are set and removed."""
        self.successResultOf(self.store.create_node(SERVICE, "n", {}, {USER: "owner"}))
        self.successResultOf(self.store.set_affiliation(SERVICE, "n", "b@x", "member"))
        self.successResultOf(self.store.set_subscription(SERVICE, "n", "b@x/r", "s1"))
        record = self.successResultOf(self.store.get_node(SERVICE, "n"))
        self.assertEqual(record["affiliations"], {USER: "owner", "b@x": "member"})
        self.assertEqual(record["subscriptions"], {"b@x/r": "s1"})
        self.successResultOf(self.store.set_subscription(SERVICE, "n", "b@x/r", None))
        self.successResultOf(self.store.set_affiliation(SERVICE, "n", "b@x", None))
        record = self.successResultOf(self.store.get_node(SERVICE, "n"))
        self.assertEqual((record["affiliations"], record["subscriptions"]),
                         ({USER: "owner"}, {}))

    def test_pending_requests(self):
        """A pending request is recorded, resolved by subscribing, and removed with None."""
        self.successResultOf(self.store.create_node(SERVICE, "n", {}, {USER: "owner"}))
        self.successResultOf(self.store.set_pending(SERVICE, "n", "b@x", "s1"))
        self.successResultOf(self.store.set_subscription_options(
            SERVICE, "n", "b@x", {"deliver": False}))
        self.successResultOf(self.store.set_pending(SERVICE, "n", "c@x", "s2"))
        record = self.successResultOf(self.store.get_node(SERVICE, "n"))
        self.assertEqual(record["pending"], {"b@x": "s1", "c@x": "s2"})
        self.successResultOf(self.store.set_subscription(SERVICE, "n", "b@x", "s1"))
        self.successResultOf(self.store.set_pending(SERVICE, "n", "c@x", None))
        record = self.successResultOf(self.store.get_node(SERVICE, "n"))
        self.assertEqual((record["pending"], record["subscriptions"]),
                         ({}, {"b@x": "s1"}))
        self.assertEqual(record["subscription_options"], {"b@x": {"deliver": False}})
        self.failureResultOf(self.store.set_pending(SERVICE, "gone", "b@x", "s"),
                             NodeNotFound)

    def test_node_limit(self):
        """create_node with max_nodes refuses a node past the limit, before NodeExists."""
        self.successResultOf(self.store.create_node(USER, "a", {}, {}, max_nodes=2))
        self.failureResultOf(self.store.create_node(USER, "a", {}, {}, max_nodes=2),
                             NodeExists)
        self.successResultOf(self.store.create_node(USER, "b", {}, {}, max_nodes=2))
        failure = self.failureResultOf(self.store.create_node(USER, "c", {}, {}, max_nodes=2),
                                       NodeLimitReached)
        self.assertEqual(failure.value.limit, 2)
        self.failureResultOf(self.store.create_node(USER, "a", {}, {}, max_nodes=2),
                             NodeLimitReached)
        self.successResultOf(self.store.create_node(USER, "c", {}, {}))     # no limit


class ConcurrentCreationTests(SynchronousTestCase):
    """The node limit holds when creations are in flight together."""

    def test_limit_under_concurrent_creation(self):
        """Two creations in flight at once with room for one: one node is made and the
        other is refused with NodeLimitReached."""
        keyvalue = HeldKeyValue(MemoryStorage().keyvalue("pubsub"))
        store = KeyValueNodeStore(keyvalue)
        first = store.create_node(USER, "a", {}, {}, max_nodes=1)
        second = store.create_node(USER, "b", {}, {}, max_nodes=1)
        keyvalue.flush()
        self.successResultOf(first)
        self.failureResultOf(second, NodeLimitReached)
        d = store.list_nodes(USER)
        keyvalue.flush()
        self.assertEqual(self.successResultOf(d), ["a"])
