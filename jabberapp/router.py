"""
The router: a stanza's 'to' domain decides where it goes.

Theory of operation
-------------------
Domains are looked up in one dict: each local virtual host and each connected component
registers its domain; anything else is remote and goes to the remote-domain handler (s2s,
when federation is enabled). Sessions only call route(); the router never knows sockets. A
stanza that has nowhere to go is bounced to its sender with remote-server-not-found, which
itself is never bounced (errors are not answered: no loops).
"""
from jabberapp.logging import logger
from zope.interface import implementer

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IRouter
from jabberapp.jid import InvalidJID, JID

log = logger(__name__)


@implementer(IRouter)
class Router:
    """Domain -> destination. A destination has dispatch(stanza, origin)."""

    def __init__(self):
        self._domains = {}
        self.remote = None  # set when federation is configured: has dispatch(stanza, origin)

    def add_domain(self, domain, destination):
        if domain in self._domains:
            raise ValueError(f"domain {domain!r} is already routed")
        self._domains[domain] = destination

    def remove_domain(self, domain):
        self._domains.pop(domain, None)

    def is_local(self, domain):
        return domain in self._domains

    def destination(self, domain):
        return self._domains.get(domain)

    def route(self, stanza, origin=None):
        """Deliver C{stanza} by its 'to' domain (a stanza without 'to' is dropped: the
        sessions resolve the addressee before routing)."""
        to = stanza.get("to")
        if to is None:
            log.warn("dropping a {tag} without 'to'", tag=stanza.tag)
            return
        try:
            domain = JID.parse(to).domain
        except InvalidJID:
            self.bounce(stanza, "jid-malformed")
            return
        destination = self._domains.get(domain)
        if destination is None:
            destination = self.remote
        if destination is None:
            self.bounce(stanza, "remote-server-not-found")
            return
        destination.dispatch(stanza, origin)

    def bounce(self, stanza, condition, text=None):
        """Send the error reply for C{stanza} back to its sender (never for errors/results)."""
        if st.is_error_or_result(stanza) or stanza.get("from") is None:
            return
        answer = st.error_reply(stanza, StanzaError(condition, text))
        try:
            sender_domain = JID.parse(answer.get("to")).domain
        except InvalidJID:
            return
        destination = self._domains.get(sender_domain) or self.remote
        if destination is not None:
            destination.dispatch(answer, None)
