"""XEP-0045 multi-session nicks: sessions of one bare JID sharing a nick."""
from tests.extensions.muc.helpers import (
    ALICE, BOB, ROOM, MUCTestCase, codes, item, messages, presences)

BOB2 = "bob@example.org/phone"


class MultiSessionTests(MUCTestCase):
    """Two sessions of bob in the room as one occupant 'bob'."""

    def setUp(self):
        super().setUp()
        self.room_with((BOB, "bob"))
        self.host.receive(f"<message type='groupchat' from='{ALICE}' to='{ROOM}'>"
                          "<body>before</body></message>")
        self.clear(ALICE, BOB)
        self.got = self.join(BOB2, "bob")

    def test_second_session_joins(self):
        """The new session gets the occupants, itself with 110, history and the subject."""
        self.assertEqual([p.get("from") for p in presences(self.got)],
                         [f"{ROOM}/alice", f"{ROOM}/bob"])
        self.assertEqual(codes(presences(self.got)[-1]), {110})
        self.assertEqual([m.findtext("{jabber:client}body") for m in messages(self.got)],
                         ["before", None])
        room = self.service.rooms["room"]
        self.assertEqual(list(room.occupants), ["alice", "bob"])
        self.assertEqual(len(room.by_jid), 3)

    def test_others_see_one_occupant(self):
        """The other occupants are not told of the second session."""
        self.assertEqual(self.received(ALICE), [])
        self.assertEqual(self.received(BOB), [])

    def test_messages_reach_every_session(self):
        """Groupchat and private messages reach both sessions."""
        self.host.receive(f"<message type='groupchat' from='{ALICE}' to='{ROOM}'>"
                          "<body>all</body></message>")
        self.host.receive(f"<message type='chat' from='{ALICE}' to='{ROOM}/bob'>"
                          "<body>psst</body></message>")
        for jid in (BOB, BOB2):
            self.assertEqual([m.findtext("{jabber:client}body")
                              for m in messages(self.received(jid))][-2:], ["all", "psst"])

    def test_either_session_speaks(self):
        """Both sessions speak as bob."""
        self.host.receive(f"<message type='groupchat' from='{BOB2}' to='{ROOM}'>"
                          "<body>from phone</body></message>")
        self.assertEqual(messages(self.received(ALICE))[-1].get("from"), f"{ROOM}/bob")

    def test_one_session_leaves(self):
        """A session leaving alone is told so; the occupant stays for the others."""
        self.clear(BOB2)
        self.host.receive(f"<presence type='unavailable' from='{BOB}' to='{ROOM}/bob'/>")
        self.assertEqual(self.received(ALICE), [])
        self.assertEqual(codes(self.received(BOB)[-1]), {110})
        self.assertEqual(self.received(BOB)[-1].get("type"), "unavailable")
        occupant = self.service.rooms["room"].occupants["bob"]
        self.assertEqual(str(occupant.jid), BOB2)
        self.host.receive(f"<presence type='unavailable' from='{BOB2}' to='{ROOM}/bob'/>")
        self.assertEqual(presences(self.received(ALICE))[-1].get("type"), "unavailable")
        self.assertNotIn("bob", self.service.rooms["room"].occupants)

    def test_kick_removes_every_session(self):
        """Kicking the occupant removes both sessions, and both hear 307."""
        self.iq(ALICE, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                              "<item nick='bob' role='none'/></query>")
        for jid in (BOB, BOB2):
            self.assertIn(307, codes(self.received(jid)[-1]))
        self.assertEqual(len(self.service.rooms["room"].by_jid), 1)

    def test_other_user_still_conflicts(self):
        """Another bare JID taking the nick is still conflict."""
        got = self.join("carol@example.org/c", "bob")
        self.assertEqual(self.error_condition(got[-1]), "conflict")

    def test_role_shared(self):
        """Voice given to the occupant is seen by both sessions."""
        self.iq(ALICE, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                              "<item nick='bob' role='moderator'/></query>")
        for jid in (BOB, BOB2):
            self.assertEqual(item(presences(self.received(jid))[-1])["role"], "moderator")
