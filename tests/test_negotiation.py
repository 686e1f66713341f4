"""The sans-I/O c2s negotiation (jabberapp.stream.negotiation) driven with plain bytes."""
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp.c2s.stream import CORE_STEPS
from jabberapp.errors import StreamError
from jabberapp.interfaces import (IClientSession, IClientStream, IStreamFeature,
                                  ITransport)
from jabberapp.testing import parse
from jabberapp.xml import element
from tests.c2s_bytes import HEADER, NS_SASL, BytesTransport, World


def features(data):
    """The children of the <stream:features/> in C{data}, as (namespace, name) pairs."""
    start = data.index(b"<stream:features")
    end = data.index(b"</stream:features>") + len(b"</stream:features>")
    tree = etree.fromstring(data[start:end])
    return [(etree.QName(c).namespace, etree.QName(c).localname) for c in tree]


class NegotiationTests(SynchronousTestCase):
    """STARTTLS, SASL (SCRAM) and bind over a BytesTransport."""

    def setUp(self):
        self.world = World()

    def test_interfaces(self):
        """The stream, its transport, the core steps and the bound session provide their
        interfaces."""
        transport = self.world.login()
        verifyObject(ITransport, transport)
        verifyObject(IClientStream, transport.stream)
        verifyObject(IClientSession, transport.stream.session)
        for step in CORE_STEPS.steps:
            verifyObject(IStreamFeature, step)

    def test_starttls_scram_bind(self):
        """Each stage offers its features: STARTTLS (required), then SASL mechanisms, then
        bind and the optional legacy session; SCRAM-SHA-256 authenticates and bind returns
        the full JID, registered in the host's sessions."""
        world = self.world
        transport = world.connect()
        transport.feed(HEADER)
        out = transport.take()
        self.assertIn(b"<required/>", out)
        self.assertEqual(features(out), [("urn:ietf:params:xml:ns:xmpp-tls", "starttls")])
        transport.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.assertIn(b"<proceed", transport.take())
        self.assertTrue(transport.tls_started)
        transport.feed(HEADER)
        self.assertEqual(features(transport.take()), [(NS_SASL, "mechanisms"),
                                                    ("urn:xmpp:sasl:2", "authentication")])
        after_auth = world.scram(transport)
        self.assertEqual(features(after_auth),
                         [("urn:ietf:params:xml:ns:xmpp-bind", "bind"),
                          ("urn:ietf:params:xml:ns:xmpp-session", "session")])
        self.assertEqual(transport.stream.username, "alice")
        transport.feed(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                       b"<resource>phone</resource></bind></iq>")
        self.assertIn(b"<jid>alice@example.org/phone</jid>", transport.take())
        session = transport.stream.session
        self.assertEqual(str(session.jid), "alice@example.org/phone")
        self.assertIs(world.host.sessions.get(session.jid), session)
        self.assertTrue(session.secure)

    def test_wrong_scram_proof_fails(self):
        """A SCRAM exchange with the wrong password ends in <not-authorized/>."""
        transport = self.world.secure()
        with self.assertRaises(AssertionError):
            self.world.scram(transport, password="wrong")
        self.assertIsNone(transport.stream.username)

    def test_direct_tls_starts_secure(self):
        """On a direct TLS transport the first features offer SASL, no STARTTLS."""
        transport = self.world.connect(secure=True)
        transport.feed(HEADER)
        self.assertEqual(features(transport.take()), [(NS_SASL, "mechanisms"),
                                                    ("urn:xmpp:sasl:2", "authentication")])

    def test_pipelined_bytes_before_restart_are_dropped(self):
        """What the client sent after <starttls/> in the same read is never handled."""
        transport = self.world.connect()
        transport.feed(HEADER)
        transport.take()
        transport.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                       + f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGFsaWNlAHg=</auth>"
                       .encode())
        out = transport.take()
        self.assertIn(b"<proceed", out)
        self.assertNotIn(b"failure", out)
        self.assertFalse(transport.closed)

    def test_unknown_nonza_is_unsupported(self):
        """A nonza in a namespace no step owns ends the stream."""
        transport = self.world.secure()
        transport.feed(b"<whatever xmlns='urn:nobody'/>")
        self.assertIn(b"<unsupported-stanza-type", transport.take())
        self.assertTrue(transport.closed)

    def test_bind_and_adopt_misuse_raise(self):
        """A step that binds before authentication, binds twice or adopts a second session
        is a programming error: RuntimeError, and nothing is bound."""
        unauthenticated = self.world.secure()
        self.assertRaises(RuntimeError, unauthenticated.stream.bind, "r")
        bound = self.world.login()
        self.assertRaises(RuntimeError, bound.stream.bind, "other")
        other = self.world.login("bob", "b")
        self.assertRaises(RuntimeError, bound.stream.adopt, other.stream.session)
        self.assertEqual(len(self.world.host.sessions), 2)

    def test_idle_stream_keeps_no_queue(self):
        """Once every element read is handled, the stream holds no event list (an idle
        session costs no queue)."""
        transport = self.world.login()
        transport.feed(b"<presence/><presence/>")
        self.assertIsNone(transport.stream._events)

    def test_drop_ends_a_bound_session(self):
        """A connection that drops ends its session when no extension keeps it."""
        transport = self.world.login()
        session = transport.stream.session
        closed = []
        self.world.host.dispatcher.hooks.add(dispatch.SESSION_CLOSED, closed.append)
        transport.drop()
        self.assertTrue(session.ended)
        self.assertIsNone(self.world.host.sessions.get(session.jid))
        self.assertEqual(closed, [session])


NS_TEST = "urn:test:feature"


class Recorder:
    """A test extension: a stream feature (<hello/> after bind, answered <hi/>) and an
    outbound stage that records every stanza to a session, both through IHost."""

    name = "recorder"
    depends = ()

    def __init__(self):
        self.seen = []

    def install(self, host):
        host.add_stream_feature(HelloFeature())
        host.add_outbound_stage(self.stage)

    def stage(self, session, stanza):
        self.seen.append((session, stanza))
        return stanza


class HelloFeature:
    namespace = NS_TEST

    def advertise(self, stream):
        if stream.username is None:
            return None
        return element(NS_TEST, "hello")

    def handle(self, stream, el):
        if stream.session is None:
            raise StreamError("not-authorized")
        stream.send(element(NS_TEST, "hi", text=str(stream.jid)))


class ExtensionStepTests(SynchronousTestCase):
    """An extension's stream feature and outbound stage, added through IHost."""

    def setUp(self):
        self.world = World()
        self.recorder = Recorder()
        self.api = self.world.host.install(self.recorder)

    def test_feature_advertised_and_handled(self):
        """The feature is offered after authentication and its nonza is handled once
        bound; before binding it refuses it."""
        transport = self.world.secure()
        self.assertEqual(features(self.world.scram(transport))[-1], (NS_TEST, "hello"))
        transport.feed(f"<hello xmlns='{NS_TEST}'/>".encode())
        self.assertIn(b"<not-authorized", transport.take())
        transport = self.world.login()
        transport.feed(f"<hello xmlns='{NS_TEST}'/>".encode())
        self.assertEqual(transport.take(), b'<hi xmlns="urn:test:feature">'
                                           b'alice@example.org/r</hi>')

    def test_stage_sees_every_stanza_to_the_session(self):
        """Presence broadcasts, a message, an IQ reply, an error: each stanza written to
        the session passed the stage first, and nothing else was written."""
        alice = self.world.login("alice", "a")
        bob = self.world.login("bob", "b")
        alice_session = alice.stream.session
        alice.feed(b"<presence/>")
        bob.feed(b"<message to='alice@example.org/a' id='m1'><body>hi</body></message>")
        alice.feed(b"<iq type='get' id='q' to='example.org'><x xmlns='urn:nothing'/></iq>")
        alice.feed(b"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:"
                   b"xmpp-session'/></iq>")
        written = etree.fromstring(b"<all xmlns='jabber:client'>" + alice.take() + b"</all>")
        mine = [stanza for session, stanza in self.recorder.seen if session is alice_session]
        self.assertEqual([etree.tostring(s) for s in written],
                         [etree.tostring(s) for s in mine])
        self.assertEqual([(s.tag.rpartition("}")[2], s.get("type")) for s in mine],
                         [("presence", None), ("message", None), ("iq", "error"),
                          ("iq", "result")])

    def test_stage_alters_and_drops(self):
        """What a stage returns is written; None writes nothing."""
        self.api.undo()

        def stage(session, stanza):
            if stanza.get("id") == "drop":
                return None
            stanza.set("seen", "yes")
            return stanza

        self.world.host.outbound.add(stage)
        alice = self.world.login("alice", "a")
        session = alice.stream.session
        session.send(parse("<message id='drop'/>"))
        session.send(parse("<message id='keep'/>"))
        self.assertEqual(alice.take(), b'<message xmlns="jabber:client" id="keep" seen="yes"/>')

    def test_unload_removes_feature_and_stage(self):
        """After unload the feature is not offered and the stage sees nothing."""
        self.api.undo()
        transport = self.world.secure()
        self.assertNotIn((NS_TEST, "hello"), features(self.world.scram(transport)))
        alice = self.world.login()
        alice.feed(b"<presence/>")
        self.assertIn(b"<presence", alice.take())
        self.assertEqual(self.recorder.seen, [])


class TransportOnlyTests(SynchronousTestCase):
    """The stream writes to nothing but its ITransport."""

    def test_close_goes_to_the_transport(self):
        """A stream error is written, then the transport is closed."""
        world = World()
        transport = BytesTransport()
        transport.stream = world.listener.open_stream(transport)
        transport.feed(HEADER.replace(b"example.org", b"other.example"))
        self.assertIn(b"<host-unknown", transport.take())
        self.assertTrue(transport.closed)
