"""
XEP-0163: Personal Eventing Protocol -- a pubsub service on every account's bare JID.

IQs with a <pubsub/> or <pubsub xmlns='...#owner'/> child addressed to a user's bare JID
(or without 'to' from the user's own session) go to the shared L{PubSubProtocol} with PEP
rules:

- Only the account owner creates, publishes, retracts, configures, purges and deletes; a
  publish to a node that does not exist creates it (§3, auto-create) with the PEP defaults
  -- access model presence, max_items 1, send_last_published_item on_sub_and_presence --
  overridden by the publish-options, which are preconditions when the node exists
  (XEP-0060 §7.1.5: <conflict/><precondition-not-met/>). So OMEMO device lists (access
  model open), XEP-0402 bookmarks (whitelist, max_items max, send_last never) and XEP-0084
  avatars work with their publish-options.
- Others may read items and subscribe as the node's access model allows (open, presence,
  roster, whitelist, authorize; presence is the user's roster: a 'from' or 'both'
  subscription). With authorize a subscription is pending until the owner approves it:
  the owner's bare JID gets the XEP-0060 §8.6 authorization form from itself, and the
  submitted form the owner sends back to its own bare JID (or an owner subscriptions set)
  approves or denies it.

Notifications (§4.3) go to the node's explicit subscribers and to every *available local
resource* -- of the owner itself and of each contact whose presence subscription lets it
see the owner's presence (roster service ``can_see_presence``), as the access model
allows -- whose verified entity capabilities (caps service ``features_of``) include
``<node>+notify``. Contacts on other servers are notified at the full JIDs from which the
user received available presence with XEP-0115 caps (§4.3: "the full JIDs of contacts
whose presence it has received"): each such resource is remembered per local user (at
most 1000; unavailable or error presence, or presence without caps, forgets it) when its
bare JID is a roster contact with a 'from' or 'both' subscription -- others, such as MUC
occupants, are neither kept nor asked. Caps the server has not verified are asked of that
resource with disco#info node#ver (from the host's JID, once per ver at a time) and kept
only when the answer hashes to the ver. Remote resources are not persisted: after a
restart they count again from their next presence (the login probe brings it).

Last published items (§4.3.2): when a local resource becomes available (SESSION_AVAILABLE),
the last item of each node with send_last_published_item on_sub_and_presence -- the user's
own nodes and those of local contacts whose presence it may see -- is sent to it, for the
nodes its caps mark +notify. Caps may still be being verified then, so this waits for
them through the caps service's ``when_known``, which fires when the query that settles
them ends -- no timer, no polling; a session whose presence has no caps (or legacy caps)
waits for nothing. A later presence with other caps does the same for the nodes the
session newly marks +notify: last items are sent once per new feature set. A session that
is gone or unavailable by then gets nothing, and its wait is dropped. A remote contact's
resource gets the user's last items (on_sub_and_presence, +notify, as the access model
allows) when its presence brings caps with +notify it did not have.

Service discovery: the account's bare JID answers its owner with identities
account/registered and pubsub/pep and the pubsub features (XEP-0163 §6.1), which clients
check before using publish-options, and its disco#items list the owner's nodes.

Node profiles need nothing of their own: XEP-0084 avatars, XEP-0402 bookmarks, OMEMO device
lists and bundles, and XEP-0223 private storage (persist_items true, access_model
whitelist) -- including XEP-0048 bookmarks in the node storage:bookmarks -- are PEP nodes
with their publish-options. XEP-0048 bookmarks in XEP-0049 private XML are bridged to the
XEP-0402 node (L{jabberapp.extensions.pubsub.bookmarks}; ``urn:xmpp:bookmarks:1#compat``).
"""
from collections import OrderedDict

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub import config as cfg
from jabberapp.extensions.pubsub.bookmarks import COMPAT_FEATURE, BookmarksCompat
from jabberapp.extensions.pubsub.bookmarks import NODE as BOOKMARKS_NODE
from jabberapp.extensions.pubsub.ns import FEATURES, NS_OWNER, NS_PUBSUB
from jabberapp.extensions.pubsub.protocol import PubSubProtocol
from jabberapp.extensions.pubsub.service import LIMIT_OPTIONS
from jabberapp.extensions.pubsub.store import STORE_NAME, KeyValueNodeStore
from jabberapp.extensions.pubsub.subscription_forms import find_authorization
from jabberapp.interfaces import IDiscoProvider, IExtension
from jabberapp.jid import InvalidJID, JID
from jabberapp.specs import Spec
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

CAPS = "{http://jabber.org/protocol/caps}c"
STATE_KEY = "pep"
MAX_REMOTE = 1000        # remote resources remembered per local user
REMOTE_VERS = 1000       # caps vers verified from remote entities, kept (LRU)


@implementer(IPlugin, IExtension)
class PersonalEventing:
    """PEP on every account; see the module docstring."""

    name = "pep"
    depends = ("disco", "roster", "caps")
    specs = (Spec("XEP-0163", "1.2.2", "Personal Eventing Protocol",
                  "auto-create, publish-options, +notify filtering by verified caps for "
                  "local and remote contacts, last item at login or on new caps"),
             Spec("XEP-0084", "1.1.4", "User Avatar", "as PEP nodes"),
             Spec("XEP-0223", "1.1.1", "Persistent Storage of Private Data via PubSub",
                  "publish-options persist_items and access_model whitelist"),
             Spec("XEP-0402", "1.1.4", "PEP Native Bookmarks",
                  "as a PEP node; #compat: XEP-0048 bookmarks in private XML are the PEP "
                  "bookmarks (URL bookmarks are not carried over); not #compat-pep"),
             Spec("XEP-0048", "1.2", "Bookmarks",
                  "in private XML (bridged to XEP-0402) or in the PEP node "
                  "storage:bookmarks (XEP-0223, separate)"))
    options = (
        Option("max_nodes", int_range(1, 100_000), 200,
               "Most PEP nodes one account may have; more are refused with "
               "policy-violation."),
    ) + LIMIT_OPTIONS

    def install(self, host):
        """Own pubsub IQs to users' bare JIDs and hook notifications at login."""
        protocol = PubSubProtocol(host, KeyValueNodeStore(host.storage.keyvalue(STORE_NAME)),
                                  cfg.PEP_DEFAULTS, pep=True,
                                  max_items_limit=host.config["max_items_limit"],
                                  max_payload_size=host.config["max_payload_size"],
                                  max_nodes=host.config["max_nodes"])
        pep = PEP(host, protocol)
        protocol.notifications.pep_recipients = pep.recipients
        # XEP-0402 §5.3: private XML bookmarks are the PEP bookmarks.
        host.hook(dispatch.IQ_BARE, pep.bookmarks.private_iq, priority=100)
        for type_ in ("get", "set"):
            host.iq_handler(type_, NS_PUBSUB, "pubsub", pep.handle, to="user")
            host.iq_handler(type_, NS_OWNER, "pubsub", pep.handle, to="user")
        host.hook(dispatch.SESSION_AVAILABLE, pep.session_available)
        # Before the roster's presence handling: remote contacts' caps (§4.3).
        host.hook(dispatch.PRESENCE_BARE, pep.remote_presence, priority=100)
        host.hook(dispatch.PRESENCE_FULL, pep.remote_presence, priority=100)
        # Before delivery: the owner's answers to subscription authorization requests.
        host.hook(dispatch.MESSAGE_BARE, pep.authorization, priority=100)
        # Before the roster's broadcast hook, which may end the chain with HANDLED.
        host.hook(dispatch.PRESENCE_BROADCAST, pep.presence_broadcast, priority=100)
        host.add_disco_provider(AccountDisco(host, protocol.store))


class PEP:
    """The PEP handlers of one host."""

    def __init__(self, host, protocol):
        self.host = host
        self.protocol = protocol
        self.roster = host.service("roster")
        self.caps = host.service("caps")
        self.bookmarks = BookmarksCompat(host, protocol)
        # Local bare JID -> {remote full JID: (hash, node, ver)} of the available remote
        # resources that sent it presence with caps.
        self.remote = {}
        self._remote_vers = OrderedDict()   # vers verified from remote entities (LRU)
        self._queries = {}                          # ver -> Deferred of its disco#info

    # -- remote contacts (§4.3) ---------------------------------------------------------

    def remote_presence(self, presence, origin):
        """PRESENCE_BARE/PRESENCE_FULL: remember the caps of a remote resource's presence
        to a local user; on new caps, verify them and send it the user's last items."""
        try:
            sender = JID.parse(presence.get("from") or "")
            to = JID.parse(presence.get("to")).bare()
        except InvalidJID:
            return None
        if (sender.resource is None or sender.domain == self.host.domain
                or to.local is None or to.domain != self.host.domain):
            return None
        type_ = presence.get("type")
        table = self.remote.get(to, {})
        if type_ in ("unavailable", "error"):
            table.pop(sender, None)
            if not table:
                self.remote.pop(to, None)
            return None
        if type_ is not None:
            return None
        c = presence.find(CAPS)
        caps = None
        if (c is not None and self.caps.supports_hash(c.get("hash")) and c.get("node")
                and c.get("ver")):
            caps = (c.get("hash"), c.get("node"), c.get("ver"))
        old = table.get(sender)
        if caps is None:
            table.pop(sender, None)
            if not table:
                self.remote.pop(to, None)
            return None
        if old == caps or (sender not in table and len(table) >= MAX_REMOTE):
            return None
        self.remote.setdefault(to, {})[sender] = caps
        old_features = (self.remote_features(old) if old is not None else None) or frozenset()
        d = defer.ensureDeferred(self._remote_caps(to, sender, caps, old_features))
        d.addErrback(lambda failure: self.host.log.failure(
            "PEP for remote {jid} failed", failure, jid=sender))
        return None

    def remote_features(self, caps):
        """The verified features of a remote resource's C{caps}, or None."""
        ver = caps[2]
        features = self.caps.features_for_ver(ver)
        if features is None and ver in self._remote_vers:
            self._remote_vers.move_to_end(ver)
            features = self._remote_vers[ver]
        return features

    async def _remote_caps(self, owner, sender, caps, old_features):
        item = (await self.roster.get_items(owner.local)).get(sender.bare())
        if item is None or item.subscription not in ("from", "both"):
            # No contact of the owner's PEP (a MUC occupant, a stranger): forget it and
            # ask it nothing.
            table = self.remote.get(owner, {})
            if table.get(sender) == caps:
                del table[sender]
                if not table:
                    self.remote.pop(owner, None)
            return
        features = self.remote_features(caps)
        if features is None:
            features = await self._verify(sender, caps)
            if features is None or self.remote.get(owner, {}).get(sender) != caps:
                return
        new = features - old_features
        if not new:
            return
        for node in await self.protocol.store.list_nodes(str(owner)):
            if f"{node}+notify" not in new:
                continue
            record = await self.protocol.store.get_node(str(owner), node)
            if (record is None or record["config"].get("send_last_published_item")
                    != "on_sub_and_presence"
                    or not await self.allowed(str(owner), record, sender.bare())):
                continue
            await self.protocol.notifications.send_last(str(owner), node, record, sender)

    async def _verify(self, sender, caps):
        """Ask C{sender} for the disco#info of its caps node (the caps service); the
        features when the answer hashes to the ver (XEP-0115 §5.4), else None. One query
        per ver."""
        hash_name, node, ver = caps
        pending = self._queries.get(ver)
        if pending is None:
            pending = self._queries[ver] = self.caps.verify(sender, hash_name, node, ver)
            pending.addBoth(self._verified, ver)
        waiter = defer.Deferred()
        pending.addBoth(lambda result: (waiter.callback(result), result)[1])
        return await waiter

    def _verified(self, features, ver):
        self._queries.pop(ver, None)
        if not isinstance(features, frozenset):
            return None     # not verified
        self._remote_vers[ver] = features
        self._remote_vers.move_to_end(ver)
        while len(self._remote_vers) > REMOTE_VERS:
            self._remote_vers.popitem(last=False)
        return features

    def handle(self, iq):
        """IQ handler: the protocol with the addressed account as owner."""
        to = iq.get("to")
        owner = JID.parse(to).bare() if to else JID.parse(iq.get("from")).bare()
        return defer.ensureDeferred(self._handle(iq, owner))

    async def _handle(self, iq, owner):
        items = iq[0].find(f"{{{NS_PUBSUB}}}items")
        if (items is not None and items.get("node") == BOOKMARKS_NODE
                and JID.parse(iq.get("from")).bare() == owner):
            await self.bookmarks.migrate(owner)
        return await self.protocol.handle(iq, owner)

    def authorization(self, message, origin):
        """MESSAGE_BARE: a submitted subscription authorization form (XEP-0060 §8.6)
        that the account owner sends to its own bare JID approves or denies a pending
        subscription to one of its nodes (access model authorize)."""
        to, sender = message.get("to"), message.get("from")
        # Both are prepared by now; only a message from the owner to its own bare JID is
        # searched for the form, not every message to a contact.
        if not to or not sender or not (sender == to or sender.startswith(to + "/")):
            return None
        form = find_authorization(message)
        if form is None or form.get("type") not in ("submit", "cancel"):
            return None
        try:
            sender, to = JID.parse(message.get("from") or ""), JID.parse(message.get("to"))
        except InvalidJID:
            return None
        if sender.bare() != to or to.domain != self.host.domain:
            return None
        d = defer.ensureDeferred(self.protocol.authorize(str(to), sender, form))

        def refused(failure):
            failure.trap(StanzaError)
            self.host.send(st.error_reply(message, failure.value))

        d.addErrback(refused)
        d.addErrback(lambda failure: self.host.log.failure(
            "subscription authorization failed", failure))
        return dispatch.HANDLED

    def interested(self, session, node):
        """True when C{session}'s verified caps include C{node}+notify."""
        features = self.caps.features_of(session.jid)
        return features is not None and f"{node}+notify" in features

    async def allowed(self, owner, record, contact):
        """True when C{contact} may receive the node's items."""
        try:
            await self.protocol.check_access(owner, record, contact)
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
        remote = {}
        for jid, caps in self.remote.get(owner_jid, {}).items():
            features = self.remote_features(caps)
            if features is not None and f"{node}+notify" in features:
                remote.setdefault(jid.bare(), []).append(jid)
        for contact, jids in remote.items():
            item = items.get(contact)
            if item is None or item.subscription not in ("from", "both"):
                continue
            if model != "open" and not await self.allowed(owner, record, contact):
                continue
            found.extend(jids)
        return found

    # -- last items at login ----------------------------------------------------------

    def session_available(self, session):
        """SESSION_AVAILABLE: send last items once the session's caps are known."""
        old = session.state.get(STATE_KEY)
        if old is not None:
            old.stop_waiting()      # available again after unavailable: start afresh
        state = session.state[STATE_KEY] = LastItems()
        self._wait_for_caps(session, state, _caps_ver(session.presence))

    def presence_broadcast(self, presence, session):
        """PRESENCE_BROADCAST: an available session announcing other caps gets the last
        items of the nodes it newly wants (+notify) once they are verified; an unavailable
        one stops waiting."""
        state = session.state.get(STATE_KEY)
        if state is None:
            return None
        if presence.get("type") is not None:
            if presence.get("type") == "unavailable":
                state.stop_waiting()
                del session.state[STATE_KEY]    # available again: SESSION_AVAILABLE
            return None
        ver = _caps_ver(presence)
        if ver is None or ver == state.ver:
            return None
        # The caps extension has read the new caps already (its hook runs first).
        self._wait_for_caps(session, state, ver)
        return None

    def _wait_for_caps(self, session, state, ver):
        """Wait for the features of C{session}'s current caps (advertising C{ver}), then
        send the last items of the nodes they newly mark +notify."""
        state.stop_waiting()        # its caps changed: the old wait is moot
        state.ver = ver
        if ver is None:
            return                  # no caps: they can never become known
        d = state.waiting = self.caps.when_known(session)
        d.addCallback(self._caps_known, session, state, d)
        d.addErrback(lambda failure: failure.trap(defer.CancelledError))
        d.addErrback(lambda failure: self.host.log.failure(
            "sending last PEP items to {jid} failed", failure, jid=session.jid))

    def _caps_known(self, features, session, state, d):
        if state.waiting is not d:
            return None             # superseded by a later presence's caps
        state.waiting = None
        if (features is None or session.state.get(STATE_KEY) is not state
                or self.host.sessions.get(session.jid) is not session
                or not session.available):
            return None
        new, state.features = features - state.features, features
        return defer.ensureDeferred(self.send_last_items(session, new))

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
            for node in await self.protocol.store.list_nodes(owner):
                if f"{node}+notify" not in features:
                    continue
                record = await self.protocol.store.get_node(owner, node)
                if record is None or record["config"].get(
                        "send_last_published_item") != "on_sub_and_presence":
                    continue
                if owner_jid != user and not await self.allowed(owner, record, user):
                    continue
                if owner_jid != user and not await self.roster.can_see_presence(
                        owner_jid.local, user):
                    continue
                await self.protocol.notifications.send_last(owner, node, record, session.jid)


class LastItems:
    """Per-session state: the wait for caps, and the features last items were sent for."""

    def __init__(self):
        self.ver = None         # the caps ver of the presence last waited for
        self.waiting = None     # the caps service's when_known Deferred, while it waits
        self.features = frozenset()

    def stop_waiting(self):
        """Drop the wait in progress, if any (the caps service forgets the waiter)."""
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.cancel()


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
                [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, *FEATURES, COMPAT_FEATURE])

    def items(self, requester, target, node):
        """The owner's PEP nodes, for the owner asking its own bare JID, else None."""
        if not self._owner_asks(requester, target, node):
            return None
        d = self.store.list_nodes(str(target))
        return d.addCallback(lambda nodes: [(target, name, None) for name in nodes])


pep = PersonalEventing()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
