"""XEP-0115 Entity Capabilities: ver strings, the server's caps, the verified caps cache."""
import base64
import hashlib
from unittest import mock

from lxml import etree
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.c2s import stream as c2s
from jabberapp.extensions.caps import (
    CAPS,
    DISCO_INFO,
    HASHES,
    NODE,
    NS_CAPS,
    OWN_VER_MAX_AGE,
    QUERY_TIMEOUT,
    EntityCapabilities,
    IllFormed,
    VerCache,
    caps,
    compute_ver,
    parse_disco_info,
    verification_string,
)
from jabberapp.extensions.contact_addresses import contact_addresses
from jabberapp.extensions.disco import service_discovery
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.jid import JID
from jabberapp.plugins import jabberapp_builtin
from jabberapp.sasl.throttle import FailureThrottle
from jabberapp.testing import FakeHost, FakeSession, parse
from jabberapp.xml.ns import NS_DISCO_INFO, NS_STANZAS

# XEP-0115 §5.2, the simple generation example.
SIMPLE = f"""<query xmlns='{NS_DISCO_INFO}'>
  <identity category='client' type='pc' name='Exodus 0.9.1'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <feature var='http://jabber.org/protocol/caps'/>
</query>"""
SIMPLE_S = ("client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<"
            "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
            "http://jabber.org/protocol/muc<")
SIMPLE_VER = "QgayPKawpkPSDYmwT/WM94uAlu0="

# XEP-0115 §5.3, the complex generation example (its disco#info answer, verbatim).
COMPLEX = f"""<query xmlns='{NS_DISCO_INFO}' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
    <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
    <identity xml:lang='el' category='client' name='&#936; 0.11' type='pc'/>
    <feature var='http://jabber.org/protocol/caps'/>
    <feature var='http://jabber.org/protocol/disco#info'/>
    <feature var='http://jabber.org/protocol/disco#items'/>
    <feature var='http://jabber.org/protocol/muc'/>
    <x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:dataforms:softwareinfo</value>
      </field>
      <field var='ip_version' type='text-multi' >
        <value>ipv4</value>
        <value>ipv6</value>
      </field>
      <field var='os'>
        <value>Mac</value>
      </field>
      <field var='os_version'>
        <value>10.5.1</value>
      </field>
      <field var='software'>
        <value>Psi</value>
      </field>
      <field var='software_version'>
        <value>0.11</value>
      </field>
    </x>
  </query>"""
COMPLEX_S = ("client/pc/el/\u03a8 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<"
             "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
             "http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<"
             "ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<"
             "software_version<0.11<")
COMPLEX_VER = "q07IKJEyjvHSyhy//CH0CxmKi8w="
CLIENT_NODE = "http://code.google.com/p/exodus"
SIMPLE_FEATURES = frozenset({
    "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
    "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"})


def info(xml):
    return parse_disco_info(parse(xml))


class VerificationStringTests(SynchronousTestCase):
    """§5.1 generation, §5.4 well-formedness."""

    def test_simple_example(self):
        """The §5.2 example gives its S and ver exactly."""
        self.assertEqual(verification_string(info(SIMPLE)), SIMPLE_S)
        self.assertEqual(compute_ver(info(SIMPLE)), SIMPLE_VER)

    def test_complex_example(self):
        """The §5.3 example (two languages, an extended form) gives its S and ver exactly."""
        self.assertEqual(verification_string(info(COMPLEX)), COMPLEX_S)
        self.assertEqual(compute_ver(info(COMPLEX), "sha-1"), COMPLEX_VER)

    def test_order_does_not_matter(self):
        """Identities, features, forms, fields and values are sorted before hashing."""
        query = parse(COMPLEX)
        for parent in (query, query.find("{jabber:x:data}x"),
                       query.find("{jabber:x:data}x/{jabber:x:data}field[@var='ip_version']")):
            parent[:] = list(reversed(parent))
        self.assertEqual(compute_ver(parse_disco_info(query)), COMPLEX_VER)

    def test_other_hashes(self):
        """Other hashes hash the same S; MD5 and friends are not offered (XEP-0414)."""
        expected = base64.b64encode(hashlib.sha256(SIMPLE_S.encode()).digest()).decode()
        self.assertEqual(compute_ver(info(SIMPLE), "sha-256"), expected)
        self.assertTrue({"sha-1", "sha-256", "sha-512", "sha3-256", "blake2b-512"} <= HASHES)
        self.assertFalse({"md5", "md2", "md4", "sha1"} & HASHES)
        for name in HASHES:
            compute_ver(info(SIMPLE), name)

    def test_ill_formed(self):
        """Duplicate identities, features or FORM_TYPEs, a FORM_TYPE with two values, an
        identity without type and a '<' in a string make the answer ill-formed."""
        form = ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
                "type='hidden'><value>urn:a</value>{}</field></x>")
        for extra in ["<identity category='client' type='pc' name='Exodus 0.9.1'/>",
                      "<feature var='http://jabber.org/protocol/muc'/>",
                      form.format("") + form.format(""),
                      form.format("<value>urn:b</value>"),
                      "<identity category='client'/>",
                      "<feature/>",
                      "<feature var='urn:x&lt;urn:y'/>"]:
            with self.assertRaises(IllFormed, msg=extra):
                info(SIMPLE.replace("</query>", extra + "</query>"))

    def test_forms_without_hidden_form_type_are_ignored(self):
        """A form whose FORM_TYPE is not hidden, or that has none, does not count (§5.4)."""
        forms = ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'>"
                 "<value>urn:a</value></field><field var='f'><value>v</value></field></x>"
                 "<x xmlns='jabber:x:data' type='result'><field var='f'><value>v</value>"
                 "</field></x>")
        self.assertEqual(compute_ver(info(SIMPLE.replace("</query>", forms + "</query>"))),
                         SIMPLE_VER)


class VerCacheTests(SynchronousTestCase):
    def test_least_recently_used_goes_first(self):
        """Beyond its size the cache drops the entry used least recently."""
        cache = VerCache(2)
        cache.put("a", frozenset("1"))
        cache.put("b", frozenset("2"))
        self.assertEqual(cache.get("a"), frozenset("1"))
        cache.put("c", frozenset("3"))
        self.assertEqual((len(cache), "a" in cache, "b" in cache, "c" in cache),
                         (2, True, False, True))
        self.assertIsNone(cache.get("b"))


class CapsTestCase(SynchronousTestCase):
    """A FakeHost with disco, contact addresses (an extended form) and a fresh caps."""

    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)
        self.host.install(service_discovery)
        self.host.install(contact_addresses, abuse=("mailto:abuse@example.org",))
        self.caps = EntityCapabilities()    # its own process-wide cache, for isolation
        self.host.install(self.caps)
        self.service = self.host.service("caps")

    def feature(self):
        [feature] = [f for f in self.host.virtual_host.stream_features
                     if f.namespace == NS_CAPS]
        return feature

    def present(self, jid, ver=SIMPLE_VER, hash="sha-1", node=CLIENT_NODE, c=True):
        attrs = f" hash='{hash}'" if hash else ""
        caps_element = (f"<c xmlns='{NS_CAPS}'{attrs} node='{node}' ver='{ver}'/>" if c
                        else "")
        self.host.receive(f"<presence from='{jid}'>{caps_element}</presence>")

    def queries(self):
        """The caps disco#info queries the server sent, in order."""
        return [s for s in self.host.sent if s.tag == "{jabber:client}iq"
                and s.get("type") == "get" and s.get("from") == "example.org"
                and s.find(DISCO_INFO) is not None]

    def answer(self, query, xml=SIMPLE):
        self.host.receive(f"<iq type='result' id='{query.get('id')}' from='{query.get('to')}' "
                          f"to='example.org'>{xml}</iq>")

    def disco(self, node=None, sender="alice@example.org/r"):
        node_attr = f" node='{node}'" if node else ""
        self.host.receive(f"<iq type='get' id='d' from='{sender}' to='example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'{node_attr}/></iq>")
        return self.host.sent[-1]


class ServerCapsTests(CapsTestCase):
    """The server's own caps (§6.3) and its caps node."""

    def test_interface(self):
        """The plugin provides IPlugin and IExtension as 'caps' and needs disco."""
        verifyObject(IExtension, caps)
        self.assertTrue(IPlugin.providedBy(caps))
        self.assertIs(jabberapp_builtin.caps, caps)
        self.assertEqual(caps.depends, ("disco",))
        self.assertEqual([(o.name, o.default) for o in caps.options], [("cache_size", 10000)])
        verifyObject(IStreamFeature, self.feature())
        self.assertIn(NS_CAPS, self.host.features)

    def advertised(self):
        stream = mock.Mock(username="alice")
        return self.feature().advertise(stream)

    def test_stream_feature_hashes_the_disco_answer(self):
        """After authentication the feature is <c hash='sha-1' node ver/>, ver being the
        hash of the host's disco#info answer, its extended form included."""
        c = self.advertised()
        self.assertEqual((c.tag, c.get("hash"), c.get("node")), (CAPS, "sha-1", NODE))
        answer = self.disco().find(DISCO_INFO)
        self.assertIsNotNone(answer.find("{jabber:x:data}x"))
        self.assertEqual(c.get("ver"), compute_ver(parse_disco_info(answer)))
        self.assertIsNone(self.feature().advertise(mock.Mock(username=None)))

    def test_caps_node_answers_the_same(self):
        """disco#info for node#ver is the host's answer, node echoed, same ver."""
        ver = self.advertised().get("ver")
        plain = self.disco().find(DISCO_INFO)
        reply = self.disco(f"{NODE}#{ver}")
        self.assertEqual((reply.get("type"), reply.get("to")), ("result", "alice@example.org/r"))
        query = reply.find(DISCO_INFO)
        self.assertEqual(query.get("node"), f"{NODE}#{ver}")
        self.assertEqual([etree.tostring(c) for c in query], [etree.tostring(c) for c in plain])
        self.assertEqual(compute_ver(parse_disco_info(query)), ver)

    def test_caps_node_before_any_stream(self):
        """The caps node is answered even before a stream feature computed the ver."""
        ver = compute_ver(parse_disco_info(self.disco().find(DISCO_INFO)))
        self.assertEqual(self.disco(f"{NODE}#{ver}").get("type"), "result")

    def test_other_ver_is_not_found(self):
        """A node with another ver is item-not-found, as disco answers unknown nodes."""
        self.advertised()
        reply = self.disco(f"{NODE}#AAAA")
        self.assertEqual(reply.get("type"), "error")
        self.assertIsNotNone(reply.find(f".//{{{NS_STANZAS}}}item-not-found"))

    def test_ver_follows_the_features(self):
        """A feature added later changes the advertised ver."""
        before = self.advertised().get("ver")
        self.host.add_feature("urn:example:later")
        self.assertNotEqual(self.advertised().get("ver"), before)

    def test_ver_is_not_recomputed_per_stream(self):
        """The host's disco#info is asked once for many streams, and again only after
        OWN_VER_MAX_AGE seconds (a disco provider may have changed what it adds)."""
        asked = []

        class Provider:
            def info(self, requester, target, node):
                asked.append(node)

            def items(self, requester, target, node):
                return None

        self.host.add_disco_provider(Provider())
        ver = self.advertised().get("ver")
        for _ in range(3):
            self.assertEqual(self.advertised().get("ver"), ver)
        self.assertEqual(asked, [None])
        self.clock.advance(OWN_VER_MAX_AGE)
        self.assertEqual(self.advertised().get("ver"), ver)
        self.assertEqual(asked, [None, None])

    def test_offered_on_the_c2s_stream(self):
        """A real c2s stream offers <c/> in its features after authentication only."""
        factory = c2s.C2SFactory({"example.org": self.host.virtual_host},
                                 tls_options=object(), clock=self.clock,
                                 throttle=FailureThrottle(self.clock))
        self.host.add_account("alice", "pw")
        transport = StringTransport()
        transport.startTLS = lambda options: None
        self.patch(c2s, "channel_bindings", lambda transport: {})
        proto = factory.buildProtocol(None)
        proto.makeConnection(transport)
        header = (b"<stream:stream to='example.org' version='1.0' xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams'>")
        proto.dataReceived(header + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        proto.dataReceived(header)
        self.assertNotIn(NS_CAPS.encode(), transport.value())
        plain = base64.b64encode(b"\0alice\0pw")
        proto.dataReceived(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                           + plain + b"</auth>")
        transport.clear()
        proto.dataReceived(header)
        features = transport.value().split(b"<stream:features", 1)[1]
        ver = self.advertised().get("ver")
        self.assertIn(f"<c xmlns=\"{NS_CAPS}\" hash=\"sha-1\" node=\"{NODE}\" "
                      f"ver=\"{ver}\"/>".encode(), features)


class ClientCapsTests(CapsTestCase):
    """Clients' caps: verified with disco#info (§5.4) and cached."""

    def test_verified_and_cached(self):
        """An unknown ver is asked of the client at node#ver; a matching answer is cached
        and gives the session's features."""
        self.present("alice@example.org/r")
        [query] = self.queries()
        self.assertEqual(query.get("to"), "alice@example.org/r")
        self.assertEqual(query.find(DISCO_INFO).get("node"), f"{CLIENT_NODE}#{SIMPLE_VER}")
        self.assertIsNone(self.service.features_of(JID.parse("alice@example.org/r")))
        self.answer(query)
        self.assertEqual(self.service.features_for_ver(SIMPLE_VER), SIMPLE_FEATURES)
        self.assertEqual(self.service.features_of(JID.parse("alice@example.org/r")),
                         SIMPLE_FEATURES)

    def test_known_ver_is_not_asked_again(self):
        """Another client with a verified ver is not queried: the cache answers."""
        self.present("alice@example.org/r")
        self.answer(self.queries()[0])
        self.present("bob@example.org/r")
        self.present("alice@example.org/r")
        self.assertEqual(len(self.queries()), 1)
        self.assertEqual(self.service.features_of(JID.parse("bob@example.org/r")),
                         SIMPLE_FEATURES)

    def test_wrong_answer_is_not_cached(self):
        """An answer that hashes to another ver is not cached; the next client advertising
        that ver is asked instead (§5.4 3.9), and its right answer is cached."""
        self.present("mallory@example.org/r")
        self.present("bob@example.org/r")
        [first] = self.queries()
        self.answer(first, SIMPLE.replace("<feature var='http://jabber.org/protocol/muc'/>",
                                          ""))
        self.assertIsNone(self.service.features_for_ver(SIMPLE_VER))
        self.assertIsNone(self.service.features_of(JID.parse("mallory@example.org/r")))
        second = self.queries()[1]
        self.assertEqual(second.get("to"), "bob@example.org/r")
        self.present("mallory@example.org/r")     # the same bad ver is not asked again
        self.assertEqual(len(self.queries()), 2)
        self.answer(second)
        self.assertEqual(self.service.features_for_ver(SIMPLE_VER), SIMPLE_FEATURES)

    def test_ill_formed_answer_is_not_cached(self):
        """An answer with a duplicate feature is ill-formed and not cached."""
        self.present("alice@example.org/r")
        self.answer(self.queries()[0], SIMPLE.replace(
            "</query>", "<feature var='http://jabber.org/protocol/muc'/></query>"))
        self.assertIsNone(self.service.features_for_ver(SIMPLE_VER))

    def test_error_or_silence_is_not_cached(self):
        """An error reply, or no reply before the timeout, caches nothing."""
        self.present("alice@example.org/r")
        query = self.queries()[0]
        self.host.receive(f"<iq type='error' id='{query.get('id')}' from='alice@example.org/r' "
                          f"to='example.org'><error type='cancel'><item-not-found "
                          f"xmlns='{NS_STANZAS}'/></error></iq>")
        self.present("bob@example.org/r", ver=COMPLEX_VER, node="http://psi-im.org")
        self.clock.advance(60)
        self.assertIsNone(self.service.features_for_ver(SIMPLE_VER))
        self.assertIsNone(self.service.features_for_ver(COMPLEX_VER))

    def test_one_query_per_ver(self):
        """Clients advertising a ver already being verified are not asked too."""
        for user in ("alice", "bob", "carol"):
            self.present(f"{user}@example.org/r")
        self.assertEqual(len(self.queries()), 1)
        self.answer(self.queries()[0])
        self.assertEqual(self.service.features_of(JID.parse("carol@example.org/r")),
                         SIMPLE_FEATURES)

    def test_one_query_per_client(self):
        """A client changing caps while asked is asked about the new ver afterwards."""
        self.present("alice@example.org/r")
        self.present("alice@example.org/r", ver=COMPLEX_VER, node="http://psi-im.org")
        self.assertEqual(len(self.queries()), 1)
        self.answer(self.queries()[0])
        self.assertEqual(self.service.features_for_ver(SIMPLE_VER), SIMPLE_FEATURES)
        self.assertIsNone(self.service.features_of(JID.parse("alice@example.org/r")))
        second = self.queries()[1]
        self.assertEqual(second.find(DISCO_INFO).get("node"),
                         f"http://psi-im.org#{COMPLEX_VER}")
        self.answer(second, COMPLEX)
        self.assertEqual(self.service.features_of(JID.parse("alice@example.org/r")),
                         SIMPLE_FEATURES)   # §5.3's features are the same four

    def test_legacy_caps_ignored(self):
        """Caps without a hash attribute (legacy) are neither queried nor cached."""
        self.present("alice@example.org/r", ver="0.9", hash=None)
        self.assertEqual(self.queries(), [])
        self.assertIsNone(self.service.features_of(JID.parse("alice@example.org/r")))

    def test_unsupported_hash_is_for_that_client_only(self):
        """With a hash we do not implement, the answer is kept for that session only."""
        self.present("alice@example.org/r", hash="md5", ver="abc")
        self.answer(self.queries()[0])
        self.assertEqual(self.service.features_of(JID.parse("alice@example.org/r")),
                         SIMPLE_FEATURES)
        self.assertIsNone(self.service.features_for_ver("abc"))
        self.present("bob@example.org/r", hash="md5", ver="abc")
        self.assertEqual(len(self.queries()), 2)

    def test_presence_without_caps_clears(self):
        """A later presence without <c/> leaves the session with no caps."""
        self.present("alice@example.org/r")
        self.answer(self.queries()[0])
        self.present("alice@example.org/r", c=False)
        self.assertIsNone(self.service.features_of(JID.parse("alice@example.org/r")))
        self.assertIsNone(self.service.features_of(JID.parse("nobody@example.org/r")))

    def test_unavailable_and_directed_presence_ignored(self):
        """Unavailable presence and directed presence do not trigger queries."""
        FakeSession(self.host, "alice@example.org/r")
        self.host.receive(f"<presence from='alice@example.org/r' type='unavailable'>"
                          f"<c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='v'/></presence>")
        self.host.receive(f"<presence from='alice@example.org/r' to='bob@example.org'>"
                          f"<c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='v'/></presence>")
        self.assertEqual(self.queries(), [])

    def test_cache_is_process_wide(self):
        """A second host using the same plugin object shares the verified vers."""
        self.present("alice@example.org/r")
        self.answer(self.queries()[0])
        other = FakeHost("example.net", clock=self.clock)
        other.install(service_discovery)
        other.install(self.caps)
        self.assertEqual(other.service("caps").features_for_ver(SIMPLE_VER), SIMPLE_FEATURES)
        other.receive(f"<presence from='bob@example.net/r'><c xmlns='{NS_CAPS}' "
                      f"hash='sha-1' node='{CLIENT_NODE}' ver='{SIMPLE_VER}'/></presence>")
        self.assertEqual(other.service("caps").features_of(JID.parse("bob@example.net/r")),
                         SIMPLE_FEATURES)

    def test_unload_forgets_queries(self):
        """Unloading cancels the queries in flight; a late answer caches nothing."""
        self.present("alice@example.org/r")
        query = self.queries()[0]
        self.host.unload("caps")
        self.answer(query)
        self.assertIsNone(self.caps.cache.get(SIMPLE_VER))


class WhenKnownTests(CapsTestCase):
    """The service's when_known(session): fired by the query that settles the caps, with
    no timer of its own, and no waiter left behind."""

    ALICE = "alice@example.org/r"
    BOB = "bob@example.org/r"

    def when_known(self, jid):
        return self.service.when_known(self.host.session(jid))

    def waiters(self):
        return self.service._verifier._waiters

    def error(self, query):
        self.host.receive(f"<iq type='error' id='{query.get('id')}' from='{query.get('to')}' "
                          f"to='example.org'><error type='cancel'><item-not-found "
                          f"xmlns='{NS_STANZAS}'/></error></iq>")

    def test_known_at_once(self):
        """Verified caps: the Deferred has the features already."""
        self.present(self.ALICE)
        self.answer(self.queries()[0])
        self.present(self.BOB)
        self.assertEqual(self.successResultOf(self.when_known(self.BOB)), SIMPLE_FEATURES)
        self.assertEqual(self.waiters(), {})

    def test_impossible_at_once(self):
        """No caps, legacy caps, or no such session: None at once, and no timer at all."""
        self.present(self.ALICE, c=False)
        self.present(self.BOB, ver="0.9", hash=None)
        self.assertIsNone(self.successResultOf(self.when_known(self.ALICE)))
        self.assertIsNone(self.successResultOf(self.when_known(self.BOB)))
        self.assertIsNone(self.successResultOf(self.service.when_known(
            FakeSession(FakeHost("example.net"), "carol@example.net/r"))))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.waiters(), {})

    def test_fires_with_the_answer(self):
        """Caps being verified: the only timer is the query's timeout; the verifying
        answer fires the Deferred with the features, no clock advance needed."""
        self.present(self.ALICE)
        d = self.when_known(self.ALICE)
        self.assertNoResult(d)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), QUERY_TIMEOUT)
        self.answer(self.queries()[0])
        self.assertEqual(self.successResultOf(d), SIMPLE_FEATURES)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.waiters(), {})

    def test_another_sessions_query(self):
        """A session with a ver another client is asked about waits for that answer."""
        self.present(self.ALICE)
        self.present(self.BOB)
        d = self.when_known(self.BOB)
        self.assertNoResult(d)
        self.assertEqual([q.get("to") for q in self.queries()], [self.ALICE])
        self.answer(self.queries()[0])
        self.assertEqual(self.successResultOf(d), SIMPLE_FEATURES)

    def test_next_client_after_failure(self):
        """A wrong answer does not settle the waiters while another client is asked
        (§5.4 3.9): its right answer does, for the client that answered wrongly too."""
        self.present(self.ALICE)
        self.present(self.BOB)
        alice, bob = self.when_known(self.ALICE), self.when_known(self.BOB)
        self.answer(self.queries()[0], SIMPLE.replace(
            "<feature var='http://jabber.org/protocol/muc'/>", ""))
        self.assertNoResult(alice)
        self.assertNoResult(bob)
        self.assertEqual(self.queries()[1].get("to"), self.BOB)
        self.answer(self.queries()[1])
        self.assertEqual(self.successResultOf(alice), SIMPLE_FEATURES)
        self.assertEqual(self.successResultOf(bob), SIMPLE_FEATURES)
        self.assertEqual(self.waiters(), {})

    def test_failure_with_nobody_left(self):
        """An error answer with no other client to ask fires None; so does a failed ver
        asked about later, at once."""
        self.present(self.ALICE)
        d = self.when_known(self.ALICE)
        self.error(self.queries()[0])
        self.assertIsNone(self.successResultOf(d))
        self.assertIsNone(self.successResultOf(self.when_known(self.ALICE)))
        self.assertEqual(self.waiters(), {})

    def test_timeout(self):
        """A client that never answers: None when the query times out."""
        self.present(self.ALICE)
        d = self.when_known(self.ALICE)
        self.clock.advance(QUERY_TIMEOUT)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.waiters(), {})

    def test_session_ends(self):
        """A session ending while asked: its waiter fires None and is dropped, its query is
        cancelled, and the next client with the ver is asked at once."""
        self.present(self.ALICE)
        self.present(self.BOB)
        alice, bob = self.when_known(self.ALICE), self.when_known(self.BOB)
        self.host.session(self.ALICE).close()
        self.assertIsNone(self.successResultOf(alice))
        self.assertNoResult(bob)
        self.assertEqual([q.get("to") for q in self.queries()], [self.ALICE, self.BOB])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)     # Bob's query only
        self.answer(self.queries()[1])
        self.assertEqual(self.successResultOf(bob), SIMPLE_FEATURES)
        self.host.session(self.BOB).close()
        self.assertEqual(self.waiters(), {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_waiting_session_ends(self):
        """A session waiting on another client's query that ends leaves nothing behind."""
        self.present(self.ALICE)
        self.present(self.BOB)
        bob = self.when_known(self.BOB)
        self.host.session(self.BOB).close()
        self.assertIsNone(self.successResultOf(bob))
        self.assertEqual(self.waiters(), {})

    def test_caps_change(self):
        """New caps before the old ones are known: the old waiter fires None."""
        self.present(self.ALICE)
        d = self.when_known(self.ALICE)
        self.present(self.ALICE, ver=COMPLEX_VER, node="http://psi-im.org")
        self.assertIsNone(self.successResultOf(d))
        self.present(self.ALICE, c=False)
        self.assertEqual(self.waiters(), {})

    def test_same_caps_again(self):
        """Presence repeating the caps (a status change) keeps the waiter, and the one
        query answers it."""
        self.present(self.ALICE)
        d = self.when_known(self.ALICE)
        self.present(self.ALICE)
        self.assertNoResult(d)
        self.answer(self.queries()[0])
        self.assertEqual(self.successResultOf(d), SIMPLE_FEATURES)
        self.assertEqual(len(self.queries()), 1)

    def test_new_caps_while_asked_about_old(self):
        """A client asked about its old caps is asked about its new ones afterwards; the
        waiter for the new ones fires with that second answer."""
        self.present(self.ALICE)
        self.present(self.ALICE, ver=COMPLEX_VER, node="http://psi-im.org")
        d = self.when_known(self.ALICE)
        self.answer(self.queries()[0])
        self.assertNoResult(d)
        self.answer(self.queries()[1], COMPLEX)
        self.assertEqual(self.successResultOf(d), SIMPLE_FEATURES)   # §5.3's are the same

    def test_unsupported_hash(self):
        """With a hash we do not implement, the session's own answer fires it."""
        self.present(self.ALICE, hash="md5", ver="abc")
        d = self.when_known(self.ALICE)
        self.answer(self.queries()[0])
        self.assertEqual(self.successResultOf(d), SIMPLE_FEATURES)

    def test_cancel(self):
        """A cancelled waiter is dropped; the others still fire."""
        self.present(self.ALICE)
        cancelled, kept = self.when_known(self.ALICE), self.when_known(self.ALICE)
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.answer(self.queries()[0])
        self.assertEqual(self.successResultOf(kept), SIMPLE_FEATURES)
        self.assertEqual(self.waiters(), {})
        self.present(self.BOB, ver=COMPLEX_VER, node="http://psi-im.org")
        d = self.when_known(self.BOB)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.waiters(), {})

    def test_unload(self):
        """Unloading fires the remaining waiters with None; later calls get None."""
        self.present(self.ALICE)
        d = self.when_known(self.ALICE)
        service = self.service
        self.host.unload("caps")
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(service._verifier._waiters, {})
        self.assertIsNone(self.successResultOf(
            service.when_known(self.host.session(self.ALICE))))
