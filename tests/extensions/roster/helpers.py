"""A FakeHost with the roster extension, accounts and helpers to read what was sent."""
from twisted.internet.task import Clock

from jabberapp import stanza as st
from jabberapp.extensions.roster.extension import roster
from jabberapp.extensions.roster.items import NS_ROSTER
from jabberapp.extensions.roster.subscription import State
from jabberapp.jid import JID
from jabberapp.testing import FakeHost, FakeSession

DOMAIN = "example.org"
QUERY = f"{{{NS_ROSTER}}}query"
ITEM = f"{{{NS_ROSTER}}}item"


class World:
    """One host with alice, bob and carol, and the roster extension installed."""

    def __init__(self, storage=None, users=("alice", "bob", "carol"), **options):
        self.clock = Clock()
        self.host = FakeHost(DOMAIN, clock=self.clock, storage=storage)
        self.api = self.host.install(roster, **options)
        for user in users:
            if not self._result(self.host.storage.accounts.exists(DOMAIN, user)):
                self.host.add_account(user)
        self.service = self.host.virtual_host.services["roster"]

    # -- sessions ---------------------------------------------------------------------------

    def login(self, jid, roster=True, presence=True, ver=None, priority=None):
        """Bind C{jid}; request the roster and send initial presence unless told not to."""
        session = FakeSession(self.host, jid, available=False)
        if roster:
            attr = "" if ver is None else f" ver='{ver}'"
            self.host.receive(f"<iq type='get' id='login-roster' from='{jid}'>"
                              f"<query xmlns='{NS_ROSTER}'{attr}/></iq>")
        if presence:
            body = "" if priority is None else f"<priority>{priority}</priority>"
            self.host.receive(f"<presence from='{jid}'>{body}</presence>")
        session.sent.clear()
        return session

    def send(self, xml):
        """What a client sends (see FakeHost.receive)."""
        return self.host.receive(xml)

    # -- state --------------------------------------------------------------------------------

    def roster(self, user):
        """The current Roster of C{user}."""
        return self._result(self.service.store.load(user))

    def state(self, user, contact):
        """The State of C{contact} in C{user}'s roster."""
        return self.roster(user).state(JID.parse(contact))

    def set_state(self, user, contact, state):
        """Put C{contact} in C{user}'s roster in C{state} (a State or its RFC name)."""
        if isinstance(state, str):
            state = State.named(state)
        jid = JID.parse(contact)
        self._result(self.service.store.modify(user, lambda r: r.set_state(jid, state)))

    @staticmethod
    def _result(d):
        results = []
        d.addBoth(results.append)
        assert results, "the Deferred did not fire"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]


def pushes(session):
    """The <item/> elements of the roster pushes C{session} received."""
    items = []
    for stanza in session.sent:
        if stanza.tag == st.IQ and stanza.get("type") == "set":
            query = stanza.find(QUERY)
            if query is not None:
                items.extend(query.findall(ITEM))
    return items


def presences(stanzas, type_="any", sender=None, to=None):
    """The presence stanzas among C{stanzas} of C{type_} (None: available)."""
    found = []
    for stanza in stanzas:
        if stanza.tag != st.PRESENCE:
            continue
        if type_ != "any" and stanza.get("type") != type_:
            continue
        if sender is not None and stanza.get("from") != sender:
            continue
        if to is not None and stanza.get("to") != to:
            continue
        found.append(stanza)
    return found


def error_condition(stanza):
    """The defined condition of an error stanza, e.g. 'bad-request'."""
    error = stanza.find(st.ERROR)
    for child in error:
        name = child.tag.rpartition("}")[2]
        if name != "text":
            return name
    return None


def error_text(stanza):
    """The <text/> of an error stanza, or None."""
    error = stanza.find(st.ERROR)
    for child in error:
        if child.tag.endswith("}text"):
            return child.text
    return None
