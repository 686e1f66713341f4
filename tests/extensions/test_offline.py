"""XEP-0160 offline messages with XEP-0203 delay stamps."""
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.extensions.offline import (NS_DELAY, NS_MSGOFFLINE, QUOTA_TEXT,
                                          offline_messages, timestamp)
from jabberapp.interfaces import IArchiveStore, IExtension, IStorage
from jabberapp.jid import JID
from jabberapp.plugins import jabberapp_builtin
from jabberapp.storage import StorageError
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost, FakeSession, parse
from jabberapp.xml.ns import NS_STANZAS

DELAY = f"{{{NS_DELAY}}}delay"
BODY = "{jabber:client}body"
NOW = 1_700_000_000.25          # 2023-11-14T22:13:20.250Z
STAMP = "2023-11-14T22:13:20.250Z"
ALICE = "alice@example.org/phone"
BOB = "bob@example.org"


@implementer(IArchiveStore)
class ControlledArchive:
    """
    An IArchiveStore over a memory archive whose calls can be held or made to fail.

    A held call runs at once (its result is what the store held at that moment) but its
    Deferred fires only on release(), like a slow database; a failing one fails with
    StorageError (when held, on release()).
    """

    def __init__(self, inner):
        self.inner = inner
        self.hold = set()       # method names whose results wait for release()
        self.failing = set()    # method names that fail
        self.waiting = []       # (Deferred, inner Deferred)
        self.calls = []

    def _call(self, name, *args, **kwargs):
        self.calls.append(name)
        if name in self.failing:
            result = defer.fail(StorageError("the disk is on fire"))
        else:
            result = getattr(self.inner, name)(*args, **kwargs)
        if name not in self.hold:
            return result
        d = defer.Deferred()
        self.waiting.append((d, result))
        return d

    def release(self):
        """Fire every held call's Deferred, and those held meanwhile, in order."""
        while self.waiting:
            d, result = self.waiting.pop(0)
            result.chainDeferred(d)

    def append(self, *args, **kwargs):
        """See IArchiveStore.append."""
        return self._call("append", *args, **kwargs)

    def query(self, *args, **kwargs):
        """See IArchiveStore.query."""
        return self._call("query", *args, **kwargs)

    def count(self, *args, **kwargs):
        """See IArchiveStore.count."""
        return self._call("count", *args, **kwargs)

    def delete(self, *args, **kwargs):
        """See IArchiveStore.delete."""
        return self._call("delete", *args, **kwargs)


@implementer(IStorage)
class ControlledStorage:
    """A MemoryStorage whose archives are ControlledArchives."""

    def __init__(self):
        self.inner = MemoryStorage()
        self.accounts = self.inner.accounts
        self._archives = {}

    def keyvalue(self, name):
        """See IStorage.keyvalue."""
        return self.inner.keyvalue(name)

    def archive(self, name):
        """See IStorage.archive."""
        if name not in self._archives:
            self._archives[name] = ControlledArchive(self.inner.archive(name))
        return self._archives[name]

    def close(self):
        """See IStorage.close."""
        return self.inner.close()

    def __getattr__(self, name):
        # Whatever else IStorage offers (delete_user, ...) is the memory storage's.
        return getattr(self.inner, name)


class OfflineTestCase(SynchronousTestCase):
    """A host with offline storage, accounts for alice and bob, on a Clock at NOW."""

    options = {}

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.storage = self.make_storage()
        self.host = FakeHost("example.org", clock=self.clock, storage=self.storage)
        self.host.add_account("alice")
        self.host.add_account("bob")
        self.host.install(offline_messages, **self.options)
        self.archive = self.storage.archive("offline")

    def make_storage(self):
        return MemoryStorage()

    def send(self, body="hi", to=BOB, type="chat", id="m1", extra="", sender=ALICE):
        """alice sends a message; returns what was sent back to her."""
        type_attr = f" type='{type}'" if type is not None else ""
        body_xml = f"<body>{body}</body>" if body is not None else ""
        before = len(self.host.sent)
        self.host.receive(f"<message from='{sender}' to='{to}'{type_attr} id='{id}'>"
                          f"{body_xml}{extra}</message>")
        return [s for s in self.host.sent[before:] if s.get("to") == sender]

    def stored(self, user="bob"):
        """The items stored for C{user}, oldest first."""
        return [parse(item) for _, _, _, item in
                self.successResultOf(self.storage.archive("offline").query(
                    "example.org", user))]

    def login(self, resource="laptop", priority=None, user="bob"):
        """Bind a session for C{user} and send initial presence; return the session."""
        jid = f"{user}@example.org/{resource}"
        session = FakeSession(self.host, jid, available=False)
        self.presence(jid, priority)
        return session

    def presence(self, jid, priority=None):
        """Broadcast presence from C{jid} with C{priority}."""
        prio = f"<priority>{priority}</priority>" if priority is not None else ""
        self.host.receive(f"<presence from='{jid}'>{prio}</presence>")

    def messages(self, session):
        """The messages C{session} received, in order."""
        return [s for s in session.sent if s.tag == st.MESSAGE]

    def assertError(self, replies, condition, text=None):
        """C{replies} is one error of C{condition} (with C{text} when given)."""
        self.assertEqual(len(replies), 1, replies)
        error = replies[0].find(st.ERROR)
        self.assertEqual(replies[0].get("type"), "error")
        self.assertIsNotNone(error.find(f"{{{NS_STANZAS}}}{condition}"), condition)
        self.assertEqual(error.findtext(f"{{{NS_STANZAS}}}text"), text)
        return error


class DeclarationTests(OfflineTestCase):
    def test_interface(self):
        """The plugin object provides IPlugin and IExtension, named 'offline'."""
        verifyObject(IExtension, offline_messages)
        self.assertTrue(IPlugin.providedBy(offline_messages))
        self.assertEqual(offline_messages.name, "offline")
        self.assertIs(jabberapp_builtin.offline_messages, offline_messages)

    def test_options(self):
        """max_messages (500) and max_age (0: forever) are documented options."""
        self.assertEqual([(o.name, o.default) for o in offline_messages.options],
                         [("max_messages", 500), ("max_age", 0)])
        self.assertTrue(all(o.doc for o in offline_messages.options))
        max_messages, max_age = offline_messages.options
        self.assertRaises(ValueError, max_messages.parse, "0")
        self.assertEqual(max_age.parse("0"), 0)
        self.assertRaises(ValueError, max_age.parse, "-1")

    def test_specs(self):
        """XEP-0160, XEP-0203 and XEP-0334 are declared."""
        self.assertEqual([s.name for s in offline_messages.specs],
                         ["XEP-0160", "XEP-0203", "XEP-0334"])

    def test_feature(self):
        """msgoffline is a disco feature of the host (XEP-0160 §4)."""
        self.assertIn(NS_MSGOFFLINE, self.host.features)

    def test_timestamp(self):
        """Stamps are XEP-0082 UTC date-times with milliseconds."""
        self.assertEqual(timestamp(NOW), STAMP)
        self.assertEqual(timestamp(0), "1970-01-01T00:00:00.000Z")

    def test_unload(self):
        """Once unloaded, a message for offline bob gets service-unavailable again."""
        self.host.unload("offline")
        self.assertError(self.send(), "service-unavailable")
        self.assertEqual(self.stored(), [])


class StoreTests(OfflineTestCase):
    def test_stored_with_delay(self):
        """A chat message for bob with no resource is stored, delay-stamped, unanswered."""
        self.assertEqual(self.send("hello"), [])
        [message] = self.stored()
        self.assertEqual((message.get("from"), message.get("to"), message.get("id"),
                          message.findtext(BODY)), (ALICE, BOB, "m1", "hello"))
        delay = message.find(DELAY)
        self.assertEqual((delay.get("from"), delay.get("stamp")), ("example.org", STAMP))

    def test_sender_and_time_recorded(self):
        """The archive item records the arrival time and the sender's bare JID."""
        self.send()
        [(_, when, with_jid, _)] = self.successResultOf(
            self.archive.query("example.org", "bob"))
        self.assertEqual((when, with_jid), (NOW, "alice@example.org"))

    def test_normal_and_untyped_stored(self):
        """Messages of type normal, or with no type, are stored."""
        self.send(type="normal", id="n")
        self.send(type=None, id="u")
        self.assertEqual([m.get("id") for m in self.stored()], ["n", "u"])

    def test_negative_priority_resource_only(self):
        """A message for bob whose only resource has negative priority is stored."""
        bob = self.login(priority=-1)
        self.send()
        self.assertEqual(len(self.stored()), 1)
        self.assertEqual(self.messages(bob), [])

    def test_chat_to_gone_resource(self):
        """A chat message to a full JID that is not bound is stored (RFC 6121 §8.5.3.2.1)."""
        self.assertEqual(self.send(to="bob@example.org/gone"), [])
        [message] = self.stored()
        self.assertEqual(message.get("to"), "bob@example.org/gone")

    def test_normal_to_gone_resource_not_stored(self):
        """A normal message to an unbound full JID is the core's: an error, not stored."""
        self.assertError(self.send(to="bob@example.org/gone", type="normal"),
                         "service-unavailable")
        self.assertEqual(self.stored(), [])

    def test_groupchat_headline_error_not_stored(self):
        """groupchat gets the core's error; headline and error vanish; none is stored."""
        self.assertError(self.send(type="groupchat"), "service-unavailable")
        self.assertEqual(self.send(type="headline"), [])
        self.assertEqual(self.send(type="error"), [])
        self.assertEqual(self.stored(), [])

    def test_hook_ignores_other_types(self):
        """Given a groupchat, headline or error message directly, the hook leaves it."""
        for type_ in ("groupchat", "headline", "error"):
            message = parse(f"<message from='{ALICE}' to='{BOB}' type='{type_}'>"
                            "<body>x</body></message>")
            self.assertFalse(self.host.dispatcher.hooks.fire(
                dispatch.MESSAGE_OFFLINE, message, None))
        self.assertEqual(self.stored(), [])

    def test_no_such_user(self):
        """A message for an account that does not exist gets service-unavailable."""
        error = self.assertError(self.send(to="ghost@example.org"), "service-unavailable")
        self.assertEqual(error.get("type"), "cancel")
        self.assertEqual(self.stored("ghost"), [])

    def test_no_store_hint(self):
        """A <no-store/> message is not stored and the sender gets service-unavailable."""
        replies = self.send(extra="<no-store xmlns='urn:xmpp:hints'/>")
        self.assertError(replies, "service-unavailable")
        self.assertEqual(self.stored(), [])

    def test_no_permanent_store_hint_is_stored(self):
        """<no-permanent-store/> does not prevent temporary offline storage."""
        self.send(extra="<no-permanent-store xmlns='urn:xmpp:hints'/>")
        self.assertEqual(len(self.stored()), 1)

    def test_standalone_chat_state_dropped(self):
        """A message with only a chat state is neither stored nor answered."""
        replies = self.send(body=None, extra=(
            "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
            "<thread>t1</thread><origin-id xmlns='urn:xmpp:sid:0' id='o1'/>"))
        self.assertEqual(replies, [])
        self.assertEqual(self.stored(), [])

    def test_chat_state_with_body_stored(self):
        """A chat state beside a body is an ordinary message and is stored."""
        self.send(extra="<active xmlns='http://jabber.org/protocol/chatstates'/>")
        self.assertEqual(len(self.stored()), 1)

    def test_store_hint_keeps_chat_state(self):
        """A <store/> hint makes even a standalone chat state stored."""
        self.send(body=None, extra=("<gone xmlns='http://jabber.org/protocol/chatstates'/>"
                                    "<store xmlns='urn:xmpp:hints'/>"))
        self.assertEqual(len(self.stored()), 1)

    def test_bodyless_payload_stored(self):
        """A message without body but with a payload (a receipt) is stored."""
        self.send(body=None, extra="<received xmlns='urn:xmpp:receipts' id='x'/>")
        self.assertEqual(len(self.stored()), 1)

    def test_existing_delay_kept(self):
        """A message already stamped by this server keeps that one stamp."""
        self.send(extra=f"<delay xmlns='{NS_DELAY}' from='example.org' "
                        "stamp='2020-01-01T00:00:00.000Z'/>"
                        f"<delay xmlns='{NS_DELAY}' from='elsewhere.example' "
                        "stamp='2019-01-01T00:00:00Z'/>")
        [message] = self.stored()
        stamps = [(d.get("from"), d.get("stamp")) for d in message.iter(DELAY)]
        self.assertEqual(stamps, [("example.org", "2020-01-01T00:00:00.000Z"),
                                  ("elsewhere.example", "2019-01-01T00:00:00Z")])


class QuotaTests(OfflineTestCase):
    options = {"max_messages": 2}

    def test_quota_full(self):
        """Past max_messages the sender gets service-unavailable with a text; not stored."""
        self.assertEqual(self.send(id="1"), [])
        self.assertEqual(self.send(id="2"), [])
        error = self.assertError(self.send(id="3"), "service-unavailable", QUOTA_TEXT)
        self.assertEqual(error.get("type"), "cancel")
        self.assertEqual([m.get("id") for m in self.stored()], ["1", "2"])

    def test_room_again_after_delivery(self):
        """Once bob has read his messages, new ones are stored again."""
        self.send(id="1")
        self.send(id="2")
        self.login()
        self.assertEqual(self.stored(), [])
        self.host.session("bob@example.org/laptop").close()
        self.assertEqual(self.send(id="3"), [])
        self.assertEqual(len(self.stored()), 1)

    def test_quota_is_per_user(self):
        """A full store of bob's does not stop messages for alice."""
        self.send(id="1")
        self.send(id="2")
        replies = self.send(id="a", to="alice@example.org",
                            sender="bob@example.org/desk")
        self.assertEqual(replies, [])
        self.assertEqual(len(self.stored("alice")), 1)


class ExpiryTests(OfflineTestCase):
    options = {"max_messages": 2, "max_age": 3600}

    def test_expired_not_delivered(self):
        """Messages older than max_age are deleted at login instead of delivered."""
        self.send(id="old")
        self.clock.advance(3601)
        self.send(id="new")
        bob = self.login()
        self.assertEqual([m.get("id") for m in self.messages(bob)], ["new"])
        self.assertEqual(self.stored(), [])

    def test_expired_make_room(self):
        """When the quota is reached, expired messages are dropped to make room."""
        self.send(id="1")
        self.clock.advance(1800)
        self.send(id="2")
        self.clock.advance(1801)
        self.assertEqual(self.send(id="3"), [])
        self.assertEqual([m.get("id") for m in self.stored()], ["2", "3"])
        self.assertError(self.send(id="4"), "service-unavailable", QUOTA_TEXT)


class DeliveryTests(OfflineTestCase):
    def test_delivered_in_order(self):
        """Initial presence gets the stored messages in order, to the full JID, stamped."""
        for n in range(3):
            self.clock.advance(1)
            self.send(body=f"b{n}", id=f"m{n}")
        bob = self.login()
        messages = self.messages(bob)
        self.assertEqual([(m.get("id"), m.findtext(BODY), m.get("to"), m.get("from"))
                          for m in messages],
                         [(f"m{n}", f"b{n}", "bob@example.org/laptop", ALICE)
                          for n in range(3)])
        self.assertEqual([m.find(DELAY).get("stamp") for m in messages],
                         [timestamp(NOW + n) for n in (1, 2, 3)])
        self.assertEqual(self.stored(), [])

    def test_order_is_arrival_order(self):
        """Messages come in the order they arrived even if the clock went backwards."""
        self.send(id="first")
        self.clock.rightNow -= 10
        self.send(id="second")
        bob = self.login()
        self.assertEqual([m.get("id") for m in self.messages(bob)], ["first", "second"])

    def test_delivered_after_own_presence(self):
        """The offline messages follow the session's own presence broadcast."""
        self.send()
        bob = self.login()
        self.assertEqual([s.tag for s in bob.sent], [st.PRESENCE, st.MESSAGE])

    def test_not_at_negative_priority(self):
        """Initial presence with a negative priority gets nothing; nothing is deleted."""
        self.send()
        bob = self.login(priority=-1)
        self.assertEqual(self.messages(bob), [])
        self.assertEqual(len(self.stored()), 1)

    def test_priority_raised(self):
        """A later presence raising the priority to non-negative gets the messages."""
        self.send()
        bob = self.login(priority=-5)
        self.presence("bob@example.org/laptop", -1)
        self.assertEqual(self.messages(bob), [])
        self.presence("bob@example.org/laptop", 0)
        self.assertEqual(len(self.messages(bob)), 1)
        self.presence("bob@example.org/laptop", 3)
        self.assertEqual(len(self.messages(bob)), 1)
        self.assertEqual(self.stored(), [])

    def test_later_presence_does_not_redeliver(self):
        """Presence updates after the initial one do not query the store again."""
        self.send()
        bob = self.login(priority=1)
        self.send(id="m2")     # bob is online: delivered live, not stored
        self.presence("bob@example.org/laptop", 2)
        self.assertEqual([m.get("id") for m in self.messages(bob)], ["m1", "m2"])
        self.assertIsNone(self.messages(bob)[1].find(DELAY))

    def test_only_to_the_new_resource(self):
        """Stored messages go to the resource that became available, not to others."""
        other = self.login("desk", priority=-1)
        self.send()
        bob = self.login("laptop", priority=0)
        self.assertEqual(len(self.messages(bob)), 1)
        self.assertEqual(self.messages(other), [])

    def test_other_users_untouched(self):
        """Bob's login delivers and deletes only bob's messages."""
        self.send()
        self.send(to="alice@example.org", sender="bob@example.org/desk", id="for-alice")
        self.host.session("bob@example.org/desk").close()
        self.login()
        self.assertEqual([m.get("id") for m in self.stored("alice")], ["for-alice"])

    def test_nothing_stored(self):
        """A login with nothing stored sends no message."""
        bob = self.login()
        self.assertEqual(self.messages(bob), [])

    def test_blocked_by_filter_still_deleted(self):
        """Delivery goes through the inbound hooks: a hook dropping it is obeyed."""
        self.send()
        dropped = []

        def drop(message, origin):
            dropped.append(message)
            return dispatch.HANDLED

        self.host.hook(dispatch.MESSAGE_FULL, drop)
        bob = self.login()
        self.assertEqual(self.messages(bob), [])
        self.assertEqual([m.get("to") for m in dropped], ["bob@example.org/laptop"])
        self.assertEqual(self.stored(), [])


class ControlledTestCase(OfflineTestCase):
    """The same, over a storage whose archive calls can be held or fail."""

    def make_storage(self):
        return ControlledStorage()


class FailureTests(ControlledTestCase):
    def test_storage_failure(self):
        """When storing fails the sender gets internal-server-error, without detail."""
        self.archive.failing.add("append")
        self.assertError(self.send(), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)
        self.archive.failing.clear()
        self.assertEqual(self.stored(), [])

    def test_count_failure(self):
        """A failing quota check is a failure to store, too."""
        self.archive.failing.add("count")
        self.assertError(self.send(), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)

    def test_accepted_only_once_stored(self):
        """Nothing is answered while the write is pending; its failure still reaches alice."""
        self.archive.hold.add("append")
        self.archive.failing.add("append")
        self.assertEqual(self.send(), [])
        alice = self.host.session(ALICE)
        self.archive.release()
        self.assertError([s for s in alice.sent if s.tag == st.MESSAGE],
                         "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)

    def test_pending_write_then_stored(self):
        """A pending write that succeeds is answered with nothing at all."""
        self.archive.hold.add("append")
        self.assertEqual(self.send(), [])
        self.archive.release()
        self.assertEqual(self.host.session(ALICE).sent, [])
        self.assertEqual(len(self.stored()), 1)

    def test_read_failure_keeps_messages(self):
        """When reading the store fails at login, nothing is lost; the next login gets it."""
        self.send()
        self.archive.failing.add("query")
        self.login()
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)
        self.archive.failing.clear()
        self.host.session("bob@example.org/laptop").close()
        bob = self.login()
        self.assertEqual(len(self.messages(bob)), 1)

    def test_delete_failure_logged(self):
        """A failed delete after delivery is logged (the messages may come again)."""
        self.send()
        self.archive.failing.add("delete")
        bob = self.login()
        self.assertEqual(len(self.messages(bob)), 1)
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)


class ConcurrencyTests(ControlledTestCase):
    options = {"max_messages": 1}

    def test_concurrent_stores_respect_quota(self):
        """Two messages racing for the last place: one is stored, the other refused."""
        self.archive.hold.add("count")
        first = self.send(id="1")
        second = self.send(id="2")
        self.assertEqual((first, second), ([], []))
        self.archive.release()
        self.assertEqual([m.get("id") for m in self.stored()], ["1"])
        alice = self.host.session(ALICE)
        [error] = [s for s in alice.sent if s.get("type") == "error"]
        self.assertEqual(error.get("id"), "2")

    def test_message_stored_during_delivery_is_kept(self):
        """A message stored while a delivery runs is not deleted with the delivered ones."""
        self.send(id="old")
        self.archive.hold.add("query")
        bob = self.login()
        # Stored concurrently by something outside the lock (an import, another node).
        self.successResultOf(self.archive.inner.append(
            "example.org", "bob", "<message xmlns='jabber:client' id='new'/>", NOW))
        self.archive.hold.clear()
        self.archive.release()
        self.assertEqual([m.get("id") for m in self.messages(bob)], ["old"])
        self.assertEqual([m.get("id") for m in self.stored()], ["new"])

    def test_each_message_delivered_once(self):
        """Two resources coming online together: each message reaches only one of them."""
        self.send(id="m")
        self.archive.hold.add("query")
        laptop = self.login("laptop")
        phone = self.login("phone")
        self.archive.hold.clear()
        self.archive.release()
        got = [m.get("id") for m in self.messages(laptop) + self.messages(phone)]
        self.assertEqual(got, ["m"])
        self.assertEqual(self.stored(), [])

    def test_session_replaced_during_read(self):
        """A session gone by the time the store answers receives nothing; nothing is lost."""
        self.send(id="m")
        self.archive.hold.add("query")
        bob = self.login()
        bob.close()
        self.archive.hold.clear()
        self.archive.release()
        self.assertEqual(self.messages(bob), [])
        self.assertEqual([m.get("id") for m in self.stored()], ["m"])


class UserDeletedTests(ControlledTestCase):
    def test_store_in_flight_purged(self):
        """A message a store in flight writes after the account's deletion is removed."""
        self.archive.hold.add("count")
        self.assertEqual(self.send(), [])
        # What IStorage.delete_user does, then the event it is followed by.
        self.successResultOf(self.storage.accounts.delete("example.org", "bob"))
        self.successResultOf(self.archive.inner.delete("example.org", "bob"))
        self.host.dispatcher.hooks.fire(dispatch.USER_DELETED, JID.parse(BOB))
        self.archive.hold.clear()
        self.archive.release()
        self.assertEqual(self.stored(), [])

    def test_existing_account_untouched(self):
        """USER_DELETED for a name that exists again (re-created) deletes nothing."""
        self.send()
        self.host.dispatcher.hooks.fire(dispatch.USER_DELETED, BOB)
        self.assertEqual(len(self.stored()), 1)


class ConcurrentDeliveryQuotaTests(ControlledTestCase):
    options = {"max_messages": 10}

    def test_message_arriving_for_gone_session_kept(self):
        """A message stored while a delivery is pending survives it and comes next time."""
        self.send(id="old")
        self.archive.hold.add("query")
        bob = self.login()
        bob.close()
        self.assertEqual(self.send(id="new"), [])
        self.archive.hold.clear()
        self.archive.release()
        self.assertEqual([m.get("id") for m in self.stored()], ["old", "new"])
        again = self.login("phone")
        self.assertEqual([m.get("id") for m in self.messages(again)], ["old", "new"])
        self.assertEqual(self.stored(), [])

    def test_live_message_during_read(self):
        """A message arriving live while stored ones are read is not lost or duplicated."""
        self.send(id="old")
        self.archive.hold.add("query")
        bob = self.login()
        self.send(id="live")
        self.archive.hold.clear()
        self.archive.release()
        self.assertEqual(sorted(m.get("id") for m in self.messages(bob)), ["live", "old"])
        self.assertEqual(self.stored(), [])


class StorageDoubleTests(SynchronousTestCase):
    def test_doubles_provide_the_interfaces(self):
        """The test doubles provide IStorage and IArchiveStore."""
        storage = ControlledStorage()
        verifyObject(IStorage, storage)
        verifyObject(IArchiveStore, storage.archive("offline"))
