"""
XEP-0352: Client State Indication (urn:xmpp:csi:0) -- a sleeping phone is woken only for
what matters.

Theory of operation
-------------------
- **The nonzas.** <csi/> is offered in the stream features once the stream is
  authenticated; a bound session sends <inactive/> and <active/> (ignored before binding).
  The state lives in ``session.state["csi"]``; a session starts active.
- **Holding.** While a session is inactive, an outbound stage (priority above stream
  management's, so what is held is not numbered yet) takes every stanza that is not
  important out of the pipeline and keeps a copy, in order. Some replace what they make
  stale: a presence update replaces the held one from the same full JID, a message that is
  only a chat state replaces the held one of the same conversation (and a carbon of one,
  the one of the same conversation and direction). The rest is kept as it comes.
- **Important** (flushes first, then goes out itself): every IQ; presence subscription
  requests and answers, and MUC presence about the user itself (status 110); messages of
  type error, or with a body, a subject, an encrypted payload, a room invitation or call
  setup (a groupchat message with a body included, so a mention in a room always wakes
  the client), archive query results (asked for); a carbon of an important message. Presence updates, chat states, receipts,
  markers and headlines (PEP notifications) are not (as Prosody's mod_csi_simple).
- **Flushing** releases the held stanzas, oldest first, through the stages after this one
  (``session.release(stanza, after=stage)``): stream management numbers and queues them
  like any other. <active/> flushes, and so does a held queue past ``queue_size``.
- **Nothing is lost.** A session whose connection drops (stream management keeps it for a
  resumption) flushes at once into stream management's queue, which sends it on
  resumption; while detached it keeps its state and holds as before. A session that ends
  flushes before stream management's end-of-session handling, so the unacknowledged
  messages among them go back through delivery with the rest (another resource, offline
  storage); without stream management they meet the fate of any stanza to a session that
  is gone. Unloading the extension flushes every session.
"""
import copy

from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StreamError
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT

NS_CSI = "urn:xmpp:csi:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

BODY = f"{{{NS_CLIENT}}}body"
SUBJECT = f"{{{NS_CLIENT}}}subject"
THREAD = f"{{{NS_CLIENT}}}thread"
MUC_USER_X = f"{{{NS_MUC_USER}}}x"
CARBONS = (f"{{{NS_CARBONS}}}received", f"{{{NS_CARBONS}}}sent")
FORWARDED_MESSAGE = f"{{{NS_FORWARD}}}forwarded/{st.MESSAGE}"

#: Namespaces whose presence makes a message important: what it says cannot be seen
#: (encrypted), or it asks the user to act (invitations, calls).
IMPORTANT_NAMESPACES = frozenset({
    "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "urn:xmpp:openpgp:0",
    "jabber:x:encrypted", "urn:xmpp:eme:0", "jabber:x:conference",
    "urn:xmpp:jingle-message:0", "urn:xmpp:jingle-message:1",
    "urn:xmpp:mam:2",       # archive results: the client asked for them
})
#: Children that may travel with a chat state without making it more than one.
CHATSTATE_COMPANIONS = frozenset({"urn:xmpp:hints", "urn:xmpp:sid:0", "urn:xmpp:delay",
                                  NS_CHATSTATES})

KEY = "csi"
#: Above stream management (-1000): held stanzas are numbered when they are released.
STAGE_PRIORITY = -500
#: Before stream management's SESSION_DETACHED and SESSION_CLOSED hooks (priority 0).
HOOK_PRIORITY = 10


def _namespace(tag):
    return tag[1:].partition("}")[0] if tag[:1] == "{" else ""


def _children(stanza):
    return [child for child in stanza if isinstance(child.tag, str)]


def _carbon_inner(message, session):
    """The forwarded message of a carbon from the session's own account, and its kind."""
    if message.get("from") != str(session.jid.bare()):
        return None, None
    for tag in CARBONS:
        wrapper = message.find(tag)
        if wrapper is not None:
            return wrapper.find(FORWARDED_MESSAGE), tag
    return None, None


def _message_important(message):
    if message.get("type") == "error":
        return True
    for child in _children(message):
        tag = child.tag
        if tag == BODY or tag == SUBJECT:
            return True
        if tag == MUC_USER_X and child.find(f"{{{NS_MUC_USER}}}invite") is not None:
            return True
        if _namespace(tag) in IMPORTANT_NAMESPACES:
            return True
    return False


def important(stanza, session):
    """True when C{stanza} must reach the inactive C{session} now (see the docstring)."""
    tag = stanza.tag
    if tag == st.IQ:
        return True
    if tag == st.PRESENCE:
        if stanza.get("type") not in (None, "unavailable", "error"):
            return True     # subscriptions: the user is asked something
        x = stanza.find(MUC_USER_X)
        return x is not None and x.find(f"{{{NS_MUC_USER}}}status[@code='110']") is not None
    if tag != st.MESSAGE:
        return True
    if stanza.get("type") == "headline":
        return False
    inner, _ = _carbon_inner(stanza, session)
    if inner is not None:
        return _message_important(inner)
    return _message_important(stanza)


def _chatstate_only(message):
    children = _children(message)
    return (any(_namespace(c.tag) == NS_CHATSTATES for c in children)
            and all(c.tag == THREAD or _namespace(c.tag) in CHATSTATE_COMPANIONS
                    for c in children))


def collapse_key(stanza, session):
    """What C{stanza} makes stale when held: a key shared with the held stanza it replaces,
    or None when it replaces nothing."""
    tag = stanza.tag
    if tag == st.PRESENCE:
        if stanza.get("type") in (None, "unavailable"):
            return ("presence", stanza.get("from"))
        return None
    if tag != st.MESSAGE:
        return None
    inner, kind = _carbon_inner(stanza, session)
    if inner is not None:
        if not _chatstate_only(inner):
            return None
        peer = inner.get("to") if kind == CARBONS[1] else inner.get("from")
        return ("chatstate", kind, _conversation(inner, peer))
    if not _chatstate_only(stanza):
        return None
    return ("chatstate", None, _conversation(stanza, stanza.get("from")))


def _conversation(message, peer):
    # A room's chat states are per occupant; a contact's per account.
    peer = peer or ""
    if message.get("type") == "groupchat":
        return peer
    return peer.partition("/")[0]


class CSIState:
    """One session's client state and what is held for it."""

    __slots__ = ("inactive", "held", "serial")

    def __init__(self):
        self.inactive = False
        self.held = {}      # key -> stanza copy, oldest first (dicts keep insertion order)
        self.serial = 0     # keys for stanzas that replace nothing


@implementer(IPlugin, IExtension)
class ClientStateIndication:
    """The CSI extension (see the module docstring)."""

    name = "csi"
    depends = ()
    specs = (Spec("XEP-0352", "1.0.0", "Client State Indication",
                  "presence updates and chat states held and collapsed while inactive; "
                  "anything important flushes"),)
    options = (
        Option("queue_size", int_range(1, 100000), default=256,
               doc="Stanzas held at most for an inactive client; one more sends them all "
                   "(it is woken, as for an important stanza)."),
    )

    def install(self, host):
        """Register the stream feature, the outbound stage and the session hooks."""
        manager = CSIManager(host, host.config["queue_size"])
        host.add_stream_feature(manager)
        host.add_bind2_feature(NS_CSI, manager.handle)   # XEP-0386: <inactive/> inline
        host.add_outbound_stage(manager.stage, priority=STAGE_PRIORITY)
        host.hook(dispatch.SESSION_DETACHED, manager.detached, priority=HOOK_PRIORITY)
        host.hook(dispatch.SESSION_CLOSED, manager.closed, priority=HOOK_PRIORITY)
        host.on_unload(manager.unload)


@implementer(IStreamFeature)
class CSIManager:
    """CSI on one host: the nonzas, the stage, flushing."""

    namespace = NS_CSI

    def __init__(self, host, queue_size):
        self.host = host
        self.queue_size = queue_size
        self.stage = self._stage    # one bound method: the pipeline finds it by identity

    # -- IStreamFeature ---------------------------------------------------------------------

    def advertise(self, stream):
        """<csi/> once authenticated (XEP-0352 §2), with the other post-auth features."""
        return element(NS_CSI, "csi") if stream.username is not None else None

    def handle(self, stream, el):
        """<active/> and <inactive/> from a bound session."""
        name = el.tag.rpartition("}")[2]
        if name not in ("active", "inactive"):
            raise StreamError("unsupported-stanza-type")
        session = stream.session
        if session is None:
            return      # before binding there is nothing to hold
        state = session.state.get(KEY)
        if name == "inactive":
            if state is None:
                state = session.state[KEY] = CSIState()
            state.inactive = True
        elif name == "active":
            if state is not None:
                state.inactive = False
                self.flush(session)

    # -- the stage ----------------------------------------------------------------------------

    def _stage(self, session, stanza):
        state = session.state.get(KEY)
        if state is None or not state.inactive:
            return stanza
        if important(stanza, session):
            self.flush(session)
            return stanza
        key = collapse_key(stanza, session)
        if key is None:
            state.serial += 1
            key = state.serial
        else:
            state.held.pop(key, None)       # the stale one goes; the newest takes the end
        # A copy: the same element may go to other sessions and be altered on its way.
        state.held[key] = copy.deepcopy(stanza)
        if len(state.held) > self.queue_size:
            self.flush(session)
        return None

    def flush(self, session):
        """Send what is held for C{session}, oldest first, through the later stages."""
        state = session.state.get(KEY)
        if state is None or not state.held:
            return
        # Taken first: a later stage may end the session, which flushes again.
        held, state.held = state.held, {}
        for stanza in held.values():
            session.release(stanza, after=self.stage)

    # -- the session's life ---------------------------------------------------------------------

    def detached(self, session):
        """SESSION_DETACHED: what is held goes to stream management's queue now."""
        self.flush(session)

    def closed(self, session):
        """SESSION_CLOSED: what is held meets the end of the session with the rest."""
        self.flush(session)
        session.state.pop(KEY, None)

    def unload(self):
        """The extension is going: every session gets what is held for it."""
        for session in list(self.host.sessions):
            self.flush(session)
            session.state.pop(KEY, None)


client_state_indication = ClientStateIndication()   # re-exported by jabberapp_builtin.py
