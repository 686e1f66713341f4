"""
XEP-0060: Publish-Subscribe -- the generic service, served in-process at pubsub.<host>.

The component answers disco#info (identity pubsub/service and the features, or a node's
pubsub/leaf identity), disco#items (the nodes whose items the requester may read) and the
pubsub IQs through the shared L{PubSubProtocol}. Any local user may create nodes and owns
what it creates. Messages to the service are answered <service-unavailable/>, except a node
owner's submitted subscription authorization form (XEP-0060 §8.6, access model authorize),
which approves or denies the pending request; presence is ignored.

When an account of the host is deleted (USER_DELETED), its affiliations and subscriptions
are removed from every node, and the nodes it alone owned are deleted (with <delete/>
notifications): a new account of the same name must not inherit them.
"""
from twisted.plugin import IPlugin
from zope.interface import implementer

from twisted.internet import defer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub import config as cfg
from jabberapp.extensions.pubsub.ns import FEATURES, NS_EVENT, NS_PUBSUB, OWNER, PUBSUB
from jabberapp.extensions.pubsub.protocol import PubSubProtocol
from jabberapp.extensions.pubsub.store import STORE_NAME, KeyValueNodeStore
from jabberapp.extensions.pubsub.subscription_forms import find_authorization
from jabberapp.interfaces import IExtension
from jabberapp.jid import JID
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

DISCO_INFO = f"{{{NS_DISCO_INFO}}}query"
DISCO_ITEMS = f"{{{NS_DISCO_ITEMS}}}query"

LIMIT_OPTIONS = (
    Option("max_items_limit", int_range(1, 100_000), 1000,
           "Most items one node keeps; pubsub#max_items 'max' means this many, and a "
           "larger number is refused with not-acceptable."),
    Option("max_payload_size", int_range(256, 16 * 1024 * 1024), 65536,
           "Largest item payload in bytes of serialised XML; larger ones are refused with "
           "not-acceptable and <payload-too-big/>."),
)


@implementer(IPlugin, IExtension)
class PubSubService:
    """The XEP-0060 service component; see the module docstring."""

    name = "pubsub"
    depends = ("disco",)
    specs = (Spec("XEP-0060", "1.26.0", "Publish-Subscribe",
                  "leaf nodes: create/configure/delete/purge, publish with item ids and "
                  "publish-options, retract, items with max_items and RSM, subscribe, "
                  "affiliations, subscription options (pubsub#deliver, "
                  "pubsub#show-values), access models "
                  "open/presence/roster/whitelist/authorize (pending subscriptions, "
                  "approval by form or owner subscriptions); no collections"),)
    options = (
        Option("domain", str, "",
               "The service's domain; empty: pubsub.<host>. Set it only when the server "
               "has one host: each host's service needs a domain of its own."),
        Option("default_max_items", int_range(1, 100_000), 10,
               "pubsub#max_items of new nodes that do not configure it."),
        Option("max_nodes", int_range(1, 10_000_000), 10000,
               "Most nodes the service holds; creating more is refused with "
               "policy-violation."),
    ) + LIMIT_OPTIONS

    def install(self, host):
        """Serve the pubsub component domain."""
        domain = host.config["domain"] or f"pubsub.{host.domain}"
        defaults = dict(cfg.SERVICE_DEFAULTS, max_items=host.config["default_max_items"])
        protocol = PubSubProtocol(host, KeyValueNodeStore(host.storage.keyvalue(STORE_NAME)),
                                  defaults, max_items_limit=host.config["max_items_limit"],
                                  max_payload_size=host.config["max_payload_size"],
                                  max_nodes=host.config["max_nodes"])
        component = ServiceComponent(host, protocol, domain)
        host.add_component(domain, component.handle, name="Publish-Subscribe")
        host.hook(dispatch.USER_DELETED, component.user_deleted)


class ServiceComponent:
    """The in-process component: routes the service's IQs to the protocol or disco."""

    def __init__(self, host, protocol, domain):
        self.host = host
        self.protocol = protocol
        self.domain = domain

    async def handle(self, stanza):
        """Answer a stanza addressed to the service domain."""
        if st.is_error_or_result(stanza) or stanza.get("from") is None:
            return
        if stanza.tag == st.MESSAGE:
            if stanza.get("type") in ("headline", "groupchat"):
                return
            form = find_authorization(stanza)
            error = StanzaError("service-unavailable")
            if form is not None and JID.parse(stanza.get("to")) == JID.parse(self.domain):
                try:
                    await self.protocol.authorize(self.domain,
                                                  JID.parse(stanza.get("from")), form)
                    return
                except StanzaError as refused:
                    error = refused
            self.host.send(st.error_reply(stanza, error))
            return
        if stanza.tag != st.IQ:
            return
        children = [child for child in stanza if isinstance(child.tag, str)]
        if len(children) != 1:
            self.host.send(st.error_reply(stanza, StanzaError("bad-request")))
            return
        try:
            payload = await self._answer(stanza, children[0])
        except StanzaError as error:
            self.host.send(st.error_reply(stanza, error))
            return
        answer = st.reply(stanza)
        if payload is not None:
            answer.append(payload)
        self.host.send(answer)

    async def _answer(self, iq, payload):
        target = JID.parse(iq.get("to"))
        if target.local is not None or target.resource is not None:
            raise StanzaError("service-unavailable")
        type_ = iq.get("type")
        if payload.tag in (PUBSUB, OWNER):
            return await self.protocol.handle(iq, target)
        if type_ == "get" and payload.tag == DISCO_INFO:
            return await self._info(iq, payload.get("node"))
        if type_ == "get" and payload.tag == DISCO_ITEMS:
            return await self._items(iq, payload.get("node"))
        raise StanzaError("service-unavailable")

    def user_deleted(self, bare_jid):
        """USER_DELETED: drop the account's affiliations, subscriptions and sole-owned
        nodes (see the module docstring); a Deferred, errors logged."""
        d = defer.ensureDeferred(self._forget_user(JID.parse(str(bare_jid)).bare()))
        d.addErrback(lambda failure: self.host.log.failure(
            "removing {jid} from pubsub nodes failed", failure, jid=bare_jid))
        return d

    async def _forget_user(self, bare):
        store, owner, user = self.protocol.store, self.domain, str(bare)
        for node in await store.list_nodes(owner):
            record = await store.get_node(owner, node)
            if record is None:
                continue
            owners = [j for j, a in record["affiliations"].items() if a == "owner"]
            if owners == [user]:
                recipients = await self.protocol.notifications.recipients(owner, node, record)
                await store.delete_node(owner, node)
                for jid in recipients:
                    if jid.bare() != bare:
                        self.protocol.notifications.send_event(owner, jid, element(
                            NS_EVENT, "delete", node=node))
                continue
            if user in record["affiliations"]:
                await store.set_affiliation(owner, node, user, None)
            for jid in record["subscriptions"]:
                if JID.parse(jid).bare() == bare:
                    await store.set_subscription(owner, node, jid, None)
            for jid in record.get("pending", {}):
                if JID.parse(jid).bare() == bare and jid not in record["subscriptions"]:
                    await store.set_pending(owner, node, jid, None)

    async def _info(self, iq, node):
        query = element(NS_DISCO_INFO, "query", node=node)
        if node is None:
            query.append(element(NS_DISCO_INFO, "identity", {
                "category": "pubsub", "type": "service", "name": "Publish-Subscribe"}))
            features = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB) + FEATURES
        else:
            record = await self.protocol.store.get_node(self.domain, node)
            if record is None:
                raise StanzaError("item-not-found")
            query.append(element(NS_DISCO_INFO, "identity", category="pubsub", type="leaf"))
            features = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB)
        for feature in features:
            query.append(element(NS_DISCO_INFO, "feature", var=feature))
        return query

    async def _items(self, iq, node):
        query = element(NS_DISCO_ITEMS, "query", node=node)
        requester = JID.parse(iq.get("from"))
        if node is None:
            for name in await self.protocol.store.list_nodes(self.domain):
                record = await self.protocol.store.get_node(self.domain, name)
                if record is None:
                    continue
                try:
                    await self.protocol.check_access(self.domain, record, requester)
                except StanzaError:
                    continue
                query.append(element(NS_DISCO_ITEMS, "item", {
                    "jid": self.domain, "node": name,
                    "name": record["config"].get("title") or None}))
            return query
        record = await self.protocol.store.get_node(self.domain, node)
        if record is None:
            raise StanzaError("item-not-found")
        await self.protocol.check_access(self.domain, record, requester)
        for item_id, _, _, _ in await self.protocol.store.get_items(self.domain, node):
            query.append(element(NS_DISCO_ITEMS, "item", {"jid": self.domain, "name": item_id}))
        return query


pubsub_service = PubSubService()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
