"""The [s2s] section: defaults, static routes, trust settings and their errors."""
import os
import shutil
import tempfile
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from jabberapp.config import (ConfigError, S2SConfig, S2SRoute, dns_servers, load_config,
                              render_example, s2s_routes)


class S2SConfigTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="jabberapp-s2s-config-")
        self.addCleanup(shutil.rmtree, self.dir)

    def load(self, s2s_text, hosts="a.example"):
        path = os.path.join(self.dir, "jabberapp.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"[server]\nhosts = {hosts}\ndata_dir = {self.dir}\n[s2s]\n"
                    + textwrap.dedent(s2s_text))
        return load_config(path).s2s

    def assertError(self, s2s_text, *fragments):
        with self.assertRaises(ConfigError) as caught:
            self.load(s2s_text)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_defaults(self):
        """Federation is on, STARTTLS required, dialback and bidi allowed, port 5269."""
        config = load_config(None).s2s
        self.assertEqual(config, S2SConfig())
        self.assertEqual((config.enabled, config.port, config.direct_tls_port,
                          config.require_encryption, config.allow_dialback, config.bidi,
                          config.ca_file, config.routes),
                         (True, 5269, 0, True, True, True, None, ()))

    def test_routes(self):
        """DOMAIN=HOST:PORT entries in order, tls: for direct TLS, IPv6 in brackets, the
        port 5269 by default, domains normalised."""
        config = self.load("routes = B.Example=127.0.0.1:5270, c.example=[::1],\n"
                           "  c.example=tls:xmpp.C.example:5271\n")
        self.assertEqual(config.routes, (
            S2SRoute("b.example", "127.0.0.1", 5270),
            S2SRoute("c.example", "::1", 5269),
            S2SRoute("c.example", "xmpp.c.example", 5271, True)))
        self.assertEqual([r.host for r in config.routes_for("c.example")],
                         ["::1", "xmpp.c.example"])
        self.assertEqual(config.routes_for("d.example"), ())

    def test_bad_routes(self):
        """Malformed route entries name the entry and what is wrong."""
        for text, fragment in (("b.example", "expected DOMAIN=HOST:PORT"),
                               ("b.example=127.0.0.1:0", "port must be from 1"),
                               ("b.example=::1:5269", "in brackets"),
                               ("b.example=[::1", "missing ']'"),
                               ("b.example=bad host:5269", "not a host name"),
                               ("=127.0.0.1", "expected DOMAIN=HOST:PORT")):
            with self.assertRaises(ValueError) as caught:
                s2s_routes(text)
            self.assertIn(fragment, str(caught.exception))
        self.assertError("routes = b.example=127.0.0.1:99999\n", "[s2s] routes")

    def test_route_for_a_local_host(self):
        """A static route for one of our own hosts is refused."""
        self.assertError("routes = a.example=127.0.0.1:5269\n", "is one of [server] hosts")

    def test_trust_self_signed(self):
        """Domains trusted with self-signed certificates are normalised."""
        self.assertEqual(self.load("trust_self_signed = B.example, c.example\n")
                         .trust_self_signed, ("b.example", "c.example"))
        self.assertError("trust_self_signed = not a domain!\n", "[s2s] trust_self_signed")

    def test_ca_file(self):
        """ca_file must be a readable file and is made absolute."""
        self.assertError("ca_file = /nonexistent/ca.pem\n", "[s2s] ca_file",
                         "not a readable file")
        path = os.path.join(self.dir, "ca.pem")
        open(path, "w").close()
        self.assertEqual(self.load(f"ca_file = {path}\n").ca_file, path)

    def test_ports(self):
        """The direct TLS port must differ from the STARTTLS port."""
        self.assertError("port = 5269\ndirect_tls_port = 5269\n", "[s2s] direct_tls_port")
        self.assertEqual(self.load("port = 0\ndirect_tls_port = 5270\n").direct_tls_port,
                         5270)

    def test_timeouts(self):
        """Timeouts are positive seconds; idle_timeout 0 means never."""
        self.assertEqual(self.load("idle_timeout = 0\n").idle_timeout, 0.0)
        self.assertError("negotiation_timeout = 0\n", "[s2s] negotiation_timeout")
        self.assertError("connect_timeout = soon\n", "[s2s] connect_timeout")

    def test_dns_servers(self):
        """Name servers are IP addresses with an optional port (53)."""
        self.assertEqual(dns_servers("127.0.0.1:5353, [::1], 192.0.2.1"),
                         (("127.0.0.1", 5353), ("::1", 53), ("192.0.2.1", 53)))
        with self.assertRaises(ValueError):
            dns_servers("ns.example")

    def test_unknown_option(self):
        """A typo in [s2s] is an error, with a suggestion."""
        self.assertError("require_encrypton = no\n", "unknown option",
                         "require_encryption")

    def test_documented(self):
        """config.example.ini documents every [s2s] option."""
        example = render_example()
        section = example.split("[s2s]", 1)[1].split("\n[", 1)[0]
        for name in S2SConfig.__dataclass_fields__:
            self.assertIn(f";{name} =", section)
