"""
XEP-0045 occupant presence: entering (§7.2, creating the room on first join), further
sessions of a nick (multi-session nicks), presence updates, nick changes (§7.6), leaving
(§7.14) and removal by a moderator or an affiliation change, each broadcast to the room;
the discussion history a joining occupant asks for (§7.2.15).

Every function takes the MUCService (service.py) as C{service}: the rooms, the options and
the sending primitives.
"""
from datetime import datetime, timezone

from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import rules, stanzas
from jabberapp.extensions.muc.names import MUC_X, NS_MUC, STATUS
from jabberapp.extensions.muc.room import Occupant


def receive(service, presence, sender, to, room):
    """A presence to a room JID or an occupant JID (C{room} is None when none exists)."""
    type_ = presence.get("type")
    occupant = room.by_jid.get(sender) if room is not None else None
    if type_ in ("unavailable", "error"):
        if occupant is not None and len(occupant.sessions) > 1:
            leave_session(service, room, occupant, sender, presence)
        elif occupant is not None:
            leave(service, room, occupant, presence if type_ == "unavailable" else None,
                  codes=() if type_ == "unavailable" else (333,))
        return
    if type_ is not None:
        return   # probes and subscriptions are not for rooms
    if to.resource is None:
        raise StanzaError("jid-malformed", "a nick is needed to enter a room")
    if occupant is None:
        join(service, room, presence, sender, to)
    elif occupant.nick != to.resource:
        change_nick(service, room, occupant, to.resource, presence)
    else:
        occupant.presence = presence
        broadcast(service, room, occupant)


def join(service, room, presence, sender, to):
    """A new occupant enters C{room} (created when None) as nick C{to.resource}."""
    nick = to.resource
    created = room is None
    if created:
        room = service.create_room(to.local, sender)
    muc = presence.find(MUC_X)
    password = muc.findtext(f"{{{NS_MUC}}}password") if muc is not None else None
    rules.check_entry(room, sender, nick, password)
    codes = [110]
    if room.config.whois == "anyone":
        codes.append(100)
    taken = room.occupants.get(nick)
    if taken is not None:
        join_session(service, room, taken, sender, codes, muc)
        return
    affiliation = room.affiliation(sender)
    occupant = Occupant(nick, sender, rules.default_role(room.config, affiliation), presence,
                        room.occupant_id(sender))
    shows_jids = rules.sees_real_jids(room.config, occupant)
    for other in room.occupants.values():
        service.send_to(stanzas.occupant_presence(room, other, shows_jids), sender)
    room.add(occupant)
    if created:
        codes.append(201)
    broadcast(service, room, occupant, self_codes=codes)
    send_history(service, room, sender, muc)
    service.send_to(stanzas.subject_message(room), sender)


def join_session(service, room, occupant, sender, codes, muc):
    """
    Another session of an occupant's bare JID enters with its nick (multi-session
    nicks): the others keep seeing one occupant, so only the new session is told the
    room's presences, its own (110), the history and the subject. From now on what is
    sent to the occupant goes to every session.
    """
    room.add_session(occupant, sender)
    shows_jids = rules.sees_real_jids(room.config, occupant)
    for other in room.occupants.values():
        if other is not occupant:
            service.send_to(stanzas.occupant_presence(room, other, shows_jids), sender)
    service.send_to(stanzas.occupant_presence(room, occupant, True, codes), sender)
    send_history(service, room, sender, muc)
    service.send_to(stanzas.subject_message(room), sender)


def leave_session(service, room, occupant, sender, presence):
    """One session of a multi-session occupant leaves: only it hears of it."""
    room.remove_session(occupant, sender)
    status = list(presence.iterchildren(STATUS))
    service.send_to(stanzas.occupant_presence(room, occupant, True, (110,), "unavailable",
                                              status=status), sender)


def broadcast(service, room, occupant, self_codes=(110,), codes=(), type_=None, nick=None,
              actor=None, reason=None, destroy=None, status=()):
    """Send C{occupant}'s presence to every occupant (and to itself even when gone),
    built once per kind of recipient (sees real JIDs or not; is the occupant or not)."""
    built = {}
    recipients = list(room.occupants.values())
    if room.occupants.get(occupant.nick) is not occupant:
        recipients.append(occupant)   # it has left: it still hears of its own exit
    for recipient in recipients:
        is_self = recipient is occupant
        key = (rules.sees_real_jids(room.config, recipient) or is_self, is_self)
        presence = built.get(key)
        if presence is None:
            all_codes = tuple(codes) + (tuple(self_codes) if is_self else ())
            presence = built[key] = stanzas.occupant_presence(
                room, occupant, key[0], all_codes, type_, nick, actor, reason, destroy,
                status)
        service.deliver(presence, recipient)


def leave(service, room, occupant, presence=None, codes=(), actor=None, reason=None):
    """C{occupant} leaves (or is removed with status C{codes})."""
    room.remove(occupant)
    status = ()
    if presence is not None:
        occupant.presence = presence
        status = list(presence.iterchildren(STATUS))   # XEP-0045 §7.14: kept on leave
    broadcast(service, room, occupant, codes=codes, type_="unavailable", actor=actor,
              reason=reason, status=status)
    service.maybe_forget(room)


def remove(service, room, occupant, code, actor=None, reason=None):
    """Remove C{occupant} with status C{code} (301 ban, 307 kick, 321/322 members)."""
    occupant.role = "none"
    leave(service, room, occupant, codes=(code,), actor=actor, reason=reason)


def change_nick(service, room, occupant, nick, presence):
    """XEP-0045 §7.6: 303 unavailable with the new nick, then available as it."""
    rules.check_nick_change(room, occupant, nick)
    broadcast(service, room, occupant, codes=(303,), type_="unavailable", nick=nick)
    room.rename(occupant, nick)
    occupant.presence = presence
    broadcast(service, room, occupant)


def send_history(service, room, jid, muc):
    """XEP-0045 §7.2.15: the history the occupant asked for, with delay stamps."""
    for entry in requested_history(room.history, muc, service.host.clock.seconds()):
        message = stanzas.delayed(room, entry)
        message.set("to", str(jid))
        service.host.send(message)


# -- history (§7.2.15) ----------------------------------------------------------------


def parse_timestamp(text):
    """POSIX seconds of an XEP-0082 date-time; ValueError when it is not one."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ValueError("bad 'since' timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def requested_history(history, muc, now):
    """
    The entries of C{history} (oldest first) that the join's MUC <x/> C{muc} (or None)
    asks for at time C{now}. An unreadable limit means the default history (all that is
    kept), as if no limit was given; an unreadable 'since' is ignored.
    """
    maxstanzas = maxchars = since = None
    request = muc.find(f"{{{NS_MUC}}}history") if muc is not None else None
    if request is not None:
        try:
            if request.get("maxstanzas") is not None:
                maxstanzas = int(request.get("maxstanzas"))
            if request.get("maxchars") is not None:
                maxchars = int(request.get("maxchars"))
            if request.get("seconds") is not None:
                since = now - int(request.get("seconds"))
        except ValueError:
            maxstanzas = maxchars = since = None
        if request.get("since") is not None:
            try:
                since = max(since or 0, parse_timestamp(request.get("since")))
            except ValueError:
                pass
    entries = list(history)
    if since is not None:
        entries = [e for e in entries if e.when >= since]
    if maxstanzas is not None:
        entries = entries[len(entries) - maxstanzas:] if maxstanzas > 0 else []
    if maxchars is not None:
        kept, total = [], 0
        for entry in reversed(entries):
            total += entry.chars
            if total > maxchars:
                break
            kept.append(entry)
        entries = kept[::-1]
    return entries
