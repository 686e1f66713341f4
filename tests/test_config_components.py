"""Configuration of external components: [components] and [component:DOMAIN] sections."""
from jabberapp.config import ComponentConfig, load_config, render_example
from tests.test_config import SCHEMAS, ConfigTestCase


class ComponentConfigTests(ConfigTestCase):
    def test_defaults(self):
        """Without sections there are no components; the listener defaults to 127.0.0.1:5347."""
        config = load_config(None).components
        self.assertEqual((config.interface, config.port, config.components),
                         ("127.0.0.1", 5347, ()))

    def test_components(self):
        """Each [component:DOMAIN] section is one component, its domain normalised."""
        config = load_config(self.write(
            "[components]\ninterface = ::1\nport = 0\n"
            "[component:Gateway.localhost]\nsecret = abc\nname = The gateway\n"
            "[component:echo.localhost]\nsecret = x y\n"), SCHEMAS).components
        self.assertEqual((config.interface, config.port), ("::1", 0))
        self.assertEqual(config.components, (
            ComponentConfig("gateway.localhost", "abc", "The gateway"),
            ComponentConfig("echo.localhost", "x y", "")))

    def test_secret_not_in_repr(self):
        """The secret never appears in the configuration's repr."""
        config = load_config(self.write("[component:gw.localhost]\nsecret = hunter2\n"))
        self.assertNotIn("hunter2", repr(config))

    def test_missing_secret(self):
        """A component without a secret is an error."""
        self.assertEqual(self.error("[component:gw.localhost]\nname = x\n"),
                         "FILE: [component:gw.localhost] secret: required: the secret the "
                         "component authenticates with")
        self.assertIn("secret: required", self.error("[component:gw.localhost]\nsecret =\n"))

    def test_unknown_key(self):
        """An unknown key in a component section is an error with a hint."""
        self.assertEqual(self.error("[component:gw.localhost]\nsecret = a\nsecert = b\n"),
                         "FILE: [component:gw.localhost] secert: unknown option; did you mean "
                         "'secret'?")
        self.assertEqual(self.error("[components]\nprot = 1\n"),
                         "FILE: [components] prot: unknown option; did you mean 'port'?")

    def test_invalid_domain(self):
        """A section whose domain is not a valid domain is an error."""
        message = self.error("[component:a@b]\nsecret = a\n")
        self.assertTrue(message.startswith("FILE: [component:a@b]: 'a@b' is not a valid "
                                           "domain ("), message)
        self.assertIn("is not a valid domain", self.error("[component:]\nsecret = a\n"))

    def test_host_domain(self):
        """A component cannot take the domain of a virtual host."""
        self.assertEqual(self.error("[component:localhost]\nsecret = a\n"),
                         "FILE: [component:localhost]: 'localhost' is one of [server] hosts; "
                         "a component needs a domain of its own")

    def test_duplicate_domain(self):
        """Two sections for the same domain (after normalisation) are an error."""
        self.assertEqual(self.error("[component:gw.localhost]\nsecret = a\n"
                                    "[component:GW.localhost]\nsecret = b\n"),
                         "FILE: [component:GW.localhost]: a second section for component "
                         "'gw.localhost'")
        self.assertIn("duplicate section", self.error("[component:gw.localhost]\nsecret = a\n"
                                                      "[component:gw.localhost]\nsecret = b\n"))

    def test_bad_port(self):
        """The port is 0 to 65535."""
        self.assertEqual(self.error("[components]\nport = 70000\n"),
                         "FILE: [components] port: expected an integer from 0 to 65535 "
                         "(got '70000')")

    def test_example_documents_component_sections(self):
        """The example explains [component:DOMAIN] sections and both of their options."""
        text = render_example(SCHEMAS)
        self.assertIn("\n[components]\n", text)
        self.assertIn("; [component:gateway.example.org]\n; secret = ", text)
        self.assertIn("; secret: Required", text)
        self.assertIn("; name: ", text)
