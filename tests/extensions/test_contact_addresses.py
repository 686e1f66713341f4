"""XEP-0157 Contact Addresses for XMPP Services."""
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.config import ConfigError, load_config
from jabberapp.extensions.contact_addresses import SERVERINFO, contact_addresses, uri_list
from jabberapp.extensions.disco import service_discovery
from jabberapp.forms import NS_DATA_FORMS
from jabberapp.interfaces import IExtension
from jabberapp.plugins import jabberapp_builtin
from jabberapp.testing import FakeHost
from jabberapp.xml.ns import NS_DISCO_INFO

X = f"{{{NS_DATA_FORMS}}}x"
FIELD = f"{{{NS_DATA_FORMS}}}field"
VALUE = f"{{{NS_DATA_FORMS}}}value"


def form_fields(form):
    """(var, type, [values]) of each field of a data form."""
    return [(f.get("var"), f.get("type"), [v.text for v in f.iterchildren(VALUE)])
            for f in form.iterchildren(FIELD)]


class ContactAddressesTests(SynchronousTestCase):
    def setUp(self):
        self.host = FakeHost("example.org", clock=Clock())
        self.host.install(service_discovery)

    def forms(self):
        """The data forms in the host's disco#info answer."""
        self.host.receive("<iq type='get' id='d' from='alice@example.org/r' to='example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'/></iq>")
        reply = self.host.sent[-1]
        self.assertEqual(reply.get("type"), "result")
        return reply[0].findall(X)

    def test_interface(self):
        """The plugin object provides IPlugin and IExtension and is a built-in."""
        verifyObject(IExtension, contact_addresses)
        self.assertTrue(IPlugin.providedBy(contact_addresses))
        self.assertEqual((contact_addresses.name, contact_addresses.depends),
                         ("contact_addresses", ("disco",)))
        self.assertIs(jabberapp_builtin.contact_addresses, contact_addresses)
        self.assertEqual([(s.name, s.version) for s in contact_addresses.specs],
                         [("XEP-0157", "1.1.1")])

    def test_options(self):
        """One documented option per XEP-0157 role, each empty by default."""
        self.assertEqual([o.name for o in contact_addresses.options],
                         ["abuse", "admin", "feedback", "sales", "security", "status",
                          "support"])
        for option in contact_addresses.options:
            self.assertEqual(option.default, ())
            self.assertIn(f"{option.name}-addresses", option.doc)

    def test_nothing_configured(self):
        """Without addresses no form is published."""
        self.host.install(contact_addresses)
        self.assertEqual(self.forms(), [])

    def test_published(self):
        """Configured addresses are a serverinfo form in disco#info (XEP-0157 §3), each
        field a list-multi as the registry says."""
        self.host.install(contact_addresses,
                          support=("https://example.org/help", "xmpp:help@example.org"),
                          abuse=("mailto:abuse@example.org",),
                          status=("https://status.example.org",))
        (form,) = self.forms()
        self.assertEqual(form.get("type"), "result")
        self.assertEqual(form_fields(form), [
            ("FORM_TYPE", "hidden", [SERVERINFO]),
            ("abuse-addresses", "list-multi", ["mailto:abuse@example.org"]),
            ("status-addresses", "list-multi", ["https://status.example.org"]),
            ("support-addresses", "list-multi", ["https://example.org/help",
                                                 "xmpp:help@example.org"]),
        ])

    def test_every_role(self):
        """Every role's option becomes its registered field."""
        self.host.install(contact_addresses, **{
            o.name: (f"mailto:{o.name}@example.org",) for o in contact_addresses.options})
        (form,) = self.forms()
        self.assertEqual([var for var, _, _ in form_fields(form)][1:], [
            "abuse-addresses", "admin-addresses", "feedback-addresses", "sales-addresses",
            "security-addresses", "status-addresses", "support-addresses"])

    def test_unload(self):
        """Unloading the extension removes the form."""
        self.host.install(contact_addresses, admin=("xmpp:admin@example.org",))
        self.host.unload("contact_addresses")
        self.assertEqual(self.forms(), [])

    def test_no_disco_internals(self):
        """The extension reaches disco only through its declared service, not its module."""
        import jabberapp.extensions.contact_addresses as module
        with open(module.__file__) as f:
            self.assertNotIn("jabberapp.extensions.disco", f.read())


class URIListTests(SynchronousTestCase):
    def test_parse(self):
        """A comma-separated list of URIs becomes a tuple of them."""
        self.assertEqual(uri_list(" mailto:a@example.org , xmpp:b@example.org?message,"),
                         ("mailto:a@example.org", "xmpp:b@example.org?message"))
        self.assertEqual(uri_list(""), ())

    def test_not_uris(self):
        """Values without a scheme, or with spaces, are refused with a hint."""
        for bad in ("abuse@example.org", "mailto:", "http://x y", "1http://x", ":x"):
            with self.assertRaises(ValueError) as caught:
                uri_list(bad)
            self.assertIn("is not a URI", str(caught.exception))

    def test_config_file(self):
        """A bad address in the configuration stops the server before it starts."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[extension:contact_addresses]\nabuse = abuse@example.org\n")
        schemas = {"contact_addresses": contact_addresses.options}
        with self.assertRaises(ConfigError) as caught:
            load_config(path, schemas)
        self.assertIn("mailto:abuse@example.org", str(caught.exception))
        with open(path, "w") as f:
            f.write("[extension:contact_addresses]\nabuse = mailto:abuse@example.org\n")
        config = load_config(path, schemas)
        self.assertEqual(config.extension_options["contact_addresses"]["abuse"],
                         ("mailto:abuse@example.org",))
