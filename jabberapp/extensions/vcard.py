"""
XEP-0054: vcard-temp -- users' vCards, stored whole on the server and served to anyone.

- <iq type='get'><vCard xmlns='vcard-temp'/></iq> without 'to' (or to one's own bare JID):
  one's own vCard; an empty <vCard/> when none is stored (XEP-0054 §3.1 allows this or an
  error, and clients handle the empty one best).
- <iq type='set'> with a <vCard/>, no 'to' or one's own bare JID: replaces the whole vCard
  (§3.2: there is no partial update). An empty <vCard/> is stored like any other and served
  back as it was set, as Prosody and ejabberd do (it is not a deletion). Someone else's
  bare JID: <forbidden/> (§3.2).
- <iq type='get' to='user@host'>: that user's vCard, for anyone. No vCard and no such user
  are both <service-unavailable/> (§3.3, version 1.3.0: the same error in both cases
  against directory harvesting, and RFC 6121 §8.5.1 for IQs to nonexistent accounts).
- A vCard larger than ``max_size`` bytes, serialised, is refused with <not-acceptable/>
  (type 'modify') and a text naming the limit; nothing is stored. RFC 6120 §8.3.3.9:
  the request "does not meet criteria defined by the ... server"; XEP-0060 §7.1.3.5
  answers a too-big pubsub payload the same way. <policy-violation/> would fit RFC 6120
  as well (Metronome uses it), but clients built on RFC 3920's list cannot read it --
  slixmpp 1.17 fails to parse the error and the request times out instead -- and
  <resource-constraint/> is type 'wait', which tells the client to retry in vain.

The vCard element is stored as its own XML text (UTF-8, with the namespace declarations it
needs and nothing else of the stanza) in the key-value store "vcard", key "vcard", and is
served back as stored: attributes, prefixes, unknown elements and foreign namespaces
(XEP-0153 avatar hashes live next to it, not in it) all survive.
"""
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.config import Option, int_range
from jabberapp.dispatch import parse_jid_attr
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec
from jabberapp.xml import element
# Re-exported: the XEP-0227 importer and exporter read and write stored vCards with them.
from jabberapp.xml.stored import from_text, to_text  # noqa: F401

NS_VCARD = "vcard-temp"
VCARD = f"{{{NS_VCARD}}}vCard"
STORE = "vcard"
KEY = "vcard"

@implementer(IPlugin, IExtension)
class VCardTemp:
    """Stores users' vCards and answers vCard queries to their bare JIDs."""

    name = "vcard"
    specs = (Spec("XEP-0054", "1.3.0", "vcard-temp"),)
    depends = ("disco",)    # XEP-0054 §4: support MUST be advertised through disco
    options = (
        Option("max_size", int_range(1024, 16 * 1024 * 1024), default=65536,
               doc="Largest vCard accepted, in bytes of serialised XML (avatars included); "
                   "a larger one is refused with not-acceptable and nothing is stored."),
    )

    def install(self, host):
        """Declare vcard-temp and own vCard gets and sets to users' bare JIDs."""
        host.add_feature(NS_VCARD)
        handler = _VCards(host, host.config["max_size"])
        host.iq_handler("get", NS_VCARD, "vCard", handler.get, to="user")
        host.iq_handler("set", NS_VCARD, "vCard", handler.set, to="user")


class _VCards:
    """The vCard IQ handlers of one host."""

    def __init__(self, host, max_size):
        self.host = host
        self.max_size = max_size
        self.store = host.storage.keyvalue(STORE)

    async def get(self, iq):
        """The stored vCard of the addressee; see the module docstring for the errors."""
        requester, target = parse_jid_attr(iq, "from"), parse_jid_attr(iq, "to")
        own = requester is not None and requester.bare() == target
        text = await self.store.get(self.host.domain, target.local, KEY)
        if text is None:
            if own:
                return element(NS_VCARD, "vCard")
            # The same answer whether the account exists or not (XEP-0054 §3.3).
            raise StanzaError("service-unavailable")
        return from_text(text)

    async def set(self, iq):
        """Replace the sender's own vCard; see the module docstring for the errors."""
        requester, target = parse_jid_attr(iq, "from"), parse_jid_attr(iq, "to")
        if requester is None or requester.bare() != target:
            raise StanzaError("forbidden", "Only the account's owner can change its vCard")
        vcard = iq.find(VCARD)
        text = to_text(vcard)
        if len(text.encode("utf-8")) > self.max_size:
            # COMPAT: slixmpp 1.17 cannot parse <policy-violation/> (see the docstring).
            raise StanzaError("not-acceptable",
                              f"The vCard is larger than this server's limit of "
                              f"{self.max_size} bytes")
        await self.store.set(self.host.domain, target.local, KEY, text)
        return None


vcard_temp = VCardTemp()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
