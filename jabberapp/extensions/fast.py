"""
XEP-0484: Fast Authentication Streamlining Tokens (urn:xmpp:fast:0), on XEP-0388 SASL2.

Theory of operation
-------------------
- **Offer.** On an encrypted stream, SASL2's <inline/> carries <fast/> with the HT-SHA-256
  mechanisms this stream can run: -NONE always, -ENDP and -EXPR when the stream has the
  tls-server-end-point and tls-exporter bindings (-UNIQ never: tls-unique does not exist in
  TLS 1.3 and is not offered for 1.2 either). They are registered with
  IHost.add_sasl2_mechanism: never listed with the password mechanisms.
- **Token.** <request-token mechanism=…/> in an <authenticate/> that carries a user-agent id
  answers, once authenticated, <token expiry=… token=…/> in <success/>: 32 random bytes
  (base64url) valid ``token_lifetime`` seconds, one per account and device (the user-agent
  id, stored hashed). A new token keeps the one it replaces valid until the new one is first
  used (rotation: a client that missed the <success/> can still log in).
- **Use.** <authenticate mechanism='HT-SHA-256-…'> with <fast count=…/> and the initial
  response ``username NUL HMAC-SHA-256(token, "Initiator" || cb-data)``: the token of that
  account and device (the current one or the one it replaced), unexpired, and a count above
  every count used with it so far (replay), else <not-authorized/>, counted by the
  failed-login throttle like a wrong password (the check waits its turn as a password check
  does). <success/> carries HMAC-SHA-256(token, "Responder" || cb-data).
  <fast invalidate='true'/> deletes the device's token after the login.
- **Revocation.** A password change (PASSWORD_CHANGED) deletes every token of the account; an
  account deletion removes them with the rest of its data.
"""
import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timezone

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch, sasl
from jabberapp.config import Option, int_range
from jabberapp.interfaces import IExtension, ISASLMechanism
from jabberapp.jid import InvalidJID, prep_localpart
from jabberapp.specs import Spec
from jabberapp.xml import element

NS_FAST = "urn:xmpp:fast:0"
NS_SASL2 = "urn:xmpp:sasl:2"
# mechanism -> the channel binding it runs on (None: none)
MECHANISMS = {"HT-SHA-256-ENDP": "tls-server-end-point", "HT-SHA-256-EXPR": "tls-exporter",
              "HT-SHA-256-NONE": None}
STORE = "fast"


@implementer(IPlugin, IExtension)
class FastTokens:
    """The FAST extension (see the module docstring)."""

    name = "fast"
    depends = ()
    specs = (Spec("XEP-0484", "0.2.0", "Fast Authentication Streamlining Tokens",
                  "HT-SHA-256-NONE, -ENDP, -EXPR; per device, rotation, count against "
                  "replay; revoked by a password change"),)
    options = (
        Option("token_lifetime", int_range(60, 365 * 86400), default=14 * 86400,
               doc="Seconds a FAST token stays valid after it is issued."),
    )

    def install(self, host):
        """Register the SASL2 inline feature, the mechanisms and the revocation hook."""
        tokens = Tokens(host, host.config["token_lifetime"])
        host.add_sasl2_feature(NS_FAST, "fast", tokens.inline, offer=tokens.offer)
        for name in MECHANISMS:
            host.add_sasl2_mechanism(name, tokens.mechanism_factory(name))
        host.hook(dispatch.PASSWORD_CHANGED, tokens.revoke)


class Tokens:
    """The tokens of one host, in its key-value store (one document per account and device)."""

    def __init__(self, host, lifetime):
        self.host = host
        self.lifetime = lifetime
        self.store = host.storage.keyvalue(STORE)

    def offer(self, stream):
        """<fast/> with the mechanisms this stream can run; nothing without TLS."""
        if not stream.secure:
            return None
        bindings = stream.sasl_context().channel_bindings
        fast = element(NS_FAST, "fast")
        for name, cb_type in MECHANISMS.items():
            if cb_type is None or cb_type in bindings:
                fast.append(element(NS_FAST, "mechanism", text=name))
        return fast

    def mechanism_factory(self, name):
        def factory(stream, context, request):
            cb_type = MECHANISMS[name]
            if not stream.secure or (cb_type is not None
                                     and cb_type not in context.channel_bindings):
                raise sasl.SASLFailure("invalid-mechanism")
            cb_data = b"" if cb_type is None else context.channel_bindings[cb_type]
            return HTMechanism(self, name, context, cb_data, request)
        return factory

    def inline(self, stream, el, answer):
        """<request-token/> and <fast/> of an <authenticate/> once authenticated."""
        return defer.ensureDeferred(self._inline(stream, el, answer))

    async def _inline(self, stream, el, answer):
        device = _device(el.getparent())
        if device is None or not stream.secure:
            return
        name = el.tag.rpartition("}")[2]
        domain, username = stream.host.domain, stream.username
        if name == "request-token" and el.get("mechanism") in MECHANISMS:
            record = await self.store.get(domain, username, device) or {}
            token = secrets.token_urlsafe(32)
            expiry = self.host.clock.seconds() + self.lifetime
            previous = None
            if record.get("token"):
                previous = [record["token"], record["count"], record["expiry"]]
            await self.store.set(domain, username, device, {
                "token": token, "count": -1, "expiry": expiry, "previous": previous})
            answer(element(NS_FAST, "token", token=token, expiry=_timestamp(expiry)))
        elif name == "fast" and el.get("invalidate") in ("true", "1"):
            await self.store.set(domain, username, device, None)

    def revoke(self, bare_jid):
        """PASSWORD_CHANGED: every token of the account goes."""
        return self.store.delete_user(bare_jid.domain, bare_jid.local)

    async def check(self, username, device, proof, count, cb_data):
        """The token of C{username}'s C{device} that C{proof} was made with, its C{count}
        recorded; None when no valid token matches."""
        record = await self.store.get(self.host.domain, username, device)
        if record is None:
            return None
        now = self.host.clock.seconds()
        candidates = [("current", record["token"], record["count"], record["expiry"])]
        if record.get("previous"):
            candidates.append(("previous", *record["previous"]))
        for which, token, used, expiry in candidates:
            expected = _hmac(token, b"Initiator" + cb_data)
            if hmac.compare_digest(expected, proof) and expiry > now and count > used:
                if which == "current":
                    record["count"] = count
                    record["previous"] = None    # the new token works: the old one goes
                else:
                    record["previous"][1] = count
                await self.store.set(self.host.domain, username, device, record)
                return token
        return None


@implementer(ISASLMechanism)
class HTMechanism:
    """One HT-SHA-256-* exchange (XEP-0484 §4): a single initial response."""

    def __init__(self, tokens, name, context, cb_data, request):
        self.name = name
        self.username = None       # read by the stream for the throttle's account key
        self._tokens = tokens
        self._context = context
        self._cb_data = cb_data
        self._request = request

    def start(self, initial):
        """Check the initial response: username NUL HMAC."""
        return defer.ensureDeferred(self._start(initial))

    async def _start(self, initial):
        if not initial or b"\0" not in initial:
            raise sasl.SASLFailure("malformed-request")
        authcid, _, proof = initial.partition(b"\0")
        fast = None if self._request is None else self._request.find(f"{{{NS_FAST}}}fast")
        device = _device(self._request)
        try:
            username = prep_localpart(authcid.decode("utf-8"))
            count = int(fast.get("count", "")) if fast is not None else None
        except (UnicodeDecodeError, InvalidJID, ValueError):
            raise sasl.SASLFailure("malformed-request") from None
        if count is None or device is None:
            raise sasl.SASLFailure("malformed-request", "FAST needs <fast count=…/> and a "
                                   "user-agent id")
        self.username = username
        if self._context.admit is not None:
            await defer.maybeDeferred(self._context.admit, username)
        token = await self._tokens.check(username, device, proof, count, self._cb_data)
        if token is None:
            raise sasl.SASLFailure("not-authorized")
        return sasl.Success(username, _hmac(token, b"Responder" + self._cb_data))

    def step(self, response):
        """HT mechanisms have no second message."""
        return defer.fail(sasl.SASLFailure("malformed-request"))


def _device(request):
    """The store key of the <authenticate/>'s user-agent id, or None."""
    agent = None if request is None else request.find(f"{{{NS_SASL2}}}user-agent")
    ua_id = None if agent is None else agent.get("id")
    if not ua_id:
        return None
    return "device-" + hashlib.sha256(ua_id.lower().encode()).hexdigest()[:32]


def _hmac(token, data):
    return hmac.new(token.encode(), data, hashlib.sha256).digest()


def _timestamp(seconds):
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


fast_tokens = FastTokens()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
