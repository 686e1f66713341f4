"""
The XEP-0060 protocol engine shared by the pubsub service and PEP.

One L{Engine} answers the <pubsub/> and <pubsub xmlns='...#owner'/> IQs addressed to one
kind of owner -- the service domain, or users' bare JIDs -- over an INodeStore, and sends
the event notifications. What it implements (XEP-0060 1.26):

- pubsub: create (instant nodes on the service only; with <configure/>), publish (one
  <item/> with one payload; ids generated when absent, the same id replaces the item;
  publish-options preconditions, §7.1.5), retract (notify attribute or pubsub#notify_retract),
  items (all, by id, max_items, XEP-0059 RSM), subscribe and unsubscribe (§6.1.3: the jid
  must be the sender's bare or full JID), subscription options (§6.3, §6.1.6: the
  pubsub#subscribe_options form with pubsub#deliver -- false silences the subscription --
  and pubsub#show-values -- a local subscriber is notified only while an available
  session of it (the subscribed full JID, or any of a bare JID's) has a presence <show/>
  among the values, 'online' meaning none; no values: no filtering; subscribers on other
  domains are not filtered, their presence is not known here), the requester's
  subscriptions and affiliations (pending ones included).
- pubsub#owner: configure (get and set, the pubsub#node_config form), default, delete (with
  a <delete/> notification), purge (<purge/> notification), subscriptions and affiliations
  (get and set; a node always keeps an owner).
- Access models open, presence, roster (with roster groups), whitelist and authorize;
  outcasts are refused everything. Publish models publishers, subscribers and open.
- Authorize (§6.1.3.2, §8.6): a subscription by anyone but an owner, publisher or member
  is answered subscription='pending', and each owner gets a <message/> with the
  pubsub#subscribe_authorization form. The owner's submitted form (pubsub#allow true or
  false; a cancelled form leaves it pending), or an owner subscriptions set of
  'subscribed' or 'none', approves or denies it; the subscriber then gets a
  <subscription/> event with the new state (and, when approved, the last item if
  send_last_published_item says so). Until approved, items retrieval is refused with
  <not-authorized/><pending-subscription/> (<not-subscribed/> without a request) and no
  notifications are sent; the requester may withdraw with unsubscribe.
- Notifications: <message type='headline'> with <event xmlns='...#event'/>, payloads
  unless pubsub#deliver_payloads is false; the last published item on subscription when
  pubsub#send_last_published_item is on_sub or on_sub_and_presence.

A node with pubsub#persist_items false keeps only its last item (for
send_last_published_item); pubsub#max_items 'max' is the extension's max_items_limit.

Not implemented (answered <feature-not-implemented/> with <unsupported/>): subscription
options other than pubsub#deliver and pubsub#show-values (refused as
<bad-request/><invalid-options/>), the
get-pending ad-hoc command, collection nodes, more than one item per publish,
notifications of configuration changes.

Storage failures map to stanza errors in one place, L{Engine.handle}: NodeNotFound is
<item-not-found/>, NodeExists <conflict/>.
"""
import copy
import secrets

from twisted.internet import defer

from jabberapp import rsm
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub import config as cfg
from jabberapp.extensions.pubsub.config import pubsub_error, unsupported
from jabberapp.extensions.pubsub.interfaces import NodeExists, NodeNotFound
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element, parse_element, serialize
from jabberapp.xml.ns import NS_CLIENT

NS_PUBSUB = cfg.NS_PUBSUB
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
PUBSUB = f"{{{NS_PUBSUB}}}pubsub"
OWNER = f"{{{NS_OWNER}}}pubsub"
AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "outcast")
READERS = ("owner", "publisher", "member")     # affiliations past any access model
SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options"
SHOW_VALUES = ("away", "chat", "dnd", "online", "xa")
SUBSCRIBE_AUTHORIZATION = "http://jabber.org/protocol/pubsub#subscribe_authorization"
KNOWN_ACTIONS = frozenset({"options", "create", "publish", "retract", "items", "subscribe",
                           "unsubscribe", "subscriptions", "affiliations", "configure",
                           "default", "delete", "purge"})

FEATURES = tuple(f"{NS_PUBSUB}#{name}" for name in (
    "access-authorize", "access-open", "access-presence", "access-roster", "access-whitelist",
    "auto-create",
    "config-node", "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
    "filtered-notifications", "item-ids", "last-published", "manage-affiliations",
    "manage-subscriptions", "modify-affiliations", "persistent-items", "publish",
    "publish-options", "purge-nodes", "retract-items", "retrieve-affiliations",
    "retrieve-default", "retrieve-items", "retrieve-subscriptions", "subscribe",
    "subscription-options",
    "instant-nodes", "multi-subscribe", "presence-notifications", "rsm"))


def _bool_attr(value):
    return value in ("1", "true")


class Engine:
    """
    Answers pubsub IQs for owners of one kind; see the module docstring.

    C{pep} selects PEP rules: the owner is a user's bare JID and always its node's owner,
    nodes are auto-created on publish, and recipients include contacts (L{pep_recipients}
    is set by the PEP extension).
    """

    def __init__(self, host, store, defaults, pep=False, max_items_limit=1000,
                 max_payload_size=65536, max_nodes=1000):
        self.host = host
        self.store = store
        self.defaults = dict(defaults)
        self.pep = pep
        self.max_items_limit = max_items_limit
        self.max_payload_size = max_payload_size
        self.max_nodes = max_nodes
        self.pep_recipients = None     # async fn(owner, node, record) -> JIDs (PEP)

    # -- entry point ------------------------------------------------------------------

    async def handle(self, iq, owner):
        """The answer payload (or None) to the pubsub IQ C{iq} for C{owner} (a JID)."""
        requester = JID.parse(iq.get("from"))
        payload = iq[0]
        verbs = [child for child in payload if isinstance(child.tag, str)]
        if not verbs:
            raise StanzaError("bad-request", "No pubsub action")
        verb = verbs[0]
        name = verb.tag.rpartition("}")[2]
        kind = "owner" if payload.tag == OWNER else "pubsub"
        method = getattr(self, f"_{kind}_{iq.get('type')}_{name.replace('-', '_')}", None)
        expected = NS_OWNER if kind == "owner" else NS_PUBSUB
        if method is None or verb.tag != f"{{{expected}}}{name}":
            if name in KNOWN_ACTIONS and verb.tag == f"{{{expected}}}{name}":
                raise StanzaError("bad-request", f"<{name}/> is not for type {iq.get('type')}")
            raise unsupported(_feature(name))
        try:
            return await method(str(owner), requester, verb, payload)
        except NodeNotFound:
            raise StanzaError("item-not-found") from None
        except NodeExists:
            raise StanzaError("conflict", "The node already exists") from None

    # -- helpers -------------------------------------------------------------------------

    async def _node(self, owner, verb, required=True):
        node = verb.get("node")
        if not node:
            raise pubsub_error("bad-request", "nodeid-required")
        record = await self.store.get_node(owner, node)
        if record is None and required:
            raise StanzaError("item-not-found")
        return node, record

    def affiliation(self, owner, record, jid):
        """The affiliation of C{jid} (a JID) with a node of C{owner}."""
        bare = str(jid.bare())
        if self.pep and bare == owner:
            return "owner"
        return record["affiliations"].get(bare, "none")

    def _require_owner(self, owner, record, requester):
        if self.affiliation(owner, record, requester) != "owner":
            raise StanzaError("forbidden", "Only the node's owner may do that")

    async def _owned_node(self, owner, requester, verb):
        """The (name, record) of the node C{verb} names, when C{requester} owns it."""
        node, record = await self._node(owner, verb)
        self._require_owner(owner, record, requester)
        return node, record

    def max_items(self, config):
        """The number of items a node with C{config} keeps."""
        if not config.get("persist_items", True):
            return 1
        value = config.get("max_items", 1)
        return self.max_items_limit if value == "max" else min(value, self.max_items_limit)

    async def check_access(self, owner, record, requester):
        """Raise the XEP-0060 §6.1.3 error when C{requester} may not subscribe to or read
        the node."""
        affiliation = self.affiliation(owner, record, requester)
        if affiliation == "outcast":
            raise StanzaError("forbidden", "You are banned from this node")
        if affiliation in READERS:
            return
        model = record["config"].get("access_model", "open")
        if model == "open":
            return
        if model == "authorize":
            if any(JID.parse(j).bare() == requester.bare() for j in record["subscriptions"]):
                return
            if any(JID.parse(j).bare() == requester.bare()
                   for j in record.get("pending", {})):
                raise pubsub_error("not-authorized", "pending-subscription")
            raise pubsub_error("not-authorized", "not-subscribed")
        if model == "whitelist":
            raise pubsub_error("not-allowed", "closed-node")
        groups = record["config"].get("roster_groups_allowed") or []
        for owner_jid in self._owners(owner, record):
            if model == "presence" and await self._sees_presence(owner_jid, requester):
                return
            if model == "roster" and await self._in_groups(owner_jid, requester, groups):
                return
        if model == "presence":
            raise pubsub_error("not-authorized", "presence-subscription-required")
        raise pubsub_error("not-authorized", "not-in-roster-group")

    def _owners(self, owner, record):
        """The local users owning the node, whose rosters the presence/roster models use."""
        jids = [owner] if self.pep else [j for j, a in record["affiliations"].items()
                                        if a == "owner"]
        found = []
        for text in jids:
            jid = JID.parse(text)
            if jid.local is not None and jid.domain == self.host.domain:
                found.append(jid)
        return found

    def _roster(self):
        return self.host.service("roster") if self.host.has_service("roster") else None

    async def _sees_presence(self, owner_jid, requester):
        roster = self._roster()
        if roster is None:
            return requester.bare() == owner_jid
        return await roster.can_see_presence(owner_jid.local, requester)

    async def _in_groups(self, owner_jid, requester, groups):
        roster = self._roster()
        if roster is None or requester.bare() == owner_jid:
            return requester.bare() == owner_jid
        item = await roster.get_item(owner_jid.local, requester)
        return (item is not None and item.subscription in ("from", "both")
                and bool(set(item.groups) & set(groups)))

    def _parse_jid(self, verb, requester):
        text = verb.get("jid")
        if not text:
            raise pubsub_error("bad-request", "jid-required")
        try:
            jid = JID.parse(text)
        except InvalidJID:
            raise StanzaError("jid-malformed") from None
        if jid.bare() != requester.bare():
            raise pubsub_error("bad-request", "invalid-jid")
        return jid

    # -- notifications -----------------------------------------------------------------

    async def recipients(self, owner, node, record):
        """The JIDs to notify of an event on the node: its subscribers, and with PEP the
        interested resources of the owner and contacts."""
        found = {}
        options = record.get("subscription_options", {})
        for jid in record["subscriptions"]:
            chosen = options.get(jid, {})
            if chosen.get("deliver", True) and self._in_shows(
                    JID.parse(jid), chosen.get("show_values")):
                found[jid] = JID.parse(jid)
        if self.pep_recipients is not None:
            for jid in await self.pep_recipients(owner, node, record):
                found.setdefault(str(jid), jid)
        outcasts = {j for j, a in record["affiliations"].items() if a == "outcast"}
        return [jid for jid in found.values() if str(jid.bare()) not in outcasts]

    def _in_shows(self, jid, shows):
        """True when C{jid} may get notifications under pubsub#show-values C{shows}: no
        values (no filtering), a subscriber of another domain (whose presence is not
        known here), or an available session of it whose <show/> ('online' without one)
        is among them."""
        if not shows or jid.domain != self.host.domain or jid.local is None:
            return True
        if jid.resource is not None:
            session = self.host.sessions.get(jid)
            sessions = [session] if session is not None and session.available else []
        else:
            sessions = self.host.sessions.available(jid)
        for session in sessions:
            presence = session.presence
            show = None if presence is None else presence.findtext(f"{{{NS_CLIENT}}}show")
            if (show or "online") in shows:
                return True
        return False

    def send_event(self, owner, to, child):
        """Send an event notification <message type='headline'/> carrying C{child}."""
        message = element(NS_CLIENT, "message", {"from": owner, "to": str(to),
                                                 "type": "headline",
                                                 "id": f"pubsub-{secrets.token_hex(6)}"})
        event = element(NS_EVENT, "event")
        event.append(copy.deepcopy(child))
        message.append(event)
        self._send(owner, message)

    def _send(self, owner, message):
        if self.pep and JID.parse(owner).domain == self.host.domain:
            self.host.send_from_user(message)
        else:
            self.host.send(message)

    async def notify(self, owner, node, record, child):
        """Send C{child} (an element of the #event namespace) to every recipient."""
        if not record["config"].get("deliver_notifications", True):
            return
        for jid in await self.recipients(owner, node, record):
            self.send_event(owner, jid, child)

    def item_event(self, node, item_id, payload, config, publisher=None):
        """The <items><item/></items> of an event for a published item."""
        items = element(NS_EVENT, "items", node=node)
        item = element(NS_EVENT, "item", id=item_id)
        if payload is not None and config.get("deliver_payloads", True):
            item.append(parse_element(payload))
        items.append(item)
        return items

    async def send_last(self, owner, node, record, to):
        """Send the node's last item to C{to}, if it has one."""
        items = await self.store.get_items(owner, node)
        if items:
            item_id, payload, publisher, _ = items[-1]
            self.send_event(owner, to, self.item_event(node, item_id, payload,
                                                       record["config"]))

    # -- pubsub: create, publish, retract --------------------------------------------

    def _may_create(self, owner, requester):
        if self.pep:
            if str(requester.bare()) != owner:
                raise StanzaError("forbidden", "Only the account owner creates its nodes")
        elif requester.domain != self.host.domain or requester.local is None:
            raise StanzaError("forbidden", "Only local users may create nodes")

    async def _check_node_count(self, owner):
        if len(await self.store.list_nodes(owner)) >= self.max_nodes:
            raise StanzaError("policy-violation",
                              f"No more than {self.max_nodes} nodes may be created here")

    def _form_options(self, parent, form_type, error):
        form = cfg.find_form(parent)
        if form is None:
            return {}
        return cfg.read_form(form, form_type, self.max_items_limit, error)

    async def _pubsub_set_create(self, owner, requester, verb, payload):
        self._may_create(owner, requester)
        node = verb.get("node")
        instant = not node
        if instant:
            if self.pep:
                raise pubsub_error("not-acceptable", "nodeid-required")
            node = secrets.token_hex(8)
        options = self._form_options(
            payload.find(f"{{{NS_PUBSUB}}}configure"), cfg.NODE_CONFIG,
            lambda text: StanzaError("not-acceptable", text))
        await self._check_node_count(owner)
        await self.create(owner, node, options, requester)
        if instant:
            answer = element(NS_PUBSUB, "pubsub")
            answer.append(element(NS_PUBSUB, "create", node=node))
            return answer
        return None

    async def create(self, owner, node, options, requester):
        """Create C{node} with the defaults overridden by C{options}; NodeExists."""
        config = dict(self.defaults, **options)
        await self.store.create_node(owner, node, config,
                                     {str(requester.bare()): "owner"})
        self.host.log.debug("pubsub node {node} created at {owner}", node=node, owner=owner)

    async def _pubsub_set_publish(self, owner, requester, verb, payload):
        node = verb.get("node")
        if not node:
            raise pubsub_error("bad-request", "nodeid-required")
        items = list(verb.iterchildren(f"{{{NS_PUBSUB}}}item"))
        if len(items) > 1:
            raise pubsub_error("bad-request", "invalid-payload",
                               text="Publish one item at a time")
        if not items:
            raise pubsub_error("bad-request", "item-required")
        item = items[0]
        contents = [child for child in item if isinstance(child.tag, str)]
        if len(contents) != 1:
            raise pubsub_error("bad-request",
                               "payload-required" if not contents else "invalid-payload")
        body = copy.deepcopy(contents[0])
        body.tail = None
        text = serialize(body).decode("utf-8")
        if len(text.encode("utf-8")) > self.max_payload_size:
            raise pubsub_error("not-acceptable", "payload-too-big")

        def precondition(text=None):
            return pubsub_error("conflict", "precondition-not-met", text=text)

        options = self._form_options(payload.find(f"{{{NS_PUBSUB}}}publish-options"),
                                     cfg.PUBLISH_OPTIONS, precondition)
        record = await self.store.get_node(owner, node)
        if record is None:
            if not self.pep:
                raise StanzaError("item-not-found")
            self._may_create(owner, requester)
            await self._check_node_count(owner)
            try:
                await self.create(owner, node, options, requester)
            except NodeExists:
                pass    # created meanwhile: the preconditions are checked below
            record = await self.store.get_node(owner, node)
        for name, value in options.items():
            if record["config"].get(name) != value:
                raise precondition(f"pubsub#{name} differs from the node's configuration")
        affiliation = self.affiliation(owner, record, requester)
        model = record["config"].get("publish_model", "publishers")
        allowed = affiliation in ("owner", "publisher", "publish-only") or (
            affiliation != "outcast" and (
                model == "open" or (model == "subscribers" and any(
                    JID.parse(j).bare() == requester.bare()
                    for j in record["subscriptions"]))))
        if not allowed:
            raise StanzaError("forbidden", "You may not publish to this node")
        item_id = item.get("id") or secrets.token_hex(10)
        await self.store.publish(owner, node, item_id, text, str(requester.bare()),
                                 self.host.clock.seconds(), self.max_items(record["config"]))
        await self.notify(owner, node, record,
                          self.item_event(node, item_id, text, record["config"]))
        answer = element(NS_PUBSUB, "pubsub")
        published = element(NS_PUBSUB, "publish", node=node)
        published.append(element(NS_PUBSUB, "item", id=item_id))
        answer.append(published)
        return answer

    async def _pubsub_set_retract(self, owner, requester, verb, payload):
        node, record = await self._node(owner, verb)
        ids = [i.get("id") for i in verb.iterchildren(f"{{{NS_PUBSUB}}}item")]
        if len(ids) != 1 or not ids[0]:
            raise pubsub_error("bad-request", "item-required")
        if self.affiliation(owner, record, requester) not in ("owner", "publisher"):
            raise StanzaError("forbidden", "You may not retract items of this node")
        if not await self.store.retract(owner, node, ids[0]):
            raise StanzaError("item-not-found")
        if _bool_attr(verb.get("notify")) or record["config"].get("notify_retract", True):
            items = element(NS_EVENT, "items", node=node)
            items.append(element(NS_EVENT, "retract", id=ids[0]))
            await self.notify(owner, node, record, items)
        return None

    # -- pubsub: items, subscriptions ------------------------------------------------

    async def _pubsub_get_items(self, owner, requester, verb, payload):
        node, record = await self._node(owner, verb)
        await self.check_access(owner, record, requester)
        stored = await self.store.get_items(owner, node)
        wanted = [i.get("id") for i in verb.iterchildren(f"{{{NS_PUBSUB}}}item")]
        request = rsm.parse(payload)
        answer = element(NS_PUBSUB, "pubsub")
        items = element(NS_PUBSUB, "items", node=node)
        answer.append(items)
        result_set = None
        if wanted:
            by_id = {item[0]: item for item in stored}
            stored = [by_id[i] for i in wanted if i in by_id]
        elif request is not None:
            stored, result_set = self._page(stored, request)
        elif verb.get("max_items"):
            count = verb.get("max_items")
            if not count.isdigit():
                raise StanzaError("bad-request", "max_items must be a number")
            stored = stored[max(len(stored) - int(count), 0):]
        for item_id, text, publisher, _ in stored:
            item = element(NS_PUBSUB, "item", id=item_id)
            if text is not None:
                item.append(parse_element(text))
            items.append(item)
        if result_set is not None:
            answer.append(result_set)
        return answer

    def _page(self, stored, request):
        ids = [item[0] for item in stored]
        for uid in (request.after, request.before):
            if uid and uid not in ids:
                raise StanzaError("item-not-found", "No item with that RSM UID")
        size = request.page_size(self.max_items_limit, self.max_items_limit)
        if request.index is not None:
            start = request.index
            page = stored[start:start + size]
        elif request.before is not None:
            end = ids.index(request.before) if request.before else len(stored)
            start = max(end - size, 0)
            page = stored[start:end]
        else:
            start = ids.index(request.after) + 1 if request.after else 0
            page = stored[start:start + size]
        pairs = [(item[0], item) for item in page]
        return page, rsm.result_set(pairs, count=len(stored), first_index=start)

    def needs_approval(self, owner, record, jid):
        """True when a subscription of C{jid} to the node awaits the owner's approval
        (access model authorize, §6.1.3.2): it is not subscribed and no reader."""
        return (record["config"].get("access_model") == "authorize"
                and self.affiliation(owner, record, jid) not in READERS + ("outcast",)
                and str(jid) not in record["subscriptions"])

    async def _pubsub_set_subscribe(self, owner, requester, verb, payload):
        jid = self._parse_jid(verb, requester)
        node, record = await self._node(owner, verb)
        options = None
        options_element = payload.find(f"{{{NS_PUBSUB}}}options")
        if options_element is not None and cfg.find_form(options_element) is not None:
            options = self._subscribe_options(options_element)
        if self.needs_approval(owner, record, jid):
            return await self._request_approval(owner, node, record, jid, options)
        await self.check_access(owner, record, requester)
        subid = record["subscriptions"].get(str(jid)) or secrets.token_hex(8)
        await self.store.set_subscription(owner, node, str(jid), subid)
        if options is not None:
            await self.store.set_subscription_options(owner, node, str(jid), options)
        if record["config"].get("send_last_published_item") in ("on_sub",
                                                                "on_sub_and_presence"):
            # After the IQ result has gone out.
            self.host.call_later(0, self._send_last_later, owner, node, record, jid)
        answer = element(NS_PUBSUB, "pubsub")
        answer.append(element(NS_PUBSUB, "subscription", node=node, jid=str(jid),
                              subid=subid, subscription="subscribed"))
        return answer

    async def _request_approval(self, owner, node, record, jid, options):
        """Record a pending subscription and ask the node's owners to approve it (§8.6)."""
        subid = record.get("pending", {}).get(str(jid)) or secrets.token_hex(8)
        await self.store.set_pending(owner, node, str(jid), subid)
        if options is not None:
            await self.store.set_subscription_options(owner, node, str(jid), options)
        # After the IQ result has gone out.
        self.host.call_later(0, self.send_authorization_requests, owner, node, record, jid,
                             subid)
        answer = element(NS_PUBSUB, "pubsub")
        answer.append(element(NS_PUBSUB, "subscription", node=node, jid=str(jid),
                              subid=subid, subscription="pending"))
        return answer

    def send_authorization_requests(self, owner, node, record, jid, subid):
        """Send each owner of the node the subscription authorization form (§8.6)."""
        owners = [owner] if self.pep else sorted(
            j for j, a in record["affiliations"].items() if a == "owner")
        for owner_jid in owners:
            message = element(NS_CLIENT, "message", {
                "from": owner, "to": owner_jid, "id": f"pubsub-{secrets.token_hex(6)}"})
            message.append(authorization_form(node, jid, subid))
            self._send(owner, message)

    async def authorize(self, owner, sender, x):
        """
        Apply a submitted subscription authorization form C{x} (§8.6) that C{sender}
        sent to C{owner}; a form of type 'cancel' leaves the request pending. Raises
        StanzaError when the form is malformed, the sender is no owner of the node or
        there is no such pending request.
        """
        if x.get("type") == "cancel":
            return
        values = {}
        for field in x.iterchildren(f"{{{cfg.NS_DATA}}}field"):
            values[field.get("var")] = field.findtext(f"{{{cfg.NS_DATA}}}value") or ""
        allow = values.get("pubsub#allow")
        if (x.get("type") != "submit" or allow not in ("1", "true", "0", "false")
                or not values.get("pubsub#node") or not values.get("pubsub#subscriber_jid")):
            raise StanzaError("bad-request", "Malformed subscription authorization form")
        try:
            jid = JID.parse(values["pubsub#subscriber_jid"])
        except InvalidJID:
            raise StanzaError("jid-malformed") from None
        node = values["pubsub#node"]
        record = await self.store.get_node(owner, node)
        if record is None:
            raise StanzaError("item-not-found")
        self._require_owner(owner, record, sender)
        subid = record.get("pending", {}).get(str(jid))
        if subid is None or values.get("pubsub#subid", subid) != subid:
            raise pubsub_error("unexpected-request", "not-subscribed",
                               text="No such pending subscription")
        await self.resolve(owner, node, record, jid, allow in ("1", "true"))

    async def resolve(self, owner, node, record, jid, allow):
        """Approve or deny the pending subscription of C{jid}, and tell the subscriber
        (§8.6: a <subscription/> event with state subscribed or none)."""
        subid = record["pending"][str(jid)]
        if allow:
            await self.store.set_subscription(owner, node, str(jid), subid)
        else:
            await self.store.set_pending(owner, node, str(jid), None)
        self.send_event(owner, jid, element(
            NS_EVENT, "subscription", node=node, jid=str(jid),
            subscription="subscribed" if allow else "none",
            subid=subid if allow else None))
        if allow and record["config"].get("send_last_published_item") in (
                "on_sub", "on_sub_and_presence"):
            await self.send_last(owner, node, record, jid)

    def _send_last_later(self, owner, node, record, jid):
        d = defer.ensureDeferred(self.send_last(owner, node, record, jid))
        d.addErrback(lambda failure: self.host.log.failure(
            "sending the last item of {node} failed", failure, node=node))

    async def _pubsub_set_unsubscribe(self, owner, requester, verb, payload):
        jid = self._parse_jid(verb, requester)
        node, record = await self._node(owner, verb)
        subid = record["subscriptions"].get(str(jid))
        pending = record.get("pending", {}).get(str(jid))
        if subid is None and pending is not None:
            if verb.get("subid") and verb.get("subid") != pending:
                raise pubsub_error("not-acceptable", "invalid-subid")
            await self.store.set_pending(owner, node, str(jid), None)
            return None
        if subid is None:
            raise pubsub_error("unexpected-request", "not-subscribed")
        if verb.get("subid") and verb.get("subid") != subid:
            raise pubsub_error("not-acceptable", "invalid-subid")
        await self.store.set_subscription(owner, node, str(jid), None)
        return None

    def _subscribe_options(self, parent):
        """The options a pubsub#subscribe_options form in C{parent} sets (§6.3.5)."""
        form = cfg.find_form(parent)
        if form is None:
            raise pubsub_error("bad-request", "invalid-options", text="No options form")
        options = {}
        for field in form.iterchildren(f"{{{cfg.NS_DATA}}}field"):
            var = field.get("var")
            value = field.findtext(f"{{{cfg.NS_DATA}}}value") or ""
            if var == "FORM_TYPE":
                if value != SUBSCRIBE_OPTIONS:
                    raise pubsub_error("bad-request", "invalid-options")
            elif var == "pubsub#deliver" and value in ("1", "true", "0", "false"):
                options["deliver"] = value in ("1", "true")
            elif var == "pubsub#show-values":
                shows = [v.text or "" for v in field.iterchildren(f"{{{cfg.NS_DATA}}}value")]
                if not set(shows) <= set(SHOW_VALUES):
                    raise pubsub_error("bad-request", "invalid-options",
                                       text="Unknown presence state in pubsub#show-values")
                options["show_values"] = sorted(set(shows))
            else:
                raise pubsub_error("bad-request", "invalid-options",
                                   text=f"Unsupported option {var!r}")
        return options

    async def _subscription_of(self, owner, requester, verb):
        """(node, record, jid) of the existing subscription an <options/> names."""
        text = verb.get("jid")
        if not text:
            raise pubsub_error("bad-request", "jid-required")
        try:
            jid = JID.parse(text)
        except InvalidJID:
            raise StanzaError("jid-malformed") from None
        node, record = await self._node(owner, verb)
        if jid.bare() != requester.bare() and self.affiliation(
                owner, record, requester) != "owner":
            raise StanzaError("forbidden", "Not your subscription")     # §6.3.4.1
        subid = record["subscriptions"].get(str(jid))
        if subid is None:
            raise pubsub_error("unexpected-request", "not-subscribed")
        if verb.get("subid") and verb.get("subid") != subid:
            raise pubsub_error("not-acceptable", "invalid-subid")
        return node, record, jid

    async def _pubsub_get_options(self, owner, requester, verb, payload):
        node, record, jid = await self._subscription_of(owner, requester, verb)
        deliver = record.get("subscription_options", {}).get(str(jid), {}).get("deliver", True)
        x = element(cfg.NS_DATA, "x", type="form")
        hidden = element(cfg.NS_DATA, "field", var="FORM_TYPE", type="hidden")
        hidden.append(element(cfg.NS_DATA, "value", text=SUBSCRIBE_OPTIONS))
        x.append(hidden)
        field = element(cfg.NS_DATA, "field", var="pubsub#deliver", type="boolean",
                        label="Enable delivery?")
        field.append(element(cfg.NS_DATA, "value", text="1" if deliver else "0"))
        x.append(field)
        shows = record.get("subscription_options", {}).get(str(jid), {}).get("show_values")
        field = element(cfg.NS_DATA, "field", var="pubsub#show-values", type="list-multi",
                        label="Receive notifications only when your presence is one of "
                              "these (none: always)")
        for show in SHOW_VALUES:
            option = element(cfg.NS_DATA, "option")
            option.append(element(cfg.NS_DATA, "value", text=show))
            field.append(option)
        for show in shows or ():
            field.append(element(cfg.NS_DATA, "value", text=show))
        x.append(field)
        answer = element(NS_PUBSUB, "pubsub")
        options = element(NS_PUBSUB, "options", node=node, jid=str(jid),
                          subid=record["subscriptions"][str(jid)])
        options.append(x)
        answer.append(options)
        return answer

    async def _pubsub_set_options(self, owner, requester, verb, payload):
        node, record, jid = await self._subscription_of(owner, requester, verb)
        options = self._subscribe_options(verb)
        await self.store.set_subscription_options(owner, node, str(jid), options)
        return None

    async def _each_node(self, owner, verb):
        names = [verb.get("node")] if verb.get("node") else await self.store.list_nodes(owner)
        for name in names:
            record = await self.store.get_node(owner, name)
            if record is not None:
                yield name, record

    async def _pubsub_get_subscriptions(self, owner, requester, verb, payload):
        answer = element(NS_PUBSUB, "pubsub")
        listing = element(NS_PUBSUB, "subscriptions")
        answer.append(listing)
        async for name, record in self._each_node(owner, verb):
            for jid, subid, state in _subscriptions(record):
                if JID.parse(jid).bare() == requester.bare():
                    listing.append(element(NS_PUBSUB, "subscription", node=name, jid=jid,
                                           subid=subid, subscription=state))
        return answer

    async def _pubsub_get_affiliations(self, owner, requester, verb, payload):
        answer = element(NS_PUBSUB, "pubsub")
        listing = element(NS_PUBSUB, "affiliations")
        answer.append(listing)
        async for name, record in self._each_node(owner, verb):
            affiliation = self.affiliation(owner, record, requester)
            if affiliation != "none":
                listing.append(element(NS_PUBSUB, "affiliation", node=name,
                                       affiliation=affiliation))
        return answer

    # -- pubsub#owner ------------------------------------------------------------------

    async def _owner_get_configure(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        answer = element(NS_OWNER, "pubsub")
        configure = element(NS_OWNER, "configure", node=node)
        configure.append(cfg.config_form(record["config"]))
        answer.append(configure)
        return answer

    async def _owner_set_configure(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        form = cfg.find_form(verb)
        if form is None:
            raise StanzaError("bad-request", "A configuration form is required")
        options = cfg.read_form(form, cfg.NODE_CONFIG, self.max_items_limit,
                                lambda text: StanzaError("not-acceptable", text))
        config = dict(record["config"], **options)
        await self.store.set_config(owner, node, config)
        return None

    async def _owner_get_default(self, owner, requester, verb, payload):
        answer = element(NS_OWNER, "pubsub")
        default = element(NS_OWNER, "default")
        default.append(cfg.config_form(self.defaults))
        answer.append(default)
        return answer

    async def _owner_set_delete(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        recipients = await self.recipients(owner, node, record)
        await self.store.delete_node(owner, node)
        if record["config"].get("notify_delete", True):
            for jid in recipients:
                self.send_event(owner, jid, element(NS_EVENT, "delete", node=node))
        return None

    async def _owner_set_purge(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        await self.store.purge(owner, node)
        await self.notify(owner, node, record, element(NS_EVENT, "purge", node=node))
        return None

    async def _owner_get_subscriptions(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        answer = element(NS_OWNER, "pubsub")
        listing = element(NS_OWNER, "subscriptions", node=node)
        for jid, subid, state in _subscriptions(record):
            listing.append(element(NS_OWNER, "subscription", jid=jid, subid=subid,
                                   subscription=state))
        answer.append(listing)
        return answer

    async def _owner_set_subscriptions(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        changes = []
        for entry in verb.iterchildren(f"{{{NS_OWNER}}}subscription"):
            try:
                jid = JID.parse(entry.get("jid") or "")
            except InvalidJID:
                raise StanzaError("jid-malformed") from None
            state = entry.get("subscription")
            if state not in ("subscribed", "none"):
                raise StanzaError("bad-request", f"Unsupported subscription {state!r}")
            changes.append((jid, state))
        for jid, state in changes:
            if str(jid) in record.get("pending", {}) and str(jid) not in record[
                    "subscriptions"]:
                # Approving or denying a pending request (§8.6 via §8.8.2).
                await self.resolve(owner, node, record, jid, state == "subscribed")
                continue
            subid = None
            if state == "subscribed":
                subid = record["subscriptions"].get(str(jid)) or secrets.token_hex(8)
            await self.store.set_subscription(owner, node, str(jid), subid)
        return None

    async def _owner_get_affiliations(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        answer = element(NS_OWNER, "pubsub")
        listing = element(NS_OWNER, "affiliations", node=node)
        affiliations = dict(record["affiliations"])
        if self.pep:
            affiliations[owner] = "owner"
        for jid, affiliation in sorted(affiliations.items()):
            listing.append(element(NS_OWNER, "affiliation", jid=jid,
                                   affiliation=affiliation))
        answer.append(listing)
        return answer

    async def _owner_set_affiliations(self, owner, requester, verb, payload):
        node, record = await self._owned_node(owner, requester, verb)
        affiliations = dict(record["affiliations"])
        changes = []
        for entry in verb.iterchildren(f"{{{NS_OWNER}}}affiliation"):
            try:
                jid = str(JID.parse(entry.get("jid") or "").bare())
            except InvalidJID:
                raise StanzaError("jid-malformed") from None
            affiliation = entry.get("affiliation")
            if affiliation not in AFFILIATIONS + ("none",):
                raise StanzaError("bad-request", f"Unknown affiliation {affiliation!r}")
            if self.pep and jid == owner:
                raise StanzaError("not-acceptable", "The account owner stays the owner")
            changes.append((jid, None if affiliation == "none" else affiliation))
            affiliations.pop(jid, None)
            if affiliation != "none":
                affiliations[jid] = affiliation
        if not self.pep and "owner" not in affiliations.values():
            raise StanzaError("not-acceptable", "A node must keep an owner")
        for jid, affiliation in changes:
            await self.store.set_affiliation(owner, node, jid, affiliation)
            if affiliation == "outcast":
                for subscribed in list(record["subscriptions"]):
                    if str(JID.parse(subscribed).bare()) == jid:
                        await self.store.set_subscription(owner, node, subscribed, None)
        return None


def _subscriptions(record):
    """(jid, subid, state) of the node's subscriptions and pending requests, by JID."""
    found = [(jid, subid, "subscribed") for jid, subid in record["subscriptions"].items()]
    found.extend((jid, subid, "pending") for jid, subid in record.get("pending", {}).items()
                 if jid not in record["subscriptions"])
    return sorted(found)


def authorization_form(node, jid, subid):
    """The subscription authorization form of XEP-0060 §8.6 for C{jid}'s request."""
    x = element(cfg.NS_DATA, "x", type="form")
    x.append(element(cfg.NS_DATA, "title", text="PubSub subscriber request"))
    x.append(element(cfg.NS_DATA, "instructions",
                     text="To approve this entity's subscription request, set "
                          "pubsub#allow to true; to deny it, set it to false."))
    for var, type_, label, value in (
            ("FORM_TYPE", "hidden", None, SUBSCRIBE_AUTHORIZATION),
            ("pubsub#subid", "hidden", None, subid),
            ("pubsub#node", "text-single", "Node ID", node),
            ("pubsub#subscriber_jid", "jid-single", "Subscriber Address", str(jid)),
            ("pubsub#allow", "boolean",
             "Allow this JID to subscribe to this pubsub node?", "false")):
        field = element(cfg.NS_DATA, "field", var=var, type=type_, label=label)
        field.append(element(cfg.NS_DATA, "value", text=value))
        x.append(field)
    return x


def find_authorization(message):
    """The subscription authorization form in C{message}, or None."""
    for x in message.iterchildren(f"{{{cfg.NS_DATA}}}x"):
        for field in x.iterchildren(f"{{{cfg.NS_DATA}}}field"):
            if (field.get("var") == "FORM_TYPE" and field.findtext(
                    f"{{{cfg.NS_DATA}}}value") == SUBSCRIBE_AUTHORIZATION):
                return x
    return None


def _feature(name):
    """The pubsub feature an unsupported action names (XEP-0060 §10)."""
    return {"options": "subscription-options"}.get(name, name)
