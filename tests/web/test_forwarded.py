"""X-Forwarded-For trust: address normalisation and the right-most untrusted hop."""
import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from jabberapp.web.forwarded import TrustedProxies, normal_address


class NormalAddressTests(SynchronousTestCase):
    def test_forms(self):
        """Plain, bracketed, with port, and IPv4-mapped addresses are read; others None."""
        self.assertEqual(str(normal_address("192.0.2.1")), "192.0.2.1")
        self.assertEqual(str(normal_address("192.0.2.1:8080")), "192.0.2.1")
        self.assertEqual(str(normal_address("[2001:db8::1]:443")), "2001:db8::1")
        self.assertEqual(str(normal_address("2001:db8::1")), "2001:db8::1")
        self.assertEqual(str(normal_address("::ffff:192.0.2.1")), "192.0.2.1")
        for text in (None, "", "unknown", "_hidden", "999.1.1.1"):
            self.assertIsNone(normal_address(text))


class TrustedProxiesTests(SynchronousTestCase):
    def setUp(self):
        self.proxies = TrustedProxies([ipaddress.ip_network("10.0.0.0/8"),
                                       ipaddress.ip_network("::1/128")])

    def test_untrusted_peer(self):
        """An untrusted peer is the client whatever the header says."""
        self.assertEqual(self.proxies.client("192.0.2.1", ["10.1.1.1"]), "192.0.2.1")

    def test_mapped_peer_trusted(self):
        """An IPv4-mapped IPv6 peer is compared as IPv4."""
        self.assertEqual(self.proxies.client("::ffff:10.0.0.1", ["192.0.2.9"]), "192.0.2.9")

    def test_chain(self):
        """Trusted hops are skipped from the right; the first untrusted one is the client."""
        self.assertEqual(self.proxies.client("::1", ["1.1.1.1", "192.0.2.9", "10.2.2.2"]),
                         "192.0.2.9")

    def test_empty(self):
        """No proxies configured: nothing is trusted."""
        self.assertFalse(TrustedProxies())
        self.assertFalse(TrustedProxies().trusts(normal_address("10.0.0.1")))
