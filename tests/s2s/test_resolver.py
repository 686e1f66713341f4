"""Where s2s connects: static routes, SRV (RFC 6120 §3.2, XEP-0368), A/AAAA fallback."""
import random

from twisted.internet import defer
from twisted.names import dns
from twisted.names.error import DNSNameError, DNSServerError
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.config import S2SRoute
from jabberapp.s2s.resolver import ResolutionError, S2SResolver, Target


def srv(name, priority, weight, port, target):
    return dns.RRHeader(name=name, type=dns.SRV,
                        payload=dns.Record_SRV(priority, weight, port, target))


class FakeDNS:
    """Answers from a dict name -> list of RRHeader (or an exception instance)."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.asked = []

    def _lookup(self, name):
        self.asked.append(name)
        answer = self.answers.get(name, DNSNameError(name))
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed((answer, [], []))

    lookupService = _lookup

    def lookupAddress(self, name):
        return self._lookup("A " + name)

    def lookupIPV6Address(self, name):
        return self._lookup("AAAA " + name)


def resolver(dns_answers=None, routes=(), resolve_addresses=False):
    fake = FakeDNS(dns_answers)
    table = [S2SRoute(*route) for route in routes]
    res = S2SResolver(lambda d: [r for r in table if r.domain == d], dns=fake,
                      resolve_addresses=resolve_addresses, rng=random.Random(4))
    return res, fake


class ResolverTests(SynchronousTestCase):
    def test_static_routes_first(self):
        """A static route is used as written, in order, and DNS is never asked."""
        res, fake = resolver(routes=[("b.example", "127.0.0.1", 5270),
                                     ("b.example", "::1", 5271, True)])
        targets = self.successResultOf(res.resolve("b.example"))
        self.assertEqual(targets, [Target("127.0.0.1", 5270), Target("::1", 5271, True)])
        self.assertEqual(fake.asked, [])

    def test_no_srv_falls_back_to_the_domain(self):
        """Without SRV records the domain itself is tried on port 5269."""
        res, fake = resolver()
        self.assertEqual(self.successResultOf(res.resolve("b.example")),
                         [Target("b.example", 5269)])
        self.assertEqual(sorted(fake.asked), ["_xmpp-server._tcp.b.example",
                                              "_xmpps-server._tcp.b.example"])

    def test_failed_lookup_falls_back_too(self):
        """A broken SRV lookup (server failure) is treated like no records."""
        res, _ = resolver({"_xmpp-server._tcp.b.example": DNSServerError("SERVFAIL")})
        self.assertEqual(self.successResultOf(res.resolve("b.example")),
                         [Target("b.example", 5269)])

    def test_srv_order(self):
        """Records are merged by priority; direct TLS first within a priority."""
        res, _ = resolver({
            "_xmpp-server._tcp.b.example": [srv("x", 10, 0, 5269, "plain1.b.example"),
                                            srv("x", 20, 0, 5269, "plain2.b.example")],
            "_xmpps-server._tcp.b.example": [srv("x", 10, 0, 5270, "tls.b.example")],
        })
        self.assertEqual(self.successResultOf(res.resolve("b.example")), [
            Target("tls.b.example", 5270, True),
            Target("plain1.b.example", 5269),
            Target("plain2.b.example", 5269)])

    def test_weights(self):
        """Within a priority every record is returned once, whatever the weights."""
        records = [srv("x", 0, w, 5269, f"h{w}.b.example") for w in (0, 10, 60)]
        res, _ = resolver({"_xmpp-server._tcp.b.example": records})
        hosts = [t.host for t in self.successResultOf(res.resolve("b.example"))]
        self.assertEqual(sorted(hosts), ["h0.b.example", "h10.b.example", "h60.b.example"])

    def test_explicitly_no_service(self):
        """A single SRV record with target '.' on both services means no XMPP server."""
        res, _ = resolver({
            "_xmpp-server._tcp.b.example": [srv("x", 0, 0, 0, "")],
            "_xmpps-server._tcp.b.example": [srv("x", 0, 0, 0, "")],
        })
        self.failureResultOf(res.resolve("b.example"), ResolutionError)

    def test_dot_for_one_service_only(self):
        """'.' for STARTTLS with a direct TLS record leaves the direct TLS target."""
        res, _ = resolver({
            "_xmpp-server._tcp.b.example": [srv("x", 0, 0, 0, "")],
            "_xmpps-server._tcp.b.example": [srv("x", 0, 0, 5270, "tls.b.example")],
        })
        self.assertEqual(self.successResultOf(res.resolve("b.example")),
                         [Target("tls.b.example", 5270, True)])

    def test_idna(self):
        """Internationalised domains are looked up by their A-label form."""
        res, fake = resolver()
        self.assertEqual(self.successResultOf(res.resolve("bücher.example")),
                         [Target("xn--bcher-kva.example", 5269)])
        self.assertIn("_xmpp-server._tcp.xn--bcher-kva.example", fake.asked)

    def test_addresses_with_configured_name_servers(self):
        """With configured name servers, host names become their A and AAAA addresses."""
        res, _ = resolver({
            "_xmpp-server._tcp.b.example": [srv("x", 0, 0, 5299, "xmpp.b.example")],
            "A xmpp.b.example": [dns.RRHeader("xmpp.b.example", dns.A,
                                              payload=dns.Record_A("192.0.2.7"))],
            "AAAA xmpp.b.example": [dns.RRHeader("xmpp.b.example", dns.AAAA,
                                                 payload=dns.Record_AAAA("2001:db8::7"))],
        }, resolve_addresses=True)
        self.assertEqual(self.successResultOf(res.resolve("b.example")),
                         [Target("192.0.2.7", 5299), Target("2001:db8::7", 5299)])

    def test_target_str(self):
        """Targets print as host:port, IPv6 in brackets, tls: for direct TLS."""
        self.assertEqual(str(Target("::1", 5269, True)), "tls:[::1]:5269")
        self.assertEqual(str(Target("b.example", 5269)), "b.example:5269")
