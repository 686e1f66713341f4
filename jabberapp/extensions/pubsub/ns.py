"""
XEP-0060 namespaces, the payload elements the pubsub service and PEP own, and the features
they advertise (§10). A leaf module: every layer of the package may import it.
"""
from jabberapp.extensions.pubsub.config import NS_PUBSUB

NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
PUBSUB = f"{{{NS_PUBSUB}}}pubsub"
OWNER = f"{{{NS_OWNER}}}pubsub"

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

__all__ = ["FEATURES", "NS_EVENT", "NS_OWNER", "NS_PUBSUB", "OWNER", "PUBSUB"]
