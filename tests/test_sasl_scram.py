"""Tests for jabberapp.sasl and jabberapp.sasl.scram: SCRAM (RFC 5802, RFC 7677), -PLUS."""
import base64
import hashlib
import hmac

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp.interfaces import IAuthProvider, ISASLMechanism
from jabberapp.sasl import (
    Challenge,
    SASLContext,
    SASLFailure,
    Success,
    available_mechanisms,
    create_mechanism,
)
from jabberapp.sasl import scram
from jabberapp.sasl.plain import PlainMechanism
from jabberapp.sasl.scram import (
    DEFAULT_ITERATIONS,
    HASHES,
    ScramCredentials,
    ScramMechanism,
    derive,
    derive_all,
    prep_password,
)
from tests.scram_client import Client, hi

HOST = "example.org"
EXPORTER = b"\x01" * 32
END_POINT = b"\x02" * 32
BINDINGS = {"tls-exporter": EXPORTER, "tls-server-end-point": END_POINT}

# RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256).
RFC5802_SALT = base64.b64decode("QSXCR+Q6sek8bf92")
RFC5802_CLIENT_FIRST = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
RFC5802_SERVER_NONCE = "3rfcNHYJY1ZVvWVs7j"
RFC5802_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
RFC5802_CLIENT_FINAL = (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                        b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
RFC5802_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

RFC7677_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC7677_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC7677_SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
RFC7677_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


# --- Fakes ------------------------------------------------------------------------------------

@implementer(IAuthProvider)
class FakeAuth:
    """An IAuthProvider over a dict (host, username, hash_name) -> ScramCredentials."""

    def __init__(self, credentials=None):
        self.credentials = dict(credentials or {})
        self.lookups = []
        self.pending = None     # a Deferred to return instead of answering at once
        self.error = None       # an exception to fail with

    def get_scram(self, host, username, hash_name):
        self.lookups.append((host, username, hash_name))
        if self.error is not None:
            return defer.fail(self.error)
        if self.pending is not None:
            return self.pending
        return defer.succeed(self.credentials.get((host, username, hash_name)))

    def check_password(self, host, username, password):
        raise AssertionError("SCRAM never asks for a password check")


def _ctx(auth, secure=True, bindings=None):
    return SASLContext(host=HOST, auth=auth, secure=secure,
                       channel_bindings=BINDINGS if bindings is None else bindings)


class ScramTestMixin:
    """Builds an auth provider knowing 'juliet' (password 'r0m30') for every hash."""

    password = "r0m30"

    def setUp(self):
        self.auth = FakeAuth({(HOST, "juliet", name): derive(self.password, name, iterations=4096)
                              for name in HASHES})

    def mechanism(self, hash_name="sha256", plus=False, bindings=None, **kw):
        return ScramMechanism(hash_name, plus, _ctx(self.auth, bindings=bindings), **kw)

    def run_exchange(self, mech, client, **final_kw):
        """Drive an exchange to the end; return the final result or Failure."""
        challenge = self.successResultOf(mech.start(client.first()))
        self.assertIsInstance(challenge, Challenge)
        d = mech.step(client.final(challenge.data, **final_kw))
        results = []
        d.addBoth(results.append)
        return results[0]

    def assertFailure_(self, d, condition):
        """The Deferred C{d} has failed with SASLFailure C{condition}; return the failure."""
        failure = self.failureResultOf(d, SASLFailure)
        self.assertEqual(failure.value.condition, condition, failure.value.text)
        return failure.value

    def assertResultFailure(self, result, condition):
        self.assertIsInstance(result, Failure, result)
        self.assertTrue(result.check(SASLFailure), result)
        self.assertEqual(result.value.condition, condition, result.value.text)
        return result.value


# --- Test vectors -----------------------------------------------------------------------------

class RFCVectorTests(ScramTestMixin, SynchronousTestCase):

    def test_rfc5802_sha1(self):
        """The RFC 5802 §5 SCRAM-SHA-1 exchange is reproduced byte for byte."""
        self.auth.credentials[(HOST, "user", "sha1")] = derive("pencil", "sha1", RFC5802_SALT, 4096)
        mech = self.mechanism("sha1", nonce_factory=lambda: RFC5802_SERVER_NONCE)
        self.assertEqual(self.successResultOf(mech.start(RFC5802_CLIENT_FIRST)),
                         Challenge(RFC5802_SERVER_FIRST))
        self.assertEqual(self.successResultOf(mech.step(RFC5802_CLIENT_FINAL)),
                         Success("user", RFC5802_SERVER_FINAL))

    def test_rfc7677_sha256(self):
        """The RFC 7677 §3 SCRAM-SHA-256 exchange is reproduced byte for byte."""
        self.auth.credentials[(HOST, "user", "sha256")] = derive("pencil", "sha256",
                                                                 RFC7677_SALT, 4096)
        mech = self.mechanism("sha256", nonce_factory=lambda: RFC7677_SERVER_NONCE)
        self.assertEqual(self.successResultOf(mech.start(RFC7677_CLIENT_FIRST)),
                         Challenge(RFC7677_SERVER_FIRST))
        self.assertEqual(self.successResultOf(mech.step(RFC7677_CLIENT_FINAL)),
                         Success("user", RFC7677_SERVER_FINAL))

    def test_rfc5802_without_initial_response(self):
        """Without an initial response an empty challenge precedes the RFC 5802 exchange."""
        self.auth.credentials[(HOST, "user", "sha1")] = derive("pencil", "sha1", RFC5802_SALT, 4096)
        mech = self.mechanism("sha1", nonce_factory=lambda: RFC5802_SERVER_NONCE)
        self.assertEqual(self.successResultOf(mech.start(None)), Challenge(b""))
        self.assertEqual(self.successResultOf(mech.step(RFC5802_CLIENT_FIRST)),
                         Challenge(RFC5802_SERVER_FIRST))
        self.assertEqual(self.successResultOf(mech.step(RFC5802_CLIENT_FINAL)),
                         Success("user", RFC5802_SERVER_FINAL))

    def test_rfc5802_wrong_proof(self):
        """The RFC 5802 exchange with one proof byte changed fails with not-authorized."""
        self.auth.credentials[(HOST, "user", "sha1")] = derive("pencil", "sha1", RFC5802_SALT, 4096)
        mech = self.mechanism("sha1", nonce_factory=lambda: RFC5802_SERVER_NONCE)
        mech.start(RFC5802_CLIENT_FIRST)
        self.assertFailure_(mech.step(RFC5802_CLIENT_FINAL.replace(b"p=v0X8", b"p=v1X8")),
                            "not-authorized")


# --- Round trips with the independent client --------------------------------------------------

class RoundTripTests(ScramTestMixin, SynchronousTestCase):

    def test_sha512_round_trip(self):
        """SCRAM-SHA-512 succeeds against the independent client, whose server signature checks."""
        client = Client("sha512", "juliet", self.password)
        result = self.run_exchange(self.mechanism("sha512"), client)
        self.assertEqual(result, Success("juliet", client.expected_verifier))

    def test_every_hash_round_trip(self):
        """SCRAM-SHA-1, -256 and -512 all succeed with the right password."""
        for name in HASHES:
            client = Client(name, "juliet", self.password)
            result = self.run_exchange(self.mechanism(name), client)
            self.assertEqual(result, Success("juliet", client.expected_verifier), name)

    def test_wrong_password(self):
        """A proof made from the wrong password fails with not-authorized and no text."""
        result = self.run_exchange(self.mechanism("sha512"), Client("sha512", "juliet", "nope"))
        self.assertIsNone(self.assertResultFailure(result, "not-authorized").text)

    def test_username_is_prepared(self):
        """The username is prepared as a localpart, so 'Juliet' logs into 'juliet'."""
        client = Client("sha256", "Juliet", self.password)
        result = self.run_exchange(self.mechanism(), client)
        self.assertEqual(result, Success("juliet", client.expected_verifier))
        self.assertEqual(self.auth.lookups, [(HOST, "juliet", "sha256")])

    def test_username_escapes(self):
        """'=2C' and '=3D' in the username decode to ',' and '='."""
        self.auth.credentials[(HOST, "a,b=c", "sha256")] = derive("pw", "sha256", iterations=4096)
        client = Client("sha256", "a,b=c", "pw")
        self.assertIn(b"n=a=2Cb=3Dc,", client.first())
        self.assertEqual(self.run_exchange(self.mechanism(), client).username, "a,b=c")

    def test_stored_iterations_are_used(self):
        """The server-first message carries the stored salt and iteration count."""
        creds = derive(self.password, "sha256", b"salty", 5000)
        self.auth.credentials[(HOST, "juliet", "sha256")] = creds
        first = Client("sha256", "juliet", "").first()
        challenge = self.successResultOf(self.mechanism().start(first))
        self.assertTrue(challenge.data.endswith(b",s=" + base64.b64encode(b"salty") + b",i=5000"))

    def test_extensions_are_ignored(self):
        """Optional extension attributes in both client messages are ignored (but signed)."""
        client = Client("sha256", "juliet", self.password, first_ext=",x=ext")
        result = self.run_exchange(self.mechanism(), client, final_ext=",y=more,z=x=y")
        self.assertEqual(result, Success("juliet", client.expected_verifier))

    def test_server_nonce_is_fresh(self):
        """The default server nonce is random, non-empty and never contains ','."""
        nonces = set()
        for _ in range(3):
            first = Client("sha256", "juliet", "").first()
            challenge = self.successResultOf(self.mechanism().start(first))
            nonce = challenge.data.split(b",")[0][len(b"r=clientnonce+/"):]
            self.assertTrue(nonce)
            nonces.add(nonce)
        self.assertEqual(len(nonces), 3)

    def test_verify_object(self):
        """ScramMechanism provides ISASLMechanism and names itself after its hash and binding."""
        for name in HASHES:
            for plus in (False, True):
                mech = self.mechanism(name, plus)
                verifyObject(ISASLMechanism, mech)
        self.assertEqual(self.mechanism("sha1").name, "SCRAM-SHA-1")
        self.assertEqual(self.mechanism("sha512", True).name, "SCRAM-SHA-512-PLUS")

    def test_plus_without_bindings_is_a_programming_error(self):
        """A -PLUS mechanism without channel binding data, or an unknown hash, is a ValueError."""
        self.assertRaises(ValueError, ScramMechanism, "sha256", True, _ctx(self.auth, bindings={}))
        self.assertRaises(ValueError, ScramMechanism, "md5", False, _ctx(self.auth))


# --- Channel binding --------------------------------------------------------------------------

class ChannelBindingTests(ScramTestMixin, SynchronousTestCase):

    def plus_client(self, cb_name, cb_data, name="sha256"):
        return Client(name, "juliet", self.password, gs2_header=f"p={cb_name},,", cb_data=cb_data)

    def test_tls_exporter(self):
        """SCRAM-SHA-256-PLUS with the right tls-exporter data succeeds (RFC 9266)."""
        client = self.plus_client("tls-exporter", EXPORTER)
        result = self.run_exchange(self.mechanism("sha256", True), client)
        self.assertEqual(result, Success("juliet", client.expected_verifier))

    def test_tls_exporter_wrong_data(self):
        """SCRAM-SHA-256-PLUS with other tls-exporter data (a MITM) is not-authorized."""
        client = self.plus_client("tls-exporter", b"\x09" * 32)
        self.assertResultFailure(self.run_exchange(self.mechanism("sha256", True), client),
                                 "not-authorized")

    def test_tls_server_end_point(self):
        """SCRAM-SHA-512-PLUS with the right tls-server-end-point data succeeds (RFC 5929)."""
        client = self.plus_client("tls-server-end-point", END_POINT, "sha512")
        result = self.run_exchange(self.mechanism("sha512", True), client)
        self.assertEqual(result, Success("juliet", client.expected_verifier))

    def test_tls_server_end_point_wrong_data(self):
        """Binding data of the other type under the tls-server-end-point name is not-authorized."""
        client = self.plus_client("tls-server-end-point", EXPORTER, "sha1")
        self.assertResultFailure(self.run_exchange(self.mechanism("sha1", True), client),
                                 "not-authorized")

    def test_plus_cb_header_mismatch(self):
        """A c= naming a different GS2 header than the client-first message is not-authorized."""
        client = self.plus_client("tls-exporter", EXPORTER)
        c = base64.b64encode(b"p=tls-server-end-point,," + END_POINT).decode()
        self.assertResultFailure(self.run_exchange(self.mechanism("sha256", True), client, c=c),
                                 "not-authorized")

    def test_unsupported_binding_type(self):
        """A -PLUS request for a binding type the stream lacks is malformed-request at once,
        and not counted as a guess: no account was looked at."""
        mech = self.mechanism("sha256", True, bindings={"tls-server-end-point": END_POINT})
        client = self.plus_client("tls-exporter", EXPORTER)
        failure = self.assertFailure_(mech.start(client.first()), "malformed-request")
        self.assertFalse(failure.counted)
        self.assertEqual(self.auth.lookups, [])

    def test_tls_unique_on_tls13(self):
        """slixmpp 1.8's p=tls-unique on a stream offering tls-exporter and
        tls-server-end-point (TLS 1.3) fails uncounted with every -PLUS mechanism."""
        for hash_name in HASHES:
            client = self.plus_client("tls-unique", b"\x05" * 12, hash_name)
            failure = self.assertFailure_(self.mechanism(hash_name, True).start(client.first()),
                                          "malformed-request")
            self.assertFalse(failure.counted)
            self.assertIn("tls-unique", failure.text)
        self.assertEqual(self.auth.lookups, [])

    def test_plus_without_binding_flag(self):
        """A -PLUS mechanism with GS2 flag 'n' or 'y' is malformed-request, not counted."""
        for header in ("n,,", "y,,"):
            client = Client("sha256", "juliet", self.password, gs2_header=header)
            failure = self.assertFailure_(self.mechanism("sha256", True).start(client.first()),
                                          "malformed-request")
            self.assertFalse(failure.counted)

    def test_binding_flag_on_plain_scram(self):
        """'p=' on a mechanism without -PLUS is malformed-request, not counted."""
        client = self.plus_client("tls-exporter", EXPORTER)
        failure = self.assertFailure_(self.mechanism("sha256").start(client.first()),
                                      "malformed-request")
        self.assertFalse(failure.counted)

    def test_invalid_binding_name(self):
        """A cb-name outside RFC 5802's alphabet is malformed-request, counted like any
        other broken message."""
        client = self.plus_client("tls_exporter!", EXPORTER)
        failure = self.assertFailure_(self.mechanism("sha256", True).start(client.first()),
                                      "malformed-request")
        self.assertTrue(failure.counted)

    def test_downgrade_detected(self):
        """Flag 'y' on SCRAM when -PLUS was offered is a downgrade: not-authorized (RFC 5802 §6)
        before any account is looked at, so not counted as a guess."""
        client = Client("sha256", "juliet", self.password, gs2_header="y,,")
        failure = self.assertFailure_(self.mechanism("sha256").start(client.first()),
                                      "not-authorized")
        self.assertFalse(failure.counted)
        self.assertEqual(self.auth.lookups, [])

    def test_y_flag_with_only_types_the_client_lacks(self):
        """'y' is refused even when the stream offers only types a tls-unique client lacks
        (tls-exporter, tls-server-end-point): the server cannot tell that client from one
        whose -PLUS offer a man in the middle removed."""
        for bindings in ({"tls-exporter": EXPORTER}, {"tls-server-end-point": END_POINT},
                         BINDINGS):
            client = Client("sha512", "juliet", self.password, gs2_header="y,,")
            failure = self.assertFailure_(
                self.mechanism("sha512", bindings=bindings).start(client.first()),
                "not-authorized")
            self.assertFalse(failure.counted)

    def test_y_flag_when_plus_is_not_allowed(self):
        """With [auth] mechanisms leaving out every -PLUS, the stream offers no binding, so
        'y' is right and logs in (RFC 5802 §6)."""
        ctx = SASLContext(host=HOST, auth=self.auth, secure=True, channel_bindings=BINDINGS,
                          allowed=frozenset({"SCRAM-SHA-256", "PLAIN"}))
        self.assertEqual(ctx.channel_bindings, {})
        client = Client("sha256", "juliet", self.password, gs2_header="y,,")
        result = self.run_exchange(ScramMechanism("sha256", False, ctx), client)
        self.assertEqual(result, Success("juliet", client.expected_verifier))

    def test_n_flag_with_bindings(self):
        """Flag 'n' (the client does not bind) logs in with SCRAM while -PLUS is offered."""
        client = Client("sha256", "juliet", self.password)
        result = self.run_exchange(self.mechanism("sha256"), client)
        self.assertEqual(result, Success("juliet", client.expected_verifier))

    def test_y_flag_without_bindings(self):
        """Flag 'y' on a stream offering no channel binding is fine."""
        client = Client("sha256", "juliet", self.password, gs2_header="y,,")
        result = self.run_exchange(self.mechanism("sha256", bindings={}), client)
        self.assertEqual(result, Success("juliet", client.expected_verifier))

    def test_plain_scram_cb_mismatch(self):
        """A c= not repeating the client's GS2 header ('y' after 'n') is not-authorized."""
        client = Client("sha256", "juliet", self.password)
        self.assertResultFailure(self.run_exchange(self.mechanism(), client, c="eSws"),
                                 "not-authorized")

    def test_plain_scram_with_cb_data(self):
        """Channel binding data appended to c= on plain SCRAM is not-authorized."""
        client = Client("sha256", "juliet", self.password)
        c = base64.b64encode(b"n,," + EXPORTER).decode()
        self.assertResultFailure(self.run_exchange(self.mechanism(), client, c=c),
                                 "not-authorized")


# --- Authorization identity -------------------------------------------------------------------

class AuthzidTests(ScramTestMixin, SynchronousTestCase):

    def with_authzid(self, authzid):
        return Client("sha256", "juliet", self.password, gs2_header=f"n,a={authzid},")

    def test_own_bare_jid(self):
        """An authzid equal to the account's bare JID (after preparation) is accepted."""
        for authzid in ("juliet@example.org", "Juliet@Example.ORG", "juliet@example.org."):
            client = self.with_authzid(authzid)
            result = self.run_exchange(self.mechanism(), client)
            self.assertEqual(result, Success("juliet", client.expected_verifier), authzid)

    def test_other_authzid(self):
        """Another user, another domain, a full JID, a domain or garbage is invalid-authzid."""
        for authzid in ("romeo@example.org", "juliet@example.com", "juliet@example.org/r",
                        "example.org", "juliet", "<>@example.org"):
            client = self.with_authzid(authzid)
            self.assertFailure_(self.mechanism().start(client.first()), "invalid-authzid")

    def test_escaped_authzid(self):
        """The authzid is a saslname: '=3D' decodes to '=' before comparing."""
        self.auth.credentials[(HOST, "a=b", "sha256")] = derive("pw", "sha256", iterations=4096)
        client = Client("sha256", "a=b", "pw", gs2_header="n,a=a=3Db@example.org,")
        self.assertEqual(self.run_exchange(self.mechanism(), client).username, "a=b")

    def test_authzid_bad_attribute(self):
        """A GS2 authzid field not starting with 'a=' is malformed-request."""
        client = Client("sha256", "juliet", self.password, gs2_header="n,juliet@example.org,")
        self.assertFailure_(self.mechanism().start(client.first()), "malformed-request")


# --- Unknown accounts -------------------------------------------------------------------------

class UnknownUserTests(ScramTestMixin, SynchronousTestCase):

    def first_for(self, username, hash_name="sha256"):
        client = Client(hash_name, username, "whatever")
        return self.successResultOf(self.mechanism(hash_name).start(client.first())).data

    def test_unknown_user_looks_real(self):
        """An unknown user gets a same-shaped server-first: 16-byte salt, default iterations."""
        known = dict(a.split("=", 1) for a in self.first_for("juliet").decode().split(","))
        unknown = dict(a.split("=", 1) for a in self.first_for("nobody").decode().split(","))
        self.assertEqual(len(base64.b64decode(unknown["s"])), len(base64.b64decode(known["s"])))
        self.assertEqual(unknown["i"], str(DEFAULT_ITERATIONS))
        self.assertEqual(sorted(known), sorted(unknown))

    def test_fake_salt_is_stable(self):
        """The fake salt is stable per user and hash, and differs between them."""
        def salt(user, hash_name="sha256"):
            return self.first_for(user, hash_name).split(b",s=")[1]
        self.assertEqual(salt("nobody"), salt("nobody"))
        self.assertEqual(salt("nobody"), salt("NoBody"))
        self.assertNotEqual(salt("nobody"), salt("someone"))
        self.assertNotEqual(salt("nobody"), salt("nobody", "sha1"))

    def test_unknown_user_fails_at_the_end(self):
        """An unknown user fails only after client-final, exactly like a wrong password."""
        unknown = self.run_exchange(self.mechanism(), Client("sha256", "nobody", self.password))
        wrong = self.run_exchange(self.mechanism(), Client("sha256", "juliet", "wrong"))
        u = self.assertResultFailure(unknown, "not-authorized")
        w = self.assertResultFailure(wrong, "not-authorized")
        self.assertEqual((u.condition, u.text), (w.condition, w.text))

    def test_fake_credentials_never_succeed(self):
        """Even a proof matching the fake credentials of an unknown user is not-authorized."""
        guessed = derive("guess", "sha256", b"f" * 16, 4096)
        self.patch(scram, "_fake_credentials", lambda host, username, hash_name: guessed)
        result = self.run_exchange(self.mechanism(), Client("sha256", "nobody", "guess"))
        self.assertResultFailure(result, "not-authorized")
        # The same credentials stored for a real account do succeed.
        self.auth.credentials[(HOST, "nobody", "sha256")] = guessed
        result = self.run_exchange(self.mechanism(), Client("sha256", "nobody", "guess"))
        self.assertEqual(result.username, "nobody")

    def test_username_attribute(self):
        """mechanism.username is the prepared localpart once known, for known and unknown users."""
        for name, expected in (("Juliet", "juliet"), ("nobody", "nobody"), ("a/b", None)):
            mech = self.mechanism()
            self.assertIsNone(mech.username)
            mech.start(Client("sha256", name, "pw").first()).addErrback(lambda f: None)
            self.assertEqual(mech.username, expected)

    def test_invalid_localpart(self):
        """A username that cannot be a localpart fails with not-authorized without a lookup."""
        for username in ("a/b", "x@y", " "):
            client = Client("sha256", username, self.password)
            self.assertFailure_(self.mechanism().start(client.first()), "not-authorized")
        self.assertEqual(self.auth.lookups, [])


# --- Syntax and state ---------------------------------------------------------------------------

class MalformedTests(ScramTestMixin, SynchronousTestCase):

    def test_bad_client_first(self):
        """Every malformed client-first message fails with malformed-request."""
        bad = [
            b"",                                    # empty
            b"n,n=juliet,r=abc",                    # no second GS2 comma
            b"juliet",                              # no GS2 header at all
            b"x,,n=juliet,r=abc",                   # unknown flag
            b"n,,r=abc,n=juliet",                   # attributes out of order
            b"n,,n=juliet",                         # no nonce
            b"n,,n=juliet,r=",                      # empty nonce
            b"n,,n=,r=abc",                         # empty username
            b"n,,n=juliet,r=a\x01b",                # unprintable nonce
            b"n,,n=juliet,r=a\xc3\xa9b",            # non-ASCII nonce
            b"n,,n=jul\xffiet,r=abc",               # not UTF-8
            b"n,,n=jul=2ciet,r=abc",                # escape is case-sensitive
            b"n,,n=jul=41iet,r=abc",                # only =2C and =3D exist
            b"n,,n=jul=3Eiet,r=abc",                # ... not =3E
            b"n,,n=jul=2,r=abc",                    # truncated escape
            b"n,,n=juliet=,r=abc",                  # dangling '='
            b"n,,n=jul\x00iet,r=abc",               # NUL
            b"n,,n=juliet,r=abc,bad",               # extension without '='
            b"n,,n=juliet,r=abc,",                  # empty extension
            b"n,,n=" + b"a" * 9000 + b",r=abc",     # too long
        ]
        for message in bad:
            mech = self.mechanism()
            failure = self.failureResultOf(mech.start(message), SASLFailure)
            self.assertEqual(failure.value.condition, "malformed-request", message[:40])
        self.assertEqual(self.auth.lookups, [])

    def test_mandatory_extension(self):
        """A mandatory extension 'm=' is refused with malformed-request."""
        failure = self.assertFailure_(self.mechanism().start(b"n,,m=ext,n=juliet,r=abc"),
                                      "malformed-request")
        self.assertIn("mandatory", failure.text)

    def bad_final(self, final):
        mech = self.mechanism("sha1")
        client = Client("sha1", "juliet", self.password)
        challenge = self.successResultOf(mech.start(client.first()))
        good = client.final(challenge.data)
        return mech.step(final(good, challenge.data))

    def test_bad_client_final(self):
        """Every malformed client-final message fails with malformed-request."""
        cases = [
            lambda good, sf: b"",
            lambda good, sf: good.replace(b"c=biws", b"c=bi!s"),          # bad base64
            lambda good, sf: good.replace(b"c=biws", b"c="),              # empty binding
            lambda good, sf: good.rpartition(b",p=")[0],                  # no proof
            lambda good, sf: good.rpartition(b",p=")[0] + b",p=AAAA",     # short proof
            lambda good, sf: good.rpartition(b",p=")[0] + b",p=%%%%",     # proof not base64
            lambda good, sf: good.replace(b"c=biws,", b""),               # no channel binding
            lambda good, sf: good.replace(b"c=biws,", b"c=biws,x,"),      # bad extension
            lambda good, sf: good + b"\xff",                              # not UTF-8
        ]
        for i, case in enumerate(cases):
            failure = self.failureResultOf(self.bad_final(case), SASLFailure)
            self.assertEqual(failure.value.condition, "malformed-request", i)

    def test_wrong_nonce(self):
        """A client-final message with a nonce other than the combined one is not-authorized."""
        client = Client("sha256", "juliet", self.password)
        result = self.run_exchange(self.mechanism(), client, nonce="clientnonce+/forged")
        self.assertResultFailure(result, "not-authorized")

    def test_no_step_after_success(self):
        """After a success every further step fails with malformed-request."""
        mech = self.mechanism()
        self.run_exchange(mech, Client("sha256", "juliet", self.password))
        self.assertFailure_(mech.step(b"c=biws"), "malformed-request")
        self.assertFailure_(mech.start(None), "malformed-request")

    def test_no_step_after_failure(self):
        """After a failure every further step fails with malformed-request."""
        mech = self.mechanism()
        self.assertFailure_(mech.start(b"bogus"), "malformed-request")
        client = Client("sha256", "juliet", self.password)
        self.assertFailure_(mech.step(client.first()), "malformed-request")

    def test_no_step_before_start(self):
        """A step before start fails with malformed-request."""
        self.assertFailure_(self.mechanism().step(b"n,,n=juliet,r=abc"), "malformed-request")

    def test_step_while_looking_up(self):
        """A response sent while the credentials are being fetched fails both exchanges' answers."""
        self.auth.pending = defer.Deferred()
        mech = self.mechanism()
        first = mech.start(Client("sha256", "juliet", self.password).first())
        self.assertNoResult(first)
        self.assertFailure_(mech.step(b"c=biws,r=x,p=AAAA"), "malformed-request")
        self.auth.pending.callback(self.auth.credentials[(HOST, "juliet", "sha256")])
        self.assertFailure_(first, "malformed-request")

    def test_auth_provider_error(self):
        """An auth provider error becomes temporary-auth-failure and is logged."""
        self.auth.error = RuntimeError("database down")
        mech = self.mechanism()
        self.assertFailure_(mech.start(Client("sha256", "juliet", "").first()),
                            "temporary-auth-failure")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFailure_(mech.step(b"c=biws"), "malformed-request")


# --- Credentials ------------------------------------------------------------------------------

class DeriveTests(SynchronousTestCase):

    def test_matches_independent_hi(self):
        """derive() matches the RFC 5802 formulas computed by the test client's own Hi()."""
        for name in HASHES:
            creds = derive("pencil", name, b"NaCl", 4096)
            salted = hi(name, b"pencil", b"NaCl", 4096)
            client_key = hmac.new(salted, b"Client Key", name).digest()
            self.assertEqual(creds, ScramCredentials(
                b"NaCl", 4096, hashlib.new(name, client_key).digest(),
                hmac.new(salted, b"Server Key", name).digest()))

    def test_random_salt(self):
        """Without a salt derive() draws 16 random bytes and uses the default iteration count."""
        a, b = derive("pw", "sha256"), derive("pw", "sha256")
        self.assertEqual(len(a.salt), 16)
        self.assertNotEqual(a.salt, b.salt)
        self.assertEqual(a.iterations, DEFAULT_ITERATIONS)

    def test_minimum_iterations(self):
        """derive() refuses fewer than 4096 iterations, unknown hashes and empty salts."""
        self.assertRaises(ValueError, derive, "pw", "sha256", None, 4095)
        self.assertRaises(ValueError, derive, "pw", "md5")
        self.assertRaises(ValueError, derive, "pw", "sha256", b"")

    def test_derive_all(self):
        """derive_all() gives one credential per hash, each with its own salt."""
        creds = derive_all("pw", 4096)
        self.assertEqual(sorted(creds), sorted(HASHES))
        self.assertEqual(len({c.salt for c in creds.values()}), 3)
        self.assertEqual({c.iterations for c in creds.values()}, {4096})
        self.assertEqual(len(creds["sha512"].stored_key), 64)

    def test_password_is_prepared(self):
        """Passwords are prepared with OpaqueString: NFC and non-ASCII spaces map to ASCII."""
        self.assertEqual(prep_password("e\u0301\u00a0x"), "\u00e9 x")
        self.assertEqual(derive("\u00e9 x", "sha1", b"s" * 16, 4096),
                         derive("e\u0301\u00a0x", "sha1", b"s" * 16, 4096))

    def test_bad_passwords(self):
        """Empty passwords and control characters raise ValueError that never shows the password."""
        for password in ("", "se\x00cret", "se\x07cret"):
            with self.assertRaises(ValueError) as cm:
                prep_password(password)
            if password:
                self.assertNotIn("cret", str(cm.exception))
        self.assertIn("empty", str(self.assertRaises(ValueError, prep_password, "")))
        self.assertRaises(TypeError, prep_password, b"bytes")


# --- Mechanism table --------------------------------------------------------------------------

class MechanismTableTests(SynchronousTestCase):

    def test_offered_with_bindings(self):
        """With TLS and channel binding every mechanism is offered, strongest first."""
        self.assertEqual(available_mechanisms(_ctx(FakeAuth())), [
            "SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])

    def test_offered_without_bindings(self):
        """Without channel binding data the -PLUS variants are not offered."""
        self.assertEqual(available_mechanisms(_ctx(FakeAuth(), bindings={})),
                         ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])

    def test_offered_without_tls(self):
        """Without TLS PLAIN is not offered."""
        self.assertEqual(available_mechanisms(_ctx(FakeAuth(), secure=False, bindings={})),
                         ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"])

    def test_create(self):
        """create_mechanism() builds each offered mechanism under its own name."""
        ctx = _ctx(FakeAuth())
        for name in available_mechanisms(ctx):
            mech = create_mechanism(name, ctx)
            verifyObject(ISASLMechanism, mech)
            self.assertEqual(mech.name, name)
        self.assertIsInstance(create_mechanism("PLAIN", ctx), PlainMechanism)
        self.assertIsInstance(create_mechanism("SCRAM-SHA-1", ctx), ScramMechanism)

    def test_create_unavailable(self):
        """Unknown names, wrong case and -PLUS without bindings are invalid-mechanism."""
        ctx = _ctx(FakeAuth(), bindings={})
        for name in ("DIGEST-MD5", "scram-sha-1", "SCRAM-SHA-256-PLUS", ""):
            with self.assertRaises(SASLFailure) as cm:
                create_mechanism(name, ctx)
            self.assertEqual(cm.exception.condition, "invalid-mechanism", name)

    def test_create_plain_without_tls(self):
        """PLAIN without TLS is encryption-required rather than invalid-mechanism."""
        with self.assertRaises(SASLFailure) as cm:
            create_mechanism("PLAIN", _ctx(FakeAuth(), secure=False, bindings={}))
        self.assertEqual(cm.exception.condition, "encryption-required")

    def test_plus_not_allowed_offers_no_binding(self):
        """[auth] mechanisms without any -PLUS empty the context's bindings, so neither -PLUS
        nor (in the stream features) a XEP-0440 binding type is offered."""
        ctx = SASLContext(host=HOST, auth=FakeAuth(), secure=True, channel_bindings=BINDINGS,
                          allowed=frozenset({"SCRAM-SHA-512", "SCRAM-SHA-1"}))
        self.assertEqual(ctx.channel_bindings, {})
        self.assertEqual(available_mechanisms(ctx), ["SCRAM-SHA-512", "SCRAM-SHA-1"])

    def test_one_plus_allowed_keeps_bindings(self):
        """One allowed -PLUS mechanism keeps every binding of the stream."""
        ctx = SASLContext(host=HOST, auth=FakeAuth(), secure=True, channel_bindings=BINDINGS,
                          allowed=frozenset({"SCRAM-SHA-1-PLUS"}))
        self.assertEqual(ctx.channel_bindings, BINDINGS)
        self.assertEqual(available_mechanisms(ctx), ["SCRAM-SHA-1-PLUS"])

    def test_public_names(self):
        """The package re-exports the value types the mechanism modules import from
        jabberapp.sasl_exchange (outside the package, so they import nothing of it)."""
        import jabberapp.sasl
        import jabberapp.sasl_exchange

        for name in ("Challenge", "Success", "SASLFailure", "SASL_CONDITIONS", "SASLContext",
                     "authzid_matches"):
            self.assertIs(getattr(jabberapp.sasl, name), getattr(jabberapp.sasl_exchange, name))
        self.assertIs(scram.SASLFailure, jabberapp.sasl_exchange.SASLFailure)

    def test_failure_conditions(self):
        """SASLFailure accepts the RFC 6120 §6.5 conditions only."""
        self.assertEqual(SASLFailure("aborted", "x").text, "x")
        self.assertIsNone(SASLFailure("not-authorized").text)
        self.assertRaises(ValueError, SASLFailure, "bad-request")


# --- What slixmpp 1.8 does over TLS 1.3 (issue 11 item 7) --------------------------------------

@implementer(IAuthProvider)
class ScramAndPlainAuth(FakeAuth):
    """FakeAuth that also checks PLAIN passwords against one (username, password)."""

    def __init__(self, credentials, username, password):
        super().__init__(credentials)
        self.plain = (username, password)

    def check_password(self, host, username, password):
        return defer.succeed(host == HOST and (username, password) == self.plain)


class Slixmpp18Tests(SynchronousTestCase):
    """slixmpp 1.8.3 with its defaults knows only tls-unique: over TLS 1.3 it tries every -PLUS
    with p=tls-unique, then every SCRAM with 'y', then PLAIN, each on a new <auth/>."""

    def setUp(self):
        credentials = {(HOST, "juliet", name): derive("r0m30", name, iterations=4096)
                       for name in HASHES}
        self.auth = ScramAndPlainAuth(credentials, "juliet", "r0m30")
        self.ctx = _ctx(self.auth)   # TLS 1.3: tls-exporter and tls-server-end-point

    def test_default_sequence_logs_in_uncounted(self):
        """Its six refused attempts are none of them counted, and PLAIN then logs in."""
        refused = []
        for name in available_mechanisms(self.ctx):
            mech = create_mechanism(name, self.ctx)
            if name == "PLAIN":
                result = self.successResultOf(mech.start(b"\0juliet\0r0m30"))
                break
            hash_name = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256",
                         "SCRAM-SHA-512": "sha512"}[name.removesuffix("-PLUS")]
            header = "p=tls-unique,," if name.endswith("-PLUS") else "y,,"
            client = Client(hash_name, "juliet", "r0m30", gs2_header=header)
            refused.append(self.failureResultOf(mech.start(client.first()), SASLFailure).value)
        self.assertEqual(result, Success("juliet"))
        self.assertEqual([f.condition for f in refused], ["malformed-request"] * 3
                         + ["not-authorized"] * 3)
        self.assertEqual([f.counted for f in refused], [False] * 6)
        self.assertEqual(self.auth.lookups, [])
