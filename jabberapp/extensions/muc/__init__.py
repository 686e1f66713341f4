"""
XEP-0045: Multi-User Chat, served in-process at conference.<host> (option ``domain``).

Modules: ``service`` (the component handler: presence, messages, owner and admin IQs,
disco), ``room`` (room and occupant state, the stanzas rooms send), ``config`` (the
muc#roomconfig data form), ``interfaces`` (IRoomStore, the storage contract, and its
key-value implementation over the host's IStorage).

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
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.config import Option, int_range, one_of
from jabberapp.extensions.muc.interfaces import IRoomStore, KeyValueRoomStore
from jabberapp.extensions.muc.service import MUCService
from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec

__all__ = ["IRoomStore", "KeyValueRoomStore", "MUCService", "muc"]


@implementer(IPlugin, IExtension)
class MultiUserChat:
    """Group chat rooms at a subdomain of the host, served in-process."""

    name = "muc"
    depends = ()
    specs = (
        Spec("XEP-0045", "1.34.5", "Multi-User Chat",
             "rooms, roles, affiliations, configuration, history, persistence, nickname "
             "registration, voice requests, private IQs, multi-session nicks; no room "
             "archive"),
        Spec("XEP-0410", "1.1.0", "MUC Self-Ping (Schrödinger's Chat)",
             "answered by the service for joined occupants"),
        Spec("XEP-0421", "0.2.0", "Anonymous unique occupant identifiers for MUCs"),
    )
    options = (
        Option("domain", str, "conference.{host}",
               "Domain of the MUC service; {host} is replaced by the host's domain."),
        Option("name", str, "Chatrooms", "Name of the service in disco."),
        Option("lock_new_rooms", bool, True,
               "Keep a room created by a join locked until its owner configures it "
               "(XEP-0045 §10.1); no: new rooms are open at once with the defaults."),
        Option("creators", one_of("local", "anyone"), "local",
               "Who may create rooms: users of this host (local) or anyone."),
        Option("max_rooms", int_range(1, 10_000_000), 10000,
               "Most rooms the service holds; creating more is refused with not-allowed."),
        Option("max_users", int_range(1, 100_000), 200,
               "Default and highest maximum number of occupants of a room."),
        Option("history_length", int_range(0, 1000), 20,
               "Messages of history a new room keeps and sends on join by default."),
        Option("max_history_length", int_range(0, 1000), 100,
               "Highest history length a room's owner may configure."),
    )

    def install(self, host):
        """Serve the MUC domain and load its persistent rooms."""
        domain = host.config["domain"].replace("{host}", host.domain)
        store = KeyValueRoomStore(host.storage, domain)
        service = MUCService(host, domain, store, host.config)
        host.add_component(domain, service.handle, name=host.config["name"])
        service.load()
        host.provide("muc", service)


muc = MultiUserChat()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
