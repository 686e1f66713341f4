"""
Server-side SASL (RFC 6120 §6, RFC 4422): the mechanism table, and the public face of the
package.

A mechanism (an L{jabberapp.interfaces.ISASLMechanism}) is built by L{create_mechanism} for a
stream described by a L{SASLContext} and answers with a L{Challenge}, a L{Success} or a
L{SASLFailure}. Those value types live in L{jabberapp.sasl_exchange}, outside this package,
so that the mechanism modules import nothing of it; import them from here, which re-exports
them.
"""
# Only modules that import nothing of this package may be imported here (plain and scram
# take their value types from jabberapp.sasl_exchange): anything else would run this file
# again half-way, an import cycle through the package.
from jabberapp.sasl.plain import PlainMechanism
from jabberapp.sasl.scram import ScramMechanism
from jabberapp.sasl_exchange import (SASL_CONDITIONS, Challenge, SASLContext, SASLFailure,
                                     Success, authzid_matches)

__all__ = [
    "MECHANISM_NAMES", "SASL_CONDITIONS", "Challenge", "SASLContext", "SASLFailure", "Success",
    "authzid_matches", "available_mechanisms", "create_mechanism",
]

# (mechanism name, hash name, channel binding) in preference order.
_SCRAM_MECHANISMS = (
    ("SCRAM-SHA-512-PLUS", "sha512", True),
    ("SCRAM-SHA-256-PLUS", "sha256", True),
    ("SCRAM-SHA-1-PLUS", "sha1", True),
    ("SCRAM-SHA-512", "sha512", False),
    ("SCRAM-SHA-256", "sha256", False),
    ("SCRAM-SHA-1", "sha1", False),
)

# Every mechanism name the server implements, most preferred first.
MECHANISM_NAMES = tuple(name for name, _, _ in _SCRAM_MECHANISMS) + ("PLAIN",)


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
