"""
The stanzas a MUC room sends, built from room state: occupant presence with its muc#user
item and status codes (XEP-0045 §7.2), the subject message, status notices, delayed
history copies (XEP-0203). Built without 'to': the sender copies them per recipient. The
data forms a room sends are defined in config.py.
"""
import copy
from datetime import datetime, timezone

from jabberapp.extensions.muc.names import (
    MUC_USER_X, MUC_X, NS_DELAY, NS_MUC_USER, NS_OCCUPANT_ID, OCCUPANT_ID)
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT


def copy_into(target, children, skip=()):
    """Append deep copies of the element C{children} (not comments, not tags in C{skip},
    without their tail text) to C{target}."""
    for child in children:
        if isinstance(child.tag, str) and child.tag not in skip:
            kept = copy.deepcopy(child)
            kept.tail = None
            target.append(kept)


def occupant_presence(room, occupant, show_jid, codes=(), type_=None, nick=None, actor=None,
                      reason=None, destroy=None, status=()):
    """
    A presence of C{occupant} from its occupant JID (no 'to' yet), with the muc#user
    item (its real JID when C{show_jid}), the status C{codes}, for a nick change the
    new C{nick}, and for a leave the <status/> elements C{status} of its unavailable
    presence.
    """
    presence = element(NS_CLIENT, "presence", {"from": f"{room.jid}/{occupant.nick}",
                                               "type": type_})
    if type_ is None and occupant.presence is not None:
        copy_into(presence, occupant.presence, skip=(MUC_X, MUC_USER_X, OCCUPANT_ID))
    copy_into(presence, status)
    x = element(NS_MUC_USER, "x")
    if destroy is not None:
        item = element(NS_MUC_USER, "item", affiliation="none", role="none")
    else:
        item = element(NS_MUC_USER, "item", affiliation=room.affiliation(occupant.jid),
                       role=occupant.role)
    if show_jid:
        item.set("jid", str(occupant.jid))
    if nick is not None:
        item.set("nick", nick)
    if actor is not None:
        item.append(element(NS_MUC_USER, "actor", nick=actor))
    if reason:
        item.append(element(NS_MUC_USER, "reason", text=reason))
    x.append(item)
    if destroy is not None:
        x.append(destroy)
    for code in codes:
        x.append(element(NS_MUC_USER, "status", code=str(code)))
    presence.append(x)
    if occupant.occupant_id:
        presence.append(element(NS_OCCUPANT_ID, "occupant-id", id=occupant.occupant_id))
    return presence


def subject_message(room):
    """The subject message sent last on join (an empty <subject/> when none is set)."""
    sender = f"{room.jid}/{room.subject_nick}" if room.subject_nick else str(room.jid)
    message = element(NS_CLIENT, "message", {"from": sender, "type": "groupchat"})
    message.append(element(NS_CLIENT, "subject", text=room.subject or None))
    return message


def status_message(room, codes):
    """A message from the room itself carrying status C{codes} (XEP-0045 §10.2.1)."""
    message = element(NS_CLIENT, "message", {"from": str(room.jid), "type": "groupchat"})
    x = element(NS_MUC_USER, "x")
    for code in codes:
        x.append(element(NS_MUC_USER, "status", code=str(code)))
    message.append(x)
    return message


def groupchat_message(room, occupant, message):
    """The room's copy of C{occupant}'s groupchat C{message}: from its occupant JID, with
    its XEP-0421 occupant id (one the sender put in is replaced)."""
    out = element(NS_CLIENT, "message", {"from": f"{room.jid}/{occupant.nick}",
                                         "type": "groupchat", "id": message.get("id")})
    copy_into(out, message, skip=(OCCUPANT_ID,))
    out.append(element(NS_OCCUPANT_ID, "occupant-id", id=occupant.occupant_id))
    return out


def timestamp(seconds):
    """XEP-0082 date-time in UTC with milliseconds."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def delayed(room, entry):
    """A copy of the history C{entry}'s message with its XEP-0203 delay stamp."""
    message = copy.deepcopy(entry.message)
    message.append(element(NS_DELAY, "delay", {"from": str(room.jid),
                                               "stamp": timestamp(entry.when)}))
    return message

