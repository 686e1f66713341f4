"""
XEP-0160: Best Practices for Handling Offline Messages, with XEP-0203 delay stamps.

RFC 6121 §8.5.2.2.1 and §8.5.3.2.1 leave a server two choices for a chat or normal message
that no resource can take now: store it offline, or answer <service-unavailable/>. The
dispatcher fires MESSAGE_OFFLINE for exactly those messages (to a bare JID with no available
resource of non-negative priority, or of type chat to a full JID that is gone), and this
extension stores them.

What is stored (XEP-0160 §3, XEP-0334 §4):

- Only types ``normal`` (or no type) and ``chat``. ``headline`` is never stored (the core
  drops it before this hook), ``groupchat`` to a user and ``error`` are never stored either;
  this extension ignores them if it is ever given one, and the core's rules apply.
- A message carrying the XEP-0334 ``<no-store xmlns='urn:xmpp:hints'/>`` hint is not stored:
  the hook leaves it to the core, which answers <service-unavailable/> -- RFC 6121
  §8.5.2.2.1 requires that error for a message that is not stored, and the sender learns
  that its message was not delivered. ``<no-permanent-store/>`` does not prevent offline
  storage, which is temporary by definition (XEP-0334 §4).
- A chat message whose only content is a XEP-0085 chat state notification (no body,
  subject or any payload but the chat state, thread, hints and stanza ids) is not stored
  (XEP-0160 §3) and is dropped silently: "bob stopped typing" is worthless later, and an
  error for it would make the sender's client flag a delivery failure for something that
  was never a message. A ``<store/>`` hint overrides this (XEP-0334 §4).
- Everything else is stored, with or without a body (receipts, encrypted payloads, ...).

Accepting a message: the hook answers HANDLED at once, but the message counts as accepted
only once it is in storage: a client stanza's XEP-0198 acknowledgement waits for the write
(jabberapp.stream.intake.handled_when), and for the error bounce when it was refused. The recipient's account must exist
(``host.storage.accounts.exists``) and hold fewer than ``max_messages`` stored messages;
otherwise, or when storage fails, the sender gets an error and nothing is stored:

- no such account: <service-unavailable/> with no text, exactly what the core answers
  without offline storage (RFC 6121 §8.5.1);
- quota full: <service-unavailable/> (type cancel) with the text "offline storage is full":
  XEP-0160 §2 names that condition for a full offline queue. <resource-constraint/> (type
  wait) would invite an automatic retry of something only the recipient can fix by
  logging in;
- storage failure: <internal-server-error/> with no text (RFC 6120 §8.3.3.5: the server
  could not process the stanza; the cause is logged, not told).

Each stored message gets ``<delay xmlns='urn:xmpp:delay' from='DOMAIN'
stamp='YYYY-MM-DDThh:mm:ss.sssZ'>Offline storage</delay>`` (XEP-0160 §2 recommends XEP-0203),
stamped with host.clock when the message arrived; a message that already carries a delay
from this domain keeps it. Items live in ``host.storage.archive("offline")``: the item is
the serialized stanza, ``when`` its arrival time, ``with_jid`` the sender's bare JID. SQLite
commits each item before its Deferred fires, so a stored message survives a restart.

Delivery: when a session of the user sends available presence with a non-negative priority
-- its initial presence (SESSION_AVAILABLE), or a later one raising a negative priority to
a non-negative one -- every stored message is sent to that one session, oldest first, with
'to' set to the session's full JID, through ``host.send`` (so inbound filters such as
blocking still apply). Then exactly the delivered ids are deleted. Storing and delivering
are serialised per user (jabberapp.peruser), so a message stored while a delivery runs is
stored after it and is kept for the next one; and two resources becoming available together
cannot both receive the same message. If the session is gone, unavailable or of negative
priority by the time the messages are read, nothing is sent or deleted. A message that
arrives live while the stored ones are being read may reach the client before them.

``max_age`` (seconds, 0 = forever) expires old messages: they are deleted, not delivered,
and they do not count against the quota once it is reached.

When an account is deleted (USER_DELETED), IStorage.delete_user has removed its messages;
the hook deletes, in the user's queue, any that a store already in flight wrote after it.

Not supported: XEP-0013 flexible offline message retrieval (deprecated; clients use plain
delivery at login), and an expiry sweep over users who never log in again.
"""
import copy
from datetime import datetime, timezone

from lxml import etree
from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import dispatch
from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IExtension
from jabberapp.jid import InvalidJID, JID
from jabberapp.peruser import PerUserQueue
from jabberapp.shutdown import WRITES_SERVICE
from jabberapp.specs import Spec
from jabberapp.stream.intake import handled_when
from jabberapp.xml import element, parse_element, serialize
from jabberapp.xml.ns import NS_CLIENT

NS_DELAY = "urn:xmpp:delay"
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_SID = "urn:xmpp:sid:0"
NS_MSGOFFLINE = "msgoffline"   # XEP-0160 §4: the disco feature

DELAY = f"{{{NS_DELAY}}}delay"
NO_STORE = f"{{{NS_HINTS}}}no-store"
STORE = f"{{{NS_HINTS}}}store"
THREAD = f"{{{NS_CLIENT}}}thread"

STORE_NAME = "offline"
QUOTA_TEXT = "The recipient's offline storage is full"
YEARS_10 = 10 * 365 * 86400

# Children that are not content of their own: a message made only of these and a chat
# state is a standalone chat state notification.
_NOT_CONTENT = frozenset({NS_CHATSTATES, NS_HINTS, NS_SID})


@implementer(IPlugin, IExtension)
class OfflineMessages:
    """Stores messages for users with no available resource and delivers them later."""

    name = "offline"
    depends = ()
    specs = (
        Spec("XEP-0160", "1.0.1", "Best Practices for Handling Offline Messages",
             "per-user quota; XEP-0013 flexible retrieval is not supported"),
        Spec("XEP-0203", "2.0", "Delayed Delivery", "stamps on offline messages"),
        Spec("XEP-0334", "1.0.0", "Message Processing Hints",
             "no-store and store, for offline storage"),
    )
    options = (
        Option("max_messages", int_range(1, 1_000_000), 500,
               "Most messages stored for one user; further messages are refused with "
               "service-unavailable and a text saying the storage is full."),
        Option("max_age", int_range(0, YEARS_10), 0,
               "Seconds a stored message is kept; older ones are deleted instead of "
               "delivered. 0 keeps them until delivered."),
    )

    def install(self, host):
        """Hook offline storage and delivery at login."""
        store = OfflineStore(host, host.config["max_messages"], host.config["max_age"])
        host.add_feature(NS_MSGOFFLINE)
        host.hook(dispatch.MESSAGE_OFFLINE, store.message_offline)
        host.hook(dispatch.SESSION_AVAILABLE, store.session_available)
        # Before the roster's broadcast hook, which may end the chain with HANDLED.
        host.hook(dispatch.PRESENCE_BROADCAST, store.presence_broadcast, priority=100)
        host.hook(dispatch.USER_DELETED, store.user_deleted)
        # A graceful shutdown waits for these before storage closes (jabberapp.shutdown).
        host.provide(WRITES_SERVICE, store.turns)


class OfflineStore:
    """The hooks of one host; see the module docstring."""

    def __init__(self, host, max_messages, max_age):
        self.host = host
        self.max_messages = max_messages
        self.max_age = max_age
        self.archive = host.storage.archive(STORE_NAME)
        self.turns = PerUserQueue()     # one user's stores and deliveries, in order

    # -- storing -----------------------------------------------------------------------

    def message_offline(self, message, origin=None):
        """MESSAGE_OFFLINE: take a chat or normal message for storage (HANDLED), or leave
        it to the core (None)."""
        if message.get("type", "normal") not in ("normal", "chat"):
            return None
        store_hint = message.find(STORE) is not None
        if message.find(NO_STORE) is not None:
            return None     # the core answers service-unavailable
        if not store_hint and _standalone_chat_state(message):
            return dispatch.HANDLED
        try:
            recipient = JID.parse(message.get("to"))
        except (InvalidJID, TypeError):
            return None
        if recipient.local is None or recipient.domain != self.host.domain:
            return None
        now = self.host.clock.seconds()
        item = serialize(self._stamped(message, now)).decode("utf-8")
        sender = _bare_or_none(message.get("from"))
        d = self.turns.run(recipient.local, self._store, recipient, item, now, sender)
        d.addCallback(self._stored, message, recipient)
        d.addErrback(self._store_failed, message, recipient)
        # A sender's XEP-0198 ack waits for the commit (or for the error bounce after it).
        handled_when(d)
        return dispatch.HANDLED

    def _stamped(self, message, now):
        """A copy of C{message} with our XEP-0203 delay added (unless it has one)."""
        stamped = copy.deepcopy(message)
        stamped.tail = None
        for delay in stamped.iterchildren(DELAY):
            if delay.get("from") == self.host.domain:
                return stamped
        stamped.append(element(NS_DELAY, "delay", {"from": self.host.domain,
                                                "stamp": timestamp(now)},
                            text="Offline storage"))
        return stamped

    @defer.inlineCallbacks
    def _store(self, recipient, item, now, sender):
        """In the user's queue: None when stored, else the error condition and text."""
        exists = yield self.host.storage.accounts.exists(self.host.domain, recipient.local)
        if not exists:
            return ("service-unavailable", None)
        count = yield self.archive.count(self.host.domain, recipient.local)
        if count >= self.max_messages and self.max_age:
            yield self._expire(recipient.local, now)
            count = yield self.archive.count(self.host.domain, recipient.local)
        if count >= self.max_messages:
            return ("service-unavailable", QUOTA_TEXT)
        yield self.archive.append(self.host.domain, recipient.local, item, now, sender)
        return None

    def _stored(self, refused, message, recipient):
        if refused is None:
            self.host.log.debug("offline message stored for {user}", user=recipient.bare())
            return
        condition, text = refused
        if text is not None:
            self.host.log.info("offline message for {user} refused: {reason}",
                               user=recipient.bare(), reason=text)
        self._bounce(message, StanzaError(condition, text))

    def _store_failed(self, failure, message, recipient):
        self.host.log.failure("storing an offline message for {user} failed", failure,
                              user=recipient.bare())
        self._bounce(message, StanzaError("internal-server-error"))

    def _bounce(self, message, error):
        if st.is_error_or_result(message) or message.get("from") is None:
            return
        self.host.send(st.error_reply(message, error))

    @defer.inlineCallbacks
    def _expire(self, username, now):
        """Delete the user's messages older than max_age."""
        rows = yield self.archive.query(self.host.domain, username,
                                        end=now - self.max_age)
        if rows:
            yield self.archive.delete(self.host.domain, username, [row[0] for row in rows])

    def user_deleted(self, bare_jid):
        """USER_DELETED: storage.delete_user already removed the user's messages; this
        removes one a store still in flight may have written just after (it queues behind
        that store, in the user's queue)."""
        if isinstance(bare_jid, str):
            bare_jid = JID.parse(bare_jid)
        user = bare_jid.local

        @defer.inlineCallbacks
        def purge():
            exists = yield self.host.storage.accounts.exists(self.host.domain, user)
            if not exists:
                yield self.archive.delete(self.host.domain, user)

        self.turns.run(user, purge).addErrback(lambda failure: self.host.log.failure(
            "dropping the offline messages of {jid} failed", failure, jid=bare_jid))

    # -- delivering --------------------------------------------------------------------

    def session_available(self, session):
        """SESSION_AVAILABLE: deliver now at non-negative priority, else when it rises."""
        if session.priority >= 0:
            session.state.pop(STORE_NAME, None)
            self.deliver(session)
        else:
            session.state[STORE_NAME] = "waiting"

    def presence_broadcast(self, presence, session):
        """PRESENCE_BROADCAST: an available session raising its priority from negative
        to non-negative gets its offline messages then (XEP-0160 §2)."""
        if session.state.get(STORE_NAME) != "waiting":
            return None
        if presence.get("type") is None and session.available and session.priority >= 0:
            del session.state[STORE_NAME]
            self.deliver(session)
        return None

    def deliver(self, session):
        """Send the user's stored messages to C{session}; a Deferred (errors are logged)."""
        user = session.jid.local
        d = self.turns.run(user, self._deliver, session)
        d.addErrback(lambda failure: self.host.log.failure(
            "delivering offline messages to {jid} failed", failure, jid=session.jid))
        return d

    @defer.inlineCallbacks
    def _deliver(self, session):
        """In the user's queue: send, then delete exactly what was sent or expired."""
        user = session.jid.local
        rows = yield self.archive.query(self.host.domain, user)
        if not rows or not self._can_receive(session):
            return 0
        # Archive ids sort as strings in insertion order: the order the messages came in.
        rows = sorted(rows, key=lambda row: row[0])
        cutoff = self.host.clock.seconds() - self.max_age if self.max_age else None
        done = []
        sent = 0
        for item_id, when, _, item in rows:
            done.append(item_id)
            if cutoff is not None and when < cutoff:
                continue
            try:
                message = parse_element(item)
            except ValueError:
                self.host.log.error("dropping unreadable offline message {id} of {jid}",
                                    id=item_id, jid=session.jid.bare())
                continue
            message.set("to", str(session.jid))
            self.host.send(message)
            sent += 1
        yield self.archive.delete(self.host.domain, user, done)
        self.host.log.debug("{count} offline messages delivered to {jid}", count=sent,
                            jid=session.jid)
        return sent

    def _can_receive(self, session):
        return (self.host.sessions.get(session.jid) is session and session.available
                and session.priority >= 0)


def timestamp(seconds):
    """XEP-0082 date-time in UTC with milliseconds: 2002-09-10T23:08:25.123Z."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _standalone_chat_state(message):
    """True when C{message} carries a chat state and nothing else of substance."""
    has_state = False
    for child in message:
        if not isinstance(child.tag, str):
            continue        # comments cannot occur; be safe anyway
        namespace = etree.QName(child).namespace
        if namespace == NS_CHATSTATES:
            has_state = True
        elif child.tag == THREAD or namespace in _NOT_CONTENT:
            continue
        else:
            return False
    return has_state


def _bare_or_none(value):
    try:
        return str(JID.parse(value).bare()) if value else None
    except InvalidJID:
        return None


offline_messages = OfflineMessages()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
