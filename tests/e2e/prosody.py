"""
Prosody as a federation peer for the interop tests: a generated config in a temporary
directory (its own data directory, pidfile, loopback ports, certificate), run in the
foreground as the current user, stopped by its PID.

Prosody finds other servers only through DNS (mod_s2s resolves _xmpp-server._tcp SRV and
then A/AAAA records with libunbound), and the system's resolver configuration must not be
touched. Its libunbound resolver takes a forwarder from the config (`unbound = { forward =
"127.0.0.1@PORT" }`), so the tests run a tiny DNS server (tests/e2e/dnsserver.py) on a
loopback port that knows both test domains, and point Prosody -- and jabberapp, through
[s2s] dns_servers -- at it. Without lua-unbound Prosody would fall back to /etc/resolv.conf;
the tests then cannot run (see prosody_missing()).
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

from tests.e2e.harness import ROOT, TIMEOUT, free_port

PROSODY = shutil.which("prosody")
PROSODYCTL = shutil.which("prosodyctl")


def prosody_missing():
    """Why Prosody cannot be used here, or None when it can."""
    if PROSODY is None or PROSODYCTL is None:
        return "the prosody binary is not installed (apt-get install prosody lua-unbound)"
    probe = subprocess.run(["lua5.4", "-e", "require 'lunbound'"], capture_output=True)
    if probe.returncode != 0:
        return ("lua-unbound is not installed, so Prosody cannot be pointed at a test DNS "
                "server (apt-get install lua-unbound)")
    return None


class _Output:
    """Line reader over a subprocess's stdout with deadlines (no sleeping)."""

    def __init__(self, process, name):
        self.process = process
        self.name = name
        self.lines = []
        self._pending = b""

    def until(self, predicate, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while True:
            while b"\n" not in self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name} did not get there in time:\n"
                                         + self.text())
                ready, _, _ = select.select([fd], [], [], remaining)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise AssertionError(f"{self.name} exited:\n" + self.text())
                    self._pending += chunk
            raw, self._pending = self._pending.split(b"\n", 1)
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            if predicate(line):
                return line

    def drain(self):
        """Read whatever is available now, without waiting."""
        if self.process.stdout.closed:
            return
        fd = self.process.stdout.fileno()
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._pending += chunk
        *complete, self._pending = self._pending.split(b"\n")
        self.lines.extend(raw.decode("utf-8", "replace") for raw in complete)

    def text(self):
        self.drain()
        return "\n".join(self.lines + [self._pending.decode("utf-8", "replace")])


def _stop(process, output):
    """SIGTERM the process we started (by its PID), SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        rest, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        rest, _ = process.communicate()
    rest = output._pending + (rest or b"")
    output._pending = b""
    output.lines.extend(rest.decode("utf-8", "replace").splitlines())


class DNSProcess:
    """tests/e2e/dnsserver.py on a loopback port, serving C{records}."""

    def __init__(self, records):
        self.records = list(records)
        self.port = None
        self.process = None
        self.output = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.dnsserver", *self.records],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT))
        self.output = _Output(self.process, "the DNS server")
        line = self.output.until(lambda line: line.startswith("dns listening on port"))
        self.port = int(line.rsplit(" ", 1)[1])
        return self

    def stop(self):
        _stop(self.process, self.output)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _lua(value):
    """A Lua string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ProsodyProcess:
    """
    Prosody serving C{domain} from C{directory}, reaching other servers through the DNS
    server at 127.0.0.1:C{dns_port}. Exposes what tests.e2e.harness.login() needs: port,
    direct_tls_port and certificate (its self-signed certificate, which clients trust).
    """

    def __init__(self, directory, domain, dns_port, certificate, key, cafile=None,
                 secure_auth=False, modules=(), extra="", s2s_port=None):
        self.directory = str(directory)
        self.domain = domain
        self.port = free_port()
        self.direct_tls_port = None
        self.s2s_port = s2s_port or free_port()
        self.certificate = certificate
        self.data_dir = os.path.join(self.directory, "data")
        os.makedirs(self.data_dir, mode=0o750, exist_ok=True)
        self.pidfile = os.path.join(self.directory, "prosody.pid")
        self.config_path = os.path.join(self.directory, "prosody.cfg.lua")
        self.process = None
        self.output = None
        ssl = f"certificate = {_lua(certificate)}; key = {_lua(key)};"
        if cafile:
            ssl += f" cafile = {_lua(cafile)};"
        enabled = ["roster", "saslauth", "tls", "dialback", "disco", "ping", "posix",
                   "presence", "message", "iq", *modules]
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(f"""-- generated by tests/e2e/prosody.py
{'run_as_root = true' if os.getuid() == 0 else ''}
pidfile = {_lua(self.pidfile)}
data_path = {_lua(self.data_dir)}
log = {{ {{ levels = {{ min = "debug" }}, to = "console" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
s2s_ports = {{ {self.s2s_port} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
use_ipv6 = false
modules_enabled = {{ {"; ".join(_lua(m) for m in enabled)} }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {'true' if secure_auth else 'false'}
s2s_timeout = 15
unbound = {{ resolvconf = false; hoststxt = false; forward = "127.0.0.1@{dns_port}" }}
ssl = {{ {ssl} }}
certificates = {_lua(os.path.dirname(certificate))}
{extra}
VirtualHost {_lua(domain)}
    ssl = {{ {ssl} }}
""")

    def ctl(self, *args):
        result = subprocess.run([PROSODYCTL, "--config", self.config_path, *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (result.stdout, result.stderr)
        return result

    def adduser(self, user, password):
        self.ctl("register", user, self.domain, password)

    def start(self):
        self.process = subprocess.Popen([PROSODY, "--config", self.config_path, "-F"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        cwd=self.directory)
        self.output = _Output(self.process, "prosody")
        wanted = {f"'c2s' on [127.0.0.1]:{self.port}", f"'s2s' on [127.0.0.1]:{self.s2s_port}"}

        def listening(line):
            for service in list(wanted):
                if service in line:
                    wanted.discard(service)
            return not wanted
        self.output.until(listening)
        return self

    def log(self):
        return self.output.text() if self.output else ""

    def wait_for_line(self, pattern, timeout=TIMEOUT):
        regex = re.compile(pattern)
        self.output.drain()
        for line in self.output.lines:
            if regex.search(line):
                return line
        return self.output.until(regex.search, timeout)

    def stop(self):
        _stop(self.process, self.output)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
