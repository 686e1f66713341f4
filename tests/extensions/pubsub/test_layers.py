"""The layers of the pubsub package: the protocol's handler table and error map, and the
rules, which decide without building stanzas."""
import ast
import inspect
import os

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub import (
    nodes, notifications, owner, protocol, publishing, rules, subscriptions)
from jabberapp.extensions.pubsub.config import PEP_DEFAULTS
from jabberapp.extensions.pubsub.interfaces import NodeExists, NodeLimitReached, NodeNotFound
from jabberapp.extensions.pubsub.store import KeyValueNodeStore
from jabberapp.jid import JID
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost, parse
from tests.extensions.pubsub.helpers import NS_ERRORS, NS_OWNER, NS_PUBSUB, PubSubTestCase
from jabberapp.testing import HeldKeyValue

ALICE = "alice@example.org/r"
BOB = "bob@example.org/r"


def _record(access_model="open", publish_model="publishers", affiliations=None,
            subscriptions_=None, pending=None):
    return {"config": {"access_model": access_model, "publish_model": publish_model},
            "affiliations": affiliations or {"alice@example.org": "owner"},
            "subscriptions": subscriptions_ or {}, "pending": pending or {}}


class HandlerTableTests(PubSubTestCase):
    """The protocol routes by (type, namespace, verb) through HANDLERS."""

    def test_every_verb_has_a_handler_per_namespace(self):
        """Each handler in the table is an async function of the handler modules, keyed by
        a known IQ type and one of the two payload namespaces."""
        modules = (publishing, subscriptions, owner)
        for (type_, namespace, name), handler in protocol.HANDLERS.items():
            self.assertIn(type_, ("get", "set"))
            self.assertIn(namespace, (NS_PUBSUB, NS_OWNER))
            self.assertTrue(inspect.iscoroutinefunction(handler), name)
            self.assertIn(inspect.getmodule(handler), modules)

    def test_no_methods_by_built_names(self):
        """No module of the protocol layer calls getattr (handlers come from the table)."""
        for module in (protocol, publishing, subscriptions, owner, notifications, rules,
                       nodes):
            tree = ast.parse(inspect.getsource(module))
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                     and getattr(n.func, "id", None) == "getattr"]
            self.assertEqual(calls, [], module.__name__)

    def test_verb_of_other_namespace(self):
        """A verb in a foreign namespace is not implemented; a known verb without a handler
        for that payload and type (an owner verb in the user payload, or the reverse) is a
        bad request."""
        self.create("n")
        self.assertEqual(self.error(ALICE, "get", self.pubsub(
            "<items xmlns='urn:other' node='n'/>")), ("feature-not-implemented", "unsupported"))
        self.assertEqual(self.error(ALICE, "get", self.pubsub("<items node='n'/>", owner=True)),
                         ("bad-request", None))
        self.assertEqual(self.error(ALICE, "get", self.pubsub("<configure node='n'/>")),
                         ("bad-request", None))

    def test_unsupported_options_feature(self):
        """An unsupported <options/> names the subscription-options feature (XEP-0060
        §10)."""
        reply = self.iq(ALICE, "get", self.pubsub("<options xmlns='urn:other' node='n'/>"))
        unsupported = reply.find(f".//{{{NS_ERRORS}}}unsupported")
        self.assertEqual(unsupported.get("feature"), "subscription-options")


class ErrorMapTests(SynchronousTestCase):
    """Domain errors become stanza errors in one table at the protocol edge."""

    def test_every_refusal_mapped(self):
        """Every refusal the rules can raise, and the store's errors, are in ERRORS."""
        refusals = set(rules.Refused.__subclasses__()) | {
            NodeExists, NodeLimitReached, NodeNotFound}
        self.assertEqual(set(protocol.ERRORS), refusals)

    def test_conditions_and_texts(self):
        """A refusal keeps its text and gains its pubsub#errors condition; a store error
        carries no internals."""
        error = protocol.stanza_error(rules.Forbidden("Not your subscription"))
        self.assertEqual((error.condition, error.text, error.app_condition),
                         ("forbidden", "Not your subscription", None))
        error = protocol.stanza_error(rules.ClosedNode())
        self.assertEqual((error.condition, error.app_condition.tag),
                         ("not-allowed", f"{{{NS_ERRORS}}}closed-node"))
        error = protocol.stanza_error(NodeNotFound("secret-node-name"))
        self.assertEqual((error.condition, error.text), ("item-not-found", None))
        error = protocol.stanza_error(NodeLimitReached(5))
        self.assertEqual((error.condition, error.text),
                         ("policy-violation", "No more than 5 nodes may be created here"))


class RulesTests(SynchronousTestCase):
    """The rules decide on records alone, raising refusals, never stanza errors."""

    def setUp(self):
        self.host = FakeHost("example.org")
        self.service = rules.Rules(self.host, pep=False)
        self.pep = rules.Rules(self.host, pep=True)

    def test_affiliation(self):
        """A PEP account owns its nodes whatever the record says; elsewhere the record
        decides."""
        record = _record(affiliations={"bob@example.org": "publisher"})
        self.assertEqual(self.pep.affiliation("alice@example.org", record,
                                              JID.parse(ALICE)), "owner")
        self.assertEqual(self.service.affiliation("pubsub.example.org", record,
                                                  JID.parse(ALICE)), "none")
        self.assertEqual(self.service.affiliation("pubsub.example.org", record,
                                                  JID.parse(BOB)), "publisher")

    def test_publish_models(self):
        """Publishers publish; with model subscribers a subscriber may too, and with open
        anyone but an outcast."""
        bob = JID.parse(BOB)
        self.assertRaises(rules.Forbidden, self.service.may_publish, "s", _record(), bob)
        self.service.may_publish("s", _record(publish_model="subscribers",
                                              subscriptions_={BOB: "1"}), bob)
        self.service.may_publish("s", _record(publish_model="open"), bob)
        self.assertRaises(rules.Forbidden, self.service.may_publish, "s", _record(
            publish_model="open", affiliations={"bob@example.org": "outcast"}), bob)

    def test_authorize_access(self):
        """Access model authorize: subscribed reads, pending and unknown are refused
        with their own refusals."""
        bob = JID.parse(BOB)

        def access(record):
            return self.service.check_access("s", record, bob)

        self.successResultOf(access(_record("authorize", subscriptions_={BOB: "1"})))
        self.failureResultOf(access(_record("authorize", pending={BOB: "1"})),
                             rules.PendingSubscription)
        self.failureResultOf(access(_record("authorize")), rules.NotSubscribed)
        self.failureResultOf(access(_record("whitelist")), rules.ClosedNode)

    def test_owner_kept(self):
        """A node is not left without its owner (a refusal, not a stanza error)."""
        self.assertRaises(rules.NotAcceptable, self.service.keeps_owner,
                          {"bob@example.org": "publisher"})
        self.pep.keeps_owner({})
        self.assertRaises(rules.NotAcceptable, self.pep.may_set_affiliation,
                          "alice@example.org", "alice@example.org")


class PipelinedCreationTests(SynchronousTestCase):
    """The node limit holds for requests whose storage work overlaps."""

    def test_publishes_to_new_pep_nodes(self):
        """Publishes to four new PEP nodes in flight together, with room for two: two
        create their nodes, two get policy-violation."""
        host = FakeHost("example.org")
        keyvalue = HeldKeyValue(MemoryStorage().keyvalue("pubsub"))
        pubsub = protocol.PubSubProtocol(host, KeyValueNodeStore(keyvalue), PEP_DEFAULTS,
                                         pep=True, max_nodes=2)
        owner = JID.parse("alice@example.org")
        answers = [defer.ensureDeferred(pubsub.handle(parse(
            f"<iq type='set' id='p{n}' from='{ALICE}'><pubsub xmlns='{NS_PUBSUB}'>"
            f"<publish node='urn:new:{n}'><item><e xmlns='urn:e'/></item></publish>"
            "</pubsub></iq>"), owner)) for n in range(4)]
        keyvalue.flush()
        conditions = []
        for d in answers:
            failures = []
            d.addCallbacks(lambda _: conditions.append(None), failures.append)
            for failure in failures:
                failure.trap(StanzaError)
                conditions.append(failure.value.condition)
        self.assertEqual(sorted(conditions, key=str),
                         [None, None, "policy-violation", "policy-violation"])
        nodes = pubsub.store.list_nodes(str(owner))
        keyvalue.flush()
        self.assertEqual(len(self.successResultOf(nodes)), 2)


class BoundaryTests(SynchronousTestCase):
    """The package uses other extensions only through their services."""

    def test_no_other_extension_imported(self):
        """No module of jabberapp/extensions/pubsub imports another extension's module
        (caps and roster are reached with host.service)."""
        package = os.path.dirname(protocol.__file__)
        for name in sorted(os.listdir(package)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(package, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""] if isinstance(node, ast.ImportFrom)
                           else [])
                for module in modules:
                    if module.startswith("jabberapp.extensions."):
                        self.assertTrue(module.startswith("jabberapp.extensions.pubsub"),
                                        f"{name} imports {module}")
