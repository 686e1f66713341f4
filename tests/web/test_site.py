"""The HTTP service's Site: bounded request time and body size, and clean refusals."""
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET

from tests.web.helpers import Connection, body, header, make_service, status


class Echo(resource.Resource):
    """Answers a POST with its body, a GET with b'ok'."""

    isLeaf = True

    def render_GET(self, request):
        return b"ok"

    def render_POST(self, request):
        return request.content.read()


class BadInputTests(SynchronousTestCase):
    def setUp(self):
        self.service = make_service(max_request_size=2048)
        self.service.add_resource(b"echo", Echo())
        self.connection = Connection(self.service)

    def test_unknown_path(self):
        """A path nothing is mounted at is answered 404."""
        self.assertEqual(status(self.connection.request(path=b"/nothing")), 404)

    def test_root(self):
        """'/' itself is 404."""
        self.assertEqual(status(self.connection.request(path=b"/")), 404)

    def test_wrong_method(self):
        """A method the resource does not implement is answered 405 with Allow."""
        response = self.connection.request(method=b"PUT", path=b"/echo", body=b"x")
        self.assertEqual(status(response), 405)
        self.assertIn(b"POST", header(response, b"allow"))

    def test_server_header(self):
        """The Server header names jabberapp without a version."""
        self.assertEqual(header(self.connection.request(path=b"/echo"), b"server"),
                         b"jabberapp")

    def test_wrong_method_any(self):
        """Any method a resource lacks (here OPTIONS) is 405 too, not 501."""
        response = self.connection.request(method=b"OPTIONS", path=b"/echo")
        self.assertEqual(status(response), 405)

    def test_head_falls_back_to_get(self):
        """HEAD on a resource with GET only is answered like GET, without a body."""
        response = self.connection.request(method=b"HEAD", path=b"/echo")
        self.assertEqual((status(response), body(response)), (200, b""))

    def test_malformed_request_line(self):
        """A request line that is not METHOD PATH VERSION is answered 400 and closed."""
        response = self.connection.send(b"NONSENSE\r\n\r\n")
        self.assertEqual(status(response), 400)
        self.assertTrue(self.connection.closed)

    def test_malformed_header(self):
        """A header line without a colon is answered 400 and closed."""
        response = self.connection.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n")
        self.assertEqual(status(response), 400)
        self.assertTrue(self.connection.closed)

    def test_body_within_limit(self):
        """A body up to max_request_size reaches the resource."""
        response = self.connection.request(method=b"POST", path=b"/echo", body=b"a" * 2048)
        self.assertEqual((status(response), body(response)), (200, b"a" * 2048))

    def test_content_length_too_large(self):
        """A Content-Length past the limit is answered 413 and closed before any body."""
        response = self.connection.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 2049\r\n\r\n")
        self.assertEqual(status(response), 413)
        self.assertTrue(self.connection.closed)
        self.assertEqual(self.connection.send(b"a" * 2049), b"")

    def test_no_continue_after_refusal(self):
        """A refused request that expects 100-continue gets the 413 only."""
        response = self.connection.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue"
                                        b"\r\nContent-Length: 5000\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response)
        self.assertNotIn(b"100 Continue", response)

    def test_chunked_body_too_large(self):
        """A chunked body that grows past the limit is answered 413 and never rendered."""
        chunk = b"800\r\n" + b"a" * 2048 + b"\r\n"
        response = self.connection.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\n" + chunk + chunk
                                        + b"0\r\n\r\n")
        self.assertEqual(response, b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n")
        self.assertTrue(self.connection.closed)

    def test_mount_point_limit(self):
        """A resource mounted with its own max_request_size accepts bodies up to it."""
        self.service.add_resource(b"big", Echo(), max_request_size=10000)
        response = self.connection.request(method=b"POST", path=b"/big/x", body=b"b" * 9000)
        self.assertEqual(status(response), 200)


class TimeoutTests(SynchronousTestCase):
    def setUp(self):
        self.service = make_service(request_timeout=10.0)
        self.service.add_resource(b"echo", Echo())
        self.clock = self.service.reactor

    def test_idle_connection_closed(self):
        """A connection that sends nothing is closed after request_timeout."""
        connection = Connection(self.service)
        self.clock.advance(9.9)
        self.assertFalse(connection.closed)
        self.clock.advance(0.1)
        self.assertTrue(connection.closed)

    def test_slow_request_closed(self):
        """A request trickled in byte by byte is closed request_timeout after it began."""
        connection = Connection(self.service)
        for byte in b"GET /echo HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n":
            connection.send(bytes([byte]))
            self.clock.advance(0.3)
        self.assertTrue(connection.closed)

    def test_idle_keep_alive_closed(self):
        """After a response, a kept-alive connection has request_timeout for its next one."""
        connection = Connection(self.service)
        self.clock.advance(9)
        self.assertEqual(status(connection.request(path=b"/echo")), 200)
        self.clock.advance(9)
        self.assertFalse(connection.closed)
        self.assertEqual(status(connection.request(path=b"/echo")), 200)
        self.clock.advance(10)
        self.assertTrue(connection.closed)

    def test_request_being_answered_not_timed_out(self):
        """A request still being answered (a long poll) is not cut by the timeout."""
        pending = []

        class Hold(resource.Resource):
            isLeaf = True

            def render_GET(self, request):
                pending.append(request)
                return NOT_DONE_YET

        self.service.add_resource(b"hold", Hold())
        connection = Connection(self.service)
        connection.request(path=b"/hold")
        self.clock.advance(100)
        self.assertFalse(connection.closed)
        pending[0].write(b"late")
        pending[0].finish()
        self.assertIn(b"late", connection.take())
        self.clock.advance(10)
        self.assertTrue(connection.closed)

    def test_abort_if_close_hangs(self):
        """A timed-out connection that does not go is aborted a few seconds later."""
        connection = Connection(self.service)
        aborted = []
        connection.transport.abortConnection = lambda: aborted.append(True)
        self.clock.advance(10)
        self.clock.advance(5)
        self.assertEqual(aborted, [True])
