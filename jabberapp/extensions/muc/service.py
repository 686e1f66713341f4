"""
The XEP-0045 multi-user chat service: the in-process component handler for the service
domain, its rooms, and their persistence through an IRoomStore.

Theory of operation
-------------------
Every stanza for the service domain arrives in L{MUCService.handle}. Rooms are found by
their local part in a dict, occupants by nick and by real full JID in two dicts per room,
so no stanza costs more than a few lookups before the broadcast. A broadcast builds the
stanza once per kind of recipient (sees real JIDs or not; is the subject or not) and copies
it per recipient only to set 'to'.

Persistent rooms are loaded from the store at install; each change to a persistent room's
configuration, affiliations or subject is written through at once. A temporary room
disappears with its last occupant. A room created by a join is locked (XEP-0045 §10.1)
until its owner submits the configuration form (an empty one makes an instant room), unless
the option lock_new_rooms is off.
"""
import copy
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.internet import defer

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc.config import NS_DATA, RoomConfig, apply_form, config_form
from jabberapp.extensions.muc.room import (
    AFFILIATIONS, MUC_X, NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID, RANK, ROLES, HistoryEntry,
    Occupant, Room)
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element, serialize
from jabberapp.xml.ns import NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING

NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_ROOMINFO = NS_MUC + "#roominfo"
NS_DELAY = "urn:xmpp:delay"
NS_CONFERENCE = "jabber:x:conference"
NS_REGISTER = "jabber:iq:register"
NS_MUC_REGISTER = NS_MUC + "#register"
NS_MUC_REQUEST = NS_MUC + "#request"
NS_VCARD = "vcard-temp"
ROOMUSER_NODE = "x-roomuser-item"
RELAY_TIMEOUT = 60       # seconds a relayed IQ waits for its answer
MAX_RELAYED = 10000      # IQs relayed to occupants and not answered yet, service-wide

SUBJECT = f"{{{NS_CLIENT}}}subject"
BODY = f"{{{NS_CLIENT}}}body"
MUC_USER_X = f"{{{NS_MUC_USER}}}x"
DATA_X = f"{{{NS_DATA}}}x"
STATUS = f"{{{NS_CLIENT}}}status"


def timestamp(seconds):
    """XEP-0082 date-time in UTC with milliseconds."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text):
    """POSIX seconds of an XEP-0082 date-time; StanzaError('bad-request') when bad."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise StanzaError("bad-request", "bad 'since' timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def form_type(form):
    """The FORM_TYPE value of a data form, or None."""
    return (form_values(form).get("FORM_TYPE") or [None])[0]


def form_values(form):
    """A data form's fields as a dict var -> list of values."""
    values = {}
    for field in form.iterchildren(f"{{{NS_DATA}}}field"):
        values[field.get("var")] = [v.text or "" for v in
                                    field.iterchildren(f"{{{NS_DATA}}}value")]
    return values


def voice_approval_form(occupant):
    """XEP-0045 §8.6: the form moderators get for a visitor's voice request."""
    form = element(NS_DATA, "x", type="form")
    form.append(element(NS_DATA, "title", text="Voice request"))
    form.append(element(NS_DATA, "instructions", text=(
        "To approve this request for voice, select the \"Grant voice to this person?\" "
        "checkbox and submit the form. To skip this request, cancel it.")))
    for var, kind, label, value in (
            ("FORM_TYPE", "hidden", None, NS_MUC_REQUEST),
            ("muc#role", "list-single", "Requested role", "participant"),
            ("muc#jid", "jid-single", "User ID", str(occupant.jid)),
            ("muc#roomnick", "text-single", "Room Nickname", occupant.nick),
            ("muc#request_allow", "boolean", "Grant voice to this person?", "false")):
        field = element(NS_DATA, "field", var=var, type=kind, label=label)
        field.append(element(NS_DATA, "value", text=value))
        form.append(field)
    return form


@dataclass(frozen=True)
class RelayedIQ:
    """An IQ relayed to an occupant: where its answer goes and who must send it."""

    room: str
    request: object      # the IQ as the requester sent it (its real JID and its id)
    responder: JID       # the JID the request went to
    nick: str            # the nick it was addressed to
    timer: object        # the IDelayedCall that forgets it


class MUCService:
    """The rooms of one service domain and the handling of every stanza sent to it."""

    def __init__(self, host, domain, store, options):
        self.host = host
        self.domain = domain
        self.jid = JID.parse(domain)
        self.store = store
        self.options = options
        self.rooms = {}
        self.secret = secrets.token_hex(16)
        self.ready = defer.succeed(None)
        self.broken = False   # the stored rooms could not be loaded: refuse everything
        self.relayed = {}     # id of an IQ relayed to an occupant -> RelayedIQ

    # -- start ------------------------------------------------------------------------

    def load(self):
        """Load the persistent rooms; stanzas arriving meanwhile wait (self.ready)."""
        d = self.store.load_all()

        def loaded(documents):
            for name, document in documents.items():
                room_jid = JID(name, self.domain, None)
                self.rooms[name] = Room.from_json(name, room_jid, document, self.secret)

        def failed(failure):
            # Serving without them could let a join create a room over a stored one.
            self.host.log.failure("loading the persistent rooms failed", failure)
            self.broken = True

        self.ready = d.addCallbacks(loaded, failed)
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
            self._handle(stanza)
        except StanzaError as error:
            self.bounce(stanza, error)
        return None

    def _handle(self, stanza):
        sender = stanza.get("from")
        if sender is None:
            return
        try:
            sender = JID.parse(sender)
            to = JID.parse(stanza.get("to"))
        except (InvalidJID, TypeError):
            raise StanzaError("jid-malformed") from None
        tag = stanza.tag
        if to.local is None:
            if tag == st.IQ:
                self._service_iq(stanza, sender)
            elif tag == st.MESSAGE and stanza.get("type") not in ("error", "groupchat"):
                raise StanzaError("service-unavailable")
            return
        room = self.rooms.get(to.local)
        if tag == st.PRESENCE:
            self._presence(stanza, sender, to, room)
        elif tag == st.MESSAGE:
            self._message(stanza, sender, to, room)
        else:
            self._iq(stanza, sender, to, room)

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

    # -- presence ---------------------------------------------------------------------

    def _presence(self, presence, sender, to, room):
        type_ = presence.get("type")
        occupant = room.by_jid.get(sender) if room is not None else None
        if type_ in ("unavailable", "error"):
            if occupant is not None and len(occupant.sessions) > 1:
                self.leave_session(room, occupant, sender, presence)
            elif occupant is not None:
                self.leave(room, occupant, presence if type_ == "unavailable" else None,
                           codes=() if type_ == "unavailable" else (333,))
            return
        if type_ is not None:
            return   # probes and subscriptions are not for rooms
        if to.resource is None:
            raise StanzaError("jid-malformed", "a nick is needed to enter a room")
        if occupant is None:
            self.join(room, presence, sender, to)
        elif occupant.nick != to.resource:
            self.change_nick(room, occupant, to.resource, presence)
        else:
            occupant.presence = presence
            self.broadcast_presence(room, occupant)

    def join(self, room, presence, sender, to):
        """A new occupant enters C{room} (created when None) as nick C{to.resource}."""
        nick = to.resource
        created = room is None
        if created:
            room = self.create_room(to.local, sender)
        elif room.locked and room.affiliation(sender) != "owner":
            raise StanzaError("item-not-found", "This room is locked until it is configured")
        affiliation = room.affiliation(sender)
        muc = presence.find(MUC_X)
        if affiliation == "outcast":
            raise StanzaError("forbidden", "You are banned from this room")
        if room.config.members_only and RANK[affiliation] < RANK["member"]:
            raise StanzaError("registration-required", "This room is members-only")
        taken = room.occupants.get(nick)
        if taken is not None and taken.jid.bare() != sender.bare():
            raise StanzaError("conflict", "That nickname is already in use")
        if room.nick_taken_from(sender, nick):
            raise StanzaError("conflict", "That nickname is reserved by another user")
        if (taken is None and len(room.occupants) >= room.config.max_users
                and RANK[affiliation] < RANK["admin"]):
            raise StanzaError("service-unavailable", "This room is full")
        if room.config.password and affiliation != "owner":
            given = muc.findtext(f"{{{NS_MUC}}}password") if muc is not None else None
            if given != room.config.password:
                raise StanzaError("not-authorized", "A password is required")
        codes = [110]
        if room.config.whois == "anyone":
            codes.append(100)
        if taken is not None:
            self.join_session(room, taken, sender, codes, muc)
            return
        occupant = Occupant(nick, sender, room.default_role(affiliation), presence,
                            room.occupant_id(sender))
        for other in room.occupants.values():
            self.send_to(room.presence(other, room.shows_jid_to(occupant)), sender)
        room.add(occupant)
        if created:
            codes.append(201)
        self.broadcast_presence(room, occupant, self_codes=codes)
        self.send_history(room, sender, muc)
        self.send_to(room.subject_message(), sender)

    def join_session(self, room, occupant, sender, codes, muc):
        """
        Another session of an occupant's bare JID enters with its nick (multi-session
        nicks): the others keep seeing one occupant, so only the new session is told the
        room's presences, its own (110), the history and the subject. From now on what is
        sent to the occupant goes to every session.
        """
        room.add_session(occupant, sender)
        for other in room.occupants.values():
            if other is not occupant:
                self.send_to(room.presence(other, room.shows_jid_to(occupant)), sender)
        self.send_to(room.presence(occupant, True, codes), sender)
        self.send_history(room, sender, muc)
        self.send_to(room.subject_message(), sender)

    def leave_session(self, room, occupant, sender, presence):
        """One session of a multi-session occupant leaves: only it hears of it."""
        room.remove_session(occupant, sender)
        status = list(presence.iterchildren(STATUS))
        self.send_to(room.presence(occupant, True, (110,), "unavailable", status=status),
                     sender)

    def deliver(self, stanza, occupant):
        """Send a copy of C{stanza} to every session of C{occupant}."""
        for jid in list(occupant.sessions):
            self.send_to(stanza, jid)

    def create_room(self, name, creator):
        """A new room owned by C{creator}; locked when lock_new_rooms is on."""
        if self.options["creators"] == "local" and creator.domain != self.host.domain:
            raise StanzaError("not-allowed", "Only local users may create rooms")
        if len(self.rooms) >= self.options["max_rooms"]:
            raise StanzaError("not-allowed", "The service holds its maximum number of rooms")
        config = RoomConfig(max_users=self.options["max_users"],
                            history_length=self.options["history_length"])
        room = Room(name, JID(name, self.domain, None), config, self.secret)
        room.set_affiliation(creator, "owner")
        room.locked = self.options["lock_new_rooms"]
        self.rooms[name] = room
        return room

    def broadcast_presence(self, room, occupant, self_codes=(110,), codes=(), type_=None,
                           nick=None, actor=None, reason=None, destroy=None, status=()):
        """Send C{occupant}'s presence to every occupant (and to itself even when gone)."""
        built = {}
        recipients = list(room.occupants.values())
        if room.occupants.get(occupant.nick) is not occupant:
            recipients.append(occupant)   # it has left: it still hears of its own exit
        for recipient in recipients:
            is_self = recipient is occupant
            key = (room.shows_jid_to(recipient) or is_self, is_self)
            presence = built.get(key)
            if presence is None:
                all_codes = tuple(codes) + (tuple(self_codes) if is_self else ())
                presence = built[key] = room.presence(
                    occupant, key[0], all_codes, type_, nick, actor, reason, destroy, status)
            self.deliver(presence, recipient)

    def leave(self, room, occupant, presence=None, codes=(), actor=None, reason=None):
        """C{occupant} leaves (or is removed with status C{codes})."""
        room.remove(occupant)
        status = ()
        if presence is not None:
            occupant.presence = presence
            status = list(presence.iterchildren(STATUS))   # XEP-0045 §7.14: kept on leave
        self.broadcast_presence(room, occupant, codes=codes, type_="unavailable",
                                actor=actor, reason=reason, status=status)
        self.maybe_forget(room)

    def maybe_forget(self, room):
        """Forget a temporary room once its last occupant has left."""
        if not room.occupants and not room.config.persistent:
            self.rooms.pop(room.name, None)

    def change_nick(self, room, occupant, nick, presence):
        """XEP-0045 §7.6: 303 unavailable with the new nick, then available as it."""
        if nick in room.occupants:
            raise StanzaError("conflict", "That nickname is already in use")
        if room.nick_taken_from(occupant.jid, nick):
            raise StanzaError("conflict", "That nickname is reserved by another user")
        self.broadcast_presence(room, occupant, codes=(303,), type_="unavailable", nick=nick)
        room.rename(occupant, nick)
        occupant.presence = presence
        self.broadcast_presence(room, occupant)

    def send_history(self, room, jid, muc):
        """XEP-0045 §7.2.15: the history the occupant asked for, with delay stamps."""
        maxstanzas = maxchars = since = None
        request = muc.find(f"{{{NS_MUC}}}history") if muc is not None else None
        if request is not None:
            try:
                if request.get("maxstanzas") is not None:
                    maxstanzas = int(request.get("maxstanzas"))
                if request.get("maxchars") is not None:
                    maxchars = int(request.get("maxchars"))
                if request.get("seconds") is not None:
                    since = self.host.clock.seconds() - int(request.get("seconds"))
            except ValueError:
                maxstanzas = maxchars = since = None   # unreadable: the default history
            if request.get("since") is not None:
                try:
                    since = max(since or 0, parse_timestamp(request.get("since")))
                except StanzaError:
                    pass
        entries = list(room.history)
        if since is not None:
            entries = [e for e in entries if e.when >= since]
        if maxstanzas is not None:
            entries = entries[len(entries) - maxstanzas:] if maxstanzas > 0 else []
        if maxchars is not None:
            kept, total = [], 0
            for entry in reversed(entries):
                total += entry.chars
                if total > maxchars:
                    break
                kept.append(entry)
            entries = kept[::-1]
        for entry in entries:
            message = copy.deepcopy(entry.message)
            message.append(element(NS_DELAY, "delay", {"from": str(room.jid),
                                                       "stamp": timestamp(entry.when)}))
            message.set("to", str(jid))
            self.host.send(message)

    # -- messages ---------------------------------------------------------------------

    def _message(self, message, sender, to, room):
        type_ = message.get("type", "normal")
        if type_ == "error":
            return
        if room is None:
            raise StanzaError("item-not-found", "No such room")
        occupant = room.by_jid.get(sender)
        if to.resource is not None:
            self.private_message(room, occupant, message, to.resource)
            return
        if type_ == "groupchat":
            if occupant is None:
                raise StanzaError("not-acceptable", "Only occupants may send to the room")
            self.groupchat(room, occupant, message)
            return
        x = message.find(MUC_USER_X)
        if x is not None and x.find(f"{{{NS_MUC_USER}}}invite") is not None:
            self.invite(room, occupant, sender, x)
            return
        form = message.find(DATA_X)
        if form is not None and form_type(form) == NS_MUC_REQUEST:
            self.voice_form(room, occupant, form)
            return
        raise StanzaError("bad-request", "Send groupchat messages to the room")

    # -- voice requests (XEP-0045 §7.13, §8.6) ----------------------------------------

    def voice_form(self, room, occupant, form):
        """A muc#request form: a visitor's request for voice, or a moderator's answer."""
        if occupant is None:
            raise StanzaError("not-acceptable", "Only occupants may request voice")
        if form.get("type") != "submit":
            raise StanzaError("bad-request", "Expected a submitted muc#request form")
        values = form_values(form)
        if "muc#request_allow" in values:
            self.voice_decision(room, occupant, values)
            return
        if (values.get("muc#role") or ["participant"]) != ["participant"]:
            raise StanzaError("not-acceptable", "Only the participant role may be requested")
        if occupant.role != "visitor":
            return   # it already has voice: nothing to ask the moderators
        approval = element(NS_CLIENT, "message", {"from": str(room.jid)})
        approval.append(voice_approval_form(occupant))
        for moderator in room.occupants.values():
            if moderator.role == "moderator":
                self.deliver(approval, moderator)

    def voice_decision(self, room, moderator, values):
        """A moderator's submitted approval form: voice for the named visitor if allowed."""
        if moderator.role != "moderator":
            raise StanzaError("forbidden", "Only moderators may grant voice")
        allow = (values.get("muc#request_allow") or ["0"])[0]
        if allow not in ("1", "true"):
            return   # denied: the visitor stays a visitor
        target = room.occupants.get((values.get("muc#roomnick") or [""])[0])
        if target is None:
            raise StanzaError("item-not-found", "No occupant has that nick")
        if target.role == "visitor":
            self.set_role(room, target, "participant", actor=moderator.nick)

    def groupchat(self, room, occupant, message):
        """A message to the whole room: a subject change or a broadcast message."""
        if occupant.role == "visitor":
            raise StanzaError("forbidden", "Visitors may not speak in this moderated room")
        subject = message.find(SUBJECT)
        if subject is not None and message.find(BODY) is None:
            if not (occupant.role == "moderator"
                    or (room.config.changesubject and occupant.role == "participant")):
                raise StanzaError("forbidden", "You may not change the subject")
            room.subject = subject.text or ""
            room.subject_nick = occupant.nick
            self.in_background(self.save(room))
        out = element(NS_CLIENT, "message", {"from": f"{room.jid}/{occupant.nick}",
                                             "type": "groupchat", "id": message.get("id")})
        for child in message:
            if isinstance(child.tag, str) and child.tag != f"{{{NS_OCCUPANT_ID}}}occupant-id":
                kept = copy.deepcopy(child)
                kept.tail = None
                out.append(kept)
        out.append(element(NS_OCCUPANT_ID, "occupant-id", id=occupant.occupant_id))
        for recipient in room.occupants.values():
            self.deliver(out, recipient)
        if message.find(BODY) is not None and room.config.history_length:
            room.history.append(HistoryEntry(self.host.clock.seconds(), out,
                                             len(serialize(out))))

    def private_message(self, room, occupant, message, nick):
        """XEP-0045 §7.5: a message to one occupant, from the sender's occupant JID."""
        if occupant is None:
            raise StanzaError("not-acceptable", "Only occupants may send private messages")
        if message.get("type") == "groupchat":
            raise StanzaError("bad-request", "Private messages are not of type groupchat")
        target = room.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "No occupant has that nick")
        out = copy.deepcopy(message)
        out.set("from", f"{room.jid}/{occupant.nick}")
        if out.find(MUC_USER_X) is None:
            out.append(element(NS_MUC_USER, "x"))
        self.deliver(out, target)

    def invite(self, room, occupant, sender, x):
        """XEP-0045 §7.8.2: mediated invitations, sent on from the room."""
        if occupant is None:
            raise StanzaError("not-acceptable", "Only occupants may invite")
        affiliation = room.affiliation(sender)
        if (room.config.members_only and not room.config.allowinvites
                and RANK[affiliation] < RANK["admin"]):
            raise StanzaError("forbidden", "Only admins may invite to this room")
        for invite in x.iterchildren(f"{{{NS_MUC_USER}}}invite"):
            try:
                invitee = JID.parse(invite.get("to") or "")
            except InvalidJID:
                raise StanzaError("jid-malformed", "bad invitee JID") from None
            if room.config.members_only and room.affiliation(invitee) in ("none",):
                room.set_affiliation(invitee, "member")
                self.in_background(self.save(room))
            out = element(NS_CLIENT, "message", {"from": str(room.jid), "to": str(invitee)})
            user = element(NS_MUC_USER, "x")
            forwarded = element(NS_MUC_USER, "invite", {"from": str(sender.bare())})
            reason = invite.findtext(f"{{{NS_MUC_USER}}}reason")
            if reason:
                forwarded.append(element(NS_MUC_USER, "reason", text=reason))
            user.append(forwarded)
            if room.config.password:
                user.append(element(NS_MUC_USER, "password", text=room.config.password))
            out.append(user)
            self.host.send(out)

    # -- IQs --------------------------------------------------------------------------

    def _answer(self, iq, handler, *args):
        """Run C{handler}; send its payload as the result or its StanzaError."""
        if iq.get("type") not in ("get", "set"):
            return
        children = [c for c in iq if isinstance(c.tag, str)]
        if len(children) != 1:
            raise StanzaError("bad-request", "An IQ get or set has exactly one child element")
        payload = handler(iq, children[0], *args)
        if isinstance(payload, defer.Deferred):
            # Answered once storage has the change: a result means it is kept.
            payload.addCallbacks(lambda result: self._result(iq, result),
                                 lambda failure: self._failed(iq, failure))
        else:
            self._result(iq, payload)

    def _result(self, iq, payload):
        answer = st.reply(iq)
        if payload is not None:
            answer.append(payload)
        self.host.send(answer)

    def _failed(self, iq, failure):
        if failure.check(StanzaError):
            self.bounce(iq, failure.value)
            return
        self.host.log.failure("answering an IQ to {to} failed", failure, to=iq.get("to"))
        self.bounce(iq, StanzaError("internal-server-error"))

    def _service_iq(self, iq, sender):
        self._answer(iq, self._service_query, sender)

    def _service_query(self, iq, query, sender):
        type_ = iq.get("type")
        if type_ == "get" and query.tag == f"{{{NS_DISCO_INFO}}}query":
            if query.get("node") is not None:
                raise StanzaError("item-not-found")
            answer = element(NS_DISCO_INFO, "query")
            answer.append(element(NS_DISCO_INFO, "identity", {
                "category": "conference", "type": "text", "name": self.options["name"]}))
            for feature in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_OCCUPANT_ID):
                answer.append(element(NS_DISCO_INFO, "feature", var=feature))
            return answer
        if type_ == "get" and query.tag == f"{{{NS_DISCO_ITEMS}}}query":
            if query.get("node") is not None:
                raise StanzaError("item-not-found")
            answer = element(NS_DISCO_ITEMS, "query")
            for name in sorted(self.rooms):
                room = self.rooms[name]
                if room.config.public and not room.locked:
                    answer.append(element(NS_DISCO_ITEMS, "item", {
                        "jid": str(room.jid), "name": room.config.name or name}))
            return answer
        if type_ == "get" and query.tag == f"{{{NS_PING}}}ping":
            return None
        raise StanzaError("service-unavailable")

    def _iq(self, iq, sender, to, room):
        if room is None:
            if iq.get("type") in ("get", "set"):
                raise StanzaError("item-not-found", "No such room")
            return
        if to.resource is None:
            self._answer(iq, self._room_query, room, sender)
        elif iq.get("type") in ("result", "error"):
            self.relay_answer(iq, sender, room)
        else:
            self.occupant_iq(iq, room, sender, to.resource)

    def occupant_iq(self, iq, room, sender, nick):
        """
        An IQ get or set to an occupant JID (XEP-0045 §7.3 private IQs): a joined sender's
        self-ping is answered here (XEP-0410); any other request is relayed to the
        occupant's real JID from the sender's occupant JID, under a fresh id that maps the
        answer back to the sender and its id.
        """
        requester = room.by_jid.get(sender)
        if requester is None:
            raise StanzaError("not-acceptable", "You are not an occupant of this room")
        children = [c for c in iq if isinstance(c.tag, str)]
        if len(children) != 1:
            raise StanzaError("bad-request", "An IQ get or set has exactly one child element")
        target = room.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "No occupant has that nick")
        query = children[0]
        if target is requester and query.tag == f"{{{NS_PING}}}ping":
            self.host.send(st.reply(iq))
            return
        if len(self.relayed) >= MAX_RELAYED:
            raise StanzaError("resource-constraint", "Too many requests are pending",
                              type="wait")
        destination = target.jid
        if query.tag == f"{{{NS_VCARD}}}vCard" and iq.get("type") == "get":
            # vCards belong to accounts: the occupant's server answers for the bare JID.
            destination = target.jid.bare()
        relay_id = "muc-" + secrets.token_hex(8)
        out = copy.deepcopy(iq)
        out.set("id", relay_id)
        out.set("from", f"{room.jid}/{requester.nick}")
        out.set("to", str(destination))
        timer = self.host.call_later(RELAY_TIMEOUT, self.relay_expired, relay_id)
        self.relayed[relay_id] = RelayedIQ(room.name, iq, destination, target.nick, timer)
        self.host.send(out)

    def relay_answer(self, iq, sender, room):
        """The answer to a relayed IQ goes back to the requester under its own id, from
        the answering occupant's JID; anything else of type result or error is dropped."""
        pending = self.relayed.get(iq.get("id"))
        if pending is None or pending.room != room.name or pending.responder != sender:
            return
        del self.relayed[iq.get("id")]
        if pending.timer.active():
            pending.timer.cancel()
        answerer = room.by_jid.get(sender)
        nick = answerer.nick if answerer is not None else pending.nick
        out = copy.deepcopy(iq)
        if pending.request.get("id") is None:
            del out.attrib["id"]
        else:
            out.set("id", pending.request.get("id"))
        out.set("from", f"{room.jid}/{nick}")
        out.set("to", pending.request.get("from"))
        self.host.send(out)

    def relay_expired(self, relay_id):
        """No answer came in time: the requester gets remote-server-timeout."""
        pending = self.relayed.pop(relay_id, None)
        if pending is not None:
            self.bounce(pending.request, StanzaError("remote-server-timeout"))

    def _room_query(self, iq, query, room, sender):
        type_ = iq.get("type")
        tag = query.tag
        if type_ == "get" and tag == f"{{{NS_DISCO_INFO}}}query":
            return self.room_info(room, query, sender)
        if type_ == "get" and tag == f"{{{NS_DISCO_ITEMS}}}query":
            return self.room_items(room, query)
        if type_ == "get" and tag == f"{{{NS_PING}}}ping":
            if room.by_jid.get(sender) is None:
                raise StanzaError("not-acceptable", "You are not an occupant of this room")
            return None
        if tag == f"{{{NS_MUC_OWNER}}}query":
            return self.owner_query(room, sender, type_, query)
        if tag == f"{{{NS_MUC_ADMIN}}}query":
            return self.admin_query(room, sender, type_, query)
        if tag == f"{{{NS_REGISTER}}}query":
            return self.register_query(room, sender, type_, query)
        raise StanzaError("service-unavailable")

    def room_items(self, room, query):
        """XEP-0045 §6.5: the occupant JIDs of a non-anonymous room; none otherwise, as
        listing them would reveal who is in a room that hides real JIDs."""
        if query.get("node") is not None:
            raise StanzaError("item-not-found")
        answer = element(NS_DISCO_ITEMS, "query")
        if room.config.whois == "anyone":
            for nick in sorted(room.occupants):
                answer.append(element(NS_DISCO_ITEMS, "item", jid=f"{room.jid}/{nick}"))
        return answer

    def reserved_nick(self, room, sender):
        """XEP-0045 §7.12: the sender's reserved nick as an identity; empty when none."""
        answer = element(NS_DISCO_INFO, "query", node=ROOMUSER_NODE)
        nick = room.registered.get(str(sender.bare()))
        if nick is not None:
            answer.append(element(NS_DISCO_INFO, "identity", {
                "category": "conference", "type": "text", "name": nick}))
        return answer

    # -- nickname registration (XEP-0045 §7.10) ---------------------------------------

    def register_query(self, room, sender, type_, query):
        """The muc#register form (get), its submission, cancel and <remove/> (set)."""
        affiliation = room.affiliation(sender)
        if affiliation == "outcast":
            raise StanzaError("forbidden", "You are banned from this room")
        if room.config.members_only and RANK[affiliation] < RANK["member"]:
            # Registering makes a member; in a members-only room only admins may.
            raise StanzaError("registration-required", "This room is members-only")
        if type_ == "get":
            return self.register_form(room, sender)
        if query.find(f"{{{NS_REGISTER}}}remove") is not None:
            return self.unregister(room, sender)
        form = query.find(DATA_X)
        if form is None:
            raise StanzaError("bad-request", "Expected the muc#register data form")
        if form.get("type") == "cancel":
            return None
        if form.get("type") != "submit" or form_type(form) != NS_MUC_REGISTER:
            raise StanzaError("bad-request", "Expected a submitted muc#register form")
        values = form_values(form).get("muc#register_roomnick") or [""]
        if len(values) != 1 or not values[0]:
            raise StanzaError("not-acceptable", "muc#register_roomnick is required")
        try:
            nick = room.jid.with_resource(values[0]).resource
        except InvalidJID:
            raise StanzaError("not-acceptable", "That is not a valid nickname") from None
        holder = room.occupants.get(nick)
        if room.nick_taken_from(sender, nick) or (
                holder is not None and holder.jid.bare() != sender.bare()):
            raise StanzaError("conflict", "That nickname is reserved or in use")
        room.register(sender, nick)
        if affiliation == "none":
            return self.set_affiliation(room, sender.bare(), "member")
        return self.save(room)

    def register_form(self, room, sender):
        """The reserved nick of the sender (<registered/>), or the form to reserve one."""
        answer = element(NS_REGISTER, "query")
        nick = room.registered.get(str(sender.bare()))
        if nick is not None:
            answer.append(element(NS_REGISTER, "registered"))
            answer.append(element(NS_REGISTER, "username", text=nick))
            return answer
        answer.append(element(NS_REGISTER, "instructions",
                              text="Choose the nickname to reserve in this room."))
        form = element(NS_DATA, "x", type="form")
        form.append(element(NS_DATA, "title", text=f"Registration with {room.jid}"))
        hidden = element(NS_DATA, "field", var="FORM_TYPE", type="hidden")
        hidden.append(element(NS_DATA, "value", text=NS_MUC_REGISTER))
        form.append(hidden)
        field = element(NS_DATA, "field", var="muc#register_roomnick", type="text-single",
                        label="Desired Nickname")
        field.append(element(NS_DATA, "required"))
        form.append(field)
        answer.append(form)
        return answer

    def unregister(self, room, sender):
        """Release the sender's reserved nick; the membership registering gave is taken
        back in a room that is not members-only (there admins manage the member list)."""
        if str(sender.bare()) not in room.registered:
            return None
        room.unregister(sender)
        if room.affiliation(sender) == "member" and not room.config.members_only:
            return self.set_affiliation(room, sender.bare(), "none")
        return self.save(room)

    def room_info(self, room, query, sender):
        """XEP-0045 §6.4: the room's identity, muc_ features and muc#roominfo form."""
        if query.get("node") == ROOMUSER_NODE:
            return self.reserved_nick(room, sender)
        if query.get("node") is not None:
            raise StanzaError("item-not-found")
        config = room.config
        answer = element(NS_DISCO_INFO, "query")
        answer.append(element(NS_DISCO_INFO, "identity", {
            "category": "conference", "type": "text", "name": config.name or room.name}))
        features = [
            NS_MUC, NS_OCCUPANT_ID, NS_REGISTER, NS_MUC_REQUEST,
            "muc_public" if config.public else "muc_hidden",
            "muc_persistent" if config.persistent else "muc_temporary",
            "muc_membersonly" if config.members_only else "muc_open",
            "muc_moderated" if config.moderated else "muc_unmoderated",
            "muc_nonanonymous" if config.whois == "anyone" else "muc_semianonymous",
            "muc_passwordprotected" if config.password else "muc_unsecured",
        ]
        for feature in features:
            answer.append(element(NS_DISCO_INFO, "feature", var=feature))
        form = element(NS_DATA, "x", type="result")
        for var, value, kind in (("FORM_TYPE", NS_ROOMINFO, "hidden"),
                                 ("muc#roominfo_description", config.description, None),
                                 ("muc#roominfo_occupants", str(len(room.occupants)), None),
                                 ("muc#roominfo_subject", room.subject, None)):
            field = element(NS_DATA, "field", var=var, type=kind)
            field.append(element(NS_DATA, "value", text=value))
            form.append(field)
        answer.append(form)
        return answer

    # -- owner: configuration and destruction -----------------------------------------

    def owner_query(self, room, sender, type_, query):
        """XEP-0045 §10: muc#owner get (the form), set (submit, cancel, destroy)."""
        if room.affiliation(sender) != "owner":
            raise StanzaError("forbidden", "Only owners may configure this room")
        if type_ == "get":
            answer = element(NS_MUC_OWNER, "query")
            answer.append(config_form(room.config))
            return answer
        destroy = query.find(f"{{{NS_MUC_OWNER}}}destroy")
        if destroy is not None:
            return self.destroy(room, destroy)
        form = query.find(DATA_X)
        if form is None:
            raise StanzaError("bad-request", "Expected a data form or <destroy/>")
        kind = form.get("type")
        if kind == "cancel":
            if room.locked:
                return self.destroy(room, None)
            return None
        if kind != "submit":
            raise StanzaError("bad-request", "The form must be of type submit or cancel")
        old = room.config
        new = apply_form(old, form, self.options["max_users"],
                         self.options["max_history_length"])
        room.config = new
        room.locked = False
        if new.history_length != old.history_length:
            room.resize_history()
        if new.members_only and not old.members_only:
            for occupant in list(room.occupants.values()):
                if RANK[room.affiliation(occupant.jid)] < RANK["member"]:
                    self.remove_occupant(room, occupant, 322)
        stored = None
        if new.persistent:
            stored = self.save(room)
        elif old.persistent:
            stored = self._delete_stored(room)
            self.maybe_forget(room)
        codes = [104]
        if new.whois != old.whois:
            codes.append(172 if new.whois == "anyone" else 173)
        self.notify(room, codes)
        return stored

    def notify(self, room, codes):
        """A status message from the room to every occupant (XEP-0045 §10.2.1)."""
        message = element(NS_CLIENT, "message", {"from": str(room.jid), "type": "groupchat"})
        x = element(NS_MUC_USER, "x")
        for code in codes:
            x.append(element(NS_MUC_USER, "status", code=str(code)))
        message.append(x)
        for occupant in room.occupants.values():
            self.deliver(message, occupant)

    def destroy(self, room, destroy):
        """XEP-0045 §10.9: every occupant is told (with the alternate venue), then the
        room is forgotten and deleted from storage."""
        notice = element(NS_MUC_USER, "destroy")
        if destroy is not None:
            if destroy.get("jid"):
                notice.set("jid", destroy.get("jid"))
            reason = destroy.findtext(f"{{{NS_MUC_OWNER}}}reason")
            if reason:
                notice.append(element(NS_MUC_USER, "reason", text=reason))
        for occupant in list(room.occupants.values()):
            presence = room.presence(occupant, False, (), "unavailable", destroy=notice)
            self.deliver(presence, occupant)
        room.occupants.clear()
        room.by_jid.clear()
        self.rooms.pop(room.name, None)
        if room.config.persistent:
            return self._delete_stored(room)
        return None

    # -- admin: roles and affiliations ------------------------------------------------

    def admin_query(self, room, sender, type_, query):
        """XEP-0045 §8 and §9: muc#admin lists (get) and changes (set)."""
        actor_affiliation = room.affiliation(sender)
        actor = room.by_jid.get(sender)
        items = list(query.iterchildren(f"{{{NS_MUC_ADMIN}}}item"))
        if not items:
            raise StanzaError("bad-request", "Expected an item")
        if type_ == "get":
            return self.admin_list(room, actor, actor_affiliation, items[0])
        changes = []
        for item in items:
            changes.append(self.check_change(room, sender, actor, actor_affiliation, item))
        stored = [change() for change in changes]
        stored = [d for d in stored if isinstance(d, defer.Deferred)]
        if stored:
            return defer.gatherResults(stored, consumeErrors=True).addCallback(lambda _: None)
        return None

    def admin_list(self, room, actor, actor_affiliation, item):
        answer = element(NS_MUC_ADMIN, "query")
        affiliation = item.get("affiliation")
        role = item.get("role")
        if affiliation is not None:
            if affiliation not in AFFILIATIONS or affiliation == "none":
                raise StanzaError("bad-request", "Unknown affiliation")
            if RANK[actor_affiliation] < RANK["admin"]:
                raise StanzaError("forbidden", "Only admins may see affiliation lists")
            for jid, value in sorted(room.affiliations.items()):
                if value == affiliation:
                    answer.append(element(NS_MUC_ADMIN, "item", affiliation=value, jid=jid))
            return answer
        if role is not None:
            if role not in ROLES or role == "none":
                raise StanzaError("bad-request", "Unknown role")
            if actor is None or actor.role != "moderator":
                raise StanzaError("forbidden", "Only moderators may see role lists")
            for occupant in room.occupants.values():
                if occupant.role == role:
                    answer.append(element(NS_MUC_ADMIN, "item", role=role, nick=occupant.nick,
                                          jid=str(occupant.jid),
                                          affiliation=room.affiliation(occupant.jid)))
            return answer
        raise StanzaError("bad-request", "Expected an affiliation or role")

    def check_change(self, room, sender, actor, actor_affiliation, item):
        """Check one muc#admin set item; a function applying it when every one passed."""
        reason = item.findtext(f"{{{NS_MUC_ADMIN}}}reason")
        actor_nick = actor.nick if actor is not None else None
        if item.get("affiliation") is not None:
            affiliation = item.get("affiliation")
            if affiliation not in AFFILIATIONS:
                raise StanzaError("bad-request", "Unknown affiliation")
            try:
                target = JID.parse(item.get("jid") or "").bare()
            except InvalidJID:
                raise StanzaError("jid-malformed", "An affiliation change needs a jid") from None
            current = room.affiliation(target)
            if RANK[actor_affiliation] < RANK["admin"]:
                raise StanzaError("forbidden", "Only admins may change affiliations")
            if actor_affiliation != "owner" and (RANK[current] >= RANK["admin"]
                                                 or RANK[affiliation] >= RANK["admin"]):
                raise StanzaError("not-allowed", "Only owners may change admins and owners")
            if current == "owner" and affiliation != "owner" and room.owners() == [str(target)]:
                raise StanzaError("conflict", "A room needs at least one owner")
            return lambda: self.set_affiliation(room, target, affiliation, actor_nick, reason)
        role = item.get("role")
        if role is None:
            raise StanzaError("bad-request", "Expected an affiliation or role")
        if role not in ROLES:
            raise StanzaError("bad-request", "Unknown role")
        if actor is None or actor.role != "moderator":
            raise StanzaError("forbidden", "Only moderators may change roles")
        target = room.occupants.get(item.get("nick") or "")
        if target is None:
            raise StanzaError("item-not-found", "No occupant has that nick")
        target_affiliation = room.affiliation(target.jid)
        if role == "moderator" or target.role == "moderator":
            if RANK[actor_affiliation] < RANK["admin"]:
                raise StanzaError("not-allowed", "Only admins may change moderators")
        if RANK[target_affiliation] > RANK[actor_affiliation] or (
                RANK[target_affiliation] >= RANK["admin"] and role != "moderator"):
            raise StanzaError("not-allowed", "That occupant's affiliation is too high")
        return lambda: self.set_role(room, target, role, actor_nick, reason)

    def set_role(self, room, occupant, role, actor=None, reason=None):
        """Give C{occupant} C{role}; 'none' kicks it (307)."""
        if occupant.nick not in room.occupants:
            return
        if role == "none":
            self.remove_occupant(room, occupant, 307, actor=actor, reason=reason)
            return
        occupant.role = role
        self.broadcast_presence(room, occupant, self_codes=(), actor=actor, reason=reason)

    def remove_occupant(self, room, occupant, code, actor=None, reason=None):
        """Remove C{occupant} with status C{code} (301 ban, 307 kick, 321/322 members)."""
        occupant.role = "none"
        self.leave(room, occupant, codes=(code,), actor=actor, reason=reason)

    def set_affiliation(self, room, jid, affiliation, actor=None, reason=None):
        """Set C{jid}'s affiliation and apply it to its occupants (XEP-0045 §9, §10)."""
        room.set_affiliation(jid, affiliation)
        if affiliation == "outcast":
            room.unregister(jid)   # a banned user keeps no nick reserved
        stored = self.save(room)
        for occupant in [o for o in room.occupants.values() if o.jid.bare() == jid]:
            if affiliation == "outcast":
                self.remove_occupant(room, occupant, 301, actor, reason)
            elif room.config.members_only and affiliation == "none":
                self.remove_occupant(room, occupant, 321, actor, reason)
            else:
                if affiliation in ("owner", "admin") or occupant.role == "moderator":
                    occupant.role = room.default_role(affiliation)
                self.broadcast_presence(room, occupant, self_codes=(), actor=actor,
                                        reason=reason)
        return stored

    # -- persistence ------------------------------------------------------------------

    def save(self, room):
        """Write a persistent room through to the store; a Deferred (None for a
        temporary room). A failure is logged and becomes internal-server-error."""
        if not room.config.persistent or room.name not in self.rooms:
            return None
        d = self.store.save(room.name, room.to_json())
        return d.addErrback(self._log_failure, room, "storing")

    @staticmethod
    def in_background(d):
        """Let a write go on without waiting for it (its failure is already logged)."""
        if d is not None:
            d.addErrback(lambda failure: None)

    def _delete_stored(self, room):
        return self.store.delete(room.name).addErrback(self._log_failure, room, "deleting")

    def _log_failure(self, failure, room, action):
        if failure.check(defer.FirstError):
            failure = failure.value.subFailure
        self.host.log.failure("{action} room {room} failed", failure, action=action,
                              room=room.name)
        # Logged here; the requester learns only that it failed.
        raise StanzaError("internal-server-error")
