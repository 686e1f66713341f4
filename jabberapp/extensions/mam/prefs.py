"""
XEP-0441 archiving preferences: the value, its <prefs/> element, and the host's book.

Archiving decides on every message whether to stamp a stanza-id, so the preferences must
be known at once, without a storage read: the book holds in memory the preferences of the
accounts that set any (loaded at start, written through on change); every other account
has the host's default (``[extension:mam] default_prefs``). Setting the default with empty
lists deletes the stored entry, so the book holds only accounts that chose otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

from jabberapp.errors import StanzaError
from jabberapp.extensions.mam.ns import NS_MAM
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element

__all__ = ["DEFAULTS", "Prefs", "PrefsBook", "parse_prefs"]

DEFAULTS = ("always", "never", "roster")
MAX_JIDS = 1000     # per list: the book is in memory for every account that sets one
_JID = f"{{{NS_MAM}}}jid"


@dataclass(frozen=True)
class Prefs:
    """One account's preferences: the default and the always/never JID lists."""

    default: str = "always"
    always: frozenset = frozenset()
    never: frozenset = frozenset()

    def to_element(self):
        """The <prefs/> element (always and never present, even empty, as §2.1 says)."""
        prefs = element(NS_MAM, "prefs", default=self.default)
        for name in ("always", "never"):
            listed = element(NS_MAM, name)
            for jid in sorted(getattr(self, name), key=str):
                listed.append(element(NS_MAM, "jid", text=str(jid)))
            prefs.append(listed)
        return prefs

    def to_json(self) -> dict:
        """The stored form."""
        return {"default": self.default, "always": sorted(map(str, self.always)),
                "never": sorted(map(str, self.never))}

    @classmethod
    def from_json(cls, value) -> Prefs:
        """The Prefs of a stored form (JIDs that no longer parse are dropped)."""
        def jids(texts):
            found = set()
            for text in texts or ():
                try:
                    found.add(JID.parse(text))
                except InvalidJID:
                    pass
            return frozenset(found)
        default = value.get("default") if value.get("default") in DEFAULTS else "always"
        return cls(default, jids(value.get("always")), jids(value.get("never")))


def parse_prefs(prefs) -> Prefs:
    """The Prefs of a <prefs/> set request; StanzaError('bad-request') when malformed."""
    default = prefs.get("default")
    if default not in DEFAULTS:
        raise StanzaError("bad-request", "default must be always, never or roster")
    lists = {}
    for name in ("always", "never"):
        found = prefs.findall(f"{{{NS_MAM}}}{name}")
        if len(found) > 1:
            raise StanzaError("bad-request", f"more than one <{name}/>")
        jids = set()
        for jid in (found[0].iterchildren(_JID) if found else ()):
            try:
                jids.add(JID.parse((jid.text or "").strip()))
            except InvalidJID:
                raise StanzaError("jid-malformed", f"a JID in <{name}/> is not valid") from None
        if len(jids) > MAX_JIDS:
            raise StanzaError("not-acceptable", f"at most {MAX_JIDS} JIDs per list")
        lists[name] = frozenset(jids)
    return Prefs(default, lists["always"], lists["never"])


class PrefsBook:
    """The preferences of one host's accounts; see the module docstring."""

    def __init__(self, store, domain: str, default: str, log) -> None:
        self.store = store
        self.domain = domain
        self.default = Prefs(default)
        self.log = log
        self._chosen: dict[str, Prefs] = {}

    def load(self):
        """Deferred: read every stored preference (at start)."""
        def loaded(found):
            for username, value in found.items():
                # A change made while loading is newer than what was read.
                self._chosen.setdefault(username, Prefs.from_json(value))
        return self.store.all_prefs(self.domain).addCallback(loaded)

    def get(self, username: str) -> Prefs:
        """The account's preferences (the host's default when it set none)."""
        return self._chosen.get(username, self.default)

    def set(self, username: str, prefs: Prefs):
        """Deferred: store C{prefs} for the account, then hold them."""
        value = None if prefs == self.default else prefs.to_json()

        def stored(_):
            if value is None:
                self._chosen.pop(username, None)
            else:
                self._chosen[username] = prefs
            return prefs
        return self.store.set_prefs(self.domain, username, value).addCallback(stored)

    def forget(self, username: str) -> None:
        """Drop the account's preferences from memory (the account is gone)."""
        self._chosen.pop(username, None)
