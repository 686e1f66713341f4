"""XEP-0030 Service Discovery."""
from lxml import etree
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.extensions.disco import service_discovery
from jabberapp.forms import NS_DATA_FORMS, Field, Form, form_type_of, result_form
from jabberapp.extensions.version import software_version
from jabberapp.interfaces import IDiscoProvider, IExtension
from jabberapp.plugins import jabberapp_builtin
from jabberapp.testing import FakeHost, FakeSession
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS, NS_STANZAS, NS_VERSION

INFO = f"{{{NS_DISCO_INFO}}}query"
ITEMS = f"{{{NS_DISCO_ITEMS}}}query"


@implementer(IDiscoProvider)
class Provider:
    """Answers for one (target, node) from fixed values; records what it was asked."""

    def __init__(self, target, node=None, info=None, items=None):
        self.target = target
        self.node = node
        self._info = info
        self._items = items
        self.asked = []

    def info(self, requester, target, node):
        self.asked.append(("info", str(requester), str(target), node))
        if (str(target), node) == (self.target, self.node):
            return self._info
        return None

    def items(self, requester, target, node):
        self.asked.append(("items", str(requester), str(target), node))
        if (str(target), node) == (self.target, self.node):
            return self._items
        return None


class DiscoTestCase(SynchronousTestCase):
    """A host with disco on a Clock and an account for alice."""

    def setUp(self):
        self.host = FakeHost("example.org", clock=Clock())
        self.host.install(service_discovery)
        self.host.add_account("alice")

    def provide(self, *providers):
        """Install an extension registering C{providers}."""
        @implementer(IExtension)
        class Providing:
            name, depends, options = "providing", ("disco",), ()

            def install(self, host):
                for provider in providers:
                    host.add_disco_provider(provider)

        self.host.install(Providing())

    def ask(self, namespace, to="example.org", node=None, sender="alice@example.org/phone"):
        """Send a disco get; return the reply stanza."""
        node_attr = f" node='{node}'" if node is not None else ""
        self.host.receive(f"<iq type='get' id='d1' from='{sender}' to='{to}'>"
                          f"<query xmlns='{namespace}'{node_attr}/></iq>")
        reply = self.host.sent[-1]
        self.assertEqual((reply.get("id"), reply.get("to")), ("d1", sender))
        return reply

    def info(self, **kwargs):
        """The disco#info result's <query/>; fails on an error reply."""
        reply = self.ask(NS_DISCO_INFO, **kwargs)
        self.assertEqual(reply.get("type"), "result", etree.tostring(reply))
        return reply.find(INFO)

    def items(self, **kwargs):
        """The disco#items result's <query/>; fails on an error reply."""
        reply = self.ask(NS_DISCO_ITEMS, **kwargs)
        self.assertEqual(reply.get("type"), "result", etree.tostring(reply))
        return reply.find(ITEMS)

    def error(self, namespace, **kwargs):
        """The defined condition of the error reply to a disco get."""
        reply = self.ask(namespace, **kwargs)
        self.assertEqual(reply.get("type"), "error")
        (condition,) = [etree.QName(c).localname for c in reply.find(st.ERROR)
                        if etree.QName(c).namespace == NS_STANZAS]
        return condition


def identities(query):
    """(category, type, name) of each <identity/>, name None when absent."""
    return [(i.get("category"), i.get("type"), i.get("name"))
            for i in query.iter(f"{{{NS_DISCO_INFO}}}identity")]


def features(query):
    """The var of each <feature/>, in order."""
    return [f.get("var") for f in query.iter(f"{{{NS_DISCO_INFO}}}feature")]


def items(query):
    """(jid, node, name) of each <item/>."""
    return [(i.get("jid"), i.get("node"), i.get("name"))
            for i in query.iter(f"{{{NS_DISCO_ITEMS}}}item")]


class HostInfoTests(DiscoTestCase):
    def test_interface(self):
        """The plugin object provides IPlugin and IExtension, named 'disco'."""
        verifyObject(IExtension, service_discovery)
        self.assertTrue(IPlugin.providedBy(service_discovery))
        self.assertEqual((service_discovery.name, service_discovery.depends), ("disco", ()))
        self.assertIs(jabberapp_builtin.service_discovery, service_discovery)

    def test_host_info(self):
        """The host reports its server identity and the two disco features."""
        query = self.info()
        self.assertIsNone(query.get("node"))
        self.assertEqual(identities(query), [("server", "im", "jabberapp")])
        self.assertEqual(features(query), [NS_DISCO_INFO, NS_DISCO_ITEMS])

    def test_declared_features(self):
        """Features other extensions declare are listed, once each."""
        self.host.install(software_version)
        self.host.add_feature(NS_VERSION)
        self.host.add_feature("urn:example:extra")
        self.assertEqual(features(self.info()),
                         [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_VERSION, "urn:example:extra"])

    def test_declared_identity(self):
        """Identities declared with add_identity are listed, without a name if none."""
        self.host.add_identity("pubsub", "pep")
        self.host.add_identity("store", "file", "Files")
        self.assertEqual(identities(self.info()), [("server", "im", "jabberapp"),
                                                   ("pubsub", "pep", None),
                                                   ("store", "file", "Files")])

    def test_unloaded_feature_gone(self):
        """A feature disappears from the answer when its extension is unloaded."""
        self.host.install(software_version)
        self.host.unload("version")
        self.assertNotIn(NS_VERSION, features(self.info()))

    def test_providers_add_to_host(self):
        """Providers answering for the host JID add identities and features to it."""
        self.provide(Provider("example.org", info=([("proxy", "bytestreams", "Proxy")],
                                                   ["urn:example:proxy"])))
        query = self.info()
        self.assertIn(("proxy", "bytestreams", "Proxy"), identities(query))
        self.assertIn("urn:example:proxy", features(query))

    def test_from_remote(self):
        """A remote entity's request is answered through the remote destination."""
        self.ask(NS_DISCO_INFO, sender="juliet@capulet.example/balcony")
        self.assertEqual(self.host.remote.received[-1].get("type"), "result")

    def test_set_not_served(self):
        """A disco set is not a query: service-unavailable."""
        self.host.receive("<iq type='set' id='d1' from='alice@example.org/phone' "
                          f"to='example.org'><query xmlns='{NS_DISCO_INFO}'/></iq>")
        self.assertEqual(self.host.sent[-1].get("type"), "error")


class HostItemsTests(DiscoTestCase):
    def test_empty(self):
        """Without providers the host has no items."""
        self.assertEqual(items(self.items()), [])

    def test_provider_items(self):
        """Every provider's items for the host JID are listed, in order."""
        self.provide(Provider("example.org", items=[("muc.example.org", None, "Rooms")]),
                     Provider("example.org", items=[("example.org", "news", None)]))
        self.assertEqual(items(self.items()), [("muc.example.org", None, "Rooms"),
                                               ("example.org", "news", None)])


class NodeTests(DiscoTestCase):
    def test_unknown_node(self):
        """A node of the host that nobody owns is item-not-found."""
        self.assertEqual(self.error(NS_DISCO_INFO, node="nothing"), "item-not-found")
        self.assertEqual(self.error(NS_DISCO_ITEMS, node="nothing"), "item-not-found")

    def test_node_info(self):
        """The owner of a node answers for it, and the node is echoed in the reply."""
        self.provide(Provider("example.org", node="news",
                              info=([("pubsub", "leaf", None)], ["urn:example:news"])))
        query = self.info(node="news")
        self.assertEqual(query.get("node"), "news")
        self.assertEqual((identities(query), features(query)),
                         ([("pubsub", "leaf", None)], ["urn:example:news"]))

    def test_node_items(self):
        """The owner of a node lists its items, the node echoed."""
        self.provide(Provider("example.org", node="news",
                              items=[("example.org", "news/1", "First")]))
        query = self.items(node="news")
        self.assertEqual((query.get("node"), items(query)),
                         ("news", [("example.org", "news/1", "First")]))

    def test_empty_node_items(self):
        """A node whose owner has no items answers with an empty list, not an error."""
        self.provide(Provider("example.org", node="empty", items=[]))
        self.assertEqual(items(self.items(node="empty")), [])

    def test_first_answer_wins(self):
        """Providers are asked in order; the first not-None answer is the reply."""
        declining = Provider("example.org", node="other")
        first = Provider("example.org", node="n", info=([("a", "b", None)], ["urn:a"]))
        second = Provider("example.org", node="n", info=([("c", "d", None)], ["urn:c"]))
        self.provide(declining, first, second)
        self.assertEqual(features(self.info(node="n")), ["urn:a"])
        self.assertEqual([a[3] for a in declining.asked], ["n"])
        self.assertEqual(second.asked, [])

    def test_provider_arguments(self):
        """Providers get the requester, the target and the node as asked."""
        provider = Provider("example.org", node="n", items=[])
        self.provide(provider)
        self.items(node="n")
        self.assertEqual(provider.asked,
                         [("items", "alice@example.org/phone", "example.org", "n")])

    def test_deferred_answer(self):
        """A provider may answer later with a Deferred."""
        d = defer.Deferred()
        provider = Provider("example.org", node="slow")
        provider.items = lambda requester, target, node: d
        self.provide(provider)
        self.host.receive("<iq type='get' id='d1' from='alice@example.org/phone' "
                          f"to='example.org'><query xmlns='{NS_DISCO_ITEMS}' node='slow'/></iq>")
        self.assertEqual(self.host.sent, [])
        d.callback([("example.org", "slow/1", None)])
        self.assertEqual(items(self.host.sent[-1].find(ITEMS)),
                         [("example.org", "slow/1", None)])

    def test_provider_error(self):
        """A provider raising StanzaError gives that error."""
        def refuse(requester, target, node):
            raise StanzaError("forbidden")

        provider = Provider("example.org", node="secret")
        provider.info = refuse
        self.provide(provider)
        self.assertEqual(self.error(NS_DISCO_INFO, node="secret"), "forbidden")

    def test_host_resource(self):
        """The host JID with a resource that nobody owns is service-unavailable."""
        self.assertEqual(self.error(NS_DISCO_INFO, to="example.org/admin"),
                         "service-unavailable")


class AccountTests(DiscoTestCase):
    """XEP-0030 §3.1: the server answers for a user's bare JID."""

    def test_owner_info(self):
        """The account owner learns the account/registered identity."""
        query = self.info(to="alice@example.org")
        self.assertEqual(identities(query), [("account", "registered", None)])
        self.assertEqual(features(query), [NS_DISCO_INFO, NS_DISCO_ITEMS])

    def test_owner_items(self):
        """The account owner gets an empty item list when no provider adds any."""
        self.assertEqual(items(self.items(to="alice@example.org")), [])

    def test_owner_unknown_node(self):
        """An unowned node of an existing account is item-not-found for its owner."""
        self.assertEqual(self.error(NS_DISCO_INFO, to="alice@example.org", node="x"),
                         "item-not-found")

    def test_no_such_account(self):
        """A user that does not exist is service-unavailable, even to its would-be owner."""
        for namespace in (NS_DISCO_INFO, NS_DISCO_ITEMS):
            self.assertEqual(self.error(namespace, to="nobody@example.org",
                                        sender="nobody@example.org/x"),
                             "service-unavailable")
            self.assertEqual(self.error(namespace, to="nobody@example.org"),
                             "service-unavailable")

    def test_stranger(self):
        """Someone else gets the same answer as for a missing account: nothing leaks."""
        self.host.add_account("bob")
        for namespace in (NS_DISCO_INFO, NS_DISCO_ITEMS):
            self.assertEqual(self.error(namespace, to="alice@example.org",
                                        sender="bob@example.org/pc"),
                             "service-unavailable")
            self.assertEqual(self.error(namespace, to="alice@example.org",
                                        sender="juliet@capulet.example/balcony"),
                             "service-unavailable")

    def test_provider_answers_for_account(self):
        """A provider (such as the roster, for contacts) may answer for a bare JID."""
        self.provide(Provider("alice@example.org",
                              info=([("account", "registered", None)], ["urn:example:pep"])))
        query = self.info(to="alice@example.org", sender="bob@example.org/pc")
        self.assertEqual(features(query), ["urn:example:pep"])

    def test_account_features_to_the_owner(self):
        """Features added with add_account_features are in the owner's disco#info of its
        bare JID, whether the server or a provider answers, and go when removed."""
        remove = self.host.service("disco").add_account_features(["urn:example:archive"])
        self.assertEqual(features(self.info(to="alice@example.org")),
                         [NS_DISCO_INFO, NS_DISCO_ITEMS, "urn:example:archive"])
        self.provide(Provider("alice@example.org",
                              info=([("account", "registered", None)], ["urn:example:pep"])))
        self.assertEqual(features(self.info(to="alice@example.org")),
                         ["urn:example:pep", "urn:example:archive"])
        remove()
        self.assertEqual(features(self.info(to="alice@example.org")), ["urn:example:pep"])

    def test_account_features_not_to_others(self):
        """A contact asking a provider-answered bare JID, or a node of it, does not see the
        account features."""
        self.host.service("disco").add_account_features(["urn:example:archive"])
        self.provide(Provider("alice@example.org",
                              info=([("account", "registered", None)], ["urn:example:pep"])),
                     Provider("alice@example.org", node="n", info=([], ["urn:example:n"])))
        self.assertEqual(features(self.info(to="alice@example.org", sender="bob@example.org/pc")),
                         ["urn:example:pep"])
        self.assertEqual(features(self.info(to="alice@example.org", node="n")),
                         ["urn:example:n"])

    def test_full_jid_goes_to_client(self):
        """Disco to a user's full JID is the client's to answer: delivered to it."""
        phone = FakeSession(self.host, "alice@example.org/phone")
        self.host.receive("<iq type='get' id='d2' from='bob@example.org/pc' "
                          f"to='alice@example.org/phone'><query xmlns='{NS_DISCO_INFO}'/></iq>")
        self.assertEqual([(s.get("id"), s.get("type")) for s in phone.sent], [("d2", "get")])


class ExtendedInfoTests(DiscoTestCase):
    """XEP-0128: data forms other extensions add to the host's disco#info."""

    def add_forms(self, *forms):
        """Install an extension adding C{forms} through the disco service; return its host."""
        @implementer(IExtension)
        class Informing:
            name, depends, options = "informing", ("disco",), ()

            def install(self, host):
                for form in forms:
                    host.on_unload(host.service("disco").add(form))

        return self.host.install(Informing())

    def forms(self, **kwargs):
        """The forms in a disco#info answer."""
        return self.info(**kwargs).findall(f"{{{NS_DATA_FORMS}}}x")

    def test_form_object(self):
        """A jabberapp.forms.Form is accepted as well as an element, and served typed."""
        self.add_forms(Form("result", "urn:example:info",
                            [Field("a", "list-multi", values=("1", "2"))]))
        (form,) = self.forms()
        fields = [(f.get("var"), f.get("type"), [v.text for v in f]) for f in form]
        self.assertEqual(fields, [("FORM_TYPE", "hidden", ["urn:example:info"]),
                                  ("a", "list-multi", ["1", "2"])])

    def test_forms_after_features(self):
        """Added forms follow the identities and features of the host's answer, in order."""
        self.add_forms(result_form("urn:example:one", [Field("x", values=("1",))]),
                       result_form("urn:example:two", []))
        query = self.info()
        tags = [etree.QName(child).localname for child in query]
        self.assertEqual(tags, ["identity", "feature", "feature", "x", "x"])
        self.assertEqual([form_type_of(f) for f in self.forms()],
                         ["urn:example:one", "urn:example:two"])

    def test_only_host_jid(self):
        """Forms are not added to nodes or to users' answers."""
        self.add_forms(result_form("urn:example:one", []))
        self.provide(Provider("example.org", node="n", info=([("a", "b", None)], [])))
        self.assertEqual(self.forms(node="n"), [])
        self.assertEqual(self.forms(to="alice@example.org"), [])

    def test_removed_on_unload(self):
        """A form goes away when the extension that added it unloads."""
        self.add_forms(result_form("urn:example:one", []))
        self.host.unload("informing")
        self.assertEqual(self.forms(), [])
        self.assertEqual(self.host.service("disco").forms(), [])

    def test_copies(self):
        """The form is copied when added and when served: later changes do not leak."""
        form = result_form("urn:example:one", [Field("x", values=("1",))])
        self.add_forms(form)
        form.set("type", "form")
        served = self.host.service("disco").forms()
        served[0].set("type", "submit")
        self.assertEqual(self.forms()[0].get("type"), "result")

    def test_service(self):
        """The disco service lists the forms, for entity capabilities hashes."""
        self.add_forms(result_form("urn:example:one", []))
        self.assertEqual([form_type_of(f) for f in self.host.service("disco").forms()],
                         ["urn:example:one"])

    def test_duplicate_form_type(self):
        """A second form of the same FORM_TYPE is refused at install, and nothing stays."""
        with self.assertRaises(ValueError):
            self.add_forms(result_form("urn:example:one", []),
                           result_form("urn:example:one", [Field("x", values=("2",))]))
        self.assertEqual(self.forms(), [])

    def test_not_a_form(self):
        """Elements that are not XEP-0128 result forms with a FORM_TYPE are refused."""
        no_type = result_form("urn:example:one", [])
        del no_type[0]
        not_hidden = result_form("urn:example:one", [])
        del not_hidden[0].attrib["type"]
        submit = result_form("urn:example:one", [])
        submit.set("type", "submit")
        empty_type = result_form("", [])
        for bad in (no_type, not_hidden, submit, empty_type,
                    etree.Element("{urn:example}x")):
            with self.assertRaises(ValueError):
                self.add_forms(bad)
        self.assertEqual(self.forms(), [])
