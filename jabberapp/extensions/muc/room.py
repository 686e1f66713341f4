"""
XEP-0045 room state: configuration, affiliations, occupants, reserved nicks, subject and
history. Plain data and its bookkeeping: the rules (rules.py) decide what may change, the
protocol modules change it and send what follows, storage.py writes it through.
"""
import hashlib
from collections import deque
from dataclasses import dataclass, field

from jabberapp.jid import JID


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

    # -- affiliations -------------------------------------------------------------------

    def affiliation(self, jid):
        """The affiliation of C{jid} (any JID; its bare JID counts)."""
        return self.affiliations.get(str(jid.bare()), "none")

    def set_affiliation(self, jid, affiliation):
        """Give C{jid}'s bare JID C{affiliation} ('none' forgets it)."""
        key = str(jid.bare())
        if affiliation == "none":
            self.affiliations.pop(key, None)
        else:
            self.affiliations[key] = affiliation

    def owners(self):
        """The bare JIDs (str) of the owners."""
        return [j for j, a in self.affiliations.items() if a == "owner"]

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
        """C{occupant} enters, with every session it has."""
        self.occupants[occupant.nick] = occupant
        for jid in occupant.sessions:
            self.by_jid[jid] = occupant

    def remove(self, occupant):
        """C{occupant} leaves, with every session it has."""
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
        """C{occupant} is known as C{nick} from now on."""
        self.occupants.pop(occupant.nick, None)
        occupant.nick = nick
        self.occupants[nick] = occupant

    def resize_history(self):
        """Apply a changed history length to the kept history."""
        self.history = deque(self.history, maxlen=self.config.history_length or None)
        if not self.config.history_length:
            self.history.clear()
