"""
RFC 6121 §2: roster get, set and remove (jabber:iq:roster), with XEP-0237 versioning.

A roster get marks the requesting resource "interested": it gets every later roster push.
With a 'ver' attribute (XEP-0237) the answer is an empty result when the client's version
is current, else the whole roster with the current version.

A roster set carries exactly one <item/>. The checks of §2.3.3 and §2.5.3, before anything
changes:

- not the user's own roster (another entity's IQ): <forbidden/>;
- not exactly one <item/>, a missing or invalid 'jid', a JID with a resource, or a group
  named twice: <bad-request/>;
- an empty group, or a handle or group longer than MAX_TEXT characters, or more than
  MAX_GROUPS groups: <not-acceptable/>;
- the user's own JID: <not-allowed/> (as Prosody answers);
- a new contact when the roster already holds max_items: <not-allowed/> with a text;
- removing a contact that is not in the roster: <item-not-found/>.

'subscription' values other than "remove", 'ask' and 'approved' in a roster set are ignored
(§2.1.2.5: "the server MUST ignore all values of the 'subscription' attribute other than
'remove'"): subscriptions change only through presence stanzas.

Removing a contact cancels the subscriptions both ways (§2.5.2): 'unsubscribed' (after
unavailable presence) when the contact was subscribed to the user or had asked to be,
'unsubscribe' when the user was subscribed to the contact or had asked to be.
"""
from dataclasses import replace

from jabberapp.errors import StanzaError
from jabberapp.extensions.roster import presence as presence_mod
from jabberapp.extensions.roster.items import NS_ROSTER, RosterItem
from jabberapp.extensions.roster.service import session_state
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element

ITEM = f"{{{NS_ROSTER}}}item"
GROUP = f"{{{NS_ROSTER}}}group"
MAX_TEXT = 1023      # characters in a handle or a group name
MAX_GROUPS = 100     # groups of one item


class RosterIQ:
    """The jabber:iq:roster get and set handlers of one host."""

    def __init__(self, service):
        self.service = service
        self.host = service.host

    def install(self, host):
        host.iq_handler("get", NS_ROSTER, "query", self.get, to="user")
        host.iq_handler("set", NS_ROSTER, "query", self.set, to="user")

    def _requester(self, iq):
        """(user's bare JID, requesting session or None); forbidden for anyone else."""
        try:
            sender = JID.parse(iq.get("from") or "")
            owner = JID.parse(iq.get("to") or "")
        except InvalidJID:
            raise StanzaError("forbidden") from None
        if sender.bare() != owner.bare() or sender.domain != self.host.domain:
            raise StanzaError("forbidden", "Only the user can see and change their roster")
        session = self.host.sessions.get(sender) if sender.resource else None
        return owner.bare(), session

    async def get(self, iq):
        """A roster get: the roster, or nothing new (XEP-0237)."""
        user, session = self._requester(iq)
        ver = iq[0].get("ver")
        if session is not None:
            state = session_state(session)
            state.interested = True
            state.versioning = ver is not None
        roster = await self.service.store.load(user.local)
        if ver is not None and ver == roster.ver:
            return None
        query = element(NS_ROSTER, "query")
        if ver is not None:
            query.set("ver", roster.ver)
        for item in sorted(roster.items.values(), key=lambda item: str(item.jid)):
            query.append(item.to_element())
        return query

    async def set(self, iq):
        """A roster set: add, update or remove one item."""
        user, _ = self._requester(iq)
        jid, remove, name, groups = parse_item(iq[0], user)
        if remove:
            await self._remove(user, jid)
            return None
        limit = self.service.max_items

        def change(roster):
            existing = roster.items.get(jid)
            if existing is None:
                if len(roster.items) >= limit:
                    raise StanzaError("not-allowed",
                                      f"Your roster is full: it holds at most {limit} contacts")
                existing = RosterItem(jid)
            item = replace(existing, name=name, groups=groups)
            roster.items[jid] = item
            return item

        item, roster = await self.service.store.modify(user.local, change)
        self.service.push(user.local, roster, [(jid, item)])
        return None

    async def _remove(self, user, jid):
        def change(roster):
            if jid not in roster.items:
                raise StanzaError("item-not-found", "No such contact in your roster")
            old = roster.state(jid)
            del roster.items[jid]
            roster.pending.pop(jid, None)
            return old

        old, roster = await self.service.store.modify(user.local, change)
        self.service.push(user.local, roster, [(jid, None)])
        # §2.5.2: the subscriptions end with the item.
        if old.has_from or old.pending_in:
            if old.has_from:
                presence_mod.send_unavailable(self.host, user, jid)
            self.host.send_from_user(presence_mod.presence(user, jid, "unsubscribed"))
        if old.has_to or old.pending_out:
            self.host.send_from_user(presence_mod.presence(user, jid, "unsubscribe"))


def parse_item(query, user):
    """
    (jid, remove, name, groups) from a roster set's query; StanzaError for what §2.3.3
    and §2.5.3 refuse (see the module docstring).
    """
    children = [child for child in query if isinstance(child.tag, str)]
    if len(children) != 1 or children[0].tag != ITEM:
        raise StanzaError("bad-request", "A roster set carries exactly one <item/>")
    item = children[0]
    try:
        jid = JID.parse(item.get("jid") or "")
    except InvalidJID:
        raise StanzaError("bad-request", "The item has no valid 'jid'") from None
    if not jid.is_bare:
        raise StanzaError("bad-request", "Roster items are bare JIDs")
    if jid == user:
        raise StanzaError("not-allowed", "You cannot be a contact of yourself")
    if item.get("subscription") == "remove":
        return jid, True, None, ()
    name = item.get("name") or None
    if name is not None and len(name) > MAX_TEXT:
        raise StanzaError("not-acceptable", f"The handle is longer than {MAX_TEXT} characters")
    groups = []
    for group in item:
        if group.tag != GROUP:
            continue
        text = group.text or ""
        if not text:
            raise StanzaError("not-acceptable", "A group name cannot be empty")
        if len(text) > MAX_TEXT:
            raise StanzaError("not-acceptable",
                              f"A group name is longer than {MAX_TEXT} characters")
        if text in groups:
            raise StanzaError("bad-request", "A group is named twice")
        groups.append(text)
    if len(groups) > MAX_GROUPS:
        raise StanzaError("not-acceptable", f"An item is in at most {MAX_GROUPS} groups")
    return jid, False, name, tuple(groups)
