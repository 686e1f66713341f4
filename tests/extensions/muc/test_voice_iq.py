"""XEP-0045 voice requests (§7.13, §8.6), IQs relayed to occupants (§7.3), the occupant
list in disco#items (§6.5) and status text on leaving (§7.14)."""
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.muc import muc
from jabberapp.extensions.vcard import vcard_temp
from jabberapp.testing import FakeHost
from tests.extensions.muc.helpers import (
    ALICE, BOB, CAROL, NS_DATA, ROOM, MUCTestCase, item, messages, presences)

NS_REQUEST = "http://jabber.org/protocol/muc#request"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VERSION = "jabber:iq:version"


def voice_request(role="participant"):
    """The payload of a visitor's voice request message."""
    return (f"<x xmlns='{NS_DATA}' type='submit'>"
            f"<field var='FORM_TYPE'><value>{NS_REQUEST}</value></field>"
            f"<field var='muc#role' type='list-single'><value>{role}</value></field></x>")


def approval(nick, allow="true"):
    """The payload of a moderator's submitted approval form."""
    return (f"<x xmlns='{NS_DATA}' type='submit'>"
            f"<field var='FORM_TYPE'><value>{NS_REQUEST}</value></field>"
            f"<field var='muc#role'><value>participant</value></field>"
            f"<field var='muc#roomnick'><value>{nick}</value></field>"
            f"<field var='muc#request_allow'><value>{allow}</value></field></x>")


def fields(form):
    """A data form's fields as var -> first value."""
    return {f.get("var"): f.findtext(f"{{{NS_DATA}}}value")
            for f in form.iterchildren(f"{{{NS_DATA}}}field")}


class VoiceRequestTests(MUCTestCase):
    """A visitor asks for voice; moderators approve it."""

    def setUp(self):
        super().setUp()
        self.room_with()
        self.configure(ALICE, {"muc#roomconfig_moderatedroom": "1"})
        self.join(BOB, "bob")
        self.join(CAROL, "carol")
        self.clear(ALICE, BOB, CAROL)

    def send(self, jid, payload):
        self.host.receive(f"<message from='{jid}' to='{ROOM}'>{payload}</message>")

    def test_moderators_get_approval_form(self):
        """A visitor's request reaches each moderator as the §8.6 approval form."""
        self.send(BOB, voice_request())
        got = messages(self.received(ALICE))
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].get("from"), ROOM)
        form = got[0].find(f"{{{NS_DATA}}}x")
        self.assertEqual(form.get("type"), "form")
        self.assertEqual(fields(form), {
            "FORM_TYPE": NS_REQUEST, "muc#role": "participant", "muc#jid": BOB,
            "muc#roomnick": "bob", "muc#request_allow": "false"})
        self.assertEqual(messages(self.received(CAROL)), [])   # a visitor too

    def test_approve(self):
        """Approving the request gives the visitor voice, with the moderator as actor."""
        self.send(BOB, voice_request())
        self.send(ALICE, approval("bob"))
        self.assertEqual(self.service.rooms["room"].occupants["bob"].role, "participant")
        seen = presences(self.received(CAROL), f"{ROOM}/bob")[-1]
        self.assertEqual(item(seen)["role"], "participant")
        actor = seen.find("{http://jabber.org/protocol/muc#user}x/"
                          "{http://jabber.org/protocol/muc#user}item/"
                          "{http://jabber.org/protocol/muc#user}actor")
        self.assertEqual(actor.get("nick"), "alice")

    def test_deny(self):
        """A moderator's form with request_allow false leaves the visitor without voice."""
        self.send(ALICE, approval("bob", allow="false"))
        self.assertEqual(self.service.rooms["room"].occupants["bob"].role, "visitor")

    def test_non_moderator_cannot_approve(self):
        """A visitor submitting the approval form is refused with forbidden."""
        self.send(CAROL, approval("bob"))
        self.assertEqual(self.error_condition(self.received(CAROL)[-1]), "forbidden")
        self.assertEqual(self.service.rooms["room"].occupants["bob"].role, "visitor")

    def test_unknown_nick(self):
        """Approving voice for a nick not in the room is item-not-found."""
        self.send(ALICE, approval("nobody"))
        self.assertEqual(self.error_condition(self.received(ALICE)[-1]), "item-not-found")

    def test_participant_request_ignored(self):
        """An occupant who has voice already asks nobody."""
        self.send(ALICE, voice_request())
        self.assertEqual(self.received(ALICE), [])

    def test_other_role(self):
        """Requesting a role other than participant is not-acceptable."""
        self.send(BOB, voice_request("moderator"))
        self.assertEqual(self.error_condition(self.received(BOB)[-1]), "not-acceptable")
        self.assertEqual(messages(self.received(ALICE)), [])

    def test_not_occupant(self):
        """A voice request from outside the room is not-acceptable."""
        self.send("dave@example.org/d", voice_request())
        self.assertEqual(self.error_condition(self.received("dave@example.org/d")[-1]),
                         "not-acceptable")


class RelayedIQTests(MUCTestCase):
    """IQs to an occupant JID go to the occupant's real JID and back."""

    def setUp(self):
        super().setUp()
        self.room_with((BOB, "bob"))
        self.clear(ALICE, BOB)

    def test_relay_and_answer(self):
        """The request reaches the occupant from the asker's occupant JID under a new id;
        the answer reaches the asker from the occupant JID under the asker's id."""
        self.host.receive(f"<iq type='get' id='v1' from='{ALICE}' to='{ROOM}/bob'>"
                          f"<query xmlns='{NS_VERSION}'/></iq>")
        relayed = self.received(BOB)[-1]
        self.assertEqual((relayed.get("from"), relayed.get("to"), relayed.get("type")),
                         (f"{ROOM}/alice", BOB, "get"))
        self.assertNotEqual(relayed.get("id"), "v1")
        self.assertIsNotNone(relayed.find(f"{{{NS_VERSION}}}query"))
        self.host.receive(f"<iq type='result' id='{relayed.get('id')}' from='{BOB}' "
                          f"to='{ROOM}/alice'><query xmlns='{NS_VERSION}'><name>bobclient"
                          "</name></query></iq>")
        answer = self.received(ALICE)[-1]
        self.assertEqual((answer.get("from"), answer.get("to"), answer.get("id"),
                          answer.get("type")), (f"{ROOM}/bob", ALICE, "v1", "result"))
        self.assertEqual(answer.findtext(f"{{{NS_VERSION}}}query/{{{NS_VERSION}}}name"),
                         "bobclient")
        self.assertEqual(self.service.relayed, {})

    def test_error_answer(self):
        """An error answer is relayed back too."""
        self.host.receive(f"<iq type='get' id='v1' from='{ALICE}' to='{ROOM}/bob'>"
                          f"<query xmlns='{NS_VERSION}'/></iq>")
        relay_id = self.received(BOB)[-1].get("id")
        self.host.receive(f"<iq type='error' id='{relay_id}' from='{BOB}' to='{ROOM}/alice'>"
                          "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:"
                          "xml:ns:xmpp-stanzas'/></error></iq>")
        self.assertEqual(self.error_condition(self.received(ALICE)[-1]), "service-unavailable")
        self.assertEqual(self.received(ALICE)[-1].get("id"), "v1")

    def test_answer_from_someone_else_dropped(self):
        """An answer with the right id from another JID is not relayed."""
        self.host.receive(f"<iq type='get' id='v1' from='{ALICE}' to='{ROOM}/bob'>"
                          f"<query xmlns='{NS_VERSION}'/></iq>")
        relay_id = self.received(BOB)[-1].get("id")
        self.join(CAROL, "carol")
        self.clear(ALICE)
        self.host.receive(f"<iq type='result' id='{relay_id}' from='{CAROL}' "
                          f"to='{ROOM}/alice'/>")
        self.assertEqual(self.received(ALICE), [])
        self.assertEqual(len(self.service.relayed), 1)

    def test_timeout(self):
        """Without an answer in time the asker gets remote-server-timeout."""
        self.host.receive(f"<iq type='get' id='v1' from='{ALICE}' to='{ROOM}/bob'>"
                          f"<query xmlns='{NS_VERSION}'/></iq>")
        self.host.clock.advance(61)
        self.assertEqual(self.error_condition(self.received(ALICE)[-1]),
                         "remote-server-timeout")
        self.assertEqual(self.service.relayed, {})

    def test_unknown_nick(self):
        """An IQ to a nick nobody has is item-not-found."""
        reply = self.iq(ALICE, "get", f"<query xmlns='{NS_VERSION}'/>", to=f"{ROOM}/nobody")
        self.assertEqual(self.error_condition(reply), "item-not-found")

    def test_not_occupant(self):
        """Only occupants may send IQs to occupants."""
        reply = self.iq(CAROL, "get", f"<query xmlns='{NS_VERSION}'/>", to=f"{ROOM}/bob")
        self.assertEqual(self.error_condition(reply), "not-acceptable")
        self.assertEqual(self.received(BOB), [])

    def test_ping_other_relayed(self):
        """A ping to another occupant is relayed; a self-ping is answered by the room."""
        self.host.receive(f"<iq type='get' id='p1' from='{ALICE}' to='{ROOM}/bob'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(self.received(BOB)[-1].get("from"), f"{ROOM}/alice")
        reply = self.iq(BOB, "get", "<ping xmlns='urn:xmpp:ping'/>", to=f"{ROOM}/bob")
        self.assertEqual((reply.get("type"), reply.get("from")), ("result", f"{ROOM}/bob"))

    def test_vcard_to_bare_jid(self):
        """A vCard request goes to the occupant's account, which answers for it."""
        host = FakeHost("example.org")
        host.install(service_discovery)
        host.install(vcard_temp)
        host.install(muc, lock_new_rooms=False)
        host.receive(f"<iq type='set' id='s' from='{BOB}'><vCard xmlns='vcard-temp'>"
                     "<FN>Bob</FN></vCard></iq>")
        host.receive(f"<presence from='{ALICE}' to='{ROOM}/alice'/>")
        host.receive(f"<presence from='{BOB}' to='{ROOM}/bob'/>")
        host.receive(f"<iq type='get' id='vc' from='{ALICE}' to='{ROOM}/bob'>"
                     "<vCard xmlns='vcard-temp'/></iq>")
        answer = host.session(ALICE).sent[-1]
        self.assertEqual((answer.get("type"), answer.get("id"), answer.get("from")),
                         ("result", "vc", f"{ROOM}/bob"))
        self.assertEqual(answer.findtext("{vcard-temp}vCard/{vcard-temp}FN"), "Bob")


class OccupantItemsTests(MUCTestCase):
    """XEP-0045 §6.5: disco#items of a room."""

    def items(self):
        reply = self.iq(CAROL, "get", f"<query xmlns='{NS_ITEMS}'/>")
        return [i.get("jid") for i in reply[0].iterchildren(f"{{{NS_ITEMS}}}item")]

    def test_semi_anonymous_empty(self):
        """A semi-anonymous room lists no occupants."""
        self.room_with((BOB, "bob"))
        self.assertEqual(self.items(), [])

    def test_non_anonymous_lists(self):
        """A non-anonymous room lists its occupant JIDs."""
        self.room_with((BOB, "bob"))
        self.configure(ALICE, {"muc#roomconfig_whois": "anyone"})
        self.assertEqual(self.items(), [f"{ROOM}/alice", f"{ROOM}/bob"])


class LeaveStatusTests(MUCTestCase):
    """XEP-0045 §7.14: the status text of an exit."""

    def test_status_on_leave(self):
        """The others see the status text of the unavailable presence."""
        self.room_with((BOB, "bob"))
        self.host.receive(f"<presence type='unavailable' from='{BOB}' to='{ROOM}/bob'>"
                          "<status>gone fishing</status></presence>")
        seen = presences(self.received(ALICE), f"{ROOM}/bob")[-1]
        self.assertEqual(seen.get("type"), "unavailable")
        self.assertEqual(seen.findtext("{jabber:client}status"), "gone fishing")

    def test_no_status_on_kick(self):
        """A kicked occupant's last available status is not repeated on its exit."""
        self.room_with()
        self.join(BOB, "bob", payload="<status>here</status>")
        self.iq(ALICE, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                              "<item nick='bob' role='none'/></query>")
        seen = presences(self.received(ALICE), f"{ROOM}/bob")[-1]
        self.assertEqual(seen.get("type"), "unavailable")
        self.assertIsNone(seen.find("{jabber:client}status"))
