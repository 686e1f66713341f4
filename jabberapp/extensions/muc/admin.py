"""
XEP-0045 muc#admin (§8, §9): role and affiliation lists (get) and changes (set), and the
changes themselves -- kick, voice, moderator, member, admin, owner, ban -- as other
modules apply them (owner configuration, nick registration, voice requests).

Every function takes the MUCService (service.py) as C{service}.
"""
from twisted.internet import defer

from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import presence, rules
from jabberapp.extensions.muc.names import NS_MUC_ADMIN
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element


def query(service, room, sender, type_, payload):
    """A muc#admin get (a list) or set (changes, all checked before any is made)."""
    actor_affiliation = room.affiliation(sender)
    actor = room.by_jid.get(sender)
    items = list(payload.iterchildren(f"{{{NS_MUC_ADMIN}}}item"))
    if not items:
        raise StanzaError("bad-request", "Expected an item")
    if type_ == "get":
        return listing(room, actor, actor_affiliation, items[0])
    changes = [checked_change(service, room, actor, actor_affiliation, item)
               for item in items]
    stored = [change() for change in changes]
    stored = [d for d in stored if isinstance(d, defer.Deferred)]
    if stored:
        return defer.gatherResults(stored, consumeErrors=True).addCallback(lambda _: None)
    return None


def listing(room, actor, actor_affiliation, item):
    """The affiliation list or role list one muc#admin get item asks for."""
    answer = element(NS_MUC_ADMIN, "query")
    affiliation = item.get("affiliation")
    role = item.get("role")
    if affiliation is not None:
        if affiliation not in rules.AFFILIATIONS or affiliation == "none":
            raise StanzaError("bad-request", "Unknown affiliation")
        rules.check_list_affiliations(actor_affiliation)
        for jid, value in sorted(room.affiliations.items()):
            if value == affiliation:
                answer.append(element(NS_MUC_ADMIN, "item", affiliation=value, jid=jid))
        return answer
    if role is not None:
        if role not in rules.ROLES or role == "none":
            raise StanzaError("bad-request", "Unknown role")
        rules.check_list_roles(actor)
        for occupant in room.occupants.values():
            if occupant.role == role:
                answer.append(element(NS_MUC_ADMIN, "item", role=role, nick=occupant.nick,
                                      jid=str(occupant.jid),
                                      affiliation=room.affiliation(occupant.jid)))
        return answer
    raise StanzaError("bad-request", "Expected an affiliation or role")


def checked_change(service, room, actor, actor_affiliation, item):
    """Check one muc#admin set item; a function making the change once all passed."""
    reason = item.findtext(f"{{{NS_MUC_ADMIN}}}reason")
    actor_nick = actor.nick if actor is not None else None
    affiliation = item.get("affiliation")
    if affiliation is not None:
        if affiliation not in rules.AFFILIATIONS:
            raise StanzaError("bad-request", "Unknown affiliation")
        try:
            target = JID.parse(item.get("jid") or "").bare()
        except InvalidJID:
            raise StanzaError("jid-malformed", "An affiliation change needs a jid") from None
        rules.check_affiliation_change(room, actor_affiliation, target, affiliation)
        return lambda: set_affiliation(service, room, target, affiliation, actor_nick, reason)
    role = item.get("role")
    if role is None:
        raise StanzaError("bad-request", "Expected an affiliation or role")
    if role not in rules.ROLES:
        raise StanzaError("bad-request", "Unknown role")
    rules.check_role_changer(actor)
    target = room.occupants.get(item.get("nick") or "")
    if target is None:
        raise StanzaError("item-not-found", "No occupant has that nick")
    rules.check_role_change(room, actor_affiliation, target, role)
    return lambda: set_role(service, room, target, role, actor_nick, reason)


def set_role(service, room, occupant, role, actor=None, reason=None):
    """Give C{occupant} C{role}; 'none' kicks it (307)."""
    if occupant.nick not in room.occupants:
        return
    if role == "none":
        presence.remove(service, room, occupant, 307, actor=actor, reason=reason)
        return
    occupant.role = role
    presence.broadcast(service, room, occupant, self_codes=(), actor=actor, reason=reason)


def set_affiliation(service, room, jid, affiliation, actor=None, reason=None):
    """Give bare C{jid} C{affiliation} and apply it to its occupants (§9, §10); a
    Deferred when the room is written through, else None."""
    room.set_affiliation(jid, affiliation)
    if affiliation == "outcast":
        room.unregister(jid)   # a banned user keeps no nick reserved
    stored = service.save(room)
    for occupant in [o for o in room.occupants.values() if o.jid.bare() == jid]:
        code = rules.removal_for(room.config, affiliation)
        if code is not None:
            presence.remove(service, room, occupant, code, actor, reason)
        else:
            occupant.role = rules.role_after(room.config, occupant.role, affiliation)
            presence.broadcast(service, room, occupant, self_codes=(), actor=actor,
                               reason=reason)
    return stored
