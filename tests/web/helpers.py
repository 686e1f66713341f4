"""Drive the HTTP service's Site with bytes: a connection on a StringTransport, a clock."""
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface import directlyProvides

from jabberapp.configuration.settings import HTTPConfig
from jabberapp.web.service import HTTPService


def make_service(hosts=("example.org",), **options):
    """An HTTPService for C{hosts} with [http] C{options}, on a MemoryReactorClock."""
    config = HTTPConfig(**{"enabled": True, **options})
    return HTTPService(config, hosts, MemoryReactorClock())


class Connection:
    """One client connection to C{service}'s Site from C{peer}, TLS when C{secure}."""

    def __init__(self, service, peer="192.0.2.1", secure=False):
        self.clock = service.reactor
        self.site = service.site()
        address = (IPv6Address if ":" in peer else IPv4Address)("TCP", peer, 40000)
        self.transport = StringTransport(peerAddress=address)
        if secure:
            directlyProvides(self.transport, ISSLTransport)
            # ISSLTransport extends ITCPTransport, whose options HTTPChannel sets.
            self.transport.setTcpNoDelay = lambda enabled: None
        self.channel = self.site.buildProtocol(address)
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        """Feed C{data}; return what the server wrote since the last call."""
        self.channel.dataReceived(data)
        return self.take()

    def take(self) -> bytes:
        written = self.transport.value()
        self.transport.clear()
        return written

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting or self.transport.disconnected

    def request(self, method=b"GET", path=b"/", headers=(), body=b"", host=b"example.org"):
        """Send one HTTP/1.1 request; return the raw response bytes."""
        lines = [method + b" " + path + b" HTTP/1.1"]
        if host is not None:
            lines.append(b"Host: " + host)
        lines.extend(name + b": " + value for name, value in headers)
        if body:
            lines.append(b"Content-Length: " + str(len(body)).encode())
        return self.send(b"\r\n".join(lines) + b"\r\n\r\n" + body)


def status(response: bytes) -> int:
    """The status code of a raw response."""
    return int(response.split(b" ", 2)[1])


def header(response: bytes, name: bytes):
    """The value of header C{name} in a raw response, or None."""
    head = response.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def body(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]
