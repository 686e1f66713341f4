"""XEP-0012 Last Activity."""
from lxml import etree
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import stanza as st
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.last import NS_LAST, QUERY, last_activity
from jabberapp.interfaces import IExtension
from jabberapp.jid import JID
from jabberapp.plugins import jabberapp_builtin
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost, FakeSession
from jabberapp.xml.ns import NS_DISCO_INFO, NS_STANZAS

START = 1_700_000_000.0


def condition(reply):
    """The defined condition of an error reply."""
    (name,) = [etree.QName(c).localname for c in reply.find(st.ERROR)
               if etree.QName(c).namespace == NS_STANZAS and etree.QName(c).localname != "text"]
    return name


class FakeRoster:
    """The roster service: who may see whose presence, as (username, bare JID) pairs.
    With C{later}, answers are Deferreds the test fires."""

    def __init__(self, allowed=(), later=False):
        self.allowed = set(allowed)
        self.later = later
        self.asked = []
        self.pending = []

    def can_see_presence(self, username, requester_bare):
        self.asked.append((username, requester_bare))
        answer = (username, str(requester_bare)) in self.allowed
        if not self.later:
            return answer
        d = defer.Deferred()
        self.pending.append((d, answer))
        return d

    def answer(self):
        """Fire every pending answer."""
        pending, self.pending = self.pending, []
        for d, answer in pending:
            d.callback(answer)


class LastTestCase(SynchronousTestCase):
    """A host with disco and last activity on a Clock; accounts alice, bob and carol."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.storage = MemoryStorage()
        self.host = self.make_host()
        for user in ("alice", "bob", "carol"):
            self.host.add_account(user)

    def make_host(self):
        """A host over self.storage with disco and last installed."""
        host = FakeHost("example.org", clock=self.clock, storage=self.storage)
        host.install(service_discovery)
        host.install(last_activity)
        return host

    def provide_roster(self, roster):
        """Install an extension providing C{roster} as the service 'roster'."""
        self.host.provide("roster", roster)

    def query(self, to, sender="bob@example.org/pc"):
        """Send a last activity get; return the reply."""
        self.host.receive(f"<iq type='get' id='l1' from='{sender}' to='{to}'>"
                          f"<query xmlns='{NS_LAST}'/></iq>")
        reply = self.host.sent[-1]
        self.assertEqual((reply.get("id"), reply.get("to")), ("l1", sender))
        return reply

    def last(self, to="alice@example.org", sender="alice@example.org/query"):
        """(seconds, text) of a successful answer."""
        reply = self.query(to, sender)
        self.assertEqual(reply.get("type"), "result", etree.tostring(reply))
        (answer,) = reply
        self.assertEqual(answer.tag, QUERY)
        return int(answer.get("seconds")), answer.text

    def error(self, to="alice@example.org", sender="bob@example.org/pc"):
        """The condition of an error answer."""
        reply = self.query(to, sender)
        self.assertEqual(reply.get("type"), "error", etree.tostring(reply))
        return condition(reply)

    def online(self, jid="alice@example.org/phone", priority=0):
        """Bind C{jid} and send its initial presence; return the session."""
        self.host.receive(f"<presence from='{jid}'><priority>{priority}</priority></presence>")
        return self.host.session(jid)

    def unavailable(self, jid="alice@example.org/phone", status=None):
        """Send unavailable presence from C{jid}, with a status text if given."""
        body = f"<status>{status}</status>" if status is not None else ""
        self.host.receive(f"<presence from='{jid}' type='unavailable'>{body}</presence>")

    def recorded(self, user="alice"):
        return self.successResultOf(self.storage.keyvalue("last").get("example.org", user,
                                                                      "last"))


class DeclarationTests(LastTestCase):
    def test_interface(self):
        """The plugin object provides IPlugin and IExtension and is a built-in."""
        verifyObject(IExtension, last_activity)
        self.assertTrue(IPlugin.providedBy(last_activity))
        self.assertEqual((last_activity.name, last_activity.depends, last_activity.options),
                         ("last", ("disco",), ()))
        self.assertIs(jabberapp_builtin.last_activity, last_activity)
        self.assertEqual([(s.name, s.version) for s in last_activity.specs],
                         [("XEP-0012", "2.0")])

    def test_disco_feature(self):
        """The server advertises jabber:iq:last (XEP-0012 §6)."""
        self.host.receive("<iq type='get' id='d' from='bob@example.org/pc' to='example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'/></iq>")
        features = [f.get("var") for f in self.host.sent[-1].iter(f"{{{NS_DISCO_INFO}}}feature")]
        self.assertIn(NS_LAST, features)


class UptimeTests(LastTestCase):
    def test_uptime(self):
        """A get to the host JID reports the seconds since the server started (§5)."""
        self.clock.advance(123.7)
        self.assertEqual(self.last(to="example.org"), (123, None))

    def test_set_refused(self):
        """A set is not served: service-unavailable."""
        self.host.receive("<iq type='set' id='l1' from='bob@example.org/pc' to='example.org'>"
                          f"<query xmlns='{NS_LAST}'/></iq>")
        self.assertEqual(condition(self.host.sent[-1]), "service-unavailable")


class RecordingTests(LastTestCase):
    def test_logoff_with_status(self):
        """After an unavailable presence with a status, the user's own query gets the
        seconds since then and that status (§3)."""
        self.online()
        self.clock.advance(50)
        self.unavailable(status="Heading Home")
        self.clock.advance(903)
        self.assertEqual(self.last(), (903, "Heading Home"))

    def test_logoff_without_status(self):
        """An unavailable presence without status gives no text."""
        self.online()
        self.unavailable()
        self.clock.advance(7)
        self.assertEqual(self.last(), (7, None))

    def test_dropped_connection(self):
        """A connection that ends without unavailable presence counts as a logoff."""
        session = self.online()
        self.clock.advance(3)
        session.close()
        self.clock.advance(10)
        self.assertEqual(self.last(), (10, None))

    def test_last_resource_counts(self):
        """Only the last available resource going offline is recorded, with its status."""
        self.online("alice@example.org/phone")
        self.online("alice@example.org/laptop")
        self.unavailable("alice@example.org/phone", status="phone off")
        self.assertIsNone(self.recorded())
        self.clock.advance(20)
        self.unavailable("alice@example.org/laptop", status="laptop off")
        self.clock.advance(5)
        self.assertEqual(self.last(), (5, "laptop off"))

    def test_stored(self):
        """The record is in the key-value store 'last': time and status."""
        self.online()
        self.unavailable(status="bye")
        self.assertEqual(self.recorded(), {"when": START, "status": "bye"})

    def test_survives_restart(self):
        """A new host on the same storage answers from what the old one recorded."""
        self.online()
        self.unavailable(status="see you")
        self.host.virtual_host.unload_all()
        self.clock.advance(3600)
        self.host = self.make_host()
        self.assertEqual(self.last(), (3600, "see you"))

    def test_later_logoff_replaces(self):
        """A later logoff replaces the earlier record."""
        self.online()
        self.unavailable(status="first")
        self.clock.advance(100)
        self.online()
        self.unavailable(status="second")
        self.clock.advance(1)
        self.assertEqual(self.last(), (1, "second"))

    def test_clock_set_back(self):
        """A clock set back never gives negative seconds."""
        self.online()
        self.unavailable()
        self.clock.rightNow -= 30
        self.assertEqual(self.last(), (0, None))


class OnlineTests(LastTestCase):
    def test_available_user(self):
        """A user with an available resource is reported with seconds='0' and no text."""
        self.online()
        self.unavailable(status="gone")
        self.clock.advance(60)
        self.online("alice@example.org/tablet")
        self.assertEqual(self.last(), (0, None))

    def test_connected_without_presence(self):
        """A resource that has sent no presence does not make the user online."""
        self.online()
        self.unavailable(status="gone")
        self.clock.advance(60)
        FakeSession(self.host, "alice@example.org/hidden", available=False)
        self.assertEqual(self.last(sender="alice@example.org/hidden"), (60, "gone"))

    def test_never_logged_in(self):
        """A user with nothing recorded gets item-not-found."""
        self.assertEqual(self.error(sender="alice@example.org/query"), "item-not-found")


class AuthorisationTests(LastTestCase):
    def test_no_roster_stranger(self):
        """Without a roster service only the user may ask; others get forbidden (§3)."""
        self.online()
        self.unavailable()
        self.assertEqual(self.error(), "forbidden")
        self.assertEqual(self.error(sender="juliet@capulet.example/balcony"), "forbidden")

    def test_roster_allows(self):
        """Someone the roster lets see the user's presence gets the answer."""
        roster = FakeRoster(allowed={("alice", "bob@example.org")})
        self.provide_roster(roster)
        self.online()
        self.unavailable(status="out")
        self.clock.advance(4)
        self.assertEqual(self.last(sender="bob@example.org/pc"), (4, "out"))
        self.assertEqual(roster.asked, [("alice", JID.parse("bob@example.org"))])

    def test_roster_refuses(self):
        """Someone the roster does not let see the user's presence gets forbidden."""
        self.provide_roster(FakeRoster(allowed={("alice", "bob@example.org")}))
        self.online()
        self.unavailable()
        self.assertEqual(self.error(sender="carol@example.org/pc"), "forbidden")

    def test_roster_refuses_online(self):
        """Not even 'online' is revealed to someone without presence rights."""
        self.provide_roster(FakeRoster())
        self.online()
        self.assertEqual(self.error(), "forbidden")

    def test_roster_deferred(self):
        """A roster answering with a Deferred is waited for."""
        roster = FakeRoster(allowed={("alice", "bob@example.org")}, later=True)
        self.provide_roster(roster)
        self.online()
        self.unavailable(status="out")
        self.host.receive("<iq type='get' id='l1' from='bob@example.org/pc' "
                          f"to='alice@example.org'><query xmlns='{NS_LAST}'/></iq>")
        self.assertEqual([s.get("id") for s in self.host.sent if s.tag == st.IQ], [])
        roster.answer()
        self.assertEqual((self.host.sent[-1].get("type"), self.host.sent[-1][0].text),
                         ("result", "out"))

    def test_own_resources_need_no_roster(self):
        """The user's own resources are not asked about."""
        roster = FakeRoster()
        self.provide_roster(roster)
        self.online()
        self.unavailable()
        self.last(sender="alice@example.org/query")
        self.assertEqual(roster.asked, [])

    def test_no_such_user(self):
        """A user that does not exist is service-unavailable, whoever asks."""
        self.provide_roster(FakeRoster(allowed={("nobody", "bob@example.org")}))
        self.assertEqual(self.error(to="nobody@example.org"), "service-unavailable")
        self.assertEqual(self.error(to="nobody@example.org",
                                    sender="juliet@capulet.example/x"), "service-unavailable")


class FullJIDTests(LastTestCase):
    """XEP-0012 §4: queries to a resource are the client's, for those entitled."""

    def setUp(self):
        super().setUp()
        self.phone = self.online()

    def send(self, sender="bob@example.org/pc", iq_type="get", payload=None):
        payload = payload or f"<query xmlns='{NS_LAST}'/>"
        self.host.receive(f"<iq type='{iq_type}' id='f1' from='{sender}' "
                          f"to='alice@example.org/phone'>{payload}</iq>")

    def delivered(self):
        return [s.get("id") for s in self.phone.sent if s.tag == st.IQ]

    def test_entitled_delivered(self):
        """A query from someone entitled to the user's presence reaches the resource."""
        self.provide_roster(FakeRoster(allowed={("alice", "bob@example.org")}))
        self.send()
        self.assertEqual(self.delivered(), ["f1"])

    def test_stranger_refused(self):
        """A query from someone else is answered forbidden and not delivered."""
        self.provide_roster(FakeRoster())
        self.send()
        self.assertEqual(self.delivered(), [])
        self.assertEqual(condition(self.host.sent[-1]), "forbidden")

    def test_stranger_to_missing_resource(self):
        """A stranger asking a resource that does not exist gets forbidden too."""
        self.host.receive("<iq type='get' id='f2' from='bob@example.org/pc' "
                          f"to='alice@example.org/nothere'><query xmlns='{NS_LAST}'/></iq>")
        self.assertEqual(condition(self.host.sent[-1]), "forbidden")

    def test_own_resource_delivered(self):
        """The user's other resources may ask without a roster."""
        self.send(sender="alice@example.org/laptop")
        self.assertEqual(self.delivered(), ["f1"])

    def test_deferred_decision(self):
        """With a roster answering later, the query is delivered once it allows it."""
        roster = FakeRoster(allowed={("alice", "bob@example.org")}, later=True)
        self.provide_roster(roster)
        self.send()
        self.assertEqual(self.delivered(), [])
        roster.answer()
        self.assertEqual(self.delivered(), ["f1"])

    def test_deferred_refusal(self):
        """With a roster answering later, a refusal is answered forbidden."""
        roster = FakeRoster(later=True)
        self.provide_roster(roster)
        self.send()
        roster.answer()
        self.assertEqual(self.delivered(), [])
        self.assertEqual(condition(self.host.sent[-1]), "forbidden")

    def test_roster_failure(self):
        """A failing roster check is internal-server-error, and logged."""
        def broken(username, requester):
            raise RuntimeError("roster down")

        roster = FakeRoster()
        roster.can_see_presence = broken
        self.provide_roster(roster)
        self.send()
        self.assertEqual(self.delivered(), [])
        self.assertEqual(condition(self.host.sent[-1]), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_other_iqs_untouched(self):
        """Other IQs to the resource, and last activity results, are delivered as usual."""
        self.send(payload="<ping xmlns='urn:xmpp:ping'/>")
        self.send(iq_type="result", payload="<query xmlns='jabber:iq:last' seconds='5'/>")
        self.assertEqual(self.delivered(), ["f1", "f1"])


class AddressingTests(LastTestCase):
    def test_invalid_to(self):
        """A malformed 'to' is jid-malformed, from the core."""
        self.assertEqual(self.error(to="alice@@example.org"), "jid-malformed")

    def test_remote_requester(self):
        """A remote requester the roster lets see the user's presence gets the answer
        through the remote destination."""
        self.provide_roster(FakeRoster(allowed={("alice", "juliet@capulet.example")}))
        self.online()
        self.unavailable(status="away")
        self.host.receive("<iq type='get' id='r1' from='juliet@capulet.example/balcony' "
                          f"to='alice@example.org'><query xmlns='{NS_LAST}'/></iq>")
        reply = self.host.remote.received[-1]
        self.assertEqual((reply.get("type"), reply[0].get("seconds"), reply[0].text),
                         ("result", "0", "away"))
