"""
What a SASL mechanism knows about the stream it runs on (L{SASLContext}), and the
authorization identity rule every mechanism shares (L{authzid_matches}).
"""
from collections.abc import Mapping
from dataclasses import dataclass

from jabberapp.interfaces import IAuthProvider
from jabberapp.jid import JID, InvalidJID, prep_domain


@dataclass(frozen=True)
class SASLContext:
    """What a mechanism needs to know about the stream it runs on.

    C{channel_bindings} are the bindings this stream offers to SCRAM-*-PLUS (cb-name ->
    data). When C{allowed} (the [auth] mechanisms; None: all of them) admits no -PLUS
    mechanism, the stream offers no binding at all and the mapping is emptied: then the
    stream advertises no XEP-0440 binding type that no offered mechanism could use, and a
    client sending SCRAM's 'y' flag is right to think the server does not bind (RFC 5802 §6).
    """

    host: str                              # the domain being logged into
    auth: IAuthProvider
    secure: bool                           # TLS is active on the stream
    channel_bindings: Mapping[str, bytes]  # cb-name -> data; empty without TLS
    allowed: frozenset | None = None       # [auth] mechanisms; None: all of them

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
