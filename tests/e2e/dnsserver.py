"""
A tiny authoritative DNS server for the interop tests (twisted.names), run as a subprocess:

    python -m tests.e2e.dnsserver "SRV _xmpp-server._tcp.ja.example 0 5 5269 ja.example" \
        "A ja.example 127.0.0.1"

It answers UDP and TCP on one loopback port and prints "dns listening on port N" once both
are bound. Names it knows answer their records (NOERROR with no answer for other types);
anything else is NXDOMAIN. No system file is touched: peers are pointed at it explicitly
(jabberapp's [s2s] dns_servers, Prosody's `unbound = { forward = ... }`).
"""
import sys

from twisted.internet import defer, reactor
from twisted.internet.error import CannotListenError
from twisted.names import dns, error, server


class Records:
    """An IResolver-ish authority over a fixed set of records."""

    def __init__(self, lines):
        self.records = {}
        for line in lines:
            kind, name, *data = line.split()
            name = name.lower().rstrip(".")
            if kind == "SRV":
                priority, weight, port, target = data
                record = dns.Record_SRV(int(priority), int(weight), int(port), target, ttl=5)
                rtype = dns.SRV
            elif kind == "A":
                record, rtype = dns.Record_A(data[0], ttl=5), dns.A
            elif kind == "AAAA":
                record, rtype = dns.Record_AAAA(data[0], ttl=5), dns.AAAA
            else:
                raise SystemExit(f"unknown record type {kind}")
            self.records.setdefault(name, []).append((rtype, record))

    def query(self, query, timeout=None):
        name = query.name.name.decode("ascii").lower().rstrip(".")
        print(f"query {dns.QUERY_TYPES.get(query.type, query.type)} {name}", flush=True)
        if name not in self.records:
            return defer.fail(error.DomainError(name))
        answers = [dns.RRHeader(name=name, type=rtype, payload=record, ttl=5, auth=True)
                   for rtype, record in self.records[name] if rtype == query.type]
        return defer.succeed((answers, [], []))


def main(lines):
    factory = server.DNSServerFactory(authorities=[Records(lines)])
    factory.noisy = False
    for _ in range(20):
        protocol = dns.DNSDatagramProtocol(factory)
        protocol.noisy = False
        udp = reactor.listenUDP(0, protocol, interface="127.0.0.1")
        port = udp.getHost().port
        try:
            reactor.listenTCP(port, factory, interface="127.0.0.1")
            break
        except CannotListenError:
            udp.stopListening()
    else:
        raise SystemExit("no port free for both UDP and TCP")
    print(f"dns listening on port {port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
