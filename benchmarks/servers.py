"""
The three servers under test, started with equivalent settings on loopback.

All get: the same self-signed certificate (EC P-256) for the benchmark host, TLS 1.3 (the
generator allows nothing else), STARTTLS required, SCRAM with the same iteration count and
the same salted credentials for every account, no rate limits, a 256 KiB stanza limit,
logging at warning level, TCP_NODELAY on client sockets, and core 0 (``taskset -c 0``).

- jabberapp (this checkout, on PYTHONPATH): ``twistd -n jabberapp``; accounts through its own
  storage API (benchmarks/provision_jabberapp.py); the presence ring's accounts and rosters
  through `jabberappctl import` (XEP-0227) where the revision has it, else over XMPP by the
  generator (scenarios.subscribe_ring). Its c2s sets TCP_NODELAY itself.
- Prosody (Debian package): its own config file, data directory and ports under the work
  directory; the system service, if any, is never touched. Accounts and rosters are written
  straight into its internal storage (one Lua file per account, as mod_storage_internal
  writes them), which takes well under a second for 10 000 accounts. ``nagle = false`` in
  network_settings gives TCP_NODELAY (Prosody's default keeps Nagle on).
- ejabberd (Debian package): its own config, mnesia spool and log directory under the work
  directory, started as ``erl ... -s ejabberd`` in the foreground (what ``ejabberdctl
  foreground`` runs, without its switch to the ejabberd user, so that our PID is the
  BEAM's) with one scheduler. The node is not distributed: no node name, no cookie, no
  epmd, nothing a system ejabberd could meet. Accounts and rosters go in through
  ejabberd's own API (ejabberd_auth:set_password with the SCRAM record, mod_roster:set_items)
  from benchmarks/provision_ejabberd.erl, loaded into that same ejabberd started once for
  the purpose. ejabberd's listeners set TCP_NODELAY themselves (ejabberd_listener).

Only processes started here are ever stopped, by PID.
"""
from __future__ import annotations

import base64
import datetime
import glob
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOMAIN = "localhost"
PASSWORD = "bench-password"
# One salt for every account on both servers; ASCII, as Prosody stores salts as Lua strings.
SALT = b"jabberapp-bench-5a1t"
HASH_NAMES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
PROSODY_HASH = {"SCRAM-SHA-1": "SHA-1", "SCRAM-SHA-256": "SHA-256"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_certificate(workdir: str, domain: str = DOMAIN) -> tuple[str, str]:
    """(cert, key) paths of the benchmark host's self-signed certificate, made once."""
    cert_path = os.path.join(workdir, f"{domain}.crt")
    key_path = os.path.join(workdir, f"{domain}.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256()))
    os.makedirs(workdir, exist_ok=True)
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def scram_material(mechanism: str, iterations: int) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) of PASSWORD with SALT, RFC 5802."""
    name = HASH_NAMES[mechanism]
    salted = hashlib.pbkdf2_hmac(name, PASSWORD.encode(), SALT, iterations)
    client_key = hmac.digest(salted, b"Client Key", name)
    return (hashlib.new(name, client_key).digest(), hmac.digest(salted, b"Server Key", name))


def ring_contacts(index: int, users: int, contacts: int) -> list[int]:
    """The roster of user C{index} in the presence scenario: its C{contacts} nearest
    neighbours on a ring of C{users} (half each side): symmetric, so every pair is mutual."""
    half = contacts // 2
    out = []
    for d in range(1, half + 1):
        out.append((index + d) % users)
        out.append((index - d) % users)
    return out


class Server:
    """Common process handling: start pinned, wait until the port accepts, stop by PID."""

    name = "?"

    def __init__(self, workdir: str, iterations: int, mechanism: str, cpu: str = "0"):
        workdir = os.path.abspath(workdir)     # servers run in their own directory
        self.dir = os.path.join(workdir, self.name)
        self.iterations = iterations
        self.mechanism = mechanism
        self.cpu = cpu
        self.port = free_port()
        self.ws_port = None       # the HTTPS port of the WebSocket endpoint, when it has one
        self.cert, self.key = ensure_certificate(workdir)
        self.process = None
        self.log_path = os.path.join(self.dir, "server.out")
        os.makedirs(self.dir, exist_ok=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict:
        return dict(os.environ)

    def has_websocket(self) -> bool:
        """Whether this server gets an HTTPS listener with /xmpp-websocket."""
        return True

    def start(self, timeout: float = 30.0) -> int:
        self.port = free_port()
        self.ws_port = free_port() if self.has_websocket() else None
        self.write_config()
        out = open(self.log_path, "ab")
        cmd = ["taskset", "-c", self.cpu] + self.command()
        self.process = subprocess.Popen(cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env())
        out.close()
        deadline = time.monotonic() + timeout
        # Ready once every port accepts: c2s, and the HTTPS one (it may open later).
        waiting = [p for p in (self.port, self.ws_port) if p]
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=1):
                    waiting.pop(0)
                    if not waiting:
                        return self.pid
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    # -- for subclasses -------------------------------------------------------------

    def write_config(self) -> None:
        raise NotImplementedError

    def provision(self, groups: dict[str, int]) -> dict:
        raise NotImplementedError

    def provision_rosters(self, prefix: str, users: int, contacts: int) -> str:
        """'files' when rosters were written to storage, 'protocol' when the generator must
        subscribe over XMPP (done once; the server keeps them)."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class JabberappServer(Server):
    name = "jabberapp"

    def __init__(self, workdir, iterations, mechanism, cpu="0", src=ROOT, without=()):
        super().__init__(workdir, iterations, mechanism, cpu)
        self.src = src                    # the jabberapp source tree measured
        self.without = frozenset(without)  # built-in extensions left out (--without)
        self.config_path = os.path.join(self.dir, "jabberapp.ini")
        self.data_dir = os.path.join(self.dir, "data")
        self._introspected = None

    def env(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.src, env.get("PYTHONPATH")) if p)
        return env

    def introspect(self) -> dict:
        """The built-in extensions and the config schema (section -> options) of self.src,
        so the config fits whatever revision is measured."""
        if self._introspected is None:
            code = ("import json\n"
                    "from jabberapp.server import discover_extensions, is_builtin\n"
                    "from jabberapp import config\n"
                    "ext = sorted(n for n, e in discover_extensions().items() if is_builtin(e))\n"
                    "schemas = {n: tuple(e.options) for n, e in discover_extensions().items()}\n"
                    "text = config.render_example(schemas)\n"
                    "print(json.dumps({'extensions': ext, 'example': text}))\n")
            result = subprocess.run([sys.executable, "-c", code], cwd=self.src, env=self.env(),
                                    capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"cannot introspect jabberapp in {self.src}:\n"
                                   f"{result.stderr[-2000:]}")
            data = json.loads(result.stdout.strip().splitlines()[-1])
            sections, current = {}, None
            for line in data["example"].splitlines():
                if line.startswith("[") and line.rstrip().endswith("]"):
                    current = sections.setdefault(line.strip()[1:-1], set())
                elif current is not None and line.startswith(";") and "=" in line:
                    key = line[1:].split("=", 1)[0].strip()
                    if key and " " not in key:
                        current.add(key)
            self._introspected = {"extensions": data["extensions"], "sections": sections}
        return self._introspected

    def has_http(self) -> bool:
        """Whether this revision has the [http] listener (BOSH, host-meta, WebSocket)."""
        return "http" in self.introspect()["sections"]

    def has_websocket(self):
        """Whether this revision serves /xmpp-websocket on its [http] listener."""
        # [websocket] (enabled by default) exists from the revision that serves it.
        return self.has_http() and "websocket" in self.introspect()["sections"]

    def extensions(self) -> list[str]:
        """The built-in extensions this run enables: all, less those of --without."""
        return [e for e in self.introspect()["extensions"] if e not in self.without]

    def command(self):
        # twistd itself (the module has no __main__ block, hence -c), as the E2E tests run it.
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "jabberapp", "--config", self.config_path]

    def write_config(self):
        # [server] extensions is left unset: every built-in extension, so roster, presence
        # and the rest are measured as they land. Federation is switched off when this
        # revision has it (Prosody runs without mod_s2s too).
        sections = self.introspect()["sections"]
        extra = ""
        if "enabled" in sections.get("s2s", ()):
            extra += "\n[s2s]\nenabled = no\n"
            if "port" in sections["s2s"]:
                extra += "port = 0\n"
        c2s_extra = ""
        if "read_rate" in sections.get("c2s", ()):
            # No read rate limit, as Prosody runs without mod_limits and ejabberd without
            # shapers (the send buffer bound stays: it only acts on a client that stops reading).
            c2s_extra += "read_rate = 0\n"
        if self.has_http():
            # The HTTP side as Prosody's and ejabberd's: one HTTPS port (the hosts'
            # certificate), no plain HTTP port; WebSocket and BOSH where the revision has them.
            extra += ("\n[http]\nenabled = yes\ninterface = 127.0.0.1\nport = 0\n"
                      f"tls_port = {self.ws_port or free_port()}\n")
        if "lock_new_rooms" in sections.get("extension:muc", ()):
            # Rooms open on first join, as Prosody's with muc_room_locking = false.
            extra += "\n[extension:muc]\nlock_new_rooms = no\n"
        # [server] extensions unset: every built-in one; listed only when --without
        # leaves some out.
        listed = (f"extensions = {', '.join(self.extensions())}\n" if self.without else "")
        with open(self.config_path, "w") as f:
            f.write(f"""\
; generated by benchmarks/servers.py
{extra}
[server]
hosts = {DOMAIN}
{listed}data_dir = {self.data_dir}
log_level = warn

[c2s]
interface = 127.0.0.1
port = {self.port}
direct_tls_port = 0
require_encryption = yes
max_stanza_size = 262144
{c2s_extra}
[auth]
scram_iterations = {self.iterations}

[tls]
certificate = {self.cert}
private_key = {self.key}
""")

    def provision(self, groups):
        self.write_config()
        # Run by path, so that jabberapp is imported from self.src (PYTHONPATH), not from
        # the working directory.
        args = [sys.executable, os.path.join(ROOT, "benchmarks", "provision_jabberapp.py"),
                "--config", self.config_path, "--host", DOMAIN, "--password", PASSWORD,
                "--iterations", str(self.iterations), "--salt", SALT.hex()]
        args += [f"{prefix}:{count}" for prefix, count in groups.items()]
        result = subprocess.run(args, cwd=self.dir, env=self.env(), capture_output=True,
                                text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"jabberapp provisioning failed:\n{result.stdout}{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def can_import(self) -> bool:
        """Whether this revision has `jabberappctl import` (XEP-0227)."""
        return os.path.exists(os.path.join(self.src, "jabberapp", "admin", "migrate",
                                           "importer.py"))

    def provision_rosters(self, prefix, users, contacts):
        """Create the ring's accounts with their rosters through `jabberappctl import`
        (XEP-0227, one transaction) when this revision has it and the accounts do not exist
        yet: 'import'. Otherwise 'protocol': the generator subscribes them over XMPP."""
        marker = os.path.join(self.dir, f"rosters-{prefix}{contacts}.done")
        if os.path.exists(marker):
            return "done"
        if not self.can_import():
            return "protocol"
        self.write_config()
        path = os.path.join(self.dir, f"rosters-{prefix}{contacts}.xml")
        write_pie(path, self.iterations, prefix, users, contacts)
        result = subprocess.run(
            [sys.executable, "-m", "jabberapp.admin.cli", "--config", self.config_path,
             "import", path], cwd=self.src, env=self.env(), capture_output=True, text=True,
            timeout=900)
        if result.returncode != 0:
            if "exists on this server already" in result.stderr:
                return "protocol"     # made by an older run without the marker
            raise RuntimeError(f"jabberappctl import failed:\n{result.stderr[-2000:]}")
        with open(marker, "w") as f:
            f.write(result.stdout)
        return "import"

    def version(self):
        import twisted

        code = "import jabberapp; print(jabberapp.__version__)"
        version = subprocess.run([sys.executable, "-c", code], cwd=self.src, env=self.env(),
                                 capture_output=True, text=True, timeout=60).stdout.strip()
        described = getattr(self, "src_description", None)
        if described is None:
            try:
                rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True, timeout=10).stdout.strip()
                dirty = subprocess.run(["git", "status", "--porcelain", "jabberapp"], cwd=ROOT,
                                       capture_output=True, text=True,
                                       timeout=10).stdout.strip()
            except OSError:
                rev, dirty = "?", ""
            described = f"working tree at git {rev}{' + uncommitted changes' if dirty else ''}"
        return f"jabberapp {version or '?'} ({described}), Twisted {twisted.__version__}"


# jabberapp extension -> the Prosody module doing the same job, so both servers run the same
# features. Extensions without a counterpart are listed in RESULTS.md.
PROSODY_COUNTERPARTS = {
    "disco": "disco", "ping": "ping", "time": "time", "version": "version",
    "roster": "roster", "blocking": "blocklist", "offline": "offline", "private": "private",
    "vcard": "vcard", "last": "lastactivity", "register": "register",
    "contact_addresses": "server_contact_info", "carbons": "carbons", "mam": "mam",
    "csi": "csi_simple", "stream_management": "smacks", "smacks": "smacks", "sm": "smacks",
    "pep": "pep",
}
# Always: authentication, STARTTLS, and roster (scenario 4 needs it; it is what a
# deployment runs).
PROSODY_BASE = ("saslauth", "tls", "roster", "disco", "ping", "time", "version")


def prosody_modules(jabberapp_extensions) -> tuple[list[str], list[str]]:
    """(Prosody modules to enable, jabberapp extensions without a counterpart). jabberapp's
    muc is matched by a MUC component (ProsodyServer(muc=True)), not by a module."""
    modules = list(PROSODY_BASE)
    unmatched = []
    for name in jabberapp_extensions:
        if name == "muc":
            continue
        module = PROSODY_COUNTERPARTS.get(name)
        if module is None:
            unmatched.append(name)
        elif module not in modules:
            modules.append(module)
    return modules, unmatched


class ProsodyServer(Server):
    name = "prosody"

    def __init__(self, workdir, iterations, mechanism, cpu="0", modules=PROSODY_BASE,
                 muc=False):
        super().__init__(workdir, iterations, mechanism, cpu)
        self.config_path = os.path.join(self.dir, "prosody.cfg.lua")
        self.data_dir = os.path.join(self.dir, "data")
        self.modules = list(modules)
        self.muc = muc           # a MUC component at conference.<host>, as jabberapp's

    def command(self):
        return [shutil.which("prosody") or "/usr/bin/prosody", "-F", "--config",
                self.config_path]

    def write_config(self):
        os.makedirs(self.data_dir, exist_ok=True)
        # The HTTP side, as jabberapp's [http] listener: WebSocket (RFC 7395) and BOSH on one
        # HTTPS port with the benchmark certificate, no plain HTTP port.
        modules = " ".join(f'"{m}";' for m in self.modules + ["websocket", "bosh"])
        disabled = ["s2s", "s2s_auth_certs"]
        if "offline" not in self.modules:
            disabled.append("offline")      # autoloaded unless disabled
        disabled = " ".join(f'"{m}";' for m in disabled)
        with open(self.config_path, "w") as f:
            f.write(f"""\
-- generated by benchmarks/servers.py: a private Prosody, nothing shared with the system one
run_as_root = true
data_path = "{self.data_dir}"
plugin_paths = {{}}
log = {{ warn = "{self.dir}/prosody.log" }}
admins = {{}}
-- The counterparts of jabberapp's enabled extensions (benchmarks/servers.py). No mod_limits:
-- no rate limits. No s2s (jabberapp's federation is switched off too).
modules_enabled = {{ {modules} }}
modules_disabled = {{ {disabled} }}
authentication = "internal_hashed"
password_hash = "{PROSODY_HASH[self.mechanism]}"
default_iteration_count = {self.iterations}
storage = "internal"
c2s_ports = {{ {self.port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
c2s_require_encryption = true
c2s_stanza_size_limit = 262144
-- nagle = false: TCP_NODELAY on every socket (Prosody keeps Nagle on by default).
network_settings = {{ nagle = false }}
ssl = {{ certificate = "{self.cert}"; key = "{self.key}"; }}
certificates = "{os.path.dirname(self.cert)}"
http_ports = {{}}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ {self.ws_port or ""} }}
https_interfaces = {{ "127.0.0.1" }}
https_ssl = {{ certificate = "{self.cert}"; key = "{self.key}"; }}
-- XEP-0198: the same resumption timeout as jabberapp's and ejabberd's (300 s; Prosody's
-- default is 600); queue sizes stay at their defaults (500 unacked stanzas, as jabberapp).
smacks_hibernation_time = 300
VirtualHost "{DOMAIN}"
""")
            if self.muc:
                f.write(f"""
-- jabberapp's muc extension serves conference.<host> in-process, rooms unlocked on creation
Component "conference.{DOMAIN}" "muc"
    muc_room_locking = false
    muc_room_default_history_length = 20
""")

    def _host_dir(self, store):
        # mod_storage_internal's path: data/<host>/<store>/<user>.dat (%-escaped names).
        path = os.path.join(self.data_dir, _encode(DOMAIN), store)
        os.makedirs(path, exist_ok=True)
        return path

    def provision(self, groups):
        self.write_config()
        started = time.monotonic()
        stored_key, server_key = scram_material(self.mechanism, self.iterations)
        body = ("return {\n"
                f"\t[\"iteration_count\"] = {self.iterations};\n"
                f"\t[\"salt\"] = \"{SALT.decode('ascii')}\";\n"
                f"\t[\"server_key\"] = \"{server_key.hex()}\";\n"
                f"\t[\"stored_key\"] = \"{stored_key.hex()}\";\n"
                "};\n").encode()
        accounts = self._host_dir("accounts")
        created = existing = 0
        for prefix, count in groups.items():
            for i in range(count):
                path = os.path.join(accounts, _encode(f"{prefix}{i}") + ".dat")
                try:
                    with open(path, "rb") as f:
                        if f.read() == body:
                            existing += 1
                            continue
                except FileNotFoundError:
                    pass
                with open(path, "wb") as f:
                    f.write(body)
                created += 1
        return {"created": created, "existing": existing,
                "seconds": round(time.monotonic() - started, 2)}

    def provision_rosters(self, prefix, users, contacts):
        rosters = self._host_dir("roster")
        for i in range(users):
            items = "".join(
                f"\t[\"{prefix}{j}@{DOMAIN}\"] = {{\n"
                "\t\t[\"groups\"] = {};\n"
                "\t\t[\"subscription\"] = \"both\";\n"
                "\t};\n" for j in sorted(ring_contacts(i, users, contacts)))
            text = ("return {\n\t[false] = {\n\t\t[\"pending\"] = {};\n"
                    "\t\t[\"version\"] = 1;\n\t};\n" + items + "};\n")
            with open(os.path.join(rosters, _encode(f"{prefix}{i}") + ".dat"), "w") as f:
                f.write(text)
        return "files"

    def version(self):
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prosody"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            out = "?"
        try:
            lua = subprocess.run(["prosodyctl", "about"], capture_output=True, text=True,
                                 timeout=30).stdout
            lua = next((line.split(":", 1)[1].strip() for line in lua.splitlines()
                        if line.startswith("Lua version")), "?")
        except (OSError, subprocess.TimeoutExpired):
            lua = "?"
        return f"Prosody {out} (Debian package, {lua}, epoll backend)"


# jabberapp extension -> the ejabberd modules doing the same job (as for Prosody above).
EJABBERD_COUNTERPARTS = {
    "disco": ("mod_disco",), "ping": ("mod_ping",), "time": ("mod_time",),
    "version": ("mod_version",), "roster": ("mod_roster",),
    # mod_blocking is XEP-0191 on top of mod_privacy's lists: it needs that module.
    "blocking": ("mod_privacy", "mod_blocking"), "offline": ("mod_offline",),
    "private": ("mod_private",), "vcard": ("mod_vcard",), "last": ("mod_last",),
    "register": ("mod_register",),
    # XEP-0157 is mod_disco's server_info option (empty, as jabberapp's default).
    "contact_addresses": ("mod_disco",), "caps": ("mod_caps",),
    # One mod_pubsub serves both: the pubsub.<host> service ('flat' nodes) and PEP ('pep').
    "pubsub": ("mod_pubsub",), "pep": ("mod_caps", "mod_pubsub"), "muc": ("mod_muc",),
    "carbons": ("mod_carboncopy",), "mam": ("mod_mam",), "csi": ("mod_client_state",),
    "stream_management": ("mod_stream_mgmt",), "smacks": ("mod_stream_mgmt",),
    "sm": ("mod_stream_mgmt",),
}
# Always, as PROSODY_BASE.
EJABBERD_BASE = ("mod_roster", "mod_disco", "mod_ping", "mod_time", "mod_version")


def ejabberd_modules(jabberapp_extensions) -> tuple[dict[str, dict], list[str]]:
    """({ejabberd module: its options}, jabberapp extensions without a counterpart)."""
    names = list(EJABBERD_BASE)
    unmatched = []
    for name in jabberapp_extensions:
        modules = EJABBERD_COUNTERPARTS.get(name)
        if modules is None:
            unmatched.append(name)
        names += [m for m in modules or () if m not in names]
    if "mod_bosh" not in names:
        names.append("mod_bosh")      # /http-bind on the HTTPS listener
    options = {name: {} for name in names}
    if "mod_stream_mgmt" in options:
        # The same resumption timeout as the others (ejabberd's default, said here).
        options["mod_stream_mgmt"] = {"resume_timeout": 300}
    if "mod_mam" in options:
        # Archive every message, as jabberapp (default_prefs = always) and Prosody
        # (default_archive_policy = true) do; ejabberd's own default is never.
        options["mod_mam"] = {"default": "always"}
    if "mod_vcard" in options:
        options["mod_vcard"] = {"search": False}     # no vjud.<host>: jabberapp has none
    if "mod_register" in options:
        # In-band registration refused, as jabberapp's allow_registration = no and
        # Prosody's allow_registration = false (their defaults).
        options["mod_register"] = {"access": "none"}
    if "mod_pubsub" in options:
        plugins = ["flat"] if "pubsub" in jabberapp_extensions else []
        if "pep" in jabberapp_extensions:
            plugins.append("pep")
        options["mod_pubsub"] = {"plugins": plugins or ["flat"]}
    if "mod_muc" in options:
        # ejabberd 23.01 does not lock new rooms: they open on first join, as jabberapp's
        # with lock_new_rooms = no. 20 messages of history, as both others.
        options["mod_muc"] = {"host": f"conference.{DOMAIN}", "history_size": 20}
    return options, unmatched


def ejabberd_lib_dir() -> str | None:
    """Where the Debian package keeps ejabberd's Erlang application (ERL_LIBS), e.g.
    /usr/lib/x86_64-linux-gnu; None when ejabberd is not installed."""
    found = sorted(glob.glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.app")
                   + glob.glob("/usr/lib/ejabberd-*/ebin/ejabberd.app"))
    if not found:
        return None
    return os.path.dirname(os.path.dirname(os.path.dirname(found[-1])))


class EjabberdServer(Server):
    """A private ejabberd: own config, mnesia spool and logs, not distributed (no epmd)."""

    name = "ejabberd"
    HASH = {"SCRAM-SHA-1": "sha", "SCRAM-SHA-256": "sha256"}

    def __init__(self, workdir, iterations, mechanism, cpu="0", modules=None):
        super().__init__(workdir, iterations, mechanism, cpu)
        self.config_path = os.path.join(self.dir, "ejabberd.yml")
        # The spool (mnesia) belongs to one node name; a non-distributed node is always
        # nonode@nohost, so the spool is valid for every start.
        self.spool = os.path.join(self.dir, "spool")
        self.logs = os.path.join(self.dir, "log")
        self.modules = dict(modules if modules is not None else ejabberd_modules(())[0])
        self.lib_dir = ejabberd_lib_dir()

    def env(self):
        if self.lib_dir is None:
            raise RuntimeError("ejabberd is not installed (benchmarks/run installs it: apt-get)")
        env = dict(os.environ)
        # What ejabberdctl (Debian 23.01) exports for `foreground`, pointed at our files.
        env.update({
            "EJABBERD_CONFIG_PATH": self.config_path,
            "EJABBERD_LOG_PATH": os.path.join(self.logs, "ejabberd.log"),
            "ERL_LIBS": self.lib_dir,
            "ERL_MAX_PORTS": "32000",
            "ERL_MAX_ETS_TABLES": "1400",
            "ERL_CRASH_DUMP": os.path.join(self.logs, "erl_crash.dump"),
            "CONTRIB_MODULES_PATH": os.path.join(self.dir, "contrib"),
            "HOME": self.dir,
        })
        env.pop("EJABBERD_PID_PATH", None)
        return env

    def _erl(self) -> list[str]:
        # ejabberdctl foreground's `erl` line: +P 250000, no crash dump, mnesia in our spool,
        # -s ejabberd; plus one scheduler (+S 1:1, and one dirty CPU scheduler) so that the
        # BEAM runs like the others, on one core. Not distributed: no -sname, so no epmd.
        return [shutil.which("erl") or "/usr/bin/erl", "-noinput", "+P", "250000",
                "+S", "1:1", "+SDcpu", "1:1", "-env", "ERL_CRASH_DUMP_BYTES", "0",
                "-mnesia", "dir", _erlang_string(self.spool), "-s", "ejabberd"]

    def command(self):
        # -s ejabberd returns once the application has started (modules loaded, the
        # ejabberd_started hooks run); the -eval after it then drops the flag start() waits
        # for, since the c2s port may accept a little earlier.
        flag = _erlang_string(self.started_flag)
        return self._erl() + ["-eval", f'ok = file:write_file({flag}, <<"started">>).']

    @property
    def started_flag(self) -> str:
        return os.path.join(self.dir, "started.flag")

    def start(self, timeout: float = 60.0) -> int:
        if os.path.exists(self.started_flag):
            os.remove(self.started_flag)
        started = time.monotonic()
        pid = super().start(timeout)
        while not os.path.exists(self.started_flag):
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError(f"ejabberd did not finish starting within {timeout}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)
        return pid

    def stop(self, timeout: float = 20.0) -> None:
        # The BEAM's helpers (erl_child_setup, memsup, inet_gethost) end when it does; wait
        # for them, and kill any that outlives it (ours: found under our PID, by PID).
        helpers = _descendants(self.process.pid) if self.process is not None else []
        super().stop(timeout)
        deadline = time.monotonic() + 5.0
        while helpers and time.monotonic() < deadline:
            helpers = [h for h in helpers if _start_time(h[0]) == h[1]]
            time.sleep(0.05)
        for pid, _ in helpers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def write_config(self):
        os.makedirs(self.spool, exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        modules = "".join(f"  {name}: {_yaml(options)}\n"
                          for name, options in self.modules.items())
        http = "" if not self.ws_port else f"""\
  # The HTTP side, as jabberapp's [http] listener: WebSocket (RFC 7395) and BOSH on one
  # HTTPS port with the benchmark certificate.
  - port: {self.ws_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    tls: true
    backlog: 128
    request_handlers:
      /xmpp-websocket: ejabberd_http_ws
      /http-bind: mod_bosh
"""
        with open(self.config_path, "w") as f:
            f.write(f"""\
# generated by benchmarks/servers.py: a private ejabberd, nothing shared with the system one
hosts: [{_yaml(DOMAIN)}]
loglevel: warning
log_rotate_count: 0
certfiles: [{_yaml(self.cert)}, {_yaml(self.key)}]
default_db: mnesia
auth_method: [mnesia]
auth_password_format: scram
auth_scram_hash: {self.HASH[self.mechanism]}
# The default (1000 entries per cache) is smaller than the benchmark's working set (10 000
# accounts, 20 000 roster items): ejabberd then logs 'you should increase maximum cache
# size' and goes back to mnesia; the other two keep these in memory.
cache_size: 100000
# No rate limits: no shapers, no shaper rules, a c2s queue limit far above any window here.
shaper: {{}}
shaper_rules: {{}}
max_fsm_queue: 1000000
# No federation (jabberapp's is switched off, Prosody runs without mod_s2s): no s2s
# listener, and outgoing s2s refused.
s2s_access: none
# backlog: ejabberd's default accept queue is 5 connections, and a login burst overflowing
# it waits a SYN retransmission (1 s); 128 is Prosody's default (tcp_backlog), Twisted's 50.
listen:
  - port: {self.port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
    max_stanza_size: 262144
    shaper: none
    backlog: 128
{http}modules:
{modules}""")

    def _run_erlang(self, terms: str, timeout: float = 900) -> dict:
        """Start this ejabberd once with provision_ejabberd.erl loaded, have it read
        C{terms} (see that module), stop; returns its JSON line."""
        self.write_config()
        marker = os.path.join(self.spool, "provisioned-"
                              + hashlib.sha256(terms.encode()).hexdigest()[:16])
        if os.path.exists(marker):
            return {"done": "earlier"}
        path = os.path.join(self.dir, "provision.terms")
        with open(path, "w") as f:
            f.write(terms)
        source = os.path.join(ROOT, "benchmarks", "provision_ejabberd.erl")
        code = (
            "try Inc = filename:join(filename:dirname(filename:dirname(code:which(xmpp))),"
            " \"include\"),"
            f" {{ok, M, B}} = compile:file({_erlang_string(source)}, [binary, report, {{i, Inc}}]),"
            f" {{module, M}} = code:load_binary(M, {_erlang_string(source)}, B),"
            f" M:run({_erlang_string(path)}), init:stop()"
            " catch C:E:S -> io:format(\"~p:~p~n~p~n\", [C, E, S]), erlang:halt(1) end.")
        started = time.monotonic()
        result = subprocess.run(self._erl() + ["-eval", code], cwd=self.dir, env=self.env(),
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or not lines:
            raise RuntimeError(f"ejabberd provisioning failed ({result.returncode}):\n"
                               f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        with open(marker, "w") as f:
            f.write(lines[-1])
        return dict(json.loads(lines[-1]), seconds=round(time.monotonic() - started, 1))

    def _terms_head(self) -> str:
        stored, server = scram_material(self.mechanism, self.iterations)
        return (f"{{host, {_erlang_binary(DOMAIN)}}}.\n"
                f"{{scram, {self.HASH[self.mechanism]}, {_erlang_binary(_b64(stored))}, "
                f"{_erlang_binary(_b64(server))}, {_erlang_binary(_b64(SALT))}, "
                f"{self.iterations}}}.\n")

    def provision(self, groups):
        terms = self._terms_head() + "".join(
            f"{{users, {_erlang_binary(prefix)}, {count}}}.\n"
            for prefix, count in groups.items())
        return self._run_erlang(terms)

    def provision_rosters(self, prefix, users, contacts):
        lines = [self._terms_head(), f"{{users, {_erlang_binary(prefix)}, {users}}}.\n"]
        for i in range(users):
            items = ", ".join(_erlang_binary(f"{prefix}{j}")
                              for j in sorted(ring_contacts(i, users, contacts)))
            lines.append(f"{{roster, {_erlang_binary(f'{prefix}{i}')}, [{items}]}}.\n")
        self._run_erlang("".join(lines))
        return "files"

    def version(self):
        out = otp = ""
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "ejabberd"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            otp = subprocess.run(
                [shutil.which("erl") or "/usr/bin/erl", "-noshell", "-eval",
                 'io:format("~s/~s", [erlang:system_info(otp_release), '
                 'erlang:system_info(version)]), halt().'],
                capture_output=True, text=True, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
        release, _, erts = otp.partition("/")
        return (f"ejabberd {out or '?'} (Debian package, Erlang/OTP {release or '?'}, "
                f"erts {erts or '?'}, one scheduler, mnesia)")


def _start_time(pid: int) -> int | None:
    """The start time of process C{pid} (field 22 of /proc/PID/stat), None once it is gone:
    with the PID, it names one process even after the PID is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every process below C{pid}."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        parent = int(data[data.rindex(b")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            start = _start_time(child)
            if start is not None:
                found.append((child, start))
                todo.append(child)
    return found


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _erlang_string(text: str) -> str:
    """An Erlang string literal (ASCII text: paths and names made here)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _erlang_binary(text: str) -> str:
    return "<<" + _erlang_string(text) + ">>"


def _yaml(value) -> str:
    """A YAML flow value (JSON is YAML) for config strings, booleans, lists and maps."""
    return json.dumps(value)


def write_pie(path: str, iterations: int, prefix: str, users: int, contacts: int) -> None:
    """A XEP-0227 file: the ring's accounts (SCRAM-SHA-1 and -SHA-256 credentials of
    PASSWORD with SALT, no password) and their rosters (subscription both)."""
    b64 = _b64
    credentials = []
    for mechanism in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        stored, server = scram_material(mechanism, iterations)
        credentials.append(
            f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mechanism}'>"
            f"<iter-count>{iterations}</iter-count><salt>{b64(SALT)}</salt>"
            f"<server-key>{b64(server)}</server-key><stored-key>{b64(stored)}</stored-key>"
            "</scram-credentials>")
    credentials = "".join(credentials)
    with open(path, "w") as f:
        f.write(f"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>"
                f"<host jid='{DOMAIN}'>\n")
        for i in range(users):
            items = "".join(f"<item jid='{prefix}{j}@{DOMAIN}' subscription='both'/>"
                            for j in sorted(ring_contacts(i, users, contacts)))
            f.write(f"<user name='{prefix}{i}'>{credentials}"
                    f"<query xmlns='jabber:iq:roster'>{items}</query></user>\n")
        f.write("</host></server-data>\n")


def _encode(name: str) -> str:
    # util.datamanager: every non-alphanumeric byte becomes %xx.
    return "".join(c if c.isascii() and c.isalnum() else "".join(
        f"%{b:02x}" for b in c.encode()) for c in name)
