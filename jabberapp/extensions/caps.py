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

  Hashes: the IANA "Hash Function Textual Names" that hashlib implements (sha-1, sha-224,
  sha-256, sha-384, sha-512) and those XEP-0300 names (sha3-*, blake2b-256/512); MD2, MD4
  and MD5 are refused (XEP-0414: MUST NOT). Hardening beyond the XEP: an answer with '<'
  in any string is ill-formed, since '<' is the separator of the hashed string and would let
  one answer pose as another with the same ver (the 2009 caps preimage discussion).

Service "caps" (for PEP)
  ``features_for_ver(ver)``: the verified features (frozenset of namespaces) of a ver, or
  None. ``features_of(full_jid)``: the features of the caps in that session's current
  presence, or None (no session, no caps, legacy caps, not verified yet). The cache is an
  LRU of ``cache_size`` vers shared by every host of the process; it is not persisted:
  clients are asked again after a restart.
"""
import base64
import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError, StreamError
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.jid import InvalidJID, JID
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT, NS_DISCO_INFO, NS_XML

NS_CAPS = "http://jabber.org/protocol/caps"
NS_DATA_FORMS = "jabber:x:data"
CAPS = f"{{{NS_CAPS}}}c"
DISCO_INFO = f"{{{NS_DISCO_INFO}}}query"
# The caps node names the software (§4). The project has no web site yet: a reserved
# .example name that never resolves, to change here once it has one.
NODE = "https://jabberapp.example/caps"
SERVER_HASH = "sha-1"     # §8.1: mandatory to implement, so every client can check it
QUERY_TIMEOUT = 30        # seconds a client has to answer the server's disco#info

# Hash name (IANA Hash Function Textual Names; sha3-*, blake2b-* from XEP-0300) -> factory.
_HASH_FACTORIES = {
    "sha-1": lambda: hashlib.sha1(), "sha-224": lambda: hashlib.sha224(),
    "sha-256": lambda: hashlib.sha256(), "sha-384": lambda: hashlib.sha384(),
    "sha-512": lambda: hashlib.sha512(), "sha3-224": lambda: hashlib.sha3_224(),
    "sha3-256": lambda: hashlib.sha3_256(), "sha3-384": lambda: hashlib.sha3_384(),
    "sha3-512": lambda: hashlib.sha3_512(),
    "blake2b-256": lambda: hashlib.blake2b(digest_size=32),
    "blake2b-512": lambda: hashlib.blake2b(digest_size=64),
}
HASHES = frozenset(_HASH_FACTORIES)


class IllFormed(ValueError):
    """A disco#info answer that cannot be hashed (§5.4 3.3-3.5, or '<' in a string)."""


@dataclass(frozen=True)
class DiscoInfo:
    """What a disco#info answer says, as XEP-0115 hashes it."""

    identities: tuple   # (category, type, lang, name), '' when absent
    features: tuple     # namespaces
    forms: tuple        # (FORM_TYPE, ((var, (value, ...)), ...)), hidden FORM_TYPE only


def parse_disco_info(query):
    """The DiscoInfo of a disco#info <query/>; IllFormed per §5.4 (forms without a hidden
    FORM_TYPE are left out, §5.4 3.6)."""
    identities, features, forms = [], [], []
    form_types = set()
    for child in query:
        if child.tag == f"{{{NS_DISCO_INFO}}}identity":
            category, type_ = child.get("category"), child.get("type")
            if not category or not type_:
                raise IllFormed("an identity without category or type")
            identities.append((category, type_, child.get(f"{{{NS_XML}}}lang", ""),
                               child.get("name", "")))
        elif child.tag == f"{{{NS_DISCO_INFO}}}feature":
            if not child.get("var"):
                raise IllFormed("a feature without var")
            features.append(child.get("var"))
        elif child.tag == f"{{{NS_DATA_FORMS}}}x":
            form = _form(child)
            if form is None:
                continue
            if form[0] in form_types:
                raise IllFormed(f"two forms of FORM_TYPE {form[0]!r}")
            form_types.add(form[0])
            if form[1] is not None:
                forms.append(form)
    if len(set(identities)) != len(identities):
        raise IllFormed("the same identity twice")
    if len(set(features)) != len(features):
        raise IllFormed("the same feature twice")
    info = DiscoInfo(tuple(identities), tuple(features),
                     tuple((form_type, fields) for form_type, fields in forms))
    for text in _strings(info):
        if "<" in text:
            raise IllFormed("'<' in a hashed string")
    return info


def _form(x):
    """(FORM_TYPE, fields) of an XEP-0128 form; fields None when it has a FORM_TYPE that is
    not hidden (ignored, but it still counts for duplicates); None without a FORM_TYPE."""
    form_type, hidden, fields = None, False, []
    for field in x.iterchildren(f"{{{NS_DATA_FORMS}}}field"):
        var = field.get("var")
        values = tuple(value.text or "" for value in
                       field.iterchildren(f"{{{NS_DATA_FORMS}}}value"))
        if var == "FORM_TYPE":
            if form_type is not None or len(set(values)) > 1:
                raise IllFormed("a FORM_TYPE field that is not one value")
            if values:
                form_type, hidden = values[0], field.get("type") == "hidden"
        elif var is not None:
            fields.append((var, values))
    if form_type is None:
        return None
    return (form_type, tuple(fields) if hidden else None)


def _strings(info):
    for identity in info.identities:
        yield from identity
    yield from info.features
    for form_type, fields in info.forms:
        yield form_type
        for var, values in fields:
            yield var
            yield from values


def _octets(strings):
    """Sorted with the i;octet collation (§5.1): by UTF-8 bytes."""
    return sorted(strings, key=lambda text: text.encode("utf-8"))


def verification_string(info):
    """The string S of §5.1, before hashing."""
    parts = [f"{identity}<" for identity in
             _octets("/".join(identity) for identity in info.identities)]
    parts.extend(f"{feature}<" for feature in _octets(info.features))
    for form_type, fields in sorted(info.forms, key=lambda form: form[0].encode("utf-8")):
        parts.append(f"{form_type}<")
        for var, values in sorted(fields, key=lambda field: field[0].encode("utf-8")):
            parts.append(f"{var}<")
            parts.extend(f"{value}<" for value in _octets(values))
    return "".join(parts)


def compute_ver(info, hash_name=SERVER_HASH):
    """The ver of C{info} with the hash C{hash_name} (§5.1); KeyError when not in HASHES."""
    digest = _HASH_FACTORIES[hash_name]()
    digest.update(verification_string(info).encode("utf-8"))
    return base64.b64encode(digest.digest()).decode("ascii")


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
        host.hook(dispatch.PRESENCE_BROADCAST, verifier.presence)
        host.on_unload(verifier.stop)
        host.provide("caps", CapsService(host, self.cache))


@implementer(IStreamFeature)
class ServerCaps:
    """The host's own caps: the <c/> stream feature and the answer for its caps node."""

    namespace = NS_CAPS

    def __init__(self, host):
        self.host = host
        self.ver = None     # the last ver computed

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
        answer at once (a provider waiting on storage); None before the first."""
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
        self._stopped = False

    def presence(self, presence, session):
        """PRESENCE_BROADCAST hook: record the caps of available presence; verify them."""
        if presence.get("type") is not None:
            return None
        c = presence.find(CAPS)
        previous = session.state.pop("caps", None)
        if c is None or not c.get("ver") or not c.get("node") or c.get("hash") is None:
            return None     # no caps, or legacy caps (§5.4 step 1): nothing to keep
        caps = SessionCaps(c.get("hash"), c.get("node"), c.get("ver"))
        if previous is not None and (previous.hash, previous.ver) == (caps.hash, caps.ver):
            caps.failed, caps.features = previous.failed, previous.features
        session.state["caps"] = caps
        self._consider(session)
        return None

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

    def stop(self):
        """Forget the queries in flight (the extension unloads)."""
        self._stopped = True
        busy, self._busy = self._busy, {}
        self._queries = {}
        for d in busy.values():
            d.cancel()


class CapsService:
    """The service "caps": verified features by ver, or of a session's current caps."""

    def __init__(self, host, cache):
        self._host = host
        self._cache = cache

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


caps = EntityCapabilities()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
