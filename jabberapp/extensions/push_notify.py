"""
XEP-0357 push notifications: which messages are worth one, what a notification says, and
how notifications leave (coalesced per registration, answered or timed out).

The extension itself (enable, disable, the registrations, when to notify) is
jabberapp.extensions.push; this module holds what does not depend on the host's hooks.

Worth a notification (L{summarize}): a message of type chat or normal (or groupchat, see
below) with a body, an encrypted payload (OMEMO, OpenPGP, legacy PGP, XEP-0380) or a call
proposal (XEP-0353); a received carbon (XEP-0280) is judged by the message it carries.
Never: errors, headlines, chat states, receipts and markers alone, sent carbons (the user
wrote them) and MAM results (the client asked for them). A groupchat message counts only
when its body mentions the user's nickname in that room (the room JID -> nick map the
caller keeps from the user's joins) and it is not the user's own message reflected.

A notification (L{publish_iq}) is the XEP-0357 §7 publish, from the user's bare JID to
the registration's JID and node: a ``urn:xmpp:push:summary`` form with
``message-count`` and, when the operator allows, ``last-message-sender`` and
``last-message-body`` (never the body of an encrypted message), then the
publish-options the client gave when enabling, as given.

Coalescing (L{Notifier}): the first message for a registration is sent at once; then the
registration is quiet for ``interval`` seconds, and whatever came meanwhile leaves in one
notification at the end of it. ``message-count`` is the running count since the device
last connected (the extension resets it), so a burst of 100 messages makes two
notifications, the last saying 100. Each publish is an IQ with a random id; its answer is
matched by id and sender (the IQ_BARE hook calls L{Notifier.answered}). An error answer
of type cancel, auth or modify disables the registration (XEP-0357 §7.1: the server
SHOULD consider it disabled) -- except remote-server-not-found and remote-server-timeout,
which say the network failed, not the service; an error of type wait and a timeout keep
it. The reactor never waits: answers and timeouts are callbacks.
"""
import secrets
from collections import namedtuple

from jabberapp import stanza as st
from jabberapp.forms import Field, Form
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element, parse_element
from jabberapp.xml.ns import NS_CLIENT

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
SUMMARY = "urn:xmpp:push:summary"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_MAM = "urn:xmpp:mam:2"

BODY = f"{{{NS_CLIENT}}}body"
SUBJECT = f"{{{NS_CLIENT}}}subject"
RECEIVED = f"{{{NS_CARBONS}}}received"
SENT = f"{{{NS_CARBONS}}}sent"
FORWARDED_MESSAGE = f"{{{NS_FORWARD}}}forwarded/{st.MESSAGE}"
MAM_RESULT = f"{{{NS_MAM}}}result"

#: Payloads whose content the server cannot see: worth a notification without a body.
ENCRYPTED = frozenset({"eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2",
                       "urn:xmpp:openpgp:0", "jabber:x:encrypted", "urn:xmpp:eme:0"})
#: Call proposals (XEP-0353): a ringing phone must be woken.
CALLS = frozenset({"urn:xmpp:jingle-message:0", "urn:xmpp:jingle-message:1"})
#: Errors that say the path to the service failed, not the service: keep the registration.
TRANSIENT = frozenset({"remote-server-not-found", "remote-server-timeout"})
#: Longest body text put in a notification (when include_body is on).
MAX_BODY = 512

Summary = namedtuple("Summary", "sender body")   # body None: none, or encrypted


def _namespace(tag):
    return tag[1:].partition("}")[0] if tag[:1] == "{" else ""


def summarize(message, rooms=None):
    """The L{Summary} of C{message} when it is worth a notification, else None; C{rooms}
    maps the room JIDs (str) the user joined to its nickname there."""
    type_ = message.get("type", "normal")
    if type_ not in ("chat", "normal", "groupchat"):
        return None
    if message.find(MAM_RESULT) is not None or message.find(SENT) is not None:
        return None
    carbon = message.find(RECEIVED)
    if carbon is not None:
        inner = carbon.find(FORWARDED_MESSAGE)
        return None if inner is None else summarize(inner, rooms)
    sender = message.get("from")
    if type_ == "groupchat":
        return _mention(message, sender, rooms or {})
    body = message.findtext(BODY)
    for child in message:
        if isinstance(child.tag, str):
            namespace = _namespace(child.tag)
            if namespace in ENCRYPTED:
                return Summary(sender, None)
            if namespace in CALLS:
                return Summary(sender, body)
    if body:
        return Summary(sender, body)
    return None


def _mention(message, sender, rooms):
    """A groupchat message is worth a notification when it names the user (not its own)."""
    body = message.findtext(BODY)
    if not body or sender is None:
        return None
    room, _, nick = sender.partition("/")
    own = rooms.get(room)
    if not own or nick == own or own.casefold() not in body.casefold():
        return None
    return Summary(sender, body)


def summary_form(count, last, include_sender, include_body):
    """The urn:xmpp:push:summary form (type submit) for C{count} messages, C{last} the
    newest one's L{Summary}."""
    fields = [Field("message-count", "text-single", values=(str(count),))]
    if include_sender and last.sender:
        fields.append(Field("last-message-sender", "jid-single", values=(last.sender,)))
    if include_body and last.body:
        fields.append(Field("last-message-body", "text-single",
                            values=(last.body[:MAX_BODY],)))
    return Form("submit", SUMMARY, fields).to_element()


def publish_iq(iq_id, user, push_jid, node, form, options=None):
    """The XEP-0357 §7 publish: IQ set from C{user} (bare JID) to C{push_jid}, the
    summary C{form} under C{node}, with the stored publish C{options} (XML text) if any."""
    iq = element(NS_CLIENT, "iq", type="set", id=iq_id, to=push_jid, from_=user)
    pubsub = element(NS_PUBSUB, "pubsub")
    publish = element(NS_PUBSUB, "publish", node=node)
    item = element(NS_PUBSUB, "item")
    notification = element(NS_PUSH, "notification")
    notification.append(form)
    item.append(notification)
    publish.append(item)
    pubsub.append(publish)
    if options:
        publish_options = element(NS_PUBSUB, "publish-options")
        publish_options.append(parse_element(options))
        pubsub.append(publish_options)
    iq.append(pubsub)
    return iq


def disables(error_iq):
    """True when the error answer C{error_iq} to a publish disables the registration."""
    error = error_iq.find(st.ERROR)
    if error is None:
        return True
    if error.get("type") == "wait":
        return False
    for child in error:
        if isinstance(child.tag, str) and _namespace(child.tag) == NS_STANZAS:
            return child.tag.rpartition("}")[2] not in TRANSIENT
    return True


class _Pending:
    """One registration's notifications: the count, the newest message, the quiet period."""

    __slots__ = ("count", "last", "timer", "due")

    def __init__(self):
        self.count = 0
        self.last = None
        self.timer = None     # the quiet period after a notification
        self.due = False      # messages came during the quiet period


class Notifier:
    """
    Sends the notifications of one host, coalesced per registration (module docstring).
    A registration is keyed (user bare JID str, push JID str, node); C{options_of(key)}
    gives its publish options, C{disable(key)} removes it after an error answer.
    """

    def __init__(self, host, interval, timeout, include_sender, include_body, disable):
        self.host = host
        self.interval = interval
        self.timeout = timeout
        self.include_sender = include_sender
        self.include_body = include_body
        self.disable = disable
        self.pending = {}     # user -> {(push JID, node): _Pending}
        self.waiting = {}     # iq id -> (key, push JID, timeout call)

    def add(self, key, options, summaries):
        """C{summaries} (newest last) are for the registration C{key}: notify now, or at
        the end of its quiet period."""
        user, *pair = key
        mine = self.pending.setdefault(user, {})
        pending = mine.get(tuple(pair))
        if pending is None:
            pending = mine[tuple(pair)] = _Pending()
        pending.count += len(summaries)
        pending.last = summaries[-1]
        if pending.timer is None:
            self._publish(key, options, pending)
        else:
            pending.due = True

    def _publish(self, key, options, pending):
        pending.due = False
        pending.timer = self.host.call_later(self.interval, self._quiet_over, key, options)
        user, push_jid, node = key
        iq_id = f"push-{secrets.token_hex(8)}"
        form = summary_form(pending.count, pending.last, self.include_sender,
                            self.include_body)
        iq = publish_iq(iq_id, user, push_jid, node, form, options)
        call = self.host.call_later(self.timeout, self._timed_out, iq_id)
        self.waiting[iq_id] = (key, push_jid, call)
        self.host.log.debug("push notification to {service} for {user}", service=push_jid,
                            user=user)
        self.host.send(iq)

    def _get(self, key):
        mine = self.pending.get(key[0])
        return None if mine is None else mine.get(key[1:])

    def _quiet_over(self, key, options):
        pending = self._get(key)
        if pending is None:
            return
        pending.timer = None
        if pending.due:
            self._publish(key, options, pending)
        elif not pending.count:
            self._drop(key)     # nothing to remember: the next message starts afresh

    def _drop(self, key):
        mine = self.pending.get(key[0])
        if mine is not None:
            pending = mine.pop(key[1:], None)
            if not mine:
                del self.pending[key[0]]
            if pending is not None and pending.timer is not None and pending.timer.active():
                pending.timer.cancel()

    def reset(self, key):
        """The device of C{key} connected: count from zero again."""
        pending = self._get(key)
        if pending is not None:
            pending.count = 0
            pending.due = False
            if pending.timer is None:
                self._drop(key)

    def reset_user(self, user):
        """The user C{user} (bare JID str) logged in: every count from zero again."""
        for pair in list(self.pending.get(user, ())):
            self.reset((user, *pair))

    def forget(self, key):
        """The registration C{key} is gone: nothing more is sent for it."""
        self._drop(key)

    def forget_user(self, user):
        """The account is gone: nothing more is sent for it."""
        for pair in list(self.pending.get(user, ())):
            self._drop((user, *pair))

    def answered(self, iq):
        """An IQ result or error to a user's bare JID: True when it answers a publish of
        ours (then it is dealt with here)."""
        entry = self.waiting.get(iq.get("id") or "")
        if entry is None:
            return False
        key, push_jid, call = entry
        try:
            sender = str(JID.parse(iq.get("from") or ""))
        except InvalidJID:
            return False
        if sender != push_jid or iq.get("to", "").partition("/")[0] != key[0]:
            return False
        del self.waiting[iq.get("id")]
        if call.active():
            call.cancel()
        if iq.get("type") == "error" and disables(iq):
            self.forget(key)
            self.disable(key)
        return True

    def _timed_out(self, iq_id):
        entry = self.waiting.pop(iq_id, None)
        if entry is not None:
            self.host.log.info("push service {service} did not answer in time",
                               service=entry[1])

    def stop(self):
        """The extension is unloading: cancel every timer."""
        for user in list(self.pending):
            self.forget_user(user)
        for _, _, call in self.waiting.values():
            if call.active():
                call.cancel()
        self.waiting.clear()
