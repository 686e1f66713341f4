"""
XEP-0359 stanza ids of archived messages: unpredictable, and recognisable as ours.

An archive id is 72 random bits and a 48-bit MAC (keyed BLAKE2b) over (archive JID, the
message's 'from' and 'id', the random part), under a per-host secret kept in storage: 20
URL-safe characters. The MAC is why: a message already archived for a user can come round again
carrying our <stanza-id/> -- stream management re-routes what a client did not
acknowledge, offline storage delivers at login through the normal path -- and must not be
archived twice (XEP-0313 §5.1.1); a message someone else stamped with a stanza-id by the
user's archive is a spoof (XEP-0359 §4) and loses it. Only an id we issued, on a message
from the same sender with the same id, passes; anything else by the archive's JID is
removed before the message is delivered.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from lxml import etree

from jabberapp.extensions.mam.ns import STANZA_ID

__all__ = ["StanzaIds", "stamp"]

_RANDOM_BYTES = 9
_MAC_BYTES = 6
_ID_CHARS = (_RANDOM_BYTES + _MAC_BYTES) * 4 // 3


class StanzaIds:
    """Makes and recognises one host's archive ids; see the module docstring."""

    def __init__(self, secret: bytes | None = None) -> None:
        # Until the stored secret is loaded, a fresh one; ids made with it stay valid.
        self._secret = secret or os.urandom(32)
        self._accepted = [self._secret]
        self._pool = b""

    def use_secret(self, secret: bytes) -> None:
        """Make C{secret} (the stored one) the secret of new ids; old ones still pass."""
        self._secret = secret
        if secret not in self._accepted:
            self._accepted.insert(0, secret)

    @property
    def secret(self) -> bytes:
        """The secret new ids are made with."""
        return self._secret

    @staticmethod
    def _mac(secret: bytes, archive: str, message, nonce: bytes) -> bytes:
        # A keyed BLAKE2b is a MAC by design (RFC 7693 §2.5): one call, no HMAC wrapping.
        data = "\0".join((archive, message.get("from") or "", message.get("id") or ""))
        return hashlib.blake2b(data.encode("utf-8") + b"\0" + nonce, key=secret,
                               digest_size=_MAC_BYTES).digest()

    def new(self, archive: str, message) -> str:
        """A fresh id for C{message} in the archive of the bare JID C{archive} (a str)."""
        # Random bytes are read from the OS in blocks: one system call per 512 ids.
        if len(self._pool) < _RANDOM_BYTES:
            self._pool = os.urandom(_RANDOM_BYTES * 512)
        nonce, self._pool = self._pool[:_RANDOM_BYTES], self._pool[_RANDOM_BYTES:]
        raw = nonce + self._mac(self._secret, archive, message, nonce)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def ours(self, archive: str, message, value: str | None) -> bool:
        """True when C{value} is an id we made for this message in that archive."""
        if not value or len(value) != _ID_CHARS:
            return False
        try:
            raw = base64.urlsafe_b64decode(value)
        except (binascii.Error, ValueError):
            return False
        nonce, mac = raw[:_RANDOM_BYTES], raw[_RANDOM_BYTES:]
        return any(hmac.compare_digest(mac, self._mac(secret, archive, message, nonce))
                   for secret in self._accepted)

    def check(self, archive: str, message) -> str | None:
        """
        The id of ours that C{message} carries for C{archive} (it was archived there
        already), or None; every other <stanza-id by=archive/> is removed from it.
        """
        found = None
        for stamp in list(message.iterchildren(STANZA_ID)):
            if stamp.get("by") != archive:
                continue
            if found is None and self.ours(archive, message, stamp.get("id")):
                found = stamp.get("id")
            else:
                message.remove(stamp)
        return found


def stamp(message, archive: str, item_id: str) -> None:
    """Add <stanza-id xmlns='urn:xmpp:sid:0' by=archive id=item_id/> to C{message}."""
    etree.SubElement(message, STANZA_ID, by=archive, id=item_id)
