"""
The MUC extension's own storage contract (XEP-0045 persistent rooms) and its key-value
implementation over the host's IStorage.
"""
from twisted.internet import defer
from zope.interface import Interface, implementer

__all__ = ["IRoomStore", "KeyValueRoomStore"]


class IRoomStore(Interface):
    """
    Persistent rooms of one MUC service, as JSON-serialisable documents keyed by the
    room's local part. Every method returns a Deferred.
    """

    def load_all():
        """Deferred: dict room name -> document, for every stored room."""

    def save(name, document):
        """Deferred: store (create or replace) the document of room C{name}."""

    def delete(name):
        """Deferred: forget room C{name} (nothing happens if it is not stored)."""


@implementer(IRoomStore)
class KeyValueRoomStore:
    """
    IRoomStore over two IKeyValueStore documents per room: the document itself in the store
    "muc" under (service domain, room name, "room"), and an index entry in "muc_index"
    under (service domain, "rooms", room name) so that every room can be listed at start.
    Both writes of a change are queued at once, the index entry first: a graceful shutdown
    right after a change still writes both, and an index entry without a document (a crash
    between the two) is skipped when loading.
    """

    INDEX_USER = "rooms"
    KEY = "room"

    def __init__(self, storage, service_domain):
        self._rooms = storage.keyvalue("muc")
        self._index = storage.keyvalue("muc_index")
        self._domain = service_domain

    @defer.inlineCallbacks
    def load_all(self):
        """See IRoomStore.load_all."""
        names = yield self._index.keys(self._domain, self.INDEX_USER)
        rooms = {}
        for name in names:
            document = yield self._rooms.get(self._domain, name, self.KEY)
            if document is not None:
                rooms[name] = document
        return rooms

    def save(self, name, document):
        """See IRoomStore.save: the index entry, then the document, queued together so
        that a graceful shutdown right after still writes both."""
        return defer.gatherResults([
            self._index.set(self._domain, self.INDEX_USER, name, True),
            self._rooms.set(self._domain, name, self.KEY, document),
        ], consumeErrors=True).addCallback(lambda _: None)

    def delete(self, name):
        """See IRoomStore.delete: the index entry, then the document, queued together."""
        return defer.gatherResults([
            self._index.set(self._domain, self.INDEX_USER, name, None),
            self._rooms.set(self._domain, name, self.KEY, None),
        ], consumeErrors=True).addCallback(lambda _: None)
