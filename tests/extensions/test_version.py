"""XEP-0092 Software Version."""
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import jabberapp
from jabberapp import stanza as st
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.version import operating_system, software_version
from jabberapp.interfaces import IExtension
from jabberapp.plugins import jabberapp_builtin
from jabberapp.testing import FakeHost
from jabberapp.xml.ns import NS_DISCO_INFO, NS_STANZAS, NS_VERSION

QUERY = f"<query xmlns='{NS_VERSION}'/>"


def version_iq(type_="get", to="example.org"):
    """A software version request from a local client."""
    return f"<iq type='{type_}' id='v1' from='a@example.org/r' to='{to}'>{QUERY}</iq>"


class SoftwareVersionTests(SynchronousTestCase):
    def setUp(self):
        self.host = FakeHost("example.org", clock=Clock())
        self.host.install(service_discovery)

    def answer(self, **options):
        """Install with C{options}, ask the host, return the reply's <query/>."""
        self.host.install(software_version, **options)
        self.host.receive(version_iq())
        reply = self.host.sent[-1]
        self.assertEqual(reply.get("type"), "result")
        return reply.find(f"{{{NS_VERSION}}}query")

    def test_interface(self):
        """The plugin object provides IPlugin and IExtension, named 'version'."""
        verifyObject(IExtension, software_version)
        self.assertTrue(IPlugin.providedBy(software_version))
        self.assertEqual(software_version.name, "version")
        self.assertIs(jabberapp_builtin.software_version, software_version)

    def test_option_schema(self):
        """show_os is a documented boolean, off by default."""
        (show_os,) = software_version.options
        self.assertEqual((show_os.name, show_os.type, show_os.default),
                         ("show_os", bool, False))
        self.assertTrue(show_os.doc)

    def test_name_and_version(self):
        """A get to the host JID reports jabberapp and its version, without the OS."""
        query = self.answer()
        self.assertEqual([(child.tag, child.text) for child in query],
                         [(f"{{{NS_VERSION}}}name", "jabberapp"),
                          (f"{{{NS_VERSION}}}version", jabberapp.__version__)])

    def test_show_os(self):
        """With show_os on, the operating system is reported in <os/>."""
        query = self.answer(show_os=True)
        self.assertEqual(query.findtext(f"{{{NS_VERSION}}}os"), operating_system())
        self.assertTrue(operating_system())

    def test_feature(self):
        """The host's disco#info lists jabber:iq:version."""
        self.host.install(software_version)
        self.host.receive(f"<iq type='get' id='d1' from='a@example.org/r' to='example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'/></iq>")
        features = [f.get("var") for f in self.host.sent[-1].iter(f"{{{NS_DISCO_INFO}}}feature")]
        self.assertIn(NS_VERSION, features)

    def test_set_not_served(self):
        """A set is not a software version request: service-unavailable."""
        self.host.install(software_version)
        self.host.receive(version_iq("set"))
        error = self.host.sent[-1].find(st.ERROR)
        self.assertIsNotNone(error.find(f"{{{NS_STANZAS}}}service-unavailable"))

    def test_unload(self):
        """After unloading, the feature is gone and the query is unanswered."""
        self.host.install(software_version)
        self.host.unload("version")
        self.assertNotIn(NS_VERSION, self.host.features)
        self.host.receive(version_iq())
        self.assertEqual(self.host.sent[-1].get("type"), "error")

    def test_needs_disco(self):
        """Installing without disco fails: support must be discoverable."""
        host = FakeHost()
        self.assertRaises(ValueError, host.install, software_version)
