"""XEP-0388 SASL2 and XEP-0386 Bind2 on the c2s negotiation, driven with plain bytes."""
from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.stream.bind2 import resource_for
from jabberapp.stream.sasl2 import is_uuid
from jabberapp.xml import element
from tests.c2s_bytes import PASSWORD, World, b64, unb64
from tests.scram_client import Client
from tests.test_negotiation import features

NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
UA_ID = "d4565fa7-4d72-4749-b3d3-740edbf87770"     # XEP-0388's example


def authenticate(mechanism, initial, inner=""):
    """An <authenticate/> as bytes, with C{initial} (bytes) and C{inner} XML."""
    return (f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>"
            f"<initial-response>{b64(initial)}</initial-response>{inner}</authenticate>"
            ).encode()


def user_agent(ua_id=UA_ID):
    return (f"<user-agent id='{ua_id}'><software>AwesomeXMPP</software>"
            f"<device>Kiva's Phone</device></user-agent>")


def first(data, name):
    """The first top-level element called C{name} in C{data} (bytes) as an lxml element."""
    wrapped = (b"<r xmlns:stream='http://etherx.jabber.org/streams'>" + data + b"</r>")
    for child in etree.fromstring(wrapped, etree.XMLParser(recover=True)):
        if etree.QName(child).localname == name:
            return child
    raise AssertionError(f"no <{name}/> in {data!r}")


def q(ns, name):
    return f"{{{ns}}}{name}"


class SASL2Tests(SynchronousTestCase):
    """SASL2 over a BytesTransport: the exchange, success without restart, failures."""

    def setUp(self):
        self.world = World()

    def scram2(self, transport, inner="", password=PASSWORD, name="SCRAM-SHA-256"):
        """A SCRAM exchange over SASL2; returns what followed the client's final message."""
        client = Client("sha256", "alice", password)
        transport.feed(authenticate(name, client.first(), inner))
        challenge = first(transport.take(), "challenge")
        self.assertEqual(challenge.tag, q(NS_SASL2, "challenge"))
        transport.feed(f"<response xmlns='{NS_SASL2}'>"
                       f"{b64(client.final(unb64(challenge.text)))}</response>".encode())
        out = transport.take()
        if b"<success" in out:
            success = first(out, "success")
            client.verify(unb64(success.findtext(q(NS_SASL2, "additional-data"))))
        return out

    def test_advertised_with_bind2_inline(self):
        """Before authentication, <authentication/> lists the mechanisms (as <mechanisms/>
        does) and offers Bind2 inline; after it, nothing."""
        transport = self.world.connect()
        transport.feed(b"<?xml version='1.0'?><stream:stream to='example.org' version='1.0' "
                       b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        self.assertNotIn(NS_SASL2.encode(), transport.take())   # not before STARTTLS
        transport = self.world.secure()
        transport.stream.host.bind2_features["urn:example:inline"] = lambda s, e: None
        out = transport.stream.features()
        authentication = out.find(q(NS_SASL2, "authentication"))
        mechanisms = [m.text for m in authentication.findall(q(NS_SASL2, "mechanism"))]
        legacy = [m.text for m in out.find(q(NS_SASL, "mechanisms"))]
        self.assertEqual(mechanisms, legacy)
        self.assertIn("PLAIN", mechanisms)
        bind = authentication.find(f"{q(NS_SASL2, 'inline')}/{q(NS_BIND2, 'bind')}")
        self.assertEqual([f.get("var") for f in bind.iter(q(NS_BIND2, "feature"))],
                         ["urn:example:inline"])
        self.scram2(transport)
        self.assertIsNone(transport.stream.features().find(q(NS_SASL2, "authentication")))

    def test_scram_without_bind_continues_the_stream(self):
        """SCRAM over SASL2: <challenge/>/<response/>, then <success/> with the server's
        final message and the bare JID, and the authenticated stage's features on the same
        stream: a bind IQ follows with no new stream header."""
        transport = self.world.secure()
        out = self.scram2(transport, user_agent())
        success = first(out, "success")
        self.assertEqual(success.findtext(q(NS_SASL2, "authorization-identifier")),
                         "alice@example.org")
        self.assertEqual(features(out), [("urn:ietf:params:xml:ns:xmpp-bind", "bind"),
                                          ("urn:ietf:params:xml:ns:xmpp-session", "session")])
        self.assertEqual(transport.stream.username, "alice")
        transport.feed(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                       b"<resource>r</resource></bind></iq>")
        self.assertIn(b"<jid>alice@example.org/r</jid>", transport.take())

    def test_plain_with_bind2_in_one_round_trip(self):
        """PLAIN with Bind2 inline: one <authenticate/> answers <success/> naming the full
        JID, resource tag.hash of the user-agent id, with <bound/>; the session runs."""
        transport = self.world.secure()
        bind = f"<bind xmlns='{NS_BIND2}'><tag>AwesomeXMPP</tag></bind>"
        transport.feed(authenticate("PLAIN", f"\0alice\0{PASSWORD}".encode(),
                                    user_agent() + bind))
        out = transport.take()
        success = first(out, "success")
        jid = success.findtext(q(NS_SASL2, "authorization-identifier"))
        self.assertEqual(jid, "alice@example.org/" + resource_for("AwesomeXMPP", UA_ID))
        self.assertTrue(jid.startswith("alice@example.org/AwesomeXMPP."))
        self.assertIsNotNone(success.find(q(NS_BIND2, "bound")))
        self.assertNotIn(b"stream:features", out)
        self.assertEqual(str(transport.stream.session.jid), jid)
        transport.feed(b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertIn(b"id=\"p1\"", transport.take())

    def test_same_device_same_resource(self):
        """A device logging in again gets the same resource and replaces its old session;
        another device gets another resource."""
        bind = f"<bind xmlns='{NS_BIND2}'><tag>App</tag></bind>"
        jids = []
        for ua_id in (UA_ID, UA_ID, "0b3c4e1a-4b2e-4c1e-9d0f-5a6b7c8d9e0f"):
            transport = self.world.secure()
            transport.feed(authenticate("PLAIN", f"\0alice\0{PASSWORD}".encode(),
                                        user_agent(ua_id) + bind))
            transport.take()
            jids.append(str(transport.stream.session.jid))
        self.assertEqual(jids[0], jids[1])
        self.assertNotEqual(jids[0], jids[2])
        self.assertEqual(len(self.world.host.sessions), 2)

    def test_bind2_without_user_agent_is_random(self):
        """Without a user-agent id Bind2 still binds, to a random resource."""
        transport = self.world.secure()
        transport.feed(authenticate("PLAIN", f"\0alice\0{PASSWORD}".encode(),
                                    f"<bind xmlns='{NS_BIND2}'/>"))
        success = first(transport.take(), "success")
        self.assertIsNotNone(transport.stream.session)
        self.assertEqual(success.findtext(q(NS_SASL2, "authorization-identifier")),
                         str(transport.stream.session.jid))

    def test_inline_features_run_once_bound(self):
        """A Bind2 inline feature an extension registered gets its child of <bind/> with the
        session bound, and its answer goes into <bound/>; unknown children are ignored."""
        seen = []

        def handler(stream, el):
            seen.append((str(stream.session.jid), el.get("x")))
            return element("urn:example:inline", "enabled")

        self.world.host.bind2_features["urn:example:inline"] = handler
        transport = self.world.secure()
        bind = (f"<bind xmlns='{NS_BIND2}'><enable xmlns='urn:example:inline' x='1'/>"
                f"<enable xmlns='urn:example:unknown'/></bind>")
        transport.feed(authenticate("PLAIN", f"\0alice\0{PASSWORD}".encode(), bind))
        bound = first(transport.take(), "success").find(q(NS_BIND2, "bound"))
        self.assertEqual([c.tag for c in bound], ["{urn:example:inline}enabled"])
        self.assertEqual(seen, [(str(transport.stream.session.jid), "1")])

    def test_non_uuid_user_agent_is_malformed_and_counted(self):
        """A user-agent id that is not a UUID is <malformed-request/>, counted by the
        throttle like a wrong password (the next failure waits)."""
        transport = self.world.secure()
        transport.feed(authenticate("PLAIN", f"\0alice\0{PASSWORD}".encode(),
                                    user_agent("my-phone")))
        failure = first(transport.take(), "failure")
        self.assertEqual(failure.tag, q(NS_SASL2, "failure"))
        self.assertIsNotNone(failure.find(q(NS_SASL, "malformed-request")))
        self.assertIsNotNone(failure.find(q(NS_SASL2, "text")))
        self.assertIsNone(transport.stream.username)
        self.assertGreater(self.world.listener.throttle.delay(("address", "198.51.100.7")), 0)

    def test_unknown_mechanism(self):
        """An unknown mechanism is <invalid-mechanism/>, at once."""
        transport = self.world.secure()
        transport.feed(authenticate("X-UNKNOWN", b"x"))
        failure = first(transport.take(), "failure")
        self.assertIsNotNone(failure.find(q(NS_SASL, "invalid-mechanism")))

    def test_wrong_password_is_throttled(self):
        """A wrong password is <not-authorized/>; the next failure from that client waits
        for the throttle's delay before its answer, as on legacy SASL."""
        transport = self.world.secure()
        self.scram2(transport, password="wrong")
        transport.feed(authenticate("PLAIN", b"\0alice\0wrong"))
        self.assertEqual(transport.take(), b"")     # held by the throttle
        self.world.clock.advance(3600)
        failure = first(transport.take(), "failure")
        self.assertIsNotNone(failure.find(q(NS_SASL, "not-authorized")))

    def test_abort(self):
        """<abort/> in the middle of an exchange is <aborted/>."""
        transport = self.world.secure()
        transport.feed(authenticate("SCRAM-SHA-256", Client("sha256", "alice", "x").first()))
        transport.take()
        transport.feed(f"<abort xmlns='{NS_SASL2}'/>".encode())
        self.assertIsNotNone(first(transport.take(), "failure").find(q(NS_SASL, "aborted")))

    def test_authenticate_twice_is_a_stream_error(self):
        """An <authenticate/> on an authenticated stream ends it."""
        transport = self.world.secure()
        self.scram2(transport)
        transport.feed(authenticate("PLAIN", b"\0alice\0x"))
        self.assertIn(b"policy-violation", transport.take())
        self.assertTrue(transport.closed)

    def test_is_uuid(self):
        """UUIDs in their usual form pass; anything else does not."""
        self.assertTrue(is_uuid(UA_ID))
        self.assertTrue(is_uuid(UA_ID.upper()))
        for bad in ("", "my-phone", "{" + UA_ID + "}", UA_ID.replace("-", ""), UA_ID + "0"):
            self.assertFalse(is_uuid(bad), bad)
