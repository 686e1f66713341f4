"""
INodeStore over the host's key-value storage (store "pubsub").

Documents live under (domain, local part, key) of the owner JID -- the service's nodes
under (service domain, "@") -- so deleting an account (IStorage.delete_user) deletes its PEP
nodes too. Each node is two documents: ``node:<name>`` (configuration, affiliations,
subscriptions) and ``items:<name>`` (the items, oldest first), so reading a node's
configuration does not load its items. Every mutation is a read-modify-write in the
owner's turn (jabberapp.peruser).
"""
from twisted.internet import defer
from zope.interface import implementer

from jabberapp.extensions.pubsub.interfaces import (
    INodeStore, NodeExists, NodeLimitReached, NodeNotFound)
from jabberapp.jid import JID
from jabberapp.peruser import PerUserQueue

STORE_NAME = "pubsub"
SERVICE_USER = "@"      # the local part under which a service domain's nodes are kept


def _where(owner):
    jid = JID.parse(owner)
    return jid.domain, jid.local or SERVICE_USER


@implementer(INodeStore)
class KeyValueNodeStore:
    """INodeStore in an IKeyValueStore; see the module docstring."""

    def __init__(self, keyvalue):
        self.kv = keyvalue
        self._turns = PerUserQueue()    # each owner's mutations, one at a time

    def _locked(self, owner, fn, *args):
        return self._turns.run(owner, defer.inlineCallbacks(fn), owner, *args)

    def _get(self, owner, key):
        domain, user = _where(owner)
        return self.kv.get(domain, user, key)

    def _set(self, owner, key, value):
        domain, user = _where(owner)
        return self.kv.set(domain, user, key, value)

    @defer.inlineCallbacks
    def _record(self, owner, node):
        record = yield self._get(owner, "node:" + node)
        if record is None:
            raise NodeNotFound(node)
        return record

    @defer.inlineCallbacks
    def list_nodes(self, owner):
        """See INodeStore.list_nodes."""
        domain, user = _where(owner)
        keys = yield self.kv.keys(domain, user)
        return sorted(key[5:] for key in keys if key.startswith("node:"))

    def get_node(self, owner, node):
        """See INodeStore.get_node."""
        return self._get(owner, "node:" + node)

    def create_node(self, owner, node, config, affiliations, max_nodes=None):
        """See INodeStore.create_node."""
        def create(owner):
            # The limit first: a full owner is refused even a name it has already.
            if max_nodes is not None:
                names = yield self.list_nodes(owner)
                if len(names) >= max_nodes:
                    raise NodeLimitReached(max_nodes)
            existing = yield self._get(owner, "node:" + node)
            if existing is not None:
                raise NodeExists(node)
            yield self._set(owner, "items:" + node, [])
            yield self._set(owner, "node:" + node, {
                "config": dict(config), "affiliations": dict(affiliations),
                "subscriptions": {}})
        return self._locked(owner, create)

    def delete_node(self, owner, node):
        """See INodeStore.delete_node."""
        def delete(owner):
            yield self._record(owner, node)
            # The node document goes first: a crash in between leaves orphaned items that
            # a new node of the same name overwrites, never a node without its items doc.
            yield self._set(owner, "node:" + node, None)
            yield self._set(owner, "items:" + node, None)
        return self._locked(owner, delete)

    def _update(self, owner, node, change):
        def update(owner):
            record = yield self._record(owner, node)
            change(record)
            yield self._set(owner, "node:" + node, record)
        return self._locked(owner, update)

    def set_config(self, owner, node, config):
        """See INodeStore.set_config."""
        return self._update(owner, node, lambda r: r.__setitem__("config", dict(config)))

    def set_affiliation(self, owner, node, jid, affiliation):
        """See INodeStore.set_affiliation."""
        def change(record):
            if affiliation is None:
                record["affiliations"].pop(jid, None)
            else:
                record["affiliations"][jid] = affiliation
        return self._update(owner, node, change)

    def set_subscription(self, owner, node, jid, subid):
        """See INodeStore.set_subscription."""
        def change(record):
            record.get("pending", {}).pop(jid, None)
            if subid is None:
                record["subscriptions"].pop(jid, None)
                record.get("subscription_options", {}).pop(jid, None)
            else:
                record["subscriptions"][jid] = subid
        return self._update(owner, node, change)

    def set_pending(self, owner, node, jid, subid):
        """See INodeStore.set_pending."""
        def change(record):
            if subid is None:
                record.get("pending", {}).pop(jid, None)
                if jid not in record["subscriptions"]:
                    record.get("subscription_options", {}).pop(jid, None)
            else:
                record.setdefault("pending", {})[jid] = subid
        return self._update(owner, node, change)

    def set_subscription_options(self, owner, node, jid, options):
        """See INodeStore.set_subscription_options."""
        def change(record):
            record.setdefault("subscription_options", {})[jid] = dict(options)
        return self._update(owner, node, change)

    @defer.inlineCallbacks
    def get_items(self, owner, node):
        """See INodeStore.get_items."""
        yield self._record(owner, node)
        items = yield self._get(owner, "items:" + node)
        return [tuple(item) for item in items or []]

    def publish(self, owner, node, item_id, payload, publisher, when, max_items):
        """See INodeStore.publish."""
        def publish(owner):
            yield self._record(owner, node)
            items = yield self._get(owner, "items:" + node)
            items = [item for item in (items or []) if item[0] != item_id]
            items.append([item_id, payload, publisher, when])
            dropped = [item[0] for item in items[:max(len(items) - max_items, 0)]]
            yield self._set(owner, "items:" + node, items[len(dropped):])
            return dropped
        return self._locked(owner, publish)

    def retract(self, owner, node, item_id):
        """See INodeStore.retract."""
        def retract(owner):
            yield self._record(owner, node)
            items = (yield self._get(owner, "items:" + node)) or []
            kept = [item for item in items if item[0] != item_id]
            if len(kept) == len(items):
                return False
            yield self._set(owner, "items:" + node, kept)
            return True
        return self._locked(owner, retract)

    def purge(self, owner, node):
        """See INodeStore.purge."""
        def purge(owner):
            yield self._record(owner, node)
            yield self._set(owner, "items:" + node, [])
        return self._locked(owner, purge)
