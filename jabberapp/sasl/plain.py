"""
PLAIN (RFC 4616), server side: authzid NUL authcid NUL passwd, checked by the auth provider.

Offered only inside TLS (RFC 6120 §13.8 and DESIGN.md §6): the password crosses the wire.
"""
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from jabberapp.interfaces import ISASLMechanism
from jabberapp.jid import InvalidJID, prep_localpart
from jabberapp.sasl_exchange import (Challenge, SASLContext, SASLFailure, Success,
                                      authzid_matches)

# RFC 4616 §2 asks for at least 255 octets per field; 1023 matches the JID part limit
# (RFC 7622 §3.3) and bounds what reaches PRECIS and PBKDF2.
MAX_FIELD_LENGTH = 1023

log = Logger()

_INITIAL = "initial"
_WANT_RESPONSE = "want-response"
_CHECKING = "checking"
_DONE = "done"


@implementer(ISASLMechanism)
class PlainMechanism:
    """One server-side PLAIN exchange; refuses to exist on a stream without TLS.

    C{username} is the prepared localpart once the message named a valid one, else None:
    the stream uses it to throttle failures per account.
    """

    name = "PLAIN"

    def __init__(self, ctx: SASLContext):
        if not ctx.secure:
            raise SASLFailure("encryption-required", "PLAIN is only available over TLS")
        self._ctx = ctx
        self._state = _INITIAL
        self.username = None

    def start(self, initial):
        """Check the initial response, or ask for the message with an empty challenge."""
        if self._state != _INITIAL:
            return self._fail(SASLFailure("malformed-request", "exchange already started"))
        if initial is None:
            self._state = _WANT_RESPONSE
            return defer.succeed(Challenge(b""))
        return self._guard(initial)

    def step(self, response):
        """Check the message sent after the empty challenge; any later step fails."""
        if self._state != _WANT_RESPONSE:
            return self._fail(SASLFailure("malformed-request", "unexpected response"))
        return self._guard(response)

    def _fail(self, failure):
        self._state = _DONE
        return defer.fail(failure)

    def _guard(self, data):
        d = defer.maybeDeferred(self._check, data)
        d.addBoth(self._finish)
        return d

    def _finish(self, result):
        interrupted = self._state != _CHECKING
        self._state = _DONE
        if isinstance(result, Success):
            if interrupted:
                # Another response arrived while we checked and was refused: the exchange
                # is over, so this late success must not count.
                raise SASLFailure("malformed-request", "unexpected response")
            return result
        if result.check(SASLFailure):
            return result
        log.failure("PLAIN check failed unexpectedly", result)
        raise SASLFailure("temporary-auth-failure")

    def _check(self, data):
        self._state = _CHECKING
        if not isinstance(data, bytes):
            raise TypeError("SASL data must be bytes")
        fields = data.split(b"\x00")
        if len(fields) != 3:
            raise SASLFailure("malformed-request", "expected authzid NUL authcid NUL passwd")
        raw_authzid, raw_authcid, raw_password = fields
        if not raw_authcid or not raw_password:
            raise SASLFailure("malformed-request", "empty authentication identity or password")
        if any(len(field) > MAX_FIELD_LENGTH for field in fields):
            raise SASLFailure("malformed-request", "field too long")
        try:
            authzid = raw_authzid.decode("utf-8")
            authcid = raw_authcid.decode("utf-8")
            password = raw_password.decode("utf-8")
        except UnicodeDecodeError:
            # RFC 4616 §2 makes every field UTF-8, so bad UTF-8 breaks the mechanism's syntax
            # (malformed-request); RFC 6120 §6.5.2 incorrect-encoding is for bad base64, which
            # the stream layer reports before we see any bytes.
            raise SASLFailure("malformed-request", "fields must be UTF-8") from None

        try:
            username = prep_localpart(authcid)
        except InvalidJID:
            # No such account can exist, and anyone can see that: nothing leaks.
            raise SASLFailure("not-authorized") from None
        self.username = username
        if authzid and not authzid_matches(authzid, username, self._ctx.host):
            raise SASLFailure("invalid-authzid")

        # The throttle may hold the check (not just its answer) for this account's turn.
        admit = self._ctx.admit
        wait = admit(username) if admit is not None else None
        if wait is None:
            d = defer.maybeDeferred(self._ctx.auth.check_password, self._ctx.host, username,
                                    password)
        else:
            d = wait.addCallback(lambda _: self._ctx.auth.check_password(
                self._ctx.host, username, password))

        def checked(ok):
            if ok is not True:
                raise SASLFailure("not-authorized")
            return Success(username)

        return d.addCallback(checked)
