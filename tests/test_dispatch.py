"""The per-host dispatcher and the IHost registrations, driven through FakeHost."""
import pytest
from lxml import etree
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.errors import StanzaError, StreamError
from jabberapp.interfaces import IExtension, IHost, ISession
from jabberapp.testing import FakeHost, FakeSession, parse
from jabberapp.xml.ns import NS_CLIENT, NS_STANZAS

NS_TEST = "urn:example:test"
QUERY = f"{{{NS_TEST}}}query"


@implementer(IExtension)
class Extension:
    """A throwaway extension whose install() is the given function."""

    def __init__(self, name, install=None, depends=(), options=()):
        self.name = name
        self.depends = depends
        self.options = options
        self._install = install or (lambda host: None)

    def install(self, host):
        self._install(host)


def condition(stanza):
    """The defined condition of an error stanza (None when it is not one)."""
    error = stanza.find(st.ERROR)
    if error is None:
        return None
    for child in error:
        name = etree.QName(child).localname
        if etree.QName(child).namespace == NS_STANZAS and name != "text":
            return name
    return None


def iq(type_="get", to="example.org", sender="alice@example.org/phone", id_="q1",
       payload=f"<query xmlns='{NS_TEST}'/>"):
    """An IQ as a client sends it."""
    return f"<iq type='{type_}' id='{id_}' from='{sender}' to='{to}'>{payload}</iq>"


def message(to, type_="chat", sender="bob@example.org/laptop", body="hi"):
    """A message as a client sends it."""
    return f"<message type='{type_}' from='{sender}' to='{to}'><body>{body}</body></message>"


class DispatchTestCase(SynchronousTestCase):
    """A FakeHost on a Clock."""

    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)

    def install(self, install, name="test-extension", **kwargs):
        """Install a throwaway extension whose install() is C{install}."""
        return self.host.install(Extension(name, install, **kwargs))

    def handle(self, handler, type_="get", to="host", name="test-extension"):
        """Install an extension owning the test IQ with C{handler}."""
        return self.install(lambda host: host.iq_handler(type_, NS_TEST, "query", handler, to),
                            name=name)

    def reply(self):
        """The one stanza the server sent since the last call; fails unless exactly one."""
        self.assertEqual(len(self.host.sent), 1, [etree.tostring(s) for s in self.host.sent])
        return self.host.sent.pop()


class TestDoubleTests(DispatchTestCase):
    def test_fake_host_is_a_host(self):
        """FakeHost provides IHost, for code given a host directly."""
        verifyObject(IHost, self.host)

    def test_host_api_is_a_host(self):
        """What an installed extension is given provides IHost."""
        verifyObject(IHost, self.install(lambda host: None))

    def test_fake_session_is_a_session(self):
        """FakeSession provides ISession and is bound in the host's registry."""
        session = FakeSession(self.host, "alice@example.org/phone")
        verifyObject(ISession, session)
        self.assertIs(self.host.session("alice@example.org/phone"), session)

    def test_install_fills_option_defaults(self):
        """install() gives the extension its option defaults, overridden by keywords."""
        from jabberapp.config import Option
        options = (Option("a", int, 1, "A."), Option("b", int, 2, "B."))
        seen = {}
        self.host.install(Extension("x", lambda host: seen.update(host.config),
                                    options=options), b=5)
        self.assertEqual(seen, {"a": 1, "b": 5})

    def test_install_uses_extension_options(self):
        """extension_options works like an [extension:NAME] section, under the keywords."""
        from jabberapp.config import Option
        host = FakeHost(extension_options={"x": {"a": 3, "b": 4}})
        seen = {}
        host.install(Extension("x", lambda h: seen.update(h.config),
                               options=(Option("a", int, 1, "A."), Option("b", int, 2, "B."))),
                     b=6)
        self.assertEqual(seen, {"a": 3, "b": 6})

    def test_direct_registration(self):
        """Registrations made through the FakeHost itself are dispatched."""
        self.host.iq_handler("get", NS_TEST, "query", lambda iq: None)
        self.host.receive(iq())
        self.assertEqual(self.reply().get("type"), "result")

    def test_direct_config(self):
        """The FakeHost's own config is the one given; a missing key says what to do."""
        self.assertEqual(FakeHost(config={"a": 1}).config["a"], 1)
        with self.assertRaises(KeyError) as caught:
            self.host.config["interval"]
        self.assertIn("host.install(extension)", str(caught.exception))

    def test_install_rejects_unknown_option(self):
        """A misspelt option is an error, as it is in the configuration file."""
        self.assertRaises(TypeError, self.install, lambda host: None, colour="red")

    def test_receive_binds_the_sender(self):
        """A stanza from a full JID of the host comes from a bound, unavailable session."""
        self.handle(lambda iq: None)
        self.host.receive(iq())
        session = self.host.session("alice@example.org/phone")
        self.assertFalse(session.available)
        self.assertEqual(session.sent, [self.reply()])

    def test_closing_unbinds_and_fires_hook(self):
        """FakeSession.close() records the error, unbinds and fires SESSION_CLOSED."""
        closed = []
        self.install(lambda host: host.hook(dispatch.SESSION_CLOSED, closed.append))
        session = FakeSession(self.host, "alice@example.org/phone")
        error = StreamError("connection-timeout")
        session.close(error)
        self.assertEqual((session.closed_with, closed), (error, [session]))
        self.assertIsNone(self.host.session("alice@example.org/phone"))

    def test_rebinding_replaces(self):
        """Binding a full JID that is bound closes the older session with conflict."""
        old = FakeSession(self.host, "alice@example.org/phone")
        new = FakeSession(self.host, "alice@example.org/phone")
        self.assertEqual(old.closed_with.condition, "conflict")
        self.assertIs(self.host.session("alice@example.org/phone"), new)

    def test_other_domains_go_to_remote(self):
        """Stanzas for other domains are recorded by the fake remote destination."""
        self.host.receive(message("juliet@capulet.example"))
        self.assertEqual(self.host.remote.received, [self.reply()])


class HookTests(DispatchTestCase):
    def test_priority_order(self):
        """Higher priorities run first; equal priorities run in registration order."""
        calls = []

        def install(host):
            host.hook(dispatch.MESSAGE_BARE, lambda s, o: calls.append("low"), priority=-5)
            host.hook(dispatch.MESSAGE_BARE, lambda s, o: calls.append("first0"))
            host.hook(dispatch.MESSAGE_BARE, lambda s, o: calls.append("high"), priority=10)
            host.hook(dispatch.MESSAGE_BARE, lambda s, o: calls.append("second0"))

        self.install(install)
        self.host.receive(message("alice@example.org"))
        self.assertEqual(calls, ["high", "first0", "second0", "low"])

    def test_handled_stops_chain_and_default(self):
        """A hook returning HANDLED stops the chain and the default delivery."""
        calls = []
        alice = FakeSession(self.host, "alice@example.org/phone")

        def install(host):
            host.hook(dispatch.MESSAGE_BARE, lambda s, o: dispatch.HANDLED, priority=5)
            host.hook(dispatch.MESSAGE_BARE, lambda s, o: calls.append("later"))

        self.install(install)
        self.host.receive(message("alice@example.org"))
        self.assertEqual((calls, alice.sent), ([], []))

    def test_unhandled_chain_falls_through(self):
        """When no hook returns HANDLED, the default delivery still happens."""
        alice = FakeSession(self.host, "alice@example.org/phone")
        self.install(lambda host: host.hook(dispatch.MESSAGE_BARE, lambda s, o: None))
        self.host.receive(message("alice@example.org"))
        self.assertEqual(len(alice.sent), 1)

    def test_failing_hook_is_logged_and_skipped(self):
        """A hook that raises is logged and the chain goes on."""
        alice = FakeSession(self.host, "alice@example.org/phone")
        self.install(lambda host: host.hook(dispatch.MESSAGE_BARE, lambda s, o: 1 / 0))
        self.host.receive(message("alice@example.org"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(len(alice.sent), 1)

    def test_hook_gets_origin(self):
        """Hooks get the stanza and the session it came from."""
        seen = []
        self.install(lambda host: host.hook(dispatch.MESSAGE_BARE,
                                            lambda s, o: seen.append((s.get("to"), o))))
        bob = FakeSession(self.host, "bob@example.org/laptop")
        self.host.receive(message("alice@example.org"))
        self.assertEqual(seen, [("alice@example.org", bob)])

    def test_pre_hook_sees_local_stanzas(self):
        """PRE_MESSAGE runs for a local client's message and HANDLED stops its routing."""
        seen = []
        FakeSession(self.host, "alice@example.org/phone")

        def pre(stanza, origin):
            seen.append(origin.jid)
            return dispatch.HANDLED

        self.install(lambda host: host.hook(dispatch.PRE_MESSAGE, pre))
        self.host.receive(message("alice@example.org"))
        self.assertEqual(([str(j) for j in seen], self.host.sent),
                         (["bob@example.org/laptop"], []))

    def test_event_per_addressee(self):
        """Host, bare and full addressees fire their own events."""
        seen = []

        def install(host):
            for event in (dispatch.MESSAGE_HOST, dispatch.MESSAGE_BARE, dispatch.MESSAGE_FULL,
                          dispatch.IQ_HOST, dispatch.PRESENCE_BARE):
                host.hook(event, lambda s, o, e=event: seen.append(e) or dispatch.HANDLED)

        self.install(install)
        self.host.receive(message("example.org", type_="headline"))
        self.host.receive(message("alice@example.org"))
        self.host.receive(message("alice@example.org/phone"))
        self.host.receive(iq())
        self.host.receive("<presence from='bob@example.org/laptop' to='alice@example.org'/>")
        self.assertEqual(seen, [dispatch.MESSAGE_HOST, dispatch.MESSAGE_BARE,
                                dispatch.MESSAGE_FULL, dispatch.IQ_HOST,
                                dispatch.PRESENCE_BARE])


class RegistrationTests(DispatchTestCase):
    def test_second_owner_fails(self):
        """A second handler for the same type, payload and addressee fails at install."""
        self.handle(lambda iq: None, name="first")
        self.assertRaises(ValueError, self.handle, lambda iq: None, name="second")
        self.assertEqual(self.host.virtual_host.extensions.keys(), {"first"})

    def test_failed_install_is_undone(self):
        """An install that fails half-way leaves nothing of what it registered."""
        self.handle(lambda iq: None, name="first")

        def install(host):
            host.add_feature("urn:example:half")
            host.iq_handler("set", NS_TEST, "query", lambda iq: None)
            host.iq_handler("get", NS_TEST, "query", lambda iq: None)   # taken

        self.assertRaises(ValueError, self.install, install, name="second")
        self.assertNotIn("urn:example:half", self.host.features)
        self.host.receive(iq("set"))
        self.assertEqual(condition(self.reply()), "service-unavailable")

    def test_addressees_are_separate_keys(self):
        """The same payload may be owned for the host and for users by different owners."""
        self.handle(lambda iq: etree.Element(f"{{{NS_TEST}}}host"), to="host", name="a")
        self.handle(lambda iq: etree.Element(f"{{{NS_TEST}}}user"), to="user", name="b")
        self.host.receive(iq(to="example.org"))
        self.assertEqual(self.reply()[0].tag, f"{{{NS_TEST}}}host")
        self.host.receive(iq(to="bob@example.org"))
        self.assertEqual(self.reply()[0].tag, f"{{{NS_TEST}}}user")

    def test_any_addressee(self):
        """A handler for 'any' serves the host JID and users' bare JIDs."""
        self.handle(lambda iq: None, to="any")
        self.host.receive(iq(to="example.org"))
        self.assertEqual(self.reply().get("type"), "result")
        self.host.receive(iq(to="bob@example.org"))
        self.assertEqual(self.reply().get("type"), "result")

    def test_only_get_and_set(self):
        """Registering a handler for 'result' is a programming error."""
        self.assertRaises(ValueError, self.handle, lambda iq: None, type_="result")

    def test_bad_addressee(self):
        """An addressee other than host, user or any is a programming error."""
        self.assertRaises(ValueError, self.handle, lambda iq: None, to="everyone")

    def test_unload_removes_everything(self):
        """Unloading undoes handlers, hooks, declarations, timers and runs on_unload."""
        calls = []
        provider, feature = object(), object()

        def install(host):
            host.iq_handler("get", NS_TEST, "query", lambda iq: None)
            host.hook(dispatch.MESSAGE_BARE, lambda s, o: calls.append("hook"))
            host.add_feature("urn:example:feature")
            host.add_identity("pubsub", "service", "Test")
            host.add_disco_provider(provider)
            host.add_stream_feature(feature)
            host.call_later(10, calls.append, "timer")
            host.on_unload(lambda: calls.append("unloaded"))

        self.install(install)
        self.host.unload("test-extension")
        self.assertEqual(calls, ["unloaded"])
        vhost = self.host.virtual_host
        self.assertEqual((vhost.features, vhost.identities, vhost.disco_providers,
                          vhost.stream_features),
                         ([], [("server", "im", "jabberapp")], [], []))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.host.receive(iq())
        self.assertEqual(condition(self.reply()), "service-unavailable")
        self.host.receive(message("alice@example.org"))
        self.assertEqual(calls, ["unloaded"])

    def test_unload_then_reinstall(self):
        """After unloading, the same registrations can be made again."""
        self.handle(lambda iq: None)
        self.host.unload("test-extension")
        self.handle(lambda iq: None)
        self.host.receive(iq())
        self.assertEqual(self.reply().get("type"), "result")

    def test_unload_leaves_others(self):
        """Unloading one extension leaves another's hooks on the same event."""
        calls = []
        self.install(lambda host: host.hook(dispatch.MESSAGE_BARE,
                                            lambda s, o: calls.append("a")), name="a")
        self.install(lambda host: host.hook(dispatch.MESSAGE_BARE,
                                            lambda s, o: calls.append("b")), name="b")
        self.host.unload("a")
        self.host.receive(message("alice@example.org"))
        self.assertEqual(calls, ["b"])

    def test_dependencies_first(self):
        """An extension whose dependency is not installed cannot be installed."""
        self.assertRaises(ValueError, self.install, lambda host: None, depends=("disco",))


class DefaultIQTests(DispatchTestCase):
    def test_unhandled_get(self):
        """An unowned get is answered with service-unavailable, type cancel."""
        self.host.receive(iq("get"))
        answer = self.reply()
        self.assertEqual((answer.get("type"), answer.get("id"), answer.get("to"),
                          answer.get("from")),
                         ("error", "q1", "alice@example.org/phone", "example.org"))
        self.assertEqual(condition(answer), "service-unavailable")
        self.assertEqual(answer.find(st.ERROR).get("type"), "cancel")

    def test_unhandled_set(self):
        """An unowned set is answered with service-unavailable."""
        self.host.receive(iq("set"))
        self.assertEqual(condition(self.reply()), "service-unavailable")

    def test_unhandled_to_user(self):
        """An unowned get to a user's bare JID is answered with service-unavailable."""
        self.host.receive(iq(to="bob@example.org"))
        self.assertEqual(condition(self.reply()), "service-unavailable")

    def test_get_owned_for_set_only(self):
        """A handler owns one type: a get is not given to a set handler."""
        self.handle(lambda iq: None, type_="set")
        self.host.receive(iq("get"))
        self.assertEqual(condition(self.reply()), "service-unavailable")

    def test_no_child(self):
        """A get without a child element is a bad-request."""
        self.host.receive(iq(payload=""))
        self.assertEqual(condition(self.reply()), "bad-request")

    def test_two_children(self):
        """A set with two child elements is a bad-request, even when one is owned."""
        self.handle(lambda iq: None, type_="set")
        self.host.receive(iq("set", payload=f"<query xmlns='{NS_TEST}'/><x xmlns='y'/>"))
        self.assertEqual(condition(self.reply()), "bad-request")

    def test_text_is_not_a_child(self):
        """Whitespace around the one child does not count as a child."""
        self.handle(lambda iq: None)
        self.host.receive(iq(payload=f"\n  <query xmlns='{NS_TEST}'/>\n"))
        self.assertEqual(self.reply().get("type"), "result")

    def test_result_and_error_not_answered(self):
        """IQ results and errors are never answered, to the host or to a user."""
        for type_ in ("result", "error"):
            for to in ("example.org", "bob@example.org"):
                self.host.receive(iq(type_, to=to, payload=""))
                self.host.receive(iq(type_, to=to))
        self.assertEqual(self.host.sent, [])

    def test_to_full_jid_delivered(self):
        """An IQ get to a bound full JID is the client's to answer: delivered as is."""
        bob = FakeSession(self.host, "bob@example.org/laptop")
        self.handle(lambda iq: None, to="any")
        self.host.receive(iq(to="bob@example.org/laptop"))
        self.assertEqual(bob.sent, [self.reply()])
        self.assertEqual(bob.sent[0].get("type"), "get")

    def test_to_unbound_full_jid(self):
        """An IQ get to a full JID with no session is answered with service-unavailable."""
        self.host.receive(iq(to="bob@example.org/laptop"))
        self.assertEqual(condition(self.reply()), "service-unavailable")

    def test_from_remote_answered_remotely(self):
        """The answer to a remote entity's IQ goes to the remote destination."""
        self.host.receive(iq(sender="juliet@capulet.example/balcony"))
        self.assertEqual(self.host.remote.received, [self.reply()])


class HandlerTests(DispatchTestCase):
    def test_payload_result(self):
        """A returned element becomes the payload of the result, addressed back."""
        self.handle(lambda iq: etree.Element(f"{{{NS_TEST}}}answer", n="1"))
        self.host.receive(iq())
        answer = self.reply()
        self.assertEqual((answer.tag, answer.get("type"), answer.get("id"), answer.get("to"),
                          answer.get("from")),
                         (st.IQ, "result", "q1", "alice@example.org/phone", "example.org"))
        self.assertEqual([(c.tag, c.get("n")) for c in answer], [(f"{{{NS_TEST}}}answer", "1")])

    def test_none_is_empty_result(self):
        """Returning None gives an empty result."""
        self.handle(lambda iq: None)
        self.host.receive(iq())
        answer = self.reply()
        self.assertEqual((answer.get("type"), len(answer)), ("result", 0))

    def test_handler_gets_the_iq(self):
        """The handler is called with the IQ stanza itself."""
        seen = []
        self.handle(seen.append)
        self.host.receive(iq())
        self.assertEqual([(s.tag, s.get("id")) for s in seen], [(st.IQ, "q1")])

    def test_stanza_error(self):
        """A StanzaError raised by the handler is the error reply, with its text."""
        def handler(iq):
            raise StanzaError("item-not-found", text="No such thing")

        self.handle(handler)
        self.host.receive(iq())
        answer = self.reply()
        self.assertEqual(condition(answer), "item-not-found")
        self.assertEqual(answer.find(st.ERROR).get("type"), "cancel")
        self.assertEqual(answer.findtext(f"{st.ERROR}/{{{NS_STANZAS}}}text"), "No such thing")

    def test_stanza_error_type(self):
        """The error type comes from the condition table unless given."""
        def handler(iq):
            raise StanzaError("not-acceptable")

        self.handle(handler)
        self.host.receive(iq())
        self.assertEqual(self.reply().find(st.ERROR).get("type"), "modify")

    def test_bug_is_internal_server_error(self):
        """Any other exception is logged and answered internal-server-error, no text."""
        def handler(iq):
            raise RuntimeError("secret internals")

        self.handle(handler)
        self.host.receive(iq())
        answer = self.reply()
        self.assertEqual(condition(answer), "internal-server-error")
        self.assertIsNone(answer.find(f"{st.ERROR}/{{{NS_STANZAS}}}text"))
        self.assertNotIn(b"secret", etree.tostring(answer))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_deferred_result(self):
        """A Deferred result is answered when it fires, not before."""
        d = defer.Deferred()
        self.handle(lambda iq: d)
        self.host.receive(iq())
        self.assertEqual(self.host.sent, [])
        d.callback(etree.Element(f"{{{NS_TEST}}}later"))
        self.assertEqual(self.reply()[0].tag, f"{{{NS_TEST}}}later")

    def test_deferred_stanza_error(self):
        """A Deferred failing with StanzaError is that error reply."""
        d = defer.Deferred()
        self.handle(lambda iq: d)
        self.host.receive(iq())
        d.errback(StanzaError("forbidden"))
        self.assertEqual(condition(self.reply()), "forbidden")

    def test_deferred_bug(self):
        """A Deferred failing with another exception is internal-server-error."""
        d = defer.Deferred()
        self.handle(lambda iq: d)
        self.host.receive(iq())
        d.errback(KeyError("x"))
        self.assertEqual(condition(self.reply()), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_coroutine(self):
        """An async def handler is answered when it returns."""
        d = defer.Deferred()

        async def handler(iq):
            value = await d
            return etree.Element(f"{{{NS_TEST}}}answer", value=value)

        self.handle(handler)
        self.host.receive(iq())
        self.assertEqual(self.host.sent, [])
        d.callback("42")
        self.assertEqual(self.reply()[0].get("value"), "42")

    def test_coroutine_stanza_error(self):
        """An async def handler raising StanzaError after awaiting gives that error."""
        d = defer.Deferred()

        async def handler(iq):
            await d
            raise StanzaError("conflict")

        self.handle(handler)
        self.host.receive(iq())
        d.callback(None)
        self.assertEqual(condition(self.reply()), "conflict")

    def test_coroutine_bug(self):
        """An async def handler raising another exception gives internal-server-error."""
        async def handler(iq):
            raise ValueError("boom")

        self.handle(handler)
        self.host.receive(iq())
        self.assertEqual(condition(self.reply()), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_bad_return_value(self):
        """A handler returning something that is not an element is our bug: internal error."""
        self.handle(lambda iq: "not an element")
        try:
            self.host.receive(iq())
        except TypeError:
            self.fail("the handler's bad return value escaped the dispatcher")
        self.assertEqual(condition(self.reply()), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)


class BareMessageTests(DispatchTestCase):
    """RFC 6121 §8.5.2: messages to a user's bare JID."""

    def sessions(self, *specs):
        """Bind alice's sessions from (resource, available, priority) triples."""
        return [FakeSession(self.host, f"alice@example.org/{r}", available=a, priority=p)
                for r, a, p in specs]

    def test_chat_to_highest_priority(self):
        """A chat message goes to the available resources of highest priority only."""
        low, high1, high2 = self.sessions(("low", True, 1), ("h1", True, 5), ("h2", True, 5))
        self.host.receive(message("alice@example.org"))
        self.assertEqual([len(s.sent) for s in (low, high1, high2)], [0, 1, 1])

    def test_normal_to_highest_priority(self):
        """A normal message goes to the most available resource too."""
        low, high = self.sessions(("low", True, 0), ("high", True, 3))
        self.host.receive(message("alice@example.org", type_="normal"))
        self.assertEqual([len(s.sent) for s in (low, high)], [0, 1])

    def test_missing_type_is_normal(self):
        """A message without a type is delivered as a normal one."""
        (phone,) = self.sessions(("phone", True, 0))
        self.host.receive("<message from='bob@example.org/laptop' to='alice@example.org'>"
                          "<body>hi</body></message>")
        self.assertEqual(len(phone.sent), 1)

    def test_headline_to_all_non_negative(self):
        """A headline goes to every available resource with non-negative priority."""
        a, b, negative = self.sessions(("a", True, 0), ("b", True, 7), ("n", True, -1))
        self.host.receive(message("alice@example.org", type_="headline"))
        self.assertEqual([len(s.sent) for s in (a, b, negative)], [1, 1, 0])

    def test_unavailable_resource_skipped(self):
        """A bound resource that sent no presence gets no message to the bare JID."""
        bound, available = self.sessions(("bound", False, 9), ("on", True, 0))
        self.host.receive(message("alice@example.org"))
        self.assertEqual([len(s.sent) for s in (bound, available)], [0, 1])

    def test_only_negative_priority(self):
        """With only negative-priority resources, a chat message is an error to the sender."""
        (negative,) = self.sessions(("n", True, -1))
        self.host.receive(message("alice@example.org"))
        self.assertEqual(negative.sent, [])
        bounced = self.host.session("bob@example.org/laptop").sent
        self.assertEqual([condition(s) for s in bounced], ["service-unavailable"])

    def test_offline_chat_and_normal_bounced(self):
        """Chat and normal messages to a user with no resource get service-unavailable."""
        for type_ in ("chat", "normal"):
            self.host.receive(message("alice@example.org", type_=type_))
            answer = self.reply()
            self.assertEqual((answer.tag, answer.get("type"), answer.get("to"),
                              condition(answer)),
                             (st.MESSAGE, "error", "bob@example.org/laptop",
                              "service-unavailable"))

    def test_offline_headline_dropped(self):
        """A headline to a user with no resource is silently dropped."""
        self.host.receive(message("alice@example.org", type_="headline"))
        self.assertEqual(self.host.sent, [])

    def test_groupchat_bounced(self):
        """A groupchat message to a bare JID is service-unavailable, resources or not."""
        (phone,) = self.sessions(("phone", True, 0))
        self.host.receive(message("alice@example.org", type_="groupchat"))
        self.assertEqual((phone.sent, condition(self.reply())), ([], "service-unavailable"))

    def test_error_dropped(self):
        """A message error to a bare JID is dropped and never answered."""
        self.host.receive(message("alice@example.org", type_="error"))
        self.assertEqual(self.host.sent, [])


class FullMessageTests(DispatchTestCase):
    """RFC 6121 §8.5.3: messages to a user's full JID."""

    def setUp(self):
        super().setUp()
        self.phone = FakeSession(self.host, "alice@example.org/phone", priority=1)

    def test_to_bound_resource(self):
        """A message to a bound full JID goes to that resource alone, of any type."""
        other = FakeSession(self.host, "alice@example.org/desk", priority=9)
        for type_ in ("chat", "normal", "headline", "groupchat", "error"):
            self.host.receive(message("alice@example.org/phone", type_=type_))
        self.assertEqual((len(self.phone.sent), other.sent), (5, []))

    def test_to_bound_unavailable_resource(self):
        """A connected resource gets messages to its full JID before sending presence."""
        quiet = FakeSession(self.host, "alice@example.org/quiet", available=False)
        self.host.receive(message("alice@example.org/quiet"))
        self.assertEqual(len(quiet.sent), 1)

    def test_chat_to_gone_resource_goes_to_bare(self):
        """A chat to a resource that is gone is handled as if sent to the bare JID."""
        self.host.receive(message("alice@example.org/gone"))
        self.assertEqual(len(self.phone.sent), 1)

    def test_normal_to_gone_resource(self):
        """A normal message to a resource that is gone is not redirected to other resources."""
        self.host.receive(message("alice@example.org/gone", type_="normal"))
        self.assertEqual(self.phone.sent, [])

    def test_headline_to_gone_resource(self):
        """A headline to a resource that is gone reaches no other resource."""
        self.host.receive(message("alice@example.org/gone", type_="headline"))
        self.assertEqual(self.phone.sent, [])

    def test_groupchat_to_gone_resource(self):
        """A groupchat message to a resource that is gone is service-unavailable."""
        self.host.receive(message("alice@example.org/gone", type_="groupchat"))
        self.assertEqual(self.phone.sent, [])
        self.assertEqual(condition(self.reply()), "service-unavailable")

    def test_error_to_gone_resource(self):
        """An error message to a resource that is gone is dropped."""
        self.host.receive(message("alice@example.org/gone", type_="error"))
        self.assertEqual(self.host.sent, [])

    def test_to_host(self):
        """A chat message to the host JID is service-unavailable; a headline is dropped."""
        self.host.receive(message("example.org", type_="headline"))
        self.assertEqual(self.host.sent, [])
        self.host.receive(message("example.org"))
        self.assertEqual(condition(self.reply()), "service-unavailable")


class RequestTests(DispatchTestCase):
    """Requests the server sends, with Dispatcher.request() and IHost.request()."""

    def setUp(self):
        super().setUp()
        self.api = self.install(lambda host: None)
        self.bob = FakeSession(self.host, "bob@example.org/laptop")

    def request(self, to="bob@example.org/laptop", id_="r1", timeout=60):
        """Send a test get from the host; the Deferred of its answer."""
        stanza = parse(f"<iq type='get' id='{id_}' from='example.org' to='{to}'>"
                       f"<query xmlns='{NS_TEST}'/></iq>")
        return self.api.request(stanza, timeout=timeout)

    def answer(self, type_="result", sender="bob@example.org/laptop", id_="r1", payload=""):
        """Bob's answer to the request."""
        self.host.receive(f"<iq type='{type_}' id='{id_}' from='{sender}' "
                          f"to='example.org'>{payload}</iq>")

    def test_result(self):
        """The Deferred fires with the result stanza."""
        d = self.request()
        self.assertEqual(self.bob.sent[0].get("id"), "r1")
        self.assertNoResult(d)
        self.answer(payload=f"<query xmlns='{NS_TEST}'/>")
        self.assertEqual(self.successResultOf(d)[0].tag, QUERY)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_error(self):
        """An error reply fails the Deferred with its StanzaError."""
        d = self.request()
        self.answer("error", payload="<error type='cancel'><feature-not-implemented "
                                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition,
                         "feature-not-implemented")

    def test_timeout(self):
        """No answer within the timeout fails the Deferred with TimeoutError."""
        d = self.request(timeout=30)
        self.clock.advance(29)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.failureResultOf(d, defer.TimeoutError)

    def test_late_answer_ignored(self):
        """An answer after the timeout is dropped and not answered."""
        d = self.request(timeout=30)
        self.clock.advance(30)
        self.failureResultOf(d, defer.TimeoutError)
        del self.host.sent[:]
        self.answer()
        self.assertEqual(self.host.sent, [])

    def test_answer_from_someone_else(self):
        """An answer with the right id from another JID does not count."""
        d = self.request()
        self.answer(sender="alice@example.org/phone")
        self.assertNoResult(d)
        self.answer()
        self.successResultOf(d)

    def test_no_such_session(self):
        """A request to a full JID with no session fails at once with service-unavailable."""
        d = self.request(to="bob@example.org/gone")
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition,
                         "service-unavailable")

    def test_remote(self):
        """A request to another domain goes to the remote destination."""
        d = self.request(to="capulet.example")
        self.assertEqual(self.host.remote.received[0].get("id"), "r1")
        self.host.receive("<iq type='result' id='r1' from='capulet.example' to='example.org'/>")
        self.successResultOf(d)

    def test_needs_id(self):
        """A request without an id is a programming error."""
        stanza = parse("<iq type='get' from='example.org' to='capulet.example'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertRaises(ValueError, self.api.request, stanza)

    def test_stopping_host_cancels(self):
        """Unloading every extension fails the pending requests with CancelledError."""
        d = self.request()
        self.host.virtual_host.unload_all()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_same_id_twice(self):
        """Two pending requests with one id to different JIDs are kept apart."""
        FakeSession(self.host, "carol@example.org/pad")
        first = self.request()
        second = self.request(to="carol@example.org/pad")
        self.answer()
        self.successResultOf(first)
        self.answer(sender="carol@example.org/pad")
        self.successResultOf(second)

    def test_cancel_forgets_request(self):
        """Cancelling a request's Deferred removes its timeout."""
        d = self.request()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ElementTests(SynchronousTestCase):
    def test_parse_is_client_namespace(self):
        """testing.parse() puts unprefixed stanzas in jabber:client."""
        self.assertEqual(parse("<iq type='get' id='1'/>").tag, f"{{{NS_CLIENT}}}iq")
