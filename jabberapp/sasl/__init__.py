"""
Server-side SASL (RFC 6120 §6, RFC 4422): results, failures, context and the mechanism table.

A mechanism (an L{jabberapp.interfaces.ISASLMechanism}) sees raw bytes: the stream layer
owns base64 and the '=' empty-response convention, and turns a L{Challenge}, L{Success}
or L{SASLFailure} into <challenge/>, <success/> or <failure/>.
"""
from collections.abc import Mapping
from dataclasses import dataclass

from jabberapp.interfaces import IAuthProvider
from jabberapp.jid import JID, InvalidJID, prep_domain

# RFC 6120 §6.5: the only conditions a <failure/> may carry.
SASL_CONDITIONS = frozenset({
    "aborted", "account-disabled", "credentials-expired", "encryption-required",
    "incorrect-encoding", "invalid-authzid", "invalid-mechanism", "malformed-request",
    "mechanism-too-weak", "not-authorized", "temporary-auth-failure",
})

# (mechanism name, hash name, channel binding) in preference order.
_SCRAM_MECHANISMS = (
    ("SCRAM-SHA-512-PLUS", "sha512", True),
    ("SCRAM-SHA-256-PLUS", "sha256", True),
    ("SCRAM-SHA-1-PLUS", "sha1", True),
    ("SCRAM-SHA-512", "sha512", False),
    ("SCRAM-SHA-256", "sha256", False),
    ("SCRAM-SHA-1", "sha1", False),
)


@dataclass(frozen=True)
class Challenge:
    """A server challenge to send to the client (raw bytes, possibly empty)."""

    data: bytes


@dataclass(frozen=True)
class Success:
    """Authentication succeeded for C{username} (the prepared localpart).

    C{data} is the additional data to send in <success/> (the SCRAM server-final message),
    or None for none.
    """

    username: str
    data: bytes | None = None


class SASLFailure(Exception):
    """The exchange failed with an RFC 6120 §6.5 C{condition} and optional C{text}.

    The text reaches the client: never put a password, a key or an internal error in it.

    C{counted} says whether the failed-login throttle counts this failure as a guess: by
    default every condition except an abort or an unknown mechanism; a mechanism the client
    could not have used at all (nothing was checked) passes C{counted=False}.
    """

    def __init__(self, condition: str, text: str | None = None, counted: bool | None = None):
        if condition not in SASL_CONDITIONS:
            raise ValueError(f"unknown SASL failure condition {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text
        if counted is None:
            counted = condition not in ("aborted", "invalid-mechanism")
        self.counted = counted

    def __repr__(self):
        return f"SASLFailure({self.condition!r}, {self.text!r})"

# Every mechanism name the server implements, most preferred first.
MECHANISM_NAMES = tuple(name for name, _, _ in _SCRAM_MECHANISMS) + ("PLAIN",)


@dataclass(frozen=True)
class SASLContext:
    """What a mechanism needs to know about the stream it runs on."""

    host: str                              # the domain being logged into
    auth: IAuthProvider
    secure: bool                           # TLS is active on the stream
    channel_bindings: Mapping[str, bytes]  # cb-name -> data; empty without TLS
    allowed: frozenset | None = None       # [auth] mechanisms; None: all of them


def authzid_matches(authzid: str, username: str, host: str) -> bool:
    """True when C{authzid} is the bare JID of account C{username} (prepared) on C{host}.

    RFC 6120 §6.3.8: we accept no authorization identity other than the authenticating
    account's own bare JID, compared after RFC 7622 preparation.
    """
    try:
        jid = JID.parse(authzid)
        return (jid.resource is None and jid.local == username
                and jid.domain == prep_domain(host))
    except InvalidJID:
        return False


def available_mechanisms(ctx: SASLContext) -> list[str]:
    """The mechanism names to offer on a stream described by C{ctx}, most preferred first.

    The -PLUS variants are offered only when channel binding data is available, and PLAIN
    only inside TLS.
    """
    names = [name for name, _, plus in _SCRAM_MECHANISMS
             if not plus or ctx.channel_bindings]
    if ctx.secure:
        names.append("PLAIN")
    if ctx.allowed is not None:
        names = [name for name in names if name in ctx.allowed]
    return names


def create_mechanism(name: str, ctx: SASLContext):
    """A new L{ISASLMechanism} for mechanism C{name}.

    Raises L{SASLFailure} 'encryption-required' for PLAIN without TLS and 'invalid-mechanism'
    for any other name not in L{available_mechanisms}.
    """
    # Imported here: both modules import the value classes above.
    from jabberapp.sasl.plain import PlainMechanism
    from jabberapp.sasl.scram import ScramMechanism

    if name == "PLAIN" and not ctx.secure:
        raise SASLFailure("encryption-required", "PLAIN is only available over TLS")
    if name not in available_mechanisms(ctx):
        raise SASLFailure("invalid-mechanism")
    if name == "PLAIN":
        return PlainMechanism(ctx)
    for mech_name, hash_name, plus in _SCRAM_MECHANISMS:
        if mech_name == name:
            return ScramMechanism(hash_name, plus, ctx)
    raise AssertionError(f"mechanism {name!r} is offered but has no implementation")
