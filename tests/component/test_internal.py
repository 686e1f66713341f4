"""In-process components (IHost.add_component), exercised through FakeHost."""
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import stanza as st
from jabberapp.extensions.disco import service_discovery
from jabberapp.testing import FakeHost
from jabberapp.xml.ns import NS_STANZAS


class Echo:
    """A minimal extension serving echo.example.org: every message comes back."""

    name = "echo"
    depends = ("disco",)
    options = ()
    specs = ()

    def __init__(self, handler=None):
        self.received = []
        self.handler = handler

    def install(self, host):
        def on_stanza(stanza):
            self.received.append(stanza)
            if self.handler is not None:
                return self.handler(stanza)
            body = stanza.find("{jabber:client}body")
            if stanza.tag == st.MESSAGE and stanza.get("type") != "error" and body is not None:
                answer = st.reply(stanza, type="chat")
                answer.append(body)
                host.send(answer)

        self.jid = host.add_component("Echo.example.org", on_stanza, name="Echo service")


class InternalComponentTests(SynchronousTestCase):
    def setUp(self):
        self.host = FakeHost("example.org")
        self.host.install(service_discovery)

    def install(self, echo=None):
        echo = echo or Echo()
        self.host.install(echo)
        return echo

    def items(self):
        self.host.receive("<iq type='get' id='i' from='alice@example.org/r' to='example.org'>"
                          "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        return [(item.get("jid"), item.get("name")) for item in self.host.sent[-1][0]]

    def condition(self, stanza):
        error = stanza.find("{jabber:client}error")
        return error[0].tag.replace(f"{{{NS_STANZAS}}}", "")

    def test_stanzas_to_the_domain_reach_the_handler(self):
        """Stanzas to the component's domain or a JID in it go to the handler, which answers."""
        echo = self.install()
        self.assertEqual(str(echo.jid), "echo.example.org")
        self.host.receive("<message from='alice@example.org/r' to='room@echo.example.org/n' "
                          "type='chat' id='m1'><body>hi</body></message>")
        self.assertEqual([s.get("to") for s in echo.received], ["room@echo.example.org/n"])
        answer = self.host.session("alice@example.org/r").sent[-1]
        self.assertEqual(answer.get("from"), "room@echo.example.org/n")
        self.assertEqual(answer.findtext("{jabber:client}body"), "hi")

    def test_listed_in_host_disco_items(self):
        """The component's domain is an item of the host's disco#items, with its name."""
        self.assertEqual(self.items(), [])
        self.install()
        self.assertEqual(self.items(), [("echo.example.org", "Echo service")])

    def test_unload_removes_route_and_item(self):
        """Unloading the extension removes the route and the disco item."""
        echo = self.install()
        self.host.unload("echo")
        self.assertIsNone(self.host.router.destination("echo.example.org"))
        self.assertEqual(self.items(), [])
        self.host.receive("<message from='alice@example.org/r' to='echo.example.org'/>")
        self.assertEqual(echo.received, [])
        # The domain is not ours any more: it is left to federation.
        self.assertEqual(self.host.remote.received[-1].get("to"), "echo.example.org")

    def test_reinstall_after_unload(self):
        """The domain can be served again after the extension was unloaded."""
        self.install()
        self.host.unload("echo")
        echo = self.install()
        self.host.receive("<message from='alice@example.org/r' to='echo.example.org'/>")
        self.assertEqual(len(echo.received), 1)

    def test_domain_already_routed(self):
        """Serving a domain that is already routed fails at install, leaving nothing behind."""
        self.assertRaises(ValueError, self.host.add_component, "example.org", lambda s: None)
        self.install()
        self.assertRaises(ValueError, self.host.add_component, "echo.example.org",
                          lambda s: None)
        self.assertEqual(len(self.host.disco_providers), 1)

    def test_invalid_domain(self):
        """An invalid domain is a ValueError."""
        self.assertRaises(ValueError, self.host.add_component, "a@b", lambda s: None)

    def test_direct_add_component(self):
        """FakeHost's own IHost serves a component too, for helpers under test."""
        received = []
        jid = self.host.add_component("svc.example.org", received.append)
        self.assertEqual(str(jid), "svc.example.org")
        self.host.receive("<presence from='alice@example.org/r' to='svc.example.org'/>")
        self.assertEqual(len(received), 1)

    def test_handler_failure_is_internal_server_error(self):
        """A handler that raises is logged and the sender gets internal-server-error."""
        def broken(stanza):
            raise RuntimeError("bug")

        self.install(Echo(broken))
        self.host.receive("<iq type='get' id='q' from='alice@example.org/r' "
                          "to='echo.example.org'><query xmlns='jabber:iq:version'/></iq>")
        answer = self.host.sent[-1]
        self.assertEqual((answer.get("type"), answer.get("id")), ("error", "q"))
        self.assertEqual(self.condition(answer), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_async_handler_failure(self):
        """A handler whose Deferred fails is answered internal-server-error as well."""
        d = defer.Deferred()
        self.install(Echo(lambda stanza: d))
        self.host.receive("<message from='alice@example.org/r' to='echo.example.org' id='m'/>")
        before = len(self.host.sent)
        d.errback(RuntimeError("later"))
        self.assertEqual(len(self.host.sent), before + 1)
        self.assertEqual(self.condition(self.host.sent[-1]), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_coroutine_handler(self):
        """A coroutine handler runs; its failure is answered like any other."""
        async def handler(stanza):
            raise RuntimeError("async bug")

        self.install(Echo(handler))
        self.host.receive("<message from='alice@example.org/r' to='echo.example.org' id='m'/>")
        self.assertEqual(self.condition(self.host.sent[-1]), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_failure_on_error_is_not_answered(self):
        """A handler failing on an error stanza produces no answer (no error loops)."""
        def broken(stanza):
            raise RuntimeError("bug")

        self.install(Echo(broken))
        before = len(self.host.sent)
        self.host.receive("<message type='error' from='alice@example.org/r' "
                          "to='echo.example.org'/>")
        self.assertEqual(len(self.host.sent), before)
        self.flushLoggedErrors(RuntimeError)
