"""XEP-0191 Blocking Command: the requests, pushes, enforcement both ways and the cache."""
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.extensions.blocking import (NS_BLOCKING, NS_BLOCKING_ERRORS, STORE_KEY,
                                           STORE_NAME, blocking, blocks)
from jabberapp.extensions.disco import service_discovery
from jabberapp.interfaces import IExtension
from jabberapp.jid import JID
from jabberapp.plugins import jabberapp_builtin
from jabberapp.specs import Spec
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost, FakeSession, parse
from jabberapp.xml.ns import NS_DISCO_INFO, NS_STANZAS

ALICE = "alice@example.org/phone"
LAPTOP = "alice@example.org/laptop"
BOB = "bob@example.org/home"
CAROL = "carol@example.org/desk"
BLOCKLIST = f"{{{NS_BLOCKING}}}blocklist"
BLOCK = f"{{{NS_BLOCKING}}}block"
UNBLOCK = f"{{{NS_BLOCKING}}}unblock"
ITEM = f"{{{NS_BLOCKING}}}item"
BLOCKED = f"{{{NS_BLOCKING_ERRORS}}}blocked"


def condition(stanza):
    """The defined condition of an error stanza, e.g. 'service-unavailable'."""
    error = stanza.find(st.ERROR)
    for child in error:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            return child.tag.rpartition("}")[2]
    return None


def items(payload):
    """The 'jid' attributes of a blocking payload's items, in order."""
    return [item.get("jid") for item in payload.iterchildren(ITEM)]


class ManualStore:
    """An IKeyValueStore over a memory one whose answers wait until the test releases them."""

    def __init__(self, inner):
        self.inner = inner
        self.pending = []
        self.fail = False

    def _later(self, result):
        later = defer.Deferred()
        self.pending.append((result, later))
        return later

    def get(self, host, username, key):
        if self.fail:
            return self._later(defer.fail(RuntimeError("storage is down")))
        return self._later(self.inner.get(host, username, key))

    def set(self, host, username, key, value):
        return self._later(self.inner.set(host, username, key, value))

    def keys(self, host, username):
        return self.inner.keys(host, username)

    def delete_user(self, host, username):
        return self.inner.delete_user(host, username)

    def release(self):
        """Fire every pending answer, in order (including those released ones cause)."""
        while self.pending:
            result, later = self.pending.pop(0)
            result.chainDeferred(later)


class ManualStorage:
    """A memory storage whose 'blocklist' store is a ManualStore."""

    def __init__(self, inner=None):
        self.inner = inner or MemoryStorage()
        self.accounts = self.inner.accounts
        self.blocklists = ManualStore(self.inner.keyvalue(STORE_NAME))

    def keyvalue(self, name):
        return self.blocklists if name == STORE_NAME else self.inner.keyvalue(name)

    def archive(self, name):
        return self.inner.archive(name)

    def close(self):
        return self.inner.close()


class FakeRoster:
    """A 'roster' service that answers can_see_presence from a set of (user, contact)."""

    def __init__(self, allowed=()):
        self.allowed = set(allowed)

    def can_see_presence(self, username, contact_bare):
        return (username, str(contact_bare)) in self.allowed


class BlockingTestCase(SynchronousTestCase):
    """A host with disco and blocking, alice on two resources, bob and carol online."""

    options = {}

    def setUp(self):
        self.clock = Clock()
        self.storage = self.make_storage()
        self.host = FakeHost("example.org", clock=self.clock, storage=self.storage)
        self.host.install(service_discovery)
        self.host.install(blocking, **self.options)
        self.alice = FakeSession(self.host, ALICE)
        self.laptop = FakeSession(self.host, LAPTOP)
        self.bob = FakeSession(self.host, BOB)
        self.carol = FakeSession(self.host, CAROL)

    def make_storage(self):
        return MemoryStorage()

    def iq(self, sender, type_, payload, to=None, id_="b1"):
        """Send an IQ from C{sender}; return the parsed stanza."""
        to_attr = f" to='{to}'" if to else ""
        return self.host.receive(f"<iq type='{type_}' id='{id_}' from='{sender}'{to_attr}>"
                                 f"{payload}</iq>")

    def request(self, type_, payload, sender=ALICE, to=None, id_="b1"):
        """Send an IQ from C{sender} and return the reply its session got for it."""
        session = self.host.session(sender)
        before = len(session.sent) if session is not None else 0
        self.iq(sender, type_, payload, to, id_)
        session = self.host.session(sender)
        replies = [s for s in session.sent[before:] if s.tag == st.IQ and s.get("id") == id_
                   and s.get("type") in ("result", "error")]
        self.assertEqual(len(replies), 1, replies)
        return replies[0]

    def block(self, *jids, sender=ALICE):
        body = "".join(f"<item jid='{jid}'/>" for jid in jids)
        reply = self.request("set", f"<block xmlns='{NS_BLOCKING}'>{body}</block>", sender)
        self.assertEqual(reply.get("type"), "result")
        return reply

    def unblock(self, *jids, sender=ALICE):
        body = "".join(f"<item jid='{jid}'/>" for jid in jids)
        reply = self.request("set", f"<unblock xmlns='{NS_BLOCKING}'>{body}</unblock>",
                             sender)
        self.assertEqual(reply.get("type"), "result")
        return reply

    def blocklist(self, sender=ALICE):
        reply = self.request("get", f"<blocklist xmlns='{NS_BLOCKING}'/>", sender, id_="bl")
        self.assertEqual(reply.get("type"), "result")
        return items(reply.find(BLOCKLIST))

    def clear(self):
        """Forget what every session and the host have been sent so far."""
        del self.host.sent[:]
        for session in self.host.sessions:
            del session.sent[:]

    def message(self, sender, to, type_="chat", body="hi"):
        return self.host.receive(f"<message type='{type_}' from='{sender}' to='{to}' id='m1'>"
                                 f"<body>{body}</body></message>")


class ExtensionTests(BlockingTestCase):
    def test_interface(self):
        """The plugin object provides IPlugin and IExtension, is named 'blocking' and is
        exported by the built-in plugin module."""
        verifyObject(IExtension, blocking)
        self.assertTrue(IPlugin.providedBy(blocking))
        self.assertEqual(blocking.name, "blocking")
        self.assertIs(jabberapp_builtin.blocking, blocking)
        self.assertEqual(blocking.specs, (Spec("XEP-0191", "1.3", "Blocking Command"),))
        self.assertEqual(blocking.depends, ("disco",))

    def test_options(self):
        """max_items and cache_size are documented positive integers."""
        self.assertEqual([(o.name, o.default) for o in blocking.options],
                         [("max_items", 1000), ("cache_size", 10000)])
        self.assertTrue(all(o.doc for o in blocking.options))
        for option in blocking.options:
            self.assertRaises(ValueError, option.parse, "0")

    def test_disco_feature(self):
        """The host's disco#info lists urn:xmpp:blocking (XEP-0191 §3.1)."""
        reply = self.request("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to="example.org")
        features = [f.get("var") for f in reply[0].iterchildren(f"{{{NS_DISCO_INFO}}}feature")]
        self.assertIn(NS_BLOCKING, features)

    def test_service(self):
        """The 'blocking' service answers is_blocked for loaded lists, None otherwise."""
        self.block("evil.example")
        service = self.host.service("blocking")
        self.assertTrue(service.is_blocked("alice", JID.parse("x@evil.example/r")))
        self.assertFalse(service.is_blocked("alice", JID.parse("bob@example.org")))
        self.assertFalse(service.is_blocked("bob", JID.parse("x@evil.example")))
        self.assertIsNone(service.is_blocked("nobody", JID.parse("x@evil.example")))
        self.assertEqual(self.successResultOf(service.load("alice")),
                         frozenset({JID.parse("evil.example")}))

    def test_unload(self):
        """Once unloaded, nothing is blocked any more and the requests are not answered."""
        self.block("bob@example.org")
        self.host.unload("blocking")
        self.clear()
        self.message(BOB, ALICE)
        self.assertEqual(len(self.alice.sent), 1)
        reply = self.request("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")
        self.assertEqual(condition(reply), "service-unavailable")


class MatchingTests(SynchronousTestCase):
    def entries(self, *jids):
        return frozenset(JID.parse(j) for j in jids)

    def test_full_jid(self):
        """A full JID entry matches only that resource."""
        entries = self.entries("bob@example.org/home")
        self.assertTrue(blocks(entries, JID.parse("bob@example.org/home")))
        self.assertFalse(blocks(entries, JID.parse("bob@example.org/work")))
        self.assertFalse(blocks(entries, JID.parse("bob@example.org")))

    def test_bare_jid(self):
        """A bare JID entry matches the bare JID and every resource of it."""
        entries = self.entries("bob@example.org")
        self.assertTrue(blocks(entries, JID.parse("bob@example.org")))
        self.assertTrue(blocks(entries, JID.parse("bob@example.org/any")))
        self.assertFalse(blocks(entries, JID.parse("rob@example.org/any")))
        self.assertFalse(blocks(entries, JID.parse("example.org")))

    def test_domain_resource(self):
        """A domain/resource entry matches that resource of the domain and of its users."""
        entries = self.entries("evil.example/bot")
        self.assertTrue(blocks(entries, JID.parse("evil.example/bot")))
        self.assertTrue(blocks(entries, JID.parse("x@evil.example/bot")))
        self.assertFalse(blocks(entries, JID.parse("x@evil.example/phone")))
        self.assertFalse(blocks(entries, JID.parse("evil.example")))

    def test_domain(self):
        """A domain entry matches the domain, its users and resources, not subdomains."""
        entries = self.entries("evil.example")
        for jid in ("evil.example", "evil.example/r", "x@evil.example", "x@evil.example/r"):
            self.assertTrue(blocks(entries, JID.parse(jid)), jid)
        self.assertFalse(blocks(entries, JID.parse("x@sub.evil.example")))
        self.assertFalse(blocks(entries, JID.parse("x@good.example")))


class RequestTests(BlockingTestCase):
    def test_empty_blocklist(self):
        """A user who blocked nothing gets an empty <blocklist/> (XEP-0191 §3.2)."""
        reply = self.request("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")
        self.assertEqual((reply.get("type"), reply.get("to")), ("result", ALICE))
        self.assertEqual(len(reply), 1)
        self.assertEqual(items(reply.find(BLOCKLIST)), [])

    def test_block_and_list(self):
        """Blocked JIDs of every kind are listed, prepared and without duplicates."""
        self.block("Bob@Example.org", "bob@example.org", "evil.example",
                   "x@remote.example/Res", "evil.example/bot")
        self.assertEqual(sorted(self.blocklist()),
                         sorted(["bob@example.org", "evil.example", "x@remote.example/Res",
                                 "evil.example/bot"]))

    def test_block_from_bare_to(self):
        """A request addressed to the user's own bare JID is the user's own request."""
        reply = self.request("set", f"<block xmlns='{NS_BLOCKING}'><item jid='bob@example.org'/>"
                                    "</block>", to="alice@example.org")
        self.assertEqual(reply.get("type"), "result")
        self.assertEqual(self.blocklist(sender=LAPTOP), ["bob@example.org"])

    def test_unblock(self):
        """<unblock/> with items removes just those (XEP-0191 §3.4)."""
        self.block("bob@example.org", "carol@example.org")
        self.unblock("bob@example.org", "never@blocked.example")
        self.assertEqual(self.blocklist(), ["carol@example.org"])

    def test_unblock_all(self):
        """An empty <unblock/> empties the list and the stored record (XEP-0191 §3.5)."""
        self.block("bob@example.org", "evil.example")
        self.unblock()
        self.assertEqual(self.blocklist(), [])
        keys = self.successResultOf(self.storage.keyvalue(STORE_NAME).keys("example.org",
                                                                          "alice"))
        self.assertNotIn(STORE_KEY, keys)

    def test_empty_block(self):
        """A <block/> without items is a bad-request and changes nothing (XEP-0191 §3.3)."""
        reply = self.request("set", f"<block xmlns='{NS_BLOCKING}'/>")
        self.assertEqual(condition(reply), "bad-request")
        self.assertEqual(self.blocklist(), [])

    def test_invalid_jid(self):
        """An invalid JID in any item is jid-malformed and nothing of the request applies."""
        reply = self.request("set", f"<block xmlns='{NS_BLOCKING}'><item jid='ok@example.org'/>"
                                    "<item jid='bad@@example.org'/></block>")
        self.assertEqual(condition(reply), "jid-malformed")
        self.assertEqual(reply.find(st.ERROR).get("type"), "modify")
        self.assertEqual(self.blocklist(), [])

    def test_invalid_jid_in_unblock(self):
        """An invalid JID in an unblock is jid-malformed too and nothing is unblocked."""
        self.block("bob@example.org")
        reply = self.request("set", f"<unblock xmlns='{NS_BLOCKING}'>"
                                    "<item jid='bob@example.org'/><item jid='@x'/></unblock>")
        self.assertEqual(condition(reply), "jid-malformed")
        self.assertEqual(self.blocklist(), ["bob@example.org"])

    def test_item_without_jid(self):
        """An item without 'jid' is a bad-request."""
        reply = self.request("set", f"<block xmlns='{NS_BLOCKING}'><item/></block>")
        self.assertEqual(condition(reply), "bad-request")

    def test_other_users_blocklist(self):
        """Asking for or changing another user's blocklist is service-unavailable."""
        self.block("carol@example.org")
        reply = self.request("get", f"<blocklist xmlns='{NS_BLOCKING}'/>", sender=BOB,
                             to="alice@example.org")
        self.assertEqual(condition(reply), "service-unavailable")
        reply = self.request("set", f"<unblock xmlns='{NS_BLOCKING}'/>", sender=BOB,
                             to="alice@example.org")
        self.assertEqual(condition(reply), "service-unavailable")
        self.assertEqual(self.blocklist(), ["carol@example.org"])

    def test_remote_request(self):
        """A remote entity asking for a user's blocklist gets service-unavailable."""
        self.host.receive("<iq type='get' id='r1' from='eve@remote.example/x' "
                          f"to='alice@example.org'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
        reply = self.host.remote.received[-1]
        self.assertEqual((reply.get("id"), condition(reply)), ("r1", "service-unavailable"))


class LimitTests(BlockingTestCase):
    options = {"max_items": 2}

    def test_limit(self):
        """A block that would exceed max_items is policy-violation and changes nothing."""
        self.block("a@example.org", "b@example.org")
        reply = self.request("set", f"<block xmlns='{NS_BLOCKING}'><item jid='c@example.org'/>"
                                    "</block>")
        self.assertEqual(condition(reply), "policy-violation")
        self.assertEqual(sorted(self.blocklist()), ["a@example.org", "b@example.org"])
        self.block("a@example.org")     # already there: the size does not grow


class PushTests(BlockingTestCase):
    def pushes(self, session):
        return [s for s in session.sent if s.tag == st.IQ and s.get("type") == "set"]

    def test_block_push_to_interested(self):
        """A block is pushed to every resource that requested the blocklist, the requester
        included, and to no other (XEP-0191 §3.3)."""
        self.blocklist(sender=ALICE)
        self.blocklist(sender=LAPTOP)
        other = FakeSession(self.host, "alice@example.org/tablet")
        self.clear()
        self.block("bob@example.org", "evil.example")
        self.assertEqual(self.pushes(other), [])
        for session in (self.alice, self.laptop):
            (push,) = self.pushes(session)
            self.assertEqual((push.get("to"), push.get("from")),
                             (str(session.jid), "alice@example.org"))
            self.assertTrue(push.get("id"))
            (payload,) = list(push)
            self.assertEqual(payload.tag, BLOCK)
            self.assertEqual(items(payload), ["bob@example.org", "evil.example"])

    def test_push_before_result(self):
        """The requester gets its push before the result, as for roster pushes."""
        self.blocklist()
        self.clear()
        self.block("bob@example.org")
        kinds = [s.get("type") for s in self.alice.sent if s.tag == st.IQ]
        self.assertEqual(kinds, ["set", "result"])

    def test_not_interested(self):
        """Resources that never requested the blocklist get no push."""
        self.clear()
        self.block("bob@example.org")
        self.assertEqual(self.pushes(self.laptop), [])
        self.assertEqual(self.pushes(self.alice), [])

    def test_unblock_push(self):
        """An unblock is pushed with its items (XEP-0191 §3.4)."""
        self.block("bob@example.org", "carol@example.org")
        self.blocklist(sender=LAPTOP)
        self.clear()
        self.unblock("bob@example.org")
        (push,) = self.pushes(self.laptop)
        self.assertEqual((push[0].tag, items(push[0])), (UNBLOCK, ["bob@example.org"]))

    def test_unblock_all_push(self):
        """Unblocking everything is pushed as an empty <unblock/> (XEP-0191 §3.5)."""
        self.block("bob@example.org")
        self.blocklist(sender=LAPTOP)
        self.clear()
        self.unblock()
        (push,) = self.pushes(self.laptop)
        self.assertEqual((push[0].tag, len(push[0])), (UNBLOCK, 0))

    def test_no_push_on_error(self):
        """A refused request pushes nothing."""
        self.blocklist(sender=LAPTOP)
        self.clear()
        self.request("set", f"<block xmlns='{NS_BLOCKING}'/>")
        self.assertEqual(self.pushes(self.laptop), [])


class InboundTests(BlockingTestCase):
    def test_message_from_blocked(self):
        """A chat from a blocked bare JID is not delivered; the sender gets
        service-unavailable from the address it wrote to (XEP-0191 §3.3)."""
        self.block("bob@example.org")
        self.clear()
        self.message(BOB, "alice@example.org")
        self.message(BOB, ALICE)
        self.assertEqual(self.alice.sent + self.laptop.sent, [])
        errors = self.bob.sent
        self.assertEqual([(e.get("type"), e.get("from"), condition(e)) for e in errors],
                         [("error", "alice@example.org", "service-unavailable"),
                          ("error", ALICE, "service-unavailable")])

    def test_normal_and_groupchat_bounced(self):
        """Normal and groupchat messages from a blocked JID are answered with errors too."""
        self.block("bob@example.org")
        self.clear()
        self.message(BOB, ALICE, type_="normal")
        self.message(BOB, ALICE, type_="groupchat")
        self.assertEqual(self.alice.sent, [])
        self.assertEqual([condition(e) for e in self.bob.sent], ["service-unavailable"] * 2)

    def test_headline_and_error_dropped(self):
        """Headlines and errors from a blocked JID are dropped without an answer."""
        self.block("bob@example.org")
        self.clear()
        self.message(BOB, ALICE, type_="headline")
        self.host.receive(f"<message type='error' from='{BOB}' to='{ALICE}'>"
                          f"<error type='cancel'><gone xmlns='{NS_STANZAS}'/></error></message>")
        self.assertEqual(self.host.sent, [])

    def test_presence_from_blocked(self):
        """Presence of every type from a blocked JID is dropped without an answer."""
        self.block("bob@example.org")
        self.clear()
        for type_ in (None, "unavailable", "subscribe", "subscribed", "probe", "unsubscribe"):
            type_attr = f" type='{type_}'" if type_ else ""
            self.host.receive(f"<presence{type_attr} from='{BOB}' to='alice@example.org'/>")
            self.host.receive(f"<presence{type_attr} from='{BOB}' to='{ALICE}'/>")
        self.assertEqual(self.host.sent, [])

    def test_iq_from_blocked(self):
        """IQ get/set from a blocked JID get service-unavailable; results and errors are
        dropped (XEP-0191 §3.3)."""
        self.block("bob@example.org")
        self.clear()
        self.host.receive(f"<iq type='get' id='q1' from='{BOB}' to='{ALICE}'>"
                          "<query xmlns='jabber:iq:version'/></iq>")
        self.host.receive(f"<iq type='get' id='q2' from='{BOB}' to='alice@example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'/></iq>")
        self.host.receive(f"<iq type='result' id='q3' from='{BOB}' to='{ALICE}'/>")
        self.assertEqual(self.alice.sent, [])
        self.assertEqual([(e.get("id"), condition(e)) for e in self.bob.sent],
                         [("q1", "service-unavailable"), ("q2", "service-unavailable")])

    def test_full_jid_entry(self):
        """A blocked full JID stops only that resource of the contact."""
        self.block(BOB)
        other = FakeSession(self.host, "bob@example.org/work")
        self.clear()
        self.message(BOB, ALICE)
        self.message("bob@example.org/work", ALICE)
        self.assertEqual([m.get("from") for m in self.alice.sent], ["bob@example.org/work"])
        self.assertEqual(other.sent, [])

    def test_domain_entry(self):
        """A blocked domain stops every user of it, remote ones included."""
        self.block("remote.example")
        self.clear()
        self.message("eve@remote.example/x", ALICE)
        self.host.receive(f"<presence from='eve@remote.example/x' to='{ALICE}'/>")
        self.message("eve@other.example/x", ALICE)
        self.assertEqual([m.get("from") for m in self.alice.sent], ["eve@other.example/x"])
        (error,) = self.host.remote.received
        self.assertEqual((error.get("to"), condition(error)),
                         ("eve@remote.example/x", "service-unavailable"))

    def test_domain_resource_entry(self):
        """A blocked domain/resource stops that resource of every user of the domain."""
        self.block("remote.example/bot")
        self.clear()
        self.message("eve@remote.example/bot", ALICE)
        self.message("eve@remote.example/phone", ALICE)
        self.assertEqual([m.get("from") for m in self.alice.sent],
                         ["eve@remote.example/phone"])

    def test_other_users_unaffected(self):
        """Only the user who blocked is protected: others still get the contact's stanzas."""
        self.block("bob@example.org")
        self.clear()
        self.message(BOB, CAROL)
        self.assertEqual(len(self.carol.sent), 1)

    def test_own_resources_never_blocked(self):
        """Blocking one's own JID or domain never stops the user's own resources or the
        answers of the server (XEP-0191 §5 note)."""
        self.block("alice@example.org", "example.org")
        self.clear()
        self.message(LAPTOP, ALICE)
        self.assertEqual([m.get("from") for m in self.alice.sent], [LAPTOP])
        reply = self.request("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to="example.org",
                             id_="d1")
        self.assertEqual(reply.get("type"), "result")
        self.message(BOB, ALICE)    # the domain entry still covers other users
        self.assertEqual([m.get("from") for m in self.alice.sent if m.tag == st.MESSAGE],
                         [LAPTOP])

    def test_unblock_restores(self):
        """After an unblock, the contact's stanzas are delivered again."""
        self.block("bob@example.org")
        self.unblock("bob@example.org")
        self.clear()
        self.message(BOB, ALICE)
        self.assertEqual(len(self.alice.sent), 1)

    def test_block_persists(self):
        """A blocklist survives the cache: a fresh host on the same storage enforces it."""
        self.block("bob@example.org")
        host = FakeHost("example.org", clock=self.clock, storage=self.storage)
        host.install(service_discovery)
        host.install(blocking)
        alice = FakeSession(host, ALICE)
        bob = FakeSession(host, BOB)
        host.receive(f"<message type='chat' from='{BOB}' to='{ALICE}'><body>x</body></message>")
        self.assertEqual(alice.sent, [])
        self.assertEqual(condition(bob.sent[-1]), "service-unavailable")
        host.receive(f"<iq type='get' id='g' from='{ALICE}'><blocklist xmlns='{NS_BLOCKING}'/>"
                     "</iq>")
        self.assertEqual(items(alice.sent[-1].find(BLOCKLIST)), ["bob@example.org"])

    def test_offline_user_loaded_lazily(self):
        """A user with no session has their list loaded for stanzas addressed to them."""
        self.block("bob@example.org")
        self.alice.close()
        self.laptop.close()
        blocklists = self.blocklists()
        blocklists.lists.clear()
        blocklists._offline.clear()
        self.clear()
        self.host.receive(f"<presence type='subscribe' from='{BOB}' to='alice@example.org'/>")
        self.assertEqual(self.host.sent, [])
        self.assertIn("alice", blocklists.lists)

    def blocklists(self):
        """The Blocklists object the extension provides as the 'blocking' service."""
        return self.host.service("blocking")


class OutboundTests(BlockingTestCase):
    def assertRefused(self, reply, sender=ALICE, blocked="bob@example.org"):
        self.assertEqual((reply.get("type"), reply.get("to"), reply.get("from")),
                         ("error", sender, blocked))
        error = reply.find(st.ERROR)
        self.assertEqual((condition(reply), error.get("type")), ("not-acceptable", "cancel"))
        self.assertIsNotNone(error.find(BLOCKED))

    def test_message_to_blocked(self):
        """A message to a blocked JID is not routed; the sender gets not-acceptable with
        <blocked xmlns='urn:xmpp:blocking:errors'/> (XEP-0191 §3.3)."""
        self.block("bob@example.org")
        self.clear()
        self.message(ALICE, "bob@example.org")
        self.assertEqual(self.bob.sent, [])
        (reply,) = self.alice.sent
        self.assertRefused(reply)

    def test_iq_and_presence_to_blocked(self):
        """IQs, directed presence and subscription requests to a blocked JID are refused
        the same way."""
        self.block("bob@example.org")
        self.clear()
        self.host.receive(f"<iq type='get' id='v' from='{ALICE}' to='{BOB}'>"
                          "<query xmlns='jabber:iq:version'/></iq>")
        self.host.receive(f"<presence from='{ALICE}' to='{BOB}'/>")
        self.host.receive(f"<presence type='subscribe' from='{ALICE}' to='bob@example.org'/>")
        self.assertEqual(self.bob.sent, [])
        self.assertEqual(len(self.alice.sent), 3)
        self.assertRefused(self.alice.sent[0], blocked=BOB)
        self.assertRefused(self.alice.sent[1], blocked=BOB)
        self.assertRefused(self.alice.sent[2])

    def test_remote_blocked(self):
        """A stanza to a blocked remote domain never leaves the server."""
        self.block("remote.example")
        self.clear()
        self.message(ALICE, "eve@remote.example")
        self.assertEqual(self.host.remote.received, [])
        self.assertRefused(self.alice.sent[0], blocked="eve@remote.example")

    def test_errors_and_results_dropped(self):
        """Errors and IQ results to a blocked JID are dropped, never answered."""
        self.block("bob@example.org")
        self.clear()
        self.host.receive(f"<iq type='result' id='x' from='{ALICE}' to='{BOB}'/>")
        self.host.receive(f"<message type='error' from='{ALICE}' to='{BOB}'>"
                          f"<error type='cancel'><gone xmlns='{NS_STANZAS}'/></error></message>")
        self.assertEqual(self.host.sent, [])

    def test_own_account_not_refused(self):
        """Stanzas to the user's own resources are never refused."""
        self.block("alice@example.org")
        self.clear()
        self.message(ALICE, LAPTOP)
        self.assertEqual(len(self.laptop.sent), 1)

    def test_server_generated_filtered(self):
        """What the server sends on the user's behalf to a blocked JID is dropped
        silently: a presence broadcast reaches only the unblocked contact."""
        self.block("bob@example.org")
        self.clear()
        for contact in ("bob@example.org", "carol@example.org"):
            presence = parse(f"<presence from='{ALICE}' to='{contact}'/>")
            sent = self.host.send_from_user(presence, self.alice)
            self.assertEqual(sent, contact == "carol@example.org")
        self.assertEqual(self.bob.sent, [])
        self.assertEqual(len(self.carol.sent), 1)
        self.assertEqual(self.alice.sent, [])

    def test_broadcast_hook_filtered(self):
        """A roster-style PRESENCE_BROADCAST hook sending through send_from_user cannot
        reach a blocked contact."""
        def broadcast(presence, session):
            for contact in ("bob@example.org", "carol@example.org"):
                copy = parse(f"<presence from='{session.jid}' to='{contact}'/>")
                self.host.send_from_user(copy, session)

        self.host.hook(dispatch.PRESENCE_BROADCAST, broadcast)
        self.block("bob@example.org")
        self.clear()
        self.host.receive(f"<presence from='{ALICE}'/>")
        self.assertEqual(self.bob.sent, [])
        self.assertEqual([p.get("from") for p in self.carol.sent], [ALICE])


class PresenceOnChangeTests(BlockingTestCase):
    def presences(self, session):
        return [s for s in session.sent if s.tag == st.PRESENCE]

    def test_unavailable_on_block(self):
        """Blocking a contact sends it unavailable presence from each of the user's
        available resources (XEP-0191 §3.3)."""
        self.laptop.available = False
        self.clear()
        self.block("bob@example.org", "evil.example")
        (presence,) = self.presences(self.bob)
        self.assertEqual((presence.get("type"), presence.get("from"), presence.get("to")),
                         ("unavailable", ALICE, "bob@example.org"))
        self.assertEqual(self.host.remote.received, [])     # no presence to a domain

    def test_no_unavailable_when_already_blocked(self):
        """A JID already covered by the list gets no second unavailable presence."""
        self.block("bob@example.org")
        self.clear()
        self.block("bob@example.org")
        self.block(BOB)
        self.assertEqual(self.presences(self.bob), [])

    def test_roster_decides_unavailable(self):
        """With a roster service, only contacts allowed to see the user's presence get
        the unavailable presence."""
        self.host.provide("roster", FakeRoster({("alice", "carol@example.org")}))
        self.clear()
        self.block("bob@example.org", "carol@example.org")
        self.assertEqual(self.presences(self.bob), [])
        self.assertEqual([p.get("from") for p in self.presences(self.carol)], [ALICE, LAPTOP])

    def test_presence_on_unblock(self):
        """Unblocking a contact allowed to see the user's presence sends it the current
        presence of each available resource (XEP-0191 §3.4)."""
        self.host.provide("roster", FakeRoster({("alice", "bob@example.org")}))
        self.host.receive(f"<presence from='{ALICE}'><show>away</show></presence>")
        self.block("bob@example.org")
        self.clear()
        self.unblock("bob@example.org")
        (presence,) = self.presences(self.bob)
        self.assertEqual((presence.get("from"), presence.get("to"), presence.get("type")),
                         (ALICE, "bob@example.org", None))
        self.assertEqual(presence.findtext("{jabber:client}show"), "away")

    def test_unblock_still_covered(self):
        """No presence goes to a contact still covered by another entry."""
        self.host.provide("roster", FakeRoster({("alice", "bob@example.org")}))
        self.host.receive(f"<presence from='{ALICE}'/>")
        self.block("bob@example.org", "example.org")
        self.clear()
        self.unblock("bob@example.org")
        self.assertEqual(self.presences(self.bob), [])

    def test_no_presence_on_unblock_without_roster(self):
        """Without a roster service, unblocking sends no presence."""
        self.host.receive(f"<presence from='{ALICE}'/>")
        self.block("bob@example.org")
        self.clear()
        self.unblock("bob@example.org")
        self.assertEqual(self.presences(self.bob), [])


class ManualStorageTestCase(BlockingTestCase):
    """Storage answers only when the test releases them."""

    def make_storage(self):
        return ManualStorage()

    def setUp(self):
        super().setUp()
        self.store = self.storage.blocklists
        self.store.release()
        self.clear()


class CacheTests(ManualStorageTestCase):
    def test_hot_path_has_no_storage_calls(self):
        """Once a user's list is loaded, stanzas to and from them touch no storage."""
        self.message(BOB, ALICE)
        self.message(ALICE, BOB)
        self.host.receive(f"<presence from='{ALICE}'/>")
        self.assertEqual(self.store.pending, [])
        self.assertEqual(len(self.alice.sent) + len(self.bob.sent), 3)

    def test_inbound_held_until_loaded(self):
        """Stanzas to a user whose list is still loading wait, in order, and then are
        delivered or refused by the loaded list."""
        self.store.inner.set("example.org", "dave", STORE_KEY, ["bob@example.org"])
        dave = FakeSession(self.host, "dave@example.org/r")
        self.message(CAROL, "dave@example.org/r", body="one")
        self.message(BOB, "dave@example.org/r", body="two")
        self.message(CAROL, "dave@example.org/r", body="three")
        self.assertEqual(dave.sent, [])
        self.store.release()
        self.assertEqual([m.findtext("{jabber:client}body") for m in dave.sent],
                         ["one", "three"])
        self.assertEqual(condition(self.bob.sent[-1]), "service-unavailable")

    def test_outbound_held_until_loaded(self):
        """A client stanza sent before its user's list is loaded waits for it: refused
        with <blocked/> when blocked, sent on otherwise."""
        self.store.inner.set("example.org", "dave", STORE_KEY, ["bob@example.org"])
        dave = FakeSession(self.host, "dave@example.org/r")
        self.message("dave@example.org/r", BOB, body="one")
        self.message("dave@example.org/r", CAROL, body="two")
        presence = parse(f"<presence from='dave@example.org/r' to='{BOB}'/>")
        self.assertFalse(self.host.send_from_user(presence, dave))
        self.assertEqual(self.bob.sent + self.carol.sent + dave.sent, [])
        self.store.release()
        self.assertEqual(self.bob.sent, [])
        self.assertEqual([m.findtext("{jabber:client}body") for m in self.carol.sent], ["two"])
        (error,) = dave.sent
        self.assertEqual(condition(error), "not-acceptable")
        self.assertIsNotNone(error.find(st.ERROR).find(BLOCKED))

    def test_load_failure(self):
        """When the list cannot be loaded, a held message is answered
        internal-server-error, and the next stanza tries again."""
        self.store.fail = True
        FakeSession(self.host, "dave@example.org/r")
        self.message(CAROL, "dave@example.org/r")
        self.store.release()
        self.assertEqual(condition(self.carol.sent[-1]), "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.store.fail = False
        self.message(CAROL, "dave@example.org/r")
        self.store.release()
        self.assertEqual(self.host.session("dave@example.org/r").sent[-1].tag, st.MESSAGE)

    def test_load_failure_outbound(self):
        """When the sender's list cannot be loaded, a held client message is answered
        internal-server-error to the sender and not routed."""
        self.store.fail = True
        dave = FakeSession(self.host, "dave@example.org/r")
        self.message("dave@example.org/r", CAROL)
        self.store.release()
        self.assertEqual(self.carol.sent, [])
        (error,) = dave.sent
        self.assertEqual((condition(error), error.get("from")), ("internal-server-error", CAROL))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_changes_serialised(self):
        """Concurrent changes of one user apply one after the other; none is lost."""
        self.iq(ALICE, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='a@example.org'/>"
                              "</block>", id_="1")
        self.iq(LAPTOP, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='b@example.org'/>"
                               "</block>", id_="2")
        self.iq(ALICE, "set", f"<unblock xmlns='{NS_BLOCKING}'><item jid='a@example.org'/>"
                              "</unblock>", id_="3")
        self.store.release()
        self.assertEqual([s.get("type") for s in self.alice.sent + self.laptop.sent],
                         ["result", "result", "result"])
        stored = self.successResultOf(self.store.inner.get("example.org", "alice", STORE_KEY))
        self.assertEqual(stored, ["b@example.org"])

    def test_change_applies_after_storage(self):
        """A block takes effect and is acknowledged only once it is stored."""
        self.iq(ALICE, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='bob@example.org'/>"
                              "</block>")
        self.message(BOB, ALICE)
        self.assertEqual([s.tag for s in self.alice.sent], [st.MESSAGE])
        self.store.release()
        self.assertEqual(self.alice.sent[-1].get("type"), "result")
        self.message(BOB, ALICE)
        self.assertEqual(len([s for s in self.alice.sent if s.tag == st.MESSAGE]), 1)

    def test_offline_cache_bounded(self):
        """Lists loaded for users without a session are evicted beyond cache_size; those
        of online users stay."""
        blocklists = InboundTests.blocklists(self)
        blocklists.cache_size = 2
        for user in ("u1", "u2", "u3"):
            self.message(BOB, f"{user}@example.org")
            self.store.release()
        self.assertEqual(sorted(u for u in blocklists.lists if u.startswith("u")),
                         ["u2", "u3"])
        self.assertIn("alice", blocklists.lists)

    def test_list_kept_while_online(self):
        """A user's list leaves the online set at their last session's end."""
        blocklists = InboundTests.blocklists(self)
        blocklists.cache_size = 1
        self.alice.close()
        self.assertIn("alice", blocklists.lists)
        self.laptop.close()
        self.bob.close()
        self.assertEqual([u for u in ("alice", "bob") if u in blocklists.lists], ["bob"])

    def test_user_deleted(self):
        """USER_DELETED drops the cached list, so a later one comes from storage."""
        self.iq(ALICE, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='bob@example.org'/>"
                              "</block>")
        self.store.release()
        self.store.inner.set("example.org", "alice", STORE_KEY, None)
        self.host.dispatcher.hooks.fire(dispatch.USER_DELETED, JID.parse("alice@example.org"))
        self.assertNotIn("alice", InboundTests.blocklists(self).lists)
        self.clear()
        self.message(BOB, ALICE)
        self.store.release()
        self.assertEqual([s.tag for s in self.alice.sent], [st.MESSAGE])
