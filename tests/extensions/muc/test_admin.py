"""XEP-0045 configuration, entry restrictions, roles, affiliations and destruction."""
from jabberapp.jid import JID
from tests.extensions.muc.helpers import (
    ALICE, BOB, CAROL, NS_ADMIN, NS_DATA, NS_OWNER, NS_USER, MUCTestCase, codes, item, messages,
    presences)


def admin(*items):
    """A muc#admin query with C{items}."""
    return f"<query xmlns='{NS_ADMIN}'>{''.join(items)}</query>"


class ConfigTests(MUCTestCase):
    """The muc#owner configuration form."""

    def test_get_form(self):
        """The owner gets the muc#roomconfig form with the current values."""
        self.room_with()
        reply = self.iq(ALICE, "get", f"<query xmlns='{NS_OWNER}'/>")
        form = reply.find(f"{{{NS_OWNER}}}query/{{{NS_DATA}}}x")
        fields = {f.get("var"): f.findtext(f"{{{NS_DATA}}}value")
                  for f in form.iterchildren(f"{{{NS_DATA}}}field")}
        self.assertEqual(fields["FORM_TYPE"], "http://jabber.org/protocol/muc#roomconfig")
        self.assertEqual(fields["muc#roomconfig_persistentroom"], "0")
        self.assertEqual(fields["muc#roomconfig_maxusers"], "200")

    def test_maxusers_choices_up_to_service_maximum(self):
        """A room whose maximum was lowered still offers the service's maximum among the
        muc#roomconfig_maxusers choices, so its owner can raise it again."""
        self.room_with()
        self.assertEqual(self.configure(ALICE, {"muc#roomconfig_maxusers": "20"}).get("type"),
                         "result")
        reply = self.iq(ALICE, "get", f"<query xmlns='{NS_OWNER}'/>")
        field = [f for f in reply.iter(f"{{{NS_DATA}}}field")
                 if f.get("var") == "muc#roomconfig_maxusers"][0]
        choices = [o.findtext(f"{{{NS_DATA}}}value") for o in field.iter(f"{{{NS_DATA}}}option")]
        self.assertEqual((field.get("type"), field.findtext(f"{{{NS_DATA}}}value")),
                         ("list-single", "20"))
        self.assertIn("200", choices)

    def test_non_owner_forbidden(self):
        """Someone who is not an owner may not get or submit the form."""
        self.room_with((BOB, "bob"))
        reply = self.iq(BOB, "get", f"<query xmlns='{NS_OWNER}'/>")
        self.assertEqual(self.error_condition(reply), "forbidden")

    def test_bad_values(self):
        """Bad booleans, numbers or whois values are not-acceptable and change nothing."""
        self.room_with()
        for var, value in (("muc#roomconfig_moderatedroom", "maybe"),
                           ("muc#roomconfig_maxusers", "0"),
                           ("muc#roomconfig_maxusers", "many"),
                           ("muc#roomconfig_historylength", "5000"),
                           ("muc#roomconfig_whois", "everybody")):
            self.assertEqual(self.error_condition(self.configure(ALICE, {var: value})),
                             "not-acceptable")
        self.assertEqual(self.service.rooms["room"].config.max_users, 200)

    def test_wrong_form_type(self):
        """A form of another FORM_TYPE is bad-request."""
        self.room_with()
        reply = self.configure(ALICE, {"FORM_TYPE": "urn:other"})
        self.assertEqual(self.error_condition(reply), "bad-request")

    def test_password_without_secret(self):
        """Asking for a password without giving one is not-acceptable."""
        self.room_with()
        reply = self.configure(ALICE, {"muc#roomconfig_passwordprotectedroom": "1"})
        self.assertEqual(self.error_condition(reply), "not-acceptable")

    def test_cancel_destroys_locked_room(self):
        """Cancelling the form of a new locked room destroys it."""
        self.join(ALICE, "alice")
        reply = self.iq(ALICE, "set", f"<query xmlns='{NS_OWNER}'>"
                                      f"<x xmlns='{NS_DATA}' type='cancel'/></query>")
        self.assertEqual(reply.get("type"), "result")
        self.assertNotIn("room", self.service.rooms)

    def test_config_change_notice(self):
        """Occupants get 104 for a change and 172 when the room becomes non-anonymous."""
        self.room_with((BOB, "bob"))
        self.configure(ALICE, {"muc#roomconfig_whois": "anyone"})
        self.assertEqual(codes(messages(self.received(BOB))[-1]), {104, 172})


class EntryTests(MUCTestCase):
    """Entry restrictions of the configuration."""

    def test_password(self):
        """A password room refuses a missing or wrong password with not-authorized."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_passwordprotectedroom": "1",
                               "muc#roomconfig_roomsecret": "pw"})
        got = self.join(BOB, "bob")
        self.assertEqual(self.error_condition(got[-1]), "not-authorized")
        self.assertIsNotNone(got[-1].find("{http://jabber.org/protocol/muc}x"))
        got = self.join(BOB, "bob", payload="<x xmlns='http://jabber.org/protocol/muc'>"
                                            "<password>nope</password></x>")
        self.assertEqual(self.error_condition(got[-1]), "not-authorized")
        got = self.join(BOB, "bob", payload="<x xmlns='http://jabber.org/protocol/muc'>"
                                            "<password>pw</password></x>")
        self.assertEqual(codes(presences(got)[-1]), {110})

    def test_members_only(self):
        """A members-only room refuses non-members with registration-required."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_membersonly": "1"})
        self.assertEqual(self.error_condition(self.join(BOB, "bob")[-1]),
                         "registration-required")
        self.iq(ALICE, "set", admin("<item affiliation='member' jid='bob@example.org'/>"))
        self.assertEqual(item(presences(self.join(BOB, "bob"))[-1])["affiliation"], "member")

    def test_members_only_removes_non_members(self):
        """Switching to members-only removes non-members with 322."""
        self.room_with((BOB, "bob"))
        self.configure(ALICE, {"muc#roomconfig_membersonly": "1"})
        self.assertEqual(codes(presences(self.received(BOB))[-1]), {322, 110})
        self.assertNotIn("bob", self.service.rooms["room"].occupants)

    def test_max_users(self):
        """A full room refuses newcomers with service-unavailable, but not admins."""
        self.room_with((BOB, "bob"))
        self.configure(ALICE, {"muc#roomconfig_maxusers": "2"})
        self.assertEqual(self.error_condition(self.join(CAROL, "carol")[-1]),
                         "service-unavailable")
        self.iq(ALICE, "set", admin("<item affiliation='admin' jid='carol@example.org'/>"))
        self.assertEqual(codes(presences(self.join(CAROL, "carol"))[-1]), {110})

    def test_banned(self):
        """An outcast is refused with forbidden."""
        self.room_with()
        self.iq(ALICE, "set", admin("<item affiliation='outcast' jid='bob@example.org'/>"))
        self.assertEqual(self.error_condition(self.join(BOB, "bob")[-1]), "forbidden")


class RoleTests(MUCTestCase):
    """Kick, voice and moderator roles."""

    def test_kick(self):
        """A moderator kicks a participant: 307 with actor and reason, then gone."""
        self.room_with((BOB, "bob"), (CAROL, "carol"))
        self.clear(BOB, CAROL)
        reply = self.iq(ALICE, "set", admin("<item nick='bob' role='none'>"
                                            "<reason>spam</reason></item>"))
        self.assertEqual(reply.get("type"), "result")
        kicked = presences(self.received(BOB))[-1]
        self.assertEqual((kicked.get("type"), codes(kicked)), ("unavailable", {307, 110}))
        self.assertEqual(codes(presences(self.received(CAROL))[-1]), {307})
        x_item = kicked.find(f"{{{NS_USER}}}x/{{{NS_USER}}}item")
        self.assertEqual(x_item.find(f"{{{NS_USER}}}actor").get("nick"), "alice")
        self.assertEqual(x_item.findtext(f"{{{NS_USER}}}reason"), "spam")
        self.assertNotIn("bob", self.service.rooms["room"].occupants)

    def test_participant_cannot_kick(self):
        """A participant may not kick: forbidden."""
        self.room_with((BOB, "bob"), (CAROL, "carol"))
        reply = self.iq(BOB, "set", admin("<item nick='carol' role='none'/>"))
        self.assertEqual(self.error_condition(reply), "forbidden")

    def test_cannot_kick_owner(self):
        """A moderator who is no admin may not kick an owner: not-allowed."""
        self.room_with((BOB, "bob"))
        room = self.service.rooms["room"]
        room.occupants["bob"].role = "moderator"
        reply = self.iq(BOB, "set", admin("<item nick='alice' role='none'/>"))
        self.assertEqual(self.error_condition(reply), "not-allowed")

    def test_unknown_nick(self):
        """A role change for an unknown nick is item-not-found."""
        self.room_with()
        reply = self.iq(ALICE, "set", admin("<item nick='ghost' role='none'/>"))
        self.assertEqual(self.error_condition(reply), "item-not-found")

    def test_voice(self):
        """Granting and revoking voice in a moderated room changes the role."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_moderatedroom": "1"})
        self.join(BOB, "bob")
        self.iq(ALICE, "set", admin("<item nick='bob' role='participant'/>"))
        self.assertEqual(item(self.received(BOB)[-1])["role"], "participant")
        self.iq(ALICE, "set", admin("<item nick='bob' role='visitor'/>"))
        self.assertEqual(self.service.rooms["room"].occupants["bob"].role, "visitor")

    def test_role_list(self):
        """A moderator lists the participants."""
        self.room_with((BOB, "bob"))
        reply = self.iq(ALICE, "get", admin("<item role='participant'/>"))
        self.assertEqual([i.get("nick") for i in reply[0]], ["bob"])


class AffiliationTests(MUCTestCase):
    """Ban, member, admin and owner lists."""

    def test_ban_occupant(self):
        """Banning an occupant removes it with 301."""
        self.room_with((BOB, "bob"))
        self.iq(ALICE, "set", admin("<item affiliation='outcast' jid='bob@example.org'/>"))
        self.assertEqual(codes(presences(self.received(BOB))[-1]), {301, 110})
        self.assertNotIn("bob", self.service.rooms["room"].occupants)

    def test_lists(self):
        """Affiliation lists are given to admins and changed in one request."""
        self.room_with()
        self.iq(ALICE, "set", admin("<item affiliation='member' jid='bob@example.org'/>",
                                    "<item affiliation='member' jid='carol@example.org'/>"))
        reply = self.iq(ALICE, "get", admin("<item affiliation='member'/>"))
        self.assertEqual([i.get("jid") for i in reply[0]],
                         ["bob@example.org", "carol@example.org"])
        reply = self.iq(ALICE, "get", admin("<item affiliation='owner'/>"))
        self.assertEqual([i.get("jid") for i in reply[0]], ["alice@example.org"])

    def test_list_forbidden(self):
        """A participant may not see or change affiliation lists."""
        self.room_with((BOB, "bob"))
        self.assertEqual(self.error_condition(
            self.iq(BOB, "get", admin("<item affiliation='member'/>"))), "forbidden")
        self.assertEqual(self.error_condition(
            self.iq(BOB, "set", admin("<item affiliation='member' jid='x@example.org'/>"))),
            "forbidden")

    def test_admin_limits(self):
        """An admin may add members but not admins or owners."""
        self.room_with()
        self.iq(ALICE, "set", admin("<item affiliation='admin' jid='bob@example.org'/>"))
        self.join(BOB, "bob")
        self.assertEqual(item(presences(self.received(BOB))[-1])["role"], "moderator")
        reply = self.iq(BOB, "set", admin("<item affiliation='member' jid='c@example.org'/>"))
        self.assertEqual(reply.get("type"), "result")
        reply = self.iq(BOB, "set", admin("<item affiliation='owner' jid='c@example.org'/>"))
        self.assertEqual(self.error_condition(reply), "not-allowed")
        reply = self.iq(BOB, "set", admin("<item affiliation='none' jid='alice@example.org'/>"))
        self.assertEqual(self.error_condition(reply), "not-allowed")

    def test_atomic(self):
        """When one item of a request is refused, none is applied."""
        self.room_with()
        self.iq(ALICE, "set", admin("<item affiliation='admin' jid='bob@example.org'/>"))
        self.join(BOB, "bob")
        self.iq(BOB, "set", admin("<item affiliation='member' jid='c@example.org'/>",
                                  "<item affiliation='owner' jid='d@example.org'/>"))
        self.assertEqual(self.service.rooms["room"].affiliation(JID.parse("c@example.org")),
                         "none")

    def test_last_owner(self):
        """The only owner cannot give up ownership: conflict."""
        self.room_with()
        reply = self.iq(ALICE, "set", admin("<item affiliation='member' "
                                            "jid='alice@example.org'/>"))
        self.assertEqual(self.error_condition(reply), "conflict")

    def test_bad_items(self):
        """Unknown affiliations and missing JIDs are refused."""
        self.room_with()
        self.assertEqual(self.error_condition(self.iq(ALICE, "set", admin(
            "<item affiliation='king' jid='b@example.org'/>"))), "bad-request")
        self.assertEqual(self.error_condition(self.iq(ALICE, "set", admin(
            "<item affiliation='member'/>"))), "jid-malformed")
        self.assertEqual(self.error_condition(self.iq(ALICE, "set", admin())), "bad-request")


class DestroyTests(MUCTestCase):
    """Destroying rooms."""

    def test_destroy(self):
        """The owner destroys the room; occupants learn the alternate venue and reason."""
        self.room_with((BOB, "bob"))
        reply = self.iq(ALICE, "set", f"<query xmlns='{NS_OWNER}'><destroy "
                                      f"jid='other@conference.example.org'><reason>moved"
                                      "</reason></destroy></query>")
        self.assertEqual(reply.get("type"), "result")
        gone = presences(self.received(BOB))[-1]
        self.assertEqual(gone.get("type"), "unavailable")
        destroy = gone.find(f"{{{NS_USER}}}x/{{{NS_USER}}}destroy")
        self.assertEqual(destroy.get("jid"), "other@conference.example.org")
        self.assertEqual(destroy.findtext(f"{{{NS_USER}}}reason"), "moved")
        self.assertNotIn("room", self.service.rooms)

    def test_destroy_forbidden(self):
        """Only an owner may destroy a room."""
        self.room_with((BOB, "bob"))
        reply = self.iq(BOB, "set", f"<query xmlns='{NS_OWNER}'><destroy/></query>")
        self.assertEqual(self.error_condition(reply), "forbidden")
        self.assertIn("room", self.service.rooms)
