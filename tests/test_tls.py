"""Tests for jabberapp.tls: certificates, SNI, protocol versions and channel bindings."""
from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import stat
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import defer, reactor
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp.tls import (
    EXPORTER_LABEL,
    channel_bindings,
    ensure_self_signed,
    fingerprint_sha256,
    load_certificate,
    server_end_point_hash,
    server_tls_options,
    tls_version,
)

# A real CA certificate signed with sha1WithRSAEncryption (GlobalSign Root CA): the
# cryptography package no longer signs with SHA-1, so one cannot be generated here.
SHA1_SIGNED_PEM = b"""\
-----BEGIN CERTIFICATE-----
MIIDdTCCAl2gAwIBAgILBAAAAAABFUtaw5QwDQYJKoZIhvcNAQEFBQAwVzELMAkG
A1UEBhMCQkUxGTAXBgNVBAoTEEdsb2JhbFNpZ24gbnYtc2ExEDAOBgNVBAsTB1Jv
b3QgQ0ExGzAZBgNVBAMTEkdsb2JhbFNpZ24gUm9vdCBDQTAeFw05ODA5MDExMjAw
MDBaFw0yODAxMjgxMjAwMDBaMFcxCzAJBgNVBAYTAkJFMRkwFwYDVQQKExBHbG9i
YWxTaWduIG52LXNhMRAwDgYDVQQLEwdSb290IENBMRswGQYDVQQDExJHbG9iYWxT
aWduIFJvb3QgQ0EwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDaDuaZ
jc6j40+Kfvvxi4Mla+pIH/EqsLmVEQS98GPR4mdmzxzdzxtIK+6NiY6arymAZavp
xy0Sy6scTHAHoT0KMM0VjU/43dSMUBUc71DuxC73/OlS8pF94G3VNTCOXkNz8kHp
1Wrjsok6Vjk4bwY8iGlbKk3Fp1S4bInMm/k8yuX9ifUSPJJ4ltbcdG6TRGHRjcdG
snUOhugZitVtbNV4FpWi6cgKOOvyJBNPc1STE4U6G7weNLWLBYy5d4ux2x8gkasJ
U26Qzns3dLlwR5EiUWMWea6xrkEmCMgZK9FGqkjWZCrXgzT/LCrBbBlDSgeF59N8
9iFo7+ryUp9/k5DPAgMBAAGjQjBAMA4GA1UdDwEB/wQEAwIBBjAPBgNVHRMBAf8E
BTADAQH/MB0GA1UdDgQWBBRge2YaRQ2XyolQL30EzTSo//z9SzANBgkqhkiG9w0B
AQUFAAOCAQEA1nPnfE920I2/7LqivjTFKDK1fPxsnCwrvQmeU79rXqoRSLblCKOz
yj1hTdNGCbM+w6DjY1Ub8rrvrTnhQ7k4o+YviiY776BQVvnGCv04zcQLcFGUl5gE
38NflNUVyRRBnMRddWQVDf9VMOyGj/8N7yy5Y0b2qvzfvGn9LhJIZJrglfCm7ymP
AbEVtQwdpf5pLGkkeB6zpxxxYu7KyJesF12KwvhHhm4qxFYxldBniYUr+WymXUad
DKqC5JlR3XC321Y9YeRq4VzW9v493kHMB65jUr9TU/Qr6cf9tveCX4XSQRjbgbME
HMUfpIBvFSDJ3gyICh3WZlXi/EjJKSZp4A==
-----END CERTIFICATE-----
"""


def make_certificate(key, host="example.org", algorithm=None, days=30, issuer_key=None,
                     issuer_name=None):
    """A certificate for C{key}, signed by C{issuer_key} (default: itself)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(issuer_name or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=abs(days) * 2 + 1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(issuer_key or key, algorithm))


def pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key, password=None):
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


class TempDir:
    """A temporary directory removed after the test."""

    def make_dir(self):
        directory = tempfile.mkdtemp(prefix="jabberapp-tls-")
        self.addCleanup(shutil.rmtree, directory)
        return directory

    def write(self, directory, name, data):
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path


class SelfSignedTests(TempDir, SynchronousTestCase):
    def test_generated(self):
        """A self-signed P-256 certificate for the host is written under data_dir/certs."""
        data_dir = self.make_dir()
        cert_path, key_path = ensure_self_signed(data_dir, "example.org")
        self.assertEqual(os.path.dirname(cert_path), os.path.join(data_dir, "certs"))
        pair = load_certificate(cert_path, key_path)
        san = pair.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertEqual(san.value.get_values_for_type(x509.DNSName), ["example.org"])
        self.assertIsInstance(pair.key, ec.EllipticCurvePrivateKey)
        self.assertEqual(pair.key.curve.name, "secp256r1")
        lifetime = pair.certificate.not_valid_after_utc - datetime.datetime.now(
            datetime.timezone.utc)
        self.assertGreater(lifetime, datetime.timedelta(days=365))

    def test_key_mode(self):
        """The private key file is readable by its owner only."""
        _, key_path = ensure_self_signed(self.make_dir(), "example.org")
        self.assertEqual(stat.S_IMODE(os.stat(key_path).st_mode), 0o600)

    def test_reused(self):
        """A second call returns the same files, unchanged."""
        data_dir = self.make_dir()
        first = ensure_self_signed(data_dir, "example.org")
        fingerprint = fingerprint_sha256(first[0])
        self.assertEqual(ensure_self_signed(data_dir, "example.org"), first)
        self.assertEqual(fingerprint_sha256(first[0]), fingerprint)

    def test_per_host(self):
        """Each host gets its own certificate."""
        data_dir = self.make_dir()
        one = ensure_self_signed(data_dir, "example.org")
        two = ensure_self_signed(data_dir, "chat.example.org")
        self.assertNotEqual(fingerprint_sha256(one[0]), fingerprint_sha256(two[0]))

    def test_idn_host(self):
        """An internationalised host is put in the SAN as its A-label."""
        cert_path, key_path = ensure_self_signed(self.make_dir(), "b\u00fccher.example")
        certificate = load_certificate(cert_path, key_path).certificate
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertEqual(san.value.get_values_for_type(x509.DNSName),
                         ["xn--bcher-kva.example"])

    def test_expired_replaced(self):
        """An expired self-signed certificate is replaced by a new one."""
        data_dir = self.make_dir()
        cert_path, key_path = ensure_self_signed(data_dir, "example.org")
        key = load_certificate(cert_path, key_path).key
        with open(cert_path, "wb") as f:
            f.write(pem(make_certificate(key, days=-1, algorithm=hashes.SHA256())))
        old = fingerprint_sha256(cert_path)
        self.assertEqual(ensure_self_signed(data_dir, "example.org"), (cert_path, key_path))
        self.assertNotEqual(fingerprint_sha256(cert_path), old)

    def test_broken_files_kept(self):
        """Unusable existing files are reported, never overwritten."""
        data_dir = self.make_dir()
        cert_path, key_path = ensure_self_signed(data_dir, "example.org")
        with open(cert_path, "wb") as f:
            f.write(b"garbage")
        exc = self.assertRaises(ValueError, ensure_self_signed, data_dir, "example.org")
        self.assertIn(cert_path, str(exc))
        with open(cert_path, "rb") as f:
            self.assertEqual(f.read(), b"garbage")

    def test_bad_host(self):
        """A host that would escape the certs directory is refused."""
        self.assertRaises(ValueError, ensure_self_signed, self.make_dir(), "../etc")

    def test_fingerprint_format(self):
        """The fingerprint is the colon-separated upper-case SHA-256 of the DER."""
        cert_path, _ = ensure_self_signed(self.make_dir(), "example.org")
        with open(cert_path, "rb") as f:
            der = x509.load_pem_x509_certificate(f.read()).public_bytes(
                serialization.Encoding.DER)
        fingerprint = fingerprint_sha256(cert_path)
        self.assertRegex(fingerprint, r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
        self.assertEqual(fingerprint.replace(":", "").lower(), hashlib.sha256(der).hexdigest())


class LoadCertificateTests(TempDir, SynchronousTestCase):
    def setUp(self):
        self.dir = self.make_dir()
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = make_certificate(self.key, algorithm=hashes.SHA256())

    def test_chain(self):
        """A chain file is loaded leaf first, with the key of the leaf."""
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = make_certificate(ca_key, host="ca.example", algorithm=hashes.SHA256())
        leaf = make_certificate(self.key, algorithm=hashes.SHA256(), issuer_key=ca_key,
                                issuer_name=ca.subject)
        cert_path = self.write(self.dir, "chain.pem", pem(leaf) + pem(ca))
        key_path = self.write(self.dir, "key.pem", key_pem(self.key))
        pair = load_certificate(cert_path, key_path)
        self.assertEqual(pair.chain, (leaf, ca))
        self.assertEqual(pair.certificate, leaf)

    def test_missing_file(self):
        """A missing file is a ValueError naming it."""
        key_path = self.write(self.dir, "key.pem", key_pem(self.key))
        missing = os.path.join(self.dir, "missing.pem")
        exc = self.assertRaises(ValueError, load_certificate, missing, key_path)
        self.assertEqual(str(exc), f"{missing}: cannot read the certificate: "
                                   "No such file or directory")

    def test_not_pem(self):
        """A file that is not PEM is a ValueError naming it."""
        cert_path = self.write(self.dir, "cert.pem", b"hello")
        key_path = self.write(self.dir, "key.pem", key_pem(self.key))
        exc = self.assertRaises(ValueError, load_certificate, cert_path, key_path)
        self.assertEqual(str(exc), f"{cert_path}: not a PEM certificate file")
        cert_path = self.write(self.dir, "cert.pem", pem(self.cert))
        key_path = self.write(self.dir, "key.pem", pem(self.cert))
        exc = self.assertRaises(ValueError, load_certificate, cert_path, key_path)
        self.assertEqual(str(exc), f"{key_path}: not a PEM private key file")

    def test_mismatch(self):
        """A key that does not belong to the certificate is a ValueError naming both."""
        other = ec.generate_private_key(ec.SECP256R1())
        cert_path = self.write(self.dir, "cert.pem", pem(self.cert))
        key_path = self.write(self.dir, "key.pem", key_pem(other))
        exc = self.assertRaises(ValueError, load_certificate, cert_path, key_path)
        self.assertEqual(str(exc), f"{key_path}: the private key does not match the "
                                   f"certificate {cert_path}")

    def test_encrypted_key(self):
        """An encrypted key is refused with an explanation."""
        cert_path = self.write(self.dir, "cert.pem", pem(self.cert))
        key_path = self.write(self.dir, "key.pem", key_pem(self.key, b"secret"))
        exc = self.assertRaises(ValueError, load_certificate, cert_path, key_path)
        self.assertTrue(str(exc).startswith(f"{key_path}: the private key is encrypted"))

    def test_options_report_bad_files(self):
        """server_tls_options() reports an unusable file as a ValueError naming it."""
        cert_path = self.write(self.dir, "cert.pem", b"junk")
        key_path = self.write(self.dir, "key.pem", key_pem(self.key))
        exc = self.assertRaises(ValueError, server_tls_options,
                                {"example.org": (cert_path, key_path)}, "example.org")
        self.assertIn(cert_path, str(exc))

    def test_options_need_default_host(self):
        """The default host must be one of the hosts given certificates."""
        pair = ensure_self_signed(self.dir, "example.org")
        self.assertRaises(ValueError, server_tls_options, {"example.org": pair}, "other.org")

    def test_options_interface(self):
        """The options provide IOpenSSLServerConnectionCreator."""
        options = server_tls_options({"example.org": ensure_self_signed(self.dir,
                                                                        "example.org")},
                                     "example.org")
        verifyObject(IOpenSSLServerConnectionCreator, options)


class ServerEndPointTests(SynchronousTestCase):
    def test_signature_hash_used(self):
        """The certificate is hashed with its signature's hash (SHA-384 here)."""
        key = ec.generate_private_key(ec.SECP384R1())
        certificate = make_certificate(key, algorithm=hashes.SHA384())
        der = certificate.public_bytes(serialization.Encoding.DER)
        self.assertEqual(server_end_point_hash(certificate), hashlib.sha384(der).digest())

    def test_sha1_becomes_sha256(self):
        """A SHA-1-signed certificate is hashed with SHA-256 (RFC 5929 section 4.1)."""
        certificate = x509.load_pem_x509_certificate(SHA1_SIGNED_PEM)
        self.assertIsInstance(certificate.signature_hash_algorithm, hashes.SHA1)
        der = certificate.public_bytes(serialization.Encoding.DER)
        self.assertEqual(server_end_point_hash(certificate), hashlib.sha256(der).digest())

    def test_no_hash(self):
        """An Ed25519 certificate has no defined tls-server-end-point value."""
        key = ed25519.Ed25519PrivateKey.generate()
        self.assertIsNone(server_end_point_hash(make_certificate(key, algorithm=None)))

    def test_not_tls(self):
        """A transport without TLS has no bindings and no TLS version."""
        transport = StringTransport()
        self.assertEqual(channel_bindings(transport), {})
        self.assertIsNone(tls_version(transport))


# -- real loopback handshakes ---------------------------------------------------------------


@implementer(IOpenSSLClientConnectionCreator)
class ClientOptions:
    """A bare pyOpenSSL client: optional SNI name and protocol version limits."""

    def __init__(self, server_name=None, max_version=None, legacy=False):
        self.server_name = server_name
        self.max_version = max_version
        self.legacy = legacy

    def clientConnectionForTLS(self, tlsProtocol):
        context = SSL.Context(SSL.TLS_METHOD)
        if self.legacy:
            # Let this client really offer TLS 1.1, so the refusal is the server's.
            context.set_min_proto_version(SSL.TLS1_VERSION)
            context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        if self.max_version is not None:
            context.set_max_proto_version(self.max_version)
        connection = SSL.Connection(context, None)
        if self.server_name is not None:
            connection.set_tlsext_host_name(self.server_name)
        return connection


@implementer(IHandshakeListener)
class Peer(Protocol):
    """Records what one side sees once the handshake completes, then hangs up."""

    def __init__(self, on_handshake, starttls_options=None):
        self.on_handshake = on_handshake
        self.starttls_options = starttls_options
        self.result = defer.Deferred()
        self.lost = defer.Deferred()
        self.before_tls = None

    def connectionMade(self):
        if self.starttls_options is not None:
            # What the stream layer will see on a plain connection before STARTTLS.
            self.before_tls = (channel_bindings(self.transport), tls_version(self.transport))
            self.transport.startTLS(self.starttls_options)

    def handshakeCompleted(self):
        self.result.callback(self.on_handshake(self.transport))
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.result.called:
            self.result.errback(reason)
        self.lost.callback(None)


def server_view(transport):
    return {"bindings": channel_bindings(transport), "version": tls_version(transport),
            "before": None}


def client_view(transport):
    connection = transport.getHandle()
    version = connection.get_protocol_version_name()
    return {
        "version": version,
        "certificate": connection.get_peer_certificate(as_cryptography=True),
        "exporter": (connection.export_keying_material(EXPORTER_LABEL, 32)
                     if version == "TLSv1.3" else None),
    }


class LoopbackMixin(TempDir):
    """A TLS server on 127.0.0.1 for example.org (default) and chat.example.org."""

    starttls = False

    def setUp(self):
        data_dir = self.make_dir()
        self.certs = {host: ensure_self_signed(data_dir, host)
                      for host in ("example.org", "chat.example.org")}
        self.options = server_tls_options(self.certs, "example.org")
        self.servers = []

        def build(addr):
            peer = Peer(server_view, self.options if self.starttls else None)
            self.servers.append(peer)
            return peer

        factory = Factory.forProtocol(lambda: None)
        factory.buildProtocol = build
        if self.starttls:
            endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        else:
            endpoint = SSL4ServerEndpoint(reactor, 0, self.options, interface="127.0.0.1")
        d = endpoint.listen(factory)

        def listening(port):
            self.port = port
            self.addCleanup(port.stopListening)

        return d.addCallback(listening)

    @defer.inlineCallbacks
    def handshake(self, client_options):
        """Connect a client; return (server view, client view), either may be a Failure."""
        client = Peer(client_view)
        factory = Factory.forProtocol(lambda: client)
        endpoint = wrapClientTLS(client_options, TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.port.getHost().port))
        yield endpoint.connect(factory)
        views = yield defer.DeferredList([client.result], consumeErrors=True)
        # The client's handshake result needs the server's reply: the server exists.
        server = self.servers[-1]
        server_views = yield defer.DeferredList([server.result], consumeErrors=True)
        yield defer.gatherResults([client.lost, server.lost])
        if self.starttls:
            self.assertEqual(server.before_tls, ({}, None))
        return server_views[0][1], views[0][1]

    def expected_end_point(self, host):
        certificate = load_certificate(*self.certs[host]).certificate
        return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()

    @defer.inlineCallbacks
    def test_tls13_bindings(self):
        """With TLS 1.3 both bindings are given and match what the client computes."""
        server, client = yield self.handshake(ClientOptions())
        self.assertEqual((server["version"], client["version"]), ("TLSv1.3", "TLSv1.3"))
        self.assertEqual(set(server["bindings"]), {"tls-exporter", "tls-server-end-point"})
        self.assertEqual(len(server["bindings"]["tls-exporter"]), 32)
        self.assertEqual(server["bindings"]["tls-exporter"], client["exporter"])
        self.assertEqual(server["bindings"]["tls-server-end-point"],
                         server_end_point_hash(client["certificate"]))
        self.assertEqual(server["bindings"]["tls-server-end-point"],
                         self.expected_end_point("example.org"))

    @defer.inlineCallbacks
    def test_tls12_bindings(self):
        """With TLS 1.2 only tls-server-end-point is given (RFC 9266 is TLS 1.3 only)."""
        server, client = yield self.handshake(ClientOptions(max_version=SSL.TLS1_2_VERSION))
        self.assertEqual((server["version"], client["version"]), ("TLSv1.2", "TLSv1.2"))
        self.assertEqual(set(server["bindings"]), {"tls-server-end-point"})
        self.assertEqual(server["bindings"]["tls-server-end-point"],
                         server_end_point_hash(client["certificate"]))

    @defer.inlineCallbacks
    def test_sni_selects_certificate(self):
        """The SNI name picks that host's certificate, in any letter case."""
        for name in (b"chat.example.org", b"CHAT.Example.ORG"):
            server, client = yield self.handshake(ClientOptions(server_name=name))
            self.assertEqual(client["certificate"],
                             load_certificate(*self.certs["chat.example.org"]).certificate)
            self.assertEqual(server["bindings"]["tls-server-end-point"],
                             self.expected_end_point("chat.example.org"))

    @defer.inlineCallbacks
    def test_default_certificate(self):
        """Without SNI, or with an unknown name, the default host's certificate is used."""
        default = load_certificate(*self.certs["example.org"]).certificate
        for name in (None, b"unknown.example"):
            _, client = yield self.handshake(ClientOptions(server_name=name))
            self.assertEqual(client["certificate"], default)

    @defer.inlineCallbacks
    def test_tls11_refused(self):
        """A client offering at most TLS 1.1 is refused by the server."""
        server, client = yield self.handshake(
            ClientOptions(max_version=SSL.TLS1_1_VERSION, legacy=True))
        client.trap(SSL.Error)
        server.trap(SSL.Error)
        self.assertRegex(str(server.value), re.compile("unsupported protocol", re.I))


class DirectTLSTests(LoopbackMixin, TestCase):
    """Direct TLS (XEP-0368) through SSL4ServerEndpoint."""


class StartTLSTests(LoopbackMixin, TestCase):
    """STARTTLS: transport.startTLS() on a plain TCP connection."""

    starttls = True
