"""XEP-0484 FAST tokens over SASL2, driven with plain bytes."""
import base64
import hashlib
import hmac

from twisted.trial.unittest import SynchronousTestCase

from jabberapp.extensions.fast import NS_FAST, fast_tokens
from jabberapp.jid import JID
from tests.c2s_bytes import PASSWORD, World
from tests.test_sasl2 import NS_SASL, NS_SASL2, UA_ID, first, q, user_agent

PLAIN = f"\0alice\0{PASSWORD}".encode()


def authenticate(mechanism, initial, inner=""):
    return (f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>"
            f"<initial-response>{base64.b64encode(initial).decode()}</initial-response>"
            f"{inner}</authenticate>").encode()


def proof(token, user="alice", cb=b""):
    return user.encode() + b"\0" + hmac.new(token.encode(), b"Initiator" + cb,
                                            hashlib.sha256).digest()


class FastTests(SynchronousTestCase):
    """A token obtained at login, used, replayed, rotated, invalidated, revoked."""

    def setUp(self):
        self.world = World()
        self.world.host.install(fast_tokens, {"token_lifetime": 86400})

    def login(self, mechanism, initial, inner):
        transport = self.world.secure()
        transport.feed(authenticate(mechanism, initial, inner))
        self.world.clock.advance(60)    # past any delay the throttle puts on the answer
        return transport, transport.take()

    def token(self, ua=UA_ID):
        """A password login with <request-token/>: the token string."""
        _, out = self.login("PLAIN", PLAIN, user_agent(ua)
                            + f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>")
        token = first(out, "success").find(q(NS_FAST, "token"))
        self.assertIsNotNone(token, out)
        self.assertTrue(token.get("expiry").endswith("Z"))
        return token.get("token")

    def fast(self, token, count, ua=UA_ID, extra="", user="alice"):
        """A FAST login: what the server answered."""
        _, out = self.login("HT-SHA-256-NONE", proof(token, user),
                            user_agent(ua) + f"<fast xmlns='{NS_FAST}' count='{count}'/>"
                            + extra)
        return out

    def assertSuccess(self, out, token):
        success = first(out, "success")
        data = base64.b64decode(success.findtext(q(NS_SASL2, "additional-data")))
        self.assertEqual(data, hmac.new(token.encode(), b"Responder", hashlib.sha256).digest())

    def assertRefused(self, out, condition="not-authorized"):
        self.assertIsNotNone(first(out, "failure").find(q(NS_SASL, condition)), out)

    def test_offered_inline_not_in_mechanisms(self):
        """<fast/> in SASL2's <inline/> lists HT-SHA-256-NONE (no TLS binding here); the
        HT mechanisms are not among the password mechanisms."""
        features = self.world.secure().stream.features()
        authentication = features.find(q(NS_SASL2, "authentication"))
        fast = authentication.find(f"{q(NS_SASL2, 'inline')}/{q(NS_FAST, 'fast')}")
        self.assertEqual([m.text for m in fast], ["HT-SHA-256-NONE"])
        self.assertFalse([m for m in authentication.findall(q(NS_SASL2, "mechanism"))
                          if m.text.startswith("HT-")])

    def test_token_logs_in_and_counter_stops_replay(self):
        """The token logs in (the server proves it knows it too); the same count again,
        or a lower one, is refused; a higher one works."""
        token = self.token()
        self.assertSuccess(self.fast(token, 1), token)
        self.assertRefused(self.fast(token, 1))
        self.assertRefused(self.fast(token, 0))
        self.assertSuccess(self.fast(token, 2), token)

    def test_token_is_per_device_and_account(self):
        """Another user-agent id or another username with the token is refused."""
        token = self.token()
        self.assertRefused(self.fast(token, 1, ua="0b3c4e1a-4b2e-4c1e-9d0f-5a6b7c8d9e0f"))
        self.assertRefused(self.fast(token, 1, user="bob"))

    def test_rotation_keeps_the_old_token_until_the_new_is_used(self):
        """A new token requested during a FAST login is given in <success/>; the old one
        keeps working until the new one is used, then stops."""
        old = self.token()
        out = self.fast(old, 1, extra=f"<request-token xmlns='{NS_FAST}' "
                                      "mechanism='HT-SHA-256-NONE'/>")
        new = first(out, "success").find(q(NS_FAST, "token")).get("token")
        self.assertNotEqual(new, old)
        self.assertSuccess(self.fast(old, 2), old)
        self.assertSuccess(self.fast(new, 1), new)
        self.assertRefused(self.fast(old, 3))

    def test_expired_token_refused(self):
        """A token past its lifetime is refused."""
        token = self.token()
        self.world.clock.advance(86401)
        self.assertRefused(self.fast(token, 1))

    def test_invalidate(self):
        """<fast invalidate='true'/> logs in, then the token is gone."""
        token = self.token()
        out = self.fast(token, 1)
        self.assertSuccess(out, token)
        _, out = self.login("HT-SHA-256-NONE", proof(token), user_agent()
                            + f"<fast xmlns='{NS_FAST}' count='2' invalidate='true'/>")
        self.assertSuccess(out, token)
        self.assertRefused(self.fast(token, 3))

    def test_password_change_revokes(self):
        """IHost.password_changed deletes the account's tokens."""
        token = self.token()
        api = self.world.host.extensions["fast"]
        api.password_changed(JID.parse("alice@example.org"))
        self.assertRefused(self.fast(token, 1))

    def test_malformed(self):
        """No count, or no user-agent id, is <malformed-request/>; a wrong token is
        <not-authorized/>."""
        token = self.token()
        _, out = self.login("HT-SHA-256-NONE", proof(token), user_agent())
        self.assertRefused(out, "malformed-request")
        _, out = self.login("HT-SHA-256-NONE", proof(token), f"<fast xmlns='{NS_FAST}' count='1'/>")
        self.assertRefused(out, "malformed-request")
        self.assertRefused(self.fast("not the token", 1))

    def test_channel_bound_mechanism_without_binding_is_invalid(self):
        """HT-SHA-256-EXPR on a stream without tls-exporter is <invalid-mechanism/>."""
        _, out = self.login("HT-SHA-256-EXPR", proof("x"), user_agent()
                            + f"<fast xmlns='{NS_FAST}' count='1'/>")
        self.assertIsNotNone(first(out, "failure").find(q(NS_SASL, "invalid-mechanism")))
