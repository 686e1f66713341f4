"""
A real browser: Converse.js (npm `converse.js`) in Debian's headless Chromium, driven by
playwright-core (tests/browser/driver.mjs), logs in to jabberapp over WebSocket and over BOSH
-- given the endpoint's URL, or finding it in XEP-0156 host-meta -- sends a message that a
slixmpp client receives, and shows the slixmpp client's reply.

./run-tests installs what this needs: Debian's chromium, nodejs and npm, and the pinned npm
packages in tests/browser (npm ci, with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1: Playwright never
downloads a browser and launches /usr/bin/chromium). The page (tests/browser/page.html) is
served from an origin of its own on loopback, as a site hosting Converse would serve it, so
its BOSH requests are cross-origin (CORS) and its WebSocket carries that Origin. Chromium
resolves the XMPP domain to loopback and its port 443 to the server's HTTPS port
(--host-rules), as DNS and a reverse proxy on 443 would for discovery; every other name is
left unresolved, so the page reaches nothing outside the test. The server's self-signed
certificates are accepted with --ignore-certificate-errors.
"""
import asyncio
import functools
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

import pytest

from tests.e2e.harness import (
    ROOT, TIMEOUT, Events, OutputReader, ServerProcess, close, free_port, login)

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
DOMAIN = "ja.example"
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
PASSWORD = "browser pässword"
XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def browser_missing():
    """Why the browser test cannot run here, or None when it can."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (./run-tests installs Debian's chromium)"
    if shutil.which("node") is None:
        return "node is missing (./run-tests installs Debian's nodejs and npm)"
    for package in ("converse.js", "playwright-core"):
        if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", package)):
            return f"tests/browser/node_modules/{package} is missing (./run-tests runs npm ci)"
    return None


@pytest.fixture(scope="module")
def browser_available():
    missing = browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {missing}")
        pytest.skip(missing)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def page_server(browser_available):
    """tests/browser (the page and node_modules) over HTTP on a loopback port."""
    handler = functools.partial(_QuietHandler, directory=BROWSER_DIR)
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def server(tmp_path_factory, page_server):
    """jabberapp serving DOMAIN with HTTP(S), WebSocket and BOSH on, only the page's origin
    allowed, and two accounts."""
    server = ServerProcess(tmp_path_factory.mktemp("browser"), hosts=(DOMAIN,),
                           s2s="enabled = no", http=f"cors_origins = {page_server}")
    for jid in (ALICE, BOB):
        server.adduser(jid, PASSWORD)
    with server:
        yield server


class Browser:
    """tests/browser/driver.mjs in a subprocess: one JSON command a line on its stdin, one JSON
    answer a line on its stdout; what the page logs (every XMPP frame) arrives on stderr."""

    def __init__(self):
        self.process = subprocess.Popen(
            ["node", "driver.mjs"], cwd=BROWSER_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"))
        self.log = []
        self._answers = OutputReader(self.process.stdout, [])
        self._log = OutputReader(self.process.stderr, self.log)
        self._lock = threading.Lock()

    def command(self, op, timeout=TIMEOUT, **args):
        """Run one command, waiting on each condition up to C{timeout} seconds; its result,
        or AssertionError with the driver's error and the end of the page's log."""
        request = json.dumps({"op": op, "timeout": timeout * 1000, **args}) + "\n"
        with self._lock:
            self.process.stdin.write(request.encode())
            self.process.stdin.flush()
            # The driver bounds every wait by the timeout; the margin covers its own work.
            line = self._answers.next_line(time.monotonic() + 2 * timeout)
        if line is None:
            raise AssertionError(f"the browser driver did not answer {op}:\n{self.tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"{op} failed: {answer['error']}\n{self.tail()}")
        return answer["ok"]

    async def run(self, op, **args):
        """command() on a thread, so that the slixmpp clients keep running meanwhile."""
        call = functools.partial(self.command, op, **args)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def tail(self, lines=60):
        return "page log, last lines:\n" + "".join(self.log[-lines:])

    def close(self):
        try:
            self.command("close")
        finally:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._answers.join()
            self._log.join()


@pytest.fixture(scope="module")
def browser(server):
    """Chromium with DOMAIN on loopback, and DOMAIN's port 443 on the server's HTTPS port."""
    browser = Browser()
    rules = (f"MAP {DOMAIN}:443 127.0.0.1:{server.https_port}, MAP {DOMAIN} 127.0.0.1, "
             "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    try:
        browser.command("launch", executable=CHROMIUM, host_rules=rules, timeout=3 * TIMEOUT)
        yield browser
    finally:
        browser.close()


# Converse's settings for each way to reach the server, and the transport it must then use.
WAYS = {
    "websocket": (lambda server: {"websocket_url":
                                  f"wss://{DOMAIN}:{server.https_port}/xmpp-websocket"},
                  "websocket"),
    "bosh": (lambda server: {"bosh_service_url": f"https://{DOMAIN}:{server.https_port}/http-bind"},
             "bosh"),
    # Converse takes the WebSocket when host-meta lists one, else BOSH.
    "discovered": (lambda server: {"discover_connection_methods": True}, None),
}


def listed_transport(server):
    """The transport Converse picks from DOMAIN's host-meta: websocket when it lists one."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/.well-known/host-meta", headers={"Host": DOMAIN})
        response = connection.getresponse()
        assert response.status == 200, response.status
        links = ElementTree.fromstring(response.read()).iter(f"{{{XRD}}}Link")
        rels = {link.get("rel") for link in links}
    finally:
        connection.close()
    assert "urn:xmpp:alt-connections:xbosh" in rels, rels
    return "websocket" if "urn:xmpp:alt-connections:websocket" in rels else "bosh"


async def chat(server, browser, page, way):
    settings, transport = WAYS[way]
    transport = transport or await asyncio.to_thread(listed_transport, server)
    bob = await login(server, BOB, PASSWORD)
    bob_messages = Events(bob, "message")
    try:
        settings = {"jid": ALICE, "password": PASSWORD, "discover_connection_methods": False,
                    **settings(server)}
        session = await browser.run("login", url=f"{page}/page.html", settings=settings)
        assert session["transport"] == transport, session
        assert session["jid"].startswith(ALICE + "/"), session

        hello = f"Hello from Converse.js over {way}"
        await browser.run("send", to=BOB, body=hello)
        received = await bob_messages.wait(lambda m: m["body"] == hello, "Converse's message")
        assert received["from"].full == session["jid"]

        reply = f"Hello back over {way}, from slixmpp"
        bob.send_message(mto=received["from"], mbody=reply, mtype="chat")
        assert await browser.run("wait_message", **{"from": BOB}, body=reply)
    finally:
        await browser.run("finish")
        await close(bob)


@pytest.mark.parametrize("way", sorted(WAYS))
def test_converse_chats(server, browser, page_server, way):
    """Converse.js in Chromium logs in (over WebSocket, over BOSH, or over what host-meta
    lists), sends a message a slixmpp client receives, and shows the client's reply."""
    try:
        asyncio.run(asyncio.wait_for(chat(server, browser, page_server, way), 6 * TIMEOUT))
    except BaseException:
        print(server.log()[-20000:])
        raise
