"""The s2s route manager: queueing, flushing, bounces, timeouts, idle links, dialback
verification, and two managers federating in memory (twisted.test.iosim)."""
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError, TimeoutError
from twisted.internet.task import Clock
from twisted.test.iosim import FakeTransport, connect as iosim_connect
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import stanza as st
from jabberapp.s2s import dialback
from jabberapp.s2s.inbound import InboundStream
from jabberapp.s2s.manager import VerificationFailed
from jabberapp.s2s.outbound import OutboundStream
from jabberapp.s2s.resolver import ResolutionError, Target
from jabberapp.xml import parse_element
from jabberapp.xml.ns import NS_STANZAS
from tests.s2s.support import (LOCAL, REMOTE, Reader, TLSStringTransport, header,
                               make_manager)

NS_DB = "jabber:server:dialback"
DIALBACK_FEATURES = (b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                     b"</stream:features>")


def message(n, type_="chat", sender=f"alice@{LOCAL}/r", to=f"bob@{REMOTE}"):
    return parse_element(f"<message from='{sender}' to='{to}' type='{type_}' id='m{n}'>"
                         f"<body>{n}</body></message>")


def condition(error_stanza):
    error = error_stanza.find(st.ERROR)
    return next(c.tag.rpartition("}")[2] for c in error if c.tag.startswith(f"{{{NS_STANZAS}}}"))


class Connector:
    """connect() stand-in: records attempts; the test decides how each one ends."""

    def __init__(self):
        self.attempts = []
        self.cancelled = []
        self.manager = None

    def __call__(self, target, route):
        d = defer.Deferred(lambda _: self.cancelled.append(target))
        self.attempts.append((target, route, d))
        return d

    def succeed(self, index=-1):
        target, route, d = self.attempts[index]
        stream = OutboundStream(self.manager, route, secure=target.direct_tls)
        transport = TLSStringTransport()
        stream.makeConnection(transport)
        d.callback(stream)
        return stream, transport, Reader(transport)


def authenticate(stream, stream_id="sid"):
    """Play the peer: header, dialback offer, 'valid'."""
    stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_=stream_id))
    stream.dataReceived(DIALBACK_FEATURES)
    stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}' type='valid'/>".encode())


class RouteTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.connector = Connector()
        self.manager, self.router, self.local = make_manager(
            clock=self.clock, connect=self.connector,
            routes=[(REMOTE, "192.0.2.1", 5269), (REMOTE, "192.0.2.2", 5270)])
        self.connector.manager = self.manager

    def test_queue_then_flush_in_order(self):
        """Stanzas wait while the link is set up and are written in order once it is up."""
        for n in range(3):
            self.router.route(message(n))
        (target, _, _), = self.connector.attempts
        self.assertEqual(target, Target("192.0.2.1", 5269))
        stream, transport, reader = self.connector.succeed()
        reader.read()
        authenticate(stream)
        written = [e for e in reader.elements() if e.tag == st.MESSAGE]
        self.assertEqual([m.get("id") for m in written], ["m0", "m1", "m2"])
        self.router.route(message(3))
        self.assertEqual([m.get("id") for m in reader.elements()], ["m3"])
        self.assertEqual(self.manager.links()[0]["state"], "up")

    def test_bounce_on_connect_failure(self):
        """When every target refuses, each queued stanza comes back to its sender with
        remote-server-not-found, in order; errors are never answered."""
        for n in range(2):
            self.router.route(message(n))
        self.router.route(message(9, type_="error"))
        self.connector.attempts[0][2].errback(ConnectionRefusedError())
        self.assertEqual(len(self.connector.attempts), 2)    # the second target
        self.connector.attempts[1][2].errback(ConnectionRefusedError())
        bounces = self.local.received
        self.assertEqual([(b.get("id"), b.get("type"), b.get("from"), b.get("to"))
                          for b in bounces],
                         [(f"m{n}", "error", f"bob@{REMOTE}", f"alice@{LOCAL}/r")
                          for n in range(2)])
        self.assertEqual({condition(b) for b in bounces}, {"remote-server-not-found"})
        self.assertEqual(self.manager.routes, {})

    def test_bounce_on_timeout(self):
        """A link not up within negotiation_timeout bounces with remote-server-timeout
        and abandons the connection attempt."""
        self.router.route(message(0))
        pending = self.connector.attempts[0][2]
        self.clock.advance(self.manager.config.negotiation_timeout)
        bounce, = self.local.received
        self.assertEqual(condition(bounce), "remote-server-timeout")
        self.assertEqual(self.connector.cancelled, [Target("192.0.2.1", 5269)])
        self.assertTrue(pending.called)

    def test_connect_timeout_is_a_timeout(self):
        """TCP connection timeouts on every target bounce as remote-server-timeout."""
        self.router.route(message(0))
        self.connector.attempts[0][2].errback(TimeoutError())
        self.connector.attempts[1][2].errback(TimeoutError())
        self.assertEqual(condition(self.local.received[0]), "remote-server-timeout")

    def test_silent_peer_times_out(self):
        """Connected but never authenticated: timeout bounce, and the stream is closed."""
        self.router.route(message(0))
        _, transport, _ = self.connector.succeed()
        self.clock.advance(self.manager.config.negotiation_timeout)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(condition(self.local.received[0]), "remote-server-timeout")

    def test_negotiation_failure_tries_next_target(self):
        """A target whose stream fails during negotiation gives way to the next one."""
        self.router.route(message(0))
        stream, _, _ = self.connector.succeed()
        stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_="x"))
        stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}' type='invalid'/>"
                            .encode())
        stream.connectionLost(None)
        self.assertEqual(len(self.connector.attempts), 2)
        stream, _, reader = self.connector.succeed()
        authenticate(stream)
        self.assertEqual([e.get("id") for e in reader.elements() if e.tag == st.MESSAGE],
                         ["m0"])
        self.assertEqual(self.local.received, [])

    def test_authentication_failure_bounces(self):
        """Refused on every target: remote-server-not-found with the stanzas back."""
        self.router.route(message(0))
        for _ in range(2):
            stream, _, _ = self.connector.succeed()
            stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_="x"))
            stream.dataReceived(f"<db:result from='{REMOTE}' to='{LOCAL}' type='invalid'/>"
                                .encode())
            stream.connectionLost(None)
        self.assertEqual(condition(self.local.received[0]), "remote-server-not-found")

    def test_resolution_failure(self):
        """A domain without an XMPP service bounces remote-server-not-found."""
        self.manager.resolver.resolve = lambda domain: defer.fail(ResolutionError(domain))
        self.router.route(message(0, to="x@nowhere.example"))
        self.assertEqual(condition(self.local.received[0]), "remote-server-not-found")
        self.assertEqual(self.connector.attempts, [])

    def test_new_attempt_after_failure(self):
        """After a failed route the next stanza tries again."""
        self.router.route(message(0))
        for _, _, d in list(self.connector.attempts):
            d.errback(ConnectionRefusedError())
        self.connector.attempts[1][2].errback(ConnectionRefusedError())
        self.router.route(message(1))
        self.assertEqual(len(self.connector.attempts), 3)

    def test_idle_link_is_closed(self):
        """An up link without traffic for idle_timeout is closed; later stanzas open a
        new one."""
        self.router.route(message(0))
        stream, transport, _ = self.connector.succeed()
        authenticate(stream)
        self.clock.advance(self.manager.config.idle_timeout - 1)
        self.router.route(message(1))          # activity postpones the close
        self.clock.advance(2)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(self.manager.config.idle_timeout)
        self.assertTrue(transport.disconnecting)
        self.router.route(message(2))          # the old stream is closing: a new route
        self.assertEqual(len(self.connector.attempts), 2)
        stream.connectionLost(None)            # the old one going away changes nothing
        self.assertIn((LOCAL, REMOTE), self.manager.routes)

    def test_idle_timeout_zero_keeps_links(self):
        """idle_timeout 0 never closes a link."""
        self.manager, self.router, _ = make_manager(
            clock=self.clock, connect=self.connector, idle_timeout=0.0,
            routes=[(REMOTE, "192.0.2.1", 5269)])
        self.connector.manager = self.manager
        self.router.route(message(0))
        stream, transport, _ = self.connector.succeed()
        authenticate(stream)
        self.clock.advance(10 ** 6)
        self.assertFalse(transport.disconnecting)

    def test_no_relaying(self):
        """A stanza whose sender is not local is never sent to another server."""
        self.router.route(message(0, sender="eve@third.example"))
        self.assertEqual(self.connector.attempts, [])

    def test_verify_key_before_authentication(self):
        """db:verify goes out as soon as the route's stream is past its features, and
        the answer settles the verification."""
        d = self.manager.verify_key(LOCAL, REMOTE, "their-sid", "key")
        stream, _, reader = self.connector.succeed()
        reader.read()
        stream.dataReceived(header(from_=REMOTE, to=LOCAL, id_="sid"))
        stream.dataReceived(DIALBACK_FEATURES)
        verify = next(e for e in reader.elements() if e.tag == f"{{{NS_DB}}}verify")
        self.assertEqual((verify.get("id"), verify.text, verify.get("to")),
                         ("their-sid", "key", REMOTE))
        self.assertNoResult(d)
        stream.dataReceived(f"<db:verify from='{REMOTE}' to='{LOCAL}' id='their-sid' "
                            f"type='valid'/>".encode())
        self.assertTrue(self.successResultOf(d))

    def test_verify_key_route_fails(self):
        """When the Authoritative Server cannot be reached the verification fails."""
        d = self.manager.verify_key(LOCAL, REMOTE, "sid", "key")
        for _ in range(2):
            self.connector.attempts[-1][2].errback(ConnectionRefusedError())
        self.assertEqual(self.failureResultOf(d, VerificationFailed).value.condition,
                         "remote-server-not-found")

    def test_bidi_inbound_stream_is_used(self):
        """With no route of our own, a bidi stream the peer opened carries our stanzas."""
        inbound = InboundStream(self.manager)
        transport = TLSStringTransport()
        inbound.makeConnection(transport)
        inbound.local_domain = LOCAL
        inbound.bidi = True
        inbound._authenticated(REMOTE, "dialback")
        transport.clear()
        self.router.route(message(0))
        self.assertEqual(self.connector.attempts, [])
        self.assertIn(b"<body>0</body>", transport.value())

    def test_shutdown(self):
        """Closing everything bounces what was queued and closes streams."""
        self.router.route(message(0))
        _, transport, _ = self.connector.succeed()
        self.manager.close_all()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.local.received), 1)


class Network:
    """Managers connected through twisted.test.iosim: hosts are domain names."""

    def __init__(self):
        self.managers = {}
        self.pumps = []

    def add(self, domain, peer, **config):
        manager, router, local = make_manager(domain=domain, routes=[(peer, peer, 5269)],
                                              connect=self._connector(domain), **config)
        manager.secret = dialback.new_secret()
        self.managers[domain] = manager
        return manager, router, local

    def _connector(self, domain):
        def connect(target, route):
            server = InboundStream(self.managers[target.host])
            client = OutboundStream(self.managers[domain], route)
            self.pumps.append(iosim_connect(server, FakeTransport(server, True),
                                            client, FakeTransport(client, False),
                                            greet=False))
            return defer.succeed(client)
        return connect

    def flush(self):
        moved = True
        while moved:
            moved = False
            for pump in list(self.pumps):
                moved = pump.pump() or moved


class InMemoryFederationTests(SynchronousTestCase):
    def federate(self, **config):
        network = Network()
        _, a_router, a_local = network.add("a.example", "b.example", **config)
        _, b_router, b_local = network.add("b.example", "a.example", **config)
        a_router.route(message(1, sender="alice@a.example/r", to="bob@b.example"))
        network.flush()
        received, = b_local.received
        self.assertEqual((received.get("from"), received.get("to"), received.findtext(
            "{jabber:client}body")), ("alice@a.example/r", "bob@b.example", "1"))
        b_router.route(message(2, sender="bob@b.example/r", to="alice@a.example"))
        network.flush()
        self.assertEqual([m.findtext("{jabber:client}body") for m in a_local.received],
                         ["2"])
        return network

    def test_dialback_both_ways(self):
        """Two managers authenticate each other by dialback and exchange stanzas."""
        network = self.federate()
        links = {(l["direction"], l["local"], l["peer"], l["auth"])
                 for m in network.managers.values() for l in m.links() if l["auth"]}
        self.assertIn(("outbound", "a.example", "b.example", "dialback"), links)
        self.assertIn(("inbound", "b.example", "a.example", "dialback"), links)

    def test_with_starttls(self):
        """With encryption required, both links negotiate STARTTLS first (iosim's
        pretend TLS), then dialback."""
        network = self.federate(require_encryption=True)
        streams = [pump.client for pump in network.pumps]
        self.assertTrue(all(stream.secure and stream.authenticated for stream in streams))

    def test_without_bidi(self):
        """Without XEP-0288 the answer uses a second stream, and still arrives."""
        self.federate(bidi=False)

    def test_wrong_secret_is_refused(self):
        """If a.example's Authoritative Server does not know the key, b.example refuses
        the stream and a.example bounces the message."""
        network = Network()
        a, a_router, a_local = network.add("a.example", "b.example")
        network.add("b.example", "a.example")
        real = a.secret
        a.secret = "something else"          # keys sent no longer match what a verifies

        original = InboundStream._answer_verify

        def answer_with_real_secret(stream, el):
            stream.manager.secret = real
            try:
                return original(stream, el)
            finally:
                stream.manager.secret = "something else"
        self.patch(InboundStream, "_answer_verify", answer_with_real_secret)
        a_router.route(message(1, sender="alice@a.example/r", to="bob@b.example"))
        network.flush()
        bounce, = a_local.received
        self.assertEqual(condition(bounce), "remote-server-not-found")

