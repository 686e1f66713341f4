"""
XEP-0280: Message Carbons (urn:xmpp:carbons:2) -- every device of a user sees both sides
of every conversation.

Theory of operation
-------------------
A session turns carbons on and off with an IQ set (<enable/>, <disable/>), kept in
``session.state["carbons"]``; the host advertises the namespace in disco#info.

- **Received copies.** A low-priority hook on MESSAGE_BARE and MESSAGE_FULL (after the
  filters that reject a message, and after the archive stamped its <stanza-id/>, so the
  copies carry it too) works out where the dispatcher is about to deliver the message (the
  RFC 6121 §8.5 rules of jabberapp.dispatch: the full JID, or the top-priority available
  resources of the bare JID) and sends each *other* carbons-enabled resource of the
  recipient a <received/> copy. A message that will bounce (a non-chat message to a
  resource that is not there) is copied to nobody.
- **Sent copies.** A FILTER_OUTBOUND hook (after blocking: a dropped message is copied to
  nobody) sends each other carbons-enabled resource of a sending client a <sent/> copy,
  whether the sender enabled carbons or not (§7). A message to the user's own account is
  copied once, on arrival.
- **Which messages (§6, eligibility).** Type chat (a MUC private message included, except
  one to the bare JID: rooms address occupants by full JID); type normal with a body or
  another IM payload (chat states, markers, receipts, corrections, retractions, encrypted
  payloads, invitations, call setup -- the kinds the archive keeps, jabberapp.extensions.
  mam.rules, so the archive and the devices agree); type error when it answers a message
  of the user that was copied (the ids of the latest copied messages are remembered, a
  bounded table). Never groupchat or headline, never a message with XEP-0334 <no-copy/> or
  carbons' <private/>, never a carbon itself.
- **<private/>.** Honoured on both sides; the receiving server removes it before delivery
  (§8).
- **Trust (§11).** Copies are made here and handed to sessions directly, never routed, so
  a <received/> or <sent/> arriving through delivery was written by someone else: unless it
  comes from the recipient's own bare JID it is dropped silently, and no copy is made of
  it.
- **Once.** A message delivered again (from offline storage, or re-routed by stream
  management when a session ended unacknowledged), recognised by the <delay/> this host
  stamped on it, is not copied again.
- Copies go through ``session.send``: a hibernated (stream management) session queues
  them, and client state indication sees them.
"""
import copy
from collections import OrderedDict

from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IExtension
from jabberapp.jid import InvalidJID, JID
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

RECEIVED = f"{{{NS_CARBONS}}}received"
SENT = f"{{{NS_CARBONS}}}sent"
PRIVATE = f"{{{NS_CARBONS}}}private"
FORWARDED = f"{{{NS_FORWARD}}}forwarded"
NO_COPY = f"{{{NS_HINTS}}}no-copy"
DELAY = "{urn:xmpp:delay}delay"
BODY = f"{{{NS_CLIENT}}}body"
SUBJECT = f"{{{NS_CLIENT}}}subject"
MUC_USER_X = f"{{{NS_MUC_USER}}}x"
MUC_INVITE = f"{{{NS_MUC_USER}}}invite"

#: Namespaces of the IM payloads that make a message without a body worth copying: the
#: archive's list (XEP-0313 and XEP-0280 agree on what a conversation is) plus the
#: ephemeral ones every device wants to see (chat states, receipts, corrections).
IM_NAMESPACES = frozenset({
    "http://jabber.org/protocol/chatstates",  # XEP-0085
    "urn:xmpp:receipts",                      # XEP-0184
    "urn:xmpp:chat-markers:0",                # XEP-0333
    "urn:xmpp:message-correct:0",             # XEP-0308
    "urn:xmpp:message-retract:1",             # XEP-0424
    "urn:xmpp:message-retract:0",
    "eu.siacs.conversations.axolotl",         # OMEMO (legacy)
    "urn:xmpp:omemo:2",
    "urn:xmpp:openpgp:0",
    "jabber:x:encrypted",
    "urn:xmpp:eme:0",
    "jabber:x:conference",                    # XEP-0249 invitations
    "urn:xmpp:jingle-message:0",              # XEP-0353
    "urn:xmpp:jingle-message:1",
})

KEY = "carbons"             # in session.state: True while enabled
#: After the filters (blocking) and after the archive (priority -100) stamped its
#: <stanza-id/>, right before the dispatcher delivers.
RECEIVED_PRIORITY = -200
#: After blocking's filter; anywhere before delivery.
SENT_PRIORITY = -900
#: Ids of copied messages remembered for their error replies (§6), per host.
TRACKED = 4096


def is_carbon(message):
    """True when C{message} carries a carbons <received/> or <sent/> wrapper."""
    return message.find(RECEIVED) is not None or message.find(SENT) is not None


def forwarded_message(message):
    """The message inside a carbon's <received|sent><forwarded/>, or None."""
    for tag in (RECEIVED, SENT):
        wrapper = message.find(tag)
        if wrapper is not None:
            return wrapper.find(f"{FORWARDED}/{st.MESSAGE}")
    return None


def has_im_payload(message):
    """A body, a subject, a room invitation or a child in one of IM_NAMESPACES."""
    for child in message:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag == BODY or tag == SUBJECT:
            return True
        if tag == MUC_USER_X:
            if child.find(MUC_INVITE) is not None:
                return True
            continue
        if tag[1:].partition("}")[0] in IM_NAMESPACES:
            return True
    return False


def eligible(message):
    """
    XEP-0280 §6 without its error rule (which needs the tracked ids): whether a copy of
    C{message} may go to the user's other resources, by type, content and hints.
    """
    if message.find(PRIVATE) is not None or message.find(NO_COPY) is not None:
        return False
    if is_carbon(message):
        return False
    type_ = message.get("type", "normal")
    if type_ == "chat":
        return True
    if type_ == "normal":
        return has_im_payload(message)
    return False        # groupchat, headline; error: see Carbons.received


def _jid(value):
    try:
        return JID.parse(value) if value else None
    except InvalidJID:
        return None


def wrap(kind, message, user, to):
    """A carbon: <message from=C{user} to=C{to}><C{kind}><forwarded>message…</…></…>."""
    outer = element(NS_CLIENT, "message", from_=str(user), to=str(to),
                    type_=message.get("type", "normal"))
    wrapper = element(NS_CARBONS, kind)
    forwarded = element(NS_FORWARD, "forwarded")
    forwarded.append(copy.deepcopy(message))
    wrapper.append(forwarded)
    outer.append(wrapper)
    return outer


@implementer(IPlugin, IExtension)
class MessageCarbons:
    """The carbons extension (see the module docstring)."""

    name = "carbons"
    depends = ("disco",)        # XEP-0280 §3: support is advertised in disco#info
    specs = (Spec("XEP-0280", "1.0.1", "Message Carbons",
                  "received and sent copies, <private/> and <no-copy/>, copies of errors "
                  "to copied messages"),)
    options = ()

    def install(self, host):
        """Register the IQs, the disco feature and the delivery hooks."""
        carbons = Carbons(host)
        host.add_feature(NS_CARBONS)
        host.iq_handler("set", NS_CARBONS, "enable", carbons.enable, to="any")
        host.iq_handler("set", NS_CARBONS, "disable", carbons.disable, to="any")
        host.add_bind2_feature(NS_CARBONS, carbons.enable_inline)   # XEP-0386 inline
        host.hook(dispatch.MESSAGE_BARE, carbons.received, priority=RECEIVED_PRIORITY)
        host.hook(dispatch.MESSAGE_FULL, carbons.received, priority=RECEIVED_PRIORITY)
        host.hook(dispatch.FILTER_OUTBOUND, carbons.sent, priority=SENT_PRIORITY)
        host.hook(dispatch.SESSION_CLOSED, carbons.session_closed)
        host.on_unload(carbons.unload)


class Carbons:
    """Carbons on one host: the switch per session, the copies."""

    def __init__(self, host):
        self.host = host
        self.tracked = OrderedDict()    # (user bare, message id) -> peer bare, newest last
        # bare JID -> its sessions with carbons on: a message of a user with none costs one
        # dict lookup (most users, and every message of a plain benchmark).
        self.users = {}

    # -- the switch -------------------------------------------------------------------------

    def _session_of(self, iq):
        sender = _jid(iq.get("from"))
        to = _jid(iq.get("to"))
        session = None if sender is None else self.host.sessions.get(sender)
        # To the user's own account or to the server; never on someone else's behalf.
        if session is None or (to is not None and to.local is not None
                               and to.bare() != sender.bare()):
            raise StanzaError("forbidden")
        return session

    def _switch_on(self, session):
        session.state[KEY] = True
        self.users.setdefault(session.jid.bare(), set()).add(session)

    def _switch_off(self, session):
        session.state.pop(KEY, None)
        bare = session.jid.bare()
        sessions = self.users.get(bare)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.users[bare]

    def enable(self, iq):
        """<enable/>: copies to this session from now on (again: a plain result, §10.1)."""
        self._switch_on(self._session_of(iq))

    def enable_inline(self, stream, el):
        """<enable/> inline in a Bind2 request: copies to the new session from the start."""
        if el.tag == f"{{{NS_CARBONS}}}enable":
            self._switch_on(stream.session)

    def disable(self, iq):
        """<disable/>: no more copies to this session."""
        self._switch_off(self._session_of(iq))

    def session_closed(self, session, *args):
        """SESSION_CLOSED: a session that ended gets no more copies."""
        if session.state.get(KEY):
            self._switch_off(session)

    def unload(self):
        """The extension is going: no session keeps the switch."""
        for session in self.host.sessions:
            session.state.pop(KEY, None)
        self.users.clear()

    # -- copies -------------------------------------------------------------------------------

    def _enabled(self, bare, skip):
        return [s for s in self.host.sessions.resources(bare)
                if s.state.get(KEY) and s not in skip]

    def received(self, message, origin=None):
        """MESSAGE_BARE / MESSAGE_FULL: drop forged carbons; copy to the recipient's other
        carbons-enabled resources; remove <private/>."""
        to = _jid(message.get("to"))
        if to is None or to.local is None:
            return None
        bare = to.bare()
        if is_carbon(message):
            if message.get("from") != str(bare):
                self.host.log.info("dropped a carbon for {to} not from its account",
                                   to=bare)
                return dispatch.HANDLED     # §11: only the user's own server makes them
            return None
        private = message.find(PRIVATE)
        if private is not None:
            message.remove(private)         # §8: not copied, and not shown to the recipient
            return None
        if bare not in self.users:
            return None     # no resource of the recipient has carbons on
        if self._delivered_again(message):
            return None     # its copies went out when it first arrived
        type_ = message.get("type", "normal")
        if type_ == "error":
            if not self._answers_copied(message, bare):
                return None
        elif not eligible(message):
            return None
        elif to.resource is None and message.find(MUC_USER_X) is not None:
            return None     # a MUC-PM to a bare JID: not from a room we can tell apart
        recipients = self._delivered_to(message, to, type_)
        if recipients is None:
            return None     # it bounces
        sender = _jid(message.get("from"))
        if sender is not None and sender.bare() == bare:
            # From the user's own resource: that one has it already.
            recipients += tuple(s for s in self.host.sessions.resources(bare)
                                if s.jid == sender)
        for session in self._enabled(bare, recipients):
            session.send(wrap("received", message, bare, session.jid))
        return None

    def _delivered_again(self, message):
        # Offline storage and stream management's end-of-session re-route stamp what they
        # deliver again with a <delay/> from this host.
        for delay in message.iterfind(DELAY):
            if delay.get("from") == self.host.domain:
                return True
        return False

    def _delivered_to(self, message, to, type_):
        """The sessions the dispatcher's default rules give C{message} (RFC 6121 §8.5),
        or None when it bounces."""
        sessions = self.host.sessions
        if to.resource is not None:
            session = sessions.get(to)
            if session is not None:
                return (session,)
            if type_ != "chat":
                return None
        return tuple(dispatch.bare_recipients(sessions, to.bare(), type_))

    def sent(self, message, origin=None):
        """FILTER_OUTBOUND: copy what a client sends to its other carbons-enabled
        resources."""
        if message.tag != st.MESSAGE or origin is None:
            return None
        jid = getattr(origin, "jid", None)
        if jid is None or jid.local is None or jid.domain != self.host.domain:
            return None
        if getattr(origin, "state", None) is None:
            return None     # not a client session
        if jid.bare() not in self.users:
            return None     # no resource of the sender has carbons on: nothing to copy
        if not eligible(message):
            return None
        to = _jid(message.get("to"))
        bare = jid.bare()
        if to is None or to.bare() == bare or (to.local is None and to.domain == jid.domain):
            return None     # to the user's own account (copied on arrival) or the server
        self._track(bare, message, to)
        for session in self._enabled(bare, (origin,)):
            session.send(wrap("sent", message, bare, session.jid))
        return None

    # -- errors to copied messages (§6) ----------------------------------------------------

    def _track(self, bare, message, to):
        message_id = message.get("id")
        if not message_id:
            return
        key = (bare, message_id)
        self.tracked.pop(key, None)
        self.tracked[key] = to.bare()
        if len(self.tracked) > TRACKED:
            self.tracked.popitem(last=False)

    def _answers_copied(self, message, bare):
        sender = _jid(message.get("from"))
        message_id = message.get("id")
        if sender is None or not message_id:
            return False
        return self.tracked.get((bare, message_id)) == sender.bare()


message_carbons = MessageCarbons()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
