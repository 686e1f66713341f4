"""HTTPService: mounting, the client's address and scheme behind proxies, CORS."""
import ipaddress

from twisted.trial.unittest import SynchronousTestCase
from twisted.web import resource

from jabberapp.web.service import ALT_BOSH, ALT_WEBSOCKET, HTTPService
from tests.web.helpers import Connection, body, header, make_service, status


class Probe(resource.Resource):
    """Answers what the service says about the request."""

    isLeaf = True

    def __init__(self, service):
        super().__init__()
        self.service = service

    def render_GET(self, request):
        return (f"{self.service.client_address(request)} {self.service.is_secure(request)} "
                f"{self.service.request_host(request)}").encode()

    def render_POST(self, request):
        if not self.service.allow_origin(request):
            request.setResponseCode(403)
            return b""
        return b"posted"

    def render_OPTIONS(self, request):
        return self.service.preflight(request, (b"POST",))


def proxies(*networks):
    return tuple(ipaddress.ip_network(n) for n in networks)


class MountingTests(SynchronousTestCase):
    def setUp(self):
        self.service = make_service()

    def test_mount_and_reach(self):
        """A resource mounted at a path answers requests for it."""
        self.service.add_resource(b"probe", Probe(self.service))
        self.assertEqual(status(Connection(self.service).request(path=b"/probe")), 200)

    def test_nested_path(self):
        """A path of several segments is mounted under 404 parents."""
        self.service.add_resource("upload/example.org", Probe(self.service))
        connection = Connection(self.service)
        self.assertEqual(status(connection.request(path=b"/upload/example.org")), 200)
        self.assertEqual(status(connection.request(path=b"/upload")), 404)

    def test_twice(self):
        """Mounting a second resource at a taken path is a ValueError."""
        self.service.add_resource(b"probe", Probe(self.service))
        self.assertRaises(ValueError, self.service.add_resource, b"probe/", resource.Resource())

    def test_inside_a_mounted_resource(self):
        """A path inside another mounted resource is refused."""
        self.service.add_resource(b"probe", Probe(self.service))
        self.assertRaises(ValueError, self.service.add_resource, b"probe/x", resource.Resource())

    def test_bad_paths(self):
        """Empty paths and dot segments are refused."""
        for path in (b"", b"/", b"a//b", b"../x", b"a/./b"):
            self.assertRaises(ValueError, self.service.add_resource, path, resource.Resource())

    def test_remove(self):
        """A removed resource is 404 again and its path free."""
        self.service.add_resource(b"probe", Probe(self.service))
        self.service.remove_resource(b"probe")
        self.assertFalse(self.service.mounted(b"probe"))
        self.assertEqual(status(Connection(self.service).request(path=b"/probe")), 404)
        self.service.add_resource(b"probe", Probe(self.service))

    def test_body_limit(self):
        """The deepest mount point's limit applies, else max_request_size."""
        self.service.add_resource(b"a", Probe(self.service), max_request_size=5)
        self.assertEqual(self.service.body_limit(b"/a/b/c"), 5)
        self.assertEqual(self.service.body_limit(b"/other"), 1048576)


class ClientAddressTests(SynchronousTestCase):
    def probe(self, peer, headers=(), secure=False, **options):
        service = make_service(**options)
        service.add_resource(b"probe", Probe(service))
        response = Connection(service, peer=peer, secure=secure).request(
            path=b"/probe", headers=headers)
        return body(response).decode().split()

    def test_direct(self):
        """Without trusted proxies the peer is the client, whatever it claims."""
        address, secure, host = self.probe("192.0.2.7", [(b"X-Forwarded-For", b"10.9.9.9"),
                                                         (b"X-Forwarded-Proto", b"https")])
        self.assertEqual((address, secure, host), ("192.0.2.7", "False", "example.org"))

    def test_untrusted_peer(self):
        """A peer that is not a trusted proxy cannot claim another address or TLS."""
        address, secure, _ = self.probe(
            "192.0.2.7", [(b"X-Forwarded-For", b"10.9.9.9"), (b"X-Forwarded-Proto", b"https")],
            trusted_proxies=proxies("127.0.0.1"))
        self.assertEqual((address, secure), ("192.0.2.7", "False"))

    def test_trusted_proxy(self):
        """Behind a trusted proxy, the right-most untrusted X-Forwarded-For entry is the
        client (entries the client wrote itself, to its left, are ignored)."""
        address, secure, _ = self.probe(
            "127.0.0.1", [(b"X-Forwarded-For", b"6.6.6.6, 198.51.100.4, 10.0.0.2"),
                          (b"X-Forwarded-Proto", b"https")],
            trusted_proxies=proxies("127.0.0.1", "10.0.0.0/8"))
        self.assertEqual((address, secure), ("198.51.100.4", "True"))

    def test_several_headers(self):
        """Several X-Forwarded-For headers count as one list, in order."""
        address, _, _ = self.probe(
            "127.0.0.1", [(b"X-Forwarded-For", b"198.51.100.4"),
                          (b"X-Forwarded-For", b"10.0.0.2")],
            trusted_proxies=proxies("127.0.0.0/8", "10.0.0.0/8"))
        self.assertEqual(address, "198.51.100.4")

    def test_all_trusted(self):
        """When every hop is a trusted proxy, the left-most is the client."""
        address, _, _ = self.probe("127.0.0.1", [(b"X-Forwarded-For", b"10.0.0.3, 10.0.0.2")],
                                   trusted_proxies=proxies("127.0.0.1", "10.0.0.0/8"))
        self.assertEqual(address, "10.0.0.3")

    def test_garbage_entry(self):
        """A non-address entry stops the walk at the last address read."""
        address, _, _ = self.probe("127.0.0.1", [(b"X-Forwarded-For", b"1.2.3.4, unknown")],
                                   trusted_proxies=proxies("127.0.0.1"))
        self.assertEqual(address, "127.0.0.1")

    def test_ipv6(self):
        """IPv6 peers and entries, with brackets and ports, are understood."""
        address, _, _ = self.probe("::1", [(b"X-Forwarded-For", b"[2001:db8::5]:4711")],
                                   trusted_proxies=proxies("::1"))
        self.assertEqual(address, "2001:db8::5")

    def test_no_header(self):
        """A trusted proxy that sends no X-Forwarded-For leaves the peer as the client."""
        address, secure, _ = self.probe("127.0.0.1", trusted_proxies=proxies("127.0.0.1"))
        self.assertEqual((address, secure), ("127.0.0.1", "False"))

    def test_tls(self):
        """A TLS connection is secure."""
        _, secure, _ = self.probe("192.0.2.7", secure=True)
        self.assertEqual(secure, "True")

    def test_forwarded_proto_http(self):
        """X-Forwarded-Proto: http from a trusted proxy is not secure."""
        _, secure, _ = self.probe("127.0.0.1", [(b"X-Forwarded-Proto", b"http")],
                                  trusted_proxies=proxies("127.0.0.1"))
        self.assertEqual(secure, "False")


class RequestHostTests(SynchronousTestCase):
    def host_of(self, host, headers=(), **options):
        service = make_service(hosts=("example.org", "chat.example.net"), **options)
        service.add_resource(b"probe", Probe(service))
        response = Connection(service, peer="127.0.0.1").request(
            path=b"/probe", host=host, headers=headers)
        return body(response).decode().split()[2]

    def test_hosts(self):
        """Host names a served host, with or without port, in any case."""
        self.assertEqual(self.host_of(b"example.org"), "example.org")
        self.assertEqual(self.host_of(b"Chat.Example.NET:5281"), "chat.example.net")

    def test_other(self):
        """Another name, an address, a malformed or missing Host: no served host."""
        for host in (b"example.com", b"127.0.0.1:5280", b"[::1]:5280", b"a b", None):
            self.assertEqual(self.host_of(host), "None", host)

    def test_forwarded_host(self):
        """A trusted proxy's X-Forwarded-Host wins over Host."""
        self.assertEqual(self.host_of(b"127.0.0.1:5280",
                                      [(b"X-Forwarded-Host", b"example.org")],
                                      trusted_proxies=proxies("127.0.0.1")), "example.org")


class CORSTests(SynchronousTestCase):
    def connect(self, origins):
        service = make_service(cors_origins=origins)
        service.add_resource(b"probe", Probe(service))
        return service, Connection(service)

    def test_origin_allowed(self):
        """Listed origins, '*', and the request's own origin are allowed."""
        service = make_service(cors_origins=("https://chat.example.org",))
        self.assertTrue(service.origin_allowed(b"https://chat.example.org"))
        self.assertTrue(service.origin_allowed("HTTPS://Chat.Example.org/"))
        self.assertFalse(service.origin_allowed("https://evil.example"))
        self.assertFalse(service.origin_allowed(None))
        self.assertTrue(make_service(cors_origins=("*",)).origin_allowed("https://any"))

    def test_same_origin(self):
        """With no origins listed, a page from the listener's own origin may POST."""
        _, connection = self.connect(())
        response = connection.request(method=b"POST", path=b"/probe", body=b"x",
                                      headers=[(b"Origin", b"http://example.org")])
        self.assertEqual(status(response), 200)

    def test_preflight_allowed(self):
        """A preflight from an allowed origin gets the Access-Control-* headers."""
        _, connection = self.connect(("https://chat.example.org",))
        response = connection.request(method=b"OPTIONS", path=b"/probe", headers=[
            (b"Origin", b"https://chat.example.org"),
            (b"Access-Control-Request-Method", b"POST"),
            (b"Access-Control-Request-Headers", b"content-type")])
        self.assertEqual(status(response), 204)
        self.assertEqual(header(response, b"access-control-allow-origin"),
                         b"https://chat.example.org")
        self.assertEqual(header(response, b"access-control-allow-methods"), b"POST, OPTIONS")
        self.assertEqual(header(response, b"access-control-allow-headers"), b"content-type")
        self.assertEqual(header(response, b"vary"), b"Origin")

    def test_preflight_refused(self):
        """A preflight from an origin not allowed is 403 without CORS headers."""
        _, connection = self.connect(("https://chat.example.org",))
        response = connection.request(method=b"OPTIONS", path=b"/probe",
                                      headers=[(b"Origin", b"https://evil.example")])
        self.assertEqual(status(response), 403)
        self.assertIsNone(header(response, b"access-control-allow-origin"))

    def test_post_refused(self):
        """A request from an origin not allowed is refused by allow_origin."""
        _, connection = self.connect(("https://chat.example.org",))
        response = connection.request(method=b"POST", path=b"/probe", body=b"x",
                                      headers=[(b"Origin", b"https://evil.example")])
        self.assertEqual(status(response), 403)

    def test_any_origin(self):
        """With '*', any origin gets Access-Control-Allow-Origin: *."""
        _, connection = self.connect(("*",))
        response = connection.request(method=b"POST", path=b"/probe", body=b"x",
                                      headers=[(b"Origin", b"https://any.example")])
        self.assertEqual(header(response, b"access-control-allow-origin"), b"*")

    def test_bad_request_headers_not_echoed(self):
        """Access-Control-Request-Headers that are not header names are not echoed."""
        _, connection = self.connect(("*",))
        response = connection.request(method=b"OPTIONS", path=b"/probe", headers=[
            (b"Origin", b"https://any.example"),
            (b"Access-Control-Request-Headers", b"x\x01y")])
        self.assertIsNone(header(response, b"access-control-allow-headers"))


class AltConnectionTests(SynchronousTestCase):
    def test_only_mounted_listed(self):
        """An alt connection is listed only while its path is mounted."""
        service = make_service()
        service.add_alt_connection(ALT_WEBSOCKET, b"xmpp-websocket")
        service.add_alt_connection(ALT_BOSH, b"http-bind")
        service.add_resource(b"http-bind", resource.Resource())
        request = _Request(b"example.org:5280")
        self.assertEqual(service.alt_connections(request),
                         [(ALT_BOSH, "http://example.org:5280/http-bind")])
        service.add_resource(b"xmpp-websocket", resource.Resource())
        self.assertEqual(service.alt_connections(request)[0],
                         (ALT_WEBSOCKET, "ws://example.org:5280/xmpp-websocket"))

    def test_secure_schemes(self):
        """Over TLS the URLs are wss:// and https://."""
        service = make_service()
        for rel, path in ((ALT_WEBSOCKET, b"ws"), (ALT_BOSH, b"bosh")):
            service.add_resource(path, resource.Resource())
            service.add_alt_connection(rel, path)
        self.assertEqual([href for _, href in service.alt_connections(
            _Request(b"example.org", secure=True))],
            ["wss://example.org/ws", "https://example.org/bosh"])

    def test_service_unconfigured_reactor(self):
        """The service can be made without a reactor (the Site then uses the global)."""
        from jabberapp.configuration.settings import HTTPConfig
        self.assertIsInstance(HTTPService(HTTPConfig(), ("example.org",)), HTTPService)


class _Request:
    """The parts of a request alt_connections() reads."""

    def __init__(self, host, secure=False):
        from twisted.internet.address import IPv4Address
        from twisted.web.http_headers import Headers
        self.requestHeaders = Headers({b"host": [host]})
        self._secure = secure
        self._address = IPv4Address("TCP", "192.0.2.1", 1)

    def getHeader(self, name):
        return self.requestHeaders.getRawHeaders(name, [None])[0]

    def isSecure(self):
        return self._secure

    def getClientAddress(self):
        return self._address
