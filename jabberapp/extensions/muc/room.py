"""
XEP-0045 room state: configuration, affiliations, occupants, subject and history. No I/O:
the service (service.py) reads and changes rooms and sends what they build.
"""
import copy
import hashlib
from collections import deque
from dataclasses import dataclass, field

from jabberapp.extensions.muc.config import RoomConfig
from jabberapp.jid import JID
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
MUC_X = f"{{{NS_MUC}}}x"
MUC_USER_X = f"{{{NS_MUC_USER}}}x"
OCCUPANT_ID = f"{{{NS_OCCUPANT_ID}}}occupant-id"

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
ROLES = ("moderator", "participant", "visitor", "none")
RANK = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}


@dataclass(eq=False)
class Occupant:
    """
    One occupant: the nick, the real full JID, the role and the last presence. Sessions
    of the same bare JID may share it (multi-session nicks): C{sessions} holds all their
    full JIDs, C{jid} the first of them still in the room.
    """

    nick: str
    jid: JID
    role: str
    presence: object = None   # the last available presence the client sent, or None
    occupant_id: str = ""
    sessions: list = field(default_factory=list)

    def __post_init__(self):
        if not self.sessions:
            self.sessions = [self.jid]


@dataclass
class HistoryEntry:
    """A groupchat message kept for history: when, its template and its size in chars."""

    when: float
    message: object
    chars: int


class Room:
    """One room of the service; see the module docstring."""

    def __init__(self, name, jid, config, secret=""):
        self.name = name
        self.jid = jid                # bare room JID
        self.config = config
        self.affiliations = {}        # bare JID str -> 'owner' | 'admin' | 'member' | 'outcast'
        self.occupants = {}           # nick -> Occupant
        self.by_jid = {}              # real full JID -> Occupant
        self.subject = ""
        self.subject_nick = ""
        self.locked = False
        self.history = deque(maxlen=config.history_length or None)
        self.secret = secret          # XEP-0421: occupant ids are hashed with it
        self.registered = {}          # bare JID str -> reserved nick (XEP-0045 §7.10)
        self.reserved = {}            # reserved nick -> bare JID str

    # -- affiliations and roles ---------------------------------------------------------

    def affiliation(self, jid):
        """The affiliation of C{jid} (any JID; its bare JID counts)."""
        return self.affiliations.get(str(jid.bare()), "none")

    def set_affiliation(self, jid, affiliation):
        key = str(jid.bare())
        if affiliation == "none":
            self.affiliations.pop(key, None)
        else:
            self.affiliations[key] = affiliation

    def owners(self):
        return [j for j, a in self.affiliations.items() if a == "owner"]

    def default_role(self, affiliation):
        """The role an occupant of C{affiliation} gets on entering (XEP-0045 §5.1.2)."""
        if affiliation in ("owner", "admin"):
            return "moderator"
        if self.config.moderated and affiliation == "none":
            return "visitor"
        return "participant"

    # -- reserved nicks (XEP-0045 §7.10) -------------------------------------------------

    def register(self, jid, nick):
        """Reserve C{nick} for C{jid}'s bare JID, replacing its earlier reservation."""
        self.unregister(jid)
        key = str(jid.bare())
        self.registered[key] = nick
        self.reserved[nick] = key

    def unregister(self, jid):
        """Forget C{jid}'s reserved nick, if any."""
        nick = self.registered.pop(str(jid.bare()), None)
        if nick is not None:
            self.reserved.pop(nick, None)

    def nick_taken_from(self, jid, nick):
        """True when C{nick} is reserved for a bare JID other than C{jid}'s."""
        owner = self.reserved.get(nick)
        return owner is not None and owner != str(jid.bare())

    def occupant_id(self, jid):
        """XEP-0421: a stable id for the real bare JID, not derivable without the secret."""
        digest = hashlib.sha256(f"{self.secret}\0{self.name}\0{jid.bare()}".encode())
        return digest.hexdigest()[:32]

    # -- occupants ----------------------------------------------------------------------

    def add(self, occupant):
        self.occupants[occupant.nick] = occupant
        for jid in occupant.sessions:
            self.by_jid[jid] = occupant

    def remove(self, occupant):
        self.occupants.pop(occupant.nick, None)
        for jid in occupant.sessions:
            self.by_jid.pop(jid, None)

    def add_session(self, occupant, jid):
        """Another session C{jid} of C{occupant}'s bare JID shares its nick."""
        occupant.sessions.append(jid)
        self.by_jid[jid] = occupant

    def remove_session(self, occupant, jid):
        """Session C{jid} of a multi-session occupant leaves; the occupant stays."""
        occupant.sessions.remove(jid)
        self.by_jid.pop(jid, None)
        occupant.jid = occupant.sessions[0]

    def rename(self, occupant, nick):
        self.occupants.pop(occupant.nick, None)
        occupant.nick = nick
        self.occupants[nick] = occupant

    def shows_jid_to(self, viewer):
        """True when C{viewer} (an Occupant) sees real JIDs (XEP-0045 §7.2.3, §7.2.4)."""
        return self.config.whois == "anyone" or viewer.role == "moderator"

    # -- what is sent -------------------------------------------------------------------

    def presence(self, occupant, show_jid, codes=(), type_=None, nick=None, actor=None,
                 reason=None, destroy=None, status=()):
        """
        A presence of C{occupant} from its occupant JID (no 'to' yet), with the muc#user
        item (its real JID when C{show_jid}), the status C{codes}, for a nick change the
        new C{nick}, and for a leave the <status/> elements C{status} of its unavailable
        presence.
        """
        presence = element(NS_CLIENT, "presence", {"from": f"{self.jid}/{occupant.nick}",
                                                   "type": type_})
        if type_ is None and occupant.presence is not None:
            for child in occupant.presence:
                if isinstance(child.tag, str) and child.tag not in (MUC_X, MUC_USER_X,
                                                                     OCCUPANT_ID):
                    kept = copy.deepcopy(child)
                    kept.tail = None
                    presence.append(kept)
        for text in status:
            kept = copy.deepcopy(text)
            kept.tail = None
            presence.append(kept)
        x = element(NS_MUC_USER, "x")
        if destroy is not None:
            item = element(NS_MUC_USER, "item", affiliation="none", role="none")
        else:
            item = element(NS_MUC_USER, "item", affiliation=self.affiliation(occupant.jid),
                           role=occupant.role)
        if show_jid:
            item.set("jid", str(occupant.jid))
        if nick is not None:
            item.set("nick", nick)
        if actor is not None:
            item.append(element(NS_MUC_USER, "actor", nick=actor))
        if reason:
            item.append(element(NS_MUC_USER, "reason", text=reason))
        x.append(item)
        if destroy is not None:
            x.append(destroy)
        for code in codes:
            x.append(element(NS_MUC_USER, "status", code=str(code)))
        presence.append(x)
        if occupant.occupant_id:
            presence.append(element(NS_OCCUPANT_ID, "occupant-id", id=occupant.occupant_id))
        return presence

    def subject_message(self):
        """The subject message sent last on join (an empty <subject/> when none is set)."""
        sender = f"{self.jid}/{self.subject_nick}" if self.subject_nick else str(self.jid)
        message = element(NS_CLIENT, "message", {"from": sender, "type": "groupchat"})
        message.append(element(NS_CLIENT, "subject", text=self.subject or None))
        return message

    def to_json(self):
        """The stored document of a persistent room."""
        return {"format": 1, "config": self.config.to_json(),
                "affiliations": dict(self.affiliations), "subject": self.subject,
                "subject_nick": self.subject_nick, "secret": self.secret,
                "registered": dict(self.registered)}

    @classmethod
    def from_json(cls, name, jid, document, secret=""):
        """A room (without occupants) from its stored document."""
        room = cls(name, jid, RoomConfig.from_json(document.get("config", {})),
                   document.get("secret", secret))
        room.affiliations = dict(document.get("affiliations", {}))
        room.subject = document.get("subject", "")
        room.subject_nick = document.get("subject_nick", "")
        for jid, nick in document.get("registered", {}).items():
            room.registered[jid] = nick
            room.reserved[nick] = jid
        return room

    def resize_history(self):
        """Apply a changed history length to the kept history."""
        self.history = deque(self.history, maxlen=self.config.history_length or None)
        if not self.config.history_length:
            self.history.clear()
