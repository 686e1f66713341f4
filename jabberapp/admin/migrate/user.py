"""
One <user/> of a XEP-0227 file, checked and converted into the values the stores hold
(L{UserData}), under the limits the extensions enforce (L{Limits}). Anything wrong raises
L{MigrationError} naming the file, the line and the reason; what jabberapp does not keep is
counted in the reader's notices (see jabberapp.admin.migrate.reader).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from jabberapp.admin.migrate.credentials import credentials as make_credentials
from jabberapp.admin.migrate.credentials import ejabberd_scram, prosody_scram
from jabberapp.admin.migrate.pie import (
    NS_DELAY,
    NS_LEGACY_DELAY,
    NS_SCRAM,
    PIE_NAMESPACES,
    SCRAM_MECHANISMS,
    MigrationError,
    client_stanza,
    describe,
    is_pie,
    parse_stamp,
)
from jabberapp.extensions import private, vcard
from jabberapp.extensions.offline import offline_messages, timestamp
from jabberapp.extensions.roster.extension import roster as roster_extension
from jabberapp.extensions.roster.items import NS_ROSTER, RosterItem
from jabberapp.extensions.roster.iq import MAX_GROUPS, MAX_TEXT
from jabberapp.extensions.roster.presence import MAX_KEPT_REQUEST
from jabberapp.extensions.roster.subscription import SUBSCRIPTIONS
from jabberapp.jid import JID, InvalidJID, prep_domain, prep_localpart
from jabberapp.sasl.scram import ScramCredentials, prep_password
from jabberapp.xml import serialize
from jabberapp.xml.ns import NS_CLIENT

__all__ = ["Limits", "UserData", "UserReader"]

ROSTER_QUERY = f"{{{NS_ROSTER}}}query"
ROSTER_ITEM = f"{{{NS_ROSTER}}}item"
ROSTER_GROUP = f"{{{NS_ROSTER}}}group"
SCRAM_CREDENTIALS = f"{{{NS_SCRAM}}}scram-credentials"
STANZA_NAMESPACES = frozenset({NS_CLIENT, *PIE_NAMESPACES})
DELAY = f"{{{NS_DELAY}}}delay"
LEGACY_DELAY = f"{{{NS_LEGACY_DELAY}}}x"


def _default(extension, name):
    return next(option.default for option in extension.options if option.name == name)


@dataclass(frozen=True)
class Limits:
    """The limits the extensions enforce, applied to imported data as well (by default,
    the defaults of their options)."""

    max_roster_items: int = _default(roster_extension, "max_items")
    max_vcard_size: int = _default(vcard.vcard_temp, "max_size")
    max_private_size: int = _default(private.private_storage, "max_size")
    max_offline: int = _default(offline_messages, "max_messages")


@dataclass
class UserData:
    """One <user/>, checked and converted to what the stores hold."""

    host: str
    username: str
    source: str
    line: int
    password: str | None = None                         # plaintext, only to derive keys
    scram: dict[str, ScramCredentials] = field(default_factory=dict)   # hash name -> given
    roster: dict[JID, RosterItem] = field(default_factory=dict)
    pending: dict[JID, str] = field(default_factory=dict)   # contact -> kept request
    vcard: str | None = None                             # vcard.to_text()
    private: dict[str, str] = field(default_factory=dict)   # "{ns}name" -> XML text
    offline: list[tuple[str, float, str | None]] = field(default_factory=list)

    @property
    def jid(self) -> str:
        """The user's bare JID, as text."""
        return f"{self.username}@{self.host}"


class _JIDs:
    """
    JID.parse for a file's many JIDs: bare JIDs user@domain -- nearly all of them -- are
    prepared part by part with the domain's preparation (IDNA, the costly part) done once
    per domain, and remembered; anything else goes to JID.parse. The result is the same.
    Both memories are emptied when full, so they stay bounded.
    """

    MAX_JIDS = 200_000
    MAX_DOMAINS = 10_000

    def __init__(self) -> None:
        self._jids: dict[str, JID] = {}
        self._domains: dict[str, str] = {}

    def parse(self, text: str) -> JID:
        jid = self._jids.get(text)
        if jid is not None:
            return jid
        local, at, domain = text.partition("@")
        if not (local and at and domain) or "/" in text or "@" in domain:
            return JID.parse(text)
        prepared = self._domains.get(domain)
        if prepared is None:
            prepared = prep_domain(domain)
            if len(self._domains) >= self.MAX_DOMAINS:
                self._domains.clear()
            self._domains[domain] = prepared
        jid = JID(prep_localpart(local), prepared)
        if len(self._jids) >= self.MAX_JIDS:
            self._jids.clear()
        self._jids[text] = jid
        return jid


class UserReader:
    """
    Checks and converts <user/> elements under C{limits}; C{now} (POSIX seconds) stamps
    offline messages that carry no delay, and what is skipped is counted in C{notices}.
    """

    def __init__(self, limits: Limits, now: float, notices: Counter[str]) -> None:
        self.limits = limits
        self.now = now
        self.notices = notices
        self._jids = _JIDs()
        self._children: dict[str, Callable] = {
            SCRAM_CREDENTIALS: self._scram,
            ROSTER_QUERY: self._roster,
            vcard.VCARD: self._vcard,
            private.QUERY: self._private,
        }

    def read(self, el, host, source) -> UserData:
        """The <user/> element C{el} of host C{host}, from file C{source}, checked."""
        line = el.sourceline
        name = el.get("name")
        if name is None:
            raise MigrationError("<user/> without a 'name'", source, line)
        try:
            username = prep_localpart(name)
        except InvalidJID as exc:
            raise MigrationError(f"invalid user name {name!r}: {exc}", source,
                                 line) from None
        user = UserData(host, username, source, line)
        password = el.get("password")
        if password is not None and password.startswith("scram:"):
            # COMPAT: older ejabberd exports carry SCRAM material in the password this
            # way; ejabberd_piefxis still reads it.
            hash_name, credentials = ejabberd_scram(password[6:], user, line)
            user.scram[hash_name] = credentials
        elif password:
            try:
                prep_password(password)
            except ValueError as exc:   # the message never contains the password
                raise MigrationError(f"the password of {user.jid} cannot be used: {exc}",
                                     source, line) from None
            user.password = password
        seen = set()
        for child in el:
            if not isinstance(child.tag, str):
                continue
            handler = self._children.get(child.tag)
            if handler is not None:
                if child.tag != SCRAM_CREDENTIALS:
                    if child.tag in seen:
                        raise MigrationError(f"a second {describe(child)} for {user.jid}",
                                             source, child.sourceline)
                    seen.add(child.tag)
                handler(user, child)
            elif is_pie(child, "offline-messages"):
                if "offline" in seen:
                    raise MigrationError(f"a second <offline-messages/> for {user.jid}",
                                         source, child.sourceline)
                seen.add("offline")
                self._offline(user, child)
            elif (etree.QName(child).localname == "presence"
                  and etree.QName(child).namespace in STANZA_NAMESPACES):
                self._presence(user, child)
            else:
                self.notices[describe(child)] += 1
        if user.password is None and not user.scram:
            prosody_scram(el, user)
        if len(user.pending) > self.limits.max_roster_items:
            raise MigrationError(
                f"{user.jid} has {len(user.pending)} pending subscription requests, more "
                f"than [extension:roster] max_items = {self.limits.max_roster_items}",
                source, line)
        return user

    def _fail(self, user, el, reason):
        raise MigrationError(reason, user.source, el.sourceline)

    def _scram(self, user, el) -> None:
        mechanism = el.get("mechanism")
        hash_name = SCRAM_MECHANISMS.get(mechanism)
        if hash_name is None:
            self._fail(user, el, f"unsupported SCRAM mechanism {mechanism!r} for {user.jid} "
                                 f"(supported: {', '.join(SCRAM_MECHANISMS)})")
        if hash_name in user.scram:
            self._fail(user, el, f"a second <scram-credentials/> for {mechanism} of "
                                 f"{user.jid}")
        values = {}
        for child in el:
            if not isinstance(child.tag, str) or etree.QName(child).namespace != NS_SCRAM:
                continue
            name = etree.QName(child).localname
            if name in values:
                self._fail(user, child, f"<{name}/> twice in <scram-credentials/>")
            values[name] = (child.text or "").strip()
        missing = [name for name in ("iter-count", "salt", "server-key", "stored-key")
                   if name not in values]
        if missing:
            self._fail(user, el, f"<scram-credentials/> of {user.jid} without "
                                 f"<{missing[0]}/>")
        try:
            credentials = make_credentials(hash_name, values["iter-count"], values["salt"],
                                       values["stored-key"], values["server-key"])
        except ValueError as exc:
            self._fail(user, el, f"bad {mechanism} credentials for {user.jid}: {exc}")
        user.scram[hash_name] = credentials

    def _roster(self, user, el) -> None:
        own = JID(user.username, user.host)
        for child in el:
            if child.tag != ROSTER_ITEM:
                if isinstance(child.tag, str):
                    self.notices[f"{describe(child)} in a roster"] += 1
                continue
            item = self._roster_item(user, child)
            if item.jid == own:
                # COMPAT: some servers let users add themselves; RFC 6121 has no such item.
                self.notices["roster items naming their own user"] += 1
                continue
            if item.jid in user.roster:
                self._fail(user, child, f"{item.jid} is twice in the roster of {user.jid}")
            user.roster[item.jid] = item
        if len(user.roster) > self.limits.max_roster_items:
            self._fail(user, el, f"the roster of {user.jid} has {len(user.roster)} items, "
                                 f"more than [extension:roster] max_items = "
                                 f"{self.limits.max_roster_items}")

    def _roster_item(self, user, el) -> RosterItem:
        text = el.get("jid")
        if not text:
            self._fail(user, el, f"a roster item of {user.jid} without a 'jid'")
        try:
            jid = self._jids.parse(text)
        except InvalidJID as exc:
            self._fail(user, el, f"invalid JID {text!r} in the roster of {user.jid}: {exc}")
        if not jid.is_bare:
            self._fail(user, el, f"roster item {text!r} of {user.jid} has a resource: roster "
                                 f"items are bare JIDs")
        subscription = el.get("subscription", "none")
        if subscription not in SUBSCRIPTIONS:
            self._fail(user, el, f"roster item {jid} of {user.jid} has subscription "
                                 f"{subscription!r} (expected none, to, from or both)")
        ask = el.get("ask")
        # COMPAT: RFC 3921 also had ask='unsubscribe', which RFC 6121 dropped: nothing pends.
        if ask not in (None, "subscribe", "unsubscribe"):
            self._fail(user, el, f"roster item {jid} of {user.jid} has ask={ask!r} "
                                 f"(expected subscribe)")
        approved = el.get("approved", "false")
        if approved not in ("true", "1", "false", "0"):
            self._fail(user, el, f"roster item {jid} of {user.jid} has approved="
                                 f"{approved!r} (expected true or false)")
        name = el.get("name") or None
        if name is not None and len(name) > MAX_TEXT:
            self._fail(user, el, f"the name of roster item {jid} of {user.jid} is longer "
                                 f"than {MAX_TEXT} characters")
        groups = []
        for group in el.iterchildren(ROSTER_GROUP):
            text = group.text or ""
            if not text:
                self._fail(user, group, f"an empty <group/> in roster item {jid} of "
                                        f"{user.jid}")
            if len(text) > MAX_TEXT:
                self._fail(user, group, f"a group of roster item {jid} of {user.jid} is "
                                        f"longer than {MAX_TEXT} characters")
            if text not in groups:
                groups.append(text)
        if len(groups) > MAX_GROUPS:
            self._fail(user, el, f"roster item {jid} of {user.jid} is in {len(groups)} "
                                 f"groups, more than {MAX_GROUPS}")
        return RosterItem(jid, name, tuple(groups), subscription, ask == "subscribe",
                          approved in ("true", "1"))

    def _presence(self, user, el) -> None:
        """A pending inbound subscription request (XEP-0227 §2.9)."""
        if el.get("type") != "subscribe":
            self.notices[f"<presence type='{el.get('type', 'available')}'/> in a user"] += 1
            return
        contact = self._stanza_jid(user, el, "from", "a subscription request")
        if contact == JID(user.username, user.host):
            self.notices["subscription requests from their own user"] += 1
            return
        if contact in user.pending:
            return
        stanza = client_stanza(el)
        stanza.set("from", str(contact))
        stanza.set("to", user.jid)
        kept = serialize(stanza).decode("utf-8")
        user.pending[contact] = kept if len(kept) <= MAX_KEPT_REQUEST else ""

    def _stanza_jid(self, user, el, attribute, what) -> JID:
        text = el.get(attribute)
        if not text:
            self._fail(user, el, f"{what} for {user.jid} without a '{attribute}'")
        try:
            return self._jids.parse(text).bare()
        except InvalidJID as exc:
            self._fail(user, el, f"{what} for {user.jid} has an invalid '{attribute}' "
                                 f"{text!r}: {exc}")

    def _vcard(self, user, el) -> None:
        # An empty <vCard/> is kept too: the vcard extension stores and serves what was set.
        text = vcard.to_text(el)
        size = len(text.encode("utf-8"))
        if size > self.limits.max_vcard_size:
            self._fail(user, el, f"the vCard of {user.jid} has {size} bytes, more than "
                                 f"[extension:vcard] max_size = {self.limits.max_vcard_size}")
        user.vcard = text

    def _private(self, user, el) -> None:
        size = 0
        for child in el:
            if not isinstance(child.tag, str):
                continue
            namespace = etree.QName(child).namespace or ""
            if not namespace or namespace in private.RESERVED \
                    or namespace.startswith(private.RESERVED_PREFIXES):
                self._fail(user, child, f"private XML {describe(child)} of {user.jid}: "
                                        f"XEP-0049 reserves that namespace")
            key = child.tag
            if key in user.private:
                self._fail(user, child, f"private XML {describe(child)} of {user.jid} is "
                                        f"there twice")
            if len(child) == 0 and not (child.text or "").strip() and not child.attrib:
                continue
            text = vcard.to_text(child)
            size += len(text.encode("utf-8"))
            user.private[key] = text
        if size > self.limits.max_private_size:
            self._fail(user, el, f"the private XML of {user.jid} has {size} bytes, more than "
                                 f"[extension:private] max_size = "
                                 f"{self.limits.max_private_size}")

    def _offline(self, user, el) -> None:
        for child in el:
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child)
            if name.localname != "message" or name.namespace not in STANZA_NAMESPACES:
                self.notices[f"{describe(child)} in <offline-messages/>"] += 1
                continue
            kind = child.get("type", "normal")
            if kind not in ("normal", "chat"):
                # The offline extension stores chat and normal messages only.
                self.notices[f"offline messages of type {kind}"] += 1
                continue
            user.offline.append(self._offline_message(user, child))
        if len(user.offline) > self.limits.max_offline:
            self._fail(user, el, f"{user.jid} has {len(user.offline)} offline messages, more "
                                 f"than [extension:offline] max_messages = "
                                 f"{self.limits.max_offline}")

    def _offline_message(self, user, el) -> tuple[str, float, str | None]:
        sender = self._stanza_jid(user, el, "from", "an offline message")
        recipient = el.get("to")
        if recipient is not None:
            try:
                bare = self._jids.parse(recipient).bare()
            except InvalidJID as exc:
                self._fail(user, el, f"an offline message for {user.jid} has an invalid "
                                     f"'to' {recipient!r}: {exc}")
            if str(bare) != user.jid:
                self._fail(user, el, f"an offline message of {user.jid} is addressed to "
                                     f"{recipient!r}")
        stanza = client_stanza(el)
        if recipient is None:
            stanza.set("to", user.jid)
        when = None
        delays = list(stanza.iterchildren(DELAY))
        delays.sort(key=lambda delay: delay.get("from") != user.host)   # ours first
        try:
            if delays:
                when = parse_stamp(delays[0].get("stamp"))
            else:
                legacy = stanza.find(LEGACY_DELAY)
                if legacy is not None:
                    when = parse_stamp(legacy.get("stamp"), legacy=True)
        except ValueError as exc:
            self._fail(user, el, f"an offline message for {user.jid}: {exc}")
        if when is None:
            # As the offline extension stamps a message it stores (XEP-0203).
            when = self.now
            delay = etree.SubElement(stanza, DELAY, nsmap={None: NS_DELAY})
            delay.set("from", user.host)
            delay.set("stamp", timestamp(when))
            delay.text = "Offline storage"
        return serialize(stanza).decode("utf-8"), when, str(sender)
