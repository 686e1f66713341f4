"""
The router's destination for a component's domain, for XEP-0114 external components and
in-process components alike, and its entry in the parent host's disco#items (XEP-0030).

Theory of operation
-------------------
A component domain is routed for as long as the component is configured (external) or its
extension is installed (in-process): the router knows the route, not the connection. A
L{ComponentRoute} hands every stanza for its domain -- the domain itself and every JID in it
-- to its link, the object serving the domain right now: the component's XEP-0114 stream, or
an extension's handler. While no link is attached (an external component that is not
connected) a stanza is answered with <service-unavailable type='wait'/> from the component's
domain, as Prosody does (mod_component, "Component unavailable"): the domain exists and is
ours, it is only not served at the moment, so remote-server-not-found (a domain that cannot
be resolved, RFC 6120 §8.3.3.15) would be wrong, and 'wait' tells the sender a retry may
succeed. Errors and results are never answered (RFC 6120 §8.3.1). Keeping the route while
the component is away also keeps its domain local: without it a stanza would be handed to
federation, which would look for another server in DNS for a name only we serve.

While a link is attached, the domain is an item of the disco#items of its parent host: the
nearest virtual host the domain is a subdomain of (gateway.example.org -> example.org), if
there is one.
"""
import inspect

from twisted.internet import defer
from zope.interface import implementer

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IDiscoProvider
from jabberapp.jid import JID
from jabberapp.logging import logger

__all__ = ["ComponentItem", "ComponentRoute", "HandlerLink", "parent_host"]

log = logger(__name__)


def parent_host(domain, hosts):
    """The host of C{hosts} (domain -> host) nearest above C{domain}, or None."""
    labels = domain.split(".")
    for i in range(1, len(labels)):
        host = hosts.get(".".join(labels[i:]))
        if host is not None:
            return host
    return None


@implementer(IDiscoProvider)
class ComponentItem:
    """Lists one component's domain in the disco#items of its parent host's JID."""

    def __init__(self, host_jid, jid, name=None):
        self.host_jid = host_jid
        self.jid = jid
        self.name = name

    def info(self, requester, target, node):
        """Nothing: the component answers disco#info about itself."""
        return None

    def items(self, requester, target, node):
        """The component's item for the host JID without a node; None for everything else."""
        if node is None and target == self.host_jid:
            return [(self.jid, None, self.name)]
        return None


class ComponentRoute:
    """
    The router's destination for one component domain; see the module docstring.

    C{parent} is the VirtualHost whose disco#items list the component while it is attached
    (None: listed nowhere).
    """

    def __init__(self, domain, router, parent=None, name=None):
        self.domain = domain
        self.jid = JID.parse(domain)
        self.router = router
        self.parent = parent
        self.link = None  # has send(stanza): the stream or handler serving the domain now
        self._item = ComponentItem(parent.jid, self.jid, name) if parent is not None else None

    def attach(self, link):
        """Serve the domain with C{link} from now on; ValueError when one is attached."""
        if self.link is not None:
            raise ValueError(f"component {self.domain!r} is already connected")
        self.link = link
        if self._item is not None:
            self.parent.disco_providers.append(self._item)

    def detach(self, link):
        """Stop serving the domain with C{link} (nothing happens if it is not the link)."""
        if self.link is not link:
            return
        self.link = None
        if self._item is not None and self._item in self.parent.disco_providers:
            self.parent.disco_providers.remove(self._item)

    def dispatch(self, stanza, origin=None):
        """Hand C{stanza} to the link, or answer it while there is none."""
        link = self.link
        if link is not None:
            link.send(stanza)
            return
        if st.is_error_or_result(stanza) or stanza.get("from") is None:
            log.debug("component {domain} unavailable: dropped a {tag} error/result",
                      domain=self.domain, tag=stanza.tag)
            return
        error = StanzaError("service-unavailable", "Component unavailable", type="wait")
        self.router.route(st.error_reply(stanza, error, by=self.domain))


class HandlerLink:
    """
    An in-process component's handler as a link: C{handler(stanza)} is called for every
    stanza to the domain, and may return a Deferred or be a coroutine function. Whatever it
    raises is logged with its traceback and answered <internal-server-error/>, without
    details (errors and results are not answered).
    """

    def __init__(self, domain, handler, router):
        self.domain = domain
        self.handler = handler
        self.router = router

    def send(self, stanza):
        """Deliver C{stanza} to the handler."""
        try:
            result = self.handler(stanza)
            if inspect.iscoroutine(result):
                result = defer.Deferred.fromCoroutine(result)
        except Exception:
            self._failed(stanza)  # the Failure of the exception being handled
            return
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: self._failed(stanza, failure))

    def _failed(self, stanza, failure=None):
        log.failure("component {domain} failed on a {tag} with id {id}", failure,
                    domain=self.domain, tag=stanza.tag, id=stanza.get("id"))
        if not st.is_error_or_result(stanza) and stanza.get("from") is not None:
            error = StanzaError("internal-server-error")
            self.router.route(st.error_reply(stanza, error, by=self.domain))
