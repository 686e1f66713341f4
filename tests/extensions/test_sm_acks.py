"""
XEP-0198 acknowledgements that wait for storage, and the ack timeout, over the core's
sans-I/O c2s stream with a held offline store and task.Clock.
"""
import re

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.extensions.blocking import blocking
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.offline import offline_messages
from jabberapp.extensions.sm import stream_management
from jabberapp.testing import HeldKeyValue
from jabberapp.xml import element
from tests.c2s_bytes import CREDENTIALS, World
from tests.extensions.test_sm import OPTIONS, attr, ids, sm

TO_BOB = b"<message to='bob@example.org' type='chat' id='%s'><body>hi</body></message>"
TO_CAROL = b"<message to='carol@example.org' type='chat' id='%s'><body>hi</body></message>"
PING = b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"


class HeldArchive:
    """An IArchiveStore whose appends complete (or fail) only when the test says so."""

    def __init__(self, inner):
        self.inner = inner
        self.held = []          # (Deferred, args) of appends not completed yet

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def append(self, *args):
        d = defer.Deferred()
        self.held.append((d, args))
        return d

    def commit(self):
        """Complete the held appends, in order."""
        while self.held:
            d, args = self.held.pop(0)
            self.inner.append(*args).chainDeferred(d)

    def fail(self):
        """Fail the held appends (the database is gone)."""
        while self.held:
            d, _ = self.held.pop(0)
            d.errback(OSError("disk on fire"))


def acks(data):
    """The h of every <a/> in C{data}, in order."""
    return [int(h) for h in re.findall(rb"<a xmlns=\"urn:xmpp:sm:3\" h=\"(\d+)\"/>", data)]


class AckAfterStorageTests(SynchronousTestCase):
    """h covers a stanza stored offline only once the write has committed."""

    def setUp(self):
        self.world = World()
        storage = self.world.storage
        self.archive = HeldArchive(storage.archive("offline"))
        opened = storage.archive
        storage.archive = lambda name: self.archive if name == "offline" else opened(name)
        self.world.host.install(offline_messages, {"max_messages": 2, "max_age": 0})
        self.world.host.install(stream_management, dict(OPTIONS))
        self.alice = self.world.login("alice", "r")
        self.alice.feed(b"<presence/>" + sm("enable", resume="true"))
        self.previd = attr(self.alice.take(), "enabled", "id")
        self.session = self.alice.stream.session

    def stored(self):
        rows = self.successResultOf(self.world.storage.archive("offline").query(
            "example.org", "bob"))
        return [item for _, _, _, item in rows]

    def test_delivered_stanzas_wait_for_nothing(self):
        """Stanzas delivered or answered at once are counted at once, with no record."""
        bob = self.world.login("bob", "b")
        bob.feed(b"<presence/>")
        self.alice.feed(TO_BOB % b"m1" + PING + sm("r"))
        self.assertEqual(acks(self.alice.take()), [2])     # m1, the ping
        self.assertIsNone(self.session.unhandled)

    def test_h_waits_for_the_offline_write(self):
        """An <r/> while a message to an offline user is being written is answered at once
        without it (and without what came after it); once the write commits an unsolicited
        <a/> covers everything."""
        self.alice.feed(TO_BOB % b"m1" + PING + sm("r"))
        self.assertEqual(acks(self.alice.take()), [0])
        self.assertEqual(self.stored(), [])
        self.alice.feed(sm("r"))
        self.assertEqual(acks(self.alice.take()), [0])
        self.archive.commit()
        self.assertEqual(len(self.stored()), 1)
        self.assertEqual(acks(self.alice.take()), [2])
        self.assertIsNone(self.session.unhandled)

    def test_no_unsolicited_ack_when_none_was_asked(self):
        """A write that commits with no <r/> answered short sends nothing; the next <r/>
        gets the full count."""
        self.alice.feed(TO_BOB % b"m1")
        self.archive.commit()
        self.assertEqual(self.alice.take(), b"")
        self.alice.feed(sm("r"))
        self.assertEqual(acks(self.alice.take()), [1])

    def test_count_is_a_prefix(self):
        """h stops before the oldest message still being written, whatever was handled
        after it: a later write committing first does not move it."""
        self.world.storage.accounts.create("example.org", "carol", CREDENTIALS)
        self.alice.feed(TO_BOB % b"m1" + TO_CAROL % b"m2" + PING)
        first, second = self.archive.held
        self.archive.held = [second]
        self.archive.commit()       # carol's first
        self.alice.feed(sm("r"))
        self.assertEqual(acks(self.alice.take()), [0])
        self.archive.held = [first]
        self.archive.commit()
        self.assertEqual(acks(self.alice.take()), [3])

    def test_failed_write_is_bounced_before_it_is_counted(self):
        """A write that fails is answered with internal-server-error; only then does h
        cover the stanza (it was handled: with an error), never as stored."""
        self.alice.feed(TO_BOB % b"m1" + sm("r"))
        self.assertEqual(acks(self.alice.take()), [0])
        self.archive.fail()
        out = self.alice.take()
        self.assertLess(out.index(b"internal-server-error"), out.index(b"<a xmlns"))
        self.assertEqual(acks(out), [1])
        self.assertEqual(self.stored(), [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_refused_for_quota_is_bounced_then_counted(self):
        """A message refused because the recipient's offline storage is full is counted
        once its error is sent."""
        self.alice.feed(TO_BOB % b"m1" + TO_BOB % b"m2")
        self.archive.commit()
        self.alice.feed(TO_BOB % b"m3" + sm("r"))
        out = self.alice.take()
        self.assertIn(b"service-unavailable", out)
        self.assertEqual(acks(out), [3])
        self.assertEqual(len(self.stored()), 2)

    def test_resumption_waits_for_the_write(self):
        """A resumption while a message of the dropped connection is being written is
        answered once the write is over, with an h that covers it: the client does not
        send it again."""
        self.alice.feed(TO_BOB % b"m1")
        self.alice.drop()
        new = self.world.secure()
        self.world.scram(new)
        new.feed(sm("resume", previd=self.previd, h=0))
        self.assertEqual(new.take(), b"")
        self.archive.commit()
        out = new.take()
        self.assertEqual(attr(out, "resumed", "h"), "1")
        self.assertIs(new.stream.session, self.session)

    def test_resumption_of_a_session_that_ended_while_writing(self):
        """A resumption waiting for a write finds the session gone if it timed out
        meanwhile: item-not-found."""
        self.alice.feed(TO_BOB % b"m1")
        self.alice.drop()
        new = self.world.secure()
        self.world.scram(new)
        new.feed(sm("resume", previd=self.previd, h=0))
        self.world.clock.advance(OPTIONS["resume_timeout"])
        self.assertIn(b"item-not-found", new.take())
        self.archive.commit()
        self.assertEqual(len(self.stored()), 1)


class HeldStanzaTests(SynchronousTestCase):
    """A stanza held on its way (blocking loading a blocklist) is waited for as well."""

    def setUp(self):
        self.world = World()
        storage = self.world.storage
        self.archive = HeldArchive(storage.archive("offline"))
        self.lists = HeldKeyValue(storage.keyvalue("blocklist"))
        archive, keyvalue = storage.archive, storage.keyvalue
        storage.archive = lambda name: self.archive if name == "offline" else archive(name)
        storage.keyvalue = lambda name: self.lists if name == "blocklist" else keyvalue(name)
        for extension, options in ((service_discovery, None),
                                   (blocking, {"max_items": 10, "cache_size": 10}),
                                   (offline_messages, {"max_messages": 10, "max_age": 0}),
                                   (stream_management, dict(OPTIONS))):
            self.world.host.install(extension, options)
        self.alice = self.world.login("alice", "r")
        self.lists.flush()          # alice's own blocklist, loaded at bind
        self.alice.feed(sm("enable"))
        self.alice.take()

    def test_blocklist_load_then_offline_write(self):
        """alice's message to bob, whose blocklist is not loaded yet, is counted once the
        list is loaded and the message stored offline -- not when the hook took it."""
        self.alice.feed(TO_BOB % b"m1" + sm("r"))
        self.assertEqual(acks(self.alice.take()), [0])
        self.lists.flush()
        self.alice.feed(sm("r"))
        self.assertEqual(acks(self.alice.take()), [0])     # now being written
        self.archive.commit()
        self.assertEqual(acks(self.alice.take()), [1])


class AckTimeoutTests(SynchronousTestCase):
    """An <r/> not answered within ack_timeout drops the connection."""

    def setUp(self):
        self.world = World()
        self.world.host.install(stream_management, dict(OPTIONS, request_every=1))

    def enabled(self, resume=True, resource="r"):
        transport = self.world.login("alice", resource)
        transport.feed(b"<presence/>")
        transport.feed(sm("enable", resume="true") if resume else sm("enable"))
        out = transport.take()
        return transport, transport.stream.session, (
            attr(out, "enabled", "id") if resume else None)

    def message(self, id, to="alice@example.org/r"):
        msg = element("jabber:client", "message", id=id, to=to, from_="bob@example.org/b",
                      type_="chat")
        msg.append(element("jabber:client", "body", text="hello"))
        self.world.router.route(msg)

    def request(self):
        """A message to alice/r and the <r/> that follows it on the next turn."""
        self.message("m1")
        self.world.clock.advance(0)

    def test_unanswered_request_drops_a_resumable_session(self):
        """No <a/> within ack_timeout: the connection is closed without a stream end, the
        session stays bound awaiting its resumption, and resumes with what it missed."""
        transport, session, previd = self.enabled()
        self.request()
        self.assertIn(b"<r xmlns", transport.take())
        self.world.clock.advance(OPTIONS["ack_timeout"] - 1)
        self.assertFalse(transport.closed)
        self.world.clock.advance(1)
        self.assertTrue(transport.closed)
        self.assertNotIn(b"</stream:stream>", transport.take())
        self.assertIsNone(session.stream)
        self.assertFalse(session.ended)
        self.assertIs(self.world.host.sessions.get(session.jid), session)
        transport.drop()        # the real end of the connection, later: nothing changes
        self.assertFalse(session.ended)
        self.message("m2")
        new = self.world.secure()
        self.world.scram(new)
        new.feed(sm("resume", previd=previd, h=0))
        self.assertEqual(ids(new.take()), [b"m1", b"m2"])

    def test_unanswered_request_ends_a_session_without_resumption(self):
        """Without resumption the dropped session ends, and its unacknowledged message goes
        to the account's other resource."""
        transport, session, _ = self.enabled(resume=False)
        other = self.world.login("alice", "other")
        other.feed(b"<presence/>")
        other.take()
        self.request()
        self.world.clock.advance(OPTIONS["ack_timeout"])
        self.assertTrue(transport.closed)
        self.assertTrue(session.ended)
        self.assertEqual(ids(other.take()), [b"m1"])

    def test_an_answer_stops_the_timer(self):
        """An <a/> in time, even one acknowledging part of the queue, keeps the connection."""
        transport, session, _ = self.enabled()
        self.request()
        self.world.clock.advance(OPTIONS["ack_timeout"] - 1)
        transport.feed(sm("a", h=1))
        self.world.clock.advance(OPTIONS["ack_timeout"])
        self.assertFalse(transport.closed)
        self.assertIs(session.stream, transport.stream)
        self.assertEqual(self.world.clock.getDelayedCalls(), [])

    def test_zero_waits_forever(self):
        """ack_timeout = 0 starts no timer."""
        world = self.world = World()
        world.host.install(stream_management, dict(OPTIONS, request_every=1, ack_timeout=0))
        transport, session, _ = self.enabled()
        self.request()
        self.assertIn(b"<r xmlns", transport.take())
        self.assertEqual(world.clock.getDelayedCalls(), [])
        world.clock.advance(3600)
        self.assertIs(session.stream, transport.stream)

    def test_timer_ends_with_the_session(self):
        """A session that closes with an <r/> outstanding leaves no timer behind."""
        transport, session, _ = self.enabled(resume=False)
        self.request()
        transport.feed(b"</stream:stream>")
        transport.drop()
        self.assertTrue(session.ended)
        self.assertEqual(self.world.clock.getDelayedCalls(), [])
