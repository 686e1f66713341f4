"""
What a SASL exchange answers (RFC 6120 §6, RFC 4422): a L{Challenge}, a L{Success} or a
L{SASLFailure}.

A mechanism sees raw bytes: the stream layer owns base64 and the '=' empty-response
convention, and turns these into <challenge/>, <success/> or <failure/>. Every mechanism
module imports them from here, never from the package, so the package can re-export both.
"""
from dataclasses import dataclass

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
