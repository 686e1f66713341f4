"""
The ``mam`` extension: XEP-0313 Message Archive Management for the accounts of a host.

Installs the archiving hooks (archiving.py), the IQ handlers (protocol.py), expiry
(retention.py) and offers the service "mam" (L{MamService}) to other extensions (carbons
and push will want to know an archived message's id; an admin API the purge).
"""
from __future__ import annotations

import base64

from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp.config import Option, int_range, one_of
from jabberapp.extensions.mam.ns import FEATURES
from jabberapp.extensions.mam.archiving import Archiver
from jabberapp.extensions.mam.prefs import DEFAULTS, PrefsBook
from jabberapp.extensions.mam.protocol import ArchiveProtocol
from jabberapp.extensions.mam.retention import Retention, duration
from jabberapp.extensions.mam.stanzaid import StanzaIds
from jabberapp.extensions.mam.writer import BatchWriter
from jabberapp.interfaces import IExtension
from jabberapp.jid import JID
from jabberapp.specs import Spec
from jabberapp.storage import StorageError

__all__ = ["MamService", "MessageArchiveManagement", "mam"]

#: Archiving runs after every filter that may reject a message (blocking: 1000), right
#: before delivery; on FILTER_OUTBOUND it is the last hook.
RECEIVED_PRIORITY = -100
SENT_PRIORITY = -1000
#: The per-host stanza-id secret, in the key-value store "mam" under a pseudo-account
#: that no JID can name ('@' is not allowed in a localpart).
SECRET_STORE, SECRET_USER, SECRET_KEY = "mam", "@", "stanza-id-secret"


def _rate(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = 0.0
    if not 0 < value <= 1000:
        raise ValueError("expected a number of queries per second, more than 0, at most 1000")
    return value


_rate.description = "queries per second, more than 0"


class MamService:
    """What the extension offers other extensions as the service "mam"."""

    def __init__(self, host, store, book, writer):
        self._host = host
        self._store = store
        self._book = book
        self._writer = writer

    def purge(self, username):
        """Deferred: delete the account's whole archive and preferences (an operator's
        purge; deleting the account does it too)."""
        self._writer.flush()
        self._book.forget(username)
        return self._store.purge(self._host.domain, username)


@implementer(IPlugin, IExtension)
class MessageArchiveManagement:
    """Archives the messages of a host's accounts and answers MAM queries."""

    name = "mam"
    depends = ()
    specs = (
        Spec("XEP-0313", "1.1.3", "Message Archive Management",
             "user archives with #extended (before-id, after-id, ids, flip-page, metadata); "
             "no MUC archives yet"),
        Spec("XEP-0359", "0.7.0", "Unique and Stable Stanza IDs",
             "stanza-id on archived messages"),
        Spec("XEP-0441", "0.2.0", "Message Archive Management Preferences"),
        Spec("XEP-0431", "0.2.0", "Full Text Search in MAM", "SQLite FTS5 words"),
    )
    options = (
        Option("page_size", int_range(1, 1000), 50,
               "Messages returned by a query that does not ask for a page size."),
        Option("max_page_size", int_range(1, 1000), 250,
               "Most messages returned by one query; a larger RSM <max/> is reduced to "
               "this (XEP-0313 lets the server limit a page)."),
        Option("max_messages", int_range(0, 100_000_000), 100_000,
               "Most messages kept in one account's archive; past it the oldest are "
               "deleted as new ones arrive. 0: no limit."),
        Option("expire_after", duration, 0.0,
               "Age after which archived messages are deleted (seconds, or with a unit: "
               "365d, 12h). 0 keeps them until the size limit or the account's deletion."),
        Option("default_prefs", one_of(*DEFAULTS), "always",
               "Archiving default of accounts that set no preferences (XEP-0441): "
               "always, never, or roster (only contacts in the roster)."),
        Option("query_rate", _rate, 5.0,
               "Archive queries per second one session may make after its burst; faster "
               "queries wait their turn (only that session is slowed)."),
        Option("query_burst", int_range(1, 1000), 20,
               "Archive queries one session may make at once before query_rate applies."),
    )

    def install(self, host):
        """Hook archiving, register the IQs, start expiry and the secret's load."""
        if host.config["page_size"] > host.config["max_page_size"]:
            raise ValueError("[extension:mam] page_size must not exceed max_page_size")
        store = host.storage.message_archive()
        keep = host.config["max_messages"] or None
        writer = BatchWriter(store, host.clock, host.log, keep=keep)
        book = PrefsBook(store, host.domain, host.config["default_prefs"], host.log)
        ids = StanzaIds()
        archiver = Archiver(host, writer, ids, book)
        protocol = ArchiveProtocol(host, store, book, writer, host.config["page_size"],
                                   host.config["max_page_size"], host.config["query_rate"],
                                   host.config["query_burst"])
        for feature in FEATURES:
            host.add_feature(feature)
        if host.has_service("disco"):     # installed first: extensions install in name order
            host.on_unload(host.service("disco").add_account_features(FEATURES))
        host.hook(dispatch.MESSAGE_BARE, archiver.received, priority=RECEIVED_PRIORITY)
        host.hook(dispatch.MESSAGE_FULL, archiver.received, priority=RECEIVED_PRIORITY)
        host.hook(dispatch.FILTER_OUTBOUND, archiver.sent, priority=SENT_PRIORITY)
        host.hook(dispatch.USER_DELETED, lambda bare: book.forget(_local(bare)))
        protocol.install()
        host.provide("mam", MamService(host, store, book, writer))
        host.on_unload(writer.flush)
        host.on_unload(protocol.unload)
        book.load().addErrback(storage_failed, host, "loading the archiving preferences")
        _load_secret(host, ids)
        Retention(host, store, host.config["expire_after"]).start()


def _local(bare):
    return (JID.parse(bare) if isinstance(bare, str) else bare).local


def _load_secret(host, ids):
    """Use the stored stanza-id secret, storing ours when there is none yet."""
    keyvalue = host.storage.keyvalue(SECRET_STORE)

    def loaded(stored):
        if stored is not None:
            ids.use_secret(base64.b64decode(stored))
            return None
        return keyvalue.set(host.domain, SECRET_USER, SECRET_KEY,
                            base64.b64encode(ids.secret).decode("ascii"))

    d = keyvalue.get(host.domain, SECRET_USER, SECRET_KEY).addCallback(loaded)
    d.addErrback(storage_failed, host, "loading the stanza-id secret")


def storage_failed(failure, host, what):
    """Log a failed storage call: one line when the storage is closed (the server is
    stopping, or did not start), with the traceback otherwise."""
    if failure.check(StorageError) and getattr(host.storage, "closed", False):
        host.log.warn("{what}: the storage is closed", what=what)
    else:
        host.log.failure(what, failure)


mam = MessageArchiveManagement()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
