"""XEP-0045 §7.10 nickname registration and §7.12 discovery of the reserved nick."""
from jabberapp.extensions.muc import muc
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost
from tests.extensions.muc.helpers import (
    ALICE, BOB, CAROL, NS_DATA, ROOM, MUCTestCase, codes, item, presences)

NS_REGISTER = "jabber:iq:register"
NS_INFO = "http://jabber.org/protocol/disco#info"
REGISTER_FORM = "http://jabber.org/protocol/muc#register"


def submission(nick, form_type=REGISTER_FORM):
    """The muc#register form submitting C{nick}."""
    return (f"<query xmlns='{NS_REGISTER}'><x xmlns='{NS_DATA}' type='submit'>"
            f"<field var='FORM_TYPE'><value>{form_type}</value></field>"
            f"<field var='muc#register_roomnick'><value>{nick}</value></field></x></query>")


class RegistrationTests(MUCTestCase):
    """Reserving, using and releasing a nick in a room."""

    def register(self, jid, nick, room=ROOM):
        """Submit the registration form; the reply."""
        return self.iq(jid, "set", submission(nick), to=room, id_="reg")

    def test_form(self):
        """An unregistered user gets the muc#register form with the required nick field."""
        self.room_with()
        reply = self.iq(BOB, "get", f"<query xmlns='{NS_REGISTER}'/>")
        self.assertEqual(reply.get("type"), "result")
        form = reply.find(f"{{{NS_REGISTER}}}query/{{{NS_DATA}}}x")
        self.assertEqual(form.get("type"), "form")
        fields = {f.get("var"): f for f in form.iterchildren(f"{{{NS_DATA}}}field")}
        self.assertEqual(fields["FORM_TYPE"].findtext(f"{{{NS_DATA}}}value"), REGISTER_FORM)
        self.assertIsNotNone(fields["muc#register_roomnick"].find(f"{{{NS_DATA}}}required"))

    def test_register_makes_member(self):
        """Registering in an open room reserves the nick and makes the user a member."""
        self.room_with()
        self.assertEqual(self.register(BOB, "bobby").get("type"), "result")
        room = self.service.rooms["room"]
        self.assertEqual(room.registered, {"bob@example.org": "bobby"})
        self.assertEqual(room.affiliations["bob@example.org"], "member")
        reply = self.iq(BOB, "get", f"<query xmlns='{NS_REGISTER}'/>")
        query = reply.find(f"{{{NS_REGISTER}}}query")
        self.assertIsNotNone(query.find(f"{{{NS_REGISTER}}}registered"))
        self.assertEqual(query.findtext(f"{{{NS_REGISTER}}}username"), "bobby")

    def test_registering_occupant_sees_membership(self):
        """An occupant who registers is seen with the member affiliation."""
        self.room_with((BOB, "bob"))
        self.clear(ALICE)
        self.register(BOB, "bob")
        self.assertEqual(item(presences(self.received(ALICE), f"{ROOM}/bob")[-1])["affiliation"],
                         "member")

    def test_reserved_nick_conflict(self):
        """Someone else joining with a reserved nick gets conflict; its owner enters."""
        self.room_with()
        self.register(BOB, "bobby")
        got = self.join(CAROL, "bobby")
        self.assertEqual(self.error_condition(got[-1]), "conflict")
        got = self.join(BOB, "bobby")
        self.assertEqual(codes(presences(got)[-1]), {110})

    def test_reserved_nick_change_conflict(self):
        """An occupant may not change its nick to one reserved by someone else."""
        self.room_with((CAROL, "carol"))
        self.register(BOB, "bobby")
        self.host.receive(f"<presence from='{CAROL}' to='{ROOM}/bobby'/>")
        self.assertEqual(self.error_condition(self.received(CAROL)[-1]), "conflict")
        self.assertIn("carol", self.service.rooms["room"].occupants)

    def test_nick_registered_by_other(self):
        """Registering a nick someone else reserved, or one another occupant uses, is
        conflict."""
        self.room_with((CAROL, "carol"))
        self.register(BOB, "bobby")
        self.assertEqual(self.error_condition(self.register(ALICE, "bobby")), "conflict")
        self.assertEqual(self.error_condition(self.register(BOB, "carol")), "conflict")

    def test_reregister_replaces(self):
        """Registering again replaces the earlier reservation."""
        self.room_with()
        self.register(BOB, "bobby")
        self.register(BOB, "robert")
        room = self.service.rooms["room"]
        self.assertEqual(room.registered, {"bob@example.org": "robert"})
        self.assertEqual(presences(self.join(CAROL, "bobby"))[-1].get("type"), None)

    def test_unregister(self):
        """<remove/> releases the nick and the membership registering gave."""
        self.room_with()
        self.register(BOB, "bobby")
        reply = self.iq(BOB, "set", f"<query xmlns='{NS_REGISTER}'><remove/></query>")
        self.assertEqual(reply.get("type"), "result")
        room = self.service.rooms["room"]
        self.assertEqual(room.registered, {})
        self.assertEqual(room.affiliations.get("bob@example.org"), None)
        self.assertEqual(presences(self.join(CAROL, "bobby"))[-1].get("type"), None)

    def test_unregister_keeps_admin(self):
        """An owner who unregisters keeps its affiliation."""
        self.room_with()
        self.register(ALICE, "queen")
        self.iq(ALICE, "set", f"<query xmlns='{NS_REGISTER}'><remove/></query>")
        self.assertEqual(self.service.rooms["room"].affiliations["alice@example.org"], "owner")

    def test_cancel(self):
        """A cancelled form is acknowledged and registers nothing."""
        self.room_with()
        reply = self.iq(BOB, "set", f"<query xmlns='{NS_REGISTER}'><x xmlns='{NS_DATA}' "
                                    "type='cancel'/></query>")
        self.assertEqual(reply.get("type"), "result")
        self.assertEqual(self.service.rooms["room"].registered, {})

    def test_bad_forms(self):
        """No form or another FORM_TYPE is bad-request; no or an invalid nick is
        not-acceptable."""
        self.room_with()
        self.assertEqual(self.error_condition(
            self.iq(BOB, "set", f"<query xmlns='{NS_REGISTER}'/>")), "bad-request")
        self.assertEqual(self.error_condition(
            self.iq(BOB, "set", submission("x", form_type="urn:other"))), "bad-request")
        self.assertEqual(self.error_condition(self.register(BOB, "")), "not-acceptable")
        self.assertEqual(self.error_condition(self.register(BOB, "a" * 1100)), "not-acceptable")
        self.assertEqual(self.service.rooms["room"].registered, {})

    def test_banned(self):
        """An outcast may not register, and a ban releases a reserved nick."""
        self.room_with()
        self.register(BOB, "bobby")
        self.iq(ALICE, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                              "<item affiliation='outcast' jid='bob@example.org'/></query>")
        self.assertEqual(self.service.rooms["room"].registered, {})
        self.assertEqual(self.error_condition(self.register(BOB, "bobby")), "forbidden")

    def test_members_only(self):
        """In a members-only room only members may register; a member's nick is reserved."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_membersonly": "1"})
        self.assertEqual(self.error_condition(self.register(BOB, "bobby")),
                         "registration-required")
        self.iq(ALICE, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                              "<item affiliation='member' jid='bob@example.org'/></query>")
        self.assertEqual(self.register(BOB, "bobby").get("type"), "result")
        self.assertEqual(self.service.rooms["room"].affiliations["bob@example.org"], "member")
        # Unregistering there leaves the member list to the admins.
        self.iq(BOB, "set", f"<query xmlns='{NS_REGISTER}'><remove/></query>")
        self.assertEqual(self.service.rooms["room"].affiliations["bob@example.org"], "member")

    def test_unknown_room(self):
        """Registering with a room that does not exist is item-not-found."""
        self.assertEqual(self.error_condition(self.register(BOB, "bobby")), "item-not-found")

    def test_feature(self):
        """The room advertises jabber:iq:register and muc#request in disco#info."""
        self.room_with()
        reply = self.iq(BOB, "get", f"<query xmlns='{NS_INFO}'/>")
        features = {f.get("var") for f in reply[0].iterchildren(f"{{{NS_INFO}}}feature")}
        self.assertLessEqual({NS_REGISTER, "http://jabber.org/protocol/muc#request"}, features)


class ReservedNickDiscoveryTests(MUCTestCase):
    """XEP-0045 §7.12: disco#info with the node x-roomuser-item."""

    def discover(self, jid):
        reply = self.iq(jid, "get", f"<query xmlns='{NS_INFO}' node='x-roomuser-item'/>")
        self.assertEqual(reply.get("type"), "result")
        query = reply.find(f"{{{NS_INFO}}}query")
        self.assertEqual(query.get("node"), "x-roomuser-item")
        return [dict(i.attrib) for i in query.iterchildren(f"{{{NS_INFO}}}identity")]

    def test_registered(self):
        """A registered user gets its nick as a conference/text identity."""
        self.room_with()
        self.iq(BOB, "set", submission("bobby"))
        self.assertEqual(self.discover(BOB),
                         [{"category": "conference", "type": "text", "name": "bobby"}])

    def test_not_registered(self):
        """A user without a reserved nick gets an empty query."""
        self.room_with()
        self.assertEqual(self.discover(CAROL), [])


class PersistenceTests(MUCTestCase):
    """Reserved nicks of a persistent room are stored with it."""

    def test_survive_restart(self):
        """After a restart the nick is still reserved and discoverable."""
        storage = MemoryStorage()
        self.host = FakeHost("example.org", storage=storage)
        self.host.install(muc)
        self.service = self.host.service("muc")
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_persistentroom": "1"})
        self.iq(BOB, "set", submission("bobby"))
        self.host = FakeHost("example.org", storage=storage)
        self.host.install(muc)
        self.service = self.host.service("muc")
        self.assertEqual(self.service.rooms["room"].registered, {"bob@example.org": "bobby"})
        self.assertEqual(self.error_condition(self.join(CAROL, "bobby")[-1]), "conflict")
