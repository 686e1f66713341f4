"""
XEP-0357 push notifications: enable/disable, when and whom to notify, the notification,
coalescing, and the push service's answers -- through FakeHost and a Clock.
"""
from collections import deque
from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.offline import offline_messages
from jabberapp.extensions.push import push_notifications
from jabberapp.extensions.push_notify import NS_PUBSUB, NS_PUSH, summarize
from jabberapp.forms import parse as parse_form
from jabberapp.interfaces import IExtension
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost, FakeSession, parse
from jabberapp.xml import serialize

SERVICE = "push.example.net"
OPTIONS_FORM = ("<x xmlns='jabber:x:data' type='submit'>"
                "<field var='FORM_TYPE'><value>"
                "http://jabber.org/protocol/pubsub#publish-options</value></field>"
                "<field var='secret'><value>s3cr3t</value></field></x>")


class PushTestCase(SynchronousTestCase):
    """A host with offline storage and push; alice has an account."""

    options = {}

    def setUp(self):
        self.storage = MemoryStorage()
        self.make_host()

    def make_host(self):
        self.host = FakeHost("example.org", storage=self.storage)
        self.clock = self.host.clock
        try:
            self.host.add_account("alice")
        except Exception:
            pass    # already there (a restart over the same storage)
        self.host.install(service_discovery)
        self.host.install(push_notifications, **self.options)
        self.host.install(offline_messages)

    def iq(self, payload, id="e1", sender="alice@example.org/phone", to="alice@example.org"):
        self.host.receive(f"<iq type='set' id='{id}' from='{sender}' to='{to}'>{payload}</iq>")
        return self.host.sent[-1]

    def enable(self, node="n1", jid=SERVICE, form="", sender="alice@example.org/phone"):
        answer = self.iq(f"<enable xmlns='{NS_PUSH}' jid='{jid}' node='{node}'>{form}</enable>",
                         sender=sender)
        self.assertEqual(answer.get("type"), "result", answer)
        return answer

    def message(self, body="hello", to="alice@example.org", id="m1", extra="", type="chat"):
        body_el = f"<body>{body}</body>" if body is not None else ""
        self.host.receive(f"<message from='bob@example.net/x' to='{to}' id='{id}' "
                          f"type='{type}'>{body_el}{extra}</message>")

    def publishes(self):
        """The publish IQs sent to push services so far."""
        return [s for s in self.host.remote.received
                if s.tag == "{jabber:client}iq" and s.find(f"{{{NS_PUBSUB}}}pubsub") is not None]

    def summary(self, iq):
        x = iq.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish/{{{NS_PUBSUB}}}item/"
                    f"{{{NS_PUSH}}}notification/{{jabber:x:data}}x")
        form = parse_form(x)
        self.assertEqual(form.form_type, "urn:xmpp:push:summary")
        return {k: v[0] for k, v in form.values().items() if k != "FORM_TYPE"}

    def answer(self, iq, type="result", error=""):
        self.host.receive(f"<iq type='{type}' id='{iq.get('id')}' from='{iq.get('to')}' "
                          f"to='{iq.get('from')}'>{error}</iq>")

    def stored(self):
        return self.successResultOf(self.storage.keyvalue("push").get(
            "example.org", "alice", "registrations")) or []

    def hibernate(self, session):
        """The session's connection dropped and stream management keeps it."""
        session.stream = None
        session.ended = False


class EnableDisableTests(PushTestCase):
    """Registrations: enable, replace, disable, limits, bad input."""

    options = {"max_registrations": 2}

    def test_interface(self):
        """The plugin provides IExtension."""
        verifyObject(IExtension, push_notifications)

    def test_disco_feature(self):
        """The server's disco#info lists urn:xmpp:push:0."""
        self.host.receive("<iq type='get' id='d' from='alice@example.org/phone' "
                          "to='example.org'><query xmlns='http://jabber.org/protocol/"
                          "disco#info'/></iq>")
        self.assertIn(NS_PUSH.encode(), _xml(self.host.sent[-1]))

    def test_account_disco_feature(self):
        """The owner's disco#info of its own bare JID lists urn:xmpp:push:0 too."""
        self.host.receive("<iq type='get' id='d2' from='alice@example.org/phone' "
                          "to='alice@example.org'><query xmlns='http://jabber.org/protocol/"
                          "disco#info'/></iq>")
        answer = self.host.sent[-1]
        self.assertEqual(answer.get("type"), "result")
        self.assertEqual(_xml(answer).count(NS_PUSH.encode()), 1)
        self.assertIn(b"registered", _xml(answer))

    def test_enable_stores_with_options(self):
        """enable stores jid, node and the normalised publish-options form."""
        self.enable(form=OPTIONS_FORM)
        [registration] = self.stored()
        self.assertEqual((registration["jid"], registration["node"]), (SERVICE, "n1"))
        self.assertIn("s3cr3t", registration["options"])
        self.assertIn("type=\"submit\"", registration["options"])

    def test_enable_survives_a_restart(self):
        """Registrations are in storage: a new host over it notifies."""
        self.enable()
        self.host.unload("offline")
        self.host.unload("push")
        self.make_host()
        self.message()
        self.assertEqual(len(self.publishes()), 1)

    def test_enable_again_replaces_options(self):
        """The same jid and node again replaces the publish options, keeps one entry."""
        self.enable(form=OPTIONS_FORM)
        self.enable()
        [registration] = self.stored()
        self.assertIsNone(registration["options"])

    def test_limit(self):
        """One registration past max_registrations is policy-violation."""
        self.enable(node="a")
        self.enable(node="b")
        answer = self.iq(f"<enable xmlns='{NS_PUSH}' jid='{SERVICE}' node='c'/>")
        self.assertEqual(answer.get("type"), "error")
        self.assertIn(b"policy-violation", _xml(answer))
        self.assertEqual(len(self.stored()), 2)

    def test_disable_node_and_all(self):
        """disable with a node removes that one; without, every node of the jid."""
        self.enable(node="a")
        self.enable(node="b")
        self.iq(f"<disable xmlns='{NS_PUSH}' jid='{SERVICE}' node='a'/>")
        self.assertEqual([r["node"] for r in self.stored()], ["b"])
        answer = self.iq(f"<disable xmlns='{NS_PUSH}' jid='{SERVICE}'/>")
        self.assertEqual(answer.get("type"), "result")
        self.assertEqual(self.stored(), [])
        self.message()
        self.assertEqual(self.publishes(), [])

    def test_disable_unknown_succeeds(self):
        """Disabling what was never enabled is a plain result."""
        answer = self.iq(f"<disable xmlns='{NS_PUSH}' jid='other.example' node='x'/>")
        self.assertEqual(answer.get("type"), "result")

    def assertRefused(self, payload, condition, to="alice@example.org"):
        answer = self.iq(payload, to=to)
        self.assertEqual(answer.get("type"), "error", answer)
        self.assertIn(condition.encode(), _xml(answer))
        self.assertEqual(self.stored(), [])

    def test_enable_without_jid(self):
        """enable without jid is bad-request."""
        self.assertRefused(f"<enable xmlns='{NS_PUSH}' node='n'/>", "bad-request")

    def test_enable_without_node(self):
        """enable without node is bad-request (XEP-0357 §5: the node is required)."""
        self.assertRefused(f"<enable xmlns='{NS_PUSH}' jid='{SERVICE}'/>", "bad-request")

    def test_enable_bad_jid(self):
        """A jid that is no JID is jid-malformed."""
        self.assertRefused(f"<enable xmlns='{NS_PUSH}' jid='a@@b' node='n'/>", "jid-malformed")

    def test_disable_without_jid(self):
        """disable without jid is bad-request."""
        self.assertRefused(f"<disable xmlns='{NS_PUSH}'/>", "bad-request")

    def test_form_of_another_type(self):
        """A form whose FORM_TYPE is not publish-options is bad-request."""
        form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                "<value>urn:other</value></field></x>")
        self.assertRefused(f"<enable xmlns='{NS_PUSH}' jid='{SERVICE}' node='n'>{form}"
                           "</enable>", "bad-request")

    def test_malformed_form(self):
        """Two FORM_TYPE values, a form of type 'form', two forms: bad-request."""
        two = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
               "<value>a</value><value>b</value></field></x>")
        typed = OPTIONS_FORM.replace("type='submit'", "type='form'")
        for form in (two, typed, OPTIONS_FORM * 2):
            self.assertRefused(f"<enable xmlns='{NS_PUSH}' jid='{SERVICE}' node='n'>{form}"
                               "</enable>", "bad-request")

    def test_form_too_large(self):
        """A publish-options form past MAX_OPTIONS characters is bad-request."""
        big = OPTIONS_FORM.replace("s3cr3t", "x" * 5000)
        self.assertRefused(f"<enable xmlns='{NS_PUSH}' jid='{SERVICE}' node='n'>{big}"
                           "</enable>", "bad-request")

    def test_form_without_type_accepted(self):
        """The XEP's own example form (no type attributes) is accepted."""
        form = OPTIONS_FORM.replace(" type='submit'", "")
        self.enable(form=form)
        self.assertIn("s3cr3t", self.stored()[0]["options"])

    def test_other_account_forbidden(self):
        """enable addressed to another account is forbidden."""
        self.host.add_account("bob")
        self.assertRefused(f"<enable xmlns='{NS_PUSH}' jid='{SERVICE}' node='n'/>",
                           "forbidden", to="bob@example.org")


class NotificationTests(PushTestCase):
    """When, to whom, and what."""

    def test_offline_message_notifies(self):
        """A message stored offline publishes the summary to the node, from the user."""
        self.enable(form=OPTIONS_FORM)
        self.host.session("alice@example.org/phone").close()
        self.message()
        [iq] = self.publishes()
        self.assertEqual((iq.get("type"), iq.get("from"), iq.get("to")),
                         ("set", "alice@example.org", SERVICE))
        publish = iq.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish")
        self.assertEqual(publish.get("node"), "n1")
        self.assertEqual(self.summary(iq), {"message-count": "1"})
        options = iq.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish-options/"
                          "{jabber:x:data}x")
        self.assertIn(b"s3cr3t", _xml(options))
        # offline storage still took the message
        self.assertEqual(self.successResultOf(
            self.storage.archive("offline").count("example.org", "alice")), 1)

    def test_not_worth_it(self):
        """Chat states alone, errors, headlines and no-store messages notify nothing."""
        self.enable()
        self.host.session("alice@example.org/phone").close()
        self.message(body=None, extra="<composing xmlns='http://jabber.org/protocol/"
                                      "chatstates'/>")
        self.message(type="headline")
        self.message(extra="<no-store xmlns='urn:xmpp:hints'/>")
        self.host.receive("<presence from='bob@example.net/x' to='alice@example.org'/>")
        self.assertEqual(self.publishes(), [])

    def test_encrypted_without_body(self):
        """An OMEMO message notifies, and its body is never sent."""
        self.host.unload("offline")
        self.host.unload("push")
        self.host.install(push_notifications, include_body=True)
        self.host.install(offline_messages)
        self.enable()
        self.host.session("alice@example.org/phone").close()
        self.message(body="fallback", extra="<encrypted xmlns='eu.siacs.conversations."
                                            "axolotl'/>")
        [iq] = self.publishes()
        self.assertNotIn("last-message-body", self.summary(iq))

    def test_sender_and_body_when_allowed(self):
        """include_sender and include_body add the last message's sender and text."""
        self.host.unload("offline")
        self.host.unload("push")
        self.host.install(push_notifications, include_body=True, include_sender=True)
        self.host.install(offline_messages)
        self.enable()
        self.host.session("alice@example.org/phone").close()
        self.message(body="wherefore")
        [iq] = self.publishes()
        self.assertEqual(self.summary(iq), {"message-count": "1",
                                            "last-message-sender": "bob@example.net/x",
                                            "last-message-body": "wherefore"})

    def test_no_sender_no_body_by_default(self):
        """By default neither sender nor body reaches the push service."""
        self.enable()
        self.host.session("alice@example.org/phone").close()
        self.message(body="secret words")
        self.assertNotIn(b"secret words", _xml(self.publishes()[0]))
        self.assertNotIn(b"bob@example.net", _xml(self.publishes()[0]))

    def test_online_user_not_notified(self):
        """A message delivered to a connected session notifies nothing."""
        self.enable()
        self.host.session("alice@example.org/phone").available = True
        self.message()
        self.assertEqual(self.publishes(), [])

    def test_hibernated_session_notified(self):
        """A message to a session awaiting resumption notifies its registration."""
        self.enable()
        phone = self.host.session("alice@example.org/phone")
        phone.available = True
        self.hibernate(phone)
        self.message()
        self.assertEqual(len(self.publishes()), 1)
        # still sent on to the session (stream management queues it)
        self.assertEqual([s.get("id") for s in phone.sent if s.tag.endswith("message")],
                         ["m1"])

    def test_hibernated_beside_a_connected_session(self):
        """Beside a laptop in use, the sleeping phone's registration is notified, not the
        laptop's nor one without a session."""
        self.enable(node="phone")
        self.enable(node="laptop", sender="alice@example.org/laptop")
        self.enable(node="old", sender="alice@example.org/old")
        self.host.session("alice@example.org/old").close()
        phone = self.host.session("alice@example.org/phone")
        laptop = self.host.session("alice@example.org/laptop")
        phone.available = laptop.available = True
        self.hibernate(phone)
        self.message()
        nodes = [iq.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish").get("node")
                 for iq in self.publishes()]
        self.assertEqual(nodes, ["phone"])

    def test_two_sleepers_notified_once_each(self):
        """A message to two hibernated sessions notifies each registration once."""
        self.enable(node="phone")
        self.enable(node="tablet", sender="alice@example.org/tablet")
        for resource in ("phone", "tablet"):
            session = self.host.session(f"alice@example.org/{resource}")
            session.available = True
            self.hibernate(session)
        self.message()
        nodes = sorted(iq.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish").get("node")
                       for iq in self.publishes())
        self.assertEqual(nodes, ["phone", "tablet"])

    def test_hibernation_with_unacknowledged(self):
        """A session that hibernates with messages in stream management's queue notifies
        them (next turn, once kept), counted."""
        self.enable()
        phone = self.host.session("alice@example.org/phone")
        phone.available = True
        queue = deque([(0, parse("<message from='bob@example.net/x' type='chat'>"
                                 "<body>a</body></message>")),
                       (0, parse("<message from='bob@example.net/x' type='chat'>"
                                 "<body>b</body></message>")),
                       (0, parse("<presence from='bob@example.net/x'/>"))])
        phone.state["sm"] = SimpleNamespace(queue=queue)
        self.hibernate(phone)
        self.host.dispatcher.hooks.fire(dispatch.SESSION_DETACHED, phone)
        self.assertEqual(self.publishes(), [])
        self.clock.advance(0)
        [iq] = self.publishes()
        self.assertEqual(self.summary(iq)["message-count"], "2")

    def test_muc_mention(self):
        """A room message to a hibernated session notifies only when it names the user."""
        self.enable()
        phone = self.host.session("alice@example.org/phone")
        self.host.receive("<presence from='alice@example.org/phone' "
                          "to='room@conference.example.net/Alice'>"
                          "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
        phone.available = True
        self.hibernate(phone)
        for i, (nick, body) in enumerate((("bob", "hi all"), ("Alice", "alice here"),
                                          ("bob", "hey alice!"))):
            self.host.receive(f"<message from='room@conference.example.net/{nick}' "
                              f"to='alice@example.org/phone' type='groupchat' id='g{i}'>"
                              f"<body>{body}</body></message>")
            self.clock.advance(10)
        self.assertEqual(len(self.publishes()), 1)

    def test_summarize_carbons_and_mam(self):
        """Received carbons count by their content; sent carbons and MAM results do not."""
        inner = ("<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
                 "from='bob@example.net/x' type='chat'><body>hi</body></message></forwarded>")
        received = parse(f"<message><received xmlns='urn:xmpp:carbons:2'>{inner}</received>"
                         "</message>")
        sent = parse(f"<message><sent xmlns='urn:xmpp:carbons:2'>{inner}</sent></message>")
        result = parse(f"<message><result xmlns='urn:xmpp:mam:2'>{inner}</result></message>")
        self.assertEqual(summarize(received).body, "hi")
        self.assertIsNone(summarize(sent))
        self.assertIsNone(summarize(result))


class CoalescingTests(PushTestCase):
    """Bursts, counts, answers."""

    options = {"interval": 5, "timeout": 30}

    def setUp(self):
        super().setUp()
        self.enable()
        self.host.session("alice@example.org/phone").close()

    def test_burst_coalesced_and_counted(self):
        """100 messages in a burst: one notification at once, one at the end of the
        quiet period saying 100."""
        for i in range(100):
            self.message(id=f"m{i}")
        self.assertEqual(len(self.publishes()), 1)
        self.clock.advance(5)
        first, second = self.publishes()
        self.assertEqual(self.summary(first)["message-count"], "1")
        self.assertEqual(self.summary(second)["message-count"], "100")
        self.clock.advance(60)
        self.assertEqual(len(self.publishes()), 2)

    def test_count_reset_at_login(self):
        """A login of the user starts the count again."""
        self.message(id="a")
        self.clock.advance(10)
        FakeSession(self.host, "alice@example.org/laptop", available=False).close()
        self.message(id="b")
        self.assertEqual([self.summary(iq)["message-count"] for iq in self.publishes()],
                         ["1", "1"])

    def test_error_disables(self):
        """An error answer (item-not-found, type cancel) disables the registration."""
        self.message(id="a")
        self.answer(self.publishes()[0], "error",
                    "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:"
                    "xmpp-stanzas'/></error>")
        self.assertEqual(self.stored(), [])
        self.clock.advance(10)
        self.message(id="b")
        self.assertEqual(len(self.publishes()), 1)

    def test_transient_errors_and_timeouts_keep(self):
        """A wait error, remote-server-not-found and a timeout keep the registration."""
        self.message(id="a")
        self.answer(self.publishes()[-1], "error",
                    "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:"
                    "ns:xmpp-stanzas'/></error>")
        self.clock.advance(10)
        self.message(id="b")
        self.answer(self.publishes()[-1], "error",
                    "<error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:"
                    "xml:ns:xmpp-stanzas'/></error>")
        self.clock.advance(10)
        self.message(id="c")
        self.clock.advance(60)      # no answer
        self.assertEqual(len(self.stored()), 1)
        self.message(id="d")
        self.assertEqual(len(self.publishes()), 4)

    def test_result_is_consumed(self):
        """The service's result is taken by push, not answered or bounced."""
        self.message(id="a")
        sent = len(self.host.sent)
        self.answer(self.publishes()[0])
        self.assertEqual(len(self.host.sent), sent)
        self.assertEqual(len(self.stored()), 1)

    def test_spoofed_answer_ignored(self):
        """An error from another JID with the publish's id disables nothing."""
        self.message(id="a")
        iq = self.publishes()[0]
        self.host.receive(f"<iq type='error' id='{iq.get('id')}' from='evil.example' "
                          "to='alice@example.org'><error type='cancel'><item-not-found "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        self.assertEqual(len(self.stored()), 1)

    def test_nothing_kept_once_reset(self):
        """After a login and the quiet period, push remembers nothing of the registration."""
        self.message(id="a")
        push = next(h.__self__ for h in self.host.dispatcher.hooks._handlers[
            dispatch.SESSION_BOUND] if getattr(h, "__name__", "") == "session_bound")
        self.assertEqual(list(push.notifier.pending), ["alice@example.org"])
        FakeSession(self.host, "alice@example.org/laptop", available=False).close()
        self.clock.advance(5)
        self.assertEqual(push.notifier.pending, {})

    def test_unload_cancels_timers(self):
        """Unloading push leaves no timer behind."""
        self.message(id="a")
        self.message(id="b")
        self.host.unload("offline")
        self.host.unload("push")
        self.assertEqual(self.clock.getDelayedCalls(), [])


def _xml(el):
    return serialize(el)


class StreamManagementTests(SynchronousTestCase):
    """With the real stream management over plain bytes: a dropped connection."""

    def setUp(self):
        from jabberapp.extensions.sm import stream_management
        from jabberapp.testing import FakeRemote
        from tests.c2s_bytes import World
        self.world = World()
        self.sent = []
        self.world.router.remote = FakeRemote(self.sent)
        self.world.host.install(stream_management, {"resume_timeout": 60, "max_queue": 100,
                                                     "request_every": 50, "ack_timeout": 0})
        self.world.host.install(push_notifications, {
            option.name: option.default for option in push_notifications.options})
        self.transport = self.world.login("alice", "phone")
        self.transport.feed(b"<presence/>")
        self.transport.feed(f"<iq type='set' id='p'><enable xmlns='{NS_PUSH}' jid='{SERVICE}'"
                            " node='n'/></iq>".encode())
        self.transport.feed(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        self.assertIn(b"<enabled", self.transport.take())

    def message(self, id):
        self.world.router.route(parse(f"<message from='bob@example.net/x' id='{id}' "
                                      "to='alice@example.org/phone' type='chat'>"
                                      "<body>hi</body></message>"))

    def counts(self):
        return [PushTestCase.summary(self, iq)["message-count"] for iq in self.sent
                if iq.find(f"{{{NS_PUBSUB}}}pubsub") is not None]

    def test_unacknowledged_at_hibernation_then_while_hibernated(self):
        """Messages written to a connection that drops unacknowledged are notified once
        the session hibernates; one sent while hibernated is counted on top."""
        self.message("a")
        self.message("b")
        self.assertEqual(self.counts(), [])         # connected: no push
        self.transport.drop()
        self.world.clock.advance(0)
        self.assertEqual(self.counts(), ["2"])
        self.message("c")
        self.world.clock.advance(5)
        self.assertEqual(self.counts(), ["2", "3"])

    def test_acknowledged_then_dropped(self):
        """Nothing unacknowledged at the drop: no notification until a message comes."""
        self.message("a")
        self.transport.feed(b"<a xmlns='urn:xmpp:sm:3' h='1'/>")
        self.transport.drop()
        self.world.clock.advance(0)
        self.assertEqual(self.counts(), [])
        self.message("b")
        self.assertEqual(self.counts(), ["1"])
