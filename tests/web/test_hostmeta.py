"""XEP-0156 host-meta: the endpoints of the host the request names, as XRD and JRD."""
import json

from lxml import etree
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import resource

from jabberapp.web.hostmeta import NS_XRD
from jabberapp.web.service import ALT_BOSH, ALT_WEBSOCKET
from tests.web.helpers import Connection, body, header, make_service, status


class HostMetaTests(SynchronousTestCase):
    def setUp(self):
        self.service = make_service(hosts=("example.org", "example.net"))
        for rel, path in ((ALT_WEBSOCKET, b"xmpp-websocket"), (ALT_BOSH, b"http-bind")):
            self.service.add_resource(path, resource.Resource())
            self.service.add_alt_connection(rel, path)

    def get(self, path, host=b"example.org:5280", secure=False, method=b"GET"):
        return Connection(self.service, secure=secure).request(method=method, path=path,
                                                               host=host)

    def test_xrd(self):
        """host-meta is an XRD listing both endpoints with the client's host and port."""
        response = self.get(b"/.well-known/host-meta")
        self.assertEqual(status(response), 200)
        self.assertEqual(header(response, b"content-type"),
                         b"application/xrd+xml; charset=utf-8")
        self.assertEqual(header(response, b"access-control-allow-origin"), b"*")
        links = etree.fromstring(body(response)).findall(f"{{{NS_XRD}}}Link")
        self.assertEqual([(link.get("rel"), link.get("href")) for link in links], [
            (ALT_WEBSOCKET, "ws://example.org:5280/xmpp-websocket"),
            (ALT_BOSH, "http://example.org:5280/http-bind")])

    def test_jrd(self):
        """host-meta.json lists the same links as JSON; over TLS with secure schemes."""
        response = self.get(b"/.well-known/host-meta.json", host=b"example.net", secure=True)
        self.assertEqual(header(response, b"content-type"), b"application/json")
        self.assertEqual(json.loads(body(response)), {"links": [
            {"rel": ALT_WEBSOCKET, "href": "wss://example.net/xmpp-websocket"},
            {"rel": ALT_BOSH, "href": "https://example.net/http-bind"}]})

    def test_unknown_host(self):
        """A Host that is not a served host gets 404."""
        self.assertEqual(status(self.get(b"/.well-known/host-meta", host=b"other.org")), 404)
        self.assertEqual(status(self.get(b"/.well-known/host-meta.json", host=None)), 404)

    def test_unmounted_not_listed(self):
        """An endpoint removed from the service disappears from host-meta."""
        self.service.remove_resource(b"xmpp-websocket")
        links = json.loads(body(self.get(b"/.well-known/host-meta.json")))["links"]
        self.assertEqual([link["rel"] for link in links], [ALT_BOSH])

    def test_below(self):
        """Paths below a host-meta document are 404."""
        self.assertEqual(status(self.get(b"/.well-known/host-meta/x")), 404)

    def test_preflight_and_methods(self):
        """OPTIONS is answered for any origin; POST is 405."""
        response = self.get(b"/.well-known/host-meta", method=b"OPTIONS")
        self.assertEqual((status(response), header(response, b"access-control-allow-origin")),
                         (204, b"*"))
        self.assertEqual(status(self.get(b"/.well-known/host-meta", method=b"POST")), 405)

    def test_head(self):
        """HEAD gets the headers of GET and no body."""
        response = self.get(b"/.well-known/host-meta", method=b"HEAD")
        self.assertEqual((status(response), body(response)), (200, b""))
