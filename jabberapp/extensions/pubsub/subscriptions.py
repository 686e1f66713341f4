"""
The pubsub handlers of subscribers: subscribe (§6.1, with options §6.3.7) and unsubscribe
(§6.2), subscription options (§6.3), the requester's own subscriptions and affiliations
(§5.6, §5.7), and the approval of pending subscriptions (access model authorize, §8.6).

A subscription to an authorize node by anyone but an owner, publisher or member is
answered subscription='pending', and each owner gets a <message/> with the
pubsub#subscribe_authorization form. The owner's submitted form (L{authorize}), or an
owner subscriptions set (owner.py), approves or denies it (L{resolve}); the subscriber then
gets a <subscription/> event with the new state, and when approved the last item if
send_last_published_item says so. The requester may withdraw with unsubscribe.

Handlers are C{async fn(pubsub, request)}, as in publishing.py.
"""
import secrets

from jabberapp import forms
from jabberapp.extensions.pubsub.config import pubsub_error
from jabberapp.extensions.pubsub.ns import NS_EVENT, NS_PUBSUB
from jabberapp.extensions.pubsub.request import (
    check_subid, jid_attribute, node_name, own_jid)
from jabberapp.extensions.pubsub.subscription_forms import (
    read_authorization, read_subscribe_options, subscribe_options_form)
from jabberapp.jid import JID
from jabberapp.xml import element

SEND_LAST_ON_SUBSCRIBE = ("on_sub", "on_sub_and_presence")


def listing(record):
    """(jid, subid, state) of the node's subscriptions and pending requests, by JID."""
    found = [(jid, subid, "subscribed") for jid, subid in record["subscriptions"].items()]
    found.extend((jid, subid, "pending") for jid, subid in record.get("pending", {}).items()
                 if jid not in record["subscriptions"])
    return sorted(found)


def _subscription(node, jid, subid, state):
    answer = element(NS_PUBSUB, "pubsub")
    answer.append(element(NS_PUBSUB, "subscription", node=node, jid=str(jid), subid=subid,
                          subscription=state))
    return answer


async def subscribe(pubsub, request):
    """<subscribe/>: subscribed at once, or pending the owner's approval."""
    owner = request.owner
    jid = own_jid(request.verb, request.requester)
    node = node_name(request.verb)
    record = await pubsub.nodes.get(owner, node)
    options = None
    options_element = request.payload.find(f"{{{NS_PUBSUB}}}options")
    if options_element is not None and forms.find_form(options_element) is not None:
        options = read_subscribe_options(options_element)
    if pubsub.rules.needs_approval(owner, record, jid):
        return await _request_approval(pubsub, owner, node, record, jid, options)
    await pubsub.rules.check_access(owner, record, request.requester)
    subid = record["subscriptions"].get(str(jid)) or secrets.token_hex(8)
    await pubsub.store.set_subscription(owner, node, str(jid), subid)
    if options is not None:
        await pubsub.store.set_subscription_options(owner, node, str(jid), options)
    if record["config"].get("send_last_published_item") in SEND_LAST_ON_SUBSCRIBE:
        # After the IQ result has gone out.
        pubsub.host.call_later(0, pubsub.notifications.send_last_later, owner, node, record,
                               jid)
    return _subscription(node, jid, subid, "subscribed")


async def _request_approval(pubsub, owner, node, record, jid, options):
    """Record a pending subscription and ask the node's owners to approve it (§8.6)."""
    subid = record.get("pending", {}).get(str(jid)) or secrets.token_hex(8)
    await pubsub.store.set_pending(owner, node, str(jid), subid)
    if options is not None:
        await pubsub.store.set_subscription_options(owner, node, str(jid), options)
    # After the IQ result has gone out.
    pubsub.host.call_later(0, pubsub.notifications.send_authorization_requests, owner, node,
                           record, jid, subid)
    return _subscription(node, jid, subid, "pending")


async def unsubscribe(pubsub, request):
    """<unsubscribe/>: end a subscription, or withdraw a pending request."""
    owner, verb = request.owner, request.verb
    jid = own_jid(verb, request.requester)
    node = node_name(verb)
    record = await pubsub.nodes.get(owner, node)
    subid = record["subscriptions"].get(str(jid))
    pending = record.get("pending", {}).get(str(jid))
    if subid is None and pending is not None:
        check_subid(verb, pending)
        await pubsub.store.set_pending(owner, node, str(jid), None)
        return None
    if subid is None:
        raise pubsub_error("unexpected-request", "not-subscribed")
    check_subid(verb, subid)
    await pubsub.store.set_subscription(owner, node, str(jid), None)
    return None


async def _subscription_of(pubsub, request):
    """(node, record, jid) of the existing subscription an <options/> names."""
    owner, verb = request.owner, request.verb
    jid = jid_attribute(verb)
    node = node_name(verb)
    record = await pubsub.nodes.get(owner, node)
    pubsub.rules.may_see_subscription(owner, record, request.requester, jid)
    subid = record["subscriptions"].get(str(jid))
    if subid is None:
        raise pubsub_error("unexpected-request", "not-subscribed")
    check_subid(verb, subid)
    return node, record, jid


async def get_options(pubsub, request):
    """<options/> get: the subscription's options form."""
    node, record, jid = await _subscription_of(pubsub, request)
    chosen = record.get("subscription_options", {}).get(str(jid), {})
    answer = element(NS_PUBSUB, "pubsub")
    options = element(NS_PUBSUB, "options", node=node, jid=str(jid),
                      subid=record["subscriptions"][str(jid)])
    options.append(subscribe_options_form(chosen))
    answer.append(options)
    return answer


async def set_options(pubsub, request):
    """<options/> set: store the submitted options."""
    node, record, jid = await _subscription_of(pubsub, request)
    options = read_subscribe_options(request.verb)
    await pubsub.store.set_subscription_options(request.owner, node, str(jid), options)
    return None


async def own_subscriptions(pubsub, request):
    """<subscriptions/>: the requester's subscriptions (and pending ones)."""
    answer = element(NS_PUBSUB, "pubsub")
    found = element(NS_PUBSUB, "subscriptions")
    answer.append(found)
    bare = request.requester.bare()
    async for name, record in pubsub.nodes.each(request.owner, request.verb.get("node")):
        for jid, subid, state in listing(record):
            if JID.parse(jid).bare() == bare:
                found.append(element(NS_PUBSUB, "subscription", node=name, jid=jid,
                                     subid=subid, subscription=state))
    return answer


async def own_affiliations(pubsub, request):
    """<affiliations/>: the requester's affiliations."""
    answer = element(NS_PUBSUB, "pubsub")
    found = element(NS_PUBSUB, "affiliations")
    answer.append(found)
    async for name, record in pubsub.nodes.each(request.owner, request.verb.get("node")):
        affiliation = pubsub.rules.affiliation(request.owner, record, request.requester)
        if affiliation != "none":
            found.append(element(NS_PUBSUB, "affiliation", node=name,
                                 affiliation=affiliation))
    return answer


async def authorize(pubsub, owner, sender, x):
    """
    Apply a submitted subscription authorization form C{x} (§8.6) that C{sender} sent to
    C{owner}; a form of type 'cancel' leaves the request pending. Raises StanzaError when
    the form is malformed or there is no such pending request, and the rules' refusal
    when the sender is no owner of the node.
    """
    if x.get("type") == "cancel":
        return
    node, jid, allow, given_subid = read_authorization(x)
    record = await pubsub.nodes.get(owner, node)
    pubsub.rules.require_owner(owner, record, sender)
    subid = record.get("pending", {}).get(str(jid))
    if subid is None or (given_subid is not None and given_subid != subid):
        raise pubsub_error("unexpected-request", "not-subscribed",
                           text="No such pending subscription")
    await resolve(pubsub, owner, node, record, jid, allow)


async def resolve(pubsub, owner, node, record, jid, allow):
    """Approve or deny the pending subscription of C{jid}, and tell the subscriber
    (§8.6: a <subscription/> event with state subscribed or none)."""
    subid = record["pending"][str(jid)]
    if allow:
        await pubsub.store.set_subscription(owner, node, str(jid), subid)
    else:
        await pubsub.store.set_pending(owner, node, str(jid), None)
    pubsub.notifications.send_event(owner, jid, element(
        NS_EVENT, "subscription", node=node, jid=str(jid),
        subscription="subscribed" if allow else "none",
        subid=subid if allow else None))
    if allow and record["config"].get("send_last_published_item") in SEND_LAST_ON_SUBSCRIBE:
        await pubsub.notifications.send_last(owner, node, record, jid)
