"""Persistent rooms through IRoomStore: saved on change, loaded at install, deleted."""
from twisted.internet import defer
from zope.interface.verify import verifyObject

from jabberapp.extensions.muc import muc
from jabberapp.jid import JID
from jabberapp.extensions.muc.interfaces import IRoomStore, KeyValueRoomStore
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost
from tests.extensions.muc.helpers import ALICE, BOB, CAROL, NS_OWNER, ROOM, MUCTestCase, codes


class StoreTests(MUCTestCase):
    """The key-value room store."""

    def test_interface(self):
        """KeyValueRoomStore provides IRoomStore."""
        verifyObject(IRoomStore, KeyValueRoomStore(MemoryStorage(), "conference.example.org"))

    def test_round_trip(self):
        """Saved documents are listed by load_all until deleted."""
        store = KeyValueRoomStore(MemoryStorage(), "conference.example.org")
        self.successResultOf(store.save("a", {"x": 1}))
        self.successResultOf(store.save("b", {"x": 2}))
        self.successResultOf(store.delete("a"))
        self.assertEqual(self.successResultOf(store.load_all()), {"b": {"x": 2}})


class RestartTests(MUCTestCase):
    """A persistent room survives a new host over the same storage."""

    def restart(self):
        """A new host over the same storage, as after a restart."""
        self.host = FakeHost("example.org", storage=self.host.storage)
        self.host.install(muc)
        self.service = self.host.service("muc")

    def test_persistent_room_survives(self):
        """Configuration, affiliations and subject come back after a restart."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_persistentroom": "1",
                               "muc#roomconfig_membersonly": "1",
                               "muc#roomconfig_roomname": "Lasting"})
        self.iq(ALICE, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                              "<item affiliation='member' jid='bob@example.org'/></query>")
        self.host.receive(f"<message type='groupchat' from='{ALICE}' to='{ROOM}'>"
                          "<subject>Kept</subject></message>")
        self.restart()
        room = self.service.rooms["room"]
        self.assertEqual((room.config.name, room.config.members_only, room.subject),
                         ("Lasting", True, "Kept"))
        self.assertEqual(room.affiliation(JID.parse(BOB)), "member")
        got = self.join(CAROL, "carol")
        self.assertEqual(self.error_condition(got[-1]), "registration-required")
        got = self.join(BOB, "bob")
        self.assertEqual(got[-1].findtext("{jabber:client}subject"), "Kept")

    def test_persistent_room_stays_empty(self):
        """A persistent room is kept when its last occupant leaves."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_persistentroom": "1"})
        self.host.receive(f"<presence type='unavailable' from='{ALICE}' to='{ROOM}/alice'/>")
        self.assertIn("room", self.service.rooms)

    def test_temporary_again_is_deleted(self):
        """Making a persistent room temporary deletes it from storage."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_persistentroom": "1"})
        self.configure(ALICE, {"muc#roomconfig_persistentroom": "0"})
        self.restart()
        self.assertNotIn("room", self.service.rooms)

    def test_destroyed_room_is_deleted(self):
        """A destroyed persistent room does not come back."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_persistentroom": "1"})
        self.iq(ALICE, "set", f"<query xmlns='{NS_OWNER}'><destroy/></query>")
        self.restart()
        self.assertNotIn("room", self.service.rooms)

    def test_temporary_room_not_stored(self):
        """A temporary room is not in storage."""
        self.room_with()
        self.restart()
        self.assertNotIn("room", self.service.rooms)


class SlowStore:
    """An IRoomStore double whose writes fire when the test says so."""

    def __init__(self):
        self.pending = []

    def load_all(self):
        """No stored rooms."""
        return defer.succeed({})

    def save(self, name, document):
        """A write that fires when the test fires it."""
        d = defer.Deferred()
        self.pending.append(d)
        return d

    delete = save


class DurabilityTests(MUCTestCase):
    """IQ results for stored changes wait for the store."""

    def setUp(self):
        super().setUp()
        self.store = SlowStore()
        self.service.storage.store = self.store

    def test_result_after_store(self):
        """The configuration result is sent only once the room is stored."""
        self.room_with()
        reply = self.configure(ALICE, {"muc#roomconfig_persistentroom": "1"})
        self.assertNotEqual(reply.get("id"), "cfg")
        self.store.pending[-1].callback(None)
        self.assertEqual(self.received(ALICE)[-1].get("type"), "result")

    def test_store_failure(self):
        """A failed write is answered internal-server-error and logged."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_persistentroom": "1"})
        self.store.pending[-1].errback(RuntimeError("disk full"))
        self.assertEqual(self.error_condition(self.received(ALICE)[-1]),
                         "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class UnloadTests(MUCTestCase):
    """Disabling the extension."""

    def test_unload_removes_domain(self):
        """After unload the service domain is no longer routed here."""
        self.host.unload("muc")
        self.host.receive(f"<presence from='{ALICE}' to='{ROOM}/alice'/>")
        self.assertEqual(self.host.remote.received[-1].get("to"), f"{ROOM}/alice")


class LoadTests(MUCTestCase):
    """Loading at install."""

    def test_index_without_document_skipped(self):
        """An index entry whose document is missing is not loaded."""
        storage = MemoryStorage()
        self.successResultOf(storage.keyvalue("muc_index").set(
            "conference.example.org", "rooms", "ghost", True))
        store = KeyValueRoomStore(storage, "conference.example.org")
        self.assertEqual(self.successResultOf(store.load_all()), {})

    def test_waits_for_load(self):
        """Stanzas that arrive while rooms are loading are handled once they are loaded."""
        slow = defer.Deferred()
        self.service.storage.store = type("Store", (), {"load_all": lambda self: slow})()
        self.service.load()
        self.host.receive(f"<presence from='{ALICE}' to='{ROOM}/alice'/>")
        self.assertEqual(self.received(ALICE), [])
        slow.callback({})
        self.assertEqual(codes(self.received(ALICE)[0]), {110, 201})

    def test_load_failure(self):
        """When loading fails the service refuses stanzas with service-unavailable."""
        self.service.storage.store = type("Store", (), {
            "load_all": lambda self: defer.fail(RuntimeError("corrupt"))})()
        self.service.load()
        self.flushLoggedErrors(RuntimeError)
        got = self.join(ALICE, "alice")
        self.assertEqual(self.error_condition(got[-1]), "service-unavailable")
