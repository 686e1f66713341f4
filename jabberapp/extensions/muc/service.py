"""
The XEP-0045 multi-user chat service: the in-process component handler for the service
domain, holding its rooms.

Theory of operation
-------------------
Every stanza for the service domain arrives in L{MUCService.handle}, which parses its
addresses once and hands it, by stanza kind, to a protocol module through a table:
presence.py (entering, leaving, nick changes), messages.py (groupchat, private messages,
invitations, voice requests) and iq.py (which has its own table of payloads: disco.py,
owner.py, admin.py, register.py, and relay.py for IQs to occupants). Those modules decide
with the pure functions of rules.py, change the room state of room.py, build what they
send with stanzas.py, and write persistent rooms through storage.py. A refusal of the
rules or a failed write is a domain error that stanza_errors.py maps to its stanza error
here, at the edge.

Rooms are found by their local part in a dict, occupants by nick and by real full JID in
two dicts per room, so no stanza costs more than a few lookups before the broadcast. A
broadcast builds the stanza once per kind of recipient (sees real JIDs or not; is the
subject or not) and copies it per recipient only to set 'to'.

Persistent rooms are loaded from the store at install; each change to a persistent room's
configuration, affiliations or subject is written through at once. A temporary room
disappears with its last occupant. A room created by a join is locked (XEP-0045 §10.1)
until its owner submits the configuration form (an empty one makes an instant room), unless
the option lock_new_rooms is off.
"""
import copy
import secrets

from twisted.internet import defer

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import iq, messages, presence, rules
from jabberapp.extensions.muc.config import RoomConfig
from jabberapp.extensions.muc.names import NS_MUC
from jabberapp.extensions.muc.room import Room
from jabberapp.extensions.muc.stanza_errors import DOMAIN_ERRORS, stanza_error
from jabberapp.extensions.muc.storage import RoomStorage
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element

# stanza kind -> handler(service, stanza, sender), for stanzas to the service domain;
# presence to it is not for anyone and is dropped.
TO_SERVICE = {
    st.IQ: iq.to_service,
    st.MESSAGE: messages.to_service,
}

# stanza kind -> handler(service, stanza, sender, to, room), for stanzas to a room JID or
# an occupant JID (room None when no room has that name).
TO_ROOM = {
    st.PRESENCE: presence.receive,
    st.MESSAGE: messages.receive,
    st.IQ: iq.receive,
}


class MUCService:
    """The rooms of one service domain and the entry point of every stanza sent to it."""

    def __init__(self, host, domain, store, options):
        self.host = host
        self.domain = domain
        self.jid = JID.parse(domain)
        self.options = options
        self.storage = RoomStorage(store, domain, host.log)
        self.rooms = {}
        self.secret = secrets.token_hex(16)
        self.ready = defer.succeed(None)
        self.broken = False   # the stored rooms could not be loaded: refuse everything
        self.relayed = {}     # id of an IQ relayed to an occupant -> relay.RelayedIQ

    # -- start ------------------------------------------------------------------------

    def load(self):
        """Load the persistent rooms; stanzas arriving meanwhile wait (self.ready)."""
        def failed(failure):
            # Serving without them could let a join create a room over a stored one.
            self.host.log.failure("loading the persistent rooms failed", failure)
            self.broken = True

        d = self.storage.load(self.secret)
        self.ready = d.addCallbacks(self.rooms.update, failed)
        return self.ready

    # -- entry point ------------------------------------------------------------------

    def handle(self, stanza):
        """The component handler: every stanza to the service domain."""
        if not self.ready.called:
            self.ready.addCallback(lambda _: self.handle(stanza))
            return None
        try:
            if self.broken:
                raise StanzaError("service-unavailable", "The rooms could not be loaded",
                                  type="wait")
            self._route(stanza)
        except (StanzaError,) + DOMAIN_ERRORS as error:
            self.bounce(stanza, stanza_error(error))
        return None

    def _route(self, stanza):
        sender = stanza.get("from")
        if sender is None:
            return
        try:
            sender = JID.parse(sender)
            to = JID.parse(stanza.get("to"))
        except (InvalidJID, TypeError):
            raise StanzaError("jid-malformed") from None
        if to.local is None:
            handler = TO_SERVICE.get(stanza.tag)
            if handler is not None:
                handler(self, stanza, sender)
            return
        handler = TO_ROOM.get(stanza.tag)
        if handler is not None:
            handler(self, stanza, sender, to, self.rooms.get(to.local))

    # -- sending ----------------------------------------------------------------------

    def bounce(self, stanza, error):
        """Answer C{stanza} with C{error}, unless it is an error or result itself."""
        if st.is_error_or_result(stanza) or stanza.get("from") is None:
            return
        answer = st.error_reply(stanza, error)
        if stanza.tag == st.PRESENCE:
            # XEP-0045 §7.2: entry errors carry the MUC <x/>; clients match on it.
            answer.insert(0, element(NS_MUC, "x"))
        self.host.send(answer)

    def send_to(self, stanza, jid):
        """Send a copy of C{stanza} addressed to C{jid}."""
        stanza = copy.deepcopy(stanza)
        stanza.set("to", str(jid))
        self.host.send(stanza)

    def deliver(self, stanza, occupant):
        """Send a copy of C{stanza} to every session of C{occupant}."""
        for jid in list(occupant.sessions):
            self.send_to(stanza, jid)

    # -- the rooms --------------------------------------------------------------------

    def create_room(self, name, creator):
        """A new room owned by C{creator}; locked when lock_new_rooms is on."""
        rules.check_create(self.options, creator, self.host.domain, len(self.rooms))
        config = RoomConfig(max_users=self.options["max_users"],
                            history_length=self.options["history_length"])
        room = Room(name, JID(name, self.domain, None), config, self.secret)
        room.set_affiliation(creator, "owner")
        room.locked = self.options["lock_new_rooms"]
        self.rooms[name] = room
        return room

    def maybe_forget(self, room):
        """Forget a temporary room once its last occupant has left."""
        if not room.occupants and not room.config.persistent:
            self.rooms.pop(room.name, None)

    def save(self, room):
        """Write C{room} through if it is persistent and still served: a Deferred, or
        None when there is nothing to write (see RoomStorage.save)."""
        if room.name not in self.rooms:
            return None
        return self.storage.save(room)
