"""
XEP-0060 nodes in storage: what the protocol does with an L{INodeStore} beyond its
single calls -- a node that must exist, every node of an owner, creation from the defaults,
publishing with the number of items the node keeps, the last item.

Failures are the store's domain exceptions (L{NodeNotFound}, L{NodeExists},
L{NodeLimitReached}); the protocol edge maps them to stanza errors.
"""
from jabberapp.extensions.pubsub.interfaces import NodeNotFound


class Nodes:
    """
    The nodes of one kind of owner (the service domain, or users' bare JIDs) in C{store}.

    New nodes take C{defaults} (option name -> value); C{max_items_limit} caps
    pubsub#max_items, and is what 'max' means; an owner has at most C{max_nodes} nodes.
    """

    def __init__(self, store, defaults, max_items_limit=1000, max_nodes=1000):
        self.store = store
        self.defaults = dict(defaults)
        self.max_items_limit = max_items_limit
        self.max_nodes = max_nodes

    async def get(self, owner, node):
        """The record of C{owner}'s C{node}; NodeNotFound when there is none."""
        record = await self.store.get_node(owner, node)
        if record is None:
            raise NodeNotFound(node)
        return record

    async def each(self, owner, node=None):
        """Async iterator of (name, record): C{node} alone when given, else every node of
        C{owner}, skipping those deleted meanwhile."""
        names = [node] if node else await self.store.list_nodes(owner)
        for name in names:
            record = await self.store.get_node(owner, name)
            if record is not None:
                yield name, record

    async def create(self, owner, node, options, creator):
        """Create C{node} with the defaults overridden by C{options}, owned by
        C{creator}'s bare JID; NodeLimitReached when C{owner} has max_nodes nodes already
        (checked in the owner's turn), else NodeExists."""
        config = dict(self.defaults, **options)
        await self.store.create_node(owner, node, config, {str(creator.bare()): "owner"},
                                     max_nodes=self.max_nodes)

    def max_items(self, config):
        """The number of items a node with C{config} keeps."""
        if not config.get("persist_items", True):
            return 1
        value = config.get("max_items", 1)
        return self.max_items_limit if value == "max" else min(value, self.max_items_limit)

    async def publish(self, owner, node, record, item_id, payload, publisher, when):
        """Store an item (C{payload}: XML text) by C{publisher} (a JID), keeping as many
        as the node's configuration says."""
        await self.store.publish(owner, node, item_id, payload, str(publisher.bare()), when,
                                 self.max_items(record["config"]))

    async def last_item(self, owner, node):
        """(id, payload XML text or None) of the node's newest item, or None."""
        items = await self.store.get_items(owner, node)
        if not items:
            return None
        item_id, payload, _, _ = items[-1]
        return item_id, payload
