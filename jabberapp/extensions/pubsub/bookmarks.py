"""
XEP-0402 §5.3 compatibility: XEP-0048 bookmarks in XEP-0049 private XML are the account's
XEP-0402 PEP bookmarks (node ``urn:xmpp:bookmarks:1``), so a client using either sees the
same rooms. The account advertises ``urn:xmpp:bookmarks:1#compat``, which is what makes
Conversations and Gajim use XEP-0402 at all.

- A private XML get of ``<storage xmlns='storage:bookmarks'/>`` is answered from the PEP
  node's items (one <conference/> per item: jid from the item id, name, autojoin, nick,
  password) when the node exists; otherwise the private storage answers as before.
- A private XML set whose only child is ``<storage xmlns='storage:bookmarks'/>`` publishes
  each conference as a PEP item (creating the node with the XEP-0402 publish-options) and
  retracts the items it no longer lists, with the usual notifications to the owner's
  +notify resources; nothing is stored in private XML. <url/> bookmarks and XEP-0048
  extension elements are not carried over (XEP-0402 has no place for them).
- Bookmarks a user kept in private XML before (or imported there) are moved to the PEP node
  when the owner first retrieves the node's items and it does not exist yet: they are read
  from the private extension's documented storage (store "private", key "private", Clark
  name ``{storage:bookmarks}storage``).

Not synchronised: the XEP-0048-over-PEP node ``storage:bookmarks`` (XEP-0223) stays a
plain PEP node of its own (``#compat-pep`` is not advertised).
"""
from twisted.internet import defer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub.config import PUBLISH_OPTIONS
from jabberapp.extensions.pubsub.ns import NS_PUBSUB
from jabberapp.forms import Field, Form
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element, parse_element, serialize
from jabberapp.xml.ns import NS_CLIENT

NS_PRIVATE = "jabber:iq:private"
NS_LEGACY = "storage:bookmarks"
NODE = "urn:xmpp:bookmarks:1"
COMPAT_FEATURE = "urn:xmpp:bookmarks:1#compat"
STORAGE = f"{{{NS_LEGACY}}}storage"
PRIVATE_STORE, PRIVATE_KEY = "private", "private"
# XEP-0402 §3: the node's publish-options.
OPTIONS = (("persist_items", "true"), ("max_items", "max"),
           ("send_last_published_item", "never"), ("access_model", "whitelist"))


class BookmarksCompat:
    """The private XML <-> PEP bookmarks bridge of one host; see the module docstring."""

    def __init__(self, host, protocol):
        self.host = host
        self.protocol = protocol
        self.private = host.storage.keyvalue(PRIVATE_STORE)

    def private_iq(self, iq, origin):
        """IQ_BARE: take private XML gets and sets of storage:bookmarks (module docstring)."""
        query = iq.find(f"{{{NS_PRIVATE}}}query")
        if query is None or iq.get("type") not in ("get", "set"):
            return None
        children = [c for c in query if isinstance(c.tag, str)]
        if len(children) != 1 or children[0].tag != STORAGE:
            return None
        try:
            owner = JID.parse(iq.get("to")).bare()
            sender = JID.parse(iq.get("from") or "")
        except InvalidJID:
            return None
        if sender.bare() != owner or owner.domain != self.host.domain:
            return None     # the private extension refuses it
        if iq.get("type") == "get":
            d = defer.ensureDeferred(self._get(iq, owner))
        else:
            d = defer.ensureDeferred(self._set(iq, owner, sender, children[0]))
        d.addErrback(self._failed, iq)
        return dispatch.HANDLED

    def _failed(self, failure, iq):
        if failure.check(StanzaError):
            self.host.send(st.error_reply(iq, failure.value))
            return
        self.host.log.failure("bookmarks compatibility failed for {id}", failure,
                              id=iq.get("id"))
        self.host.send(st.error_reply(iq, StanzaError("internal-server-error")))

    async def _get(self, iq, owner):
        record = await self.protocol.store.get_node(str(owner), NODE)
        if record is None:
            # Nothing in PEP yet: answer with what private XML has.
            await self._private_answer(iq, owner)
            return
        storage = element(NS_LEGACY, "storage")
        for item_id, text, _, _ in await self.protocol.store.get_items(str(owner), NODE):
            storage.append(to_legacy(item_id, parse_element(text) if text else None))
        self._answer(iq, storage)

    async def _private_answer(self, iq, owner):
        document = await self.private.get(owner.domain, owner.local, PRIVATE_KEY) or {}
        text = document.get(STORAGE)
        self._answer(iq, parse_element(text) if text else element(NS_LEGACY, "storage"))

    def _answer(self, iq, storage):
        answer = st.reply(iq)
        query = element(NS_PRIVATE, "query")
        query.append(storage)
        answer.append(query)
        self.host.send(answer)

    async def _set(self, iq, owner, sender, storage):
        wanted = {}
        for conference in storage.iterchildren(f"{{{NS_LEGACY}}}conference"):
            try:
                room = str(JID.parse(conference.get("jid") or ""))
            except InvalidJID:
                raise StanzaError("not-acceptable", "A conference needs a room JID") from None
            wanted[room] = from_legacy(conference)
        current = {}
        if await self.protocol.store.get_node(str(owner), NODE) is not None:
            current = {item_id: text for item_id, text, _, _ in
                       await self.protocol.store.get_items(str(owner), NODE)}
        await self.publish(owner, sender, wanted, current)
        self.host.send(st.reply(iq))

    async def publish(self, owner, sender, wanted, current):
        """Make the PEP node hold C{wanted} (room -> <conference/>) given its C{current}
        items (id -> XML text): publish what differs, retract what is gone."""
        for room, conference in wanted.items():
            text = serialize(conference).decode("utf-8")
            if current.get(room) == text:
                continue
            pubsub = element(NS_PUBSUB, "pubsub")
            publish = element(NS_PUBSUB, "publish", node=NODE)
            item = element(NS_PUBSUB, "item", id=room)
            item.append(conference)
            publish.append(item)
            pubsub.append(publish)
            pubsub.append(_publish_options())
            await self._submit(owner, sender, pubsub)
        for room in current:
            if room not in wanted:
                pubsub = element(NS_PUBSUB, "pubsub")
                retract = element(NS_PUBSUB, "retract", node=NODE, notify="true")
                retract.append(element(NS_PUBSUB, "item", id=room))
                pubsub.append(retract)
                await self._submit(owner, sender, pubsub)

    async def _submit(self, owner, sender, pubsub):
        iq = element(NS_CLIENT, "iq", type="set", to=str(owner), id="bookmarks-compat")
        iq.set("from", str(sender))
        iq.append(pubsub)
        await self.protocol.handle(iq, owner)

    async def migrate(self, owner):
        """Move the owner's private XML bookmarks to the PEP node when it does not exist."""
        if await self.protocol.store.get_node(str(owner), NODE) is not None:
            return
        document = await self.private.get(owner.domain, owner.local, PRIVATE_KEY) or {}
        text = document.get(STORAGE)
        if not text:
            return
        wanted = {}
        for conference in parse_element(text).iterchildren(f"{{{NS_LEGACY}}}conference"):
            try:
                wanted[str(JID.parse(conference.get("jid") or ""))] = from_legacy(conference)
            except InvalidJID:
                continue
        if wanted:
            await self.publish(owner, owner, wanted, {})


def _publish_options():
    options = element(NS_PUBSUB, "publish-options")
    options.append(Form("submit", PUBLISH_OPTIONS, fields=tuple(
        Field(f"pubsub#{name}", None, values=(value,)) for name, value in OPTIONS)).to_element())
    return options


def from_legacy(conference):
    """The XEP-0402 <conference/> for a XEP-0048 <conference/>."""
    autojoin = conference.get("autojoin") in ("1", "true")
    converted = element(NODE, "conference", {"name": conference.get("name") or None,
                                              "autojoin": "true" if autojoin else None})
    for name in ("nick", "password"):
        text = conference.findtext(f"{{{NS_LEGACY}}}{name}")
        if text:
            converted.append(element(NODE, name, text=text))
    return converted


def to_legacy(room, conference):
    """The XEP-0048 <conference jid='room'/> for an item of the XEP-0402 node."""
    if conference is None or conference.tag != f"{{{NODE}}}conference":
        return element(NS_LEGACY, "conference", jid=room)
    autojoin = conference.get("autojoin") in ("1", "true")
    legacy = element(NS_LEGACY, "conference", {"jid": room, "name": conference.get("name"),
                                               "autojoin": "true" if autojoin else "false"})
    for name in ("nick", "password"):
        text = conference.findtext(f"{{{NODE}}}{name}")
        if text:
            legacy.append(element(NS_LEGACY, name, text=text))
    return legacy
