"""XEP-0045 entering, leaving, nick changes, messages, subject, history and private messages."""
from zope.interface.verify import verifyObject

from jabberapp.extensions.muc import muc
from jabberapp.interfaces import IExtension
from jabberapp.testing import FakeHost, FakeSession
from tests.extensions.muc.helpers import (
    ALICE, BOB, CAROL, MUC, ROOM, MUCTestCase, codes, item, messages, presences)


class JoinTests(MUCTestCase):
    """Creating and entering rooms."""

    def test_interface(self):
        """The plugin object provides IExtension."""
        verifyObject(IExtension, muc)

    def test_domain_option(self):
        """The service domain comes from the domain option with {host} replaced."""
        host = FakeHost("example.org")
        host.install(muc, domain="chat.{host}")
        self.assertEqual(host.service("muc").domain, "chat.example.org")

    def test_create_room(self):
        """The first join creates a locked room: 110 and 201, owner and moderator."""
        got = self.join(ALICE, "alice")
        own = presences(got, f"{ROOM}/alice")[0]
        self.assertEqual(codes(own), {110, 201})
        self.assertEqual(item(own)["affiliation"], "owner")
        self.assertEqual(item(own)["role"], "moderator")
        self.assertEqual(item(own)["jid"], ALICE)
        self.assertTrue(self.service.rooms["room"].locked)
        subject = messages(got)[-1]
        self.assertEqual(subject.find("{jabber:client}subject").text, None)

    def test_locked_room_refuses_others(self):
        """A locked room answers other joins with item-not-found."""
        self.join(ALICE, "alice")
        got = self.join(BOB, "bob")
        self.assertEqual(self.error_condition(got[-1]), "item-not-found")
        self.assertEqual(got[-1].get("from"), f"{ROOM}/bob")

    def test_instant_room(self):
        """The empty submit form unlocks the room so others may enter."""
        self.join(ALICE, "alice")
        self.instant(ALICE)
        got = self.join(BOB, "bob")
        self.assertEqual([p.get("from") for p in presences(got)],
                         [f"{ROOM}/alice", f"{ROOM}/bob"])
        self.assertEqual(codes(presences(got)[-1]), {110})
        self.assertEqual(item(presences(got)[-1])["role"], "participant")
        self.assertEqual(item(presences(got)[-1])["affiliation"], "none")

    def test_unlocked_option(self):
        """With lock_new_rooms off, a new room is open at once."""
        host = FakeHost("example.org")
        host.install(muc, lock_new_rooms=False)
        host.receive(f"<presence from='{ALICE}' to='{ROOM}/alice'/>")
        host.receive(f"<presence from='{BOB}' to='{ROOM}/bob'/>")
        self.assertEqual(codes(presences(host.session(BOB).sent)[-1]), {110})

    def test_semi_anonymous(self):
        """Participants do not see real JIDs; moderators do."""
        self.room_with()
        self.clear(ALICE)
        got = self.join(BOB, "bob")
        self.assertNotIn("jid", item(presences(got, f"{ROOM}/alice")[0]))
        self.assertEqual(item(presences(self.received(ALICE), f"{ROOM}/bob")[0])["jid"], BOB)

    def test_non_anonymous(self):
        """In a non-anonymous room everyone sees real JIDs and the joiner gets 100."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_whois": "anyone"})
        got = self.join(BOB, "bob")
        self.assertEqual(item(presences(got, f"{ROOM}/alice")[0])["jid"], ALICE)
        self.assertEqual(codes(presences(got)[-1]), {100, 110})

    def test_nick_conflict(self):
        """A nick in use is refused with conflict."""
        self.room_with((BOB, "bob"))
        got = self.join(CAROL, "bob")
        self.assertEqual(self.error_condition(got[-1]), "conflict")
        occupants = self.service.rooms["room"].occupants.values()
        self.assertNotIn(CAROL, {str(o.jid) for o in occupants})

    def test_join_without_nick(self):
        """Presence to the bare room JID is jid-malformed."""
        self.room_with()
        self.host.receive(f"<presence from='{BOB}' to='{ROOM}'/>")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "jid-malformed")

    def test_remote_creator_refused(self):
        """Only local users may create rooms by default."""
        self.host.receive(f"<presence from='eve@remote.example/e' to='{ROOM}/eve'/>")
        self.assertEqual(self.error_condition(self.host.remote.received[-1]), "not-allowed")
        self.assertNotIn("room", self.service.rooms)

    def test_max_rooms(self):
        """Creating more rooms than max_rooms is not-allowed."""
        host = FakeHost("example.org")
        host.install(muc, max_rooms=1)
        host.receive(f"<presence from='{ALICE}' to='one@{MUC}/alice'/>")
        host.receive(f"<presence from='{ALICE}' to='two@{MUC}/alice'/>")
        self.assertEqual(self.error_condition(host.session(ALICE).sent[-1]), "not-allowed")

    def test_leave(self):
        """Leaving sends unavailable with 110 to the leaver and without to the others."""
        self.room_with((BOB, "bob"))
        self.clear(ALICE, BOB)
        self.host.receive(f"<presence type='unavailable' from='{BOB}' to='{ROOM}/bob'/>")
        self.assertEqual(codes(self.received(BOB)[-1]), {110})
        self.assertEqual(self.received(BOB)[-1].get("type"), "unavailable")
        self.assertEqual(codes(self.received(ALICE)[-1]), set())
        self.assertNotIn("bob", self.service.rooms["room"].occupants)

    def test_temporary_room_goes(self):
        """A temporary room is forgotten when its last occupant leaves."""
        self.room_with()
        self.host.receive(f"<presence type='unavailable' from='{ALICE}' to='{ROOM}/alice'/>")
        self.assertNotIn("room", self.service.rooms)

    def test_nick_change(self):
        """A nick change sends 303 unavailable with the new nick, then the new presence."""
        self.room_with((BOB, "bob"))
        self.clear(ALICE, BOB)
        self.host.receive(f"<presence from='{BOB}' to='{ROOM}/robert'/>")
        gone, back = self.received(ALICE)[-2:]
        self.assertEqual((gone.get("type"), gone.get("from")), ("unavailable", f"{ROOM}/bob"))
        self.assertEqual(codes(gone), {303})
        self.assertEqual(item(gone)["nick"], "robert")
        self.assertEqual(back.get("from"), f"{ROOM}/robert")
        self.assertEqual(codes(self.received(BOB)[-2]), {303, 110})
        self.assertEqual(codes(self.received(BOB)[-1]), {110})

    def test_nick_change_conflict(self):
        """Changing to a nick in use is conflict and changes nothing."""
        self.room_with((BOB, "bob"))
        self.host.receive(f"<presence from='{BOB}' to='{ROOM}/alice'/>")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "conflict")
        self.assertIn("bob", self.service.rooms["room"].occupants)

    def test_presence_update(self):
        """A new presence of an occupant is broadcast with its show."""
        self.room_with((BOB, "bob"))
        self.clear(ALICE)
        self.host.receive(f"<presence from='{BOB}' to='{ROOM}/bob'><show>away</show></presence>")
        self.assertEqual(self.received(ALICE)[-1].findtext("{jabber:client}show"), "away")

    def test_occupant_id(self):
        """Occupant presence carries a stable XEP-0421 occupant-id."""
        self.room_with((BOB, "bob"))
        first = self.received(ALICE)[-1].find("{urn:xmpp:occupant-id:0}occupant-id").get("id")
        self.host.receive(f"<presence type='unavailable' from='{BOB}' to='{ROOM}/bob'/>")
        self.join(BOB, "bobby")
        again = self.received(ALICE)[-1].find("{urn:xmpp:occupant-id:0}occupant-id").get("id")
        self.assertEqual(first, again)


class MessageTests(MUCTestCase):
    """Groupchat, subject, history and private messages."""

    def say(self, jid, body, to=ROOM, type_="groupchat"):
        """Send a message with C{body} from C{jid}."""
        self.host.receive(f"<message type='{type_}' id='m1' from='{jid}' to='{to}'>"
                          f"<body>{body}</body></message>")

    def test_groupchat_broadcast(self):
        """A groupchat message reaches every occupant from the sender's occupant JID."""
        self.room_with((BOB, "bob"))
        self.clear(ALICE, BOB)
        self.say(BOB, "hello")
        for jid in (ALICE, BOB):
            got = self.received(jid)[-1]
            self.assertEqual((got.get("from"), got.get("to"), got.get("id")),
                             (f"{ROOM}/bob", jid, "m1"))
            self.assertEqual(got.findtext("{jabber:client}body"), "hello")

    def test_non_occupant(self):
        """A groupchat message from a non-occupant is not-acceptable."""
        self.room_with()
        self.say(BOB, "let me in")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "not-acceptable")

    def test_unknown_room(self):
        """A message to a room that does not exist is item-not-found."""
        self.say(BOB, "anyone?", to=f"nothing@{MUC}")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "item-not-found")

    def test_subject_by_moderator(self):
        """A moderator sets the subject; it is broadcast and sent on join."""
        self.room_with((BOB, "bob"))
        self.host.receive(f"<message type='groupchat' from='{ALICE}' to='{ROOM}'>"
                          "<subject>Tea</subject></message>")
        self.assertEqual(self.received(BOB)[-1].findtext("{jabber:client}subject"), "Tea")
        got = self.join(CAROL, "carol")
        self.assertEqual(got[-1].findtext("{jabber:client}subject"), "Tea")
        self.assertEqual(got[-1].get("from"), f"{ROOM}/alice")

    def test_subject_by_participant_refused(self):
        """A participant may not change the subject unless the room allows it."""
        self.room_with((BOB, "bob"))
        self.host.receive(f"<message type='groupchat' from='{BOB}' to='{ROOM}'>"
                          "<subject>Mine</subject></message>")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "forbidden")
        self.configure(ALICE, {"muc#roomconfig_changesubject": "1"})
        self.host.receive(f"<message type='groupchat' from='{BOB}' to='{ROOM}'>"
                          "<subject>Mine</subject></message>")
        self.assertEqual(self.service.rooms["room"].subject, "Mine")

    def test_history_on_join(self):
        """A joiner gets the history with delay stamps before the subject."""
        self.room_with((BOB, "bob"))
        self.host.clock.advance(1000)
        self.say(BOB, "one")
        self.say(BOB, "two")
        got = messages(self.join(CAROL, "carol"))
        self.assertEqual([m.findtext("{jabber:client}body") for m in got[:-1]], ["one", "two"])
        delay = got[0].find("{urn:xmpp:delay}delay")
        self.assertEqual((delay.get("from"), delay.get("stamp")),
                         (ROOM, "1970-01-01T00:16:40.000Z"))
        self.assertIsNotNone(got[-1].find("{jabber:client}subject"))

    def history(self, attrs):
        """The history bodies carol gets when joining with a <history/> of C{attrs}."""
        got = self.join(CAROL, "carol", payload="<x xmlns='http://jabber.org/protocol/muc'>"
                                                 f"<history {attrs}/></x>")
        return [m.findtext("{jabber:client}body") for m in messages(got)[:-1]]

    def test_history_maxstanzas(self):
        """maxstanzas limits the history to the last N messages."""
        self.room_with((BOB, "bob"))
        for body in ("a", "b", "c"):
            self.say(BOB, body)
        self.assertEqual(self.history("maxstanzas='2'"), ["b", "c"])

    def test_history_maxchars_zero(self):
        """maxchars='0' asks for no history."""
        self.room_with((BOB, "bob"))
        self.say(BOB, "a")
        self.assertEqual(self.history("maxchars='0'"), [])

    def test_history_maxchars(self):
        """maxchars keeps the newest messages that fit."""
        self.room_with((BOB, "bob"))
        self.say(BOB, "a")
        self.say(BOB, "b")
        size = self.service.rooms["room"].history[-1].chars
        self.assertEqual(self.history(f"maxchars='{size + 1}'"), ["b"])

    def test_history_seconds_and_since(self):
        """seconds and since keep only messages that recent."""
        self.room_with((BOB, "bob"))
        self.say(BOB, "old")
        self.host.clock.advance(100)
        self.say(BOB, "new")
        self.assertEqual(self.history("seconds='10'"), ["new"])
        self.host.receive(f"<presence type='unavailable' from='{CAROL}' to='{ROOM}/carol'/>")
        self.assertEqual(self.history("since='1970-01-01T00:01:00Z'"), ["new"])

    def test_history_length(self):
        """The room keeps at most history_length messages."""
        self.room_with((BOB, "bob"))
        self.configure(ALICE, {"muc#roomconfig_historylength": "1"})
        self.say(BOB, "a")
        self.say(BOB, "b")
        self.assertEqual(self.history(""), ["b"])

    def test_private_message(self):
        """A chat message to an occupant JID reaches its real JID from the sender's nick."""
        self.room_with((BOB, "bob"))
        self.say(BOB, "psst", to=f"{ROOM}/alice", type_="chat")
        got = self.received(ALICE)[-1]
        self.assertEqual((got.get("from"), got.get("to"), got.get("type")),
                         (f"{ROOM}/bob", ALICE, "chat"))
        self.assertIsNotNone(got.find("{http://jabber.org/protocol/muc#user}x"))

    def test_private_message_errors(self):
        """Private messages to unknown nicks or from non-occupants are refused."""
        self.room_with((BOB, "bob"))
        self.say(BOB, "hi", to=f"{ROOM}/nobody", type_="chat")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "item-not-found")
        self.say(CAROL, "hi", to=f"{ROOM}/bob", type_="chat")
        self.assertEqual(self.error_condition(self.received(CAROL)[-1]), "not-acceptable")

    def test_moderated_visitor(self):
        """A visitor in a moderated room may not speak."""
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_moderatedroom": "1"})
        self.join(BOB, "bob")
        self.assertEqual(self.service.rooms["room"].occupants["bob"].role, "visitor")
        self.say(BOB, "hello")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "forbidden")

    def test_mediated_invite(self):
        """A mediated invitation is sent on from the room with the inviter's JID."""
        self.room_with((BOB, "bob"))
        FakeSession(self.host, CAROL)
        self.host.receive(f"<message from='{BOB}' to='{ROOM}'><x xmlns="
                          "'http://jabber.org/protocol/muc#user'><invite to='carol@example.org'>"
                          "<reason>join us</reason></invite></x></message>")
        sent = self.received(CAROL)[-1]
        self.assertEqual((sent.get("from"), sent.get("to")), (ROOM, "carol@example.org"))
        invite = sent.find("{http://jabber.org/protocol/muc#user}x/"
                           "{http://jabber.org/protocol/muc#user}invite")
        self.assertEqual(invite.get("from"), "bob@example.org")


class IQTests(MUCTestCase):
    """Disco and pings."""

    def test_unknown_room_iq(self):
        """An IQ to a room that does not exist is item-not-found."""
        reply = self.iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                        to=f"nothing@{MUC}")
        self.assertEqual(self.error_condition(reply), "item-not-found")

    def test_service_disco(self):
        """The service is a conference service listing public unlocked rooms."""
        reply = self.iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                        to=MUC)
        identity = reply.find("{http://jabber.org/protocol/disco#info}query/"
                              "{http://jabber.org/protocol/disco#info}identity")
        self.assertEqual(identity.get("category"), "conference")
        self.join(ALICE, "alice")
        reply = self.iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                        to=MUC)
        self.assertEqual(len(reply[0]), 0)
        self.instant(ALICE)
        reply = self.iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                        to=MUC)
        self.assertEqual([i.get("jid") for i in reply[0]], [ROOM])

    def test_service_in_host_items(self):
        """The host's disco#items list the MUC service."""
        items = [p.items(None, self.host.jid, None) for p in self.host.disco_providers][0]
        self.assertEqual([(str(j), n, name) for j, n, name in items], [(MUC, None, "Chatrooms")])

    def test_room_disco(self):
        """Room disco#info has the muc_ features of its configuration."""
        self.room_with()
        reply = self.iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        features = {f.get("var") for f in reply[0]
                    if f.tag == "{http://jabber.org/protocol/disco#info}feature"}
        self.assertLessEqual({"muc_temporary", "muc_public", "muc_open", "muc_semianonymous",
                              "muc_unsecured", "muc_unmoderated"}, features)

    def test_room_info_form_typed(self):
        """The muc#roominfo form a room sends types every field as XEP-0045's registry
        does (strict clients refuse untyped or mistyped fields)."""
        self.room_with()
        reply = self.iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        fields = {f.get("var"): f.get("type") for f in reply.iter("{jabber:x:data}field")}
        self.assertEqual(fields, {"FORM_TYPE": "hidden",
                                  "muc#roominfo_description": "text-single",
                                  "muc#roominfo_occupants": "text-single",
                                  "muc#roominfo_subject": "text-single"})

    def test_self_ping(self):
        """A joined occupant's self-ping is answered; others get not-acceptable."""
        self.room_with()
        ping = "<ping xmlns='urn:xmpp:ping'/>"
        self.assertEqual(self.iq(ALICE, "get", ping, to=f"{ROOM}/alice").get("type"), "result")
        self.assertEqual(self.error_condition(self.iq(BOB, "get", ping, to=f"{ROOM}/alice")),
                         "not-acceptable")

    def test_self_ping_optimization_advertised(self):
        """Room disco#info advertises XEP-0410's self-ping optimization (its §3.3: on the
        room JIDs, not the service), since the room answers self-pings itself."""
        self.room_with()
        feature = "http://jabber.org/protocol/muc#self-ping-optimization"
        disco_info = "<query xmlns='http://jabber.org/protocol/disco#info'/>"
        features = {f.get("var") for f in self.iq(BOB, "get", disco_info)[0]
                    if f.tag == "{http://jabber.org/protocol/disco#info}feature"}
        self.assertIn(feature, features)
        features = {f.get("var") for f in self.iq(BOB, "get", disco_info, to=MUC)[0]
                    if f.tag == "{http://jabber.org/protocol/disco#info}feature"}
        self.assertNotIn(feature, features)

    def test_unknown_room_iq_namespace(self):
        """An unknown IQ to a room is service-unavailable."""
        self.room_with()
        self.assertEqual(self.error_condition(self.iq(ALICE, "get", "<foo xmlns='urn:x'/>")),
                         "service-unavailable")


class ServiceTests(MUCTestCase):
    """Stanzas to the service domain itself, and malformed requests."""

    def test_ping_service(self):
        """A ping to the service domain is answered."""
        self.assertEqual(self.iq(BOB, "get", "<ping xmlns='urn:xmpp:ping'/>", to=MUC)
                         .get("type"), "result")

    def test_message_to_service(self):
        """A chat message to the service domain is service-unavailable."""
        self.host.receive(f"<message type='chat' from='{BOB}' to='{MUC}'><body>hi</body>"
                          "</message>")
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "service-unavailable")

    def test_two_children(self):
        """An IQ with two children is bad-request."""
        self.room_with()
        reply = self.iq(ALICE, "get", "<ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(self.error_condition(reply), "bad-request")

    def test_bad_history_request(self):
        """An unreadable history request gets the default history."""
        self.room_with((BOB, "bob"))
        self.host.receive(f"<message type='groupchat' from='{BOB}' to='{ROOM}'>"
                          "<body>kept</body></message>")
        got = self.join(CAROL, "carol", payload="<x xmlns='http://jabber.org/protocol/muc'>"
                                                 "<history maxstanzas='many' since='soon'/></x>")
        self.assertEqual([m.findtext("{jabber:client}body") for m in messages(got)[:-1]],
                         ["kept"])

    def test_error_presence_leaves(self):
        """A presence error from an occupant's client removes it with 333."""
        self.room_with((BOB, "bob"))
        self.host.receive(f"<presence type='error' from='{BOB}' to='{ROOM}/bob'/>")
        self.assertEqual(codes(self.received(ALICE)[-1]), {333})
        self.assertNotIn("bob", self.service.rooms["room"].occupants)
