"""
The XEP-0060 protocol edge shared by the pubsub service and PEP.

One L{PubSubProtocol} answers the <pubsub/> and <pubsub xmlns='...#owner'/> IQs addressed
to one kind of owner -- the service domain, or users' bare JIDs -- over an INodeStore, and
takes owners' subscription authorization forms. A request goes:

  IQ ─▶ L{PubSubProtocol.handle}: HANDLERS[(type, namespace, verb)] ─▶ handler
          publishing.py     create, publish, retract, items
          subscriptions.py  subscribe, unsubscribe, options, the requester's
                            subscriptions and affiliations, approval (authorize)
          owner.py          configure, default, delete, purge, subscriptions, affiliations
        each handler parses its request (request.py), asks the rules (rules.py: who may do
        what, no stanzas), reads and writes through the storage layer (nodes.py over the
        INodeStore of interfaces.py, store.py), sends events (notifications.py) and builds
        its answer;
     ◀─ the answer payload, or the StanzaError that ERRORS maps a rule's refusal or a
        storage failure to (the one place they become stanza errors).

What it implements (XEP-0060 1.26):

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
- Authorize (§6.1.3.2, §8.6): pending subscriptions approved or denied by the owner's form
  or an owner subscriptions set (subscriptions.py). Until approved, items retrieval is
  refused with <not-authorized/><pending-subscription/> (<not-subscribed/> without a
  request) and no notifications are sent.
- Notifications: <message type='headline'> with <event xmlns='...#event'/>, payloads
  unless pubsub#deliver_payloads is false; the last published item on subscription when
  pubsub#send_last_published_item is on_sub or on_sub_and_presence.

A node with pubsub#persist_items false keeps only its last item (for
send_last_published_item); pubsub#max_items 'max' is the extension's max_items_limit.

Not implemented (answered <feature-not-implemented/> with <unsupported/>): subscription
options other than pubsub#deliver and pubsub#show-values (refused as
<bad-request/><invalid-options/>), the get-pending ad-hoc command, collection nodes, more
than one item per publish, notifications of configuration changes.
"""
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub import owner, publishing, rules, subscriptions
from jabberapp.extensions.pubsub.config import pubsub_error, unsupported
from jabberapp.extensions.pubsub.interfaces import NodeExists, NodeLimitReached, NodeNotFound
from jabberapp.extensions.pubsub.nodes import Nodes
from jabberapp.extensions.pubsub.notifications import Notifications
from jabberapp.extensions.pubsub.ns import NS_OWNER, NS_PUBSUB, OWNER
from jabberapp.extensions.pubsub.request import Request
from jabberapp.jid import JID

# (IQ type, namespace of the <pubsub/> payload and its verb, verb name) -> handler.
HANDLERS = {
    ("set", NS_PUBSUB, "create"): publishing.create,
    ("set", NS_PUBSUB, "publish"): publishing.publish,
    ("set", NS_PUBSUB, "retract"): publishing.retract,
    ("get", NS_PUBSUB, "items"): publishing.items,
    ("set", NS_PUBSUB, "subscribe"): subscriptions.subscribe,
    ("set", NS_PUBSUB, "unsubscribe"): subscriptions.unsubscribe,
    ("get", NS_PUBSUB, "options"): subscriptions.get_options,
    ("set", NS_PUBSUB, "options"): subscriptions.set_options,
    ("get", NS_PUBSUB, "subscriptions"): subscriptions.own_subscriptions,
    ("get", NS_PUBSUB, "affiliations"): subscriptions.own_affiliations,
    ("get", NS_OWNER, "configure"): owner.get_configure,
    ("set", NS_OWNER, "configure"): owner.set_configure,
    ("get", NS_OWNER, "default"): owner.get_default,
    ("set", NS_OWNER, "delete"): owner.delete,
    ("set", NS_OWNER, "purge"): owner.purge,
    ("get", NS_OWNER, "subscriptions"): owner.get_subscriptions,
    ("set", NS_OWNER, "subscriptions"): owner.set_subscriptions,
    ("get", NS_OWNER, "affiliations"): owner.get_affiliations,
    ("set", NS_OWNER, "affiliations"): owner.set_affiliations,
}
# A known verb of the wrong IQ type is a bad request; an unknown one is not implemented.
KNOWN_VERBS = frozenset(name for _, _, name in HANDLERS)

# Domain errors of the rules and the store -> (condition, pubsub#errors condition, text);
# a refusal's own text, when it has one, is the error's text.
ERRORS = {
    NodeNotFound: ("item-not-found", None, None),
    NodeExists: ("conflict", None, "The node already exists"),
    NodeLimitReached: ("policy-violation", None,
                       "No more than {limit} nodes may be created here"),
    rules.Forbidden: ("forbidden", None, None),
    rules.PendingSubscription: ("not-authorized", "pending-subscription", None),
    rules.NotSubscribed: ("not-authorized", "not-subscribed", None),
    rules.ClosedNode: ("not-allowed", "closed-node", None),
    rules.PresenceSubscriptionRequired: (
        "not-authorized", "presence-subscription-required", None),
    rules.NotInRosterGroup: ("not-authorized", "not-in-roster-group", None),
    rules.NotAcceptable: ("not-acceptable", None, None),
}
DOMAIN_ERRORS = tuple(ERRORS)


def stanza_error(error):
    """The StanzaError for a domain error of the rules or the store (ERRORS)."""
    condition, app, text = ERRORS[type(error)]
    if isinstance(error, rules.Refused) and error.text:
        text = error.text
    elif isinstance(error, NodeLimitReached):
        text = text.format(limit=error.limit)
    return pubsub_error(condition, app, text=text)


def _feature(name):
    """The pubsub feature an unsupported verb names (XEP-0060 §10)."""
    return {"options": "subscription-options"}.get(name, name)


class PubSubProtocol:
    """
    Answers pubsub IQs for owners of one kind; see the module docstring.

    C{pep} selects PEP rules: the owner is a user's bare JID and always its node's owner,
    nodes are auto-created on publish, and recipients include contacts
    (C{notifications.pep_recipients} is set by the PEP extension). The handlers reach
    the layers through C{host}, C{store}, C{nodes}, C{rules}, C{notifications}, C{pep}
    and C{max_payload_size}.
    """

    def __init__(self, host, store, defaults, pep=False, max_items_limit=1000,
                 max_payload_size=65536, max_nodes=1000):
        self.host = host
        self.store = store
        self.pep = pep
        self.max_payload_size = max_payload_size
        self.nodes = Nodes(store, defaults, max_items_limit, max_nodes)
        self.rules = rules.Rules(host, pep)
        self.notifications = Notifications(host, self.nodes, self.rules, pep)

    async def handle(self, iq, owner):
        """The answer payload (or None) to the pubsub IQ C{iq} for C{owner} (a JID)."""
        requester = JID.parse(iq.get("from"))
        payload = iq[0]
        verbs = [child for child in payload if isinstance(child.tag, str)]
        if not verbs:
            raise StanzaError("bad-request", "No pubsub action")
        verb = verbs[0]
        name = verb.tag.rpartition("}")[2]
        namespace = NS_OWNER if payload.tag == OWNER else NS_PUBSUB
        in_namespace = verb.tag == f"{{{namespace}}}{name}"
        handler = HANDLERS.get((iq.get("type"), namespace, name)) if in_namespace else None
        if handler is None:
            if name in KNOWN_VERBS and in_namespace:
                raise StanzaError("bad-request", f"<{name}/> is not for type {iq.get('type')}")
            raise unsupported(_feature(name))
        try:
            return await handler(self, Request(str(owner), requester, verb, payload))
        except DOMAIN_ERRORS as error:
            raise stanza_error(error) from None

    async def authorize(self, owner, sender, x):
        """Apply the subscription authorization form C{x} that C{sender} sent to C{owner}
        (L{subscriptions.authorize}); StanzaError when it is refused."""
        try:
            await subscriptions.authorize(self, str(owner), sender, x)
        except DOMAIN_ERRORS as error:
            raise stanza_error(error) from None

    async def check_access(self, owner, record, requester):
        """Raise the XEP-0060 §6.1.3 StanzaError when C{requester} may not subscribe to or
        read the node (for disco items and PEP, which answer outside L{handle})."""
        try:
            await self.rules.check_access(owner, record, requester)
        except DOMAIN_ERRORS as error:
            raise stanza_error(error) from None
