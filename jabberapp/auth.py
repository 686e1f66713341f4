"""
The internal auth provider: accounts in our own IAccountStore, credentials as SCRAM material.

Nothing here ever stores or logs a password. PBKDF2 is CPU-heavy, so every derivation runs
through the injected C{run_in_thread} (threads.deferToThread in production), never on the
reactor thread.
"""
import hashlib
import hmac
import os
from collections.abc import Callable

from twisted.internet import defer
from zope.interface import implementer

from jabberapp.interfaces import IAuthProvider
from jabberapp.sasl.scram import DEFAULT_ITERATIONS, ScramCredentials, derive, derive_all

# Which stored hash check_password tries, in order: the commonest first.
_CHECK_ORDER = ("sha256", "sha1", "sha512")

# Stand-in salt for unknown accounts, so they cost a full derivation like real ones.
_DUMMY_SALT = os.urandom(16)


def _verify(password: str, hash_name: str, credentials: ScramCredentials) -> bool:
    """Derive C{password} with the stored salt and iterations; compare in constant time.

    Runs in a thread. A password that PRECIS OpaqueString rejects cannot be anyone's.
    """
    try:
        candidate = derive(password, hash_name, credentials.salt, credentials.iterations)
    except ValueError:
        return False
    return hmac.compare_digest(candidate.stored_key, credentials.stored_key)


def _burn(password: str) -> bool:
    """Spend as long as a real check for an unknown account, then answer no. Runs in a thread."""
    hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "surrogatepass"), _DUMMY_SALT,
                        DEFAULT_ITERATIONS)
    return False


@implementer(IAuthProvider)
class InternalAuthProvider:
    """Checks passwords and supplies SCRAM material from an L{IAccountStore}."""

    def __init__(self, accounts, run_in_thread: Callable[..., defer.Deferred]):
        self._accounts = accounts
        self._run_in_thread = run_in_thread

    def get_scram(self, host, username, hash_name):
        """Deferred: the account's ScramCredentials for C{hash_name}, or None."""
        return defer.maybeDeferred(self._accounts.get_credentials, host, username, hash_name)

    @defer.inlineCallbacks
    def check_password(self, host, username, password):
        """Deferred: True when C{password} is the password of C{username} on C{host}.

        Uses the first stored hash of sha256, sha1, sha512; an unknown account costs one
        derivation too, so timing does not tell it apart from a wrong password.
        """
        for hash_name in _CHECK_ORDER:
            credentials = yield self.get_scram(host, username, hash_name)
            if credentials is not None:
                ok = yield self._run_in_thread(_verify, password, hash_name, credentials)
                return bool(ok)
        yield self._run_in_thread(_burn, password)
        return False

    def make_credentials(self, password, iterations=DEFAULT_ITERATIONS):
        """Deferred: dict hash name -> ScramCredentials for C{password} (one salt per hash).

        Fails with ValueError for a password PRECIS OpaqueString rejects or iterations < 4096.
        """
        return defer.maybeDeferred(self._run_in_thread, derive_all, password, iterations)
