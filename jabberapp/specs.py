"""
The specifications jabberapp implements, declared where they are implemented.

The core declares CORE_SPECS; each extension declares its own in its `specs` attribute. The
README's list is generated from these (`python -m jabberapp.admin.specs`), so it cannot drift.
"""
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Spec:
    """One RFC or XEP: e.g. Spec("XEP-0030", "2.5.0", "Service Discovery")."""

    name: str
    version: str
    title: str
    note: str = ""


CORE_SPECS = (
    Spec("RFC 6120", "", "XMPP Core",
         "streams, STARTTLS (TLS 1.2+), SASL, resource binding, stanza and stream errors"),
    Spec("RFC 3921", "", "XMPP IM (1st edition)", "session establishment, for old clients"),
    Spec("RFC 7622", "", "XMPP Address Format", "PRECIS via precis-i18n, IDNA via idna"),
    Spec("RFC 5802", "", "SCRAM", "SCRAM-SHA-1 and -SHA-1-PLUS"),
    Spec("RFC 7677", "", "SCRAM-SHA-256", "and SCRAM-SHA-512(-PLUS) built the same way"),
    Spec("RFC 9266", "", "Channel Bindings for TLS 1.3", "tls-exporter"),
    Spec("RFC 5929", "", "Channel Bindings for TLS", "tls-server-end-point"),
    Spec("XEP-0114", "1.6", "Jabber Component Protocol",
         "accept side: external components, and the same routing for in-process ones"),
    Spec("XEP-0227", "1.1", "Portable Import/Export Format for XMPP-IM Servers",
         "jabberappctl import and export"),
    Spec("XEP-0368", "1.1.0", "SRV records for XMPP over TLS",
         "direct TLS listeners (c2s, s2s); _xmpps-server._tcp SRV for outgoing s2s"),
    Spec("RFC 6125", "", "Representation and Verification of Domain-Based Application "
         "Service Identity", "peer certificates on s2s, via service_identity"),
    Spec("XEP-0178", "", "Best Practices for Use of SASL EXTERNAL",
         "server-to-server, both directions"),
    Spec("XEP-0185", "1.0", "Dialback Key Generation and Validation"),
    Spec("XEP-0220", "1.1.1", "Server Dialback",
         "over TLS, also with unverifiable certificates; no piggybacking"),
    Spec("XEP-0288", "", "Bidirectional Server-to-Server Connections"),
    Spec("XEP-0440", "0.4.2", "SASL Channel-Binding Type Capability"),
    Spec("XEP-0388", "1.0.4", "Extensible SASL Profile",
         "every SASL mechanism, the same throttle; user-agent id; no <continue/> tasks yet"),
    Spec("XEP-0386", "1.0.0", "Bind 2",
         "resource from the user-agent id; inline features registered by extensions"),
)


def sort_key(spec):
    """RFCs first, then XEPs, each in number order."""
    kind, _, number = spec.name.partition(" " if spec.name.startswith("RFC") else "-")
    return (kind != "RFC", int(number))
