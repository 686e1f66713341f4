"""
XEP-0060 handlers that make nodes and items: create (§8.1, with <configure/>), publish
(§7.1, publish-options preconditions §7.1.5, PEP auto-create), retract (§7.2) and items
retrieval (§6.5: all, by id, max_items, XEP-0059 RSM).

Each handler is C{async fn(pubsub, request)} (a L{PubSubProtocol} and a L{Request}) and
returns the answer payload or None; protocol.py's table routes to them.
"""
import copy
import secrets

from jabberapp import forms, rsm
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub import config as cfg
from jabberapp.extensions.pubsub.config import pubsub_error
from jabberapp.extensions.pubsub.interfaces import NodeExists
from jabberapp.extensions.pubsub.ns import NS_EVENT, NS_PUBSUB
from jabberapp.extensions.pubsub.request import bool_attribute, node_name
from jabberapp.xml import element, parse_element, serialize


def _form_options(pubsub, parent, form_type, error):
    """The options of the data form in C{parent} (none without one)."""
    form = forms.find_form(parent)
    if form is None:
        return {}
    return cfg.read_form(form, form_type, pubsub.nodes.max_items_limit, error)


async def _create(pubsub, owner, node, options, requester):
    await pubsub.nodes.create(owner, node, options, requester)
    pubsub.host.log.debug("pubsub node {node} created at {owner}", node=node, owner=owner)


async def create(pubsub, request):
    """<create/>: a node named by the requester, or an instant node (not with PEP)."""
    owner, requester, verb = request.owner, request.requester, request.verb
    pubsub.rules.may_create(owner, requester)
    node = verb.get("node")
    instant = not node
    if instant:
        if pubsub.pep:
            raise pubsub_error("not-acceptable", "nodeid-required")
        node = secrets.token_hex(8)
    options = _form_options(
        pubsub, request.payload.find(f"{{{NS_PUBSUB}}}configure"), cfg.NODE_CONFIG,
        lambda text: StanzaError("not-acceptable", text))
    await _create(pubsub, owner, node, options, requester)
    if instant:
        answer = element(NS_PUBSUB, "pubsub")
        answer.append(element(NS_PUBSUB, "create", node=node))
        return answer
    return None


def _payload_text(pubsub, verb):
    """The serialised payload of the one <item/> of a <publish/>; its id or None."""
    items = list(verb.iterchildren(f"{{{NS_PUBSUB}}}item"))
    if len(items) > 1:
        raise pubsub_error("bad-request", "invalid-payload", text="Publish one item at a time")
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
    if len(text.encode("utf-8")) > pubsub.max_payload_size:
        raise pubsub_error("not-acceptable", "payload-too-big")
    return text, item.get("id")


async def publish(pubsub, request):
    """<publish/>: store the item, notify, answer with its id."""
    owner, requester = request.owner, request.requester
    node = node_name(request.verb)
    text, item_id = _payload_text(pubsub, request.verb)

    def precondition(text=None):
        return pubsub_error("conflict", "precondition-not-met", text=text)

    options = _form_options(pubsub, request.payload.find(f"{{{NS_PUBSUB}}}publish-options"),
                            cfg.PUBLISH_OPTIONS, precondition)
    record = await pubsub.store.get_node(owner, node)
    if record is None:
        if not pubsub.pep:
            raise StanzaError("item-not-found")
        pubsub.rules.may_create(owner, requester)
        try:
            await _create(pubsub, owner, node, options, requester)
        except NodeExists:
            pass    # created meanwhile: the preconditions are checked below
        record = await pubsub.store.get_node(owner, node)
    for name, value in options.items():
        if record["config"].get(name) != value:
            raise precondition(f"pubsub#{name} differs from the node's configuration")
    pubsub.rules.may_publish(owner, record, requester)
    item_id = item_id or secrets.token_hex(10)
    await pubsub.nodes.publish(owner, node, record, item_id, text, requester,
                               pubsub.host.clock.seconds())
    await pubsub.notifications.notify(
        owner, node, record,
        pubsub.notifications.item_event(node, item_id, text, record["config"]))
    answer = element(NS_PUBSUB, "pubsub")
    published = element(NS_PUBSUB, "publish", node=node)
    published.append(element(NS_PUBSUB, "item", id=item_id))
    answer.append(published)
    return answer


async def retract(pubsub, request):
    """<retract/>: delete one item, notifying when asked or configured."""
    owner, verb = request.owner, request.verb
    node = node_name(verb)
    record = await pubsub.nodes.get(owner, node)
    ids = [i.get("id") for i in verb.iterchildren(f"{{{NS_PUBSUB}}}item")]
    if len(ids) != 1 or not ids[0]:
        raise pubsub_error("bad-request", "item-required")
    pubsub.rules.may_retract(owner, record, request.requester)
    if not await pubsub.store.retract(owner, node, ids[0]):
        raise StanzaError("item-not-found")
    if bool_attribute(verb.get("notify")) or record["config"].get("notify_retract", True):
        items = element(NS_EVENT, "items", node=node)
        items.append(element(NS_EVENT, "retract", id=ids[0]))
        await pubsub.notifications.notify(owner, node, record, items)
    return None


async def items(pubsub, request):
    """<items/>: the node's items the requester asks for, if the access model lets it."""
    owner, verb = request.owner, request.verb
    node = node_name(verb)
    record = await pubsub.nodes.get(owner, node)
    await pubsub.rules.check_access(owner, record, request.requester)
    stored = await pubsub.store.get_items(owner, node)
    wanted = [i.get("id") for i in verb.iterchildren(f"{{{NS_PUBSUB}}}item")]
    paging = rsm.parse(request.payload)
    answer = element(NS_PUBSUB, "pubsub")
    listing = element(NS_PUBSUB, "items", node=node)
    answer.append(listing)
    result_set = None
    if wanted:
        by_id = {item[0]: item for item in stored}
        stored = [by_id[i] for i in wanted if i in by_id]
    elif paging is not None:
        stored, result_set = _page(stored, paging, pubsub.nodes.max_items_limit)
    elif verb.get("max_items"):
        count = verb.get("max_items")
        if not count.isdigit():
            raise StanzaError("bad-request", "max_items must be a number")
        stored = stored[max(len(stored) - int(count), 0):]
    for item_id, text, _, _ in stored:
        item = element(NS_PUBSUB, "item", id=item_id)
        if text is not None:
            item.append(parse_element(text))
        listing.append(item)
    if result_set is not None:
        answer.append(result_set)
    return answer


def _page(stored, request, limit):
    """The RSM page of C{stored} items that C{request} asks for, and its <set/>."""
    ids = [item[0] for item in stored]
    for uid in (request.after, request.before):
        if uid and uid not in ids:
            raise StanzaError("item-not-found", "No item with that RSM UID")
    size = request.page_size(limit, limit)
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
