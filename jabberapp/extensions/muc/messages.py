"""
XEP-0045 messages to a room: groupchat messages and subject changes (§7.4, §8.1) with the
history they leave, private messages between occupants (§7.5), mediated invitations
(§7.8.2), and voice requests (§7.13, §8.6): a visitor submits a muc#request form, every
moderator gets the approval form, and a moderator submitting it with muc#request_allow
true gives the visitor voice.

Every function takes the MUCService (service.py) as C{service}.
"""
import copy

from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import admin, rules, stanzas
from jabberapp.extensions.muc.config import NS_MUC_REQUEST, voice_request_form
from jabberapp.extensions.muc.names import BODY, MUC_USER_X, NS_MUC_USER, SUBJECT
from jabberapp.extensions.muc.room import HistoryEntry
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element, serialize
from jabberapp.xml.ns import NS_CLIENT


def to_service(service, message, sender):
    """A message to the service domain itself: nothing is served there."""
    if message.get("type") not in ("error", "groupchat"):
        raise StanzaError("service-unavailable")


def receive(service, message, sender, to, room):
    """A message to a room JID or an occupant JID (C{room} is None when none exists)."""
    type_ = message.get("type", "normal")
    if type_ == "error":
        return
    if room is None:
        raise StanzaError("item-not-found", "No such room")
    occupant = room.by_jid.get(sender)
    if to.resource is not None:
        private_message(service, room, occupant, message, to.resource)
        return
    if type_ == "groupchat":
        if occupant is None:
            raise StanzaError("not-acceptable", "Only occupants may send to the room")
        groupchat(service, room, occupant, message)
        return
    x = message.find(MUC_USER_X)
    if x is not None and x.find(f"{{{NS_MUC_USER}}}invite") is not None:
        invite(service, room, occupant, sender, x)
        return
    form = forms.find_form(message, NS_MUC_REQUEST)
    if form is not None:
        voice_form(service, room, occupant, form)
        return
    raise StanzaError("bad-request", "Send groupchat messages to the room")


def groupchat(service, room, occupant, message):
    """A message to the whole room: a subject change or a broadcast message."""
    rules.check_speak(occupant)
    subject = message.find(SUBJECT)
    if subject is not None and message.find(BODY) is None:
        rules.check_subject(room, occupant)
        room.subject = subject.text or ""
        room.subject_nick = occupant.nick
        service.storage.in_background(service.save(room))
    out = stanzas.groupchat_message(room, occupant, message)
    for recipient in room.occupants.values():
        service.deliver(out, recipient)
    if message.find(BODY) is not None and room.config.history_length:
        room.history.append(HistoryEntry(service.host.clock.seconds(), out,
                                         len(serialize(out))))


def private_message(service, room, occupant, message, nick):
    """XEP-0045 §7.5: a message to one occupant, from the sender's occupant JID."""
    if occupant is None:
        raise StanzaError("not-acceptable", "Only occupants may send private messages")
    if message.get("type") == "groupchat":
        raise StanzaError("bad-request", "Private messages are not of type groupchat")
    target = room.occupants.get(nick)
    if target is None:
        raise StanzaError("item-not-found", "No occupant has that nick")
    out = copy.deepcopy(message)
    out.set("from", f"{room.jid}/{occupant.nick}")
    if out.find(MUC_USER_X) is None:
        out.append(element(NS_MUC_USER, "x"))
    service.deliver(out, target)


def invite(service, room, occupant, sender, x):
    """XEP-0045 §7.8.2: mediated invitations, sent on from the room."""
    if occupant is None:
        raise StanzaError("not-acceptable", "Only occupants may invite")
    rules.check_invite(room, room.affiliation(sender))
    for request in x.iterchildren(f"{{{NS_MUC_USER}}}invite"):
        try:
            invitee = JID.parse(request.get("to") or "")
        except InvalidJID:
            raise StanzaError("jid-malformed", "bad invitee JID") from None
        if rules.invite_makes_member(room, invitee):
            room.set_affiliation(invitee, "member")
            service.storage.in_background(service.save(room))
        out = element(NS_CLIENT, "message", {"from": str(room.jid), "to": str(invitee)})
        user = element(NS_MUC_USER, "x")
        forwarded = element(NS_MUC_USER, "invite", {"from": str(sender.bare())})
        reason = request.findtext(f"{{{NS_MUC_USER}}}reason")
        if reason:
            forwarded.append(element(NS_MUC_USER, "reason", text=reason))
        user.append(forwarded)
        if room.config.password:
            user.append(element(NS_MUC_USER, "password", text=room.config.password))
        out.append(user)
        service.host.send(out)


# -- voice requests (§7.13, §8.6) -----------------------------------------------------


def voice_form(service, room, occupant, form):
    """A muc#request form: a visitor's request for voice, or a moderator's answer."""
    if occupant is None:
        raise StanzaError("not-acceptable", "Only occupants may request voice")
    if form.get("type") != "submit":
        raise StanzaError("bad-request", "Expected a submitted muc#request form")
    try:
        values = forms.parse(form).values()
    except forms.FormError as e:
        raise e.stanza_error() from None
    if "muc#request_allow" in values:
        voice_decision(service, room, occupant, values)
        return
    if (values.get("muc#role") or ["participant"]) != ["participant"]:
        raise StanzaError("not-acceptable", "Only the participant role may be requested")
    if occupant.role != "visitor":
        return   # it already has voice: nothing to ask the moderators
    approval = element(NS_CLIENT, "message", {"from": str(room.jid)})
    approval.append(voice_request_form(occupant.jid, occupant.nick))
    for moderator in room.occupants.values():
        if moderator.role == "moderator":
            service.deliver(approval, moderator)


def voice_decision(service, room, moderator, values):
    """A moderator's submitted approval form: voice for the named visitor if allowed."""
    rules.check_grant_voice(moderator)
    allow = (values.get("muc#request_allow") or ["0"])[0]
    if allow not in forms.TRUE:
        return   # denied: the visitor stays a visitor
    target = room.occupants.get((values.get("muc#roomnick") or [""])[0])
    if target is None:
        raise StanzaError("item-not-found", "No occupant has that nick")
    if target.role == "visitor":
        admin.set_role(service, room, target, "participant", actor=moderator.nick)
