"""XEP-0077 In-Band Registration: registering before authentication, password change, removal."""
from lxml import etree
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp.c2s.stream import C2SFactory
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.last import last_activity
from jabberapp.extensions.register import NS_REGISTER, NS_REGISTER_FEATURE, register
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.plugins import jabberapp_builtin
from jabberapp.sasl.throttle import FailureThrottle
from jabberapp.testing import FakeHost, FakeSession
from jabberapp.xml.ns import NS_STANZAS

HEADER = (b"<?xml version='1.0'?><stream:stream to='example.org' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
PASSWORD = "correct horse"


def condition(reply):
    """The stanza error condition of C{reply}, or None for a result."""
    error = reply.find("{jabber:client}error")
    if error is None:
        return None
    return etree.QName(error.find(f"{{{NS_STANZAS}}}*")).localname


def registration(username=None, password=None, extra=""):
    fields = ""
    if username is not None:
        fields += f"<username>{username}</username>"
    if password is not None:
        fields += f"<password>{password}</password>"
    return f"<query xmlns='{NS_REGISTER}'>{fields}{extra}</query>"


class Unauthenticated:
    """A c2s connection that has not authenticated, to a FakeHost's host, over
    StringTransport (no TLS: the factory does not require encryption)."""

    def __init__(self, host, address="192.0.2.1"):
        factory = C2SFactory({host.domain: host.virtual_host}, tls_options=None,
                             clock=host.clock, throttle=FailureThrottle(host.clock),
                             require_encryption=False)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", address, 5222))
        self.stream = factory.buildProtocol(None)
        self.stream.makeConnection(self.transport)
        self.stream.dataReceived(HEADER)
        self.features = etree.fromstring(self.take().split(b">", 2)[2]
                                         .replace(b"<stream:features", b"<features")
                                         .replace(b"</stream:features>", b"</features>"))

    def take(self):
        data = self.transport.value()
        self.transport.clear()
        return data

    def iq(self, type, payload, id="r1"):
        """Send an IQ; return the parsed reply."""
        self.stream.dataReceived(f"<iq type='{type}' id='{id}'>{payload}</iq>".encode())
        return etree.fromstring(self.take())


class RegisterTestCase(SynchronousTestCase):
    """A FakeHost on a Clock with the register extension; accounts 'alice' and 'bob'."""

    options = {}

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.host = FakeHost("example.org", clock=self.clock)
        self.host.add_account("alice", PASSWORD)
        self.host.add_account("bob", PASSWORD)
        self.host.install(register, **self.options)

    def password_works(self, username, password):
        auth = self.host.virtual_host.auth
        return self.successResultOf(auth.check_password("example.org", username, password))

    def exists(self, username):
        accounts = self.host.storage.accounts
        return self.successResultOf(accounts.exists("example.org", username))


class DisabledTests(RegisterTestCase):
    """allow_registration off (the default)."""

    def test_interface(self):
        """The plugin provides IPlugin and IExtension as 'register', with documented options."""
        verifyObject(IExtension, register)
        self.assertTrue(IPlugin.providedBy(register))
        self.assertIs(jabberapp_builtin.register, register)
        self.assertEqual([(o.name, o.default) for o in register.options],
                         [("allow_registration", False),
                          ("min_seconds_between_registrations", 300)])
        self.assertTrue(all(o.doc for o in register.options))
        verifyObject(IStreamFeature, self.host.virtual_host.stream_features[0])

    def test_not_offered_and_refused(self):
        """No <register/> feature; a registration get or set gets service-unavailable and
        the stream stays up for authentication."""
        connection = Unauthenticated(self.host)
        self.assertIsNone(connection.features.find(f"{{{NS_REGISTER_FEATURE}}}register"))
        self.assertEqual(condition(connection.iq("get", registration())), "service-unavailable")
        reply = connection.iq("set", registration("carol", "pw"))
        self.assertEqual(condition(reply), "service-unavailable")
        self.assertFalse(self.exists("carol"))
        self.assertFalse(connection.transport.disconnecting)

    def test_disco_feature(self):
        """jabber:iq:register is a feature of the host: password change works regardless."""
        self.assertIn(NS_REGISTER, self.host.features)


class RegistrationTests(RegisterTestCase):
    """allow_registration on: §3.1 before authentication."""

    options = {"allow_registration": True, "min_seconds_between_registrations": 600}

    def test_feature_offered_before_authentication_only(self):
        """The <register/> stream feature is offered before authentication, not after."""
        connection = Unauthenticated(self.host)
        self.assertIsNotNone(connection.features.find(f"{{{NS_REGISTER_FEATURE}}}register"))
        feature = self.host.virtual_host.stream_features[0]
        connection.stream.username = "alice"
        self.assertIsNone(feature.advertise(connection.stream))

    def test_form(self):
        """A get returns instructions and empty username and password fields."""
        reply = Unauthenticated(self.host).iq("get", registration())
        query = reply.find(f"{{{NS_REGISTER}}}query")
        self.assertEqual([etree.QName(c).localname for c in query],
                         ["instructions", "username", "password"])
        self.assertTrue(query[0].text)
        self.assertEqual((query[1].text, query[2].text), (None, None))

    def test_register(self):
        """A set with username and password creates the account that password opens."""
        reply = Unauthenticated(self.host).iq("set", registration("Carol", "new pass"))
        self.assertEqual((reply.get("type"), reply.get("id")), ("result", "r1"))
        self.assertTrue(self.exists("carol"))   # the username is prepared (RFC 7622)
        self.assertTrue(self.password_works("carol", "new pass"))
        self.assertFalse(self.password_works("carol", "wrong"))

    def test_invalid_username(self):
        """A username that is no valid localpart is jid-malformed; nothing is created."""
        for bad in ("a@b", "with space", "x" * 1100):
            reply = Unauthenticated(self.host).iq("set", registration(bad, "pw"))
            self.assertEqual(condition(reply), "jid-malformed")
        self.assertEqual(self.successResultOf(
            self.host.storage.accounts.list_users("example.org")), ["alice", "bob"])

    def test_existing_is_conflict(self):
        """An existing username is a conflict and its password is unchanged."""
        reply = Unauthenticated(self.host).iq("set", registration("Alice", "takeover"))
        self.assertEqual(condition(reply), "conflict")
        self.assertTrue(self.password_works("alice", PASSWORD))
        self.assertFalse(self.password_works("alice", "takeover"))

    def test_missing_or_empty_fields(self):
        """A missing field, an empty one or a password PRECIS refuses is not-acceptable."""
        for payload in (registration("carol"), registration(password="pw"),
                        registration("carol", ""), registration("", "pw"),
                        registration("carol", "bell\u0085")):
            reply = Unauthenticated(self.host).iq("set", payload)
            self.assertEqual(condition(reply), "not-acceptable", payload)
        self.assertFalse(self.exists("carol"))

    def test_remove_before_authentication(self):
        """<remove/> before authentication is registration-required."""
        reply = Unauthenticated(self.host).iq("set", registration(extra="<remove/>"))
        self.assertEqual(condition(reply), "registration-required")

    def test_rate_limit_per_address(self):
        """After a registration, the same address is refused (resource-constraint, type
        wait) until the interval has passed; other addresses are not."""
        first = Unauthenticated(self.host, "198.51.100.7")
        self.assertIsNone(condition(first.iq("set", registration("carol", "pw"))))
        again = Unauthenticated(self.host, "198.51.100.7")
        reply = again.iq("set", registration("dave", "pw"))
        self.assertEqual(condition(reply), "resource-constraint")
        self.assertEqual(reply.find("{jabber:client}error").get("type"), "wait")
        self.assertFalse(self.exists("dave"))
        other = Unauthenticated(self.host, "198.51.100.8")
        self.assertIsNone(condition(other.iq("set", registration("erin", "pw"))))
        self.clock.advance(599)
        later = Unauthenticated(self.host, "198.51.100.7")
        self.assertEqual(condition(later.iq("set", registration("dave", "pw"))),
                         "resource-constraint")
        self.clock.advance(1)
        later = Unauthenticated(self.host, "198.51.100.7")
        self.assertIsNone(condition(later.iq("set", registration("dave", "pw"))))
        self.assertTrue(self.exists("dave"))

    def test_failed_attempts_do_not_count(self):
        """A refused registration (conflict, bad username) does not start the interval."""
        connection = Unauthenticated(self.host)
        self.assertEqual(condition(connection.iq("set", registration("alice", "pw"))),
                         "conflict")
        self.assertEqual(condition(connection.iq("set", registration("a b", "pw"), "r2")),
                         "jid-malformed")
        self.assertIsNone(condition(connection.iq("set", registration("carol", "pw"), "r3")))

    def test_no_limit(self):
        """min_seconds_between_registrations = 0 lets one address register repeatedly."""
        self.host.unload("register")
        self.host.install(register, allow_registration=True,
                          min_seconds_between_registrations=0)
        connection = Unauthenticated(self.host)
        for n, name in enumerate(["carol", "dave", "erin"]):
            self.assertIsNone(condition(connection.iq("set", registration(name, "pw"),
                                                      f"r{n}")))

    def test_password_never_logged(self):
        """The log records the registration, never the password."""
        events = []
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        Unauthenticated(self.host).iq("set", registration("carol", "s3cret-p4ss"))
        text = repr(events)
        self.assertIn("carol", text)
        self.assertNotIn("s3cret-p4ss", text)


class AccountTests(RegisterTestCase):
    """After authentication: §3.1 registered, §3.3 password change, §3.2 removal."""

    def ask(self, type, payload, sender="alice@example.org/r", to=None):
        to_attr = f" to='{to}'" if to else ""
        self.host.receive(f"<iq type='{type}' id='q' from='{sender}'{to_attr}>{payload}</iq>")
        return self.host.sent[-1]

    def test_registered(self):
        """A get from a user returns <registered/> and its username."""
        reply = self.ask("get", registration(), to="example.org")
        query = reply.find(f"{{{NS_REGISTER}}}query")
        self.assertEqual([etree.QName(c).localname for c in query], ["registered", "username"])
        self.assertEqual(query[1].text, "alice")

    def test_other_users_account_is_not_ours(self):
        """An IQ to another user's bare JID is service-unavailable and changes nothing."""
        reply = self.ask("set", registration("bob", "mine now"), to="bob@example.org")
        self.assertEqual(condition(reply), "service-unavailable")
        self.assertTrue(self.password_works("bob", PASSWORD))

    def test_change_password(self):
        """A set with the user's name and a new password replaces it; the old one fails."""
        reply = self.ask("set", registration("alice", "new pass"))
        self.assertIsNone(condition(reply))
        self.assertTrue(self.password_works("alice", "new pass"))
        self.assertFalse(self.password_works("alice", PASSWORD))

    def test_change_password_refused(self):
        """Another username, a missing or empty password is bad-request, a password PRECIS
        refuses not-acceptable, and the old password keeps working."""
        for payload, expected in [(registration("bob", "x"), "bad-request"),
                                  (registration("alice"), "bad-request"),
                                  (registration("alice", ""), "bad-request"),
                                  (registration(password="x"), "bad-request"),
                                  (registration("alice", "\u0085"), "not-acceptable")]:
            self.assertEqual(condition(self.ask("set", payload)), expected, payload)
        self.assertTrue(self.password_works("alice", PASSWORD))
        self.assertTrue(self.password_works("bob", PASSWORD))

    def test_change_password_needs_tls(self):
        """On a session without TLS the password change is not-authorized."""
        session = FakeSession(self.host, "alice@example.org/plain")
        session.secure = False
        reply = self.ask("set", registration("alice", "new"), sender=session.jid)
        self.assertEqual(condition(reply), "not-authorized")
        self.assertTrue(self.password_works("alice", PASSWORD))

    def test_remove(self):
        """<remove/> deletes the account with all its data, answers the requester, closes
        every session of the account with not-authorized, then fires USER_DELETED."""
        deleted = []
        self.host.hook(dispatch.USER_DELETED, lambda jid: deleted.append(
            (jid, [s.closed for s in (requester, other)])))
        storage = self.host.storage
        self.successResultOf(storage.keyvalue("roster").set("example.org", "alice", "k", 1))
        self.successResultOf(storage.archive("offline").append("example.org", "alice", "m", 1))
        requester = FakeSession(self.host, "alice@example.org/r")
        other = FakeSession(self.host, "alice@example.org/other")
        bob = FakeSession(self.host, "bob@example.org/r")
        self.ask("set", registration(extra="<remove/>"))
        self.assertEqual([(s.get("type"), s.get("id")) for s in requester.sent
                          if s.tag == "{jabber:client}iq"], [("result", "q")])
        self.assertEqual([(str(jid), closed) for jid, closed in deleted],
                         [("alice@example.org", [True, True])])
        for session in (requester, other):
            self.assertTrue(session.closed)
            self.assertEqual(session.closed_with.condition, "not-authorized")
        self.assertFalse(bob.closed)
        self.assertEqual(self.host.sessions.resources(requester.jid.bare()), [])
        self.assertFalse(self.exists("alice"))
        self.assertFalse(self.password_works("alice", PASSWORD))
        self.assertEqual(self.successResultOf(
            storage.keyvalue("roster").keys("example.org", "alice")), [])
        self.assertEqual(self.successResultOf(
            storage.archive("offline").count("example.org", "alice")), 0)
        self.assertTrue(self.exists("bob"))

    def test_remove_sweeps_what_session_ends_store(self):
        """What extensions store for the user when its sessions end (last activity's
        logoff record) is removed too: the deleted user leaves no data behind."""
        self.host.install(service_discovery)
        self.host.install(last_activity)
        FakeSession(self.host, "alice@example.org/r")
        self.host.receive("<presence from='alice@example.org/r'/>")
        self.ask("set", registration(extra="<remove/>"))
        self.assertEqual(self.successResultOf(
            self.host.storage.keyvalue("last").keys("example.org", "alice")), [])

    def test_remove_must_be_alone(self):
        """<remove/> with other children is bad-request; the account stays."""
        reply = self.ask("set", registration("alice", extra="<remove/>"))
        self.assertEqual(condition(reply), "bad-request")
        self.assertTrue(self.exists("alice"))

    def test_remove_missing_account(self):
        """Removing an account that is already gone is registration-required."""
        self.successResultOf(self.host.storage.delete_user("example.org", "alice"))
        reply = self.ask("set", registration(extra="<remove/>"))
        self.assertEqual(condition(reply), "registration-required")
