"""XEP-0049 Private XML Storage."""
from lxml import etree
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp import stanza as st
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.private import NS_PRIVATE, QUERY, private_storage
from jabberapp.interfaces import IExtension
from jabberapp.plugins import jabberapp_builtin
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost, HeldKeyValue
from jabberapp.xml.ns import NS_DISCO_INFO, NS_STANZAS

ALICE = "alice@example.org/phone"
BOOKMARKS = ("<storage xmlns='storage:bookmarks'><conference jid='tea@muc.example.org' "
             "autojoin='true' name='Tea'><nick>alice</nick></conference></storage>")
PREFS = "<prefs xmlns='urn:example:prefs'><theme>dark</theme></prefs>"


def condition(reply):
    """The defined condition of an error reply."""
    (name,) = [etree.QName(c).localname for c in reply.find(st.ERROR)
               if etree.QName(c).namespace == NS_STANZAS and etree.QName(c).localname != "text"]
    return name


def shape(el):
    """C{el} as nested tuples of names, attributes and text, to compare XML by content."""
    if isinstance(el, str):
        el = etree.fromstring(el)
    return (el.tag, sorted(el.attrib.items()), (el.text or "").strip() or None,
            [shape(child) for child in el])


class SlowStorage(MemoryStorage):
    """Memory storage whose 'private' store is a HeldKeyValue."""

    def keyvalue(self, name):
        store = super().keyvalue(name)
        if name != "private":
            return store
        if not hasattr(self, "slow"):
            self.slow = HeldKeyValue(store)
        return self.slow


class PrivateTestCase(SynchronousTestCase):
    """A host with disco and private storage, and the accounts alice and bob."""

    options = {}
    storage = None

    def setUp(self):
        self.host = FakeHost("example.org", clock=Clock(), storage=self.storage)
        self.host.install(service_discovery)
        self.host.install(private_storage, **self.options)
        for user in ("alice", "bob"):
            self.host.add_account(user)

    def iq(self, type_, *children, sender=ALICE, to=None):
        """Send a private storage IQ; return the reply, checking its id and addressee."""
        to_attr = f" to='{to}'" if to is not None else ""
        self.host.receive(f"<iq type='{type_}' id='p1' from='{sender}'{to_attr}>"
                          f"<query xmlns='{NS_PRIVATE}'>{''.join(children)}</query></iq>")
        reply = self.host.sent[-1]
        self.assertEqual((reply.get("id"), reply.get("to")), ("p1", sender))
        return reply

    def set(self, *children, **kwargs):
        """Store C{children}; check the empty result."""
        reply = self.iq("set", *children, **kwargs)
        self.assertEqual((reply.get("type"), len(reply)), ("result", 0), etree.tostring(reply))

    def get(self, child, **kwargs):
        """The one element a successful get returns."""
        reply = self.iq("get", child, **kwargs)
        self.assertEqual(reply.get("type"), "result", etree.tostring(reply))
        (query,) = reply
        self.assertEqual(query.tag, QUERY)
        (element,) = query
        return element

    def error(self, type_, *children, **kwargs):
        """The condition of the error reply to a request that must fail."""
        reply = self.iq(type_, *children, **kwargs)
        self.assertEqual(reply.get("type"), "error", etree.tostring(reply))
        return condition(reply)

    def document(self, user="alice"):
        """What is stored for C{user}."""
        return self.successResultOf(self.host.storage.keyvalue("private").get(
            "example.org", user, "private"))


class DeclarationTests(PrivateTestCase):
    def test_interface(self):
        """The plugin object provides IPlugin and IExtension and is a built-in."""
        verifyObject(IExtension, private_storage)
        self.assertTrue(IPlugin.providedBy(private_storage))
        self.assertEqual((private_storage.name, private_storage.depends),
                         ("private", ("disco",)))
        self.assertIs(jabberapp_builtin.private_storage, private_storage)
        self.assertEqual([(s.name, s.version) for s in private_storage.specs],
                         [("XEP-0049", "1.2")])

    def test_options_documented(self):
        """The size limit option has a doc and a default."""
        self.assertEqual([(o.name, o.default) for o in private_storage.options],
                         [("max_size", 262144)])
        self.assertTrue(private_storage.options[0].doc)

    def test_disco_feature(self):
        """The server advertises jabber:iq:private in its disco#info."""
        self.host.receive(f"<iq type='get' id='d' from='{ALICE}' to='example.org'>"
                          f"<query xmlns='{NS_DISCO_INFO}'/></iq>")
        features = [f.get("var") for f in self.host.sent[-1].iter(f"{{{NS_DISCO_INFO}}}feature")]
        self.assertIn(NS_PRIVATE, features)


class StoreAndRetrieveTests(PrivateTestCase):
    def test_round_trip(self):
        """A stored element comes back as it was stored."""
        self.set(BOOKMARKS)
        self.assertEqual(shape(self.get("<storage xmlns='storage:bookmarks'/>")),
                         shape(BOOKMARKS))

    def test_to_own_bare_jid(self):
        """Requests addressed to one's own bare JID work like those without 'to'."""
        self.set(BOOKMARKS, to="alice@example.org")
        self.assertEqual(shape(self.get("<storage xmlns='storage:bookmarks'/>",
                                        to="alice@example.org", sender="alice@example.org/x")),
                         shape(BOOKMARKS))

    def test_nothing_stored(self):
        """A get for a key with nothing stored returns the empty element asked for."""
        element = self.get("<storage xmlns='storage:bookmarks'/>")
        self.assertEqual(shape(element), ("{storage:bookmarks}storage", [], None, []))

    def test_several_children(self):
        """A set with several children stores each under its own key."""
        self.set(BOOKMARKS, PREFS)
        self.assertEqual(shape(self.get("<prefs xmlns='urn:example:prefs'/>")), shape(PREFS))
        self.assertEqual(shape(self.get("<storage xmlns='storage:bookmarks'/>")),
                         shape(BOOKMARKS))

    def test_keyed_by_name_and_namespace(self):
        """Elements of the same namespace but different names are separate."""
        self.set("<a xmlns='urn:example:k'>1</a>", "<b xmlns='urn:example:k'>2</b>")
        self.assertEqual(self.get("<a xmlns='urn:example:k'/>").text, "1")
        self.assertEqual(self.get("<b xmlns='urn:example:k'/>").text, "2")
        self.assertIsNone(self.get("<a xmlns='urn:example:other'/>").text)

    def test_replace_one_key(self):
        """A set replaces what is stored under its keys and leaves other keys alone."""
        self.set(BOOKMARKS, PREFS)
        self.set("<prefs xmlns='urn:example:prefs'><theme>light</theme></prefs>")
        self.assertEqual(self.get("<prefs xmlns='urn:example:prefs'/>").findtext(
            "{urn:example:prefs}theme"), "light")
        self.assertEqual(shape(self.get("<storage xmlns='storage:bookmarks'/>")),
                         shape(BOOKMARKS))

    def test_empty_element_deletes(self):
        """Storing an empty element deletes the key; the last one gone, nothing is stored."""
        self.set(BOOKMARKS, PREFS)
        self.set("<prefs xmlns='urn:example:prefs'/>")
        self.assertEqual(list(self.document()), ["{storage:bookmarks}storage"])
        self.set("<storage xmlns='storage:bookmarks'/>")
        self.assertIsNone(self.document())

    def test_get_ignores_given_content(self):
        """What a get's element contains does not matter: the stored element is returned."""
        self.set(BOOKMARKS)
        self.assertEqual(shape(self.get(
            "<storage xmlns='storage:bookmarks'><conference jid='x@y'/></storage>")),
            shape(BOOKMARKS))

    def test_namespaces_and_text_faithful(self):
        """Prefixes, nested foreign namespaces, escapes and non-ASCII text survive."""
        data = ("<p:data xmlns:p='urn:example:p' xmlns:q='urn:example:q' q:attr='&lt;1&gt;'>"
                "<p:item>Ünïcode &amp; more ☃</p:item><q:other/><plain xmlns='urn:x'/>"
                "</p:data>")
        self.set(data)
        got = self.get("<data xmlns='urn:example:p'/>")
        self.assertEqual(shape(got), shape(data))
        self.assertEqual(got.prefix, "p")

    def test_stored_layout(self):
        """The document maps Clark names to the elements' own XML text."""
        self.set(PREFS)
        self.assertEqual(self.document(), {
            "{urn:example:prefs}prefs":
                '<prefs xmlns="urn:example:prefs"><theme>dark</theme></prefs>'})

    def test_accounts_separate(self):
        """One account's private data is not another's."""
        self.set(PREFS)
        self.assertIsNone(self.get("<prefs xmlns='urn:example:prefs'/>",
                                   sender="bob@example.org/pc").find("{urn:example:prefs}theme"))


class RefusalTests(PrivateTestCase):
    """Bad requests get the right error and change nothing."""

    def setUp(self):
        super().setUp()
        self.set(PREFS)
        self.before = self.document()

    def assertUnchanged(self):
        self.assertEqual(self.document(), self.before)

    def test_another_users_data(self):
        """Getting or setting another user's data is forbidden (XEP-0049 §2.3)."""
        self.assertEqual(self.error("get", "<prefs xmlns='urn:example:prefs'/>",
                                    sender="bob@example.org/pc", to="alice@example.org"),
                         "forbidden")
        self.assertEqual(self.error("set", BOOKMARKS, sender="bob@example.org/pc",
                                    to="alice@example.org"), "forbidden")
        self.assertUnchanged()
        self.assertIsNone(self.document("bob"))

    def test_remote_forbidden(self):
        """A remote entity can neither read nor write a local user's private data."""
        self.host.receive("<iq type='get' id='p9' from='alice@capulet.example/x' "
                          f"to='alice@example.org'><query xmlns='{NS_PRIVATE}'>"
                          "<prefs xmlns='urn:example:prefs'/></query></iq>")
        self.assertEqual(condition(self.host.remote.received[-1]), "forbidden")

    def test_empty_query(self):
        """A query without a child element is not-acceptable (XEP-0049 §2.3)."""
        self.assertEqual(self.error("get"), "not-acceptable")
        self.assertEqual(self.error("set"), "not-acceptable")
        self.assertUnchanged()

    def test_reserved_namespaces(self):
        """Reserved namespaces are refused with not-acceptable (XEP-0049 §2.3)."""
        for reserved in ("<query xmlns='jabber:iq:roster'/>", "<x xmlns='jabber:x:data'/>",
                         "<q xmlns='http://jabber.org/protocol/disco#info'/>",
                         "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>",
                         "<inherits>jabber:iq:private</inherits>"):
            self.assertEqual(self.error("set", reserved), "not-acceptable", reserved)
            self.assertEqual(self.error("get", reserved), "not-acceptable", reserved)
        self.assertUnchanged()

    def test_no_namespace(self):
        """An element in no namespace is refused with not-acceptable."""
        self.assertEqual(self.error("set", "<loose xmlns=''>x</loose>"), "not-acceptable")
        self.assertUnchanged()

    def test_one_bad_child_stores_nothing(self):
        """A set with one refused child stores none of its children."""
        self.assertEqual(self.error("set", BOOKMARKS, "<query xmlns='jabber:iq:roster'/>"),
                         "not-acceptable")
        self.assertUnchanged()

    def test_get_two(self):
        """A get naming two elements is a bad-request (XEP-0049 §2.3: one at a time)."""
        self.assertEqual(self.error("get", "<prefs xmlns='urn:example:prefs'/>",
                                    "<storage xmlns='storage:bookmarks'/>"), "bad-request")

    def test_duplicate_key(self):
        """A set with two elements of the same name and namespace is a bad-request."""
        self.assertEqual(self.error("set", "<prefs xmlns='urn:example:prefs'>1</prefs>",
                                    "<prefs xmlns='urn:example:prefs'>2</prefs>"),
                         "bad-request")
        self.assertUnchanged()


class SizeLimitTests(PrivateTestCase):
    options = {"max_size": 2048}

    def blob(self, name, size):
        """An element in urn:example:size whose stored text is exactly C{size} bytes."""
        empty = f'<{name} xmlns="urn:example:size"></{name}>'
        return f"<{name} xmlns='urn:example:size'>{'x' * (size - len(empty))}</{name}>"

    def test_total_at_limit(self):
        """Elements adding up to exactly max_size bytes are accepted."""
        self.set(self.blob("a", 1000), self.blob("b", 1048))

    def test_total_over_limit(self):
        """A set that would make the total exceed max_size is refused with
        not-acceptable naming the limit, and nothing is stored."""
        self.set(self.blob("a", 1000))
        before = self.document()
        reply = self.iq("set", self.blob("b", 1049))
        self.assertEqual(condition(reply), "not-acceptable")
        self.assertIn("2048 bytes", reply.find(st.ERROR).findtext(f"{{{NS_STANZAS}}}text"))
        self.assertEqual(self.document(), before)

    def test_replacing_counts_new_size(self):
        """Replacing an element counts its new size, not both."""
        self.set(self.blob("a", 2000))
        self.set(self.blob("a", 2048))
        self.set(self.blob("a", 10), self.blob("b", 2000))


class ConcurrencyTests(PrivateTestCase):
    def setUp(self):
        self.storage = SlowStorage()
        super().setUp()

    def test_concurrent_sets(self):
        """Two sets in flight at once both land: the second waits for the first."""
        for n, child in enumerate([BOOKMARKS, PREFS]):
            self.host.receive(f"<iq type='set' id='c{n}' from='{ALICE}'>"
                              f"<query xmlns='{NS_PRIVATE}'>{child}</query></iq>")
        self.assertEqual(self.host.sent, [])
        self.storage.slow.flush()
        self.assertEqual([(r.get("id"), r.get("type")) for r in self.host.sent],
                         [("c0", "result"), ("c1", "result")])
        stored = self.successResultOf(self.storage.slow.inner.get("example.org", "alice",
                                                                  "private"))
        self.assertEqual(sorted(stored), ["{storage:bookmarks}storage",
                                          "{urn:example:prefs}prefs"])


class AddressingTests(PrivateTestCase):
    """Requests with bad addresses get the core's errors and change nothing."""

    def test_invalid_to(self):
        """A malformed 'to' is jid-malformed, and nothing is stored."""
        for to in ("alice@@example.org", "al ice@example.org"):
            self.assertEqual(self.error("set", PREFS, to=to), "jid-malformed")
        self.assertIsNone(self.document())

    def test_host_jid(self):
        """Private storage is per account: a request to the server's JID is
        service-unavailable."""
        self.assertEqual(self.error("set", PREFS, to="example.org"), "service-unavailable")
        self.assertIsNone(self.document())
