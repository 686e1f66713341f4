"""
The vocabulary of a server-side SASL exchange (RFC 6120 §6, RFC 4422): what a mechanism is
given (L{SASLContext}) and what it answers (L{Challenge}, L{Success}, L{SASLFailure}), and the
authorization identity rule every mechanism shares (L{authzid_matches}).

A mechanism sees raw bytes: the stream layer owns base64 and the '=' empty-response
convention, and turns the answers into <challenge/>, <success/> or <failure/>.

This module lives outside the jabberapp.sasl package, as jabberapp.namespaces does outside
jabberapp.xml: the mechanism modules (jabberapp.sasl.plain, jabberapp.sasl.scram) import it,
and the package imports them to build its mechanism table, so anything they imported from
inside the package would run the package's __init__ half-way (an import cycle). Import these
names from jabberapp.sasl, which re-exports them; this module imports nothing of jabberapp
but jid and interfaces.
"""
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jabberapp.interfaces import IAuthProvider
from jabberapp.jid import JID, InvalidJID, prep_domain

# RFC 6120 §6.5: the only conditions a <failure/> may carry.
SASL_CONDITIONS = frozenset({
    "aborted", "account-disabled", "credentials-expired", "encryption-required",
    "incorrect-encoding", "invalid-authzid", "invalid-mechanism", "malformed-request",
    "mechanism-too-weak", "not-authorized", "temporary-auth-failure",
})


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
        return f"SASLFailure({self.condition!r}, {self.text!r}, counted={self.counted!r})"


@dataclass(frozen=True)
class SASLContext:
    """What a mechanism needs to know about the stream it runs on.

    C{channel_bindings} are the bindings this stream offers to SCRAM-*-PLUS (cb-name ->
    data). When C{allowed} (the [auth] mechanisms; None: all of them) admits no -PLUS
    mechanism, the stream offers no binding at all and the mapping is emptied: then the
    stream advertises no XEP-0440 binding type that no offered mechanism could use, and a
    client sending SCRAM's 'y' flag is right to think the server does not bind (RFC 5802 §6).

    C{admit}, when given, is called with the prepared username just before a mechanism checks
    credentials for it; the check waits for the Deferred it returns (None: check at once). The
    stream uses it for the failed-login throttle (jabberapp.sasl.throttle), so guesses are
    slowed before they are checked.
    """

    host: str                              # the domain being logged into
    auth: IAuthProvider
    secure: bool                           # TLS is active on the stream
    channel_bindings: Mapping[str, bytes]  # cb-name -> data; empty without TLS
    allowed: frozenset | None = None       # [auth] mechanisms; None: all of them
    admit: Callable[[str], object] | None = None  # username -> Deferred or None; see above

    def __post_init__(self):
        if (self.channel_bindings and self.allowed is not None
                and not any(name.endswith("-PLUS") for name in self.allowed)):
            object.__setattr__(self, "channel_bindings", {})


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
