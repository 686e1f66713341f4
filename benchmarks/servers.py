"""
The two servers under test, started with equivalent settings on loopback.

Both get: the same self-signed certificate (EC P-256) for the benchmark host, TLS 1.3 (the
generator allows nothing else), STARTTLS required, SCRAM with the same iteration count and
the same salted credentials for every account, no rate limits, a 256 KiB stanza limit,
logging at warning level, TCP_NODELAY on client sockets, and core 0 (``taskset -c 0``).

- Prosody (Debian package): its own config file, data directory and ports under the work
  directory; the system service, if any, is never touched. Accounts and rosters are written
  straight into its internal storage (one Lua file per account, as mod_storage_internal
  writes them), which takes well under a second for 10 000 accounts. ``nagle = false`` in
  network_settings gives TCP_NODELAY (Prosody's default keeps Nagle on).
- jabberapp (this checkout, on PYTHONPATH): accounts through its own storage API
  (benchmarks/provision_jabberapp.py); the presence ring's accounts and rosters through
  `jabberappctl import` (XEP-0227) where the revision has it, else over XMPP by the
  generator (scenarios.subscribe_ring). jabberapp does not set TCP_NODELAY itself, so the
  benchmark starts twistd through benchmarks/jabberapp_launch.py, which turns it on for
  accepted sockets (``--jabberapp-nodelay off`` measures it as shipped).

Only processes started here are ever stopped, by PID.
"""
from __future__ import annotations

import datetime
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
        self.dir = os.path.join(workdir, self.name)
        self.iterations = iterations
        self.mechanism = mechanism
        self.cpu = cpu
        self.port = free_port()
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

    def start(self, timeout: float = 30.0) -> int:
        self.port = free_port()
        self.write_config()
        out = open(self.log_path, "ab")
        cmd = ["taskset", "-c", self.cpu] + self.command()
        self.process = subprocess.Popen(cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env())
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
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

    def __init__(self, workdir, iterations, mechanism, cpu="0", nodelay=True, src=ROOT):
        super().__init__(workdir, iterations, mechanism, cpu)
        self.nodelay = nodelay
        self.src = src                    # the jabberapp source tree measured
        self.config_path = os.path.join(self.dir, "jabberapp.ini")
        self.data_dir = os.path.join(self.dir, "data")
        self._introspected = None

    def env(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.src, env.get("PYTHONPATH")) if p)
        env["JABBERAPP_BENCH_NODELAY"] = "1" if self.nodelay else "0"
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

    def command(self):
        return [sys.executable, os.path.join(ROOT, "benchmarks", "jabberapp_launch.py"),
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
        if "lock_new_rooms" in sections.get("extension:muc", ()):
            # Rooms open on first join, as Prosody's with muc_room_locking = false.
            extra += "\n[extension:muc]\nlock_new_rooms = no\n"
        with open(self.config_path, "w") as f:
            f.write(f"""\
; generated by benchmarks/servers.py
{extra}
[server]
hosts = {DOMAIN}
data_dir = {self.data_dir}
log_level = warn

[c2s]
interface = 127.0.0.1
port = {self.port}
direct_tls_port = 0
require_encryption = yes
max_stanza_size = 262144

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
    "csi": "csi_simple", "stream_management": "smacks", "smacks": "smacks", "pep": "pep",
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
        modules = " ".join(f'"{m}";' for m in self.modules)
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


def write_pie(path: str, iterations: int, prefix: str, users: int, contacts: int) -> None:
    """A XEP-0227 file: the ring's accounts (SCRAM-SHA-1 and -SHA-256 credentials of
    PASSWORD with SALT, no password) and their rosters (subscription both)."""
    import base64

    def b64(data):
        return base64.b64encode(data).decode("ascii")

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
