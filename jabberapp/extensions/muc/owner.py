"""
XEP-0045 muc#owner (§10): the room configuration form (get), its submission or
cancellation, and destroying the room with an alternate venue (set).

Every function takes the MUCService (service.py) as C{service}.
"""
from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import presence, rules, stanzas
from jabberapp.extensions.muc.config import apply_form, config_form
from jabberapp.extensions.muc.names import NS_MUC_OWNER, NS_MUC_USER
from jabberapp.xml import element


def query(service, room, sender, type_, payload):
    """muc#owner get (the form), set (submit, cancel, destroy); owners only."""
    rules.check_owner(room, sender)
    if type_ == "get":
        answer = element(NS_MUC_OWNER, "query")
        answer.append(config_form(room.config, service.options["max_users"],
                                  service.options["max_history_length"]))
        return answer
    request = payload.find(f"{{{NS_MUC_OWNER}}}destroy")
    if request is not None:
        return destroy(service, room, request)
    form = forms.find_form(payload)
    if form is None:
        raise StanzaError("bad-request", "Expected a data form or <destroy/>")
    kind = form.get("type")
    if kind == "cancel":
        if room.locked:
            return destroy(service, room, None)
        return None
    if kind != "submit":
        raise StanzaError("bad-request", "The form must be of type submit or cancel")
    return configure(service, room, form)


def configure(service, room, form):
    """
    Apply the submitted configuration form (§10.2): it unlocks a new room, occupants a
    members-only room no longer admits leave (322), the room is stored or forgotten as
    its persistence now says, and every occupant is told (104, and 172/173 when real
    JIDs became visible or hidden).
    """
    old = room.config
    new = apply_form(old, form, service.options["max_users"],
                     service.options["max_history_length"])
    room.config = new
    room.locked = False
    if new.history_length != old.history_length:
        room.resize_history()
    if new.members_only and not old.members_only:
        for occupant in list(room.occupants.values()):
            if rules.excluded_by_members_only(room, occupant):
                presence.remove(service, room, occupant, 322)
    stored = None
    if new.persistent:
        stored = service.save(room)
    elif old.persistent:
        stored = service.storage.delete(room)
        service.maybe_forget(room)
    codes = [104]
    if new.whois != old.whois:
        codes.append(172 if new.whois == "anyone" else 173)
    notice = stanzas.status_message(room, codes)
    for occupant in room.occupants.values():
        service.deliver(notice, occupant)
    return stored


def destroy(service, room, request):
    """§10.9: every occupant is told (with the alternate venue of the owner's <destroy/>
    C{request}, if any), then the room is forgotten and deleted from storage."""
    notice = element(NS_MUC_USER, "destroy")
    if request is not None:
        if request.get("jid"):
            notice.set("jid", request.get("jid"))
        reason = request.findtext(f"{{{NS_MUC_OWNER}}}reason")
        if reason:
            notice.append(element(NS_MUC_USER, "reason", text=reason))
    for occupant in list(room.occupants.values()):
        gone = stanzas.occupant_presence(room, occupant, False, (), "unavailable",
                                         destroy=notice)
        service.deliver(gone, occupant)
    room.occupants.clear()
    room.by_jid.clear()
    service.rooms.pop(room.name, None)
    if room.config.persistent:
        return service.storage.delete(room)
    return None
