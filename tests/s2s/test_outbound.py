"""The initiating side of s2s streams (s2s/outbound.py), over StringTransport with a Clock."""
import base64

from twisted.trial.unittest import SynchronousTestCase

from jabberapp.s2s import dialback
from jabberapp.s2s.manager import Route
from jabberapp.s2s.outbound import OutboundStream
from jabberapp.xml import StreamClosed, StreamOpened, parse_element
from jabberapp.xml.ns import NS_SASL
from tests.s2s.support import (LOCAL, REMOTE, SECRET, Reader, TLSStringTransport, header,
                               make_manager, stream_error)

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_DB = "jabber:server:dialback"
MESSAGE = (f"<message from='alice@{REMOTE}/r' to='bob@{LOCAL}' type='chat'>"
           f"<body>hi</body></message>").encode()


class OutboundTests(SynchronousTestCase):
    """We are the Originating Server."""

    def setUp(self):
        self.manager, self.router, self.local = make_manager(require_encryption=True)
        self.route = Route(self.manager, LOCAL, REMOTE)
        self.manager.routes[(LOCAL, REMOTE)] = self.route
        self.up = []
        self.route.authenticated = self.up.append

    def connect(self, secure=False):
        stream = OutboundStream(self.manager, self.route, secure=secure)
        transport = TLSStringTransport()
        stream.makeConnection(transport)
        return stream, transport, Reader(transport)

    def through_tls(self, stream_id="sid"):
        stream, transport, reader = self.connect()
        opened = reader.read()[0]
        self.assertEqual((opened.attrs["from"], opened.attrs["to"]), (LOCAL, REMOTE))
        stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_="first"))
        stream.dataReceived(f"<stream:features><starttls xmlns='{NS_TLS}'><required/>"
                            f"</starttls></stream:features>".encode())
        self.assertEqual(reader.elements()[0].tag, f"{{{NS_TLS}}}starttls")
        stream.dataReceived(f"<proceed xmlns='{NS_TLS}'/>".encode())
        self.assertEqual(transport.tls_started_with, ("client-options", LOCAL, REMOTE))
        self.assertIsInstance(reader.read()[0], StreamOpened)   # the new header
        stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_=stream_id))
        return stream, transport, reader

    def test_header(self):
        """The stream opens in jabber:server with db declared, from us to the peer."""
        _, transport, _ = self.connect()
        data = transport.value()
        self.assertTrue(data.startswith(b"<?xml version='1.0'?><stream:stream "
                                        b"xmlns='jabber:server'"))
        self.assertIn(b"xmlns:db='jabber:server:dialback'", data)
        self.assertIn(f"from='{LOCAL}' to='{REMOTE}' version='1.0'".encode(), data)

    def test_dialback(self):
        """Dialback sends the XEP-0185 key for the peer's stream id; 'valid' is up."""
        stream, _, reader = self.through_tls(stream_id="D60000229F")
        stream.dataReceived(b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                            b"</stream:features>")
        request, = reader.elements()
        self.assertEqual(request.text,
                         dialback.dialback_key(SECRET, REMOTE, LOCAL, "D60000229F"))
        self.assertEqual(self.up, [])
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}' type='valid'/>".encode())
        self.assertEqual(self.up, [stream])
        self.assertEqual(stream.auth_method, "dialback")

    def test_dialback_refused(self):
        """An invalid verdict fails the stream and closes it."""
        stream, transport, _ = self.through_tls()
        stream.dataReceived(b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                            b"</stream:features>")
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}' type='invalid'/>"
                            .encode())
        self.assertTrue(transport.disconnecting)
        self.assertIn("refused our dialback key", stream.failure)
        self.assertEqual(self.up, [])

    def test_sasl_external(self):
        """EXTERNAL, when offered, goes first with our domain as authzid; success restarts
        the stream and the next features mean authenticated."""
        stream, _, reader = self.through_tls()
        stream.dataReceived(f"<stream:features><mechanisms xmlns='{NS_SASL}'><mechanism>"
                            f"EXTERNAL</mechanism></mechanisms><dialback xmlns="
                            f"'urn:xmpp:features:dialback'/></stream:features>".encode())
        auth, = reader.elements()
        self.assertEqual((auth.get("mechanism"), base64.b64decode(auth.text).decode()),
                         ("EXTERNAL", LOCAL))
        stream.dataReceived(f"<success xmlns='{NS_SASL}'/>".encode())
        self.assertIsInstance(reader.read()[0], StreamOpened)
        stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_="third"))
        stream.dataReceived(b"<stream:features/>")
        self.assertEqual(self.up, [stream])
        self.assertEqual(stream.auth_method, "SASL EXTERNAL")

    def test_sasl_failure_falls_back_to_dialback(self):
        """When EXTERNAL fails, dialback is tried on the same stream."""
        stream, _, reader = self.through_tls()
        stream.dataReceived(f"<stream:features><mechanisms xmlns='{NS_SASL}'><mechanism>"
                            f"EXTERNAL</mechanism></mechanisms><dialback xmlns="
                            f"'urn:xmpp:features:dialback'/></stream:features>".encode())
        reader.read()
        stream.dataReceived(f"<failure xmlns='{NS_SASL}'><not-authorized/></failure>".encode())
        request, = reader.elements()
        self.assertEqual(request.tag, f"{{{NS_DB}}}result")

    def test_no_tls_offered(self):
        """With encryption required, a peer without STARTTLS fails the stream."""
        stream, transport, reader = self.connect()
        stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_="x"))
        stream.dataReceived(b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                            b"</stream:features>")
        self.assertEqual(stream_error(reader.read()), "policy-violation")
        self.assertIn("TLS", stream.failure)

    def test_dialback_disabled_needs_valid_certificate(self):
        """allow_dialback off: an unverifiable peer certificate ends the attempt."""
        self.manager, _, _ = make_manager(require_encryption=True, allow_dialback=False)
        self.route = Route(self.manager, LOCAL, REMOTE)
        self.route.authenticated = self.up.append
        stream, transport, _ = self.through_tls()
        stream.dataReceived(b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                            b"</stream:features>")
        self.assertTrue(transport.disconnecting)
        self.assertIn("does not authenticate", stream.failure)

    def test_stanza_on_one_way_stream(self):
        """Without bidi the peer may not send stanzas on our stream."""
        stream, _, reader = self.through_tls()
        stream.dataReceived(b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                            b"</stream:features>")
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}' type='valid'/>".encode())
        stream.dataReceived(MESSAGE)
        self.assertEqual(stream_error(reader.read()), "not-authorized")

    def test_bidi(self):
        """When bidi is offered we request it, and the peer's stanzas are then accepted
        from its own domain only."""
        stream, _, reader = self.through_tls()
        stream.dataReceived(b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                            b"<bidi xmlns='urn:xmpp:features:bidi'/></stream:features>")
        tags = [e.tag for e in reader.elements()]
        self.assertEqual(tags, ["{urn:xmpp:bidi}bidi", f"{{{NS_DB}}}result"])
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}' type='valid'/>".encode())
        stream.dataReceived(MESSAGE)
        self.assertEqual(len(self.local.received), 1)
        stream.dataReceived(b"<message from='m@evil.example' to='bob@example.org'/>")
        self.assertEqual(stream_error(reader.read()), "invalid-from")

    def test_stanzas_are_written_in_jabber_server(self):
        """What we send is in jabber:server on the wire."""
        stream, transport, _ = self.connect()
        transport.clear()
        stream.send(parse_element(MESSAGE))
        self.assertTrue(transport.value().startswith(b'<message xmlns="jabber:server"'))

    def test_peer_stream_error(self):
        """A stream error from the peer is recorded as the reason; its close ends ours."""
        stream, transport, reader = self.connect()
        stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_="x"))
        stream.dataReceived(b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:"
                            b"xmpp-streams'/></stream:error></stream:stream>")
        self.assertEqual(stream.peer_error, "host-unknown")
        self.assertIn("host-unknown", stream.failure)
        self.assertIsInstance(reader.read()[-1], StreamClosed)
