"""The [http] section: defaults, parsing, and ports that must not collide."""
import ipaddress
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from jabberapp.config import ConfigError, load_config


class HTTPConfigTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="jabberapp-http-")
        self.addCleanup(shutil.rmtree, self.dir)

    def load(self, text):
        path = os.path.join(self.dir, "jabberapp.ini")
        with open(path, "w") as f:
            f.write(text)
        return load_config(path).http

    def error(self, text):
        return str(self.assertRaises(ConfigError, self.load, text))

    def test_defaults(self):
        """Off by default, on loopback, ports 5280 and 5281, any CORS origin."""
        config = load_config(None).http
        self.assertEqual((config.enabled, config.interface, config.port, config.tls_port,
                          config.cors_origins, config.trusted_proxies),
                         (False, "127.0.0.1", 5280, 5281, ("*",), ()))

    def test_values(self):
        """Every option is parsed to its value type."""
        config = self.load("[http]\nenabled = yes\ninterface = ::\nport = 8080\n"
                           "tls_port = 0\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8\n"
                           "cors_origins = https://Chat.Example.org:443/, http://x:8080\n"
                           "max_request_size = 4096\nrequest_timeout = 2.5\n")
        self.assertEqual(config.trusted_proxies, (ipaddress.ip_network("127.0.0.1/32"),
                                                  ipaddress.ip_network("10.0.0.0/8")))
        self.assertEqual(config.cors_origins, ("https://chat.example.org", "http://x:8080"))
        self.assertEqual((config.interface, config.port, config.tls_port,
                          config.max_request_size, config.request_timeout),
                         ("::", 8080, 0, 4096, 2.5))

    def test_bad_values(self):
        """Bad proxies, origins and timeouts are one-line errors naming the key."""
        self.assertIn("[http] trusted_proxies", self.error("[http]\ntrusted_proxies = x\n"))
        self.assertIn("[http] cors_origins", self.error("[http]\ncors_origins = ftp://a\n"))
        self.assertIn("[http] request_timeout", self.error("[http]\nrequest_timeout = 0\n"))
        self.assertIn("[http] bogus", self.error("[http]\nbogus = 1\n"))

    def test_no_port(self):
        """Enabled with both ports 0 is an error."""
        self.assertIn("port or tls_port", self.error("[http]\nenabled = yes\nport = 0\n"
                                                     "tls_port = 0\n"))

    def test_same_ports(self):
        """port and tls_port must differ."""
        self.assertIn("must differ from port",
                      self.error("[http]\nenabled = yes\nport = 8000\ntls_port = 8000\n"))

    def test_collides_with_other_listeners(self):
        """An HTTP port that another listener uses is an error naming both."""
        message = self.error("[http]\nenabled = yes\nport = 5222\n")
        self.assertIn("[http] port: must differ from [c2s] port", message)
        message = self.error("[http]\nenabled = yes\ntls_port = 5269\n")
        self.assertIn("[http] tls_port: must differ from [s2s] port", message)

    def test_disabled_not_checked(self):
        """While disabled, the ports are not compared with the others'."""
        self.assertFalse(self.load("[http]\nport = 5222\n").enabled)

    def test_s2s_off_frees_its_port(self):
        """With federation off, its port may be used for HTTP."""
        self.assertEqual(self.load("[s2s]\nenabled = no\n[http]\nenabled = yes\n"
                                   "port = 5269\n").port, 5269)
