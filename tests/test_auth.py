"""Tests for jabberapp.auth: the internal auth provider over an IAccountStore."""
import base64
import hashlib
import hmac

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp.auth import InternalAuthProvider
from jabberapp.interfaces import IAccountStore, IAuthProvider
from jabberapp.sasl import SASLContext, Success, create_mechanism
from jabberapp.sasl.scram import DEFAULT_ITERATIONS, HASHES, derive

HOST = "example.org"


@implementer(IAccountStore)
class MemoryAccounts:
    """A tiny in-memory IAccountStore: (host, username) -> {hash_name: ScramCredentials}."""

    def __init__(self):
        self.accounts = {}
        self.lookups = []

    def create(self, host, username, credentials):
        self.accounts[(host, username)] = dict(credentials)
        return defer.succeed(None)

    def get_credentials(self, host, username, hash_name):
        self.lookups.append((host, username, hash_name))
        return defer.succeed(self.accounts.get((host, username), {}).get(hash_name))

    def set_credentials(self, host, username, credentials):
        self.accounts[(host, username)] = dict(credentials)
        return defer.succeed(None)

    def delete(self, host, username):
        del self.accounts[(host, username)]
        return defer.succeed(None)

    def exists(self, host, username):
        return defer.succeed((host, username) in self.accounts)

    def list_users(self, host):
        return defer.succeed(sorted(u for h, u in self.accounts if h == host))


class FakeThreads:
    """A synchronous run_in_thread that records which functions were sent to 'the thread'."""

    def __init__(self):
        self.calls = []

    def __call__(self, fn, *args):
        self.calls.append(fn.__name__)
        return defer.succeed(fn(*args))


class InternalAuthProviderTests(SynchronousTestCase):

    def setUp(self):
        self.accounts = MemoryAccounts()
        self.threads = FakeThreads()
        self.provider = InternalAuthProvider(self.accounts, self.threads)

    def add(self, username, password, hashes=HASHES, iterations=4096):
        self.accounts.accounts[(HOST, username)] = {
            name: derive(password, name, iterations=iterations) for name in hashes}

    def test_verify_object(self):
        """InternalAuthProvider provides IAuthProvider (and the fake store IAccountStore)."""
        verifyObject(IAuthProvider, self.provider)
        verifyObject(IAccountStore, self.accounts)

    def test_make_credentials(self):
        """make_credentials() derives one credential per hash, in the thread."""
        creds = self.successResultOf(self.provider.make_credentials("pw"))
        self.assertEqual(sorted(creds), sorted(HASHES))
        self.assertEqual({c.iterations for c in creds.values()}, {DEFAULT_ITERATIONS})
        self.assertEqual(creds["sha256"], derive("pw", "sha256", creds["sha256"].salt))
        self.assertEqual(self.threads.calls, ["derive_all"])

    def test_make_credentials_iterations(self):
        """make_credentials() honours the iteration count and refuses fewer than 4096."""
        creds = self.successResultOf(self.provider.make_credentials("pw", iterations=5000))
        self.assertEqual({c.iterations for c in creds.values()}, {5000})
        self.failureResultOf(self.provider.make_credentials("pw", iterations=1000), ValueError)

    def test_make_credentials_bad_password(self):
        """A password OpaqueString refuses fails the Deferred with ValueError."""
        self.failureResultOf(self.provider.make_credentials(""), ValueError)
        self.failureResultOf(self.provider.make_credentials("a\x00b"), ValueError)

    def test_check_password(self):
        """The right password is True, a wrong one False; derivation runs in the thread."""
        self.add("juliet", "r0m30")
        self.assertIs(self.successResultOf(self.provider.check_password(HOST, "juliet", "r0m30")),
                      True)
        self.assertIs(self.successResultOf(self.provider.check_password(HOST, "juliet", "r0m31")),
                      False)
        self.assertEqual(self.threads.calls, ["_verify", "_verify"])

    def test_check_password_prepares(self):
        """The candidate is prepared like the stored password (non-ASCII space maps to ASCII)."""
        self.add("juliet", "r0m30 x")
        self.assertTrue(self.successResultOf(
            self.provider.check_password(HOST, "juliet", "r0m30\u00a0x")))

    def test_check_uses_sha256_first(self):
        """check_password() reads the SHA-256 credentials when they exist."""
        self.add("juliet", "r0m30")
        self.successResultOf(self.provider.check_password(HOST, "juliet", "r0m30"))
        self.assertEqual(self.accounts.lookups, [(HOST, "juliet", "sha256")])

    def test_check_falls_back(self):
        """Without SHA-256 credentials check_password() uses SHA-1, then SHA-512."""
        self.add("old", "pw", hashes=("sha1",))
        self.add("odd", "pw", hashes=("sha512",))
        self.assertTrue(self.successResultOf(self.provider.check_password(HOST, "old", "pw")))
        self.assertTrue(self.successResultOf(self.provider.check_password(HOST, "odd", "pw")))
        self.assertFalse(self.successResultOf(self.provider.check_password(HOST, "odd", "px")))
        self.assertEqual([l[2] for l in self.accounts.lookups],
                         ["sha256", "sha1", "sha256", "sha1", "sha512", "sha256", "sha1", "sha512"])

    def test_check_uses_stored_salt_and_iterations(self):
        """The candidate is derived with the stored salt and iteration count."""
        self.accounts.accounts[(HOST, "juliet")] = {
            "sha256": derive("pw", "sha256", b"0123456789abcdef", 4500)}
        self.assertTrue(self.successResultOf(self.provider.check_password(HOST, "juliet", "pw")))

    def test_unknown_user(self):
        """An unknown user is False after a derivation's worth of work in the thread."""
        self.assertIs(self.successResultOf(self.provider.check_password(HOST, "nobody", "pw")),
                      False)
        self.assertEqual(self.threads.calls, ["_burn"])

    def test_other_host(self):
        """Accounts are per host: the same name on another host is unknown."""
        self.add("juliet", "r0m30")
        self.assertFalse(self.successResultOf(
            self.provider.check_password("example.com", "juliet", "r0m30")))

    def test_unpreparable_password(self):
        """A password OpaqueString refuses is simply wrong, not an error."""
        self.add("juliet", "r0m30")
        for password in ("", "r0m30\x00"):
            self.assertIs(self.successResultOf(
                self.provider.check_password(HOST, "juliet", password)), False)

    def test_store_error(self):
        """A storage failure fails check_password's Deferred with that error."""
        self.accounts.get_credentials = lambda *a: defer.fail(RuntimeError("db down"))
        self.failureResultOf(self.provider.check_password(HOST, "juliet", "pw"), RuntimeError)

    def test_get_scram(self):
        """get_scram() returns the stored credentials for the hash, or None."""
        self.add("juliet", "r0m30")
        stored = self.accounts.accounts[(HOST, "juliet")]["sha1"]
        self.assertEqual(self.successResultOf(self.provider.get_scram(HOST, "juliet", "sha1")),
                         stored)
        self.assertIsNone(self.successResultOf(self.provider.get_scram(HOST, "romeo", "sha1")))
        self.assertEqual(self.threads.calls, [])

    def test_plain_end_to_end(self):
        """PLAIN authenticates against credentials made by make_credentials()."""
        creds = self.successResultOf(self.provider.make_credentials("r0m30"))
        self.successResultOf(self.accounts.create(HOST, "juliet", creds))
        ctx = SASLContext(host=HOST, auth=self.provider, secure=True, channel_bindings={})
        result = self.successResultOf(create_mechanism("PLAIN", ctx).start(b"\0Juliet\0r0m30"))
        self.assertEqual(result, Success("juliet"))

    def test_scram_end_to_end(self):
        """SCRAM-SHA-256 authenticates against credentials made by make_credentials()."""
        creds = self.successResultOf(self.provider.make_credentials("r0m30"))
        self.successResultOf(self.accounts.create(HOST, "juliet", creds))
        ctx = SASLContext(host=HOST, auth=self.provider, secure=True, channel_bindings={})
        mech = create_mechanism("SCRAM-SHA-256", ctx)
        first_bare = "n=juliet,r=abcdef"
        server_first = self.successResultOf(mech.start(b"n,," + first_bare.encode())).data
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha256", b"r0m30", base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
        result = self.successResultOf(mech.step(f"{without_proof},p={proof}".encode()))
        self.assertEqual(result.username, "juliet")
