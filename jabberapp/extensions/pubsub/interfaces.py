"""
The pubsub extension's own storage contract (STYLE.md §2): nodes with their configuration,
affiliations, subscriptions and items, per owner.

An owner is a JID string: the service's domain (``pubsub.example.org``) for XEP-0060
service nodes, a user's bare JID for that user's PEP nodes. Every method returns a
Deferred. Mutations of one owner's nodes are applied one at a time, so concurrent
requests cannot lose updates. Failures are the domain exceptions below, never stanza
errors: the protocol layer maps them at its edge (protocol.ERRORS).
"""
from zope.interface import Interface


class NodeExists(Exception):
    """create_node(): the owner already has a node of that name."""


class NodeNotFound(Exception):
    """The owner has no node of that name."""


class NodeLimitReached(Exception):
    """create_node(): the owner already has C{limit} nodes, the most it may have."""

    def __init__(self, limit):
        super().__init__(limit)
        self.limit = limit


class INodeStore(Interface):
    """Nodes of pubsub owners; see the module docstring."""

    def list_nodes(owner):
        """Deferred: sorted list of the owner's node names."""

    def get_node(owner, node):
        """
        Deferred: the node's record, a dict with 'config' (option name -> value),
        'affiliations' (bare JID str -> affiliation) and 'subscriptions' (JID str ->
        subscription id) and possibly 'subscription_options' (JID str -> dict) and
        'pending' (JID str -> subscription id of a request awaiting the owner's
        approval, access model authorize), or None when there is no such node. A copy:
        changing it changes nothing stored.
        """

    def create_node(owner, node, config, affiliations, max_nodes=None):
        """Deferred: create the node with C{config} and C{affiliations}, no items or
        subscriptions; fails with NodeLimitReached when C{max_nodes} is given and the
        owner has that many nodes already (checked with the creation, so creations at
        the same time cannot pass it together), else with NodeExists."""

    def delete_node(owner, node):
        """Deferred: remove the node with its items and subscriptions; NodeNotFound."""

    def set_config(owner, node, config):
        """Deferred: replace the node's configuration; NodeNotFound."""

    def set_affiliation(owner, node, jid, affiliation):
        """Deferred: set the affiliation of C{jid} (a bare JID str); None removes it."""

    def set_subscription(owner, node, jid, subid):
        """Deferred: subscribe C{jid} (a JID str) with C{subid}; None unsubscribes (and
        forgets the subscription's options). Either way a pending request of C{jid}
        is resolved (removed)."""

    def set_pending(owner, node, jid, subid):
        """Deferred: record a pending subscription request of C{jid} (a JID str) with
        C{subid}; None removes the request and the options given with it."""

    def set_subscription_options(owner, node, jid, options):
        """Deferred: store the subscription options of C{jid} (a dict, JSON values);
        they are in the node's record under 'subscription_options'."""

    def get_items(owner, node):
        """Deferred: the node's items, oldest first, as (id, payload XML str or None,
        publisher JID str, when) tuples; NodeNotFound."""

    def publish(owner, node, item_id, payload, publisher, when, max_items):
        """
        Deferred: store the item, replacing (and moving to newest) one of the same id,
        then drop the oldest beyond C{max_items}; fires with the list of dropped ids
        (other than the replaced one). NodeNotFound.
        """

    def retract(owner, node, item_id):
        """Deferred: True when the item was there and is deleted; NodeNotFound."""

    def purge(owner, node):
        """Deferred: delete every item of the node; NodeNotFound."""
