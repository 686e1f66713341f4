"""The caps service methods PEP uses to verify remote contacts' caps (XEP-0115 §5.4)."""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.extensions.caps import QUERY_TIMEOUT, caps, compute_ver, parse_disco_info
from jabberapp.extensions.disco import service_discovery
from jabberapp.testing import FakeHost, parse

REMOTE = "dan@remote.example/phone"
QUERY = ("<query xmlns='http://jabber.org/protocol/disco#info'>"
         "<identity category='client' type='phone'/>"
         "<feature var='urn:xmpp:avatar:metadata+notify'/></query>")


class VerifyTests(SynchronousTestCase):
    """CapsService.verify asks an entity and trusts only an answer that hashes to the ver."""

    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)
        self.host.install(service_discovery)
        self.host.install(caps)
        self.service = self.host.service("caps")
        self.ver = compute_ver(parse_disco_info(parse(QUERY)))

    def ask(self, ver=None):
        d = self.service.verify(REMOTE, "sha-1", "urn:test", ver or self.ver)
        [request] = [s for s in self.host.remote.received if s.get("to") == REMOTE]
        return d, request

    def answer(self, request, payload, type_="result"):
        self.host.receive(f"<iq type='{type_}' id='{request.get('id')}' from='{REMOTE}' "
                          f"to='example.org'>{payload}</iq>")

    def test_supported_hashes(self):
        """The hashes the service implements are supported; MD5 and unknown ones are not."""
        self.assertTrue(self.service.supports_hash("sha-1"))
        self.assertTrue(self.service.supports_hash("sha-256"))
        self.assertFalse(self.service.supports_hash("md5"))
        self.assertFalse(self.service.supports_hash(None))

    def test_matching_answer(self):
        """The query goes from the host to node#ver; a matching answer gives its features."""
        d, request = self.ask()
        self.assertEqual((request.get("from"), request[0].get("node")),
                         ("example.org", f"urn:test#{self.ver}"))
        self.answer(request, QUERY)
        self.assertEqual(self.successResultOf(d),
                         frozenset({"urn:xmpp:avatar:metadata+notify"}))

    def test_not_trusted(self):
        """An answer of another ver, an ill-formed one, an error or none at all gives None."""
        d, request = self.ask("not-the-ver")
        self.answer(request, QUERY)
        self.assertIsNone(self.successResultOf(d))
        self.host.remote.received.clear()
        d, request = self.ask()
        self.answer(request, QUERY.replace("</query>",
                                           "<feature var='urn:xmpp:avatar:metadata+notify'/>"
                                           "</query>"))
        self.assertIsNone(self.successResultOf(d))
        self.host.remote.received.clear()
        d, request = self.ask()
        self.answer(request, "", type_="error")
        self.assertIsNone(self.successResultOf(d))
        self.host.remote.received.clear()
        d, request = self.ask()
        self.clock.advance(QUERY_TIMEOUT)
        self.assertIsNone(self.successResultOf(d))

    def test_not_cached(self):
        """A verified remote answer does not enter the cache of local clients' vers."""
        d, request = self.ask()
        self.answer(request, QUERY)
        self.successResultOf(d)
        self.assertIsNone(self.service.features_for_ver(self.ver))
