"""
The MUC protocol edge's one table from domain errors to stanza errors: each refusal of
the rules (rules.py) and a failed write (storage.py) become the XEP-0045 error condition
and text a client sees, as idavoll's _errorMap does.
"""
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import rules
from jabberapp.extensions.muc.storage import StoreFailed

# domain error -> (condition, text)
ERRORS = {
    rules.LocalCreatorsOnly: ("not-allowed", "Only local users may create rooms"),
    rules.TooManyRooms: ("not-allowed", "The service holds its maximum number of rooms"),
    rules.RoomLocked: ("item-not-found", "This room is locked until it is configured"),
    rules.Banned: ("forbidden", "You are banned from this room"),
    rules.MembersOnly: ("registration-required", "This room is members-only"),
    rules.NickInUse: ("conflict", "That nickname is already in use"),
    rules.NickReserved: ("conflict", "That nickname is reserved by another user"),
    rules.NickUnavailable: ("conflict", "That nickname is reserved or in use"),
    rules.RoomFull: ("service-unavailable", "This room is full"),
    rules.PasswordRequired: ("not-authorized", "A password is required"),
    rules.VisitorSilenced: ("forbidden", "Visitors may not speak in this moderated room"),
    rules.SubjectLocked: ("forbidden", "You may not change the subject"),
    rules.InvitesRestricted: ("forbidden", "Only admins may invite to this room"),
    rules.OwnersOnly: ("forbidden", "Only owners may configure this room"),
    rules.AdminsOnlyLists: ("forbidden", "Only admins may see affiliation lists"),
    rules.ModeratorsOnlyLists: ("forbidden", "Only moderators may see role lists"),
    rules.AdminsOnlyAffiliations: ("forbidden", "Only admins may change affiliations"),
    rules.OwnersOnlyAdmins: ("not-allowed", "Only owners may change admins and owners"),
    rules.LastOwner: ("conflict", "A room needs at least one owner"),
    rules.ModeratorsOnlyRoles: ("forbidden", "Only moderators may change roles"),
    rules.AdminsOnlyModerators: ("not-allowed", "Only admins may change moderators"),
    rules.AffiliationTooHigh: ("not-allowed", "That occupant's affiliation is too high"),
    rules.ModeratorsOnlyVoice: ("forbidden", "Only moderators may grant voice"),
    StoreFailed: ("internal-server-error", None),
}
DOMAIN_ERRORS = (rules.Refused, StoreFailed)


def stanza_error(error):
    """The StanzaError a client gets for C{error}: itself when it is one, its entry in
    L{ERRORS} for a domain error; None for anything else (our bug: log it)."""
    if isinstance(error, StanzaError):
        return error
    entry = ERRORS.get(type(error))
    if entry is None:
        return None
    condition, text = entry
    return StanzaError(condition, text)
