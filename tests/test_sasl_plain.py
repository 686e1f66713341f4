"""Tests for jabberapp.sasl.plain: PLAIN (RFC 4616) inside TLS only."""
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp.interfaces import IAuthProvider, ISASLMechanism
from jabberapp.sasl import Challenge, SASLContext, SASLFailure, Success, create_mechanism
from jabberapp.sasl.plain import MAX_FIELD_LENGTH, PlainMechanism

HOST = "example.org"


@implementer(IAuthProvider)
class FakeAuth:
    """An IAuthProvider over a dict (host, username) -> password, recording each check."""

    def __init__(self, passwords=None):
        self.passwords = dict(passwords or {})
        self.checks = []
        self.pending = None
        self.error = None

    def get_scram(self, host, username, hash_name):
        raise AssertionError("PLAIN never asks for SCRAM material")

    def check_password(self, host, username, password):
        self.checks.append((host, username, password))
        if self.error is not None:
            return defer.fail(self.error)
        if self.pending is not None:
            return self.pending
        return defer.succeed(self.passwords.get((host, username)) == password)


class PlainTests(SynchronousTestCase):

    def setUp(self):
        self.auth = FakeAuth({(HOST, "juliet"): "r0m30 \u00e9"})
        self.ctx = SASLContext(host=HOST, auth=self.auth, secure=True, channel_bindings={})

    def mechanism(self):
        return PlainMechanism(self.ctx)

    def condition(self, d):
        """The SASLFailure condition C{d} failed with."""
        return self.failureResultOf(d, SASLFailure).value.condition

    def test_verify_object(self):
        """PlainMechanism provides ISASLMechanism and is called PLAIN."""
        mech = self.mechanism()
        verifyObject(ISASLMechanism, mech)
        self.assertEqual(mech.name, "PLAIN")

    def test_success(self):
        """The right password succeeds with the prepared username and no additional data."""
        result = self.successResultOf(
            self.mechanism().start("\0juliet\0r0m30 \u00e9".encode("utf-8")))
        self.assertEqual(result, Success("juliet", None))
        self.assertEqual(self.auth.checks, [(HOST, "juliet", "r0m30 \u00e9")])

    def test_username_prepared(self):
        """The authcid is prepared as a localpart before the check ('Juliet' is 'juliet')."""
        result = self.successResultOf(
            self.mechanism().start("\0Juliet\0r0m30 \u00e9".encode("utf-8")))
        self.assertEqual(result.username, "juliet")
        self.assertEqual(self.auth.checks[0][1], "juliet")

    def test_username_attribute(self):
        """mechanism.username is the prepared localpart once known, even when the check fails."""
        for message, expected in ((b"\0Juliet\0nope", "juliet"), (b"\0romeo\0pw", "romeo"),
                                  (b"\0a/b\0pw", None), (b"junk", None)):
            mech = self.mechanism()
            self.assertIsNone(mech.username)
            self.failureResultOf(mech.start(message), SASLFailure)
            self.assertEqual(mech.username, expected)

    def test_empty_challenge_first(self):
        """Without an initial response an empty challenge comes first, then the reply is checked."""
        mech = self.mechanism()
        self.assertEqual(self.successResultOf(mech.start(None)), Challenge(b""))
        result = self.successResultOf(mech.step("\0juliet\0r0m30 \u00e9".encode("utf-8")))
        self.assertEqual(result.username, "juliet")

    def test_wrong_password(self):
        """A wrong password fails with not-authorized and no text."""
        failure = self.failureResultOf(self.mechanism().start(b"\0juliet\0nope"), SASLFailure)
        self.assertEqual((failure.value.condition, failure.value.text), ("not-authorized", None))

    def test_unknown_user(self):
        """An unknown user fails exactly like a wrong password."""
        failure = self.failureResultOf(self.mechanism().start(b"\0romeo\0nope"), SASLFailure)
        self.assertEqual((failure.value.condition, failure.value.text), ("not-authorized", None))

    def test_invalid_localpart(self):
        """An authcid that cannot be a localpart is not-authorized without asking the provider."""
        for authcid in (b"a/b", b"x@y", b" "):
            self.assertEqual(self.condition(self.mechanism().start(b"\0" + authcid + b"\0pw")),
                             "not-authorized")
        self.assertEqual(self.auth.checks, [])

    def test_authzid(self):
        """An authzid naming the account's own bare JID is accepted; others are invalid-authzid."""
        ok = self.successResultOf(
            self.mechanism().start("Juliet@Example.org\0juliet\0r0m30 \u00e9".encode("utf-8")))
        self.assertEqual(ok.username, "juliet")
        for authzid in (b"romeo@example.org", b"juliet@example.com", b"juliet@example.org/r",
                        b"example.org", b"juliet"):
            d = self.mechanism().start(authzid + "\0juliet\0r0m30 \u00e9".encode("utf-8"))
            self.assertEqual(self.condition(d), "invalid-authzid", authzid)

    def test_malformed(self):
        """Wrong NUL counts and empty authcid or password are malformed-request."""
        for message in (b"", b"juliet", b"juliet\0pw", b"\0juliet\0pw\0", b"\0\0pw",
                        b"\0juliet\0", b"a\0b\0c\0d"):
            self.assertEqual(self.condition(self.mechanism().start(message)),
                             "malformed-request", message)
        self.assertEqual(self.auth.checks, [])

    def test_field_length(self):
        """Fields up to 1023 bytes are checked; any longer field is malformed-request."""
        limit = MAX_FIELD_LENGTH
        self.assertEqual(limit, 1023)
        self.failureResultOf(self.mechanism().start(b"\0juliet\0" + b"p" * limit), SASLFailure)
        self.assertEqual(len(self.auth.checks), 1)
        for message in (b"\0juliet\0" + b"p" * (limit + 1),
                        b"\0" + b"j" * (limit + 1) + b"\0pw",
                        b"a" * (limit + 1) + b"\0juliet\0pw"):
            self.assertEqual(self.condition(self.mechanism().start(message)), "malformed-request")
        self.assertEqual(len(self.auth.checks), 1)

    def test_invalid_utf8(self):
        """A field that is not UTF-8 is malformed-request (incorrect-encoding is for base64)."""
        for message in (b"\0juliet\0pw\xff", b"\0jul\xc3iet\0pw", b"\xfe\0juliet\0pw"):
            self.assertEqual(self.condition(self.mechanism().start(message)), "malformed-request")
        self.assertEqual(self.auth.checks, [])

    def test_no_step_after_success(self):
        """After a success further steps fail with malformed-request."""
        mech = self.mechanism()
        self.successResultOf(mech.start("\0juliet\0r0m30 \u00e9".encode("utf-8")))
        self.assertEqual(self.condition(mech.step(b"\0juliet\0pw")), "malformed-request")
        self.assertEqual(self.condition(mech.start(None)), "malformed-request")

    def test_no_step_after_failure(self):
        """After a failure further steps fail with malformed-request, without another check."""
        mech = self.mechanism()
        self.failureResultOf(mech.start(b"\0juliet\0nope"), SASLFailure)
        self.assertEqual(self.condition(mech.step("\0juliet\0r0m30 \u00e9".encode("utf-8"))),
                         "malformed-request")
        self.assertEqual(len(self.auth.checks), 1)

    def test_step_without_start(self):
        """A step before start or after an initial response is malformed-request."""
        self.assertEqual(self.condition(self.mechanism().step(b"\0juliet\0pw")),
                         "malformed-request")

    def test_step_while_checking(self):
        """A second response while the password check runs ends the exchange: both fail."""
        self.auth.pending = defer.Deferred()
        mech = self.mechanism()
        self.successResultOf(mech.start(None))
        d = mech.step(b"\0juliet\0pw")
        self.assertNoResult(d)
        self.assertEqual(self.condition(mech.step(b"\0juliet\0pw")), "malformed-request")
        self.auth.pending.callback(True)
        self.assertEqual(self.condition(d), "malformed-request")

    def test_provider_error(self):
        """An auth provider error becomes temporary-auth-failure and is logged."""
        self.auth.error = RuntimeError("ldap down")
        self.assertEqual(self.condition(self.mechanism().start(b"\0juliet\0pw")),
                         "temporary-auth-failure")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_truthy_is_not_true(self):
        """Only a result of exactly True authenticates."""
        self.auth.pending = defer.succeed("yes")
        self.assertEqual(self.condition(self.mechanism().start(b"\0juliet\0pw")),
                         "not-authorized")

    def test_requires_tls(self):
        """PLAIN cannot be created on a stream without TLS: encryption-required."""
        ctx = SASLContext(host=HOST, auth=self.auth, secure=False, channel_bindings={})
        with self.assertRaises(SASLFailure) as cm:
            PlainMechanism(ctx)
        self.assertEqual(cm.exception.condition, "encryption-required")
        with self.assertRaises(SASLFailure) as cm:
            create_mechanism("PLAIN", ctx)
        self.assertEqual(cm.exception.condition, "encryption-required")
