"""XEP-0198 inline in XEP-0386 Bind2 (<enable/>) and XEP-0388 SASL2 (<resume/>)."""
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.extensions.carbons import message_carbons
from jabberapp.extensions.csi import client_state_indication
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.sm import NS_SM, stream_management
from jabberapp.xml import element
from tests.c2s_bytes import PASSWORD, World
from tests.extensions.test_sm import OPTIONS
from tests.test_sasl2 import NS_BIND2, NS_SASL2, authenticate, first, q, user_agent

PLAIN = f"\0alice\0{PASSWORD}".encode()


class InlineStreamManagementTests(SynchronousTestCase):
    """One round trip enables stream management; another resumes the session."""

    def setUp(self):
        self.world = World()
        self.world.host.install(stream_management, dict(OPTIONS))

    def login(self, inner):
        transport = self.world.secure()
        transport.feed(authenticate("PLAIN", PLAIN, inner))
        return transport, transport.take()

    def enabled(self):
        """alice bound with SASL2 + Bind2, stream management enabled inline: the
        transport and <enabled/>."""
        bind = (f"<bind xmlns='{NS_BIND2}'><tag>App</tag>"
                f"<enable xmlns='{NS_SM}' resume='true'/></bind>")
        transport, out = self.login(user_agent() + bind)
        enabled = first(out, "success").find(f"{q(NS_BIND2, 'bound')}/{q(NS_SM, 'enabled')}")
        self.assertIsNotNone(enabled)
        return transport, enabled

    def message(self, id, to):
        msg = element("jabber:client", "message", id=id, to=to, from_="bob@example.org/b",
                      type_="chat")
        etree.SubElement(msg, "{jabber:client}body").text = "hi"
        self.world.router.route(msg)

    def test_advertised_inline(self):
        """SASL2's <inline/> offers <sm/> and Bind2's offers the sm feature."""
        features = self.world.secure().stream.features()
        inline = features.find(f"{q(NS_SASL2, 'authentication')}/{q(NS_SASL2, 'inline')}")
        self.assertIsNotNone(inline.find(q(NS_SM, "sm")))
        self.assertIn(NS_SM, [f.get("var") for f in inline.iter(q(NS_BIND2, "feature"))])

    def test_enable_inline_in_bind2(self):
        """<enable resume='true'/> inside <bind/> answers <enabled/> in <bound/>, and the
        session counts from its first stanza."""
        transport, enabled = self.enabled()
        self.assertEqual(enabled.get("resume"), "true")
        session = transport.stream.session
        self.assertIn("sm", session.state)
        self.message("m1", str(session.jid))
        transport.feed(f"<r xmlns='{NS_SM}'/>".encode())
        self.assertIn(b"h=\"0\"", transport.take())

    def test_resume_inline_in_sasl2(self):
        """After a drop, <resume/> inside <authenticate/> resumes the session: <success/>
        names its full JID and holds <resumed/>, then the unacknowledged stanza follows."""
        transport, enabled = self.enabled()
        session = transport.stream.session
        self.message("m1", str(session.jid))
        transport.take()
        transport.drop()
        again, out = self.login(f"<resume xmlns='{NS_SM}' previd='{enabled.get('id')}' h='0'/>")
        success = first(out, "success")
        self.assertEqual(success.findtext(q(NS_SASL2, "authorization-identifier")),
                         str(session.jid))
        self.assertEqual(success.find(q(NS_SM, "resumed")).get("previd"), enabled.get("id"))
        self.assertLess(out.index(b"<success"), out.index(b"id=\"m1\""))
        self.assertIs(again.stream.session, session)
        self.assertNotIn(b"stream:features", out)

    def test_failed_resume_goes_on_to_bind(self):
        """An unknown id gives <failed/> in <success/> and Bind2 binds a new session."""
        transport, out = self.login(f"<resume xmlns='{NS_SM}' previd='nope' h='0'/>"
                                    f"<bind xmlns='{NS_BIND2}'/>")
        success = first(out, "success")
        self.assertIsNotNone(success.find(f"{q(NS_SM, 'failed')}"))
        self.assertIsNotNone(success.find(q(NS_BIND2, "bound")))
        self.assertIsNotNone(transport.stream.session)


class InlineCarbonsAndCSITests(SynchronousTestCase):
    """Carbons and CSI registered as Bind2 inline features."""

    def setUp(self):
        self.world = World()
        self.world.host.install(service_discovery, {})
        self.world.host.install(message_carbons, {})
        self.world.host.install(client_state_indication, {"queue_size": 5})

    def test_carbons_and_inactive_inline(self):
        """<enable/> of carbons and CSI's <inactive/> inside <bind/> are offered in the Bind2
        feature list and switch both on for the new session."""
        transport = self.world.secure()
        inline = transport.stream.features().find(
            f"{q(NS_SASL2, 'authentication')}/{q(NS_SASL2, 'inline')}")
        offered = [f.get("var") for f in inline.iter(q(NS_BIND2, "feature"))]
        self.assertEqual(offered, ["urn:xmpp:carbons:2", "urn:xmpp:csi:0"])
        transport.feed(authenticate("PLAIN", PLAIN, f"<bind xmlns='{NS_BIND2}'>"
                                    "<enable xmlns='urn:xmpp:carbons:2'/>"
                                    "<inactive xmlns='urn:xmpp:csi:0'/></bind>"))
        transport.take()
        state = transport.stream.session.state
        self.assertIs(state.get("carbons"), True)
        self.assertTrue(state["csi"].inactive)
