"""
Drive the c2s negotiation with plain bytes: a transport that records (no socket, no Twisted
protocol), a host with accounts, and the steps of a login.
"""
import base64
import re

from twisted.internet import defer
from twisted.internet.task import Clock

from jabberapp.auth import InternalAuthProvider
from jabberapp.c2s.stream import C2SFactory
from jabberapp.host import VirtualHost
from jabberapp.router import Router
from jabberapp.sasl.scram import derive_all
from jabberapp.sasl.throttle import FailureThrottle
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeTransport
from tests.scram_client import Client

HEADER = (b"<?xml version='1.0'?><stream:stream to='example.org' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
PASSWORD = "correct horse"
CREDENTIALS = derive_all(PASSWORD, 4096)
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


class BytesTransport(FakeTransport):
    """jabberapp.testing's FakeTransport, remembering whether STARTTLS was asked for."""

    tls_started = False

    def __init__(self, tls=True, secure=False, peer_address="198.51.100.7"):
        super().__init__(secure=secure, tls=tls, peer_address=peer_address)

    def start_tls(self):
        super().start_tls()
        self.tls_started = True


class World:
    """A router, the host example.org with accounts alice and bob, a c2s listener."""

    def __init__(self):
        self.clock = Clock()
        self.storage = MemoryStorage()
        for user in ("alice", "bob"):
            self.storage.accounts.create("example.org", user, CREDENTIALS)
        auth = InternalAuthProvider(self.storage.accounts,
                                    lambda fn, *a: defer.maybeDeferred(fn, *a))
        self.router = Router()
        self.host = VirtualHost("example.org", self.router, self.storage, auth, self.clock,
                                None)
        self.listener = C2SFactory({"example.org": self.host}, tls_options=object(),
                                   clock=self.clock, throttle=FailureThrottle(self.clock))

    def connect(self, **kwargs):
        """A new stream on a BytesTransport."""
        transport = BytesTransport(**kwargs)
        transport.stream = self.listener.open_stream(transport)
        return transport

    def secure(self):
        """A stream through STARTTLS, its second features read."""
        transport = self.connect()
        transport.feed(HEADER)
        transport.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        transport.feed(HEADER)
        transport.take()
        return transport

    def scram(self, transport, user="alice", password=PASSWORD, name="SCRAM-SHA-256"):
        """Authenticate with SCRAM; the restarted stream's features are read."""
        client = Client("sha256", user, password)
        transport.feed(f"<auth xmlns='{NS_SASL}' mechanism='{name}'>"
                       f"{b64(client.first())}</auth>".encode())
        server_first = unb64(text_of(transport.take(), "challenge"))
        transport.feed(f"<response xmlns='{NS_SASL}'>"
                       f"{b64(client.final(server_first))}</response>".encode())
        client.verify(unb64(text_of(transport.take(), "success")))
        transport.feed(HEADER)
        return transport.take()

    def login(self, user="alice", resource="r"):
        """STARTTLS, SCRAM, bind: a transport whose stream is bound."""
        transport = self.secure()
        self.scram(transport, user)
        transport.feed(f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                       f"<resource>{resource}</resource></bind></iq>".encode())
        transport.take()
        return transport


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text)


def text_of(data, name):
    """The text of the first <name>…</name> in C{data}."""
    match = re.search(rb"<" + name.encode() + rb"[^>]*>([^<]*)</" + name.encode() + rb">", data)
    if match is None:
        raise AssertionError(f"no <{name}/> in {data!r}")
    return match.group(1).decode()
