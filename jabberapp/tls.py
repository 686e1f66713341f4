"""
TLS for the listeners: certificates, server options with SNI, and channel bindings.

- ``ensure_self_signed()`` makes (once) the development certificate of a host that has none
  configured; ``load_certificate()`` reads and checks a PEM chain and its key.
- ``server_tls_options()`` builds one object usable both with ``transport.startTLS()``
  (STARTTLS, RFC 6120 §5) and with ``SSL4ServerEndpoint`` (direct TLS, XEP-0368): TLS 1.2 or
  newer only, the certificate chosen by the client's SNI name, the default host's otherwise.
- ``channel_bindings()`` and ``tls_version()`` read a handshaken connection for SCRAM-*-PLUS:
  'tls-exporter' (RFC 9266, TLS 1.3 only) and 'tls-server-end-point' (RFC 5929 §4.1).

Both kinds of Twisted TLS transport expose the pyOpenSSL ``Connection`` through
``transport.getHandle()``: a direct-TLS connection's transport is the
``TLSMemoryBIOProtocol`` itself, and ``startTLS()`` on a TCP transport replaces the
transport's ``getHandle`` with that of the ``TLSMemoryBIOProtocol`` it inserts.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

import idna
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname
from twisted.internet.interfaces import (IOpenSSLClientConnectionCreator, IOpenSSLContextFactory,
                                         IOpenSSLServerConnectionCreator)
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from zope.interface import implementer

__all__ = [
    "CertificateAndKey",
    "ClientTLSOptions",
    "PeerCertificate",
    "PeerVerifier",
    "ServerTLSOptions",
    "certificate_names_domain",
    "channel_bindings",
    "client_tls_options",
    "ensure_self_signed",
    "fingerprint_sha256",
    "load_certificate",
    "server_end_point_hash",
    "server_tls_options",
    "tls_version",
]

log = Logger()

#: Lifetime of a generated self-signed certificate; an expired one is replaced.
SELF_SIGNED_DAYS = 825
EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
#: ALPN protocol names of XMPP (XEP-0368).
XMPP_ALPN = (b"xmpp-client", b"xmpp-server")


@dataclass(frozen=True)
class CertificateAndKey:
    """A certificate chain (leaf first) and the private key of its leaf."""

    chain: tuple[x509.Certificate, ...]
    key: CertificateIssuerPrivateKeyTypes
    cert_path: str
    key_path: str

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate."""
        return self.chain[0]


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _parse_chain(cert_path: str) -> tuple[x509.Certificate, ...]:
    data = _read(cert_path, "certificate")
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise ValueError(f"{cert_path}: not a PEM certificate file") from None


def load_certificate(cert_path: str, key_path: str) -> CertificateAndKey:
    """
    Read a PEM certificate chain (leaf first) and the PEM private key of its leaf.

    Raises ValueError naming the file when either cannot be read or parsed, when the key
    is encrypted, or when the key does not belong to the certificate.
    """
    chain = _parse_chain(cert_path)
    data = _read(key_path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError(f"{key_path}: the private key is encrypted; jabberapp needs it "
                         f"unencrypted (protect it with file permissions)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{key_path}: not a PEM private key file") from None
    if _public_der(key.public_key()) != _public_der(chain[0].public_key()):
        raise ValueError(f"{key_path}: the private key does not match the certificate "
                         f"{cert_path}")
    return CertificateAndKey(chain=chain, key=key, cert_path=cert_path, key_path=key_path)


def fingerprint_sha256(cert_path: str) -> str:
    """The SHA-256 fingerprint of the (leaf) certificate in C{cert_path}: 'AB:CD:...'."""
    certificate = _parse_chain(cert_path)[0]
    return ":".join(f"{b:02X}" for b in certificate.fingerprint(hashes.SHA256()))


# -- self-signed development certificates ---------------------------------------------------


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    temporary = f"{path}.tmp{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)   # the mode given to open() is only used for a new file
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _subject_alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(idna.encode(host).decode("ascii"))


def _not_expired(certificate: x509.Certificate) -> bool:
    return certificate.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc)


def ensure_self_signed(data_dir: str, host: str) -> tuple[str, str]:
    """
    (cert_path, key_path) of the self-signed certificate of C{host} in C{data_dir}/certs,
    generated on first use (EC P-256, SAN for C{host}, valid SELF_SIGNED_DAYS days, key file
    mode 0600) and reused afterwards; replaced when expired. For development: clients will
    not trust it. ValueError when existing files are unusable (they are never overwritten).
    """
    if not host or host.startswith(".") or any(c in host for c in "/\\\0"):
        raise ValueError(f"not a host name usable as a file name: {host!r}")
    certs_dir = os.path.join(data_dir, "certs")
    os.makedirs(certs_dir, mode=0o700, exist_ok=True)
    cert_path = os.path.join(certs_dir, f"{host}.crt")
    key_path = os.path.join(certs_dir, f"{host}.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        if _not_expired(load_certificate(cert_path, key_path).certificate):
            return cert_path, key_path
        log.warn("the self-signed certificate {path} has expired; generating a new one",
                 path=cert_path)

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))   # tolerate clock skew
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName([_subject_alt_name(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        # clientAuth too: s2s peers present this certificate when they connect out.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a crash in between leaves no certificate, so both are made again.
    _write_atomically(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)
    _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info("generated a self-signed certificate for {host} in {path}, SHA-256 "
             "fingerprint {fingerprint}", host=host, path=cert_path,
             fingerprint=fingerprint_sha256(cert_path))
    return cert_path, key_path


# -- server options -------------------------------------------------------------------------


def _sni_name(host: str) -> bytes | None:
    """The SNI form (lowercase A-labels) of a host, or None for an IP literal."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None   # SNI never carries an address (RFC 6066 §3)
    except ValueError:
        pass
    return idna.encode(host.rstrip(".")).lower()


def _context(pair: CertificateAndKey) -> SSL.Context:
    # CertificateOptions supplies Twisted's vetted ciphers, options and ECDH set-up; the
    # certificate is added afterwards as cryptography objects (pyOpenSSL's X509 and PKey
    # types are deprecated).
    context = CertificateOptions(raiseMinimumTo=TLSVersion.TLSv1_2).getContext()
    try:
        context.use_certificate(pair.certificate)
        context.use_privatekey(pair.key)
        for extra in pair.chain[1:]:
            context.add_extra_chain_cert(extra)
    except TypeError:   # COMPAT: pyOpenSSL < 24.3 takes only its own types
        from OpenSSL import crypto

        context.use_certificate(crypto.X509.from_cryptography(pair.certificate))
        context.use_privatekey(crypto.PKey.from_cryptography_key(pair.key))
        for extra in pair.chain[1:]:
            context.add_extra_chain_cert(crypto.X509.from_cryptography(extra))
    context.check_privatekey()
    # COMPAT: Twisted >= 24 -- CertificateOptions installs an ALPN callback that fails the
    # handshake with an internal-error alert when the peer offers a protocol it was not
    # told about. XMPP peers offer 'xmpp-client' or 'xmpp-server' (XEP-0368; Prosody does
    # even on STARTTLS): accept those, and carry on without ALPN for anything else.
    context.set_alpn_select_callback(_select_alpn)
    return context


def _select_alpn(connection: SSL.Connection, offered: list[bytes]):
    for protocol in offered:
        if protocol in XMPP_ALPN:
            return protocol
    return SSL.NO_OVERLAPPING_PROTOCOLS


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ServerTLSOptions:
    """
    Server TLS settings for every host: TLS >= 1.2 and the certificate chosen by SNI.

    Pass it to ``transport.startTLS()`` or ``SSL4ServerEndpoint``. Build it with
    ``server_tls_options()``.
    """

    def __init__(self, contexts: Mapping[str, SSL.Context], default_host: str) -> None:
        if default_host not in contexts:
            raise ValueError(f"no certificate for the default host {default_host!r}")
        self.hosts = tuple(contexts)
        self.default_host = default_host
        self._default = contexts[default_host]
        self._by_sni: dict[bytes, SSL.Context] = {}
        for host, context in contexts.items():
            name = _sni_name(host)
            if name is not None:
                self._by_sni[name] = context
        # Only the context a connection starts with is asked about the server name.
        self._default.set_tlsext_servername_callback(self._on_server_name)

    def _on_server_name(self, connection: SSL.Connection) -> None:
        name = connection.get_servername()
        if not name:
            return
        context = self._by_sni.get(name.lower().rstrip(b"."))
        if context is not None and context is not self._default:
            connection.set_context(context)

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        """See IOpenSSLServerConnectionCreator: a new connection on the default context."""
        return SSL.Connection(self._default, None)

    def getContext(self) -> SSL.Context:
        """See IOpenSSLContextFactory, for APIs that still want a context."""
        return self._default


def server_tls_options(certs: Mapping[str, tuple[str, str]], default_host: str,
                       verifier: PeerVerifier | None = None) -> ServerTLSOptions:
    """
    Server options for C{certs}, a mapping host -> (cert_path, key_path); C{default_host}'s
    certificate serves clients that send no (or an unknown) SNI name. Raises ValueError
    naming the file for an unusable certificate or key.

    With a C{verifier} (s2s listeners), the peer is asked for its certificate, which the
    verifier checks and records without failing the handshake (see L{PeerVerifier}).
    """
    contexts = {host: _context(load_certificate(cert, key))
                for host, (cert, key) in certs.items()}
    if verifier is not None:
        for context in contexts.values():
            verifier.configure(context)
    return ServerTLSOptions(contexts, default_host)


# -- inspecting a connection ----------------------------------------------------------------


def _connection(transport) -> SSL.Connection | None:
    """The pyOpenSSL connection of a handshaken TLS transport, or None."""
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return None
    connection = get_handle()
    if not isinstance(connection, SSL.Connection):
        return None   # a plain TCP transport returns its socket
    if connection.get_cipher_name() is None:
        return None   # no cipher suite agreed yet: the handshake has not got far enough
    return connection


def server_end_point_hash(certificate: x509.Certificate) -> bytes | None:
    """
    RFC 5929 §4.1 'tls-server-end-point' data of C{certificate}: its DER hashed with the
    hash of its signature algorithm, SHA-256 when that is MD5 or SHA-1. None when the
    algorithm has no such hash (Ed25519, Ed448): the binding is undefined then.
    """
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is None:
        return None
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate.public_bytes(serialization.Encoding.DER))
    return digest.finalize()


def channel_bindings(transport) -> dict[str, bytes]:
    """
    The channel-binding data of a server-side TLS transport after its handshake:
    'tls-exporter' (RFC 9266; only with TLS 1.3) and 'tls-server-end-point' (RFC 5929, from
    the certificate this server presented). Empty when the transport is not TLS or the
    handshake has not happened.
    """
    connection = _connection(transport)
    if connection is None:
        return {}
    bindings: dict[str, bytes] = {}
    if connection.get_protocol_version_name() == "TLSv1.3":
        bindings["tls-exporter"] = connection.export_keying_material(EXPORTER_LABEL, 32)
    try:
        certificate = connection.get_certificate(as_cryptography=True)
    except TypeError:   # COMPAT: pyOpenSSL < 24.3
        own = connection.get_certificate()
        certificate = None if own is None else own.to_cryptography()
    if certificate is not None:
        end_point = server_end_point_hash(certificate)
        if end_point is not None:
            bindings["tls-server-end-point"] = end_point
    return bindings


def tls_version(transport) -> str | None:
    """The negotiated protocol version ('TLSv1.2', 'TLSv1.3'), or None when not TLS."""
    connection = _connection(transport)
    return None if connection is None else connection.get_protocol_version_name()


# -- peer certificates (s2s: XEP-0178, RFC 6125) -----------------------------------------


#: OpenSSL's X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: the leaf signed itself.
SELF_SIGNED_LEAF = 18
_INVALID_PURPOSE = 26   # X509_V_ERR_INVALID_PURPOSE
_ID_ON_XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")
_ID_ON_DNS_SRV = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7")


@dataclass(frozen=True)
class PeerCertificate:
    """What the TLS handshake told us about the peer's certificate."""

    certificate: x509.Certificate | None   # the leaf; None when the peer sent none
    errors: tuple[tuple[int, int], ...]    # (depth, OpenSSL X509_V_ERR code) found

    @property
    def chain_valid(self) -> bool:
        """A certificate was sent and its chain leads to a trusted authority."""
        return self.certificate is not None and not self.errors

    @property
    def self_signed(self) -> bool:
        """The only fault is that the leaf signed itself (not expired, nothing else)."""
        return (self.certificate is not None and bool(self.errors)
                and all(error == (0, SELF_SIGNED_LEAF) for error in self.errors))

    def authenticates(self, domain: str, trust_self_signed: bool = False) -> bool:
        """
        Whether this certificate proves the peer is C{domain}: a valid chain (or, when
        C{trust_self_signed}, a self-signed leaf) naming the domain (RFC 6125 via
        service_identity; also SRV-ID and XmppAddr, XEP-0178).
        """
        if not (self.chain_valid or (trust_self_signed and self.self_signed)):
            return False
        return certificate_names_domain(self.certificate, domain)

    def describe(self) -> str:
        """A short text for log lines: 'none', 'valid', 'self-signed' or 'untrusted'."""
        if self.certificate is None:
            return "none"
        if self.chain_valid:
            return "valid"
        return "self-signed" if self.self_signed else "untrusted"


class PeerVerifier:
    """
    The trust store for peer certificates, and the results of checking them.

    configure() makes a context ask for the peer's certificate and verify it against the
    trust store (C{ca_file}, or the system's default store) without ever failing the
    handshake: a server whose certificate cannot be verified may still authenticate with
    dialback, so the verdict is recorded per connection and read with L{peer}() once the
    handshake is done.
    """

    def __init__(self, ca_file: str | None = None) -> None:
        self.ca_file = ca_file
        # Connection -> errors; weak, so a finished connection takes its entry with it.
        self._errors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def configure(self, context: SSL.Context) -> None:
        """Load the trust store into C{context} and record verification results."""
        if self.ca_file:
            context.load_verify_locations(self.ca_file)
        else:
            context.set_default_verify_paths()
        context.set_verify(SSL.VERIFY_PEER, self._verify)

    def _verify(self, connection, certificate, error, depth, ok) -> bool:
        if not ok and error == _INVALID_PURPOSE:
            # COMPAT: server certificates presented by the connecting server; many lack the
            # clientAuth key usage (Let's Encrypt dropped it in 2026). Prosody ignores the
            # purpose too (lsec_ignore_purpose).
            return True
        if not ok:
            errors = self._errors.setdefault(connection, [])
            if (depth, error) not in errors:
                errors.append((depth, error))
        return True   # never abort the handshake: the stream decides (dialback)

    def peer(self, transport) -> PeerCertificate:
        """The peer certificate of a handshaken TLS C{transport} and its verdict."""
        connection = _connection(transport)
        if connection is None:
            return PeerCertificate(None, ())
        try:
            certificate = connection.get_peer_certificate(as_cryptography=True)
        except TypeError:   # COMPAT: pyOpenSSL < 24.3
            peer = connection.get_peer_certificate()
            certificate = None if peer is None else peer.to_cryptography()
        if certificate is None:
            return PeerCertificate(None, ())
        return PeerCertificate(certificate, tuple(self._errors.get(connection, ())))


def certificate_names_domain(certificate: x509.Certificate, domain: str) -> bool:
    """
    Whether C{certificate} names the XMPP domain C{domain}: as a DNS-ID (wildcards per RFC
    6125), an SRV-ID for _xmpp-server (RFC 6125 §6.5.1) or an XmppAddr (RFC 6120 §13.7.1.4).
    """
    try:
        verify_certificate_hostname(certificate, domain)
        return True
    except (VerificationError, CertificateError, ValueError):
        pass
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    wanted = domain.lower().rstrip(".")
    for other in names.get_values_for_type(x509.OtherName):
        if other.type_id == _ID_ON_XMPPADDR:
            if _der_utf8(other.value).lower() == wanted:
                return True
        elif other.type_id == _ID_ON_DNS_SRV:
            value = _der_ia5(other.value).lower()
            if value == f"_xmpp-server.{wanted}":
                return True
    return False


def _der_string(data: bytes, tag: int) -> str:
    """The text of a DER string of type C{tag} (short or long form length); '' if not."""
    if len(data) < 2 or data[0] != tag:
        return ""
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[2:2 + count], "big")
        offset = 2 + count
    try:
        return data[offset:offset + length].decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _der_utf8(data: bytes) -> str:
    return _der_string(data, 0x0C)


def _der_ia5(data: bytes) -> str:
    return _der_string(data, 0x16)


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLSOptions:
    """
    Client TLS for an outgoing s2s connection: TLS >= 1.2, our certificate for the local
    domain (so the peer can offer SASL EXTERNAL), the remote domain as SNI, and the peer's
    certificate checked and recorded by a L{PeerVerifier} (never failing the handshake).
    Pass it to ``transport.startTLS()`` or ``wrapClientTLS``.
    """

    def __init__(self, context: SSL.Context, server_name: str) -> None:
        self._context = context
        self._sni = _sni_name(server_name)

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        """See IOpenSSLClientConnectionCreator."""
        connection = SSL.Connection(self._context, None)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        connection.set_alpn_protos([b"xmpp-server"])   # XEP-0368 §3
        return connection


class ClientContexts:
    """One client SSL context per local domain (its certificate), built on first use."""

    def __init__(self, certs: Mapping[str, tuple[str, str]], verifier: PeerVerifier) -> None:
        self._certs = dict(certs)
        self._verifier = verifier
        self._contexts: dict[str, SSL.Context] = {}

    def options(self, local_domain: str, remote_domain: str) -> ClientTLSOptions:
        """Client options presenting C{local_domain}'s certificate to C{remote_domain}."""
        context = self._contexts.get(local_domain)
        if context is None:
            pair = self._certs.get(local_domain)
            if pair is None:
                context = CertificateOptions(raiseMinimumTo=TLSVersion.TLSv1_2).getContext()
            else:
                context = _context(load_certificate(*pair))
            self._verifier.configure(context)
            self._contexts[local_domain] = context
        return ClientTLSOptions(context, remote_domain)


def client_tls_options(certs: Mapping[str, tuple[str, str]], verifier: PeerVerifier
                       ) -> ClientContexts:
    """Client TLS for outgoing s2s links: C{certs} maps each local domain to its
    (cert_path, key_path); see L{ClientContexts.options}."""
    return ClientContexts(certs, verifier)
