"""The receiving side of s2s streams (s2s/inbound.py), over StringTransport with a Clock."""
import base64

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import stanza as st
from jabberapp.s2s import dialback
from jabberapp.s2s.inbound import InboundStream
from jabberapp.s2s.manager import VerificationFailed
from jabberapp.xml.ns import NS_CLIENT, NS_SASL
from tests.s2s.support import (LOCAL, REMOTE, SECRET, Reader, TLSStringTransport, header,
                               make_manager, self_signed_certificate, stream_error,
                               valid_certificate)

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_DB = "jabber:server:dialback"
MESSAGE = (f"<message from='alice@{REMOTE}/r' to='bob@{LOCAL}' type='chat'>"
           f"<body>hi</body></message>").encode()


def features_of(events):
    return next(e for e in events if getattr(e, "tag", None) == f"{{{NS_STREAMS}}}features")


def mechanisms(features):
    return [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]


class InboundTests(SynchronousTestCase):
    """We are the Receiving Server."""

    def setUp(self):
        self.manager, self.router, self.local = make_manager(require_encryption=True)
        self.verifications = []

        def verify_key(local, remote, stream_id, key):
            d = defer.Deferred()
            self.verifications.append(((local, remote, stream_id, key), d))
            return d
        self.manager.verify_key = verify_key

    def connect(self):
        stream = InboundStream(self.manager)
        transport = TLSStringTransport()
        stream.makeConnection(transport)
        return stream, transport, Reader(transport)

    def secure(self, from_=REMOTE):
        """A stream past STARTTLS; returns (stream, transport, reader, features)."""
        stream, transport, reader = self.connect()
        stream.dataReceived(header(from_=from_))
        reader.read()
        stream.dataReceived(f"<starttls xmlns='{NS_TLS}'/>".encode())
        self.assertEqual(reader.elements()[0].tag, f"{{{NS_TLS}}}proceed")
        self.assertIs(transport.tls_started_with, self.manager.server_tls)
        stream.dataReceived(header(from_=from_))
        return stream, transport, reader, features_of(reader.read())

    def dialback(self, stream, reader, key="k" * 64, valid=True):
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}'>{key}</db:result>"
                            .encode())
        (args, d), = self.verifications
        self.assertEqual(args, (LOCAL, REMOTE, stream.stream_id, key))
        d.callback(valid)
        return reader.read()

    def test_header_and_first_features(self):
        """The answer is a jabber:server header with db declared, a stream id and our
        domain, and features offering only STARTTLS, required."""
        stream, transport, reader = self.connect()
        stream.dataReceived(header())
        data = transport.value()
        self.assertIn(b"xmlns='jabber:server'", data)
        self.assertIn(b"xmlns:db='jabber:server:dialback'", data)
        events = reader.read()
        opened = events[0]
        self.assertEqual((opened.attrs["from"], opened.attrs["to"], opened.attrs["version"]),
                         (LOCAL, REMOTE, "1.0"))
        self.assertEqual(opened.attrs["id"], stream.stream_id)
        features = features_of(events)
        self.assertEqual([child.tag for child in features], [f"{{{NS_TLS}}}starttls"])
        self.assertIsNotNone(features.find(f"{{{NS_TLS}}}starttls/{{{NS_TLS}}}required"))

    def test_unknown_host(self):
        """A stream to a domain we do not serve is closed with host-unknown."""
        stream, transport, reader = self.connect()
        stream.dataReceived(header(to="elsewhere.example"))
        self.assertEqual(stream_error(reader.read()), "host-unknown")
        self.assertTrue(transport.disconnecting)

    def test_client_namespace(self):
        """A jabber:client stream on the s2s port is invalid-namespace."""
        stream, _, reader = self.connect()
        stream.dataReceived(header(ns=NS_CLIENT))
        self.assertEqual(stream_error(reader.read()), "invalid-namespace")

    def test_features_after_tls(self):
        """After TLS, without a certificate for the peer: dialback and bidi, no EXTERNAL."""
        _, _, _, features = self.secure()
        self.assertEqual(mechanisms(features), [])
        self.assertIsNotNone(features.find("{urn:xmpp:features:dialback}dialback"))
        self.assertIsNotNone(features.find("{urn:xmpp:features:bidi}bidi"))

    def test_dialback_before_tls_is_refused(self):
        """With encryption required, a dialback request in clear is a policy-violation."""
        stream, _, reader = self.connect()
        stream.dataReceived(header())
        reader.read()
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>".encode())
        self.assertEqual(stream_error(reader.read()), "policy-violation")
        self.assertEqual(self.verifications, [])

    def test_stanza_before_authentication(self):
        """A stanza from an unauthenticated peer is not-authorized."""
        stream, _, reader, _ = self.secure()
        stream.dataReceived(MESSAGE)
        self.assertEqual(stream_error(reader.read()), "not-authorized")
        self.assertEqual(self.local.received, [])

    def test_dialback_valid(self):
        """A key the Authoritative Server confirms authenticates the domain; its stanzas
        then reach the router in jabber:client."""
        stream, _, reader, _ = self.secure()
        verdict, = self.dialback(stream, reader)
        self.assertEqual((verdict.tag, verdict.get("type"), verdict.get("from"),
                          verdict.get("to")), (f"{{{NS_DB}}}result", "valid", LOCAL, REMOTE))
        self.assertEqual(stream.authenticated, {REMOTE: "dialback"})
        stream.dataReceived(MESSAGE)
        message, = self.local.received
        self.assertEqual(message.tag, st.MESSAGE)
        self.assertEqual(message.get("from"), f"alice@{REMOTE}/r")

    def test_dialback_invalid(self):
        """A key the Authoritative Server denies is answered invalid and the stream closed."""
        stream, transport, reader, _ = self.secure()
        events = self.dialback(stream, reader, valid=False)
        self.assertEqual(events[0].get("type"), "invalid")
        self.assertEqual(stream_error(events), "not-authorized")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(stream.authenticated, {})

    def test_dialback_cannot_be_verified(self):
        """When the Authoritative Server cannot be reached the answer is a dialback error
        and the stream closes with remote-connection-failed."""
        stream, _, reader, _ = self.secure()
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>".encode())
        (_, d), = self.verifications
        d.errback(Failure(VerificationFailed("remote-server-not-found")))
        events = reader.read()
        self.assertEqual(events[0].get("type"), "error")
        self.assertEqual(dialback.error_condition(events[0]), "remote-server-not-found")
        self.assertEqual(stream_error(events), "remote-connection-failed")

    def test_dialback_for_a_host_we_do_not_serve(self):
        """A dialback request to another domain is host-unknown."""
        stream, _, reader, _ = self.secure()
        stream.dataReceived(f"<db:result from='{REMOTE}' to='other.example'>k</db:result>"
                            .encode())
        self.assertEqual(stream_error(reader.read()), "host-unknown")

    def test_certificate_makes_dialback_immediate(self):
        """A certificate valid for the claimed domain answers dialback without asking."""
        self.manager.verifier.certificate = valid_certificate(REMOTE)
        stream, _, reader, _ = self.secure()
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>".encode())
        verdict, = reader.elements()
        self.assertEqual(verdict.get("type"), "valid")
        self.assertEqual(self.verifications, [])

    def test_spoofed_from(self):
        """A stanza from a domain the peer did not authenticate closes with invalid-from."""
        stream, transport, reader, _ = self.secure()
        self.dialback(stream, reader)
        stream.dataReceived(b"<message from='mallory@evil.example' to='bob@example.org'>"
                            b"<body>x</body></message>")
        self.assertEqual(stream_error(reader.read()), "invalid-from")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.local.received, [])

    def test_stanza_to_a_foreign_domain(self):
        """A stanza for a domain that is not ours is host-unknown (no relaying)."""
        stream, _, reader, _ = self.secure()
        self.dialback(stream, reader)
        stream.dataReceived(f"<message from='a@{REMOTE}' to='x@third.example'/>".encode())
        self.assertEqual(stream_error(reader.read()), "host-unknown")

    def test_stanza_without_from(self):
        """Stanzas between servers must carry 'from' and 'to' (improper-addressing)."""
        stream, _, reader, _ = self.secure()
        self.dialback(stream, reader)
        stream.dataReceived(b"<message to='bob@example.org'/>")
        self.assertEqual(stream_error(reader.read()), "improper-addressing")

    def test_iq_without_id_bounces(self):
        """A malformed IQ is answered bad-request, and the stream stays up."""
        stream, transport, reader, _ = self.secure()
        self.dialback(stream, reader)
        remote = self.manager
        sent = []
        remote.dispatch = lambda stanza, origin=None: sent.append(stanza)
        stream.dataReceived(f"<iq type='get' from='a@{REMOTE}/r' to='{LOCAL}'>"
                            f"<ping xmlns='urn:xmpp:ping'/></iq>".encode())
        self.assertFalse(transport.disconnecting)
        self.assertEqual(sent[0].get("type"), "error")

    def test_sasl_external(self):
        """With a certificate valid for the header's domain EXTERNAL is offered and
        succeeds; the restarted stream offers nothing more and stanzas flow."""
        self.manager.verifier.certificate = valid_certificate(REMOTE)
        stream, _, reader, features = self.secure()
        self.assertEqual(mechanisms(features), ["EXTERNAL"])
        authzid = base64.b64encode(REMOTE.encode()).decode()
        stream.dataReceived(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{authzid}</auth>"
                            .encode())
        self.assertEqual(reader.elements()[0].tag, f"{{{NS_SASL}}}success")
        self.assertEqual(stream.authenticated, {REMOTE: "SASL EXTERNAL"})
        stream.dataReceived(header())
        self.assertEqual(len(features_of(reader.read())), 0)
        stream.dataReceived(MESSAGE)
        self.assertEqual(len(self.local.received), 1)

    def test_sasl_external_empty_authzid(self):
        """'=' as the authorization identity means the stream header's 'from'."""
        self.manager.verifier.certificate = valid_certificate(REMOTE)
        stream, _, reader, _ = self.secure()
        stream.dataReceived(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>".encode())
        self.assertEqual(reader.elements()[0].tag, f"{{{NS_SASL}}}success")

    def test_sasl_external_other_domain(self):
        """An authorization identity other than the header's domain is invalid-authzid."""
        self.manager.verifier.certificate = valid_certificate(REMOTE)
        stream, _, reader, _ = self.secure()
        authzid = base64.b64encode(b"other.example").decode()
        stream.dataReceived(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{authzid}</auth>"
                            .encode())
        failure, = reader.elements()
        self.assertIsNotNone(failure.find(f"{{{NS_SASL}}}invalid-authzid"))
        self.assertEqual(stream.authenticated, {})

    def test_sasl_external_untrusted_self_signed(self):
        """A self-signed certificate authenticates nobody unless trusted for its domain."""
        self.manager.verifier.certificate = self_signed_certificate(REMOTE)
        stream, _, reader, features = self.secure()
        self.assertEqual(mechanisms(features), [])
        stream.dataReceived(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>".encode())
        failure, = reader.elements()
        self.assertIsNotNone(failure.find(f"{{{NS_SASL}}}not-authorized"))

    def test_sasl_external_trusted_self_signed(self):
        """trust_self_signed for the domain lets its self-signed certificate authenticate."""
        self.manager, _, self.local = make_manager(require_encryption=True,
                                                   trust_self_signed=(REMOTE,))
        self.manager.verifier.certificate = self_signed_certificate(REMOTE)
        _, _, _, features = self.secure()
        self.assertEqual(mechanisms(features), ["EXTERNAL"])

    def test_answers_db_verify(self):
        """As Authoritative Server we confirm our own keys and deny others."""
        stream, _, reader, _ = self.secure()
        good = dialback.dialback_key(SECRET, REMOTE, LOCAL, "sid1")
        stream.dataReceived(f"<db:verify from='{REMOTE}' to='{LOCAL}' id='sid1'>{good}"
                            f"</db:verify><db:verify from='{REMOTE}' to='{LOCAL}' id='sid2'>"
                            f"{good}</db:verify>".encode())
        answers = reader.elements()
        self.assertEqual([(a.get("id"), a.get("type"), a.get("from"), a.get("to"))
                          for a in answers],
                         [("sid1", "valid", LOCAL, REMOTE), ("sid2", "invalid", LOCAL, REMOTE)])

    def test_negotiation_timeout(self):
        """A peer that does not authenticate in time is closed with connection-timeout."""
        stream, transport, reader, _ = self.secure()
        self.manager.clock.advance(self.manager.config.negotiation_timeout)
        self.assertEqual(stream_error(reader.read()), "connection-timeout")
        self.assertTrue(transport.disconnecting)

    def test_bidi_stream_carries_our_stanzas(self):
        """After <bidi/> and authentication the manager may send on this stream."""
        stream, _, reader, _ = self.secure()
        stream.dataReceived(b"<bidi xmlns='urn:xmpp:bidi'/>")
        self.dialback(stream, reader)
        self.assertIs(self.manager.bidi[(LOCAL, REMOTE)], stream)
        stream.connectionLost(None)
        self.assertEqual(self.manager.bidi, {})
