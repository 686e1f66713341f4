"""
XEP-0198's queue of serialised stanzas: written once as kept, resumed on another kind of
transport, parsed back only where elements are needed; the <r/> of many sessions batched.
"""
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.c2s.stream import CORE_STEPS
from jabberapp.extensions.sm import NS_SM, stream_management
from jabberapp.stream.framed import FramedClientStream
from jabberapp.xml import element, serialize
from tests.c2s_bytes import World
from tests.test_framed import OPEN, FramedTransport, FramedWorld

OPTIONS = {"resume_timeout": 60, "max_queue": 10, "request_every": 2, "ack_timeout": 30}


def sm(name, **attrs):
    """A stream management nonza as bytes."""
    attributes = "".join(f" {k}='{v}'" for k, v in attrs.items())
    return f"<{name} xmlns='{NS_SM}'{attributes}/>".encode()


class QueuedBytesTests(SynchronousTestCase):
    """The stage keeps and writes bytes; resumption and the end use them."""

    def setUp(self):
        self.world = World()
        self.world.host.install(stream_management, dict(OPTIONS))

    def message(self, id, to="alice@example.org/r"):
        msg = element("jabber:client", "message", id=id, to=to, from_="bob@example.org/b",
                      type_="chat")
        etree.SubElement(msg, "{jabber:client}body").text = f"text {id}"
        self.world.router.route(msg)
        return msg

    def enabled(self, user="alice", resource="r"):
        transport = self.world.login(user, resource)
        transport.feed(sm("enable", resume="true"))
        transport.take()
        return transport

    def test_written_bytes_are_the_kept_bytes(self):
        """What the client is sent is exactly the bytes kept, which a later change of the
        shared element does not alter."""
        transport = self.enabled()
        msg = self.message("m1")
        out = transport.take()
        state = transport.stream.session.state["sm"]
        [(_, data)] = state.kept
        self.assertEqual(out, data)
        self.assertEqual(data, serialize(msg))
        msg.set("id", "changed")
        self.assertEqual([s.get("id") for _, s in state.queue], ["m1"])

    def test_a_stage_after_ours_still_gets_elements(self):
        """A stage registered after stream management's sees the stanza as an element and
        the session writes what it returns; the stanza is still kept."""
        seen = []

        def later(session, stanza):
            seen.append(stanza.get("id"))
            return stanza

        self.world.host.outbound.add(later, priority=-2000)
        transport = self.enabled()
        self.message("m1")
        self.assertEqual(seen, ["m1"])
        self.assertIn(b'id="m1"', transport.take())
        self.assertEqual(len(transport.stream.session.state["sm"].kept), 1)

    def test_resumed_on_a_framed_stream(self):
        """Stanzas queued on a TCP stream and resumed on a WebSocket-framed one arrive as
        one standalone element per frame, each what the framed stream itself writes."""
        old = self.enabled()
        session = old.stream.session
        previd = session.state["sm"].id
        self.message("m1")
        old.drop()
        self.message("m2")
        new = FramedTransport()
        new.stream = FramedClientStream(new, self.world.listener, CORE_STEPS)
        new.stream.frame_received(OPEN)
        new.take()
        FramedWorld.scram(self.world, new)
        new.stream.frame_received(sm("resume", previd=previd, h=0))
        frames = [data for kind, data in new.take() if kind == "element"]
        resumed, *stanzas = [etree.fromstring(data) for data in frames]
        self.assertEqual(resumed.tag, f"{{{NS_SM}}}resumed")
        self.assertEqual([s.get("id") for s in stanzas], ["m1", "m2"])
        self.assertEqual({s.tag for s in stanzas}, {"{jabber:client}message"})
        for data, stanza in zip(frames[1:], stanzas):
            new.stream.send(stanza)
            [(_, written)] = new.take()
            self.assertEqual(data, written)
        self.assertIs(new.stream.session, session)

    def test_end_reroutes_parsed_elements(self):
        """At the end the kept bytes become elements again: a chat message goes back to
        the account with a <delay/>, to another resource."""
        old = self.enabled()
        other = self.world.login("alice", "other")
        other.feed(b"<presence/>")
        other.take()
        self.message("m1")
        session = old.stream.session
        session.close()
        old.drop()
        self.assertTrue(session.ended)
        out = other.take()
        self.assertIn(b'id="m1"', out)
        self.assertIn(b"urn:xmpp:delay", out)

    def test_requests_of_many_sessions_share_one_call(self):
        """Sessions whose <r/> is due in the same turn share one reactor call, and each
        gets its <r/> after its stanzas."""
        one = self.enabled("alice", "one")
        two = self.enabled("alice", "two")
        for n in range(2):
            self.message(f"a{n}", to="alice@example.org/one")
            self.message(f"b{n}", to="alice@example.org/two")
        self.assertEqual(len(self.world.clock.getDelayedCalls()), 1)
        self.world.clock.advance(0)
        for transport in (one, two):
            self.assertTrue(transport.take().endswith(b"<r xmlns=\"urn:xmpp:sm:3\"/>"))
