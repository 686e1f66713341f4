"""
A small synchronous XMPP client over a raw socket, for what slixmpp cannot do: SCRAM-*-PLUS
with channel-binding data computed on the client side (Python's ssl module has no TLS
exporter, so slixmpp cannot bind to TLS 1.3).

TLS is pyOpenSSL over memory BIOs: every byte goes through our own socket, so every read is
bounded by the socket timeout and nothing ever sleeps. XML is parsed incrementally with an
lxml XMLPullParser; each complete child of <stream:stream> is one top-level element.

    with RawClient(server.port, server.certificate) as client:
        client.open_stream()
        features = client.starttls()
        features = client.authenticate("SCRAM-SHA-256-PLUS", "alice", password,
                                       cb_type="tls-exporter")
        jid = client.bind("here")
"""
import base64
import hashlib
import os
import socket

import service_identity.pyopenssl
from cryptography.hazmat.primitives import serialization
from lxml import etree
from OpenSSL import SSL

from tests.e2e.harness import TIMEOUT
from tests.scram_client import Client

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"   # RFC 9266 §2
SCRAM_HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class SASLFailed(Exception):
    """The server answered the authentication with <failure/>; C{condition} names why."""

    def __init__(self, condition):
        super().__init__(condition)
        self.condition = condition


class StreamClosed(Exception):
    """The server closed the stream (with a <stream:error/> when C{error} is not None)."""

    def __init__(self, error=None):
        super().__init__(error if error is not None else "stream closed")
        self.error = error


def mechanisms(features):
    """The SASL mechanism names offered in C{features}, in the server's order."""
    return [m.text for m in features.iterfind(f"{{{NS_SASL}}}mechanisms/{{{NS_SASL}}}mechanism")]


def channel_binding_types(features):
    """The channel-binding types advertised with XEP-0440 in C{features}, in order."""
    path = f"{{{NS_SASL_CB}}}sasl-channel-binding/{{{NS_SASL_CB}}}channel-binding"
    return [cb.get("type") for cb in features.iterfind(path)]


class RawClient:
    """One client connection to the c2s port on 127.0.0.1, driven step by step."""

    def __init__(self, port, cafile, domain="localhost", timeout=TIMEOUT):
        self.domain = domain
        self.cafile = cafile
        self.timeout = timeout
        self.tls = None              # the pyOpenSSL Connection once STARTTLS is done
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._parser = None
        self._depth = 0
        self._elements = []          # complete top-level elements not yet returned
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- bytes ------------------------------------------------------------------------------

    def send(self, data):
        """Send C{data} (bytes or str), through TLS once it is on."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self.tls is None:
            self._sock.sendall(data)
            return
        while data:
            sent = self.tls.send(data)
            data = data[sent:]
            self._flush_tls()

    def _recv_socket(self):
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"the server sent nothing for {self.timeout} s") from None

    def _flush_tls(self):
        while True:
            try:
                data = self.tls.bio_read(65536)
            except SSL.WantReadError:
                return
            self._sock.sendall(data)

    def _feed_tls(self):
        """Move one socket read into the TLS engine; False at end of file."""
        data = self._recv_socket()
        if not data:
            self.tls.bio_shutdown()
            return False
        self.tls.bio_write(data)
        return True

    def _recv(self):
        """The next bytes from the server, b'' once it has closed the connection."""
        if self.tls is None:
            return self._recv_socket()
        while True:
            try:
                data = self.tls.recv(65536)
            except SSL.WantReadError:
                self._flush_tls()
                if not self._feed_tls():
                    return b""
                continue
            except SSL.ZeroReturnError:
                return b""
            self._flush_tls()
            return data

    # -- XML --------------------------------------------------------------------------------

    def open_stream(self):
        """Send a stream header on a fresh parser; return the server's <stream:features/>."""
        self._parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False,
                                           no_network=True)
        self._depth = 0
        self._elements = []
        self.send(f"<?xml version='1.0'?><stream:stream to='{self.domain}' version='1.0' "
                  f"xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>")
        return self.expect(f"{{{NS_STREAMS}}}features")

    def next_element(self):
        """The next complete top-level element; StreamClosed at a stream error or the end."""
        while not self._elements:
            if self._closed:
                raise StreamClosed()
            data = self._recv()
            if not data:
                self._closed = True
                raise StreamClosed()
            self._parser.feed(data)
            for event, el in self._parser.read_events():
                if event == "start":
                    self._depth += 1
                    continue
                self._depth -= 1
                if self._depth == 1:
                    self._elements.append(el)
                elif self._depth == 0:
                    self._closed = True
        el = self._elements.pop(0)
        if el.tag == f"{{{NS_STREAMS}}}error":
            self._closed = True
            raise StreamClosed(etree.QName(el[0]).localname if len(el) else "?")
        return el

    def expect(self, *tags):
        """The next top-level element, which must have one of C{tags} (Clark notation)."""
        el = self.next_element()
        assert el.tag in tags, f"expected {' or '.join(tags)}, got {etree.tostring(el)!r}"
        return el

    # -- STARTTLS (RFC 6120 §5) -------------------------------------------------------------

    def starttls(self, max_version=None):
        """Upgrade to TLS (at most C{max_version}, e.g. SSL.TLS1_2_VERSION), checking the
        server certificate against C{cafile} and the domain; return the new features."""
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.expect(f"{{{NS_TLS}}}proceed")
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        if max_version is not None:
            context.set_max_proto_version(max_version)
        context.load_verify_locations(self.cafile)
        context.set_verify(SSL.VERIFY_PEER)
        self.tls = SSL.Connection(context, None)     # memory BIOs: we move the bytes
        self.tls.set_tlsext_host_name(self.domain.encode("idna"))
        self.tls.set_connect_state()
        while True:
            try:
                self.tls.do_handshake()
                break
            except SSL.WantReadError:
                self._flush_tls()
                if not self._feed_tls():
                    raise ConnectionError("the server closed the connection during the "
                                          "TLS handshake") from None
        self._flush_tls()
        service_identity.pyopenssl.verify_hostname(self.tls, self.domain)
        return self.open_stream()

    @property
    def tls_version(self):
        """The negotiated TLS version name ('TLSv1.2', 'TLSv1.3')."""
        return self.tls.get_protocol_version_name()

    def channel_binding(self, cb_type, label=EXPORTER_LABEL):
        """This side's channel-binding data of type C{cb_type} for the current TLS session.

        'tls-exporter' (RFC 9266): 32 bytes exported under C{label} with no context.
        'tls-server-end-point' (RFC 5929 §4.1): the server certificate's DER hashed with its
        signature hash, SHA-256 when that is MD5 or SHA-1.
        """
        if cb_type == "tls-exporter":
            return self.tls.export_keying_material(label, 32)
        if cb_type == "tls-server-end-point":
            try:
                certificate = self.tls.get_peer_certificate(as_cryptography=True)
            except TypeError:   # COMPAT: pyOpenSSL < 24.3
                certificate = self.tls.get_peer_certificate().to_cryptography()
            name = certificate.signature_hash_algorithm.name
            if name in ("md5", "sha1"):
                name = "sha256"
            return hashlib.new(name, certificate.public_bytes(serialization.Encoding.DER)).digest()
        raise ValueError(f"unknown channel-binding type {cb_type!r}")

    # -- SASL (RFC 6120 §6) -----------------------------------------------------------------

    def authenticate(self, mechanism, username, password, cb_type=None, cb_data=None,
                     gs2_header=None):
        """Log in with SCRAM C{mechanism}; return the features of the restarted stream.

        A -PLUS mechanism binds to C{cb_type} with C{cb_data}, by default this side's own
        L{channel_binding}. C{gs2_header} overrides the GS2 header ('y,,' for a client that
        supports binding but was not offered it). Raises L{SASLFailed} on <failure/>, and
        ScramError when the server's signature is wrong.
        """
        plus = mechanism.endswith("-PLUS")
        hash_name = SCRAM_HASHES[mechanism.removesuffix("-PLUS")]
        if gs2_header is None:
            gs2_header = f"p={cb_type},," if plus else "n,,"
        if cb_data is None:
            cb_data = self.channel_binding(cb_type) if cb_type else b""
        nonce = base64.b64encode(os.urandom(18)).decode("ascii")
        scram = Client(hash_name, username, password, nonce=nonce, gs2_header=gs2_header,
                       cb_data=cb_data)
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>"
                  f"{base64.b64encode(scram.first()).decode()}</auth>")
        server_first = self._sasl_answer(f"{{{NS_SASL}}}challenge")
        self.send(f"<response xmlns='{NS_SASL}'>"
                  f"{base64.b64encode(scram.final(server_first)).decode()}</response>")
        scram.verify(self._sasl_answer(f"{{{NS_SASL}}}success"))
        return self.open_stream()

    def _sasl_answer(self, wanted):
        el = self.expect(wanted, f"{{{NS_SASL}}}failure")
        if el.tag == f"{{{NS_SASL}}}failure":
            conditions = [etree.QName(c).localname for c in el if c.tag != f"{{{NS_SASL}}}text"]
            raise SASLFailed(conditions[0] if conditions else None)
        text = (el.text or "").strip()
        return b"" if text in ("", "=") else base64.b64decode(text, validate=True)

    # -- resource binding (RFC 6120 §7) -----------------------------------------------------

    def bind(self, resource):
        """Bind C{resource}; return the full JID the server assigned."""
        self.send(f"<iq type='set' id='bind-1'><bind xmlns='{NS_BIND}'>"
                  f"<resource>{resource}</resource></bind></iq>")
        iq = self.expect(f"{{{NS_CLIENT}}}iq")
        assert iq.get("type") == "result" and iq.get("id") == "bind-1", etree.tostring(iq)
        return iq.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")

    # -- closing ----------------------------------------------------------------------------

    def close(self):
        """Close the stream and wait (bounded) for the server to close its side."""
        try:
            if self._parser is not None and not self._closed:
                self.send("</stream:stream>")
                while True:
                    self.next_element()
        except (StreamClosed, OSError, SSL.Error):
            pass
        finally:
            self._sock.close()


def login_plus(server, username, password, mechanism, cb_type, resource, max_version=None):
    """STARTTLS, SCRAM-*-PLUS bound to C{cb_type}, bind C{resource}: the bound JID."""
    with RawClient(server.port, server.certificate) as client:
        client.open_stream()
        features = client.starttls(max_version)
        assert mechanism in mechanisms(features), mechanisms(features)
        features = client.authenticate(mechanism, username, password, cb_type=cb_type)
        assert features.find(f"{{{NS_BIND}}}bind") is not None, etree.tostring(features)
        return client.bind(resource)
