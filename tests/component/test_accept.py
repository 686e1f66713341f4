"""Unit tests of XEP-0114 component streams over StringTransport and Clock."""
import hashlib
import re

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.component.accept import ComponentFactory, handshake_digest
from jabberapp.component.route import parent_host
from jabberapp.config import ComponentConfig
from jabberapp.extensions.disco import service_discovery
from jabberapp.interfaces import ISession
from jabberapp.testing import FakeHost, FakeSession
from jabberapp.xml.ns import NS_STANZAS

SECRET = "s3cret wörd"
HEADER = (b"<?xml version='1.0'?><stream:stream to='gw.example.org' "
          b"xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>")
FOOTER = b"</stream:stream>"


def stream_error(condition):
    return (f'<{condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>').encode()


class ComponentStreamTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)
        self.host.install(service_discovery)
        self.alice = FakeSession(self.host, "alice@example.org/r")
        self.factory = ComponentFactory(
            self.host.router, {"example.org": self.host.virtual_host},
            [ComponentConfig("gw.example.org", SECRET, "Gateway")], self.clock)
        self.route = self.factory.routes["gw.example.org"]

    def connect(self):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def take(self, transport):
        data = transport.value()
        transport.clear()
        return data

    def open(self, header=HEADER):
        """A connection whose header was answered; returns (proto, transport, stream id)."""
        proto, transport = self.connect()
        proto.dataReceived(header)
        out = self.take(transport)
        match = re.search(rb"id='([^']+)'", out)
        return proto, transport, match.group(1).decode() if match else None

    def accepted(self):
        proto, transport, stream_id = self.open()
        proto.dataReceived(
            f"<handshake>{handshake_digest(stream_id, SECRET)}</handshake>".encode())
        self.assertEqual(self.take(transport),
                         b'<handshake xmlns="jabber:component:accept"/>')
        return proto, transport

    def assertClosedWith(self, transport, condition):
        out = transport.value()
        self.assertIn(stream_error(condition), out)
        self.assertTrue(out.endswith(FOOTER))
        self.assertTrue(transport.disconnecting)

    # -- handshake ----------------------------------------------------------------------

    def test_header_answered_with_domain_and_id(self):
        """The server answers the header with the component's domain, an id and no version."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER)
        out = transport.value()
        self.assertIn(b"xmlns='jabber:component:accept'", out)
        self.assertIn(b"from='gw.example.org'", out)
        self.assertRegex(out, rb"id='[0-9a-f]{32}'")
        self.assertNotIn(b"version=", out.split(b"<stream:stream")[1])
        self.assertNotIn(b"features", out)

    def test_handshake_accepted(self):
        """The right SHA-1 of id and secret is accepted and makes the stream the route's link."""
        proto, transport = self.accepted()
        self.assertIs(self.route.link, proto)
        self.assertEqual(str(proto.jid), "gw.example.org")
        self.assertFalse(transport.disconnecting)
        verifyObject(ISession, proto)

    def test_handshake_digest(self):
        """The digest is the lower-case hex SHA-1 of the stream id followed by the secret."""
        self.assertEqual(handshake_digest("3BF96D32", "sesame"),
                         hashlib.sha1(b"3BF96D32sesame").hexdigest())
        self.assertEqual(handshake_digest("i", "é"), hashlib.sha1("ié".encode()).hexdigest())

    def test_wrong_secret_is_not_authorized(self):
        """A handshake made with another secret ends the stream with not-authorized."""
        proto, transport, stream_id = self.open()
        proto.dataReceived(
            f"<handshake>{handshake_digest(stream_id, 'guess')}</handshake>".encode())
        self.assertClosedWith(transport, "not-authorized")
        self.assertIsNone(self.route.link)

    def test_garbage_handshake_is_not_authorized(self):
        """A handshake with non-hex text or child elements is refused with not-authorized."""
        for body in ("<handshake>zzz é</handshake>", "<handshake><x/></handshake>",
                     "<handshake/>"):
            proto, transport, _ = self.open()
            proto.dataReceived(body.encode())
            self.assertClosedWith(transport, "not-authorized")

    def test_unknown_domain_is_host_unknown(self):
        """A header naming a domain with no [component:...] section gets host-unknown."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER.replace(b"gw.example.org", b"other.example.org"))
        out = transport.value()
        self.assertIn(b"<stream:stream", out)
        self.assertNotIn(b"from='other.example.org'", out)
        self.assertClosedWith(transport, "host-unknown")

    def test_host_domain_is_host_unknown(self):
        """A virtual host's own domain is no component: host-unknown."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER.replace(b"gw.example.org", b"example.org"))
        self.assertClosedWith(transport, "host-unknown")

    def test_missing_to_is_improper_addressing(self):
        """A header without 'to' gets improper-addressing."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER.replace(b" to='gw.example.org'", b""))
        self.assertClosedWith(transport, "improper-addressing")

    def test_client_namespace_is_invalid_namespace(self):
        """A jabber:client stream on the component port gets invalid-namespace."""
        proto, transport = self.connect()
        proto.dataReceived(HEADER.replace(b"jabber:component:accept", b"jabber:client"))
        self.assertClosedWith(transport, "invalid-namespace")

    def test_stanza_before_handshake_is_not_authorized(self):
        """A stanza before the handshake ends the stream with not-authorized."""
        proto, transport, _ = self.open()
        proto.dataReceived(b"<message from='gw.example.org' to='alice@example.org/r'/>")
        self.assertClosedWith(transport, "not-authorized")
        self.assertEqual(self.alice.sent, [])

    def test_handshake_timeout(self):
        """A component that does not complete the handshake in time is disconnected."""
        proto, transport, _ = self.open()
        self.clock.advance(60)
        self.assertClosedWith(transport, "connection-timeout")

    def test_no_timeout_once_accepted(self):
        """The handshake timer is cancelled by a successful handshake."""
        proto, transport = self.accepted()
        self.clock.advance(3600)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_second_connection_is_conflict(self):
        """A second connection for a connected component is refused with conflict."""
        first, first_transport = self.accepted()
        proto, transport, stream_id = self.open()
        proto.dataReceived(
            f"<handshake>{handshake_digest(stream_id, SECRET)}</handshake>".encode())
        self.assertClosedWith(transport, "conflict")
        self.assertIs(self.route.link, first)
        self.assertFalse(first_transport.disconnecting)
        proto.connectionLost(None)
        self.assertIs(self.route.link, first)

    def test_conflict_only_after_the_secret(self):
        """A wrong secret for a connected component is not-authorized, not conflict."""
        self.accepted()
        proto, transport, stream_id = self.open()
        proto.dataReceived(b"<handshake>00</handshake>")
        self.assertClosedWith(transport, "not-authorized")

    def test_second_handshake_is_a_policy_violation(self):
        """A handshake on an accepted stream ends it."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<handshake/>")
        self.assertClosedWith(transport, "policy-violation")
        self.assertIsNone(self.route.link)

    def test_reconnect_after_disconnect(self):
        """After the connection is lost, the component can connect again."""
        proto, transport = self.accepted()
        proto.connectionLost(None)
        self.assertIsNone(self.route.link)
        again, _ = self.accepted()
        self.assertIs(self.route.link, again)

    # -- stanzas ------------------------------------------------------------------------

    def test_stanza_to_component_is_written_in_component_namespace(self):
        """A stanza for a JID in the component's domain is written to its stream."""
        proto, transport = self.accepted()
        self.host.receive("<message from='alice@example.org/r' to='bot@gw.example.org/x' "
                          "type='chat' id='m1'><body>hi</body></message>")
        out = transport.value()
        self.assertTrue(out.startswith(b'<message xmlns="jabber:component:accept"'), out)
        self.assertIn(b'to="bot@gw.example.org/x"', out)
        self.assertIn(b'from="alice@example.org/r"', out)
        self.assertIn(b"<body>hi</body>", out)

    def test_stanza_from_component_is_routed(self):
        """A stanza from the component reaches the local user it is addressed to."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<message from='Bot@gw.example.org/x' to='alice@example.org/r' "
                           b"type='chat'><body>hello</body></message>")
        self.assertEqual(len(self.alice.sent), 1)
        message = self.alice.sent[0]
        self.assertEqual(message.tag, "{jabber:client}message")
        self.assertEqual(message.get("from"), "bot@gw.example.org/x")
        self.assertEqual(message.findtext("{jabber:client}body"), "hello")

    def test_stanza_with_client_namespace_is_accepted(self):
        """A stanza declaring jabber:client itself (slixmpp use_jc_ns) is routed too."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<message xmlns='jabber:client' from='gw.example.org' "
                           b"to='alice@example.org/r'><body>x</body></message>")
        self.assertEqual(len(self.alice.sent), 1)

    def test_stanza_to_remote_domain_goes_to_federation(self):
        """A stanza for another domain goes to the router's remote destination."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<message from='gw.example.org' to='x@remote.example'/>")
        self.assertEqual([m.get("to") for m in self.host.remote.received],
                         ["x@remote.example"])

    def test_iq_to_host_is_answered_to_component(self):
        """The component can query its host; the answer comes back on its stream."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<iq type='get' id='d1' from='gw.example.org' to='example.org'>"
                           b"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        out = transport.value()
        self.assertIn(b'<iq xmlns="jabber:component:accept"', out)
        self.assertIn(b'type="result"', out)
        self.assertIn(b'to="gw.example.org"', out)

    def test_foreign_from_is_invalid_from(self):
        """A 'from' outside the component's domain closes the stream with invalid-from."""
        for sender in (b"alice@example.org", b"x.gw.example.org", b"evil.example",
                       b"bad@@jid"):
            proto, transport = self.accepted()
            proto.dataReceived(b"<message from='" + sender + b"' to='alice@example.org/r'>"
                               b"<body>spoof</body></message>")
            self.assertClosedWith(transport, "invalid-from")
            self.assertIsNone(self.route.link)
            proto.connectionLost(None)
        self.assertEqual(self.alice.sent, [])

    def test_missing_from_is_stamped(self):
        """A stanza without 'from' is sent from the component's domain (COMPAT, as Prosody)."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<message to='alice@example.org/r'><body>x</body></message>")
        self.assertEqual(self.alice.sent[0].get("from"), "gw.example.org")

    def test_missing_to_is_bad_request(self):
        """A stanza without 'to' is answered bad-request on the component's stream."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<iq type='get' id='q' from='gw.example.org'><ping "
                           b"xmlns='urn:xmpp:ping'/></iq>")
        out = transport.value()
        self.assertIn(b'type="error"', out)
        self.assertIn(b"<bad-request", out)
        self.assertFalse(transport.disconnecting)

    def test_malformed_iq_is_bad_request(self):
        """An IQ without id is answered bad-request."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<iq type='get' from='gw.example.org' to='example.org'>"
                           b"<ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertIn(b"<bad-request", transport.value())

    def test_malformed_to_is_jid_malformed(self):
        """A stanza with an invalid 'to' is answered jid-malformed."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<message from='gw.example.org' to='a@@b' id='1'/>")
        self.assertIn(b"<jid-malformed", transport.value())

    def test_other_element_is_unsupported_stanza_type(self):
        """A non-stanza element after the handshake ends the stream."""
        proto, transport = self.accepted()
        proto.dataReceived(b"<features/>")
        self.assertClosedWith(transport, "unsupported-stanza-type")

    # -- disconnection ------------------------------------------------------------------

    def bounced(self, xml):
        """Send C{xml} from alice; return what alice got back."""
        before = len(self.alice.sent)
        self.host.receive(xml)
        return self.alice.sent[before:]

    def assertUnavailable(self, answers, sender="bot@gw.example.org"):
        self.assertEqual(len(answers), 1)
        error = answers[0].find("{jabber:client}error")
        self.assertEqual(answers[0].get("type"), "error")
        self.assertEqual(answers[0].get("from"), sender)
        self.assertEqual(error.get("type"), "wait")
        self.assertEqual(error.get("by"), "gw.example.org")
        self.assertIsNotNone(error.find(f"{{{NS_STANZAS}}}service-unavailable"))

    def test_bounce_before_any_connection(self):
        """A configured component that never connected answers service-unavailable (wait)."""
        self.assertUnavailable(self.bounced(
            "<message from='alice@example.org/r' to='bot@gw.example.org' id='1'>"
            "<body>x</body></message>"))
        self.assertEqual(self.host.remote.received, [])

    def test_bounce_after_connection_lost(self):
        """After the component's connection is lost, stanzas to it bounce to their sender."""
        proto, transport = self.accepted()
        proto.connectionLost(None)
        self.assertUnavailable(self.bounced(
            "<iq type='get' id='q1' from='alice@example.org/r' to='bot@gw.example.org'>"
            "<query xmlns='jabber:iq:version'/></iq>"))
        self.assertUnavailable(self.bounced(
            "<presence from='alice@example.org/r' to='gw.example.org'/>"),
            sender="gw.example.org")
        self.assertEqual(transport.value(), b"")

    def test_bounce_after_component_closes_its_stream(self):
        """A component that closes its stream is answered with the closing tag and detached."""
        proto, transport = self.accepted()
        proto.dataReceived(FOOTER)
        self.assertEqual(transport.value(), FOOTER)
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(self.route.link)
        self.assertUnavailable(self.bounced(
            "<message from='alice@example.org/r' to='bot@gw.example.org'/>"))

    def test_errors_and_results_are_not_bounced(self):
        """Errors and results to a disconnected component are dropped, never answered."""
        self.assertEqual(self.bounced(
            "<message type='error' from='alice@example.org/r' to='gw.example.org'/>"), [])
        self.assertEqual(self.bounced(
            "<iq type='result' id='r' from='alice@example.org/r' to='gw.example.org'/>"), [])

    def test_shutdown(self):
        """Shutdown closes connected components with system-shutdown and drops the routes."""
        proto, transport = self.accepted()
        self.factory.shutdown()
        self.assertClosedWith(transport, "system-shutdown")
        self.assertIsNone(self.host.router.destination("gw.example.org"))

    # -- disco ----------------------------------------------------------------------------

    def items(self):
        self.host.receive("<iq type='get' id='i' from='alice@example.org/r' to='example.org'>"
                          "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        query = self.alice.sent[-1][0]
        return [(item.get("jid"), item.get("name")) for item in query]

    def test_disco_items_list_the_connected_component(self):
        """The parent host's disco#items list the component only while it is connected."""
        self.assertEqual(self.items(), [])
        proto, transport = self.accepted()
        self.assertEqual(self.items(), [("gw.example.org", "Gateway")])
        proto.connectionLost(None)
        self.assertEqual(self.items(), [])

    def test_parent_host(self):
        """The parent is the nearest served domain above the component's, if any."""
        hosts = {"example.org": "A", "b.example.org": "B"}
        self.assertEqual(parent_host("x.b.example.org", hosts), "B")
        self.assertEqual(parent_host("a.b.c.example.org", hosts), "A")
        self.assertEqual(parent_host("b.example.org", hosts), "A")
        self.assertIsNone(parent_host("example.net", hosts))
        self.assertIsNone(parent_host("org", hosts))

    def test_component_without_parent_host(self):
        """A component whose domain is under no served host is routed, listed nowhere."""
        factory = ComponentFactory(self.host.router, {"example.org": self.host.virtual_host},
                                   [ComponentConfig("gw.example.net", SECRET)], self.clock)
        self.assertIsNone(factory.routes["gw.example.net"].parent)
        self.assertIs(self.host.router.destination("gw.example.net"),
                      factory.routes["gw.example.net"])
