"""
A graceful shutdown (jabberapp.shutdown, ServerService.stopService): every session ends with
system-shutdown while the extensions are installed, unacknowledged messages and messages
being stored reach offline storage, and storage closes only after the pending writes.
"""
from lxml import etree
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import shutdown
from jabberapp.extensions.offline import offline_messages
from jabberapp.extensions.sm import NS_SM, stream_management
from jabberapp.server import ServerService
from jabberapp.xml import element
from tests.c2s_bytes import World

OFFLINE = {"max_messages": 100, "max_age": 0}
SM = {"resume_timeout": 60, "max_queue": 100, "request_every": 50, "ack_timeout": 0}


class ShutdownTestCase(SynchronousTestCase):
    """One host with stream management and offline storage, memory storage, a Clock."""

    def setUp(self):
        self.world = World()
        self.world.host.install(stream_management, dict(SM))
        self.world.host.install(offline_messages, dict(OFFLINE))

    def enabled(self, resource):
        """alice/<resource> bound, available, stream management with resumption on."""
        transport = self.world.login("alice", resource)
        transport.feed(b"<presence/>")
        transport.feed(f"<enable xmlns='{NS_SM}' resume='true'/>".encode())
        transport.take()
        return transport

    def message(self, id, to):
        msg = element("jabber:client", "message", id=id, to=to, from_="bob@example.org/b",
                      type_="chat")
        etree.SubElement(msg, "{jabber:client}body").text = f"text {id}"
        self.world.router.route(msg)

    def stored(self, user="alice"):
        """The ids of the messages in C{user}'s offline storage, in order."""
        rows = self.successResultOf(
            self.world.storage.archive("offline").query("example.org", user))
        return [etree.fromstring(item.encode()).get("id")
                for _, _, _, item in sorted(rows, key=lambda row: row[0])]

    def pending_store(self):
        """A message to bob (offline) whose storage waits on an unfired Deferred."""
        gate = defer.Deferred()
        accounts = self.world.storage.accounts
        exists = accounts.exists
        accounts.exists = lambda *args: gate.addCallback(lambda _: exists(*args))
        self.message("b1", "bob@example.org")
        return gate


class ShutdownTests(ShutdownTestCase):
    """end_sessions and writes_done."""

    def test_unacknowledged_messages_go_offline_not_to_another_ending_resource(self):
        """Two resources with unacknowledged messages: both end with system-shutdown and
        every message is stored offline once, in order (none re-routed to the other)."""
        first, second = self.enabled("r"), self.enabled("s")
        self.message("m1", "alice@example.org/r")
        self.message("m2", "alice@example.org/s")
        self.message("m3", "alice@example.org/r")
        sessions = [first.stream.session, second.stream.session]
        self.assertEqual(shutdown.end_sessions([self.world.host]), 2)
        self.assertTrue(all(session.ended for session in sessions))
        self.assertIn(b"system-shutdown", first.take())
        self.assertIn(b"system-shutdown", second.take())
        self.assertEqual(sorted(self.stored()), ["m1", "m2", "m3"])
        self.assertLess(self.stored().index("m1"), self.stored().index("m3"))
        self.assertEqual(len(self.world.host.sessions), 0)

    def test_hibernated_session_ends_and_its_messages_go_offline(self):
        """A session waiting for its resumption ends too; what it was sent is stored."""
        transport = self.enabled("r")
        session = transport.stream.session
        transport.drop()
        self.message("m1", "alice@example.org/r")
        self.assertFalse(session.ended)
        shutdown.end_sessions([self.world.host])
        self.assertTrue(session.ended)
        self.assertEqual(self.stored(), ["m1"])

    def test_writes_done_waits_for_offline_writes(self):
        """writes_done fires only once the offline store of a message is over."""
        gate = self.pending_store()
        d = shutdown.writes_done([self.world.host], self.world.clock, 10)
        self.world.clock.advance(1)
        self.assertNoResult(d)
        gate.callback(None)
        self.world.clock.advance(shutdown.POLL_INTERVAL)
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(self.stored("bob"), ["b1"])

    def test_writes_done_is_bounded(self):
        """A write that never ends: writes_done gives up after the timeout (False)."""
        self.pending_store()
        d = shutdown.writes_done([self.world.host], self.world.clock, 10)
        self.world.clock.advance(9.9)
        self.assertNoResult(d)
        self.world.clock.advance(0.2)
        self.assertIs(self.successResultOf(d), False)


class StopServiceTests(ShutdownTestCase):
    """ServerService.stopService runs the steps in order."""

    def service(self):
        """A ServerService around the world's host, as _start leaves it (no listeners)."""
        service = ServerService.__new__(ServerService)
        service.running = 1
        service.ports, service.components, service.s2s = [], None, None
        service.hosts = {"example.org": self.world.host}
        service.storage = self.world.storage
        service.reactor = self.world.clock
        return service

    def test_storage_closes_after_sessions_and_writes(self):
        """Sessions end and their messages are stored while the extensions are installed;
        storage closes only once a pending offline write is over, after the unload."""
        transport = self.enabled("r")
        self.message("m1", "alice@example.org/r")
        gate = self.pending_store()
        d = self.service().stopService()
        self.assertTrue(transport.stream is None or transport.stream.session is None)
        self.assertNoResult(d)
        self.assertFalse(self.world.storage.closed)
        self.assertIn("offline", self.world.host.extensions)
        gate.callback(None)
        self.world.clock.advance(shutdown.POLL_INTERVAL)
        self.successResultOf(d)
        self.assertEqual(self.world.host.extensions, {})
        self.assertTrue(self.world.storage.closed)
        self.world.storage.closed = False
        self.assertEqual((self.stored(), self.stored("bob")), (["m1"], ["b1"]))
