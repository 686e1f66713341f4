"""Test doubles for the s2s unit tests: a manager wired to fakes, and a stream reader."""
import functools
import tempfile

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from jabberapp import tls
from jabberapp.config import S2SConfig, S2SRoute
from jabberapp.router import Router
from jabberapp.s2s.manager import S2SManager
from jabberapp.s2s.resolver import S2SResolver
from jabberapp.tls import PeerCertificate, load_certificate
from jabberapp.xml import StreamClosed, StreamOpened, StreamParser
from jabberapp.xml.ns import NS_SERVER

LOCAL = "example.org"
REMOTE = "remote.example"
SECRET = "s3cr3tf0rd14lb4ck"
XML_DECL = b"<?xml version='1.0'?>"


def header(from_=REMOTE, to=LOCAL, version="1.0", ns=NS_SERVER, id_=None):
    """A peer's stream header."""
    attrs = f" from='{from_}'" if from_ else ""
    attrs += f" to='{to}'" if to else ""
    attrs += f" version='{version}'" if version else ""
    attrs += f" id='{id_}'" if id_ else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{ns}' "
            f"xmlns:stream='http://etherx.jabber.org/streams' "
            f"xmlns:db='jabber:server:dialback'{attrs}>").encode()


@functools.lru_cache(maxsize=None)
def certificate_for(domain):
    """A self-signed certificate naming C{domain} (cryptography object), made once."""
    directory = tempfile.mkdtemp(prefix="s2s-certs-")
    cert, key = tls.ensure_self_signed(directory, domain)
    return load_certificate(cert, key).certificate


def valid_certificate(domain):
    return PeerCertificate(certificate_for(domain), ())


def self_signed_certificate(domain):
    return PeerCertificate(certificate_for(domain), ((0, tls.SELF_SIGNED_LEAF),))


class Recorder:
    """A local domain's destination that records what the router gives it."""

    def __init__(self):
        self.received = []

    def dispatch(self, stanza, origin=None):
        self.received.append(stanza)


class FakeVerifier:
    """PeerVerifier stand-in: every connection shows C{certificate}."""

    def __init__(self):
        self.certificate = PeerCertificate(None, ())

    def peer(self, transport):
        return self.certificate


class FakeTLSOptions(tuple):
    """TLS options that twisted.test.iosim can pretend to negotiate with."""

    def iosimVerify(self, other):
        return True


class FakeClientTLS:
    def __init__(self):
        self.requested = []

    def options(self, local, remote):
        self.requested.append((local, remote))
        return FakeTLSOptions(("client-options", local, remote))


class TLSStringTransport(StringTransport):
    """StringTransport that records STARTTLS instead of doing it."""

    tls_started_with = None

    def startTLS(self, options):
        self.tls_started_with = options


class FakeDNS:
    """No SRV records anywhere: every domain falls back to its own name on 5269."""

    def lookupService(self, name):
        from twisted.names.error import DNSNameError
        return defer.fail(DNSNameError(name))


def make_manager(clock=None, connect=None, routes=(), domain=LOCAL, **overrides):
    """(manager, router, local destination) for C{domain}, TLS optional unless overridden;
    C{routes} are (domain, host, port) static routes."""
    router = Router()
    local = Recorder()
    router.add_domain(domain, local)
    settings = dict(require_encryption=False, routes=tuple(
        S2SRoute(domain, host, port) for domain, host, port in routes))
    settings.update(overrides)
    config = S2SConfig(**settings)
    clock = clock or Clock()
    resolver = S2SResolver(config.routes_for, dns=FakeDNS())
    manager = S2SManager(config, router, clock, server_tls=FakeTLSOptions(("server",)),
                         client_tls=FakeClientTLS(), verifier=FakeVerifier(),
                         resolver=resolver, connect=connect, secret=SECRET)
    router.remote = manager
    return manager, router, local


class Reader:
    """Parses what a stream wrote, following its restarts (each begins with XML_DECL)."""

    def __init__(self, transport):
        self.transport = transport
        self.parser = None

    def read(self):
        data = self.transport.value()
        self.transport.clear()
        out = []
        parts = data.split(XML_DECL)
        if parts[0] and self.parser is not None:
            out += self.parser.feed(parts[0])
        for part in parts[1:]:
            self.parser = StreamParser(max_stanza_size=10**6, canonical_from=NS_SERVER)
            out += self.parser.feed(XML_DECL + part)
        return out

    def elements(self):
        return [e for e in self.read() if not isinstance(e, (StreamOpened, StreamClosed))]


def stream_error(events):
    """The condition of the <stream:error/> among C{events}, or None."""
    for event in events:
        if getattr(event, "tag", None) == "{http://etherx.jabber.org/streams}error":
            for child in event:
                if not child.tag.endswith("}text"):
                    return child.tag.rpartition("}")[2]
    return None
