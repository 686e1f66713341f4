"""
Presence one user sends keeps its order on the way to each recipient, also while the
roster broadcast waits for the user's roster to come from storage (issue 11 §9).
"""
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import dispatch
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeSession
from tests.extensions.roster.helpers import World, presences

ALICE, BOB = "alice@example.org", "bob@example.org"
SHOW = "{jabber:client}show"


class HeldReads:
    """A key-value store whose reads wait for release() while C{held} is set."""

    def __init__(self, inner):
        self.inner = inner
        self.held = False
        self.waiting = []

    def get(self, *args):
        if not self.held:
            return self.inner.get(*args)
        d = defer.Deferred()
        self.waiting.append((d, args))
        return d

    def release(self):
        """Answer the held reads, in the order they were made; stop holding."""
        self.held = False
        waiting, self.waiting = self.waiting, []
        for d, args in waiting:
            self.inner.get(*args).chainDeferred(d)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class HeldRosterStorage(MemoryStorage):
    """Memory storage whose "roster" store is a L{HeldReads}."""

    def keyvalue(self, name):
        store = super().keyvalue(name)
        if name != "roster":
            return store
        if not hasattr(self, "roster"):
            self.roster = HeldReads(store)
        return self.roster


def shown(stanzas, sender):
    """What C{sender} showed in each presence among C{stanzas}, in order: the <show/>,
    'available' without one, or the presence type."""
    seen = []
    for stanza in presences(stanzas, sender=sender):
        if stanza.get("type") is not None:
            seen.append(stanza.get("type"))
        else:
            seen.append(stanza.findtext(SHOW) or "available")
    return seen


class OrderTestCase(SynchronousTestCase):
    """alice and bob subscribed both ways, bob online; alice's roster not in the cache
    and its next read from storage held."""

    def setUp(self):
        self.storage = HeldRosterStorage()
        self.world = World(storage=self.storage)
        self.host = self.world.host
        for user, contact in (("alice", BOB), ("bob", ALICE)):
            self.world.set_state(user, contact, "Both")
        self.bob = self.world.login(f"{BOB}/b")
        self.world.service.store.forget("alice")
        self.storage.roster.held = True
        self.alice = FakeSession(self.host, f"{ALICE}/a", available=False)

    def seen_by_bob(self):
        return shown(self.bob.sent, f"{ALICE}/a")


class DirectedAfterBroadcastTests(OrderTestCase):
    def test_directed_presence_waits_for_the_pending_broadcast(self):
        """Directed presence sent after initial presence reaches the contact after it,
        although the broadcast waits for the roster read."""
        self.world.send(f"<presence from='{ALICE}/a'><show>away</show></presence>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}'><show>dnd</show></presence>")
        self.storage.roster.release()
        self.assertEqual(self.seen_by_bob(), ["away", "dnd"])

    def test_directed_unavailable_is_not_overtaken(self):
        """Initial presence then directed unavailable to a contact: the contact ends
        seeing the user unavailable."""
        self.world.send(f"<presence from='{ALICE}/a'/>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}' type='unavailable'/>")
        self.storage.roster.release()
        self.assertEqual(self.seen_by_bob(), ["available", "unavailable"])

    def test_held_presence_is_not_sent_before_the_broadcast(self):
        """While the roster read is pending, neither the broadcast nor the directed
        presence after it reaches the contact."""
        self.world.send(f"<presence from='{ALICE}/a'/>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}'><show>dnd</show></presence>")
        self.assertEqual(self.seen_by_bob(), [])
        self.storage.roster.release()
        self.assertEqual(self.seen_by_bob(), ["available", "dnd"])

    def test_several_held_presences_keep_their_order(self):
        """Broadcasts and directed presence queued behind one roster read go out in the
        order they were sent."""
        self.world.send(f"<presence from='{ALICE}/a'><show>away</show></presence>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}'><show>dnd</show></presence>")
        self.world.send(f"<presence from='{ALICE}/a'><show>xa</show></presence>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}'><show>chat</show></presence>")
        self.storage.roster.release()
        self.assertEqual(self.seen_by_bob(), ["away", "dnd", "xa", "chat"])

    def test_held_presence_still_passes_outbound_filters(self):
        """A held directed presence goes through FILTER_OUTBOUND when it is released."""
        filtered = []

        def drop(stanza, origin):
            if stanza.get("to") == BOB and stanza.findtext(SHOW) == "dnd":
                filtered.append(stanza)
                return dispatch.HANDLED
            return None
        self.world.api.hook(dispatch.FILTER_OUTBOUND, drop)
        self.world.send(f"<presence from='{ALICE}/a'/>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}'><show>dnd</show></presence>")
        self.storage.roster.release()
        self.assertEqual(len(filtered), 1)
        self.assertEqual(self.seen_by_bob(), ["available"])

    def test_unavailable_on_close_follows_held_directed_presence(self):
        """A session that never sent initial presence closes while its directed presence
        is held: the recipient gets the available presence, then unavailable."""
        self.world.send(f"<presence from='{ALICE}/a'/>")
        other = FakeSession(self.host, f"{ALICE}/other", available=False)
        self.world.send(f"<presence from='{ALICE}/other' to='{BOB}'/>")
        other.close()
        self.storage.roster.release()
        self.assertEqual(shown(self.bob.sent, f"{ALICE}/other"), ["available", "unavailable"])


class CachedRosterTests(OrderTestCase):
    def setUp(self):
        super().setUp()
        self.storage.roster.release()
        self.world.roster("alice")      # read once: cached from now on
        self.storage.roster.held = True

    def test_cached_roster_sends_at_once(self):
        """With the roster cached, broadcast and directed presence go out at once, with
        no storage read."""
        self.world.send(f"<presence from='{ALICE}/a'><show>away</show></presence>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}'><show>dnd</show></presence>")
        self.assertEqual(self.seen_by_bob(), ["away", "dnd"])
        self.assertEqual(self.storage.roster.waiting, [])
