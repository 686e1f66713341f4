"""
XEP-0045 rules: roles, affiliations, and who may do what in a room.

Pure functions over room state (L{room.Room}, L{room.Occupant}, L{config.RoomConfig}): they
read, decide and raise; they never build or read a stanza and never change a room. A
refusal is a L{Refused} subclass naming the rule that refused; the protocol edge maps each
to its stanza error in one table (L{service.REFUSALS}), as idavoll's _errorMap does.
"""
AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
ROLES = ("moderator", "participant", "visitor", "none")
RANK = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}


class Refused(Exception):
    """A request the room's rules do not allow; subclasses say which rule."""


class LocalCreatorsOnly(Refused):
    """Only users of this host may create rooms (option creators=local)."""


class TooManyRooms(Refused):
    """The service already holds max_rooms rooms."""


class RoomLocked(Refused):
    """A new room is closed to all but its owners until configured (§10.1)."""


class Banned(Refused):
    """Outcasts may neither enter nor register (§7.2.7)."""


class MembersOnly(Refused):
    """Only members and above may enter or register in a members-only room (§7.2.6)."""


class NickInUse(Refused):
    """Another occupant has that nick (§7.2.9, §7.6)."""


class NickReserved(Refused):
    """Another bare JID reserved that nick (§7.10)."""


class NickUnavailable(Refused):
    """A nick to register is reserved for, or used by, another bare JID (§7.10)."""


class RoomFull(Refused):
    """The room holds its maximum number of occupants (§7.2.10)."""


class PasswordRequired(Refused):
    """The room's password was not given (§7.2.5)."""


class VisitorSilenced(Refused):
    """Visitors may not send groupchat messages in a moderated room (§7.4)."""


class SubjectLocked(Refused):
    """Only moderators (or participants, when allowed) may change the subject (§8.1)."""


class InvitesRestricted(Refused):
    """Only admins invite to a members-only room unless invites are allowed (§7.8)."""


class OwnersOnly(Refused):
    """Only owners configure or destroy a room (§10)."""


class AdminsOnlyLists(Refused):
    """Only admins and owners see affiliation lists (§9)."""


class ModeratorsOnlyLists(Refused):
    """Only moderators see role lists (§8)."""


class AdminsOnlyAffiliations(Refused):
    """Only admins and owners change affiliations (§9)."""


class OwnersOnlyAdmins(Refused):
    """Only owners grant or revoke admin and owner affiliations (§10.6, §10.7)."""


class LastOwner(Refused):
    """A room keeps at least one owner (§10.7)."""


class ModeratorsOnlyRoles(Refused):
    """Only moderators change roles (§8)."""


class AdminsOnlyModerators(Refused):
    """Only admins and owners grant or revoke the moderator role (§9.6, §9.7)."""


class AffiliationTooHigh(Refused):
    """A role change may not touch an occupant of higher (or admin) affiliation (§8.4)."""


class ModeratorsOnlyVoice(Refused):
    """Only moderators answer voice requests (§8.6)."""


def at_least(affiliation, floor):
    """True when C{affiliation} ranks at or above C{floor}."""
    return RANK[affiliation] >= RANK[floor]


# -- roles --------------------------------------------------------------------------


def default_role(config, affiliation):
    """The role an occupant of C{affiliation} gets on entering (§5.1.2)."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if config.moderated and affiliation == "none":
        return "visitor"
    return "participant"


def sees_real_jids(config, viewer):
    """True when the occupant C{viewer} sees real JIDs (§7.2.3, §7.2.4)."""
    return config.whois == "anyone" or viewer.role == "moderator"


# -- creating and entering ----------------------------------------------------------


def check_create(options, creator, host_domain, room_count):
    """May C{creator} create a room on a service holding C{room_count} rooms?"""
    if options["creators"] == "local" and creator.domain != host_domain:
        raise LocalCreatorsOnly()
    if room_count >= options["max_rooms"]:
        raise TooManyRooms()


def check_entry(room, jid, nick, password):
    """
    May C{jid} enter C{room} as C{nick} giving C{password} (None when none)? A nick its
    own bare JID already uses is a further session of that occupant (multi-session nicks).
    """
    affiliation = room.affiliation(jid)
    if room.locked and affiliation != "owner":
        raise RoomLocked()
    if affiliation == "outcast":
        raise Banned()
    if room.config.members_only and not at_least(affiliation, "member"):
        raise MembersOnly()
    taken = room.occupants.get(nick)
    if taken is not None and taken.jid.bare() != jid.bare():
        raise NickInUse()
    if room.nick_taken_from(jid, nick):
        raise NickReserved()
    if (taken is None and len(room.occupants) >= room.config.max_users
            and not at_least(affiliation, "admin")):
        raise RoomFull()
    if room.config.password and affiliation != "owner" and password != room.config.password:
        raise PasswordRequired()


def check_nick_change(room, occupant, nick):
    """May C{occupant} take C{nick}?"""
    if nick in room.occupants:
        raise NickInUse()
    if room.nick_taken_from(occupant.jid, nick):
        raise NickReserved()


# -- speaking and inviting ----------------------------------------------------------


def check_speak(occupant):
    """May C{occupant} send a groupchat message?"""
    if occupant.role == "visitor":
        raise VisitorSilenced()


def check_subject(room, occupant):
    """May C{occupant} change the subject?"""
    if not (occupant.role == "moderator"
            or (room.config.changesubject and occupant.role == "participant")):
        raise SubjectLocked()


def check_invite(room, affiliation):
    """May an occupant of C{affiliation} invite others to C{room}?"""
    if (room.config.members_only and not room.config.allowinvites
            and not at_least(affiliation, "admin")):
        raise InvitesRestricted()


def invite_makes_member(room, invitee):
    """An invitation to a members-only room makes an unaffiliated invitee a member."""
    return room.config.members_only and room.affiliation(invitee) == "none"


def check_grant_voice(occupant):
    """May C{occupant} answer a voice request?"""
    if occupant.role != "moderator":
        raise ModeratorsOnlyVoice()


# -- nickname registration (§7.10) --------------------------------------------------


def check_register(room, affiliation):
    """May a user of C{affiliation} register (or see the form) in C{room}?"""
    if affiliation == "outcast":
        raise Banned()
    if room.config.members_only and not at_least(affiliation, "member"):
        # Registering makes a member; in a members-only room only admins may.
        raise MembersOnly()


def check_reserve(room, jid, nick):
    """May C{jid} reserve C{nick}: no other bare JID reserved or uses it?"""
    holder = room.occupants.get(nick)
    if room.nick_taken_from(jid, nick) or (
            holder is not None and holder.jid.bare() != jid.bare()):
        raise NickUnavailable()


def affiliation_on_register(affiliation):
    """The affiliation registering gives (None: unchanged): it makes a user a member."""
    return "member" if affiliation == "none" else None


def affiliation_on_unregister(config, affiliation):
    """The affiliation releasing a nick leaves (None: unchanged): the membership goes,
    except in a members-only room, where admins keep the member list."""
    if affiliation == "member" and not config.members_only:
        return "none"
    return None


# -- owners and admins ----------------------------------------------------------------


def check_owner(room, jid):
    """Is C{jid} an owner of C{room}?"""
    if room.affiliation(jid) != "owner":
        raise OwnersOnly()


def check_list_affiliations(actor_affiliation):
    """May a user of C{actor_affiliation} see an affiliation list?"""
    if not at_least(actor_affiliation, "admin"):
        raise AdminsOnlyLists()


def check_list_roles(actor):
    """May C{actor} (an Occupant, or None for a non-occupant) see a role list?"""
    if actor is None or actor.role != "moderator":
        raise ModeratorsOnlyLists()


def check_affiliation_change(room, actor_affiliation, target, affiliation):
    """May a user of C{actor_affiliation} give bare JID C{target} C{affiliation}?"""
    current = room.affiliation(target)
    if not at_least(actor_affiliation, "admin"):
        raise AdminsOnlyAffiliations()
    if actor_affiliation != "owner" and (at_least(current, "admin")
                                         or at_least(affiliation, "admin")):
        raise OwnersOnlyAdmins()
    if current == "owner" and affiliation != "owner" and room.owners() == [str(target)]:
        raise LastOwner()


def check_role_changer(actor):
    """May C{actor} (an Occupant, or None) change roles at all?"""
    if actor is None or actor.role != "moderator":
        raise ModeratorsOnlyRoles()


def check_role_change(room, actor_affiliation, target, role):
    """May a moderator of C{actor_affiliation} give occupant C{target} C{role}?"""
    target_affiliation = room.affiliation(target.jid)
    if role == "moderator" or target.role == "moderator":
        if not at_least(actor_affiliation, "admin"):
            raise AdminsOnlyModerators()
    if RANK[target_affiliation] > RANK[actor_affiliation] or (
            at_least(target_affiliation, "admin") and role != "moderator"):
        raise AffiliationTooHigh()


def removal_for(config, affiliation):
    """The status code an occupant given C{affiliation} is removed with: 301 (banned),
    321 (no longer a member of a members-only room), or None when it stays."""
    if affiliation == "outcast":
        return 301
    if config.members_only and affiliation == "none":
        return 321
    return None


def role_after(config, role, affiliation):
    """The role an occupant of C{role} keeps when its affiliation becomes
    C{affiliation}: owners and admins become moderators, and a moderator of a lower
    affiliation falls back to that affiliation's default role."""
    if affiliation in ("owner", "admin") or role == "moderator":
        return default_role(config, affiliation)
    return role


def excluded_by_members_only(room, occupant):
    """True when C{occupant} must leave C{room} now that it is members-only (§10.2)."""
    return not at_least(room.affiliation(occupant.jid), "member")
