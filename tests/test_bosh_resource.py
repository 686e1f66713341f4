"""/http-bind on the HTTP service's Site, driven with bytes: methods, CORS, status codes, a
long poll whose connection is lost, and the [bosh] options."""
from lxml import etree
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.config import load_config
from jabberapp.configuration.settings import BOSHConfig
from jabberapp.transports.bosh.body import NS_HTTPBIND
from jabberapp.transports.bosh.resource import bosh_resource
from tests.c2s_bytes import World
from tests.web.helpers import Connection, body, header, make_service, status

CREATE = (f"<body xmlns='{NS_HTTPBIND}' rid='10' to='example.org' wait='60' hold='1' "
          f"ver='1.6'/>").encode()
ORIGIN = b"https://chat.example.org"


class ResourceTests(SynchronousTestCase):
    """The resource mounted as server.py mounts it."""

    def setUp(self):
        self.world = World()
        self.web = make_service(cors_origins=(ORIGIN.decode(),))
        self.resource = bosh_resource(self.world.listener, BOSHConfig(), self.web)
        self.web.add_resource(b"http-bind", self.resource,
                              max_request_size=2 * self.world.listener.max_stanza_size)

    def post(self, data, connection=None, headers=()):
        connection = connection or Connection(self.web, secure=True)
        response = connection.request(b"POST", b"/http-bind", headers=headers, body=data)
        if not response:
            self.world.clock.advance(0)
            response = connection.take()
        return response

    def create(self):
        response = self.post(CREATE)
        return etree.fromstring(body(response)).get("sid")

    def test_creation(self):
        """A session request over HTTPS is answered 200, text/xml, with the session."""
        response = self.post(CREATE, headers=[(b"Origin", ORIGIN)])
        self.assertEqual(status(response), 200)
        self.assertEqual(header(response, b"content-type"), b"text/xml; charset=utf-8")
        self.assertEqual(header(response, b"access-control-allow-origin"), ORIGIN)
        created = etree.fromstring(body(response))
        self.assertTrue(created.get("sid"))
        self.assertEqual(etree.QName(created[0][0]).localname, "mechanisms")

    def test_origin_not_allowed(self):
        """A POST from a page of an origin not allowed is 403 and creates nothing."""
        response = self.post(CREATE, headers=[(b"Origin", b"https://evil.example")])
        self.assertEqual(status(response), 403)
        self.assertEqual(self.resource.bosh.sessions, {})

    def test_preflight(self):
        """OPTIONS from an allowed origin is a CORS preflight allowing POST."""
        response = Connection(self.web).request(
            b"OPTIONS", b"/http-bind", headers=[(b"Origin", ORIGIN),
                                                (b"Access-Control-Request-Method", b"POST"),
                                                (b"Access-Control-Request-Headers",
                                                 b"content-type")])
        self.assertEqual(status(response), 204)
        self.assertIn(b"POST", header(response, b"access-control-allow-methods"))
        self.assertEqual(header(response, b"access-control-allow-headers"), b"content-type")

    def test_get_answers_a_page(self):
        """GET answers 200 with a page saying BOSH is here."""
        response = Connection(self.web).request(b"GET", b"/http-bind")
        self.assertEqual(status(response), 200)
        self.assertIn(b"BOSH", body(response))

    def test_other_methods_are_405(self):
        """PUT and DELETE are 405 with Allow."""
        for method in (b"PUT", b"DELETE"):
            response = Connection(self.web).request(method, b"/http-bind", body=b"x")
            self.assertEqual(status(response), 405)
            self.assertIn(b"POST", header(response, b"allow"))

    def test_malformed_body_is_400(self):
        """A body that is not XML is 400 with a bad-request terminate body."""
        response = self.post(b"<body")
        self.assertEqual(status(response), 400)
        self.assertEqual(etree.fromstring(body(response)).get("condition"), "bad-request")

    def test_oversized_body(self):
        """A body past the stanza limit ends its session with policy-violation; past
        twice the limit it is 413 unread."""
        sid = self.create()
        limit = self.world.listener.max_stanza_size
        data = (f"<body xmlns='{NS_HTTPBIND}' rid='11' sid='{sid}'>".encode()
                + b" " * limit + b"</body>")
        response = self.post(data)
        self.assertEqual(etree.fromstring(body(response)).get("condition"),
                         "policy-violation")
        self.assertEqual(self.resource.bosh.sessions, {})
        response = self.post(b" " * (2 * limit + 1))
        self.assertEqual(status(response), 413)

    def test_long_poll_lost_then_output_goes_to_next_request(self):
        """A held request whose connection is lost is forgotten; what comes next goes to
        the next request."""
        sid = self.create()
        connection = Connection(self.web, secure=True)
        held = (f"<body xmlns='{NS_HTTPBIND}' rid='11' sid='{sid}'/>").encode()
        self.assertEqual(connection.request(b"POST", b"/http-bind", body=held), b"")
        connection.channel.connectionLost(Failure(ConnectionDone()))
        session = self.resource.bosh.sessions[sid]
        self.assertEqual(session.held, [])
        session.write(b"<message xmlns='jabber:client' id='m'/>")
        response = self.post(f"<body xmlns='{NS_HTTPBIND}' rid='12' sid='{sid}'/>".encode())
        self.assertEqual(etree.fromstring(body(response))[0].get("id"), "m")

    def test_plain_http_after_https_is_refused(self):
        """A request over plain HTTP to a session created over HTTPS is 403."""
        sid = self.create()
        response = self.post(f"<body xmlns='{NS_HTTPBIND}' rid='11' sid='{sid}'/>".encode(),
                             connection=Connection(self.web))
        self.assertEqual(status(response), 403)
        self.assertIn(sid, self.resource.bosh.sessions)


class ConfigTests(SynchronousTestCase):
    """The [bosh] section."""

    def write(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_defaults(self):
        """Without a [bosh] section the defaults apply."""
        self.assertEqual(load_config(self.write("[server]\nhosts = example.org\n")).bosh,
                         BOSHConfig())

    def test_values(self):
        """[bosh] options are read and checked."""
        config = load_config(self.write("[bosh]\nmax_wait = 30\nmax_hold = 2\n"
                                        "max_requests = 3\nenabled = no\n")).bosh
        self.assertEqual((config.max_wait, config.max_hold, config.max_requests,
                          config.enabled), (30, 2, 3, False))
        with self.assertRaises(Exception):
            load_config(self.write("[bosh]\nmax_inactivity = 0\n"))

    def test_see_other_uri(self):
        """[bosh] see_other_uri must be an http:// or https:// URL; set, the resource
        redirects a session request there."""
        config = load_config(self.write("[bosh]\nsee_other_uri = https://other.example.org"
                                        "/http-bind\n")).bosh
        self.assertEqual(config.see_other_uri, "https://other.example.org/http-bind")
        with self.assertRaises(Exception) as raised:
            load_config(self.write("[bosh]\nsee_other_uri = wss://x.example/\n"))
        self.assertIn("[bosh] see_other_uri", str(raised.exception))
        world = World()
        web = make_service()
        web.add_resource(b"http-bind", bosh_resource(world.listener, config, web))
        response = Connection(web, secure=True).request(b"POST", b"/http-bind", body=CREATE)
        redirect = etree.fromstring(body(response))
        self.assertEqual(redirect.get("condition"), "see-other-uri")
        self.assertEqual(redirect[0].text, "https://other.example.org/http-bind")
