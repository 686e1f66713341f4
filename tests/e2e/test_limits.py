"""End to end (issue 11 §1, §5): flow control over real sockets. A recipient that does not
read, flooded by a sender: the server queues no more than max_send_buffer for it, stops
reading the sender, answers what it refuses, closes the recipient with policy-violation, and
another user's ping is answered meanwhile. A sender past its read rate: the server pauses
reading it and every message still arrives, no sooner than the rate allows. Every wait is for
a server log line or a reply, bounded by the harness timeout."""
import re
import socket
import threading
import time

import pytest

from tests.e2e.harness import TIMEOUT, ServerProcess
from tests.e2e.rawclient import NS_CLIENT, RawClient

PASSWORD = "limits pw"
LIMIT = 262144              # max_send_buffer of the flood test
STALL = 3                   # send_buffer_timeout of the flood test
BODY = "x" * 4000
FULL = re.compile(r"send buffer of (\S+) full \((\d+) bytes queued, limit (\d+)\)")
CLOSED = re.compile(r"closing (\S+): its send buffer stayed full for \S+ s \((\d+) bytes")


def plain_login(server, user, resource):
    """A raw connection without TLS (so two threads may read and write its socket)."""
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    client.authenticate("SCRAM-SHA-256", user, PASSWORD)
    client.bind(resource)
    return client


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Flood:
    """Headline messages of 4 kB to C{to}, written by one thread, while another counts
    the errors that come back; both stop when told or when the connection ends."""

    def __init__(self, client, to, count):
        self.sock = client._sock
        self.to = to
        self.count = count
        self.sent = 0
        self.errors = {}        # condition -> count
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, daemon=True),
                         threading.Thread(target=self._read, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _write(self):
        try:
            for n in range(self.count):
                if self.stop.is_set():
                    return
                self.sock.sendall(f"<message to='{self.to}' type='headline' id='f{n}'>"
                                  f"<body>{BODY}</body></message>".encode())
                self.sent += 1
        except OSError:
            pass

    def _read(self):
        self.sock.settimeout(0.5)
        tail = b""
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            text = tail + data
            for condition in (b"resource-constraint", b"service-unavailable"):
                found = text.count(condition) - tail.count(condition)
                if found:
                    self.errors[condition.decode()] = self.errors.get(condition.decode(),
                                                                      0) + found
            tail = text[-64:]

    def finish(self):
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)


@pytest.fixture
def flood_server(tmp_path):
    server = ServerProcess(tmp_path, c2s=f"""
        require_encryption = no
        max_send_buffer = {LIMIT}
        send_buffer_timeout = {STALL}
        read_rate = 0
        """)
    for user in ("sender", "sleeper", "bystander"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


def test_non_reading_recipient_is_bounded_and_closed(flood_server):
    """A flood to a recipient that does not read: the server stops queueing for it at
    max_send_buffer, pauses the sender, refuses the rest with resource-constraint, and
    closes the recipient with policy-violation after send_buffer_timeout; another user's
    ping is answered while the flood is held."""
    server = flood_server
    sleeper = plain_login(server, "sleeper", "flood")
    # A small receive window: the kernel holds little, the server's own queue fills soon.
    sleeper._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sender = plain_login(server, "sender", "flood")
    rss_before = rss_kib(server.process.pid)
    flood = Flood(sender, "sleeper@localhost/flood", count=4000)   # 16 MB at most
    try:
        full = None
        for line in server.lines_until(lambda line: FULL.search(line) is not None):
            full = FULL.search(line)
        assert full.group(1) == "sleeper@localhost/flood"
        assert LIMIT <= int(full.group(2)) < LIMIT + 8192

        # Someone else is served while the flood is held.
        with RawClient(server.port, server.certificate) as bystander:
            bystander.open_stream()
            bystander.starttls()
            bystander.authenticate("SCRAM-SHA-256", "bystander", PASSWORD)
            bystander.bind("ping")
            started = time.monotonic()
            bystander.send("<iq type='get' id='ping1' to='localhost'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>")
            reply = bystander.expect(f"{{{NS_CLIENT}}}iq")
            assert reply.get("id") == "ping1" and reply.get("type") == "result"
            assert time.monotonic() - started < STALL

        lines = []
        for line in server.lines_until(lambda line: CLOSED.search(line) is not None):
            lines.append(line)
        closed = CLOSED.search(lines[-1])
        assert closed.group(1) == "sleeper@localhost/flood"
        assert int(closed.group(2)) < LIMIT + 8192     # never more than the bound
        for line in server.lines_until(lambda line: "policy-violation" in line):
            pass
        log = server.log()
        assert "not reading from <ClientStream sender@localhost/flood>" in log
    finally:
        flood.finish()
        sleeper._sock.close()
        sender._sock.close()
    assert flood.errors.get("resource-constraint", 0) >= 1, flood.errors
    # Memory: the sender's 16 MB were not queued inside the server (loose: RSS is noisy).
    assert rss_kib(server.process.pid) - rss_before < 64 * 1024


@pytest.fixture
def rate_server(tmp_path):
    server = ServerProcess(tmp_path, c2s=f"""
        require_encryption = no
        read_rate = {RATE}
        read_burst = 1
        """)
    for user in ("fast", "reader"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


RATE = 50000
READ_SIZE = 65536   # what Twisted reads at most at once: in hand before any pause


def test_sender_past_its_read_rate_is_slowed_not_cut(rate_server):
    """150 kB sent at once on a connection limited to 50 kB/s with a 1 s burst: the server
    logs that it paused reading, every message arrives in order, and the last arrives no
    sooner than the rate allows for what was not already read (150 kB less the burst and
    one read)."""
    server = rate_server
    reader = plain_login(server, "reader", "r")
    fast = plain_login(server, "fast", "f")
    try:
        count = 150
        stanzas = [f"<message to='reader@localhost/r' id='s{n}'><body>{'y' * 950}"
                   f"</body></message>" for n in range(count)]
        total = sum(len(stanza) for stanza in stanzas)
        started = time.monotonic()
        fast.send("".join(stanzas))
        ids = []
        while len(ids) < count:
            el = reader.next_element()
            if el.tag == f"{{{NS_CLIENT}}}message":
                ids.append(el.get("id"))
        elapsed = time.monotonic() - started
        assert ids == [f"s{n}" for n in range(count)]
        assert elapsed >= (total - RATE - READ_SIZE) / RATE * 0.9, elapsed
        assert "read rate of <ClientStream fast@localhost/f> exceeded" in server.log()
    finally:
        reader._sock.close()
        fast._sock.close()
