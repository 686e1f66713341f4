"""
XEP-0030 discovery of the MUC service and its rooms (XEP-0045 §6): the service's identity
and public rooms, a room's identity, muc_ features and muc#roominfo form, its occupants
when it is non-anonymous, and one's reserved nick (§7.12).

Every function takes the MUCService (service.py) as C{service}.
"""
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc.config import NS_MUC_REQUEST, room_info_form
from jabberapp.extensions.muc.names import (
    NS_MUC, NS_OCCUPANT_ID, NS_REGISTER, NS_SELF_PING_OPTIMIZATION, ROOMUSER_NODE)
from jabberapp.xml import element
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS


def service_info(service, sender, query):
    """disco#info of the service domain: a conference service."""
    if query.get("node") is not None:
        raise StanzaError("item-not-found")
    answer = element(NS_DISCO_INFO, "query")
    answer.append(element(NS_DISCO_INFO, "identity", {
        "category": "conference", "type": "text", "name": service.options["name"]}))
    for feature in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_OCCUPANT_ID):
        answer.append(element(NS_DISCO_INFO, "feature", var=feature))
    return answer


def service_items(service, sender, query):
    """disco#items of the service domain: its public rooms, once configured (§6.3)."""
    if query.get("node") is not None:
        raise StanzaError("item-not-found")
    answer = element(NS_DISCO_ITEMS, "query")
    for name in sorted(service.rooms):
        room = service.rooms[name]
        if room.config.public and not room.locked:
            answer.append(element(NS_DISCO_ITEMS, "item", {
                "jid": str(room.jid), "name": room.config.name or name}))
    return answer


def room_info(service, room, sender, type_, query):
    """§6.4: the room's identity, muc_ features and muc#roominfo form. The room
    answers its occupants' self-pings itself (relay.py), which XEP-0410 §3.3 has it
    advertise here, on the room JID, so that clients use it."""
    if query.get("node") == ROOMUSER_NODE:
        return reserved_nick(room, sender)
    if query.get("node") is not None:
        raise StanzaError("item-not-found")
    config = room.config
    answer = element(NS_DISCO_INFO, "query")
    answer.append(element(NS_DISCO_INFO, "identity", {
        "category": "conference", "type": "text", "name": config.name or room.name}))
    features = [
        NS_MUC, NS_OCCUPANT_ID, NS_REGISTER, NS_MUC_REQUEST, NS_SELF_PING_OPTIMIZATION,
        "muc_public" if config.public else "muc_hidden",
        "muc_persistent" if config.persistent else "muc_temporary",
        "muc_membersonly" if config.members_only else "muc_open",
        "muc_moderated" if config.moderated else "muc_unmoderated",
        "muc_nonanonymous" if config.whois == "anyone" else "muc_semianonymous",
        "muc_passwordprotected" if config.password else "muc_unsecured",
    ]
    for feature in features:
        answer.append(element(NS_DISCO_INFO, "feature", var=feature))
    answer.append(room_info_form(config, len(room.occupants), room.subject))
    return answer


def room_items(service, room, sender, type_, query):
    """§6.5: the occupant JIDs of a non-anonymous room; none otherwise, as listing them
    would reveal who is in a room that hides real JIDs."""
    if query.get("node") is not None:
        raise StanzaError("item-not-found")
    answer = element(NS_DISCO_ITEMS, "query")
    if room.config.whois == "anyone":
        for nick in sorted(room.occupants):
            answer.append(element(NS_DISCO_ITEMS, "item", jid=f"{room.jid}/{nick}"))
    return answer


def reserved_nick(room, sender):
    """§7.12: the sender's reserved nick as an identity; empty when none."""
    answer = element(NS_DISCO_INFO, "query", node=ROOMUSER_NODE)
    nick = room.registered.get(str(sender.bare()))
    if nick is not None:
        answer.append(element(NS_DISCO_INFO, "identity", {
            "category": "conference", "type": "text", "name": nick}))
    return answer
