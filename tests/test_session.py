"""Sessions apart from their transports: attach, detach, SESSION_DETACHED, the pipeline."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import dispatch
from jabberapp.errors import StreamError
from jabberapp.stream.pipeline import OutboundPipeline
from jabberapp.testing import FakeHost, FakeSession, parse
from jabberapp.xml import element
from tests.c2s_bytes import HEADER, World


def message(id, to="alice@example.org/r"):
    return parse(f"<message from='bob@example.org/b' to='{to}' id='{id}'><body>x</body>"
                 f"</message>")


class TransportSwapTests(SynchronousTestCase):
    """A session whose transport is replaced stays the same session."""

    def setUp(self):
        self.world = World()
        self.old = self.world.login("alice", "r")
        self.session = self.old.stream.session
        self.old.feed(b"<presence><show>away</show><priority>5</priority></presence>")
        self.old.take()

    def fresh_stream(self):
        """A new connection past its stream header, not yet attached."""
        transport = self.world.connect(secure=True)
        transport.feed(HEADER)
        transport.take()
        return transport

    def test_replaced_transport_keeps_jid_presence_and_registry_entry(self):
        """After adopt() on a new stream, the JID, presence, priority and registry entry
        are unchanged, stanzas go to the new transport only and the old one is closed."""
        session, old = self.session, self.old
        presence = session.presence
        new = self.fresh_stream()
        new.stream.adopt(session)
        self.assertIs(session.stream, new.stream)
        self.assertIs(new.stream.session, session)
        self.assertEqual(str(session.jid), "alice@example.org/r")
        self.assertEqual((session.available, session.priority), (True, 5))
        self.assertIs(session.presence, presence)
        self.assertIs(self.world.host.sessions.get(session.jid), session)
        self.assertTrue(old.closed)
        old.take()
        self.world.router.route(message("m1"))
        self.assertEqual(old.take(), b"")
        self.assertIn(b"id=\"m1\"", new.take())

    def test_old_connection_loss_does_not_end_the_session(self):
        """When the replaced connection finally goes, the session does not notice."""
        new = self.fresh_stream()
        new.stream.adopt(self.session)
        self.old.drop()
        self.assertFalse(self.session.ended)
        self.assertIs(self.world.host.sessions.get(self.session.jid), self.session)

    def test_detached_session_writes_nowhere(self):
        """Stanzas sent while detached reach no transport, old or new; after attach, the
        next ones go to the new one."""
        session, old = self.session, self.old
        self.assertIs(session.detach(), old.stream)
        self.assertIsNone(old.stream.session)
        self.world.router.route(message("while-detached"))
        self.assertIs(self.world.host.sessions.get(session.jid), session)
        self.assertEqual(old.take(), b"")
        new = self.fresh_stream()
        new.stream.adopt(session)
        self.assertEqual(new.take(), b"")
        self.world.router.route(message("after"))
        self.assertIn(b"id=\"after\"", new.take())
        self.assertEqual(old.take(), b"")

    def test_stanzas_from_the_new_transport_speak_for_the_session(self):
        """A stanza read on the new transport is stamped with the session's JID."""
        bob = self.world.login("bob", "b")
        bob.feed(b"<presence/>")
        bob.take()
        new = self.fresh_stream()
        new.stream.adopt(self.session)
        new.feed(b"<message to='bob@example.org' type='chat'><body>back</body></message>")
        self.assertIn(b"from=\"alice@example.org/r\"", bob.take())


class DetachedTests(SynchronousTestCase):
    """A dropped connection detaches; SESSION_DETACHED decides whether the session stays."""

    def setUp(self):
        self.world = World()
        self.kept = []
        self.world.host.dispatcher.hooks.add(dispatch.SESSION_DETACHED, self.keep)

    def keep(self, session):
        self.kept.append(session)
        return dispatch.HANDLED

    def test_kept_when_a_hook_handles_it(self):
        """A drop with a keeping hook leaves the session bound and detached."""
        transport = self.world.login()
        session = transport.stream.session
        transport.drop()
        self.assertEqual(self.kept, [session])
        self.assertFalse(session.ended)
        self.assertIsNone(session.stream)
        self.assertIs(self.world.host.sessions.get(session.jid), session)

    def test_close_of_a_detached_session_ends_it(self):
        """close() on a kept, detached session ends it at once."""
        transport = self.world.login()
        session = transport.stream.session
        transport.drop()
        session.close(StreamError("connection-timeout"))
        self.assertTrue(session.ended)
        self.assertIsNone(self.world.host.sessions.get(session.jid))

    def test_closed_stream_is_not_kept(self):
        """A client that closes its stream ends the session; the hook is not asked."""
        transport = self.world.login()
        session = transport.stream.session
        transport.feed(b"</stream:stream>")
        transport.drop()
        self.assertEqual(self.kept, [])
        self.assertTrue(session.ended)

    def test_stages_hear_nothing_for_an_ended_session(self):
        """Once a session has ended -- its own unavailable presence included -- nothing sent
        to it reaches the outbound stages."""
        transport = self.world.login()
        transport.feed(b"<presence/>")
        session = transport.stream.session
        seen = []
        self.world.host.outbound.add(lambda s, stanza: seen.append(stanza) or stanza)
        session.close()
        transport.drop()
        session.send(message("late"))
        self.assertTrue(session.ended)
        self.assertEqual(seen, [])

    def test_session_close_is_not_kept(self):
        """A session closed by the server (conflict, shutdown) ends when its connection
        goes; the hook is not asked."""
        transport = self.world.login()
        session = transport.stream.session
        session.close(StreamError("system-shutdown"))
        self.assertIn(b"<system-shutdown", transport.take())
        self.assertFalse(session.ended)
        transport.drop()
        self.assertEqual(self.kept, [])
        self.assertTrue(session.ended)


class PipelineTests(SynchronousTestCase):
    """The stages: order, hold and release, failure, removal."""

    def setUp(self):
        self.host = FakeHost("example.org")
        self.calls = []

    def stage(self, name, result=lambda stanza: stanza):
        def run(session, stanza):
            self.calls.append(name)
            return result(stanza)
        return run

    def test_priority_order(self):
        """Higher priority runs first; ties in registration order."""
        for name, priority in [("low", -10), ("a", 0), ("high", 10), ("b", 0)]:
            self.host.add_outbound_stage(self.stage(name), priority)
        FakeSession(self.host, "bob@example.org/b").send(parse("<message/>"))
        self.assertEqual(self.calls, ["high", "a", "b", "low"])

    def test_hold_and_release(self):
        """A held stanza is not delivered; released, it passes the later stages only."""
        held = []

        def holder(session, stanza):
            held.append(stanza)
            return None

        self.host.add_outbound_stage(self.stage("before"), 10)
        self.host.add_outbound_stage(holder, 0)
        self.host.add_outbound_stage(self.stage("after"), -10)
        self.host.receive("<presence from='alice@example.org/r'/>")
        session = self.host.session("alice@example.org/r")
        session.sent.clear()
        self.calls.clear()
        session.send(parse("<message id='m'/>"))
        self.assertEqual((session.sent, self.calls), ([], ["before"]))
        session.release(held[-1], after=holder)
        self.assertEqual(self.calls, ["before", "after"])
        self.assertEqual([s.get("id") for s in session.sent], ["m"])

    def test_failing_stage_passes_the_stanza_on(self):
        """A stage that raises is logged and the stanza goes on unchanged."""
        def broken(session, stanza):
            raise RuntimeError("bug")

        pipeline = OutboundPipeline()
        pipeline.add(broken)
        pipeline.add(self.stage("next"), -1)
        stanza = element("jabber:client", "message")
        self.assertIs(pipeline.run(None, stanza), stanza)
        self.assertEqual(self.calls, ["next"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_removed(self):
        """A removed stage is not run; release after it runs every stage."""
        pipeline = OutboundPipeline()
        gone = self.stage("gone")
        pipeline.add(gone)
        pipeline.add(self.stage("kept"))
        pipeline.remove(gone)
        self.assertEqual(pipeline.after(gone), pipeline.stages)
        pipeline.run(None, element("jabber:client", "message"))
        self.assertEqual(self.calls, ["kept"])
