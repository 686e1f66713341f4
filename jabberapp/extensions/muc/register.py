"""
XEP-0045 nickname registration (§7.10, jabber:iq:register with the muc#register form):
reserve, re-reserve or release (<remove/>) a nick. Registering makes an unaffiliated user
a member; releasing takes that back except in members-only rooms.

Every function takes the MUCService (service.py) as C{service}.
"""
from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import admin, rules
from jabberapp.extensions.muc.config import NS_MUC_REGISTER, register_form
from jabberapp.extensions.muc.names import NS_REGISTER
from jabberapp.jid import InvalidJID
from jabberapp.xml import element


def query(service, room, sender, type_, payload):
    """The muc#register form (get), its submission, cancel and <remove/> (set)."""
    affiliation = room.affiliation(sender)
    rules.check_register(room, affiliation)
    if type_ == "get":
        return form(room, sender)
    if payload.find(f"{{{NS_REGISTER}}}remove") is not None:
        return unregister(service, room, sender)
    submitted = forms.find_form(payload)
    if submitted is None:
        raise StanzaError("bad-request", "Expected the muc#register data form")
    if submitted.get("type") == "cancel":
        return None
    if (submitted.get("type") != "submit"
            or forms.form_type_of(submitted) != NS_MUC_REGISTER):
        raise StanzaError("bad-request", "Expected a submitted muc#register form")
    try:
        values = forms.parse(submitted).values().get("muc#register_roomnick") or [""]
    except forms.FormError as e:
        raise e.stanza_error() from None
    if len(values) != 1 or not values[0]:
        raise StanzaError("not-acceptable", "muc#register_roomnick is required")
    try:
        nick = room.jid.with_resource(values[0]).resource
    except InvalidJID:
        raise StanzaError("not-acceptable", "That is not a valid nickname") from None
    rules.check_reserve(room, sender, nick)
    room.register(sender, nick)
    granted = rules.affiliation_on_register(affiliation)
    if granted is not None:
        return admin.set_affiliation(service, room, sender.bare(), granted)
    return service.save(room)


def form(room, sender):
    """The reserved nick of the sender (<registered/>), or the form to reserve one."""
    answer = element(NS_REGISTER, "query")
    nick = room.registered.get(str(sender.bare()))
    if nick is not None:
        answer.append(element(NS_REGISTER, "registered"))
        answer.append(element(NS_REGISTER, "username", text=nick))
        return answer
    answer.append(element(NS_REGISTER, "instructions",
                          text="Choose the nickname to reserve in this room."))
    answer.append(register_form(room.jid))
    return answer


def unregister(service, room, sender):
    """Release the sender's reserved nick, and the membership registering gave where
    the rules take it back."""
    if str(sender.bare()) not in room.registered:
        return None
    room.unregister(sender)
    left = rules.affiliation_on_unregister(room.config, room.affiliation(sender))
    if left is not None:
        return admin.set_affiliation(service, room, sender.bare(), left)
    return service.save(room)
