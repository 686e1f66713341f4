"""XEP-0202 Entity Time."""
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.entity_time import entity_time, utc_timestamp
from jabberapp.interfaces import IExtension
from jabberapp.plugins import jabberapp_builtin
from jabberapp.testing import FakeHost
from jabberapp.xml.ns import NS_TIME

TIME_IQ = ("<iq type='get' id='t1' from='a@example.org/r' to='example.org'>"
           f"<time xmlns='{NS_TIME}'/></iq>")


class EntityTimeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)
        self.host.install(service_discovery)
        self.host.install(entity_time)

    def ask(self):
        """Ask the host for its time; the reply's <time/> element."""
        self.host.receive(TIME_IQ)
        reply = self.host.sent[-1]
        self.assertEqual((reply.get("type"), reply.get("id")), ("result", "t1"))
        return reply.find(f"{{{NS_TIME}}}time")

    def test_interface(self):
        """The plugin object provides IPlugin and IExtension, named 'time'."""
        verifyObject(IExtension, entity_time)
        self.assertTrue(IPlugin.providedBy(entity_time))
        self.assertEqual((entity_time.name, entity_time.options), ("time", ()))
        self.assertIs(jabberapp_builtin.entity_time, entity_time)

    def test_time_from_clock(self):
        """The reply carries the host clock's time in UTC, to the second."""
        self.clock.advance(1234567890.75)
        answer = self.ask()
        self.assertEqual([(child.tag, child.text) for child in answer],
                         [(f"{{{NS_TIME}}}tzo", "+00:00"),
                          (f"{{{NS_TIME}}}utc", "2009-02-13T23:31:30Z")])

    def test_time_moves(self):
        """Each request reads the clock anew."""
        self.assertEqual(self.ask().findtext(f"{{{NS_TIME}}}utc"), "1970-01-01T00:00:00Z")
        self.clock.advance(86400 + 61)
        self.assertEqual(self.ask().findtext(f"{{{NS_TIME}}}utc"), "1970-01-02T00:01:01Z")

    def test_timestamp_format(self):
        """utc_timestamp() gives the XEP-0082 DateTime profile with a Z."""
        self.assertEqual(utc_timestamp(951782400), "2000-02-29T00:00:00Z")

    def test_feature(self):
        """urn:xmpp:time is declared as a feature of the host."""
        self.assertIn(NS_TIME, self.host.features)

    def test_users_not_answered(self):
        """The server does not answer for a user's bare JID: service-unavailable."""
        self.host.receive(TIME_IQ.replace("to='example.org'", "to='b@example.org'"))
        self.assertEqual(self.host.sent[-1].get("type"), "error")
