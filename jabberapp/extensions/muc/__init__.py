"""
XEP-0045: Multi-User Chat, served in-process at conference.<host> (option ``domain``).

Modules, by layer (docs/architecture.md draws them):

- plugin: ``plugin`` (the IExtension object ``muc``, its options, install).
- protocol (stanzas in and out): ``service`` (the component handler: parses addresses
  once, dispatches by stanza kind through a table, maps domain errors to stanza errors
  with ``stanza_errors``), ``presence`` (enter, leave, nick change, broadcast, history
  on join), ``messages`` (groupchat, subject, private messages, invitations, voice
  requests), ``iq`` (the table of IQ payloads), ``disco``, ``owner`` (configuration,
  destruction), ``admin`` (role and affiliation lists and changes), ``register`` (nick
  registration), ``relay`` (IQs to occupants, self-ping), ``stanzas`` (what rooms
  send), ``names`` (namespaces).
- rules: ``rules`` (roles, affiliations, who may do what: pure functions raising
  ``rules.Refused`` subclasses).
- state and storage: ``room`` (room and occupant state), ``config`` (RoomConfig and the
  muc#roomconfig form), ``storage`` (the stored document, loading, write-through),
  ``interfaces`` (IRoomStore, the storage contract, and its key-value implementation).

What is implemented:

- Entering (creating the room on first join, locked until its owner submits the
  configuration form -- an empty form makes an instant room -- or unlocked when
  ``lock_new_rooms`` is off), occupant presence with muc#user items and status codes 100,
  110, 201, 303, 301, 307, 321, 322, 333; nick conflicts; leaving; nick changes; presence
  updates; status text on leave presences; groupchat messages; subject changes (moderators,
  or participants when the room allows it); history on join (maxstanzas, maxchars, seconds,
  since) with XEP-0203 delay stamps; private messages between occupants; mediated
  invitations.
- Multi-session nicks: another session of an occupant's bare JID may enter with its nick;
  the others see one occupant, and what is sent to it reaches every session. A session
  leaving alone is told so (110) while the occupant stays; a kick or ban removes all.
- Nickname registration (§7.10, jabber:iq:register with the muc#register form): reserve,
  re-reserve or release (<remove/>) a nick; a nick reserved by another bare JID is refused
  with conflict on entry, nick change and registration. Registering makes an unaffiliated
  user a member; releasing takes that back except in members-only rooms, where only members
  may register (others get registration-required) and admins keep the member list. A ban
  drops the reservation. Reserved nicks of persistent rooms are stored. Discovery of one's
  reserved nick (§7.12, disco#info node x-roomuser-item).
- Voice requests (§7.13, §8.6): a visitor's muc#request form reaches every moderator as the
  approval form; a moderator submitting it with muc#request_allow true gives voice.
- IQs to an occupant JID (§7.3) are relayed to the occupant's real full JID (vCard
  requests to its bare JID, which its server answers) from the sender's occupant JID under a
  fresh id, and the answer is relayed back under the sender's id (remote-server-timeout after
  60 seconds without one); only occupants may send them; an unknown nick is item-not-found.
- Room configuration (persistent, public, members-only, password, moderated, whois, max
  users, history length, change subject, allow invites) with 104/172/173 notices; the entry
  errors not-authorized, registration-required, service-unavailable (full), forbidden
  (banned), conflict, item-not-found (locked or unknown room).
- muc#admin: kick, voice, moderator, ban, member/admin/owner lists (get and set) with the
  XEP's permission rules; muc#owner: configure, cancel, destroy with an alternate venue.
- Persistent rooms (configuration, affiliations, subject) survive a restart.
- disco#info/#items of the service (public rooms) and of rooms (muc_ features and the
  muc#roominfo form; disco#items lists the occupant JIDs of non-anonymous rooms only);
  XEP-0421 occupant ids; XEP-0410 self-ping answered by the service, pings to other
  occupants relayed.
  XEP-0249 direct invitations are user-to-user messages and pass through the server as is.

Not implemented: room-level message archive (MAM); registration requests needing an
admin's approval (registration is granted or refused at once); other forms of muc#request
than voice requests.
"""
from jabberapp.lazyexports import lazy_exports

# This package's __init__ imports none of its modules, so importing any of them never runs
# the others first (no import cycle through the package). The names it exports are
# imported from their modules when first used (PEP 562), so
# ``from jabberapp.extensions.muc import muc`` keeps working for jabberapp_builtin and
# third-party code.
_EXPORTS = {
    "muc": "jabberapp.extensions.muc.plugin",
    "MultiUserChat": "jabberapp.extensions.muc.plugin",
    "MUCService": "jabberapp.extensions.muc.service",
    "IRoomStore": "jabberapp.extensions.muc.interfaces",
    "KeyValueRoomStore": "jabberapp.extensions.muc.interfaces",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
