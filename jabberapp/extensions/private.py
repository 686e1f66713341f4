"""
XEP-0049: Private XML Storage -- XML fragments a user keeps on the server for itself.

<iq type='set'><query xmlns='jabber:iq:private'> with one or more child elements stores each
child, keyed by its (namespace, name), replacing what was stored under that key; an empty
child deletes the key. <iq type='get'> with exactly one child returns what is stored under
its key, or that child's empty element when nothing is (as Prosody and ejabberd answer).
Only the account's owner may do either: 'to' absent or the sender's own bare JID.

Errors (nothing is stored when a set is refused, even in part):

- someone else's bare JID: <forbidden/> (§2.3 prefers it to <service-unavailable/>);
- a <query/> without a child element: <not-acceptable/> (§2.3: "MUST respond with a Not
  Acceptable error"; the "Bad Format" the text mentions later is no RFC 6120 stanza error,
  and its example carries the legacy code 406, which XEP-0086 maps to not-acceptable);
- a child in no namespace or a reserved one -- 'jabber:*', 'http://jabber.org/*' and
  'vcard-temp' (§2.3) -- : <not-acceptable/>, as the XEP's example shows;
- a get with more than one child (§2.3: a client MUST NOT ask for more than one at a time),
  or a set with two children of the same key: <bad-request/>;
- a set that would make the account's private data larger than ``max_size`` bytes:
  <not-acceptable/> with a text naming the limit, as for vCards (vcard.py says why).

Storage: one document per account in the key-value store "private", key "private": a JSON
object mapping the Clark name "{namespace}name" to the element's XML text. One document
keeps a multi-child set atomic and the size limit cheap to check; the read-modify-writes of
an account's document run one at a time (jabberapp.peruser), so concurrent sets cannot lose
updates.
"""
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.config import Option, int_range
from jabberapp.dispatch import parse_jid_attr
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IExtension
from jabberapp.peruser import PerUserQueue
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.stored import from_text, to_text

NS_PRIVATE = "jabber:iq:private"
QUERY = f"{{{NS_PRIVATE}}}query"
STORE = "private"
KEY = "private"
RESERVED_PREFIXES = ("jabber:", "http://jabber.org/")
RESERVED = frozenset({"vcard-temp"})


@implementer(IPlugin, IExtension)
class PrivateStorage:
    """Stores and returns users' private XML."""

    name = "private"
    specs = (Spec("XEP-0049", "1.2", "Private XML Storage"),)
    depends = ("disco",)
    options = (
        Option("max_size", int_range(1024, 64 * 1024 * 1024), default=262144,
               doc="Largest total of private XML one account may store, in bytes of "
                   "serialised XML; a set that would exceed it is refused with "
                   "not-acceptable and nothing is stored."),
    )

    def install(self, host):
        """Declare jabber:iq:private and own its gets and sets to users' bare JIDs."""
        host.add_feature(NS_PRIVATE)
        storage = _Private(host, host.config["max_size"])
        host.iq_handler("get", NS_PRIVATE, "query", storage.get, to="user")
        host.iq_handler("set", NS_PRIVATE, "query", storage.set, to="user")


class _Private:
    """The private storage IQ handlers of one host; each account's sets run one at a time
    (jabberapp.peruser)."""

    def __init__(self, host, max_size):
        self.host = host
        self.max_size = max_size
        self.store = host.storage.keyvalue(STORE)
        self._turns = PerUserQueue()    # each account's read-modify-writes, one at a time

    async def get(self, iq):
        """The stored element asked for, or its empty element."""
        username = _owner(iq)
        (wanted,) = _children(iq, single=True)
        key = _key(wanted)
        document = await self.store.get(self.host.domain, username, KEY) or {}
        query = element(NS_PRIVATE, "query")
        text = document.get(key)
        query.append(from_text(text) if text is not None else element(*_split(key)))
        return query

    async def set(self, iq):
        """Store each child of the query, all or nothing."""
        username = _owner(iq)
        changes = {}
        for child in _children(iq, single=False):
            key = _key(child)
            if key in changes:
                raise StanzaError("bad-request", f"Two elements {key} in one set")
            empty = len(child) == 0 and not (child.text or "").strip() and not child.attrib
            changes[key] = None if empty else to_text(child)
        await self._turns.run(username, self._update, username, changes)
        return None

    async def _update(self, username, changes):
        document = await self.store.get(self.host.domain, username, KEY) or {}
        for key, text in changes.items():
            if text is None:
                document.pop(key, None)
            else:
                document[key] = text
        size = sum(len(text.encode("utf-8")) for text in document.values())
        if size > self.max_size:
            raise StanzaError("not-acceptable",
                              f"Private XML storage is limited to {self.max_size} bytes "
                              f"per account on this server")
        await self.store.set(self.host.domain, username, KEY, document or None)


def _owner(iq):
    """The username whose data the IQ is about; StanzaError unless it is the sender's."""
    requester, target = parse_jid_attr(iq, "from"), parse_jid_attr(iq, "to")
    if requester is None or requester.bare() != target:
        raise StanzaError("forbidden", "Private XML belongs to its account alone")
    return target.local


def _children(iq, single):
    """The query's child elements, checked; see the module docstring for the errors."""
    children = [c for c in iq.find(QUERY) if isinstance(c.tag, str)]
    if not children:
        raise StanzaError("not-acceptable", "Name the element to store or retrieve")
    if single and len(children) > 1:
        raise StanzaError("bad-request", "Retrieve one element at a time")
    for child in children:
        namespace = _split(child.tag)[0]
        if not namespace:
            raise StanzaError("not-acceptable", "Private XML needs a namespace of its own")
        if namespace in RESERVED or namespace.startswith(RESERVED_PREFIXES):
            raise StanzaError("not-acceptable", f"The namespace {namespace} is reserved")
    return children


def _key(el):
    """The storage key of C{el}: its Clark name."""
    return el.tag


def _split(clark):
    """(namespace, name) of a Clark name; namespace '' when there is none."""
    if clark.startswith("{"):
        namespace, _, name = clark[1:].partition("}")
        return namespace, name
    return "", clark


private_storage = PrivateStorage()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
