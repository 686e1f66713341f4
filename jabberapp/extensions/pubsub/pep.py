"""
XEP-0163: Personal Eventing Protocol -- a pubsub service on every account's bare JID.

IQs with a <pubsub/> or <pubsub xmlns='...#owner'/> child addressed to a user's bare JID
(or without 'to' from the user's own session) go to the shared L{Engine} with PEP rules:

- Only the account owner creates, publishes, retracts, configures, purges and deletes; a
  publish to a node that does not exist creates it (§3, auto-create) with the PEP defaults
  -- access model presence, max_items 1, send_last_published_item on_sub_and_presence --
  overridden by the publish-options, which are preconditions when the node exists
  (XEP-0060 §7.1.5: <conflict/><precondition-not-met/>). So OMEMO device lists (access
  model open), XEP-0402 bookmarks (whitelist, max_items max, send_last never) and XEP-0084
  avatars work with their publish-options.
- Others may read items and subscribe as the node's access model allows (open, presence,
  roster, whitelist; presence is the user's roster: a 'from' or 'both' subscription).

Notifications (§4.3) go to the node's explicit subscribers and to every *available local
resource* -- of the owner itself and of each contact whose presence subscription lets it
see the owner's presence (roster service ``can_see_presence``), as the access model
allows -- whose verified entity capabilities (caps service ``features_of``) include
``<node>+notify``. Contacts on other servers get no +notify notifications: their caps are
not known here (federation; they still get notifications when explicitly subscribed).

Last published items (§4.3.2): when a local resource becomes available (SESSION_AVAILABLE),
the last item of each node with send_last_published_item on_sub_and_presence -- the user's
own nodes and those of local contacts whose presence it may see -- is sent to it, for the
nodes its caps mark +notify. Caps are verified after the presence, so this waits for them:
it is retried at 1, 2, 4 and 8 seconds until the caps are known, then done once. A later
presence with other caps does the same for the nodes the session newly marks +notify.

Service discovery: the account's bare JID answers its owner with identities
account/registered and pubsub/pep and the pubsub features (XEP-0163 §6.1), which clients
check before using publish-options, and its disco#items list the owner's nodes.

Node profiles need nothing of their own: XEP-0084 avatars, XEP-0402 bookmarks, OMEMO device
lists and bundles, and XEP-0223 private storage (persist_items true, access_model
whitelist) are PEP nodes with their publish-options.
"""
from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp.config import Option, int_range
from jabberapp.extensions.pubsub import config as cfg
from jabberapp.extensions.pubsub.engine import FEATURES, NS_OWNER, NS_PUBSUB, Engine
from jabberapp.extensions.pubsub.service import LIMIT_OPTIONS
from jabberapp.extensions.pubsub.store import STORE_NAME, KeyValueNodeStore
from jabberapp.interfaces import IDiscoProvider, IExtension
from jabberapp.jid import JID
from jabberapp.specs import Spec
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

CAPS = "{http://jabber.org/protocol/caps}c"
RETRIES = (1, 2, 4, 8)   # seconds between checks for a new session's caps
STATE_KEY = "pep"


@implementer(IPlugin, IExtension)
class PersonalEventing:
    """PEP on every account; see the module docstring."""

    name = "pep"
    depends = ("disco", "roster", "caps")
    specs = (Spec("XEP-0163", "1.2.2", "Personal Eventing Protocol",
                  "auto-create, publish-options, +notify filtering for local contacts, "
                  "last item at login; no +notify notifications to remote contacts"),
             Spec("XEP-0084", "1.1.4", "User Avatar", "as PEP nodes"),
             Spec("XEP-0223", "1.1.1", "Persistent Storage of Private Data via PubSub",
                  "publish-options persist_items and access_model whitelist"),
             Spec("XEP-0402", "1.1.4", "PEP Native Bookmarks",
                  "as a PEP node; no XEP-0048 compatibility"))
    options = (
        Option("max_nodes", int_range(1, 100_000), 200,
               "Most PEP nodes one account may have; more are refused with "
               "policy-violation."),
    ) + LIMIT_OPTIONS

    def install(self, host):
        """Own pubsub IQs to users' bare JIDs and hook notifications at login."""
        engine = Engine(host, KeyValueNodeStore(host.storage.keyvalue(STORE_NAME)),
                        cfg.PEP_DEFAULTS, pep=True,
                        max_items_limit=host.config["max_items_limit"],
                        max_payload_size=host.config["max_payload_size"],
                        max_nodes=host.config["max_nodes"])
        pep = PEP(host, engine)
        engine.pep_recipients = pep.recipients
        for type_ in ("get", "set"):
            host.iq_handler(type_, NS_PUBSUB, "pubsub", pep.handle, to="user")
            host.iq_handler(type_, NS_OWNER, "pubsub", pep.handle, to="user")
        host.hook(dispatch.SESSION_AVAILABLE, pep.session_available)
        # Before the roster's broadcast hook, which may end the chain with HANDLED.
        host.hook(dispatch.PRESENCE_BROADCAST, pep.presence_broadcast, priority=100)
        host.add_disco_provider(AccountDisco(host, engine.store))


class PEP:
    """The PEP handlers of one host."""

    def __init__(self, host, engine):
        self.host = host
        self.engine = engine
        self.roster = host.service("roster")
        self.caps = host.service("caps")

    def handle(self, iq):
        """IQ handler: the engine with the addressed account as owner."""
        to = iq.get("to")
        owner = JID.parse(to).bare() if to else JID.parse(iq.get("from")).bare()
        return defer.ensureDeferred(self.engine.handle(iq, owner))

    def interested(self, session, node):
        """True when C{session}'s verified caps include C{node}+notify."""
        features = self.caps.features_of(session.jid)
        return features is not None and f"{node}+notify" in features

    async def allowed(self, owner, record, contact):
        """True when C{contact} may receive the node's items."""
        try:
            await self.engine.check_access(owner, record, contact)
        except Exception:
            return False
        return True

    async def recipients(self, owner, node, record):
        """The available local resources interested in the node that may see it."""
        owner_jid = JID.parse(owner)
        found = [s.jid for s in self.host.sessions.available(owner_jid)
                 if self.interested(s, node)]
        model = record["config"].get("access_model")
        items = await self.roster.get_items(owner_jid.local)
        for contact, item in items.items():
            if item.subscription not in ("from", "both") or contact.domain != self.host.domain:
                continue
            sessions = [s for s in self.host.sessions.available(contact)
                        if self.interested(s, node)]
            if not sessions:
                continue
            if model != "open" and not await self.allowed(owner, record, contact):
                continue
            found.extend(s.jid for s in sessions)
        return found

    # -- last items at login ----------------------------------------------------------

    def session_available(self, session):
        """SESSION_AVAILABLE: send last items once the session's caps are known."""
        session.state[STATE_KEY] = LastItems(_caps_ver(session.presence))
        self._try_last_items(session, 0)

    def presence_broadcast(self, presence, session):
        """PRESENCE_BROADCAST: an available session announcing other caps gets the last
        items of the nodes it newly wants (+notify) once they are verified."""
        state = session.state.get(STATE_KEY)
        ver = _caps_ver(presence)
        if (presence.get("type") is not None or state is None or state.waiting
                or ver is None or ver == state.ver):
            return None
        state.ver = ver
        state.waiting = True
        # After the caps extension has read the new caps (later in this chain).
        self.host.call_later(0, self._try_last_items, session, 0)
        return None

    def _try_last_items(self, session, attempt):
        state = session.state.get(STATE_KEY)
        if (self.host.sessions.get(session.jid) is not session or not session.available
                or state is None or not state.waiting):
            return
        features = self.caps.features_of(session.jid)
        if features is None:
            if attempt < len(RETRIES):
                self.host.call_later(RETRIES[attempt], self._try_last_items, session,
                                     attempt + 1)
            else:
                state.waiting = False
            return
        state.waiting = False
        new, state.features = features - state.features, features
        d = defer.ensureDeferred(self.send_last_items(session, new))
        d.addErrback(lambda failure: self.host.log.failure(
            "sending last PEP items to {jid} failed", failure, jid=session.jid))

    async def send_last_items(self, session, features):
        """Send C{session} the last item of every node it is interested in and may see."""
        user = session.jid.bare()
        owners = [user]
        items = await self.roster.get_items(user.local)
        owners.extend(contact for contact, item in sorted(items.items(), key=lambda i: str(i[0]))
                      if item.subscription in ("to", "both")
                      and contact.domain == self.host.domain)
        for owner_jid in owners:
            owner = str(owner_jid)
            for node in await self.engine.store.list_nodes(owner):
                if f"{node}+notify" not in features:
                    continue
                record = await self.engine.store.get_node(owner, node)
                if record is None or record["config"].get(
                        "send_last_published_item") != "on_sub_and_presence":
                    continue
                if owner_jid != user and not await self.allowed(owner, record, user):
                    continue
                if owner_jid != user and not await self.roster.can_see_presence(
                        owner_jid.local, user):
                    continue
                await self.engine.send_last(owner, node, record, session.jid)


class LastItems:
    """Per-session state: waiting for caps, and the features last items were sent for."""

    def __init__(self, ver):
        self.ver = ver      # the caps ver of the session's presence
        self.waiting = True
        self.features = frozenset()


def _caps_ver(presence):
    """The XEP-0115 ver in C{presence} (an element or None), or None."""
    c = None if presence is None else presence.find(CAPS)
    return None if c is None else c.get("ver") or None


@implementer(IDiscoProvider)
class AccountDisco:
    """The account's disco#info for its owner: account and PEP identities (§6.1)."""

    def __init__(self, host, store):
        self.host = host
        self.store = store

    def _owner_asks(self, requester, target, node):
        return (node is None and requester is not None and target.local is not None
                and target.resource is None and requester.bare() == target
                and target.domain == self.host.domain)

    def info(self, requester, target, node):
        """Identities and features for the owner asking its own bare JID, else None."""
        if not self._owner_asks(requester, target, node):
            return None
        return ([("account", "registered", None), ("pubsub", "pep", None)],
                [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, *FEATURES])

    def items(self, requester, target, node):
        """The owner's PEP nodes, for the owner asking its own bare JID, else None."""
        if not self._owner_asks(requester, target, node):
            return None
        d = self.store.list_nodes(str(target))
        return d.addCallback(lambda nodes: [(target, name, None) for name in nodes])


pep = PersonalEventing()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
