"""Shared set-up for the pubsub and PEP unit tests: a FakeHost with both extensions."""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.extensions.caps import SessionCaps, caps
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.pubsub.plugin import pep, pubsub_service
from jabberapp.extensions.roster.extension import roster
from jabberapp.extensions.roster.items import RosterItem
from jabberapp.jid import JID
from jabberapp.testing import FakeHost, FakeSession, parse

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DATA = "jabber:x:data"
SERVICE = "pubsub.example.org"


class PubSubTestCase(SynchronousTestCase):
    """A host with disco, roster, caps, pubsub and pep; helpers to talk to it."""

    pubsub_options = {}

    def setUp(self):
        self.clock = Clock()
        self.host = FakeHost("example.org", clock=self.clock)
        for user in ("alice", "bob", "carol"):
            self.host.add_account(user)
        self.host.install(service_discovery)
        self.host.install(roster)
        self.host.install(caps)
        self.host.install(pubsub_service, **self.pubsub_options)
        self.host.install(pep)
        self._n = 0

    def iq(self, sender, type_, payload, to=SERVICE):
        """Send an IQ from C{sender}; return the reply."""
        self._n += 1
        to_attr = f" to='{to}'" if to else ""
        self.host.receive(f"<iq type='{type_}' id='q{self._n}' from='{sender}'{to_attr}>"
                          f"{payload}</iq>")
        replies = [s for s in self.host.sent if s.get("id") == f"q{self._n}"
                   and s.tag.endswith("iq")]
        self.assertEqual(len(replies), 1, "expected exactly one reply")
        return replies[0]

    def ok(self, *args, **kwargs):
        """Like iq(), asserting a result."""
        reply = self.iq(*args, **kwargs)
        self.assertEqual(reply.get("type"), "result", _error_text(reply))
        return reply

    def error(self, *args, app=None, **kwargs):
        """Like iq(), asserting an error; returns (condition, app condition or None)."""
        reply = self.iq(*args, **kwargs)
        self.assertEqual(reply.get("type"), "error")
        error = reply.find("{jabber:client}error")
        condition = [c.tag.rpartition("}")[2] for c in error
                     if c.tag.startswith(f"{{{NS_STANZAS}}}") and not c.tag.endswith("text")]
        apps = [c.tag.rpartition("}")[2] for c in error if c.tag.startswith(f"{{{NS_ERRORS}}}")]
        return condition[0], (apps[0] if apps else None)

    def pubsub(self, inner, owner=False):
        ns = NS_OWNER if owner else NS_PUBSUB
        return f"<pubsub xmlns='{ns}'>{inner}</pubsub>"

    def create(self, node, sender="alice@example.org/r", config=None, to=SERVICE):
        configure = ""
        if config:
            configure = "<configure>" + form(config, "node_config") + "</configure>"
        return self.ok(sender, "set", self.pubsub(f"<create node='{node}'/>{configure}"),
                       to=to)

    def publish(self, node, payload="<entry xmlns='urn:test'>hi</entry>", item_id=None,
                sender="alice@example.org/r", options=None, to=SERVICE):
        item = f"<item id='{item_id}'>{payload}</item>" if item_id else f"<item>{payload}</item>"
        extra = ""
        if options:
            extra = "<publish-options>" + form(options, "publish-options") + "</publish-options>"
        return self.pubsub(f"<publish node='{node}'>{item}</publish>{extra}"), sender, to

    def do_publish(self, *args, **kwargs):
        inner, sender, to = self.publish(*args, **kwargs)
        return self.ok(sender, "set", inner, to=to)

    def events(self, jid):
        """The event notifications sent to C{jid}."""
        return [s for s in self.host.sent if s.get("to") == jid
                and s.find(f"{{{NS_EVENT}}}event") is not None]

    def bind(self, jid, features=()):
        """An available session for C{jid} whose verified caps hold C{features}."""
        session = self.host.session(jid) or FakeSession(self.host, jid)
        session.available = True
        ver = f"test-{jid}-{'|'.join(sorted(features))}"
        caps.cache.put(ver, frozenset(features))
        session.state["caps"] = SessionCaps("sha-1", "urn:test", ver)
        return session

    def befriend(self, user, contact, subscription="both", groups=()):
        """Make C{contact} a contact of C{user} with C{subscription}."""
        service = self.host.service("roster")
        items = self.successResultOf(service.get_items(user))
        items[JID.parse(contact)] = RosterItem(JID.parse(contact), groups=tuple(groups),
                                               subscription=subscription)
        self.successResultOf(service.set_items(user, list(items.values())))


def form(options, kind):
    """A submitted data form of FORM_TYPE pubsub#KIND setting C{options}."""
    fields = [f"<field var='FORM_TYPE' type='hidden'><value>"
              f"http://jabber.org/protocol/pubsub#{kind}</value></field>"]
    for name, value in options.items():
        values = value if isinstance(value, list) else [value]
        fields.append(f"<field var='pubsub#{name}'>" +
                      "".join(f"<value>{v}</value>" for v in values) + "</field>")
    return f"<x xmlns='{NS_DATA}' type='submit'>{''.join(fields)}</x>"


def _error_text(reply):
    from jabberapp.xml import serialize
    return serialize(reply).decode()


__all__ = ["PubSubTestCase", "form", "parse"]
