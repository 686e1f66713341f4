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
from twisted.internet.interfaces import IOpenSSLContextFactory, IOpenSSLServerConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from zope.interface import implementer

__all__ = [
    "CertificateAndKey",
    "ServerTLSOptions",
    "channel_bindings",
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
    return context


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


def server_tls_options(certs: Mapping[str, tuple[str, str]], default_host: str
                       ) -> ServerTLSOptions:
    """
    Server options for C{certs}, a mapping host -> (cert_path, key_path); C{default_host}'s
    certificate serves clients that send no (or an unknown) SNI name. Raises ValueError
    naming the file for an unusable certificate or key.
    """
    contexts = {host: _context(load_certificate(cert, key))
                for host, (cert, key) in certs.items()}
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
