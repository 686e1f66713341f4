"""BOSH sessions over the real c2s negotiation (FramedClientStream): SCRAM login, bind,
stanzas both ways, and how the Session ends or detaches with the BOSH session."""
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import dispatch
from jabberapp.c2s.stream import CORE_STEPS
from jabberapp.extensions.sm import NS_SM, stream_management
from jabberapp.stream.framed import FramedClientStream
from jabberapp.transports.bosh.service import BOSHService
from jabberapp.transports.bosh.requests import BOSHLimits
from tests.c2s_bytes import NS_SASL, World, b64, unb64
from tests.scram_client import Client
from tests.test_bosh_session import RID, FakeChannel, body

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "http://etherx.jabber.org/streams"


class BOSHClient:
    """A BOSH client of the test: posts bodies with consecutive rids to a BOSHService."""

    def __init__(self, test, secure=True):
        self.test = test
        self.secure = secure
        self.rid = RID
        self.sid = None

    def post(self, payload="", **attrs):
        """Post the next body; returns its FakeChannel (answers after the turn ends)."""
        channel = FakeChannel()
        data = body(self.rid, self.sid, payload, **attrs)
        self.rid += 1
        self.test.service.request(data, channel, secure=self.secure, address="192.0.2.7")
        return channel

    def exchange(self, payload="", **attrs):
        """Post and return the answer's <body/> (the reactor turn run)."""
        channel = self.post(payload, **attrs)
        self.test.world.clock.advance(0)
        return channel.body

    def create(self, **attrs):
        response = self.exchange(to="example.org", wait="60", hold="1", ver="1.6",
                                 xmpp__version="1.0", **attrs)
        self.sid = response.get("sid")
        return response

    def login(self, user="alice", resource="web"):
        """Create, SCRAM-SHA-256, restart, bind; returns the bind result."""
        self.create()
        scram = Client("sha256", user, "correct horse")
        challenge = self.exchange(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                                  f"{b64(scram.first())}</auth>")
        server_first = unb64(challenge[0].text)
        success = self.exchange(f"<response xmlns='{NS_SASL}'>"
                                f"{b64(scram.final(server_first))}</response>")
        scram.verify(unb64(success[0].text))
        features = self.exchange(to="example.org", xmpp__restart="true")
        assert features[0].tag == f"{{{NS_STREAMS}}}features", features
        return self.exchange(f"<iq xmlns='jabber:client' type='set' id='b1'>"
                             f"<bind xmlns='{NS_BIND}'><resource>{resource}</resource>"
                             f"</bind></iq>")


class BOSHLoginTests(SynchronousTestCase):
    """A BOSH client logs in as a TCP client does and exchanges stanzas."""

    def setUp(self):
        self.world = World()
        listener = self.world.listener
        self.service = BOSHService(
            lambda transport: FramedClientStream(transport, listener, CORE_STEPS),
            self.world.clock, BOSHLimits(), max_body=listener.max_stanza_size)

    def login(self):
        client = BOSHClient(self)
        result = client.login()
        self.assertEqual(result[0].findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid"),
                         "alice@example.org/web")
        return client, self.alice()

    def alice(self):
        for session in self.world.host.sessions:
            if str(session.jid).startswith("alice@"):
                return session
        return None

    def test_creation_offers_sasl_over_https(self):
        """Over HTTPS the creation response's features offer SCRAM, never STARTTLS."""
        response = BOSHClient(self).create()
        [features] = response
        self.assertEqual([etree.QName(child).localname for child in features],
                         ["mechanisms", "authentication"])
        self.assertEqual(response.get("from"), "example.org")
        self.assertTrue(response.get("authid"))

    def test_plain_http_offers_no_authentication(self):
        """Over plain HTTP, with encryption required, no SASL is offered."""
        [features] = BOSHClient(self, secure=False).create()
        self.assertEqual(len(features), 0)

    def test_login_and_messages_both_ways(self):
        """SCRAM, restart and bind over BOSH; messages to and from a TCP client."""
        client, _ = self.login()
        session = self.alice()
        self.assertTrue(session.secure)
        bob = self.world.login("bob")
        held = client.post()
        bob.feed(b"<message to='alice@example.org/web' type='chat'><body>hi</body>"
                 b"</message>")
        self.world.clock.advance(0)
        [message] = held.body
        self.assertEqual((message.get("from"), message.findtext("{jabber:client}body")),
                         ("bob@example.org/r", "hi"))
        bob.take()
        client.post("<message xmlns='jabber:client' to='bob@example.org/r' type='chat'>"
                    "<body>hello</body></message>")
        self.assertIn(b"<body>hello</body>", bob.take())

    def test_inactivity_ends_session_like_a_dropped_connection(self):
        """An inactive BOSH session's Session ends (no extension keeps it)."""
        self.login()
        self.world.clock.advance(60)
        self.assertIsNone(self.alice())

    def test_inactivity_detaches_for_resumption(self):
        """An extension keeping detached sessions (stream management) keeps it."""
        kept = []

        def keep(session):
            kept.append(session)
            return dispatch.HANDLED
        self.world.host.dispatcher.hooks.add(dispatch.SESSION_DETACHED, keep)
        self.login()
        session = self.alice()
        self.world.clock.advance(60)
        self.assertEqual(kept, [session])
        self.assertFalse(session.ended)

    def test_resumption_after_inactivity(self):
        """XEP-0198: a BOSH session dropped for inactivity is kept; a new BOSH session
        resumes it and gets the message sent meanwhile."""
        self.world.host.install(stream_management, {"resume_timeout": 300, "max_queue": 10,
                                                    "request_every": 5, "ack_timeout": 30})
        client, _ = self.login()
        enabled = client.exchange(f"<enable xmlns='{NS_SM}' resume='true'/>")
        previd = enabled[0].get("id")
        self.world.clock.advance(60)
        session = self.alice()
        self.assertIsNone(session.stream)
        self.assertFalse(session.ended)
        bob = self.world.login("bob")
        bob.feed(b"<message to='alice@example.org/web' type='chat' id='gap'>"
                 b"<body>meanwhile</body></message>")
        again = BOSHClient(self)
        again.create()
        scram = Client("sha256", "alice", "correct horse")
        challenge = again.exchange(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                                   f"{b64(scram.first())}</auth>")
        again.exchange(f"<response xmlns='{NS_SASL}'>"
                       f"{b64(scram.final(unb64(challenge[0].text)))}</response>")
        again.exchange(to="example.org", xmpp__restart="true")
        resumed = again.exchange(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        self.assertEqual(etree.QName(resumed[0]).localname, "resumed")
        self.assertIn("gap", [child.get("id") for child in resumed])
        self.assertIs(self.alice(), session)
        self.assertIsNotNone(session.stream)

    def test_terminate_ends_session(self):
        """A terminate request with unavailable presence ends the Session."""
        client, _ = self.login()
        client.exchange("<presence xmlns='jabber:client'/>")
        self.assertTrue(self.alice().available)
        response = client.exchange("<presence xmlns='jabber:client' type='unavailable'/>",
                                   type="terminate")
        self.assertEqual(response.get("type"), "terminate")
        self.world.clock.advance(0)
        self.assertIsNone(self.alice())
        self.assertEqual(self.service.sessions, {})

    def test_conflict_is_remote_stream_error(self):
        """A newer login of the same resource ends the BOSH one with remote-stream-error
        and the conflict stream error."""
        client, _ = self.login()
        held = client.post()
        tcp = self.world.secure()
        self.world.scram(tcp)
        tcp.feed(b"<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 b"<resource>web</resource></bind></iq>")
        response = held.body
        self.assertEqual((response.get("type"), response.get("condition")),
                         ("terminate", "remote-stream-error"))
        error = response.find(f"{{{NS_STREAMS}}}error")
        self.assertEqual(etree.QName(error[0]).localname, "conflict")
        self.assertEqual(self.service.sessions, {})

    def test_policy_violation_ends_session(self):
        """A BOSH policy violation closes the stream: the Session ends, not detached."""
        kept = []
        self.world.host.dispatcher.hooks.add(dispatch.SESSION_DETACHED,
                                             lambda s: kept.append(s) or dispatch.HANDLED)
        client, _ = self.login()
        client.post()
        client.rid += 1
        client.post()
        client.rid -= 2
        response = client.post().body
        self.assertEqual(response.get("condition"), "policy-violation")
        self.world.clock.advance(0)
        self.assertIsNone(self.alice())
        self.assertEqual(kept, [])

    def test_unknown_host(self):
        """A session request to a host we do not serve is host-unknown."""
        client = BOSHClient(self)
        response = client.exchange(to="elsewhere.example", ver="1.6")
        self.assertEqual((response.get("type"), response.get("condition")),
                         ("terminate", "host-unknown"))
        self.assertEqual(self.service.sessions, {})

    def test_missing_to(self):
        """A session request without 'to' is improper-addressing."""
        response = BOSHClient(self).exchange(ver="1.6")
        self.assertEqual((response.get("type"), response.get("condition")),
                         ("terminate", "improper-addressing"))

    def test_negotiation_timeout(self):
        """A session that never authenticates ends when the c2s negotiation times out."""
        client = BOSHClient(self)
        client.create()
        held = client.post()
        self.world.clock.advance(self.world.listener.negotiation_timeout)
        self.assertEqual(held.body.get("condition"), "remote-stream-error")
