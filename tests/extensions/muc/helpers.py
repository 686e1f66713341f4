"""Shared set-up for the MUC unit tests: a FakeHost with the muc extension installed."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.extensions.muc import muc
from jabberapp.testing import FakeHost

MUC = "conference.example.org"
ROOM = f"room@{MUC}"
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ALICE = "alice@example.org/a"
BOB = "bob@example.org/b"
CAROL = "carol@example.org/c"


class MUCTestCase(SynchronousTestCase):
    """A FakeHost with muc installed and helpers to join, speak and inspect."""

    options = {}

    def setUp(self):
        self.host = FakeHost("example.org")
        self.host.install(muc, **self.options)
        self.service = self.host.service("muc")

    def received(self, jid):
        """Everything the session of C{jid} was sent so far."""
        session = self.host.session(jid)
        return [] if session is None else session.sent

    def clear(self, *jids):
        """Forget what the sessions of C{jids} received so far."""
        for jid in jids:
            session = self.host.session(jid)
            if session is not None:
                del session.sent[:]

    def join(self, jid, nick, room=ROOM, payload="<x xmlns='http://jabber.org/protocol/muc'/>"):
        """Send the join presence; return what the joiner received."""
        self.clear(jid)
        self.host.receive(f"<presence from='{jid}' to='{room}/{nick}'>{payload}</presence>")
        return list(self.received(jid))

    def iq(self, jid, type_, payload, to=ROOM, id_="q1"):
        """Send an IQ; return the reply."""
        self.host.receive(f"<iq type='{type_}' id='{id_}' from='{jid}' to='{to}'>{payload}</iq>")
        return self.received(jid)[-1]

    def instant(self, jid, room=ROOM):
        """Unlock a new room with the empty submit form."""
        reply = self.iq(jid, "set", f"<query xmlns='{NS_OWNER}'><x xmlns='{NS_DATA}' "
                                    "type='submit'/></query>", to=room, id_="instant")
        self.assertEqual(reply.get("type"), "result")

    def configure(self, jid, fields, room=ROOM):
        """Submit the room configuration form with C{fields} (var -> value); the reply."""
        body = "".join(f"<field var='{var}'><value>{value}</value></field>"
                       for var, value in fields.items())
        return self.iq(jid, "set", f"<query xmlns='{NS_OWNER}'><x xmlns='{NS_DATA}' "
                                   f"type='submit'>{body}</x></query>", to=room, id_="cfg")

    def room_with(self, *members):
        """Create and unlock the room with alice as owner; the others join after."""
        self.join(ALICE, "alice")
        self.instant(ALICE)
        for jid, nick in members:
            self.join(jid, nick)

    def error_condition(self, stanza):
        """The defined condition of an error stanza."""
        self.assertEqual(stanza.get("type"), "error")
        error = stanza.find("{jabber:client}error")
        for child in error:
            if child.tag.startswith(f"{{{NS_STANZAS}}}") and child.tag != f"{{{NS_STANZAS}}}text":
                return child.tag.rpartition("}")[2]
        return None


def codes(stanza):
    """The muc#user status codes of a stanza, as a set of ints."""
    x = stanza.find(f"{{{NS_USER}}}x")
    if x is None:
        return set()
    return {int(s.get("code")) for s in x.iterchildren(f"{{{NS_USER}}}status")}


def item(stanza):
    """The muc#user item of a presence, as a dict of its attributes."""
    found = stanza.find(f"{{{NS_USER}}}x/{{{NS_USER}}}item")
    return dict(found.attrib) if found is not None else None


def presences(stanzas, sender=None):
    """The presence stanzas of C{stanzas} (from C{sender} when given)."""
    tag = "{jabber:client}presence"
    return [s for s in stanzas if s.tag == tag and (sender is None or s.get("from") == sender)]


def messages(stanzas):
    """The message stanzas of C{stanzas}."""
    return [s for s in stanzas if s.tag == "{jabber:client}message"]
