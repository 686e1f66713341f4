"""
XEP-0060 §7.1.2 event notifications, and the other messages pubsub sends by itself.

Events are <message type='headline'> with an <event xmlns='...#event'/>: the published item
(with its payload unless pubsub#deliver_payloads is false), a retraction, <purge/>,
<delete/>, or a subscriber's new <subscription/> state. They go to the node's subscribers
that asked for delivery (pubsub#deliver) and whose presence passes their
pubsub#show-values, to the interested PEP recipients (L{Notifications.pep_recipients}),
never to outcasts; nothing at all when pubsub#deliver_notifications is false. A PEP
owner's messages leave through C{send_from_user}, so the owner's blocking applies.
"""
import copy
import secrets

from twisted.internet import defer

from jabberapp.extensions.pubsub.ns import NS_EVENT
from jabberapp.extensions.pubsub.rules import outcasts
from jabberapp.extensions.pubsub.subscription_forms import authorization_form
from jabberapp.jid import JID
from jabberapp.xml import element, parse_element
from jabberapp.xml.ns import NS_CLIENT


class Notifications:
    """The messages of one host's pubsub service or PEP (C{pep}); see the module
    docstring."""

    def __init__(self, host, nodes, rules, pep=False):
        self.host = host
        self.nodes = nodes
        self.rules = rules
        self.pep = pep
        self.pep_recipients = None     # async fn(owner, node, record) -> JIDs (PEP)

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
        banned = outcasts(record)
        return [jid for jid in found.values() if str(jid.bare()) not in banned]

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

    @staticmethod
    def item_event(node, item_id, payload, config):
        """The <items><item/></items> of an event for a published item."""
        items = element(NS_EVENT, "items", node=node)
        item = element(NS_EVENT, "item", id=item_id)
        if payload is not None and config.get("deliver_payloads", True):
            item.append(parse_element(payload))
        items.append(item)
        return items

    async def send_last(self, owner, node, record, to):
        """Send the node's last item to C{to}, if it has one."""
        last = await self.nodes.last_item(owner, node)
        if last is not None:
            item_id, payload = last
            self.send_event(owner, to, self.item_event(node, item_id, payload,
                                                       record["config"]))

    def send_last_later(self, owner, node, record, to):
        """L{send_last}, its failure logged: for a delayed call after an IQ result."""
        d = defer.ensureDeferred(self.send_last(owner, node, record, to))
        d.addErrback(lambda failure: self.host.log.failure(
            "sending the last item of {node} failed", failure, node=node))

    def send_authorization_requests(self, owner, node, record, jid, subid):
        """Send each owner of the node the subscription authorization form (§8.6)."""
        for owner_jid in self.rules.approvers(owner, record):
            message = element(NS_CLIENT, "message", {
                "from": owner, "to": owner_jid, "id": f"pubsub-{secrets.token_hex(6)}"})
            message.append(authorization_form(node, jid, subid))
            self._send(owner, message)
