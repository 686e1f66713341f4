"""
The pubsub#owner handlers (XEP-0060 §8): configure (get and set, the pubsub#node_config
form), default, delete (with a <delete/> notification), purge (<purge/> notification),
subscriptions and affiliations (get and set; a node always keeps an owner).

Every one but default needs the requester to own the node. Handlers are
C{async fn(pubsub, request)}, as in publishing.py.
"""
import secrets

from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub import config as cfg
from jabberapp.extensions.pubsub.ns import NS_EVENT, NS_OWNER
from jabberapp.extensions.pubsub.request import entry_jid, node_name
from jabberapp.extensions.pubsub.rules import AFFILIATIONS
from jabberapp.extensions.pubsub.subscriptions import listing, resolve
from jabberapp.jid import JID
from jabberapp.xml import element


async def _owned(pubsub, request):
    """(name, record) of the node the request names, when the requester owns it."""
    node = node_name(request.verb)
    record = await pubsub.nodes.get(request.owner, node)
    pubsub.rules.require_owner(request.owner, record, request.requester)
    return node, record


def _answer(child):
    answer = element(NS_OWNER, "pubsub")
    answer.append(child)
    return answer


async def get_configure(pubsub, request):
    """<configure/> get: the node's configuration form."""
    node, record = await _owned(pubsub, request)
    configure = element(NS_OWNER, "configure", node=node)
    configure.append(cfg.config_form(record["config"]))
    return _answer(configure)


async def set_configure(pubsub, request):
    """<configure/> set: apply the submitted configuration form."""
    node, record = await _owned(pubsub, request)
    form = forms.find_form(request.verb)
    if form is None:
        raise StanzaError("bad-request", "A configuration form is required")
    options = cfg.read_form(form, cfg.NODE_CONFIG, pubsub.nodes.max_items_limit,
                            lambda text: StanzaError("not-acceptable", text))
    config = dict(record["config"], **options)
    await pubsub.store.set_config(request.owner, node, config)
    return None


async def get_default(pubsub, request):
    """<default/>: the configuration form of a new node."""
    default = element(NS_OWNER, "default")
    default.append(cfg.config_form(pubsub.nodes.defaults))
    return _answer(default)


async def delete(pubsub, request):
    """<delete/>: remove the node, telling its subscribers when configured to."""
    node, record = await _owned(pubsub, request)
    recipients = await pubsub.notifications.recipients(request.owner, node, record)
    await pubsub.store.delete_node(request.owner, node)
    if record["config"].get("notify_delete", True):
        for jid in recipients:
            pubsub.notifications.send_event(request.owner, jid,
                                            element(NS_EVENT, "delete", node=node))
    return None


async def purge(pubsub, request):
    """<purge/>: delete every item, and tell the subscribers."""
    node, record = await _owned(pubsub, request)
    await pubsub.store.purge(request.owner, node)
    await pubsub.notifications.notify(request.owner, node, record,
                                      element(NS_EVENT, "purge", node=node))
    return None


async def get_subscriptions(pubsub, request):
    """<subscriptions/> get: every subscription of the node, pending ones included."""
    node, record = await _owned(pubsub, request)
    found = element(NS_OWNER, "subscriptions", node=node)
    for jid, subid, state in listing(record):
        found.append(element(NS_OWNER, "subscription", jid=jid, subid=subid,
                             subscription=state))
    return _answer(found)


async def set_subscriptions(pubsub, request):
    """<subscriptions/> set: subscribe or unsubscribe JIDs; for a pending request, approve
    or deny it (§8.6 via §8.8.2)."""
    node, record = await _owned(pubsub, request)
    owner = request.owner
    changes = []
    for entry in request.verb.iterchildren(f"{{{NS_OWNER}}}subscription"):
        jid = entry_jid(entry)
        state = entry.get("subscription")
        if state not in ("subscribed", "none"):
            raise StanzaError("bad-request", f"Unsupported subscription {state!r}")
        changes.append((jid, state))
    for jid, state in changes:
        if str(jid) in record.get("pending", {}) and str(jid) not in record[
                "subscriptions"]:
            await resolve(pubsub, owner, node, record, jid, state == "subscribed")
            continue
        subid = None
        if state == "subscribed":
            subid = record["subscriptions"].get(str(jid)) or secrets.token_hex(8)
        await pubsub.store.set_subscription(owner, node, str(jid), subid)
    return None


async def get_affiliations(pubsub, request):
    """<affiliations/> get: every affiliation with the node (a PEP owner's included)."""
    node, record = await _owned(pubsub, request)
    found = element(NS_OWNER, "affiliations", node=node)
    affiliations = dict(record["affiliations"])
    if pubsub.pep:
        affiliations[request.owner] = "owner"
    for jid, affiliation in sorted(affiliations.items()):
        found.append(element(NS_OWNER, "affiliation", jid=jid, affiliation=affiliation))
    return _answer(found)


async def set_affiliations(pubsub, request):
    """<affiliations/> set: change affiliations; outcasts lose their subscriptions."""
    node, record = await _owned(pubsub, request)
    owner = request.owner
    affiliations = dict(record["affiliations"])
    changes = []
    for entry in request.verb.iterchildren(f"{{{NS_OWNER}}}affiliation"):
        jid = str(entry_jid(entry).bare())
        affiliation = entry.get("affiliation")
        if affiliation not in AFFILIATIONS + ("none",):
            raise StanzaError("bad-request", f"Unknown affiliation {affiliation!r}")
        pubsub.rules.may_set_affiliation(owner, jid)
        changes.append((jid, None if affiliation == "none" else affiliation))
        affiliations.pop(jid, None)
        if affiliation != "none":
            affiliations[jid] = affiliation
    pubsub.rules.keeps_owner(affiliations)
    for jid, affiliation in changes:
        await pubsub.store.set_affiliation(owner, node, jid, affiliation)
        if affiliation == "outcast":
            for subscribed in list(record["subscriptions"]):
                if str(JID.parse(subscribed).bare()) == jid:
                    await pubsub.store.set_subscription(owner, node, subscribed, None)
    return None
