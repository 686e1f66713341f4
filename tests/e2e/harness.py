"""
End-to-end harness: the real server as a `twistd -n jabberapp` subprocess on loopback, and
slixmpp clients driving it.

Readiness is read from the server's own log ("... listening on ... port N"), so tests never
sleep to synchronise: every wait is for an event, bounded by a timeout.
"""
import asyncio
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time

import slixmpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 20  # seconds any single wait may take before the test fails
LISTENING = re.compile(r"(c2s(?: direct TLS)?|component|s2s(?: direct TLS)?|https?) listening on "
                       r"\S+ port (\d+)")
S2S_DISABLED = re.compile(r"^\s*enabled\s*=\s*(?:no|false|off|0)\s*$", re.M | re.I)


_handed_out = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port nobody uses right now, never handed out before in this run.

    Taken below the kernel's ephemeral range: a port the kernel picked for bind(0) can be
    picked again for an outgoing connection (a client, Prosody, a DNS query over TCP) before
    the server under test binds it, which fails the test with 'Address already in use'."""
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    if high - low < 1000:       # an unusual range: fall back to the kernel's choice
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(1000):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def subprocess_env(plugin_path=None):
    """The environment for server and CLI subprocesses: this checkout (and drop-ins) first."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # log lines arrive as they are written
    paths = [p for p in (plugin_path, ROOT, env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def ctl(config_path, *args, stdin=None, plugin_path=None):
    """Run jabberappctl; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "jabberapp.admin.cli", "--config", config_path,
                           *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          env=subprocess_env(plugin_path), timeout=60)


class OutputReader:
    """
    Reads a server's output on a thread of its own, as it comes, into C{lines}.

    The server must never block writing its log: with debug logging, a test that reads
    only while it waits for a line would let the pipe fill (64 KiB) and stall the server.
    next_line() hands out the lines in order, each once, waiting for one until a deadline.
    """

    def __init__(self, stream, lines):
        self.lines = lines
        self.ended = False
        self._next = len(lines)
        self._stream = stream
        self._arrived = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for raw in iter(self._stream.readline, b""):
            with self._arrived:
                self.lines.append(raw.decode("utf-8", "replace"))
                self._arrived.notify_all()
        with self._arrived:
            self.ended = True
            self._arrived.notify_all()

    def next_line(self, deadline):
        """The next line not handed out yet; None at the deadline or once the output
        ended with nothing left."""
        with self._arrived:
            while self._next >= len(self.lines):
                remaining = deadline - time.monotonic()
                if self.ended or remaining <= 0:
                    return None
                self._arrived.wait(remaining)
            line = self.lines[self._next]
            self._next += 1
        return line if line.endswith("\n") else line + "\n"

    def join(self):
        """Wait for the end of the output (the process has exited)."""
        self._thread.join(timeout=TIMEOUT)
        self._stream.close()


class ServerProcess:
    """A jabberapp server in a subprocess with its own data directory and config file."""

    def __init__(self, directory, hosts=("localhost",), config="", plugin_path=None, s2s="",
                 s2s_port=None, c2s="", http=None):
        """C{config} is appended to the generated file; C{s2s} and C{c2s} hold extra [s2s]
        and [c2s] options (federation listens on C{s2s_port}, by default a free loopback
        port). C{http} not None enables [http] on free loopback ports C{http_port} and
        C{https_port} (or those its extra [http] options set; 0: not opened)."""
        self.directory = str(directory)
        self.hosts = hosts
        self.config_path = os.path.join(self.directory, "jabberapp.ini")
        self.data_dir = os.path.join(self.directory, "data")
        self.port = free_port()
        self.direct_tls_port = free_port()
        self.s2s_port = s2s_port or free_port()
        self.has_s2s = not S2S_DISABLED.search(s2s)  # readiness waits for its listener
        self.plugin_path = plugin_path
        self.has_components = "[component:" in config  # readiness waits for their listener
        self.output = []         # every line the server wrote, appended as it comes
        self._reader = None
        self.process = None
        with open(self.config_path, "w") as f:
            f.write(textwrap.dedent(f"""\
                [server]
                hosts = {", ".join(hosts)}
                data_dir = {self.data_dir}
                log_level = debug
                [c2s]
                interface = 127.0.0.1
                port = {self.port}
                direct_tls_port = {self.direct_tls_port}
                """) + textwrap.dedent(c2s).strip("\n") + "\n" + textwrap.dedent(f"""\
                [auth]
                scram_iterations = 4096
                [s2s]
                interface = 127.0.0.1
                port = {self.s2s_port}
                """) + textwrap.dedent(s2s).strip("\n") + "\n" + self._http_section(http)
                + textwrap.dedent(config))

    def _http_section(self, extra):
        self.http_port = self.https_port = None
        if extra is None:
            return ""
        extra = textwrap.dedent(extra).strip("\n")
        lines = ["[http]", "enabled = yes", "interface = 127.0.0.1"]
        for key in ("port", "tls_port"):
            given = re.search(rf"^\s*{key}\s*=\s*(\d+)", extra, re.M)
            port = int(given.group(1)) if given else free_port()
            if not given:
                lines.append(f"{key} = {port}")
            setattr(self, "http_port" if key == "port" else "https_port", port or None)
        return "\n".join(lines + [extra]).rstrip("\n") + "\n"

    @property
    def certificate(self):
        return os.path.join(self.data_dir, "certs", f"{self.hosts[0]}.crt")

    def adduser(self, jid, password):
        result = ctl(self.config_path, "adduser", jid, password, plugin_path=self.plugin_path)
        assert result.returncode == 0, result.stderr

    def start(self):
        env = subprocess_env(self.plugin_path)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", "jabberapp", "--config", self.config_path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.directory, env=env)
        self._reader = OutputReader(self.process.stdout, self.output)
        wanted = {"c2s", "c2s direct TLS"}
        if self.has_components:
            wanted.add("component")
        if self.has_s2s:
            wanted.add("s2s")
        wanted.update(label for label, port in (("http", self.http_port),
                                                ("https", self.https_port)) if port)
        for line in self.lines_until(lambda line: _listening(line, wanted)):
            pass
        return self

    def lines_until(self, predicate, timeout=TIMEOUT):
        """Yield server output lines not yielded before, until one satisfies C{predicate};
        fail on timeout or when the server exits first."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._reader.next_line(deadline)
            if line is None:
                if self._reader.ended:
                    raise AssertionError("server exited:\n" + self.log())
                raise AssertionError("server did not get there in time:\n" + self.log())
            yield line
            if predicate(line):
                return

    def log(self):
        return "".join(self.output)

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join()
        self.process = None

    def restart(self, crash=False):
        """Stop the server -- SIGTERM, or SIGKILL when C{crash} -- and start a new process on
        the same data directory, configuration and ports."""
        if crash and self.process is not None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
            self._reader.join()
            self.process = None
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _listening(line, wanted):
    match = LISTENING.search(line)
    if match:
        wanted.discard(match.group(1))
    return not wanted


def client_ssl_context(cafile):
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = True
    return context


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that records what it receives, for assertions."""

    def __init__(self, jid, password, cafile, mechanism=None, direct_tls=False):
        kwargs = {"sasl_mech": mechanism} if mechanism else {}
        super().__init__(jid, password, **kwargs)
        self.ssl_context = client_ssl_context(cafile)
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False
        self.messages = asyncio.Queue()
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("message_error", self.messages.put_nowait)
        self.started = asyncio.get_event_loop().create_future()
        self.failed = asyncio.get_event_loop().create_future()
        self.ended = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: _settle(self.started, True))
        self.add_event_handler("failed_all_auth", lambda _: _settle(self.failed, True))
        self.add_event_handler("disconnected", lambda _: _settle(self.ended, True))
        self.stream_errors = []
        self.add_event_handler("stream_error", self.stream_errors.append)


class Events:
    """Everything a client received of one slixmpp event, kept for waiting on."""

    def __init__(self, client, event):
        self.items = []
        self._changed = asyncio.Event()
        client.add_event_handler(event, self._add)

    def _add(self, item):
        self.items.append(item)
        self._changed.set()

    async def wait(self, predicate, what="the expected stanza"):
        """The first item (received so far or later) for which C{predicate} is true."""
        async def search():
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()
        try:
            return await asyncio.wait_for(search(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


def _settle(future, value):
    if not future.done():
        future.set_result(value)


async def login(server, jid, password, mechanism=None, direct_tls=False, presence=True):
    """Connect and wait for session_start (or fail the test)."""
    client = Client(jid, password, server.certificate, mechanism, direct_tls)
    port = server.direct_tls_port if direct_tls else server.port
    client.connect("127.0.0.1", port)
    done, _ = await asyncio.wait([client.started, client.failed], timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if client.started not in done:
        client.disconnect()
        raise AssertionError(f"{jid} could not log in ({mechanism})")
    if presence:
        client.send_presence()
    return client


async def close(*clients):
    for client in clients:
        client.disconnect()
    await asyncio.wait_for(asyncio.gather(*(c.ended for c in clients)), TIMEOUT)


def run(coroutine):
    """Run one async test body with a fresh event loop."""
    return asyncio.run(asyncio.wait_for(coroutine, 60))
