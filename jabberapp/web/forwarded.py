"""
Which addresses and schemes to believe behind reverse proxies.

A request's peer is the client, unless the peer is one of ``[http] trusted_proxies``: then
the X-Forwarded-* headers it added say who the client is. Every proxy appends the address it
received the request from to X-Forwarded-For, so the list is read from the right: each
entry that is a trusted proxy is skipped, and the first one that is not is the client.
Entries to its left were written by the client itself and prove nothing.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "header_values", "normal_address"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def normal_address(text: str | None) -> Address | None:
    """The IP address in C{text} ('1.2.3.4', '::1', '[::1]', '1.2.3.4:5678'), IPv4-mapped
    IPv6 addresses as IPv4; None when it is no address."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):                        # [v6] or [v6]:port (RFC 7239 style)
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:                       # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def header_values(request, name: bytes) -> list[str]:
    """Every comma-separated item of every C{name} header of C{request}, in order."""
    values = []
    for raw in request.requestHeaders.getRawHeaders(name, ()):
        for item in raw.split(b","):
            item = item.strip()
            if item:
                values.append(item.decode("latin-1"))
    return values


class TrustedProxies:
    """The configured proxy networks; answers whether a peer is one and who the client is."""

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()):
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: Address | None) -> bool:
        """True when C{address} is in one of the trusted networks."""
        if address is None:
            return False
        return any(address.version == net.version and address in net for net in self.networks)

    def client(self, peer: str, forwarded_for: list[str]) -> str:
        """
        The client's address for a request from C{peer} carrying the X-Forwarded-For items
        C{forwarded_for} (left to right): C{peer} itself unless it is trusted; else the
        right-most item that is not a trusted proxy. An item that is no IP address ends the
        walk at the last address read: only a trusted proxy wrote it, and it names no one.
        """
        current = normal_address(peer)
        if current is None or not self.trusts(current):
            return peer if current is None else str(current)
        for item in reversed(forwarded_for):
            address = normal_address(item)
            if address is None:
                break
            current = address
            if not self.trusts(address):
                break
        return str(current)
