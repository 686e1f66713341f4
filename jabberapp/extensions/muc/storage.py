"""
Persistence of MUC rooms through an IRoomStore (interfaces.py): the stored document of a
room, loading every room at start, and writing a persistent room through on each change.

Only persistent rooms are written; a temporary room lives in memory alone. A failed write
is logged here with its traceback and becomes L{StoreFailed}, which the requester gets as
internal-server-error (stanza_errors.py), so that an IQ result means the change is kept.
"""
from twisted.internet import defer

from jabberapp.extensions.muc.config import RoomConfig
from jabberapp.extensions.muc.room import Room
from jabberapp.jid import JID

FORMAT = 1   # version of the stored document


class StoreFailed(Exception):
    """A room could not be written or deleted (the cause is logged already)."""


def room_document(room):
    """The stored document of a persistent room."""
    return {"format": FORMAT, "config": room.config.to_json(),
            "affiliations": dict(room.affiliations), "subject": room.subject,
            "subject_nick": room.subject_nick, "secret": room.secret,
            "registered": dict(room.registered)}


def room_from_document(name, jid, document, secret=""):
    """A room (without occupants) from its stored document."""
    room = Room(name, jid, RoomConfig.from_json(document.get("config", {})),
                document.get("secret", secret))
    room.affiliations = dict(document.get("affiliations", {}))
    room.subject = document.get("subject", "")
    room.subject_nick = document.get("subject_nick", "")
    for bare, nick in document.get("registered", {}).items():
        room.registered[bare] = nick
        room.reserved[nick] = bare
    return room


class RoomStorage:
    """The persistent rooms of one service domain in C{store} (an IRoomStore)."""

    def __init__(self, store, domain, log):
        self.store = store
        self.domain = domain
        self.log = log

    def load(self, secret):
        """Deferred: dict room name -> Room, for every stored room. Rooms stored without
        an occupant-id secret (XEP-0421) get C{secret}."""
        def rooms(documents):
            return {name: room_from_document(name, JID(name, self.domain, None), document,
                                             secret)
                    for name, document in documents.items()}
        return self.store.load_all().addCallback(rooms)

    def save(self, room):
        """Write C{room} through when it is persistent: a Deferred, or None for a
        temporary room. A failure is logged and becomes StoreFailed."""
        if not room.config.persistent:
            return None
        d = self.store.save(room.name, room_document(room))
        return d.addErrback(self._failed, room, "storing")

    def delete(self, room):
        """Forget the stored C{room}: a Deferred, failing as L{save} does."""
        return self.store.delete(room.name).addErrback(self._failed, room, "deleting")

    @staticmethod
    def in_background(d):
        """Let a write go on without waiting for it (its failure is already logged)."""
        if d is not None:
            d.addErrback(lambda failure: None)

    def _failed(self, failure, room, action):
        if failure.check(defer.FirstError):
            failure = failure.value.subFailure
        self.log.failure("{action} room {room} failed", failure, action=action,
                         room=room.name)
        # Logged here with its cause; the requester learns only that it failed.
        raise StoreFailed(room.name)
