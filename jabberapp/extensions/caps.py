"""
XEP-0115: Entity Capabilities -- the server's own caps, and a verified cache of the caps
its clients advertise (for PEP's +notify filtering later).

The server's caps
  After authentication the stream features carry <c xmlns='http://jabber.org/protocol/caps'
  hash='sha-1' node='https://jabberapp.example/caps' ver='...'/> (§6.3). The ver is
  computed (§5.1) from the host's own disco#info answer -- obtained by asking the host
  itself through the dispatcher, so it covers exactly what disco answers: identities,
  features and XEP-0128 forms, whichever extension declared them. A disco#info query to the
  host JID for the node NODE#ver is answered with that same answer, the node echoed (§6.2):
  a hook on IQ_HOST takes it before disco, which has no notion of caps nodes. (An
  IDiscoProvider could not do it: disco adds the host's extended forms only to its
  answer without a node, and the hash must cover them.)

Clients' caps (§5.4)
  On a local client's broadcast presence (PRESENCE_BROADCAST) with <c/>:
  - no 'hash' attribute: the legacy format (§10, pre-1.4), neither verified nor cached;
  - a hash we implement (below): the ver is looked up in the process-wide cache of
    verified vers; when unknown, the server sends disco#info for node#ver to that client,
    rebuilds the ver from the answer and caches the features only when it matches. An
    ill-formed answer (§5.4 3.3-3.5: duplicate identities, features or FORM_TYPEs) or a
    mismatch is not cached, and the next client advertising that ver is asked instead
    (§5.4 3.9). One query per ver at a time, and one per client at a time;
  - any other hash (§5.4 step 2): the answer is kept for that client only.
  Presence without <c/> leaves the client with no caps.

  Hashes (computed in caps_ver.py): the IANA "Hash Function Textual Names" that hashlib
  implements (sha-1, sha-224, sha-256, sha-384, sha-512) and those XEP-0300 names (sha3-*,
  blake2b-256/512); MD2, MD4 and MD5 are refused (XEP-0414: MUST NOT). Hardening beyond
  the XEP: an answer with '<' in any string is ill-formed, since '<' is the separator of the
  hashed string and would let one answer pose as another with the same ver (the 2009 caps
  preimage discussion).

Service "caps" (for PEP)
  ``features_for_ver(ver)``: the verified features (frozenset of namespaces) of a ver, or
  None. ``features_of(full_jid)``: the features of the caps in that session's current
  presence, or None (no session, no caps, legacy caps, not verified yet). The cache is an
  LRU of ``cache_size`` vers shared by every host of the process; it is not persisted:
  clients are asked again after a restart.
  ``when_known(session)``: a Deferred for the features of the session's current caps
  (None when they will not become known), fired by the event that settles them, never by
  polling (details in L{CapsService.when_known}). Waiters are kept by ver and session only
  while a query that may settle them is in flight, and every query times out (QUERY_TIMEOUT).

  The verifier reads broadcast presence at priority 200, before the hooks of other
  extensions (PEP at 100), so in the rest of the PRESENCE_BROADCAST chain, and at
  SESSION_AVAILABLE, the service already answers for the new presence's caps. A session
  that ends has its query in flight cancelled: another client advertising the ver is asked
  at once instead of after the timeout.
"""
import secrets
from collections import OrderedDict

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError, StreamError
# The hashing of §5 lives in caps_ver; its names stay importable from here.
from jabberapp.extensions.caps_ver import (  # noqa: F401
    HASHES, SERVER_HASH, DiscoInfo, IllFormed, compute_ver, parse_disco_info,
    verification_string)
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.jid import InvalidJID, JID
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT, NS_DISCO_INFO

NS_CAPS = "http://jabber.org/protocol/caps"
CAPS = f"{{{NS_CAPS}}}c"
DISCO_INFO = f"{{{NS_DISCO_INFO}}}query"
# The caps node names the software (§4). The project has no web site yet: a reserved
# .example name that never resolves, to change here once it has one.
NODE = "https://jabberapp.example/caps"
QUERY_TIMEOUT = 30        # seconds a client has to answer the server's disco#info
# The server's own ver is recomputed when its declarations change, and otherwise at most this
# often: disco providers may change what they add, but every login must not ask disco again.
OWN_VER_MAX_AGE = 60

class VerCache:
    """Verified ver -> frozenset of features, least recently used dropped beyond C{size}."""

    def __init__(self, size):
        self.size = size
        self._entries = OrderedDict()

    def get(self, ver):
        features = self._entries.get(ver)
        if features is not None:
            self._entries.move_to_end(ver)
        return features

    def put(self, ver, features):
        self._entries[ver] = features
        self._entries.move_to_end(ver)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __contains__(self, ver):
        return ver in self._entries

    def __len__(self):
        return len(self._entries)


@implementer(IPlugin, IExtension)
class EntityCapabilities:
    """The server's caps as a stream feature, and the verified caps cache ("caps")."""

    name = "caps"
    specs = (Spec("XEP-0115", "1.6.0", "Entity Capabilities",
                  "server caps as a stream feature; clients' caps verified and cached"),)
    depends = ("disco",)    # §7: support is advertised through disco; ver hashes its answer
    options = (
        Option("cache_size", int_range(1, 1_000_000), default=10000,
               doc="Verified capabilities (ver strings) kept in memory, shared by every "
                   "host; the least recently used are dropped first."),
    )

    def __init__(self):
        self.cache = None    # process-wide: one plugin object serves every host

    def install(self, host):
        """Declare caps support, offer the stream feature, own the caps node, watch
        presence, and provide the service "caps"."""
        size = host.config["cache_size"]
        if self.cache is None:
            self.cache = VerCache(size)
        self.cache.size = size
        host.add_feature(NS_CAPS)
        server = ServerCaps(host)
        host.add_stream_feature(server)
        host.hook(dispatch.IQ_HOST, server.caps_node_query, priority=100)
        verifier = CapsVerifier(host, self.cache)
        # Before other extensions' hooks, which may ask the service about the new caps.
        host.hook(dispatch.PRESENCE_BROADCAST, verifier.presence, priority=200)
        host.hook(dispatch.SESSION_CLOSED, verifier.session_closed)
        host.on_unload(verifier.stop)
        host.provide("caps", CapsService(host, self.cache, verifier))


@implementer(IStreamFeature)
class ServerCaps:
    """The host's own caps: the <c/> stream feature and the answer for its caps node."""

    namespace = NS_CAPS

    def __init__(self, host):
        self.host = host
        self.ver = None     # the last ver computed
        self._basis = None  # (declarations, clock time) that ver was computed from

    def own_info(self):
        """Deferred: the host JID's disco#info <query/> without a node, asked of the host
        itself, so it is whatever disco answers."""
        iq = element(NS_CLIENT, "iq", type="get", id=f"caps-{secrets.token_hex(8)}",
                     to=self.host.domain, from_=self.host.domain)
        iq.append(element(NS_DISCO_INFO, "query"))
        d = self.host.request(iq, timeout=QUERY_TIMEOUT)
        return d.addCallback(lambda result: result.find(DISCO_INFO))

    def current_ver(self):
        """The ver of the host's disco#info now, or the last one known when disco does not
        answer at once (a provider waiting on storage); None before the first. Computed
        again only when the host's features, identities or disco providers changed or the
        last one is older than OWN_VER_MAX_AGE."""
        declared = (tuple(self.host.features), tuple(self.host.identities),
                    tuple(self.host.disco_providers))
        now = self.host.clock.seconds()
        if (self.ver is not None and self._basis is not None and self._basis[0] == declared
                and now - self._basis[1] < OWN_VER_MAX_AGE):
            return self.ver
        self._basis = (declared, now)
        d = self.own_info()
        d.addCallback(lambda query: compute_ver(parse_disco_info(query)))
        d.addCallbacks(self._computed, self._not_computed)
        return self.ver

    def _computed(self, ver):
        self.ver = ver

    def _not_computed(self, failure):
        if not failure.check(defer.CancelledError, defer.TimeoutError):
            self.host.log.failure("cannot compute the server's caps", failure)

    def advertise(self, stream):
        """<c hash node ver/> after authentication (§6.3)."""
        if stream.username is None:
            return None
        ver = self.current_ver()
        if ver is None:
            return None
        return element(NS_CAPS, "c", hash=SERVER_HASH, node=NODE, ver=ver)

    def handle(self, stream, element):
        """Caps travel in presence and stream features only: a nonza is a violation."""
        raise StreamError("unsupported-stanza-type")

    def caps_node_query(self, iq, origin):
        """IQ_HOST hook: answer disco#info for NODE#ver with the host's disco#info."""
        if iq.get("type") != "get" or len(iq) != 1 or iq[0].tag != DISCO_INFO:
            return None
        node = iq[0].get("node")
        if node is None or not node.startswith(f"{NODE}#"):
            return None
        try:
            if JID.parse(iq.get("to")).resource is not None:
                return None
        except InvalidJID:
            return None
        if self.ver is None:
            self.current_ver()
        if node != f"{NODE}#{self.ver}":
            return None     # an old or unknown ver: disco says item-not-found

        def answer(query):
            query.set("node", node)     # XEP-0030 §3.2: the node is echoed
            reply = st.reply(iq)
            reply.append(query)
            self.host.send(reply)

        def failed(failure):
            self.host.log.failure("cannot answer the caps node", failure)
            self.host.send(st.error_reply(iq, StanzaError("internal-server-error")))

        self.own_info().addCallbacks(answer, failed)
        return dispatch.HANDLED


class SessionCaps:
    """The caps of a session's current presence (in session.state["caps"])."""

    def __init__(self, hash_name, node, ver):
        self.hash = hash_name
        self.node = node
        self.ver = ver
        self.failed = False     # this session's answer for this ver did not verify
        self.features = None    # unsupported hash: the answer, for this session only


class CapsVerifier:
    """Verifies and caches the caps in local clients' presence (§5.4)."""

    def __init__(self, host, cache):
        self.host = host
        self.cache = cache
        self._queries = {}      # ver -> (session, Deferred) of the query in flight for it
        self._busy = {}         # session -> Deferred of the query in flight to it
        # ver -> {session: [Deferred]}: when_known() waiters for the session's caps of that
        # ver, settled when a query for the ver (or the session's own) ends.
        self._waiters = {}
        self._stopped = False

    def presence(self, presence, session):
        """PRESENCE_BROADCAST hook: record the caps of available presence; verify them."""
        if presence.get("type") is not None:
            return None
        c = presence.find(CAPS)
        previous = session.state.pop("caps", None)
        if c is None or not c.get("ver") or not c.get("node") or c.get("hash") is None:
            # No caps, or legacy caps (§5.4 step 1): nothing to keep, nothing to wait for.
            self._release(session, previous)
            return None
        if previous is not None and (previous.hash, previous.ver) == (c.get("hash"),
                                                                      c.get("ver")):
            # The same caps: keep the object a query in flight will fill in.
            session.state["caps"] = previous
        else:
            self._release(session, previous)
            session.state["caps"] = SessionCaps(c.get("hash"), c.get("node"), c.get("ver"))
        self._consider(session)
        return None

    def session_closed(self, session):
        """SESSION_CLOSED hook: stop waiting for the session's answer (another client with
        the same ver is asked now, §5.4 3.9) and fire its waiters with None."""
        busy = self._busy.get(session)
        if busy is not None:
            busy.cancel()   # _done runs, and settles the waiters of that ver
        self._release(session, session.state.get("caps"))

    # -- waiting for a session's features (the service's when_known) -------------------

    def when_known(self, session):
        """See L{CapsService.when_known}."""
        caps = session.state.get("caps")
        if (caps is None or self._stopped
                or self.host.sessions.get(session.jid) is not session):
            return defer.succeed(None)
        self._consider(session)     # a ver dropped from the cache since: ask again
        features, pending = self._status(session)
        if not pending:
            return defer.succeed(features)
        ver = caps.ver
        d = defer.Deferred(canceller=lambda d: self._forget(d, ver, session))
        self._waiters.setdefault(ver, {}).setdefault(session, []).append(d)
        return d

    def _status(self, session):
        """(features, pending) of C{session}'s current caps: the features when known, else
        None and whether a query in flight may still settle them."""
        caps = session.state.get("caps")
        if (caps is None or self._stopped
                or self.host.sessions.get(session.jid) is not session):
            return None, False
        if caps.hash in HASHES:
            features = self.cache.get(caps.ver)
            if features is not None:
                return features, False
            # Another client's query for the ver, or the session's own, which _done starts
            # after the one in flight to it (for its previous caps).
            return None, (caps.ver in self._queries
                          or (session in self._busy and not caps.failed))
        if caps.features is not None:
            return caps.features, False
        return None, session in self._busy and not caps.failed

    def _settle(self, ver):
        """Fire the waiters of C{ver} whose features are now known or cannot be."""
        by_session = self._waiters.get(ver)
        if not by_session:
            return
        for session in list(by_session):
            caps = session.state.get("caps")
            if caps is None or caps.ver != ver:
                self._fire(ver, session, None)
                continue
            features, pending = self._status(session)
            if not pending:
                self._fire(ver, session, features)

    def _release(self, session, caps):
        """The session's C{caps} are replaced or it ended: their waiters get None."""
        if caps is not None:
            self._fire(caps.ver, session, None)

    def _fire(self, ver, session, features):
        by_session = self._waiters.get(ver)
        if by_session is None:
            return
        waiters = by_session.pop(session, ())
        if not by_session:
            del self._waiters[ver]
        for d in waiters:
            d.callback(features)

    def _forget(self, d, ver, session):
        """Canceller of a waiter: drop it."""
        by_session = self._waiters.get(ver, {})
        waiters = by_session.get(session, [])
        if d in waiters:
            waiters.remove(d)
            if not waiters:
                del by_session[session]
                if not by_session:
                    del self._waiters[ver]

    # -- queries -----------------------------------------------------------------------

    def _consider(self, session):
        """Query C{session} when its caps need it and nothing is in flight for them."""
        caps = session.state.get("caps")
        if self._stopped or caps is None or caps.failed or session in self._busy:
            return
        if caps.hash in HASHES:
            if caps.ver in self.cache or caps.ver in self._queries:
                return
        elif caps.features is not None:
            return
        self._query(session, caps)

    def _query(self, session, caps):
        iq = element(NS_CLIENT, "iq", type="get", id=f"caps-{secrets.token_hex(8)}",
                     to=str(session.jid), from_=self.host.domain)
        iq.append(element(NS_DISCO_INFO, "query", node=f"{caps.node}#{caps.ver}"))
        d = self.host.request(iq, timeout=QUERY_TIMEOUT)
        if d.called:    # answered at once (an error: the session is gone)
            d.addErrback(lambda _: None)
            return
        self._busy[session] = d
        if caps.hash in HASHES:
            self._queries[caps.ver] = (session, d)
        d.addCallbacks(self._answered, self._no_answer, (session, caps), None,
                       (session, caps), None)
        d.addBoth(self._done, session, caps)

    def _answered(self, result, session, caps):
        query = result.find(DISCO_INFO)
        try:
            if query is None:
                raise IllFormed("no disco#info query in the answer")
            info = parse_disco_info(query)
            features = frozenset(info.features)
            if caps.hash not in HASHES:
                caps.features = features    # §5.4 step 2: for this session only
                return
            ver = compute_ver(info, caps.hash)
            if ver != caps.ver:
                raise IllFormed(f"the answer hashes to {ver}")
        except IllFormed as exc:
            caps.failed = True
            self.host.log.debug("caps {ver} of {jid} not verified: {reason}", ver=caps.ver,
                                jid=session.jid, reason=str(exc))
            return
        self.cache.put(caps.ver, features)
        self.host.log.debug("caps {ver} verified from {jid}: {count} features",
                            ver=caps.ver, jid=session.jid, count=len(features))

    def _no_answer(self, failure, session, caps):
        if failure.check(defer.CancelledError):
            return
        if not failure.check(StanzaError, defer.TimeoutError):
            self.host.log.failure("caps query to {jid} failed", failure, jid=session.jid)
        caps.failed = True

    def _done(self, _, session, caps):
        if self._busy.get(session) is not None:
            del self._busy[session]
        entry = self._queries.get(caps.ver)
        if entry is not None and entry[0] is session:
            del self._queries[caps.ver]
        if self.host.sessions.get(session.jid) is session:
            self._consider(session)     # its caps may have changed meanwhile
        if caps.hash in HASHES and caps.ver not in self.cache:
            # §5.4 3.9: ask another client that advertises the same ver.
            for other in list(self.host.sessions):
                other_caps = other.state.get("caps")
                if (other is not session and other_caps is not None
                        and other_caps.ver == caps.ver and other_caps.hash in HASHES):
                    self._consider(other)
                    if caps.ver in self._queries:
                        break
        self._settle(caps.ver)
        current = session.state.get("caps")
        if current is not None and current.ver != caps.ver:
            self._settle(current.ver)   # it waited for this query to end (_status)

    def stop(self):
        """Forget the queries in flight and fire every waiter with None (the extension
        unloads)."""
        self._stopped = True
        busy, self._busy = self._busy, {}
        self._queries = {}
        for d in busy.values():
            d.cancel()
        waiters, self._waiters = self._waiters, {}
        for by_session in waiters.values():
            for session_waiters in by_session.values():
                for d in session_waiters:
                    d.callback(None)


class CapsService:
    """The service "caps": verified features by ver, or of a session's current caps."""

    def __init__(self, host, cache, verifier):
        self._host = host
        self._cache = cache
        self._verifier = verifier

    def features_for_ver(self, ver):
        """The verified features (a frozenset of namespaces) of C{ver}, or None."""
        return self._cache.get(ver)

    def features_of(self, full_jid):
        """The features of the caps in the current presence of the local session
        C{full_jid} (a JID), or None: no such session, no caps, legacy caps, or not
        verified (yet). With a hash we do not implement, the session's own answer."""
        session = self._host.sessions.get(full_jid)
        caps = None if session is None else session.state.get("caps")
        if caps is None:
            return None
        if caps.hash not in HASHES:
            return caps.features
        return self._cache.get(caps.ver)

    def when_known(self, session):
        """
        A Deferred firing with the verified features (a frozenset) of the caps in
        C{session}'s current presence, or with None when they will not become known.

        It fires at once when they are known, or when they cannot be: no session, no caps,
        legacy caps, a failed verification with no query left in flight for the ver, or
        the extension stopped. Otherwise it fires when the query that settles them ends --
        the session's own, another client's for the same ver (a ver is asked of one client
        at a time), or the next client's after a failure (§5.4 3.9) -- and with None when
        the session's caps change or the session ends first. No timer is armed for it;
        the query's own timeout (QUERY_TIMEOUT) bounds the wait. Cancelling the Deferred
        drops the waiter.
        """
        return self._verifier.when_known(session)

    def supports_hash(self, name):
        """True when caps with the hash C{name} can be verified (§5.4 step 2)."""
        return name in HASHES

    def verify(self, jid, hash_name, node, ver):
        """
        Ask the entity C{jid} (local or remote) for the disco#info of its caps node
        C{node}#C{ver}, from the host's JID: a Deferred for the features (a frozenset) when
        the answer hashes to C{ver} with C{hash_name} (§5.4), else None (an error, or no
        answer within QUERY_TIMEOUT). Nothing is cached: the caller keeps what it trusts.
        """
        iq = element(NS_CLIENT, "iq", type="get", id=f"caps-{secrets.token_hex(8)}",
                     to=str(jid), from_=self._host.domain)
        iq.append(element(NS_DISCO_INFO, "query", node=f"{node}#{ver}"))

        def verified(result):
            query = result.find(DISCO_INFO)
            try:
                info = None if query is None else parse_disco_info(query)
            except IllFormed:
                return None
            if info is None or hash_name not in HASHES or compute_ver(info, hash_name) != ver:
                return None
            return frozenset(info.features)

        d = self._host.request(iq, timeout=QUERY_TIMEOUT)
        return d.addCallbacks(verified, lambda failure: None)


caps = EntityCapabilities()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
