"""Unit tests of c2s stream negotiation and stanza handling over StringTransport and Clock."""
import base64
from unittest import mock

from lxml import etree
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.auth import InternalAuthProvider
from jabberapp.c2s import stream as c2s
from jabberapp.errors import StanzaError
from jabberapp.host import HostAPI, VirtualHost
from jabberapp.interfaces import IClientSession
from jabberapp.router import Router
from jabberapp.sasl.scram import derive_all
from jabberapp.sasl.throttle import FailureThrottle
from jabberapp.storage.memory import MemoryStorage

HEADER = (b"<?xml version='1.0'?><stream:stream to='example.org' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
PASSWORD = "correct horse"
CREDENTIALS = derive_all(PASSWORD, 4096)


class TLSStringTransport(StringTransport):
    """StringTransport that records STARTTLS instead of doing it."""

    tls_started_with = None

    def startTLS(self, options):
        self.tls_started_with = options


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class C2SStreamTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.storage = MemoryStorage()
        self.successResultOf(self.storage.accounts.create("example.org", "alice", CREDENTIALS))
        self.successResultOf(self.storage.accounts.create("example.org", "bob", CREDENTIALS))
        auth = InternalAuthProvider(self.storage.accounts,
                                    lambda fn, *a: defer.maybeDeferred(fn, *a))
        self.router = Router()
        self.host = VirtualHost("example.org", self.router, self.storage, auth, self.clock,
                                None)
        self.throttle = FailureThrottle(self.clock)
        self.factory = c2s.C2SFactory({"example.org": self.host}, tls_options=object(),
                                      clock=self.clock, throttle=self.throttle)
        patcher = mock.patch.object(c2s, "channel_bindings", lambda transport: {})
        patcher.start()
        self.addCleanup(patcher.stop)

    def connect(self):
        proto = self.factory.buildProtocol(None)
        transport = TLSStringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def take(self, transport):
        data = transport.value()
        transport.clear()
        return data

    def negotiate_tls(self, proto, transport):
        proto.dataReceived(HEADER)
        proto.dataReceived(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.take(transport)
        proto.dataReceived(HEADER)

    def login(self, user="alice", resource="res"):
        proto, transport = self.connect()
        self.negotiate_tls(proto, transport)
        proto.dataReceived(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                           f"{plain(user, PASSWORD)}</auth>".encode())
        proto.dataReceived(HEADER)
        proto.dataReceived(f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
                           f"xmpp-bind'><resource>{resource}</resource></bind></iq>".encode())
        self.take(transport)
        return proto, transport

    def test_features_before_tls_offer_required_starttls_only(self):
        """The first features offer STARTTLS as required and no SASL mechanism."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER)
        out = transport.value()
        self.assertIn(b"from='example.org'", out.split(b">")[1])
        self.assertIn(b"<required/>", out)
        self.assertNotIn(b"mechanisms", out)

    def test_starttls_proceeds_and_discards_pipelined_data(self):
        """STARTTLS answers proceed, starts TLS, and drops bytes sent after it in clear."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER)
        self.take(transport)
        proto.dataReceived(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                           b"<message to='bob@example.org'><body>injected</body></message>")
        self.assertIn(b"<proceed", self.take(transport))
        self.assertIs(transport.tls_started_with, self.factory.tls_options)
        self.assertTrue(proto.secure)
        proto.dataReceived(HEADER)
        out = self.take(transport)
        self.assertIn(b"<mechanism>PLAIN</mechanism>", out)
        self.assertIn(b"<mechanism>SCRAM-SHA-256</mechanism>", out)
        self.assertNotIn(b"starttls", out)

    def test_auth_before_tls_is_encryption_required(self):
        """A SASL attempt on a plain stream fails with encryption-required."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER)
        self.take(transport)
        proto.dataReceived(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                           + plain("alice", PASSWORD).encode() + b"</auth>")
        self.assertIn(b"<encryption-required/>", self.take(transport))

    def test_stanza_before_auth_is_not_authorized(self):
        """A stanza before authentication ends the stream with not-authorized."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER + b"<message to='bob@example.org'/>")
        out = transport.value()
        self.assertIn(b"<not-authorized xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>", out)
        self.assertTrue(out.endswith(b"</stream:stream>"))
        self.assertTrue(transport.disconnecting)

    def test_wrong_namespace_sends_header_then_error(self):
        """A stream in another content namespace gets our header, then invalid-namespace."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER.replace(b"jabber:client", b"jabber:server"))
        out = transport.value()
        self.assertTrue(out.startswith(b"<?xml"))
        self.assertIn(b"<invalid-namespace", out)

    def test_unknown_host(self):
        """A header to a domain not served here gets host-unknown."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER.replace(b"example.org", b"other.example"))
        self.assertIn(b"<host-unknown", transport.value())

    def test_missing_version_is_unsupported(self):
        """A header without version='1.0' gets unsupported-version."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER.replace(b"'example.org' version='1.0'", b"'example.org'"))
        self.assertIn(b"<unsupported-version", transport.value())

    def test_plain_login_and_bind(self):
        """PLAIN over TLS succeeds, the restarted stream offers bind, and bind returns the JID."""
        proto, transport = self.connect()
        self.negotiate_tls(proto, transport)
        self.take(transport)
        proto.dataReceived(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                           + plain("alice", PASSWORD).encode() + b"</auth>")
        self.assertIn(b"<success", self.take(transport))
        proto.dataReceived(HEADER)
        out = self.take(transport)
        self.assertIn(b"urn:ietf:params:xml:ns:xmpp-bind", out)
        proto.dataReceived(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
                           b"xmpp-bind'><resource>phone</resource></bind></iq>")
        self.assertIn(b"<jid>alice@example.org/phone</jid>", self.take(transport))
        session = proto.stream.session
        verifyObject(IClientSession, session)
        self.assertEqual(str(session.jid), "alice@example.org/phone")
        self.assertIs(self.host.sessions.get(session.jid), session)

    def test_server_generated_resource_and_legacy_session(self):
        """Bind without a resource gets a generated one; the RFC 3921 session IQ succeeds."""
        proto, transport = self.connect()
        self.negotiate_tls(proto, transport)
        proto.dataReceived(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                           + plain("alice", PASSWORD).encode() + b"</auth>")
        proto.dataReceived(HEADER)
        self.take(transport)
        proto.dataReceived(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
                           b"xmpp-bind'/></iq>")
        out = self.take(transport)
        self.assertIn(b"<jid>alice@example.org/", out)
        self.assertTrue(proto.stream.jid.resource)
        proto.dataReceived(b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:"
                           b"xmpp-session'/></iq>")
        self.assertIn(b"type=\"result\"", self.take(transport))

    def test_wrong_password_is_delayed_by_the_throttle(self):
        """A second wrong password is answered only after the throttle's delay."""
        proto, transport = self.connect()
        self.negotiate_tls(proto, transport)
        self.take(transport)
        bad = (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
               + plain("alice", "wrong").encode() + b"</auth>")
        proto.dataReceived(bad)
        self.assertIn(b"<not-authorized/>", self.take(transport))
        proto.dataReceived(bad)
        self.assertEqual(self.take(transport), b"")
        self.clock.advance(60)
        self.assertIn(b"<not-authorized/>", self.take(transport))

    def test_too_many_failures_close_the_stream(self):
        """After five failed attempts the stream is closed with policy-violation."""
        self.factory.negotiation_timeout = 3600
        proto, transport = self.connect()
        self.negotiate_tls(proto, transport)
        self.take(transport)
        bad = (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
               + plain("alice", "wrong").encode() + b"</auth>")
        for _ in range(c2s.MAX_SASL_ATTEMPTS):
            proto.dataReceived(bad)
            self.clock.advance(30)
        self.assertIn(b"<policy-violation", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_bad_base64_is_incorrect_encoding(self):
        """Auth data that is not base64 fails with incorrect-encoding."""
        proto, transport = self.connect()
        self.negotiate_tls(proto, transport)
        self.take(transport)
        proto.dataReceived(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                           b"mechanism='PLAIN'>!!!</auth>")
        self.assertIn(b"<incorrect-encoding/>", self.take(transport))

    def test_message_is_routed_with_from_stamped(self):
        """A message from a bound session reaches the other user with the full JID as 'from'."""
        alice, alice_t = self.login("alice", "a")
        bob, bob_t = self.login("bob", "b")
        bob.dataReceived(b"<presence/>")
        self.take(bob_t)
        alice.dataReceived(b"<message to='Bob@Example.org' type='chat'><body>hi</body></message>")
        out = self.take(bob_t)
        message = etree.fromstring(out)
        self.assertEqual(message.get("from"), "alice@example.org/a")
        self.assertEqual(message.get("to"), "bob@example.org")
        self.assertEqual(message.findtext("{jabber:client}body"), "hi")

    def test_forged_from_is_invalid_from(self):
        """A stanza claiming another sender ends the stream with invalid-from."""
        alice, transport = self.login()
        alice.dataReceived(b"<message from='bob@example.org/x' to='bob@example.org'/>")
        self.assertIn(b"<invalid-from", transport.value())

    def test_iq_with_two_children_is_bad_request(self):
        """An IQ get with two payload elements is answered with bad-request."""
        alice, transport = self.login()
        alice.dataReceived(b"<iq type='get' id='x' to='example.org'><a xmlns='urn:a'/>"
                           b"<b xmlns='urn:b'/></iq>")
        self.assertIn(b"<bad-request", transport.value())

    def test_unhandled_iq_is_service_unavailable(self):
        """An IQ get nobody handles is answered with service-unavailable."""
        alice, transport = self.login()
        alice.dataReceived(b"<iq type='get' id='x' to='example.org'><q xmlns='urn:unknown'/></iq>")
        reply = etree.fromstring(transport.value())
        self.assertEqual(reply.get("type"), "error")
        self.assertEqual(reply.get("id"), "x")
        self.assertIsNotNone(reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}"
                                        "service-unavailable"))

    def test_rebind_replaces_older_session_with_conflict(self):
        """Binding the same full JID again closes the old session with conflict."""
        first, first_t = self.login("alice", "same")
        second, second_t = self.login("alice", "same")
        self.assertIn(b"<conflict", first_t.value())
        self.assertTrue(first_t.disconnecting)
        self.assertIs(self.host.sessions.get(second.stream.jid), second.stream.session)

    def test_negotiation_timeout(self):
        """A connection that never authenticates is closed with connection-timeout."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER)
        self.clock.advance(self.factory.negotiation_timeout)
        self.assertIn(b"<connection-timeout", transport.value())

    def test_idle_parsers_rest_while_the_listener_listens(self):
        """While the listener listens, a stream idle for two rest periods holds no lxml parser,
        and its next stanza is handled as before; a stopped listener leaves no timer."""
        from jabberapp.xml import parser as parser_module
        parser_module.rest_idle()
        parser_module.rest_idle()       # what earlier tests fed is out of the periods
        self.factory.doStart()
        alice, alice_t = self.login("alice", "a")
        bob, bob_t = self.login("bob", "b")
        bob.dataReceived(b"<presence/>")
        self.take(bob_t)
        self.clock.advance(c2s.REST_PERIOD)
        self.assertIsNotNone(alice.stream.parser._parser)
        self.clock.advance(c2s.REST_PERIOD)
        self.assertIsNone(alice.stream.parser._parser)
        alice.dataReceived(b"<message to='bob@example.org' type='chat'><body>hi</body></message>")
        message = etree.fromstring(self.take(bob_t))
        self.assertEqual(message.findtext("{jabber:client}body"), "hi")
        self.factory.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_whitespace_keepalive_is_ignored(self):
        """Whitespace between stanzas produces no reply and keeps the stream open."""
        alice, transport = self.login()
        alice.dataReceived(b"\n  \n")
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)

    def test_disconnect_unbinds_and_broadcasts_unavailable(self):
        """When a connection drops, the session is unbound and other resources see it leave."""
        one, one_t = self.login("alice", "one")
        two, two_t = self.login("alice", "two")
        one.dataReceived(b"<presence/>")
        two.dataReceived(b"<presence/>")
        self.take(two_t)
        jid = one.stream.jid
        one.connectionLost(None)
        self.assertIsNone(self.host.sessions.get(jid))
        out = self.take(two_t)
        self.assertIn(b"type=\"unavailable\"", out)
        self.assertIn(b"from=\"alice@example.org/one\"", out)

    def test_stanza_before_a_violation_in_the_same_chunk_is_delivered(self):
        """A valid stanza that arrives in the same read as broken XML is still routed."""
        alice, alice_t = self.login("alice", "a")
        bob, bob_t = self.login("bob", "b")
        bob.dataReceived(b"<presence/>")
        self.take(bob_t)
        alice.dataReceived(b"<message to='bob@example.org' type='chat'><body>last</body>"
                           b"</message><broken></wrong>")
        self.assertIn(b"<body>last</body>", bob_t.value())
        self.assertIn(b"<not-well-formed", alice_t.value())
        self.assertTrue(alice_t.disconnecting)


class PreauthFeature:
    """A stream feature offered only before authentication (as XEP-0077's <register/>)."""

    namespace = "urn:test:preauth-feature"

    def advertise(self, stream):
        if stream.username is not None:
            return None
        return etree.Element(f"{{{self.namespace}}}offer", nsmap={None: self.namespace})

    def handle(self, stream, element):
        raise AssertionError("no nonzas expected")


class PreauthIQTests(SynchronousTestCase):
    """IHost.add_preauth_iq_handler: IQs an extension answers before authentication."""

    NS = "urn:test:preauth"
    # The c2s fixture and helpers, without C2SStreamTests' own tests.
    connect = C2SStreamTests.connect
    take = C2SStreamTests.take
    negotiate_tls = C2SStreamTests.negotiate_tls

    def setUp(self):
        C2SStreamTests.setUp(self)
        self.calls = []
        self.api = HostAPI(self.host, "test", {})
        self.api.add_stream_feature(PreauthFeature())
        self.api.add_preauth_iq_handler(self.NS, self.handler)
        self.answer = None

    def handler(self, iq, stream):
        self.calls.append((iq, stream))
        if self.answer is not None:
            return self.answer
        return etree.Element(f"{{{self.NS}}}query", n=str(len(self.calls)))

    def secure_stream(self):
        proto, transport = self.connect()
        self.negotiate_tls(proto, transport)
        self.take(transport)
        return proto, transport

    def test_feature_offered_before_auth_once_encrypted(self):
        """Extension features are offered before authentication, but not before TLS."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER)
        self.assertNotIn(b"urn:test:preauth-feature", self.take(transport))
        proto.dataReceived(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.take(transport)
        proto.dataReceived(HEADER)
        self.assertIn(b"<offer xmlns=\"urn:test:preauth-feature\"/>", self.take(transport))

    def test_iq_answered_on_the_stream(self):
        """An owned IQ before authentication reaches the handler, 'from' removed, and is
        answered on the stream, which stays open."""
        proto, transport = self.secure_stream()
        proto.dataReceived(f"<iq type='get' id='r1' from='mallory@example.org/x' "
                           f"to='Example.ORG'><query xmlns='{self.NS}'/></iq>".encode())
        [(iq, stream)] = self.calls
        self.assertIs(stream, proto.stream)
        self.assertIsNone(iq.get("from"))
        self.assertEqual(stream.peer_address, "192.168.1.1")   # StringTransport's peer
        reply = etree.fromstring(self.take(transport))
        self.assertEqual((reply.get("type"), reply.get("id"), reply.get("to")),
                         ("result", "r1", None))
        self.assertEqual(reply.find(f"{{{self.NS}}}query").get("n"), "1")
        self.assertFalse(transport.disconnecting)

    def test_stanza_error_is_an_error_reply(self):
        """A StanzaError from the handler becomes an error reply on the stream."""
        proto, transport = self.secure_stream()
        self.answer = defer.fail(StanzaError("conflict"))
        proto.dataReceived(f"<iq type='set' id='r2'><query xmlns='{self.NS}'/></iq>".encode())
        reply = etree.fromstring(self.take(transport))
        self.assertEqual(reply.get("type"), "error")
        self.assertIsNotNone(reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}conflict"))

    def test_stream_waits_for_an_asynchronous_answer(self):
        """While the handler works, the next element waits: answers come in order."""
        proto, transport = self.secure_stream()
        self.answer = pending = defer.Deferred()
        proto.dataReceived(f"<iq type='set' id='a'><query xmlns='{self.NS}'/></iq>"
                           f"<iq type='get' id='b'><query xmlns='{self.NS}'/></iq>".encode())
        self.assertEqual((len(self.calls), self.take(transport)), (1, b""))
        self.answer = None
        pending.callback(None)
        self.assertEqual(len(self.calls), 2)
        out = self.take(transport)
        self.assertLess(out.index(b"id=\"a\""), out.index(b"id=\"b\""))

    def test_before_tls_it_is_not_authorized(self):
        """With encryption required, an owned IQ on a plain stream ends it, unhandled."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER + f"<iq type='get' id='r'><query xmlns='{self.NS}'/>"
                                    f"</iq>".encode())
        self.assertEqual(self.calls, [])
        self.assertIn(b"<not-authorized xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>",
                      transport.value())

    def test_not_owned_or_elsewhere_is_not_authorized(self):
        """An IQ in another namespace, to another domain, or a result, ends the stream."""
        for iq in [b"<iq type='get' id='r'><query xmlns='urn:other'/></iq>",
                   f"<iq type='get' id='r' to='other.example'><query xmlns='{self.NS}'/>"
                   f"</iq>".encode(),
                   f"<iq type='result' id='r'><query xmlns='{self.NS}'/></iq>".encode()]:
            proto, transport = self.secure_stream()
            proto.dataReceived(iq)
            self.assertIn(b"<not-authorized xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>",
                          transport.value())
        self.assertEqual(self.calls, [])

    def test_feature_not_offered_after_auth_and_handler_unused(self):
        """After authentication the feature decides (here: not offered) and an IQ in the
        namespace is an ordinary stanza, not the pre-authentication handler's."""
        proto, transport = self.secure_stream()
        proto.dataReceived(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                           + plain("alice", PASSWORD).encode() + b"</auth>")
        self.take(transport)
        proto.dataReceived(HEADER)
        self.assertNotIn(b"urn:test:preauth-feature", self.take(transport))
        proto.dataReceived(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
                           b"xmpp-bind'/></iq>")
        self.take(transport)
        proto.dataReceived(f"<iq type='get' id='x'><query xmlns='{self.NS}'/></iq>".encode())
        self.assertEqual(self.calls, [])
        self.assertIn(b"service-unavailable", transport.value())

    def test_unload_removes_the_handler(self):
        """Undoing the registering extension removes the handler: the IQ is refused again."""
        self.api.undo()
        proto, transport = self.secure_stream()
        proto.dataReceived(f"<iq type='get' id='r'><query xmlns='{self.NS}'/></iq>".encode())
        self.assertEqual(self.calls, [])
        self.assertIn(b"<not-authorized", transport.value())

    def test_one_owner_per_namespace(self):
        """A second handler for the same namespace is refused."""
        self.assertRaises(ValueError, self.api.add_preauth_iq_handler, self.NS, self.handler)

    def test_configured_mechanisms_only(self):
        """With [auth] mechanisms set, only those are offered and others are refused."""
        self.factory.mechanisms = frozenset({"SCRAM-SHA-1", "PLAIN"})
        proto, transport = self.connect()
        proto.dataReceived(HEADER)
        proto.dataReceived(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.take(transport)
        proto.dataReceived(HEADER)
        out = self.take(transport)
        self.assertEqual(etree.fromstring(out + b"</stream:stream>").xpath(
            "//s:mechanism/text()", namespaces={"s": "urn:ietf:params:xml:ns:xmpp-sasl"}),
            ["SCRAM-SHA-1", "PLAIN"])
        proto.dataReceived(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                           b"mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiYw==</auth>")
        self.assertIn(b"<invalid-mechanism/>", self.take(transport))

    def test_nagle_is_off(self):
        """Client connections are set to TCP_NODELAY so stanzas are not delayed."""
        calls = []
        transport = TLSStringTransport()
        transport.setTcpNoDelay = calls.append
        self.factory.buildProtocol(None).makeConnection(transport)
        self.assertEqual(calls, [True])

