"""End to end: the HTTP service of the real server -- XEP-0156 host-meta over HTTP and HTTPS,
certificates chosen by SNI, X-Forwarded-* from trusted proxies only, CORS, refusals and the
request deadline."""
import json
import os
import shutil
import socket
import ssl
import time

import pytest

from tests.e2e.harness import TIMEOUT, ServerProcess, free_port
from tests.e2e.test_startup import assert_one_line, run_server

HERE = os.path.dirname(os.path.abspath(__file__))
HOSTS = ("localhost", "example.test")


def exchange(port, request: bytes, tls_name=None, cafile=None) -> bytes:
    """Send C{request} (ending with Connection: close) and read the response to the end;
    over TLS naming C{tls_name} by SNI and trusting only C{cafile}."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if tls_name is not None:
        context = ssl.create_default_context(cafile=cafile)
        sock = context.wrap_socket(sock, server_hostname=tls_name)
    with sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def get(port, path, host, headers=(), method="GET", body=b"", **tls):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers)]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body, **tls)


def status(response):
    return int(response.split(b" ", 2)[1])


def headers(response):
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def payload(response):
    return response.split(b"\r\n\r\n", 1)[1]


def wait_for_log(server, text):
    """Wait (bounded) until the server has logged a line containing C{text}."""
    for _ in server.lines_until(lambda line: text in line):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of two hosts with HTTP on, 127.0.0.1 a trusted proxy, a short deadline."""
    with ServerProcess(tmp_path_factory.mktemp("http"), hosts=HOSTS, s2s="enabled = no",
                       http="trusted_proxies = 127.0.0.1\nrequest_timeout = 1\n"
                            "max_request_size = 4096\n"
                            "cors_origins = https://chat.example.test") as server:
        yield server


def cert(server, host):
    return f"{server.data_dir}/certs/{host}.crt"


def test_host_meta_http(server):
    """host-meta over plain HTTP is an XRD for the Host named, with CORS open to all."""
    response = get(server.http_port, "/.well-known/host-meta", f"localhost:{server.http_port}")
    assert status(response) == 200, response
    assert headers(response)["content-type"].startswith("application/xrd+xml")
    assert headers(response)["access-control-allow-origin"] == "*"
    assert b"http://docs.oasis-open.org/ns/xri/xrd-1.0" in payload(response)


def test_host_meta_json_https(server):
    """host-meta.json over HTTPS is JSON; an unknown Host is 404."""
    response = get(server.https_port, "/.well-known/host-meta.json", "example.test",
                   tls_name="example.test", cafile=cert(server, "example.test"))
    assert status(response) == 200, response
    links = json.loads(payload(response))["links"]
    assert {"rel": "urn:xmpp:alt-connections:websocket",
            "href": "wss://example.test/xmpp-websocket"} in links
    assert {"rel": "urn:xmpp:alt-connections:xbosh",
            "href": "https://example.test/http-bind"} in links
    response = get(server.http_port, "/.well-known/host-meta.json", "other.test")
    assert status(response) == 404


@pytest.mark.parametrize("host", HOSTS)
def test_sni_picks_each_hosts_certificate(server, host):
    """Each host's certificate is served to a client naming it by SNI (checked against
    that certificate alone, host name included)."""
    response = get(server.https_port, "/.well-known/host-meta", host, tls_name=host,
                   cafile=cert(server, host))
    assert status(response) == 200


def test_forwarded_for_from_trusted_proxy(server):
    """From a trusted proxy (127.0.0.1), the client is the right-most untrusted
    X-Forwarded-For entry, and X-Forwarded-Proto: https makes the URLs secure."""
    response = get(server.http_port, "/nothing-here-1", "localhost",
                   headers=[("X-Forwarded-For", "203.0.113.9, 198.51.100.4"),
                            ("X-Forwarded-Proto", "https")])
    assert status(response) == 404
    wait_for_log(server, "http GET /nothing-here-1 404 from 198.51.100.4")


def test_host_meta_behind_trusted_proxy(server):
    """Behind a trusted proxy that terminated TLS, host-meta lists wss:// and https:// URLs
    on the host and port the proxy names (X-Forwarded-Proto, X-Forwarded-Host)."""
    response = get(server.http_port, "/.well-known/host-meta.json", "127.0.0.1:5280",
                   headers=[("X-Forwarded-Proto", "https"),
                            ("X-Forwarded-Host", "example.test")])
    links = json.loads(payload(response))["links"]
    assert links, response
    assert all(link["href"].startswith(("https://example.test/", "wss://example.test/"))
               for link in links), links


def test_forwarded_for_from_untrusted_peer(tmp_path):
    """From a peer that is no trusted proxy, X-Forwarded-For is ignored."""
    with ServerProcess(tmp_path, s2s="enabled = no", http="trusted_proxies = 10.0.0.0/8",
                       ) as server:
        get(server.http_port, "/nothing-here-2", "localhost",
            headers=[("X-Forwarded-For", "198.51.100.4")])
        wait_for_log(server, "http GET /nothing-here-2 404 from 127.0.0.1")
        response = get(server.http_port, "/.well-known/host-meta.json", "localhost:1234",
                       headers=[("X-Forwarded-Proto", "https"),
                                ("X-Forwarded-Host", "example.test")])
        links = json.loads(payload(response))["links"]
        assert links and all(link["href"].startswith(("http://localhost:1234/",
                                                      "ws://localhost:1234/"))
                             for link in links), links


def test_cors_preflight_on_host_meta(server):
    """A CORS preflight for host-meta is answered for any origin."""
    response = get(server.http_port, "/.well-known/host-meta", "localhost", method="OPTIONS",
                   headers=[("Origin", "https://anywhere.example"),
                            ("Access-Control-Request-Method", "GET")])
    assert status(response) == 204
    assert headers(response)["access-control-allow-origin"] == "*"


def test_not_found_and_method(server):
    """Unknown paths are 404, a method host-meta lacks is 405."""
    assert status(get(server.http_port, "/nope", "localhost")) == 404
    response = get(server.http_port, "/.well-known/host-meta", "localhost", method="DELETE")
    assert status(response) == 405
    assert "GET" in headers(response)["allow"]


def test_too_large(server):
    """A body past max_request_size is answered 413 and the connection closed."""
    response = get(server.http_port, "/.well-known/host-meta", "localhost", method="POST",
                   body=b"x" * 5000)
    assert status(response) == 413


def test_malformed(server):
    """A malformed request is answered 400, with no traceback in the log."""
    response = exchange(server.http_port, b"\x00\x01 nonsense\r\n\r\n")
    assert status(response) == 400
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("tls,partial", [(False, b""), (False, b"GET / HTTP/1.1\r\nHost: loc"),
                                         (True, b"")])
def test_idle_and_slow_connections_closed(server, tls, partial):
    """A connection that sends nothing (no TLS handshake either), or only part of a
    request, is closed by the server once request_timeout (1 s) has passed."""
    port = server.https_port if tls else server.http_port
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(partial)
        started = time.monotonic()
        try:
            closed = sock.recv(1024) == b""     # a timeout here fails the test
        except ConnectionResetError:            # TLS before its handshake closes with RST
            closed = True
        assert closed
        assert time.monotonic() - started < TIMEOUT


def test_port_in_use(tmp_path):
    """An HTTP port another process listens on: status 1 and one critical line naming it."""
    port = free_port()
    server = ServerProcess(tmp_path, s2s="enabled = no", http=f"port = {port}\ntls_port = 0")
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        status_, output = run_server(server)
    assert status_ == 1, output
    assert_one_line(output, f"could not start: Couldn't listen on 127.0.0.1:{port}")


def test_extension_mounts_through_its_host(tmp_path):
    """A drop-in extension reaches the HTTP service as host.service('http') and serves a
    resource per host on it."""
    plugins = tmp_path / "plugins"
    shutil.copytree(os.path.join(HERE, "http_dropin"), plugins)
    (tmp_path / "server").mkdir()
    server = ServerProcess(tmp_path / "server", hosts=HOSTS, s2s="enabled = no", http="",
                           plugin_path=str(plugins))
    with open(server.config_path) as f:
        text = f.read()
    with open(server.config_path, "w") as f:
        f.write(text.replace("log_level = debug", "log_level = debug\nextensions = acme_web"))
    with server:
        for host in HOSTS:
            response = get(server.http_port, f"/acme/{host}", host)
            assert payload(response) == f"{host} greets 127.0.0.1 secure=False".encode()
