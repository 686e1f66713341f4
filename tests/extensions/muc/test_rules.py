"""The MUC rules (rules.py) as pure functions, and their mapping to stanza errors."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import rules
from jabberapp.extensions.muc.config import RoomConfig
from jabberapp.extensions.muc.room import Occupant, Room
from jabberapp.extensions.muc.stanza_errors import ERRORS, stanza_error
from jabberapp.extensions.muc.storage import StoreFailed
from jabberapp.jid import JID

OWNER = JID.parse("owner@example.org/o")
USER = JID.parse("user@example.org/u")


def room(**config):
    """A room owned by OWNER with C{config}."""
    made = Room("r", JID.parse("r@conference.example.org"), RoomConfig(**config))
    made.set_affiliation(OWNER, "owner")
    return made


def occupant(made, jid, nick, role):
    """C{jid} entered as C{nick} with C{role}."""
    joined = Occupant(nick, jid, role)
    made.add(joined)
    return joined


class ErrorTableTests(SynchronousTestCase):
    """Every domain error has its stanza error."""

    def test_every_refusal_mapped(self):
        """Each Refused subclass is in the protocol edge's table, so none reaches a peer
        as internal-server-error."""
        refusals = set(rules.Refused.__subclasses__())
        self.assertEqual(refusals - set(ERRORS), set())

    def test_mapping(self):
        """A refusal becomes its condition and text; a StanzaError stays itself; anything
        else is not mapped."""
        error = stanza_error(rules.Banned())
        self.assertEqual((error.condition, error.text),
                         ("forbidden", "You are banned from this room"))
        self.assertEqual(stanza_error(StoreFailed("r")).condition, "internal-server-error")
        given = StanzaError("bad-request")
        self.assertIs(stanza_error(given), given)
        self.assertIsNone(stanza_error(RuntimeError()))


class EntryTests(SynchronousTestCase):
    """check_entry: who may enter as which nick."""

    def test_locked_room_owner_only(self):
        """A locked room admits its owner only."""
        locked = room()
        locked.locked = True
        rules.check_entry(locked, OWNER, "o", None)
        self.assertRaises(rules.RoomLocked, rules.check_entry, locked, USER, "u", None)

    def test_banned_and_members_only(self):
        """Outcasts never enter; a members-only room wants members."""
        made = room(members_only=True)
        self.assertRaises(rules.MembersOnly, rules.check_entry, made, USER, "u", None)
        made.set_affiliation(USER, "outcast")
        self.assertRaises(rules.Banned, rules.check_entry, made, USER, "u", None)
        made.set_affiliation(USER, "member")
        rules.check_entry(made, USER, "u", None)

    def test_nick_taken_or_reserved(self):
        """Another bare JID's nick is refused; one's own is a further session."""
        made = room()
        occupant(made, OWNER, "o", "moderator")
        self.assertRaises(rules.NickInUse, rules.check_entry, made, USER, "o", None)
        rules.check_entry(made, OWNER.bare().with_resource("other"), "o", None)
        made.register(OWNER, "boss")
        self.assertRaises(rules.NickReserved, rules.check_entry, made, USER, "boss", None)

    def test_full_room_admits_admins(self):
        """A full room refuses a newcomer unless it is an admin or owner."""
        made = room(max_users=1)
        occupant(made, JID.parse("x@example.org/x"), "x", "participant")
        self.assertRaises(rules.RoomFull, rules.check_entry, made, USER, "u", None)
        rules.check_entry(made, OWNER, "o", None)

    def test_password(self):
        """The password is needed by all but owners."""
        made = room(password="secret")
        self.assertRaises(rules.PasswordRequired, rules.check_entry, made, USER, "u", None)
        self.assertRaises(rules.PasswordRequired, rules.check_entry, made, USER, "u", "no")
        rules.check_entry(made, USER, "u", "secret")
        rules.check_entry(made, OWNER, "o", None)


class RoleTests(SynchronousTestCase):
    """Roles on entry, after an affiliation change, and who changes them."""

    def test_default_role(self):
        """Owners and admins moderate; in a moderated room the unaffiliated are visitors."""
        self.assertEqual(rules.default_role(RoomConfig(), "admin"), "moderator")
        self.assertEqual(rules.default_role(RoomConfig(), "none"), "participant")
        self.assertEqual(rules.default_role(RoomConfig(moderated=True), "none"), "visitor")
        self.assertEqual(rules.default_role(RoomConfig(moderated=True), "member"),
                         "participant")

    def test_affiliation_change_effects(self):
        """A ban removes with 301, losing membership of a members-only room with 321; a
        demoted moderator falls back to its affiliation's default role."""
        self.assertEqual(rules.removal_for(RoomConfig(), "outcast"), 301)
        self.assertEqual(rules.removal_for(RoomConfig(members_only=True), "none"), 321)
        self.assertIsNone(rules.removal_for(RoomConfig(), "none"))
        self.assertEqual(rules.role_after(RoomConfig(), "moderator", "member"), "participant")
        self.assertEqual(rules.role_after(RoomConfig(), "visitor", "member"), "visitor")
        self.assertEqual(rules.role_after(RoomConfig(), "visitor", "admin"), "moderator")

    def test_role_change(self):
        """Moderators change roles; only admins touch moderators; nobody touches an
        occupant of higher affiliation."""
        made = room()
        admin = JID.parse("admin@example.org/a")
        made.set_affiliation(admin, "admin")
        target = occupant(made, USER, "u", "moderator")
        self.assertRaises(rules.ModeratorsOnlyRoles, rules.check_role_changer, None)
        self.assertRaises(rules.AdminsOnlyModerators, rules.check_role_change, made,
                          "member", target, "participant")
        rules.check_role_change(made, "admin", target, "participant")
        boss = occupant(made, OWNER, "o", "moderator")
        self.assertRaises(rules.AffiliationTooHigh, rules.check_role_change, made, "admin",
                          boss, "participant")

    def test_affiliation_change(self):
        """Admins change affiliations below admin; owners all; the last owner stays."""
        made = room()
        self.assertRaises(rules.AdminsOnlyAffiliations, rules.check_affiliation_change,
                          made, "member", USER.bare(), "member")
        self.assertRaises(rules.OwnersOnlyAdmins, rules.check_affiliation_change, made,
                          "admin", USER.bare(), "admin")
        rules.check_affiliation_change(made, "admin", USER.bare(), "member")
        self.assertRaises(rules.LastOwner, rules.check_affiliation_change, made, "owner",
                          OWNER.bare(), "admin")


class SpeakingTests(SynchronousTestCase):
    """Who may speak, change the subject and invite."""

    def test_subject(self):
        """Moderators change the subject; participants only when the room allows it."""
        made = room()
        speaker = occupant(made, USER, "u", "participant")
        self.assertRaises(rules.SubjectLocked, rules.check_subject, made, speaker)
        rules.check_subject(room(changesubject=True), speaker)
        self.assertRaises(rules.VisitorSilenced, rules.check_speak,
                          Occupant("v", USER, "visitor"))

    def test_invite(self):
        """In a members-only room only admins invite, unless invites are allowed; the
        invitee becomes a member."""
        made = room(members_only=True)
        self.assertRaises(rules.InvitesRestricted, rules.check_invite, made, "member")
        rules.check_invite(made, "admin")
        rules.check_invite(room(members_only=True, allowinvites=True), "member")
        self.assertTrue(rules.invite_makes_member(made, USER))
        self.assertFalse(rules.invite_makes_member(room(), USER))
