"""
XEP-0012: Last Activity -- the server's uptime, and when a user was last online.

- <iq type='get' to='example.org'><query xmlns='jabber:iq:last'/></iq>: the seconds since
  the extension was installed, i.e. since the server started (§5), with no text.
- To a user's bare JID (§3): for a user with an available resource, seconds='0' and no text
  (§3: "at least one connected or available resource"; a resource that is connected but
  has sent no presence does not count, so the answer never tells more than presence does).
  Otherwise the seconds since the user's last available resource went offline -- by
  unavailable presence, logoff, or a dropped connection -- with the <status/> text of that
  last unavailable presence as character data (none for a dropped connection). The time
  and status are written to the key-value store "last" (key "last": {"when": POSIX
  seconds, "status": text}) when it happens, so they survive restarts.
- Who may ask (§3, §4): the user's own resources, and those entitled to the user's
  presence, which the roster extension decides: C{host.service("roster")
  .can_see_presence(username, requester_bare_jid)}, a bool or a Deferred of one. Without
  a roster service only the user may ask. Everyone else gets <forbidden/> (§3 "MUST return
  a forbidden error"; ejabberd's subscription-required is not what the XEP says).
- A user that does not exist: <service-unavailable/> (RFC 6121 §8.5.1), to everyone. An
  existing user with nothing recorded yet (never logged in since this extension was
  enabled): <item-not-found/> with a text; the XEP has no case for it.
- To a user's full JID (§4): delivered to that resource, which answers with its idle time;
  but the server "MUST NOT deliver the IQ-get" from a requester not entitled to the user's
  presence and answers <forbidden/> itself, so no resource's existence leaks either.
"""
from twisted.internet import defer
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from jabberapp import dispatch, stanza as st
from jabberapp.dispatch import HANDLED, parse_jid_attr
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IExtension
from jabberapp.jid import InvalidJID, JID
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT

NS_LAST = "jabber:iq:last"
QUERY = f"{{{NS_LAST}}}query"
STATUS = f"{{{NS_CLIENT}}}status"
STORE = "last"
KEY = "last"


@implementer(IPlugin, IExtension)
class LastActivity:
    """Answers last activity queries and records when users go offline."""

    name = "last"
    specs = (Spec("XEP-0012", "2.0", "Last Activity",
                  "server uptime; an offline user's logoff time and status"),)
    depends = ("disco",)    # XEP-0012 §6: support MUST be advertised through disco
    options = ()

    def install(self, host):
        """Declare jabber:iq:last, own its gets to the host and to users, and watch
        presence for users going offline."""
        host.add_feature(NS_LAST)
        activity = _Activity(host)
        host.iq_handler("get", NS_LAST, "query", activity.uptime, to="host")
        host.iq_handler("get", NS_LAST, "query", activity.user, to="user")
        # Early, so that no broadcast hook returning HANDLED can hide a logoff from us.
        host.hook(dispatch.PRESENCE_BROADCAST, activity.presence, priority=100)
        # Late, after blocking and privacy filters have had their say.
        host.hook(dispatch.IQ_FULL, activity.to_resource, priority=-100)
        host.hook(dispatch.USER_DELETED, activity.forget)


class _Activity:
    """The last activity state and handlers of one host."""

    def __init__(self, host):
        self.host = host
        self.started = host.clock.seconds()
        self.store = host.storage.keyvalue(STORE)
        self._writing = {}    # username -> record being written, so reads never go stale
        self._cleared = []    # full-JID queries allowed after a wait, being re-routed

    # -- recording -----------------------------------------------------------------------

    def presence(self, presence, session):
        """PRESENCE_BROADCAST: record the time and status when the user's last available
        resource becomes unavailable."""
        if presence.get("type") != "unavailable":
            return None
        bare = session.jid.bare()
        if self.host.sessions.available(bare):
            return None
        record = {"when": self.host.clock.seconds(), "status": presence.findtext(STATUS) or ""}
        username = bare.local
        self._writing[username] = record
        d = self.store.set(self.host.domain, username, KEY, record)

        def written(_):
            if self._writing.get(username) is record:
                del self._writing[username]

        d.addCallback(written)
        d.addErrback(lambda failure: self.host.log.failure(
            "recording the last activity of {user} failed", failure, user=str(bare)))
        return None

    def forget(self, bare_jid):
        """USER_DELETED: drop what is being written for the account."""
        self._writing.pop(JID.parse(str(bare_jid)).local, None)

    # -- queries -------------------------------------------------------------------------

    def uptime(self, iq):
        """A query to the host JID: the seconds since the server started."""
        return element(NS_LAST, "query", seconds=str(_seconds(self.host.clock.seconds()
                                                                - self.started)))

    async def user(self, iq):
        """A query to a user's bare JID; see the module docstring."""
        requester, target = parse_jid_attr(iq, "from"), parse_jid_attr(iq, "to")
        username = target.local
        if requester is None or requester.bare() != target:
            if not await self.host.storage.accounts.exists(self.host.domain, username):
                raise StanzaError("service-unavailable")
            if requester is None or not await defer.maybeDeferred(self.may_see, target,
                                                                  requester):
                raise StanzaError("forbidden", "Only contacts who see the user's presence "
                                               "may ask")
        if self.host.sessions.available(target):
            return element(NS_LAST, "query", seconds="0")
        record = self._writing.get(username)
        if record is None:
            record = await self.store.get(self.host.domain, username, KEY)
        if record is None:
            raise StanzaError("item-not-found", "No last activity recorded for this user")
        seconds = _seconds(self.host.clock.seconds() - record["when"])
        return element(NS_LAST, "query", seconds=str(seconds), text=record["status"] or None)

    def may_see(self, target, requester):
        """Whether C{requester} may learn C{target}'s (a bare JID) presence: a bool or a
        Deferred of one."""
        if requester.bare() == target:
            return True
        if not self.host.has_service("roster"):
            return False
        return self.host.service("roster").can_see_presence(target.local, requester.bare())

    # -- queries to full JIDs -------------------------------------------------------------

    def to_resource(self, iq, origin):
        """IQ_FULL: hold back a last activity get from someone not entitled to the user's
        presence (XEP-0012 §4) and answer it with <forbidden/>."""
        if iq.get("type") != "get" or not _asks_last(iq):
            return None
        for index, cleared in enumerate(self._cleared):
            if cleared is iq:
                del self._cleared[index]
                return None
        try:
            requester = JID.parse(iq.get("from") or "")
            target = JID.parse(iq.get("to")).bare()
        except InvalidJID:
            return None     # the core's rules apply to what it cannot address
        outcome = []
        d = defer.maybeDeferred(self.may_see, target, requester)
        d.addBoth(outcome.append)
        if outcome:
            return None if self._verdict(iq, outcome[0]) else HANDLED

        def decided(_):
            if self._verdict(iq, outcome[0]):
                self._cleared.append(iq)
                self.host.send(iq)

        d.addCallback(decided)
        d.addErrback(lambda failure: self.host.log.failure(
            "last activity check for id {id} failed", failure, id=iq.get("id")))
        return HANDLED

    def _verdict(self, iq, outcome):
        """True when C{outcome} (of may_see) allows delivery; otherwise answer the IQ."""
        if isinstance(outcome, Failure):
            self.host.log.failure("last activity check for id {id} failed", outcome,
                                  id=iq.get("id"))
            error = StanzaError("internal-server-error")
        elif outcome:
            return True
        else:
            error = StanzaError("forbidden", "Only contacts who see the user's presence "
                                             "may ask")
        self.host.send(st.error_reply(iq, error))
        return False


def _asks_last(iq):
    children = [c for c in iq if isinstance(c.tag, str)]
    return len(children) == 1 and children[0].tag == QUERY


def _seconds(delta):
    """Whole seconds, never negative (a clock set back must not give '-3')."""
    return max(0, int(delta))


last_activity = LastActivity()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
