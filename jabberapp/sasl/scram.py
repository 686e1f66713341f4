"""
SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512 and their -PLUS variants, server side.

RFC 5802 (SCRAM), RFC 7677 (SCRAM-SHA-256), RFC 5929 and RFC 9266 (channel binding types
tls-server-end-point, tls-exporter), RFC 8265 (passwords are PRECIS OpaqueString).

Theory of operation. An exchange is two round trips:

    client-first   n,,n=user,r=<cnonce>                  -> start() (or step() after an
    server-first   r=<cnonce><snonce>,s=<salt>,i=<iter>  <- Challenge   empty Challenge)
    client-final   c=<b64(gs2 header + cb data)>,r=<nonce>,p=<proof>    -> step()
    server-final   v=<server signature>                  <- Success.data

Every check that does not depend on the account (syntax, GS2 flag, channel binding type,
username preparation, authzid) fails at once. An unknown account is answered with a
deterministic fake salt and the usual iteration count, and fails only after the
client-final message, with the same condition as a wrong password: nothing before that
tells the client whether the account exists.

Channel binding negotiation. -PLUS is offered whenever the stream has a binding to offer
(tls-exporter on TLS 1.3, tls-server-end-point from our certificate), and XEP-0440 lists the
types.
A client asking for another type (slixmpp 1.8 only knows tls-unique, undefined on TLS 1.3 by
RFC 9266) gets malformed-request; a client sending the GS2 flag 'y' ("I bind, you do not")
although -PLUS was offered gets not-authorized (RFC 5802 §6: a downgrade). The server cannot
tell a client that lacks a common type from one whose mechanism list a man in the middle
rewrote, and anything a client sent earlier on the stream could have been sent by that man in
the middle, so 'y' is never excused while -PLUS is offered: that keeps the downgrade check for
XEP-0440 clients, which never say 'y' once they saw -PLUS (they bind with a listed type, or say
'n' and check the XEP-0474 hash). None of these refusals is counted by the failed-login
throttle or towards closing the stream, since no password was checked, so such a client goes on
to a mechanism it can use (PLAIN over TLS) and logs in. An operator who disables PLAIN can
admit it by also leaving out the -PLUS mechanisms ([auth] mechanisms): the stream then offers
no binding and 'y' is right.

What the other servers do: Prosody 13 (util/sasl/scram.lua, mod_saslauth.lua) offers
tls-exporter on TLS 1.3, refuses an unsupported type and 'y' while it offers a binding, and
lets the client fall back to PLAIN with no failure limit by default; ejabberd 24 to 26.02
accepted 'y' whatever it offered, a hole its xmpp library closed in 1.13.1 (ejabberd 26.03,
xmpp_sasl_scram.erl): 'y' is refused unless every -PLUS is disabled; it also sends the XEP-0474
'h' hash, and counts failures only in mod_fail2ban (20 an hour by default).
"""
import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import precis_i18n
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from jabberapp.interfaces import ISASLMechanism
from jabberapp.jid import InvalidJID, prep_localpart
from jabberapp.sasl_exchange import (Challenge, SASLContext, SASLFailure, Success,
                                      authzid_matches)

HASHES = ("sha1", "sha256", "sha512")
DEFAULT_ITERATIONS = 10000
# RFC 5802 §5.1 and RFC 7677 §4: the iteration count SHOULD be at least 4096.
MIN_ITERATIONS = 4096
SALT_LENGTH = 16
# Far above any legitimate message (a 1023-byte localpart escaped three times over, plus nonces
# and proofs) and far below anything that could hurt.
MAX_MESSAGE_LENGTH = 8192

_MECHANISM_HASH_NAMES = {"sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}

_OPAQUE_STRING = precis_i18n.get_profile("OpaqueString")

# Secret behind the fake salts of unknown accounts. Per process: a restart changes the fake
# salts, which an observer could notice, but never reveals a real one.
_FAKE_SALT_SECRET = os.urandom(32)

_CB_NAME = re.compile(r"[A-Za-z0-9.\-]+\Z")
_ATTR_VAL = re.compile(r"[A-Za-z]=.+\Z", re.DOTALL)

log = Logger()


@dataclass(frozen=True)
class ScramCredentials:
    """The SCRAM material stored for one account and one hash (RFC 5802 §3); no password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def prep_password(password: str) -> str:
    """Prepare C{password} with the PRECIS OpaqueString profile (RFC 8265 §4.2).

    Raises ValueError naming the rule broken; the message never contains the password.
    """
    if not isinstance(password, str):
        raise TypeError("the password must be a str")
    try:
        return _OPAQUE_STRING.enforce(password)
    except UnicodeError as e:
        reason = getattr(e, "reason", "")
        if reason.endswith("/empty"):
            message = "the password must not be empty"
        else:
            rule = reason.split("/")[-1] or "invalid"
            message = (f"the password is not allowed by the PRECIS OpaqueString profile "
                       f"(RFC 8265): {rule} character at position {getattr(e, 'start', '?')}")
        # 'from None': the original exception holds the password itself.
        raise ValueError(message) from None


def derive(password: str, hash_name: str, salt: bytes | None = None,
           iterations: int = DEFAULT_ITERATIONS) -> ScramCredentials:
    """The L{ScramCredentials} of C{password} for C{hash_name} (one of L{HASHES}).

    A random 16-byte salt is drawn when C{salt} is None. CPU-heavy (PBKDF2): run it in a
    thread. Raises ValueError for an unprepareable password, an unknown hash, an empty salt
    or fewer than 4096 iterations.
    """
    if hash_name not in HASHES:
        raise ValueError(f"unknown SCRAM hash {hash_name!r}; expected one of {HASHES}")
    if not isinstance(iterations, int) or iterations < MIN_ITERATIONS:
        raise ValueError(f"SCRAM iteration count must be at least {MIN_ITERATIONS}")
    if salt is None:
        salt = os.urandom(SALT_LENGTH)
    elif not salt:
        raise ValueError("the SCRAM salt must not be empty")
    salted = hashlib.pbkdf2_hmac(hash_name, prep_password(password).encode("utf-8"),
                                 salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    return ScramCredentials(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.new(hash_name, client_key).digest(),
        server_key=hmac.digest(salted, b"Server Key", hash_name),
    )


def derive_all(password: str, iterations: int = DEFAULT_ITERATIONS) -> dict[str, ScramCredentials]:
    """L{derive} C{password} once per hash in L{HASHES}, each with its own random salt."""
    return {name: derive(password, name, iterations=iterations) for name in HASHES}


def _default_nonce() -> str:
    # 144 random bits; base64 never contains ','.
    return base64.b64encode(os.urandom(18)).decode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str, what: str) -> bytes:
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SASLFailure("malformed-request", f"{what} is not valid base64") from None
    if not data:
        raise SASLFailure("malformed-request", f"{what} is empty")
    return data


def _decode_message(data: bytes, what: str) -> str:
    if not isinstance(data, bytes):
        raise TypeError("SASL data must be bytes")
    if not data:
        raise SASLFailure("malformed-request", f"empty {what}")
    if len(data) > MAX_MESSAGE_LENGTH:
        raise SASLFailure("malformed-request", f"{what} too long")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 6120 §6.5.2 incorrect-encoding is about the base64 layer; a SCRAM message that
        # is not UTF-8 breaks the mechanism's syntax (RFC 5802 §7).
        raise SASLFailure("malformed-request", f"{what} is not UTF-8") from None


def _saslname(value: str, what: str) -> str:
    """Decode an RFC 5802 saslname: '=2C' is ',', '=3D' is '=', any other '=' is an error."""
    if not value:
        raise SASLFailure("malformed-request", f"empty {what}")
    if "\x00" in value:
        raise SASLFailure("malformed-request", f"NUL in {what}")
    parts = value.split("=")
    out = [parts[0]]
    for part in parts[1:]:
        if part.startswith("2C"):
            out.append("," + part[2:])
        elif part.startswith("3D"):
            out.append("=" + part[2:])
        else:
            raise SASLFailure("malformed-request", f"invalid '=' escape in {what}")
    return "".join(out)


def _fake_credentials(host: str, username: str, hash_name: str) -> ScramCredentials:
    """Credentials for an unknown account: a stable salt no client can tell from a real one."""
    salt = hmac.digest(_FAKE_SALT_SECRET,
                       "\x00".join((hash_name, host, username)).encode("utf-8"),
                       "sha256")[:SALT_LENGTH]
    size = hashlib.new(hash_name).digest_size
    return ScramCredentials(salt=salt, iterations=DEFAULT_ITERATIONS,
                            stored_key=os.urandom(size), server_key=os.urandom(size))


# Exchange states.
_INITIAL = "initial"            # start() not called yet
_WANT_FIRST = "want-first"      # empty challenge sent, waiting for client-first
_FETCHING = "fetching"          # waiting for the auth provider
_WANT_FINAL = "want-final"      # server-first sent, waiting for client-final
_DONE = "done"                  # succeeded or failed: every further call fails


@implementer(ISASLMechanism)
class ScramMechanism:
    """One server-side SCRAM exchange (RFC 5802) for one hash, with or without channel binding.

    C{nonce_factory} returns the server nonce (printable ASCII without ','); tests inject it
    to replay the RFC examples. C{username} is the prepared localpart once the client-first
    message named a valid one (whether or not the account exists), else None: the stream
    uses it to throttle failures per account.
    """

    def __init__(self, hash_name: str, plus: bool, ctx: SASLContext, *,
                 nonce_factory: Callable[[], str] = _default_nonce):
        if hash_name not in HASHES:
            raise ValueError(f"unknown SCRAM hash {hash_name!r}")
        if plus and not ctx.channel_bindings:
            raise ValueError("a -PLUS mechanism needs channel binding data")
        self.name = f"SCRAM-{_MECHANISM_HASH_NAMES[hash_name]}" + ("-PLUS" if plus else "")
        self.hash_name = hash_name
        self.plus = plus
        self._ctx = ctx
        self._nonce_factory = nonce_factory
        self._digest_size = hashlib.new(hash_name).digest_size
        self._state = _INITIAL
        self.username = None

    # ISASLMechanism

    def start(self, initial):
        """Begin with the client-first message, or ask for it with an empty challenge."""
        if self._state != _INITIAL:
            return self._fail(SASLFailure("malformed-request", "exchange already started"))
        if initial is None:
            self._state = _WANT_FIRST
            return defer.succeed(Challenge(b""))
        return self._guard(self._client_first, initial)

    def step(self, response):
        """Continue with the client-first (after an empty challenge) or client-final message."""
        if self._state == _WANT_FIRST:
            return self._guard(self._client_first, response)
        if self._state == _WANT_FINAL:
            return self._guard(self._client_final, response)
        return self._fail(SASLFailure("malformed-request", "unexpected response"))

    # Helpers

    def _fail(self, failure):
        self._state = _DONE
        return defer.fail(failure)

    def _guard(self, fn, data):
        d = defer.maybeDeferred(fn, data)
        d.addErrback(self._on_error)
        return d

    def _on_error(self, failure):
        self._state = _DONE
        if failure.check(SASLFailure):
            return failure
        log.failure("SCRAM exchange failed unexpectedly", failure)
        raise SASLFailure("temporary-auth-failure")

    # client-first-message

    def _client_first(self, data):
        self._state = _FETCHING
        message = _decode_message(data, "client-first-message")

        # gs2-header = gs2-cbind-flag "," [ authzid ] ","
        flag, sep1, rest = message.partition(",")
        authzid_field, sep2, bare = rest.partition(",")
        if not (sep1 and sep2):
            raise SASLFailure("malformed-request", "missing GS2 header")
        self._gs2_header = message[:len(flag) + len(authzid_field) + 2]
        self._check_cbind_flag(flag)

        if authzid_field:
            if not authzid_field.startswith("a="):
                raise SASLFailure("malformed-request", "invalid authzid in GS2 header")
            authzid = _saslname(authzid_field[2:], "authzid")
        else:
            authzid = None

        # client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
        attrs = bare.split(",")
        if attrs[0].startswith("m="):
            raise SASLFailure("malformed-request", "mandatory extensions are not supported")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise SASLFailure("malformed-request", "expected n= and r= attributes")
        for ext in attrs[2:]:
            if not _ATTR_VAL.match(ext):
                raise SASLFailure("malformed-request", "invalid attribute")
        raw_username = _saslname(attrs[0][2:], "username")
        client_nonce = attrs[1][2:]
        if not client_nonce or any(not "\x21" <= c <= "\x7e" for c in client_nonce):
            raise SASLFailure("malformed-request", "invalid client nonce")

        try:
            username = prep_localpart(raw_username)
        except InvalidJID:
            # No such account can exist, and anyone can see that: failing now leaks nothing.
            raise SASLFailure("not-authorized") from None
        self.username = username
        if authzid is not None and not authzid_matches(authzid, username, self._ctx.host):
            raise SASLFailure("invalid-authzid")

        self._client_first_bare = bare
        self._client_nonce = client_nonce
        d = defer.maybeDeferred(self._ctx.auth.get_scram, self._ctx.host, username,
                                self.hash_name)
        d.addCallback(self._server_first)
        return d

    def _check_cbind_flag(self, flag):
        # Every refusal here is decided by the GS2 header alone, before any account is looked
        # at: no password was tried, so none is counted as a guess (counted=False). See
        # "Channel binding negotiation" in the module docstring.
        if flag.startswith("p="):
            cb_name = flag[2:]
            if not _CB_NAME.match(cb_name):
                raise SASLFailure("malformed-request", "invalid channel binding name")
            if not self.plus:
                raise SASLFailure("malformed-request",
                                  f"channel binding requested with {self.name}", counted=False)
            if cb_name not in self._ctx.channel_bindings:
                # RFC 5802 'unsupported-channel-binding-type': the request cannot be processed
                # as sent (malformed-request; not-authorized would suggest bad credentials).
                # COMPAT: slixmpp 1.8 asks for tls-unique, which RFC 9266 leaves undefined on
                # TLS 1.3 and we never offer; it then tries the next mechanism.
                raise SASLFailure("malformed-request",
                                  f"unsupported channel binding type {cb_name!r}", counted=False)
            self._cb_data = self._ctx.channel_bindings[cb_name]
        elif flag in ("n", "y"):
            if self.plus:
                raise SASLFailure("malformed-request", f"{self.name} requires channel binding",
                                  counted=False)
            if flag == "y" and self._ctx.channel_bindings:
                # RFC 5802 §6: the client binds and thinks we do not, yet we offered -PLUS:
                # someone may have removed it from the mechanism list. Refused whatever the
                # client tried before on this stream (a MITM could have tried it too).
                # COMPAT: slixmpp 1.8 sends 'y' on every SCRAM without -PLUS over TLS after
                # its tls-unique attempts failed, then falls back to PLAIN.
                raise SASLFailure("not-authorized", "channel binding is offered: use -PLUS",
                                  counted=False)
            self._cb_data = b""
        else:
            raise SASLFailure("malformed-request", "invalid GS2 channel binding flag")

    # server-first-message

    def _server_first(self, credentials):
        if self._state != _FETCHING:
            raise SASLFailure("malformed-request", "unexpected response")
        self._known = credentials is not None
        if credentials is None:
            credentials = _fake_credentials(self._ctx.host, self.username, self.hash_name)
        self._credentials = credentials
        self._nonce = self._client_nonce + self._nonce_factory()
        self._server_first_message = (f"r={self._nonce},s={_b64(credentials.salt)},"
                                      f"i={credentials.iterations}")
        self._state = _WANT_FINAL
        return Challenge(self._server_first_message.encode("ascii"))

    # client-final-message

    def _client_final(self, data):
        self._state = _DONE
        message = _decode_message(data, "client-final-message")

        # client-final-message = channel-binding "," nonce ["," extensions] "," proof
        attrs = message.split(",")
        if (len(attrs) < 3 or not attrs[0].startswith("c=") or not attrs[1].startswith("r=")
                or not attrs[-1].startswith("p=")):
            raise SASLFailure("malformed-request", "expected c=, r= and p= attributes")
        for ext in attrs[2:-1]:
            if not _ATTR_VAL.match(ext):
                raise SASLFailure("malformed-request", "invalid attribute")
        cbind_input = _b64decode(attrs[0][2:], "channel binding")
        proof = _b64decode(attrs[-1][2:], "proof")
        if len(proof) != self._digest_size:
            raise SASLFailure("malformed-request", "proof has the wrong length")

        # Both comparisons fail the same way for every account, known or not.
        if not hmac.compare_digest(attrs[1][2:].encode("utf-8"), self._nonce.encode("ascii")):
            raise SASLFailure("not-authorized")
        if not hmac.compare_digest(cbind_input, self._gs2_header.encode("utf-8") + self._cb_data):
            raise SASLFailure("not-authorized")

        without_proof = message[:-len(attrs[-1]) - 1]
        auth_message = ",".join((self._client_first_bare, self._server_first_message,
                                 without_proof)).encode("utf-8")
        # The throttle may hold the proof's check (not just its answer) for this account's turn.
        admit = self._ctx.admit
        wait = admit(self.username) if admit is not None else None
        if wait is None:
            return self._verify(auth_message, proof)
        return wait.addCallback(lambda _: self._verify(auth_message, proof))

    def _verify(self, auth_message, proof):
        credentials = self._credentials
        client_signature = hmac.digest(credentials.stored_key, auth_message, self.hash_name)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature))
        matches = hmac.compare_digest(hashlib.new(self.hash_name, client_key).digest(),
                                      credentials.stored_key)
        if not (matches and self._known):
            raise SASLFailure("not-authorized")
        server_signature = hmac.digest(credentials.server_key, auth_message, self.hash_name)
        return Success(self.username, b"v=" + _b64(server_signature).encode("ascii"))
