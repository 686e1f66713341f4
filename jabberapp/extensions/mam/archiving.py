"""
The archiving hooks: every message a local user sends or receives, archived once per
archive, as it passes.

Received (the recipient's archive): a low-priority hook on MESSAGE_BARE and MESSAGE_FULL,
so it runs after the filters that reject a message (blocking answers HANDLED first, and a
rejected message must not appear in the archive, XEP-0313 §5.1) and right before delivery.
It removes any <stanza-id/> claiming to be by the recipient's archive that we did not
issue (XEP-0359 §4), and lets through unchanged a message carrying one we did issue: it was
archived already and comes round again (a stream-management re-route, an offline message
delivered at login). Otherwise, when the rules and the recipient's preferences keep it,
the message gets its <stanza-id by='user@host'/> and a copy goes to the archive; the
stamped message then goes on to delivery or to offline storage, so a client that catches
up by MAM and one that takes offline delivery see the same messages under the same id.
A message to a full JID that will bounce (no such session, not a chat) is not archived.

Sent (the sender's archive): the last FILTER_OUTBOUND hook, for messages a client session
sends (not the server's on a user's behalf). A message to the user's own account is
archived once, on arrival. The copy routed to the recipient gets no stanza-id (XEP-0313
§3.5: ids are for who can query the archive).

The copy is serialized at once, the write is queued (writer.py): nothing on the message
path waits for storage. Accounts that do not exist get nothing stored (the store checks).
With default='roster' the roster is asked; when its answer is not at hand synchronously
the message is archived when it comes, without a stanza-id on the delivered copy.
"""
from __future__ import annotations

from jabberapp import stanza as st
from jabberapp.extensions.mam.rules import inspect, prefs_say
from jabberapp.extensions.mam.stanzaid import stamp
from jabberapp.jid import InvalidJID, JID
from jabberapp.storage.messages import ArchivedMessage
from jabberapp.xml import serialize

__all__ = ["Archiver"]


def _jid(value):
    try:
        return JID.parse(value) if value else None
    except InvalidJID:
        return None


class Archiver:
    """The hooks of one host; see the module docstring."""

    def __init__(self, host, writer, ids, book) -> None:
        self.host = host
        self.writer = writer
        self.ids = ids
        self.book = book

    # -- the hooks ----------------------------------------------------------------------

    def received(self, message, origin=None):
        """MESSAGE_BARE / MESSAGE_FULL: archive for the recipient, stamp the stanza-id."""
        recipient = _jid(message.get("to"))
        if recipient is None or recipient.local is None:
            return None
        archive = str(recipient.bare())
        if self.ids.check(archive, message) is not None:
            return None     # archived already: it is being delivered again
        keep, text = inspect(message)
        if not keep:
            return None
        if (recipient.resource is not None and message.get("type") != "chat"
                and self.host.sessions.get(recipient) is None):
            return None     # RFC 6121 §8.5.3.2.1: it bounces
        sender = _jid(message.get("from"))
        if sender is None:
            return None
        self._archive(recipient.local, archive, sender, message, text, stamped=True)
        return None

    def sent(self, message, origin=None):
        """FILTER_OUTBOUND (last): archive what a local client sends, for the sender."""
        if message.tag != st.MESSAGE or origin is None:
            return None
        jid = getattr(origin, "jid", None)
        if jid is None or jid.local is None or jid.domain != self.host.domain:
            return None
        recipient = _jid(message.get("to"))
        if recipient is None or recipient.bare() == jid.bare():
            return None     # to the user's own account: archived on arrival
        if recipient.local is None and recipient.domain == self.host.domain:
            return None     # to the server itself
        keep, text = inspect(message)
        if not keep:
            return None
        self._archive(jid.local, str(jid.bare()), recipient, message, text, stamped=False)
        return None

    # -- deciding and writing -----------------------------------------------------------

    def _archive(self, username, archive, other, message, text, stamped):
        decision = prefs_say(self.book.get(username), other)
        if decision is False:
            return
        if decision is None:
            answer = self._in_roster(username, other)
            if answer is False:
                return
            if answer is None:     # not at hand: archive when the roster answers
                self._later(username, archive, other, message, text)
                return
        item_id = self.ids.new(archive, message)
        if stamped:
            stamp(message, archive, item_id)
        self.writer.add(ArchivedMessage(
            self.host.domain, username, item_id, self.host.clock.seconds(),
            str(other.bare()), serialize(message).decode("utf-8"), other.resource, text))

    def _roster(self):
        return self.host.service("roster") if self.host.has_service("roster") else None

    def _in_roster(self, username, other):
        """True/False when the roster answers at once, None when it must be waited for."""
        roster = self._roster()
        if roster is None:
            return False
        answer = []
        d = roster.get_item(username, other)
        d.addCallbacks(lambda item: answer.append(item is not None),
                       lambda failure: answer.append(self._roster_failed(failure, username)))
        return answer[0] if answer else None

    def _roster_failed(self, failure, username):
        self.host.log.failure("reading the roster of {user} failed", failure, user=username)
        return False

    def _later(self, username, archive, other, message, body):
        text = serialize(message)     # the message goes on now: keep it as it is
        when = self.host.clock.seconds()
        item_id = self.ids.new(archive, message)

        def answered(item):
            if item is not None:
                self.writer.add(ArchivedMessage(
                    self.host.domain, username, item_id, when, str(other.bare()),
                    text.decode("utf-8"), other.resource, body))

        self._roster().get_item(username, other).addCallbacks(
            answered, self._roster_failed, errbackArgs=(username,))
