"""
XEP-0198 stream management over the core's sans-I/O c2s stream: plain bytes in and out.
"""
import re

from lxml import etree
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp.extensions.offline import offline_messages
from jabberapp.extensions.roster.extension import roster
from jabberapp.extensions.roster.subscription import State
from jabberapp.extensions.sm import NS_SM, SMManager, stream_management
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.jid import JID
from jabberapp.stream import intake
from jabberapp.xml import element
from tests.c2s_bytes import World

OPTIONS = {"resume_timeout": 60, "max_queue": 10, "request_every": 5, "ack_timeout": 30}


def sm(name, **attrs):
    """A stream management nonza as bytes."""
    attributes = "".join(f" {k}='{v}'" for k, v in attrs.items())
    return f"<{name} xmlns='{NS_SM}'{attributes}/>".encode()


def attr(data, tag, name):
    match = re.search(rb"<" + tag.encode() + rb"\b[^>]*\b" + name.encode() + rb"=\"([^\"]*)\"",
                      data)
    if match is None:
        raise AssertionError(f"no <{tag} {name}=…> in {data!r}")
    return match.group(1).decode()


def ids(data):
    """The ids of the messages in C{data}, in order."""
    return re.findall(rb"<message [^>]*\bid=\"([^\"]*)\"", data)


class StreamManagementTests(SynchronousTestCase):
    """Enable, acks, the queue, resumption and the end of a session."""

    def setUp(self):
        self.world = World()
        self.world.host.install(stream_management, dict(OPTIONS))

    def message(self, id, to="alice@example.org/r", type="chat", body=True):
        msg = element("jabber:client", "message", id=id, to=to, from_="bob@example.org/b",
                      type_=type)
        if body:
            etree.SubElement(msg, "{jabber:client}body").text = f"text {id}"
        self.world.router.route(msg)

    def enabled(self, resume=True):
        """alice/r bound, available, stream management enabled; the transport."""
        transport = self.world.login("alice", "r")
        transport.feed(b"<presence/>")
        transport.feed(sm("enable", resume="true") if resume else sm("enable"))
        out = transport.take()
        self.assertIn(b"<enabled", out)
        return transport

    def resume(self, previd, h):
        transport = self.world.secure()
        self.world.scram(transport)
        transport.feed(sm("resume", previd=previd, h=h))
        return transport

    def test_interfaces(self):
        """The plugin provides IExtension and its manager IStreamFeature."""
        verifyObject(IExtension, stream_management)
        verifyObject(IStreamFeature, SMManager(self.world.host, 1, 1, 1))

    def test_advertised_after_authentication(self):
        """<sm/> is offered after SASL, not before."""
        transport = self.world.connect()
        transport.feed(b"<?xml version='1.0'?><stream:stream to='example.org' version='1.0' "
                       b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        self.assertNotIn(b"urn:xmpp:sm:3", transport.take())
        transport = self.world.secure()
        self.assertIn(b"<sm xmlns=\"urn:xmpp:sm:3\"/>", self.world.scram(transport))

    def test_enable_before_bind_fails(self):
        """<enable/> before binding is <failed/> with unexpected-request."""
        transport = self.world.secure()
        self.world.scram(transport)
        transport.feed(sm("enable"))
        out = transport.take()
        self.assertIn(b"<failed", out)
        self.assertIn(b"unexpected-request", out)

    def test_enable_with_resumption_and_twice(self):
        """resume='true' gives an id and max; a second <enable/> is <failed/>."""
        transport = self.world.login()
        transport.feed(sm("enable", resume="true"))
        out = transport.take()
        self.assertGreaterEqual(len(attr(out, "enabled", "id")), 20)
        self.assertEqual(attr(out, "enabled", "max"), "60")
        transport.feed(sm("enable"))
        self.assertIn(b"unexpected-request", transport.take())

    def test_inbound_count(self):
        """<r/> is answered with the number of stanzas the client sent since <enable/>."""
        transport = self.enabled()
        transport.feed(b"<message to='bob@example.org' id='m1'><body>x</body></message>"
                       b"<iq type='get' id='i1'><ping xmlns='urn:xmpp:ping'/></iq>"
                       b"<presence to='bob@example.org' type='probe'/>" + sm("r"))
        self.assertIn(b"<a xmlns=\"urn:xmpp:sm:3\" h=\"3\"/>", transport.take())

    def test_acks_trim_the_queue_and_requests(self):
        """Stanzas stay queued until acknowledged; <r/> follows the fifth unacknowledged one."""
        transport = self.enabled()
        for n in range(5):
            self.message(f"m{n}")
        self.assertNotIn(b"<r ", transport.take())
        self.world.clock.advance(0)
        self.assertIn(b"<r xmlns=\"urn:xmpp:sm:3\"/>", transport.take())
        state = transport.stream.session.state["sm"]
        self.assertEqual(len(state.queue), 5)
        transport.feed(sm("a", h=3))
        self.assertEqual([s.get("id") for _, s in state.queue], ["m3", "m4"])

    def test_handled_count_too_high(self):
        """An ack of more than was sent is a stream error naming both counts."""
        transport = self.enabled()
        self.message("m1")
        transport.take()
        transport.feed(sm("a", h=2))
        out = transport.take()
        self.assertIn(b"undefined-condition", out)
        self.assertIn(b"handled-count-too-high", out)
        self.assertEqual((attr(out, "handled-count-too-high", "h"),
                          attr(out, "handled-count-too-high", "send-count")), ("2", "1"))

    def test_queue_overflow_closes(self):
        """Past max_queue unacknowledged stanzas the session is closed with policy-violation."""
        transport = self.enabled()
        for n in range(11):
            self.message(f"m{n}")
        out = transport.take()
        self.assertIn(b"policy-violation", out)

    def test_resume_resends_in_order_once(self):
        """A dropped session is kept; a new stream resumes it and gets every stanza after
        the client's h, in order, once; the session is the same and stays bound."""
        old = self.enabled()
        session = old.stream.session
        previd = session.state["sm"].id
        old.feed(b"<message to='bob@example.org' type='headline' id='a1'><body>x</body></message>")
        self.message("m1")
        self.message("m2")
        old.take()
        old.drop()
        self.assertIs(self.world.host.sessions.get(session.jid), session)
        self.message("m3")
        self.message("m4")
        self.assertEqual(old.take(), b"")
        new = self.resume(previd, 1)
        out = new.take()
        self.assertEqual(attr(out, "resumed", "previd"), previd)
        self.assertEqual(attr(out, "resumed", "h"), "1")     # her message a1
        self.assertEqual(ids(out), [b"m2", b"m3", b"m4"])
        self.assertIs(new.stream.session, session)
        self.assertTrue(session.available)
        self.message("m5")
        self.assertEqual(ids(new.take()), [b"m5"])

    def test_resume_takes_over_an_attached_session(self):
        """A resumption while the old connection still looks alive closes the old stream."""
        old = self.enabled()
        session = old.stream.session
        self.message("m1")
        new = self.resume(session.state["sm"].id, 0)
        self.assertEqual(ids(new.take()), [b"m1"])
        self.assertTrue(old.closed)
        old.drop()      # the old connection goes; the session is not affected
        self.assertIs(session.stream, new.stream)
        self.assertFalse(session.ended)

    def test_resume_unknown_or_other_account(self):
        """An unknown id, or another account's, is <failed/> with item-not-found."""
        old = self.enabled()
        previd = old.stream.session.state["sm"].id
        old.drop()
        transport = self.world.secure()
        self.world.scram(transport, user="bob")
        transport.feed(sm("resume", previd=previd, h=0))
        out = transport.take()
        self.assertIn(b"item-not-found", out)
        self.assertIsNone(transport.stream.session)
        out = self.resume("nonsense", 0).take()
        self.assertIn(b"item-not-found", out)

    def test_without_resume_a_drop_ends(self):
        """Enabled without resumption, a drop ends the session."""
        transport = self.enabled(resume=False)
        session = transport.stream.session
        transport.drop()
        self.assertTrue(session.ended)

    def test_timeout_stores_messages_offline(self):
        """A session not resumed in time ends; its unacknowledged chat messages go to
        offline storage with a delay of when they were sent, IQs are answered with an
        error, presence is dropped; the id is forgotten."""
        self.world.host.install(offline_messages, {"max_messages": 100, "max_age": 0})
        transport = self.enabled()
        session = transport.stream.session
        previd = session.state["sm"].id
        bob = self.world.login("bob", "b")
        bob.feed(b"<presence/>")
        self.message("m1")
        transport.drop()
        self.world.clock.advance(10)
        self.message("m2")
        self.world.router.route(element("jabber:client", "iq", id="q1", type_="get",
                                        to="alice@example.org/r", from_="bob@example.org/b"))
        self.world.clock.advance(60)
        self.assertTrue(session.ended)
        self.assertIsNone(self.world.host.sessions.get(session.jid))
        self.assertIn(b"service-unavailable", bob.take())
        stored = self.successResultOf(
            self.world.storage.archive("offline").query("example.org", "alice"))
        blob = repr([item for _, _, _, item in stored])
        self.assertLess(blob.index("m1"), blob.index("m2"))
        self.assertIn("urn:xmpp:delay", blob)
        self.assertIn("1970-01-01T00:00:10.000Z", blob)
        self.assertIn(b"item-not-found", self.resume(previd, 0).take())

    def test_timeout_reroutes_to_another_resource(self):
        """Unacknowledged messages of an ended session go to another available resource."""
        transport = self.enabled()
        other = self.world.login("alice", "other")
        other.feed(b"<presence/>")
        other.take()
        self.message("m1")
        transport.drop()
        self.world.clock.advance(60)
        self.assertEqual(ids(other.take()), [b"m1"])

    def test_clean_close_reroutes_at_once(self):
        """The client's </stream:stream> ends the session at once; unacknowledged
        messages go to another resource."""
        transport = self.enabled()
        session = transport.stream.session
        other = self.world.login("alice", "other")
        other.feed(b"<presence/>")
        other.take()
        self.message("m1")
        transport.feed(b"</stream:stream>")
        transport.drop()
        self.assertTrue(session.ended)
        self.assertIn(b"id=\"m1\"", other.take())

    def test_client_asks_for_a_shorter_max(self):
        """A client's max below resume_timeout is the session's; a longer one is not."""
        transport = self.world.login("alice", "r")
        transport.feed(sm("enable", resume="true", max=20))
        self.assertEqual(attr(transport.take(), "enabled", "max"), "20")
        session = transport.stream.session
        transport.drop()
        self.world.clock.advance(19)
        self.assertFalse(session.ended)
        self.world.clock.advance(1)
        self.assertTrue(session.ended)
        transport = self.world.login("alice", "s")
        transport.feed(sm("enable", resume="true", max=6000))
        self.assertEqual(attr(transport.take(), "enabled", "max"), "60")

    def test_hibernation_keeps_presence_until_the_timeout(self):
        """While a session awaits its resumption its contacts see it available and get no
        unavailable presence; they get it when it times out."""
        self.world.host.install(roster, {"max_items": 100})
        store = self.world.host.services["roster"].store
        for user, contact in (("alice", "bob@example.org"), ("bob", "alice@example.org")):
            self.successResultOf(store.modify(user, lambda r, c=contact: r.set_state(
                JID.parse(c), State.named("Both"))))
        bob = self.world.login("bob", "b")
        bob.feed(b"<presence/>")
        alice = self.enabled()
        self.assertIn(b"from=\"alice@example.org/r\"", bob.take())
        alice.drop()
        self.world.clock.advance(59)
        self.assertEqual(bob.take(), b"")
        bob.feed(b"<presence type='probe' to='alice@example.org'/>")
        probe = bob.take()
        self.assertIn(b"from=\"alice@example.org/r\"", probe)
        self.assertNotIn(b"unavailable", probe)
        self.world.clock.advance(1)
        out = bob.take()
        self.assertIn(b"type=\"unavailable\"", out)
        self.assertIn(b"from=\"alice@example.org/r\"", out)

    def test_without_resume_a_drop_stores_unacknowledged_messages(self):
        """Enabled without resumption, a drop ends the session at once and its
        unacknowledged messages go to offline storage."""
        self.world.host.install(offline_messages, {"max_messages": 100, "max_age": 0})
        transport = self.enabled(resume=False)
        self.message("m1")
        self.message("m2", type="normal")
        transport.drop()
        stored = self.successResultOf(
            self.world.storage.archive("offline").query("example.org", "alice"))
        blob = repr([item for _, _, _, item in stored])
        self.assertLess(blob.index("m1"), blob.index("m2"))

    def test_acknowledged_stanzas_are_not_rerouted(self):
        """What the client acknowledged before the end is not delivered again."""
        transport = self.enabled()
        other = self.world.login("alice", "other")
        other.feed(b"<presence/>")
        other.take()
        self.message("m1")
        self.message("m2")
        transport.feed(sm("a", h=2))        # the other resource's presence and m1
        transport.feed(b"</stream:stream>")
        transport.drop()
        self.assertEqual(ids(other.take()), [b"m2"])

    def test_resume_twice_sends_nothing_twice(self):
        """Two drops and two resumptions: each resend starts after the client's h, so every
        message reaches the client once over all its connections."""
        first = self.enabled()
        previd = first.stream.session.state["sm"].id
        self.message("m1")
        self.message("m2")
        got = ids(first.take())
        first.drop()
        self.message("m3")
        second = self.resume(previd, 2)
        got += ids(second.take())
        self.message("m4")
        got += ids(second.take())
        second.drop()
        self.message("m5")
        third = self.resume(previd, 4)
        got += ids(third.take())
        self.assertEqual(got, [b"m1", b"m2", b"m3", b"m4", b"m5"])

    def test_other_account_learns_nothing(self):
        """The refusal of another account's id is byte for byte the refusal of an id that
        never existed, and the session stays resumable by its owner."""
        old = self.enabled()
        previd = old.stream.session.state["sm"].id
        old.drop()
        transport = self.world.secure()
        self.world.scram(transport, user="bob")
        transport.feed(sm("resume", previd=previd, h=0))
        theirs = transport.take()
        transport = self.world.secure()
        self.world.scram(transport, user="bob")
        transport.feed(sm("resume", previd="x" * len(previd), h=0))
        self.assertEqual(theirs, transport.take())
        self.assertIn(b"<resumed", self.resume(previd, 0).take())

    def test_expired_session_tells_its_owner_its_h(self):
        """A resumption of a session that timed out is item-not-found with the h it had
        reached for its owner, and without it -- as for an unknown id -- for anyone else."""
        transport = self.enabled()
        previd = transport.stream.session.state["sm"].id
        transport.feed(b"<message to='bob@example.org' id='a1' type='chat'><body>x</body>"
                       b"</message><presence to='bob@example.org' type='probe'/>")
        transport.drop()
        self.world.clock.advance(60)
        out = self.resume(previd, 0).take()
        self.assertIn(b"item-not-found", out)
        self.assertEqual(attr(out, "failed", "h"), "2")
        bob = self.world.secure()
        self.world.scram(bob, user="bob")
        bob.feed(sm("resume", previd=previd, h=0))
        theirs = bob.take()
        self.assertIn(b"item-not-found", theirs)
        self.assertNotIn(b" h=", theirs)

    def test_resume_with_h_too_high(self):
        """A <resume/> acknowledging more than was sent is <failed/> with the server's h;
        the new stream is not attached and the session may still be resumed."""
        old = self.enabled()
        previd = old.stream.session.state["sm"].id
        self.message("m1")
        old.drop()
        transport = self.resume(previd, 5)
        out = transport.take()
        self.assertIn(b"<failed", out)
        self.assertEqual(attr(out, "failed", "h"), "0")
        self.assertIsNone(transport.stream.session)
        self.assertEqual(ids(self.resume(previd, 0).take()), [b"m1"])

    def test_h_wraps_at_2_32(self):
        """Acknowledgements are counted modulo 2^32 (XEP-0198 §5)."""
        transport = self.enabled()
        state = transport.stream.session.state["sm"]
        state.acked = state.sent = 2 ** 32 - 1
        self.message("m1")
        transport.feed(sm("a", h=0))
        self.assertEqual(len(state.queue), 0)
        self.assertFalse(transport.closed)


class HandledCountTests(SynchronousTestCase):
    """Session.handled and intake.handled_when: the count of handled stanzas, in order."""

    def setUp(self):
        self.world = World()
        self.session = self.world.login().stream.session

    def take(self, n=1):
        """The stream counts C{n} stanzas."""
        self.session.received += n

    def test_already_fired_leaves_nothing(self):
        """A write that is already over when registered is no wait."""
        self.session.handled_when(self.session.received + 1, defer.succeed(None))
        self.take()
        self.assertEqual((self.session.handled, self.session.unhandled), (1, None))

    def test_continuation_joins_its_stanza(self):
        """A write registered later for an older stanza (intake.continuing) holds h at
        that stanza until both are over."""
        held, later = defer.Deferred(), defer.Deferred()
        fired = []
        self.world.host.dispatcher.hooks.add(dispatch.SESSION_HANDLED, fired.append)
        intake.continuing(intake.Continuation(self.session, 1), intake.handled_when, held)
        self.take(3)
        self.assertEqual(intake.handling(), None)
        intake.continuing(intake.Continuation(self.session, 1), intake.handled_when, later)
        self.assertEqual(self.session.handled, 0)
        held.callback(None)
        self.assertEqual((self.session.handled, fired), (0, []))
        later.callback(None)
        self.assertEqual((self.session.handled, fired), (3, [self.session]))

    def test_too_late_is_ignored(self):
        """A write registered for a stanza already counted as handled changes nothing:
        h never goes back."""
        self.take(2)
        d = defer.Deferred()
        intake.continuing(intake.Continuation(self.session, 2), intake.handled_when, d)
        self.assertEqual((self.session.handled, self.session.unhandled), (2, None))
        d.callback("result")
        self.assertEqual(self.successResultOf(d), "result")

    def test_outside_an_intake_nothing_waits(self):
        """handled_when outside a client stanza's handling registers nothing."""
        d = defer.Deferred()
        self.assertIs(intake.handled_when(d), d)
        self.assertIsNone(self.session.unhandled)

    def test_drop_detaches_and_closes_without_a_stream_end(self):
        """Session.drop: nothing more is written or read, the transport is closed, and an
        unkept session ends."""
        transport = self.session.stream.transport
        transport.take()
        self.session.drop()
        self.assertTrue(transport.closed)
        self.assertEqual(transport.take(), b"")
        self.assertTrue(self.session.ended)
        transport.drop()
