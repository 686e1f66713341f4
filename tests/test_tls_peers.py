"""jabberapp.tls for federation: peer certificate verification, domain names in
certificates (RFC 6125, XEP-0178), client options, and ALPN -- TLS in memory (BIOs)."""
import datetime
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

from jabberapp import tls

XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")
SRVNAME = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7")


def der_string(tag, text):
    data = text.encode()
    return bytes([tag, len(data)]) + data


def make_certificate(names=(), other_names=(), cn="peer"):
    """A self-signed certificate with the given DNS names and (oid, DER) other names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(days=1)))
    sans = [x509.DNSName(n) for n in names] + [x509.OtherName(oid, value)
                                                for oid, value in other_names]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


class NamesTests(SynchronousTestCase):
    def test_dns_id(self):
        """A DNS-ID names its domain, case-insensitively, and nothing else."""
        cert = make_certificate(["b.example"])
        self.assertTrue(tls.certificate_names_domain(cert, "B.example"))
        self.assertFalse(tls.certificate_names_domain(cert, "c.example"))

    def test_wildcard(self):
        """A wildcard covers one label only (RFC 6125 §6.4.3)."""
        cert = make_certificate(["*.b.example"])
        self.assertTrue(tls.certificate_names_domain(cert, "chat.b.example"))
        self.assertFalse(tls.certificate_names_domain(cert, "b.example"))
        self.assertFalse(tls.certificate_names_domain(cert, "x.chat.b.example"))

    def test_xmppaddr(self):
        """An XmppAddr other name names the domain (RFC 6120 §13.7.1.4)."""
        cert = make_certificate(other_names=[(XMPPADDR, der_string(0x0C, "b.example"))])
        self.assertTrue(tls.certificate_names_domain(cert, "b.example"))
        self.assertFalse(tls.certificate_names_domain(cert, "c.example"))

    def test_srv_id(self):
        """An SRVName for _xmpp-server names the domain (RFC 6125 §6.5.1)."""
        cert = make_certificate(other_names=[(SRVNAME,
                                              der_string(0x16, "_xmpp-server.b.example"))])
        self.assertTrue(tls.certificate_names_domain(cert, "b.example"))
        cert = make_certificate(other_names=[(SRVNAME,
                                              der_string(0x16, "_xmpp-client.b.example"))])
        self.assertFalse(tls.certificate_names_domain(cert, "b.example"))

    def test_common_name_is_not_enough(self):
        """Without a subjectAltName the common name does not count (RFC 6125 §6.4.4)."""
        self.assertFalse(tls.certificate_names_domain(make_certificate(cn="b.example"),
                                                      "b.example"))


class PeerCertificateTests(SynchronousTestCase):
    def test_verdicts(self):
        """A valid chain authenticates the names it carries; a self-signed leaf only when
        trusted; anything else never."""
        cert = make_certificate(["b.example"])
        valid = tls.PeerCertificate(cert, ())
        self_signed = tls.PeerCertificate(cert, ((0, tls.SELF_SIGNED_LEAF),))
        expired = tls.PeerCertificate(cert, ((0, tls.SELF_SIGNED_LEAF), (0, 10)))
        self.assertTrue(valid.authenticates("b.example"))
        self.assertFalse(valid.authenticates("c.example"))
        self.assertFalse(self_signed.authenticates("b.example"))
        self.assertTrue(self_signed.authenticates("b.example", trust_self_signed=True))
        self.assertFalse(expired.authenticates("b.example", trust_self_signed=True))
        self.assertFalse(tls.PeerCertificate(None, ()).authenticates("b.example", True))
        self.assertEqual([v.describe() for v in (valid, self_signed, expired)],
                         ["valid", "self-signed", "untrusted"])


class Transport:
    """What PeerVerifier.peer() reads: a transport whose handle is the connection."""

    def __init__(self, connection):
        self.connection = connection

    def getHandle(self):
        return self.connection


def handshake(client, server):
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(50):
        for one, other in ((client, server), (server, client)):
            try:
                one.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                other.bio_write(one.bio_read(65536))
            except SSL.WantReadError:
                pass
    # After a TLS 1.3 handshake, the server's tickets and the client's certificate are
    # delivered by reading application data.
    for one in (client, server):
        try:
            one.recv(1)
        except SSL.WantReadError:
            pass


class HandshakeTests(SynchronousTestCase):
    def setUp(self):
        directory = tempfile.mkdtemp()
        self.a = tls.ensure_self_signed(os.path.join(directory, "a"), "a.example")
        self.b = tls.ensure_self_signed(os.path.join(directory, "b"), "b.example")
        self.b_cert = self.b[0]

    def connect(self, ca_file=None, client_certs=None, alpn=None):
        """b.example serves, a.example connects; returns (client, server, verifiers)."""
        server_verifier = tls.PeerVerifier(ca_file)
        client_verifier = tls.PeerVerifier(ca_file)
        server_options = tls.server_tls_options({"b.example": self.b}, "b.example",
                                                server_verifier)
        contexts = tls.client_tls_options(client_certs if client_certs is not None
                                          else {"a.example": self.a}, client_verifier)
        options = contexts.options("a.example", "b.example")
        verifyObject(IOpenSSLClientConnectionCreator, options)
        client = options.clientConnectionForTLS(None)
        if alpn is not None:
            client.set_alpn_protos(alpn)
        server = server_options.serverConnectionForTLS(None)
        handshake(client, server)
        return client, server, server_verifier, client_verifier

    def test_self_signed_both_ways(self):
        """Both sides see the other's self-signed certificate, recorded, not fatal."""
        client, server, server_verifier, client_verifier = self.connect()
        seen_by_server = server_verifier.peer(Transport(server))
        seen_by_client = client_verifier.peer(Transport(client))
        self.assertEqual(seen_by_server.errors, ((0, tls.SELF_SIGNED_LEAF),))
        self.assertTrue(seen_by_server.authenticates("a.example", trust_self_signed=True))
        self.assertFalse(seen_by_server.authenticates("a.example"))
        self.assertTrue(seen_by_client.authenticates("b.example", trust_self_signed=True))
        self.assertEqual(server.get_servername(), b"b.example")     # SNI

    def test_trust_store(self):
        """A certificate in ca_file validates: the chain is trusted."""
        bundle = os.path.join(tempfile.mkdtemp(), "ca.pem")
        with open(bundle, "wb") as f:
            for path in (self.a[0], self.b[0]):
                with open(path, "rb") as cert:
                    f.write(cert.read())
        client, server, server_verifier, client_verifier = self.connect(ca_file=bundle)
        self.assertTrue(server_verifier.peer(Transport(server)).authenticates("a.example"))
        self.assertTrue(client_verifier.peer(Transport(client)).authenticates("b.example"))

    def test_server_only_key_usage(self):
        """A connecting server's certificate without the clientAuth key usage still
        validates (as with Prosody): only serverAuth is common on server certificates."""
        directory = tempfile.mkdtemp()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(key, hashes.SHA256()))
        cert_path, key_path = (os.path.join(directory, n) for n in ("a.crt", "a.key"))
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        _, server, server_verifier, _ = self.connect(
            ca_file=cert_path, client_certs={"a.example": (cert_path, key_path)})
        self.assertTrue(server_verifier.peer(Transport(server)).authenticates("a.example"))

    def test_no_client_certificate(self):
        """A peer without a certificate gets through the handshake and proves nothing."""
        _, server, server_verifier, _ = self.connect(client_certs={})
        peer = server_verifier.peer(Transport(server))
        self.assertIsNone(peer.certificate)
        self.assertFalse(peer.authenticates("a.example", True))

    def test_alpn_xmpp_server(self):
        """Our client offers ALPN xmpp-server (XEP-0368) and the server selects it."""
        client, server, _, _ = self.connect()
        self.assertEqual(server.get_alpn_proto_negotiated(), b"xmpp-server")
        self.assertEqual(client.get_alpn_proto_negotiated(), b"xmpp-server")

    def test_unknown_alpn_does_not_fail(self):
        """A peer offering only protocols we do not speak still completes the handshake
        (Twisted's own ALPN callback would abort it with an internal-error alert)."""
        client, server, _, _ = self.connect(alpn=[b"h2"])
        self.assertEqual(server.get_alpn_proto_negotiated(), b"")
        self.assertIsNotNone(server.get_cipher_name())
