"""Tests for jabberappctl (jabberapp.admin.cli), run as a real subprocess on a temporary database."""
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

import jabberapp
from jabberapp.auth import InternalAuthProvider
from jabberapp.config import StorageConfig
from jabberapp.sasl.scram import HASHES
from jabberapp.storage import open_storage

# The directory holding the jabberapp under test, so the subprocess imports the same code.
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(jabberapp.__file__)))

ITERATIONS = 4096   # the lowest count the config accepts: keeps PBKDF2 cheap in tests

CONFIG = """\
[server]
hosts = localhost, example.org
data_dir = {data_dir}

[auth]
scram_iterations = {iterations}

[storage]
path = {db}
"""


def run_sync(fn, *args):
    """A run_in_thread that runs C{fn} at once: the tests need no thread for PBKDF2."""
    return defer.maybeDeferred(fn, *args)


class CtlTestCase(TestCase):
    """Helpers: a temporary config and database, and jabberappctl run as a subprocess."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="jabberappctl-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.data_dir = os.path.join(self.dir, "data")
        self.db = os.path.join(self.dir, "db", "jabberapp.sqlite")
        self.config = self.write_config(CONFIG.format(
            data_dir=self.data_dir, iterations=ITERATIONS, db=self.db))

    def write_config(self, text, name="jabberapp.ini"):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def ctl(self, *args, stdin=None, config=True):
        """Run jabberappctl with C{args}; C{stdin} is bytes, or None for an empty stdin."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [SOURCE_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        command = [sys.executable, "-m", "jabberapp.admin.cli"]
        if config:
            command += ["--config", self.config if config is True else config]
        return subprocess.run(
            command + list(args), input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True, cwd=self.dir, env=env, timeout=120)

    def ok(self, *args, stdin=None):
        """Run jabberappctl, assert success with nothing on stderr, and return its stdout."""
        result = self.ctl(*args, stdin=stdin)
        self.assertEqual((result.returncode, result.stderr.decode()), (0, ""))
        return result.stdout.decode()

    def fails(self, *args, stdin=None, config=True, status=1):
        """Run jabberappctl, assert it failed with one error line, and return that line."""
        result = self.ctl(*args, stdin=stdin, config=config)
        stderr = result.stderr.decode()
        self.assertEqual(result.returncode, status, stderr)
        self.assertNotIn("Traceback", stderr)
        self.assertEqual(result.stdout, b"")
        self.assertTrue(stderr.startswith("jabberappctl: "), stderr)
        self.assertEqual(stderr.count("\n"), 1, stderr)
        self.assertTrue(stderr.endswith("\n"), stderr)
        return stderr[len("jabberappctl: "):-1]

    @defer.inlineCallbacks
    def storage(self):
        """Deferred: the test database opened in this process, closed at cleanup."""
        storage = yield open_storage(StorageConfig("sqlite", self.db), reactor)
        self.addCleanup(storage.close)
        return storage

    @defer.inlineCallbacks
    def check_password(self, host, username, password):
        """Deferred: InternalAuthProvider's verdict on C{password}, from this process."""
        storage = yield self.storage()
        auth = InternalAuthProvider(storage.accounts, run_sync)
        ok = yield auth.check_password(host, username, password)
        return ok


class AddUserTests(CtlTestCase):
    """jabberappctl adduser."""

    @defer.inlineCallbacks
    def test_password_argument(self):
        """adduser with a PASSWORD argument creates an account that password opens."""
        self.assertEqual(self.ok("adduser", "alice@localhost", "s3cret pass"),
                         "added alice@localhost\n")
        self.assertTrue((yield self.check_password("localhost", "alice", "s3cret pass")))
        self.assertFalse((yield self.check_password("localhost", "alice", "s3cret")))

    @defer.inlineCallbacks
    def test_password_stdin(self):
        """Without PASSWORD, the first line of a non-terminal stdin is the password."""
        self.assertEqual(self.ok("adduser", "Bob@Example.org", stdin=b"from stdin\r\nnext\n"),
                         "added bob@example.org\n")
        self.assertTrue((yield self.check_password("example.org", "bob", "from stdin")))

    @defer.inlineCallbacks
    def test_scram_material_only(self):
        """The account gets SCRAM material for every hash at the configured count, no password."""
        self.ok("adduser", "alice@localhost", "PlainTextNeverStored")
        storage = yield self.storage()
        for hash_name in HASHES:
            credentials = yield storage.accounts.get_credentials("localhost", "alice",
                                                                 hash_name)
            self.assertEqual(credentials.iterations, ITERATIONS)
        with open(self.db, "rb") as f:
            self.assertNotIn(b"PlainTextNeverStored", f.read())

    def test_config_after_command(self):
        """--config may also follow the command."""
        result = self.ctl("adduser", "alice@localhost", "pw", "--config", self.config,
                          config=False)
        self.assertEqual((result.returncode, result.stdout), (0, b"added alice@localhost\n"))

    def test_duplicate(self):
        """Adding an existing account fails with one line and changes nothing."""
        self.ok("adduser", "alice@localhost", "one")
        self.assertEqual(self.fails("adduser", "ALICE@localhost", "two"),
                         "alice@localhost already exists")

    def test_unknown_host(self):
        """A JID of a host this server does not serve is refused, naming the served hosts."""
        self.assertEqual(self.fails("adduser", "alice@elsewhere.net", "pw"),
                         "'elsewhere.net' is not a host of this server "
                         "(hosts: localhost, example.org)")

    def test_invalid_jid(self):
        """An unparseable JID is refused with the reason."""
        self.assertEqual(self.fails("adduser", "@localhost", "pw"),
                         "invalid JID '@localhost': localpart is empty")

    def test_not_a_bare_user_jid(self):
        """A domain JID and a full JID are refused: accounts are bare user JIDs."""
        self.assertIn("expected user@host", self.fails("adduser", "localhost", "pw"))
        self.assertIn("has a resource", self.fails("adduser", "alice@localhost/phone", "pw"))

    def test_empty_password(self):
        """An empty line on stdin is an empty password, which is refused."""
        self.assertEqual(self.fails("adduser", "alice@localhost", stdin=b"\n"),
                         "the password must not be empty")

    def test_no_password(self):
        """No PASSWORD and nothing on stdin is an error, not an empty password."""
        self.assertIn("no password on standard input", self.fails("adduser", "alice@localhost"))

    def test_unreadable_stdin(self):
        """A password line that is not UTF-8 is refused."""
        self.assertIn("not UTF-8", self.fails("adduser", "alice@localhost", stdin=b"\xff\xfe\n"))

    def test_memory_backend(self):
        """The volatile memory backend is refused: an account added there would vanish."""
        config = self.write_config(
            f"[server]\ndata_dir = {self.data_dir}\n[storage]\nbackend = memory\n", "mem.ini")
        self.assertIn("backend is memory",
                      self.fails("adduser", "alice@localhost", "pw", config=config))

    @defer.inlineCallbacks
    def test_server_running(self):
        """An account added while another process has the database open is visible to it."""
        storage = yield self.storage()
        self.assertFalse((yield storage.accounts.exists("localhost", "alice")))
        self.ok("adduser", "alice@localhost", "pw")
        self.assertTrue((yield storage.accounts.exists("localhost", "alice")))


class AccountTests(CtlTestCase):
    """jabberappctl passwd, deluser and users."""

    @defer.inlineCallbacks
    def test_passwd(self):
        """passwd replaces the credentials: the new password works and the old one no longer."""
        self.ok("adduser", "alice@localhost", "old password")
        self.assertEqual(self.ok("passwd", "alice@localhost", stdin=b"new password\n"),
                         "changed the password of alice@localhost\n")
        self.assertTrue((yield self.check_password("localhost", "alice", "new password")))
        self.assertFalse((yield self.check_password("localhost", "alice", "old password")))

    def test_passwd_no_such_user(self):
        """passwd for a missing account fails with one line."""
        self.assertEqual(self.fails("passwd", "nobody@localhost", "pw"),
                         "no such user nobody@localhost")

    @defer.inlineCallbacks
    def test_deluser(self):
        """deluser removes the account and all its data; deleting it again fails."""
        self.ok("adduser", "alice@localhost", "pw")
        self.ok("adduser", "bob@localhost", "pw")
        storage = yield self.storage()
        for user in ("alice", "bob"):
            yield storage.keyvalue("roster").set("localhost", user, "items", [user])
            yield storage.archive("offline").append("localhost", user, "<message/>", 1.0)
        self.assertEqual(self.ok("deluser", "alice@localhost"), "deleted alice@localhost\n")
        self.assertEqual(self.fails("deluser", "alice@localhost"),
                         "no such user alice@localhost")
        self.assertFalse((yield storage.accounts.exists("localhost", "alice")))
        self.assertEqual((yield storage.keyvalue("roster").keys("localhost", "alice")), [])
        self.assertEqual((yield storage.archive("offline").count("localhost", "alice")), 0)
        self.assertTrue((yield storage.accounts.exists("localhost", "bob")))
        self.assertEqual((yield storage.keyvalue("roster").get("localhost", "bob", "items")),
                         ["bob"])
        self.assertEqual((yield storage.archive("offline").count("localhost", "bob")), 1)

    def test_users(self):
        """users prints the usernames of one host, one a line, sorted."""
        for jid in ("carol@localhost", "alice@localhost", "dave@example.org"):
            self.ok("adduser", jid, "pw")
        self.assertEqual(self.ok("users", "localhost"), "alice\ncarol\n")
        self.assertEqual(self.ok("users", "EXAMPLE.ORG"), "dave\n")

    def test_users_unknown_host(self):
        """users for a host this server does not serve fails with one line naming the hosts."""
        self.assertIn("(hosts: localhost, example.org)", self.fails("users", "elsewhere.net"))

    def test_usage_error(self):
        """A missing command is a usage error: exit status 2, no traceback."""
        result = self.ctl()
        self.assertEqual(result.returncode, 2)
        self.assertNotIn(b"Traceback", result.stderr)


class CheckConfigTests(CtlTestCase):
    """jabberappctl check-config, and configuration errors of every command."""

    def test_good(self):
        """A valid configuration is reported OK with its hosts, and nothing is written."""
        self.assertEqual(self.ok("check-config"), "configuration OK: localhost, example.org\n")
        self.assertEqual(os.listdir(self.dir), ["jabberapp.ini"])

    def test_defaults(self):
        """Without --config the built-in defaults are checked, as the server would use them."""
        result = self.ctl("check-config", config=False)
        self.assertEqual((result.returncode, result.stdout), (0, b"configuration OK: localhost\n"))

    def test_unknown_key(self):
        """An unknown key is one error line naming the section and key, exit status 1."""
        config = self.write_config("[server]\nhots = localhost\n", "typo.ini")
        message = self.fails("check-config", config=config)
        self.assertIn("[server] hots: unknown option", message)

    def test_unknown_extension(self):
        """An extension list naming an extension that is not installed is refused."""
        config = self.write_config("[server]\nextensions = no_such_thing\n", "ext.ini")
        self.assertIn("no_such_thing", self.fails("check-config", config=config))

    def test_bad_certificate(self):
        """A configured certificate the server could not load is refused, naming the host."""
        not_pem = self.write_config("not a certificate\n", "cert.pem")
        config = self.write_config(
            f"[server]\ndata_dir = {self.data_dir}\n"
            f"[tls]\ncertificate = {not_pem}\nprivate_key = {not_pem}\n", "tls.ini")
        self.assertEqual(self.fails("check-config", config=config),
                         f"[tls] localhost: {not_pem}: not a PEM certificate file")

    def test_unknown_storage_backend(self):
        """A storage backend no plugin provides is refused without opening anything."""
        config = self.write_config(
            f"[server]\ndata_dir = {self.data_dir}\n[storage]\nbackend = nosuch\n", "db.ini")
        self.assertIn("unknown storage backend 'nosuch'",
                      self.fails("check-config", config=config))
        self.assertFalse(os.path.exists(self.data_dir))

    def test_missing_file(self):
        """A config file that does not exist is one error line naming it."""
        missing = os.path.join(self.dir, "missing.ini")
        message = self.fails("check-config", config=missing)
        self.assertTrue(message.startswith(f"{missing}: cannot read"), message)

    def test_bad_config_account_command(self):
        """Account commands validate the configuration too and fail with the same line."""
        config = self.write_config("[server]\nhots = localhost\n", "typo.ini")
        self.assertIn("[server] hots: unknown option",
                      self.fails("adduser", "alice@localhost", "pw", config=config))
