"""
Where to connect for a remote domain: static routes, then DNS (RFC 6120 §3.2, XEP-0368).

Order of the answer:

1. Static routes from ``[s2s] routes`` for the domain, in the order written; DNS is not asked.
2. SRV records ``_xmpps-server._tcp.DOMAIN`` (direct TLS) and ``_xmpp-server._tcp.DOMAIN``
   (STARTTLS), looked up together and merged by priority; within one priority the records
   are ordered by RFC 2782 weighted random selection, direct TLS first (XEP-0368 §3).
   A single record whose target is '.' means "no service here" (RFC 2782).
3. No SRV record at all (or a failed SRV lookup): the domain itself on port 5269.

Host names are connected to through the reactor's resolver (A and AAAA, /etc/hosts), unless
name servers are configured (``[s2s] dns_servers``): then the resolver also looks up each
target's A and AAAA records itself, so SRV and address lookups ask the same servers.
"""
import ipaddress
import random
from dataclasses import dataclass

import idna
from twisted.internet import defer
from twisted.names import dns
from twisted.names.error import DNSNameError

from jabberapp.logging import logger

log = logger(__name__)

DEFAULT_PORT = 5269


@dataclass(frozen=True)
class Target:
    """One place to try: a host name or IP address, a port, and whether TLS comes first."""

    host: str
    port: int
    direct_tls: bool = False

    def __str__(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls:' if self.direct_tls else ''}{host}:{self.port}"


class ResolutionError(Exception):
    """The domain has no XMPP server (explicit '.' SRV targets, or an invalid name)."""


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class S2SResolver:
    """
    Targets for a remote domain (see the module docstring).

    @param routes: a callable domain -> sequence of objects with host, port, direct_tls
        (``S2SConfig.routes_for``).
    @param dns: an IResolver (twisted.names) for SRV lookups; None: the system's, created on
        first use.
    @param resolve_addresses: look up A/AAAA of host names with C{dns} as well (configured
        name servers), instead of leaving them to the reactor.
    """

    def __init__(self, routes, dns=None, resolve_addresses=False, rng=None):
        self._routes = routes
        self._dns = dns
        self.resolve_addresses = resolve_addresses
        self._random = rng or random.SystemRandom()

    @property
    def dns(self):
        if self._dns is None:
            from twisted.names import client
            self._dns = client.createResolver()
        return self._dns

    def resolve(self, domain: str) -> defer.Deferred:
        """Deferred list of L{Target}s for C{domain}; fails with L{ResolutionError}."""
        static = [Target(r.host, r.port, r.direct_tls) for r in self._routes(domain)]
        if static:
            d = defer.succeed(static)
        else:
            try:
                name = idna.encode(domain, uts46=True).decode("ascii")
            except idna.IDNAError:
                return defer.fail(ResolutionError(f"{domain!r} is not a valid DNS name"))
            d = defer.gatherResults([
                self._srv(f"_xmpps-server._tcp.{name}"),
                self._srv(f"_xmpp-server._tcp.{name}"),
            ])
            d.addCallback(self._order, name)
        if self.resolve_addresses:
            d.addCallback(self._expand)
        return d

    def _srv(self, name):
        """Deferred: a list of Record_SRV; [] when there are none or the lookup failed
        (RFC 6120 §3.2.1: then the domain's own address is tried)."""
        d = self.dns.lookupService(name)

        def records(answer):
            answers, _, _ = answer
            return [rr.payload for rr in answers if rr.type == dns.SRV]

        def failed(failure):
            if failure.check(DNSNameError):
                return []
            log.debug("SRV lookup of {name} failed: {error}", name=name,
                      error=failure.getErrorMessage())
            return []

        return d.addCallbacks(records, failed)

    def _order(self, results, name):
        tls_records, tcp_records = results
        tls_records = self._usable(tls_records)
        tcp_records = self._usable(tcp_records)
        if tls_records is None and tcp_records is None:
            raise ResolutionError(f"{name} says it offers no XMPP service (SRV target '.')")
        tls_records = tls_records or []
        tcp_records = tcp_records or []
        if not tls_records and not tcp_records:
            return [Target(name, DEFAULT_PORT)]
        targets = []
        for priority in sorted({r.priority for r in tls_records + tcp_records}):
            for records, direct in ((tls_records, True), (tcp_records, False)):
                group = [r for r in records if r.priority == priority]
                for record in self._weighted(group):
                    targets.append(Target(str(record.target).rstrip("."), record.port, direct))
        return targets

    @staticmethod
    def _usable(records):
        """None for an explicit "no service" answer (one record, target '.'), else records."""
        if len(records) == 1 and str(records[0].target) in ("", "."):
            return None
        return [r for r in records if str(r.target) not in ("", ".")]

    def _weighted(self, records):
        """RFC 2782 weighted random order of records of one priority."""
        remaining = sorted(records, key=lambda r: r.weight)   # zero weights first, as RFC
        ordered = []
        while remaining:
            total = sum(r.weight for r in remaining)
            pick = self._random.randint(0, total) if total else 0
            running = 0
            for index, record in enumerate(remaining):
                running += record.weight
                if running >= pick:
                    ordered.append(remaining.pop(index))
                    break
        return ordered

    @defer.inlineCallbacks
    def _expand(self, targets):
        """Replace host names by their addresses (configured name servers only)."""
        expanded = []
        for target in targets:
            if is_ip(target.host):
                expanded.append(target)
                continue
            for lookup in (self.dns.lookupAddress, self.dns.lookupIPV6Address):
                try:
                    answers, _, _ = yield lookup(target.host)
                except Exception as exc:
                    log.debug("address lookup of {host} failed: {error}", host=target.host,
                              error=exc)
                    continue
                for rr in answers:
                    if rr.type in (dns.A, dns.AAAA):
                        expanded.append(Target(rr.payload.dottedQuad() if rr.type == dns.A
                                               else _ipv6(rr.payload.address),
                                               target.port, target.direct_tls))
        return expanded


def _ipv6(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))
