"""
The roster extension: installs the RFC 6121 engine of this package on a host, provides the
"roster" service, and announces roster versioning (XEP-0237) and pre-approval (§3.4).
"""
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.config import Option, int_range
from jabberapp.errors import StreamError
from jabberapp.extensions.roster.iq import RosterIQ
from jabberapp.extensions.roster.items import NS_ROSTER, RosterStore
from jabberapp.extensions.roster.presence import PresenceHandler
from jabberapp.extensions.roster.service import RosterService
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

__all__ = ["RosterExtension", "roster"]

NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"


@implementer(IPlugin, IExtension)
class RosterExtension:
    """Rosters, subscriptions and presence for every account of a host."""

    name = "roster"
    specs = (
        Spec("RFC 6121", "", "XMPP Instant Messaging and Presence",
             "roster (§2), subscriptions with pre-approval (§3), presence (§4)"),
        Spec("XEP-0237", "1.3", "Roster Versioning",
             "the whole roster when the client's version is not current"),
    )
    depends = ()
    options = (
        Option("max_items", int_range(1, 1_000_000), default=1000,
               doc="Most contacts one roster holds; adding more is refused with "
                   "not-allowed."),
    )

    def install(self, host):
        """Provide the "roster" service and own roster IQs and presence subscriptions."""
        store = RosterStore(host)
        service = RosterService(host, store, host.config["max_items"])
        host.provide("roster", service)
        host.add_feature(NS_ROSTER)
        RosterIQ(service).install(host)
        PresenceHandler(service).install(host)
        host.add_stream_feature(AdvertisedFeature(NS_ROSTERVER, "ver"))
        host.add_stream_feature(AdvertisedFeature(NS_PREAPPROVAL, "sub"))
        host.add_disco_provider(ContactDisco(service))


@implementer(IStreamFeature)
class AdvertisedFeature:
    """A stream feature that is only announced (<ver/> of XEP-0237, <sub/> of §3.4)."""

    def __init__(self, namespace, name):
        self.namespace = namespace
        self.name = name

    def advertise(self, stream):
        """The empty feature element, once the client is authenticated."""
        if getattr(stream, "username", None) is None:
            return None
        return element(self.namespace, self.name)

    def handle(self, stream, el):
        """Nothing is negotiated in these namespaces."""
        stream.close(StreamError("unsupported-stanza-type"))


class ContactDisco:
    """
    XEP-0030 §8 for accounts: a user's bare JID answers disco queries from contacts who
    may see the user's presence ('from' or 'both'), as the account it is; everyone else
    is left to the disco extension (which answers only the owner).
    """

    def __init__(self, service):
        self.service = service

    async def _entitled(self, requester, target, node):
        if (node is not None or requester is None or target.local is None
                or target.resource is not None or target.domain != self.service.host.domain
                or requester.bare() == target):
            return False
        return await self.service.can_see_presence(target.local, requester)

    async def info(self, requester, target, node):
        """The account identity for a contact, else None."""
        if await self._entitled(requester, target, node):
            return [("account", "registered", None)], [NS_DISCO_INFO, NS_DISCO_ITEMS]
        return None

    async def items(self, requester, target, node):
        """No items for a contact, else None."""
        if await self._entitled(requester, target, node):
            return []
        return None


roster = RosterExtension()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
