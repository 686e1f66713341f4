"""
XEP-0114: Jabber Component Protocol -- the server side of jabber:component:accept streams.

Theory of operation
-------------------
An external component connects to the component listener and names the domain it wants to
serve in its stream header; the domain must have a [component:DOMAIN] section (else
<host-unknown/>). The server answers with its own header carrying a fresh stream id, and the
component proves it knows the domain's secret with <handshake>hex(SHA-1(id + secret))
</handshake>, compared in constant time; a wrong value is <not-authorized/>. An empty
<handshake/> accepts it. A second connection for a component that is already connected is
refused with <conflict/> and the connected one is kept, as Prosody does by default
("kick_new"): replacing the old one would let anyone holding the secret take a working
component down silently, and a dead old connection is noticed by TCP soon enough. The
conflict is only revealed after a correct handshake.

Once accepted, the stream is the link of the domain's L{ComponentRoute}: the router hands it
every stanza for the domain and its JIDs. Every stanza the component sends must come 'from'
its domain -- exactly that domain, with any local part or resource, never a subdomain --
or the stream is closed with <invalid-from/>; its 'to' is routed by the router like any
other. The stream is detached from the route as soon as it starts closing, so a stanza is
never written into a closing stream: from then on the route answers for the component.

Stanzas are parsed into jabber:client, the canonical namespace (the parser's canonical_from),
and written back in jabber:component:accept by the serializer (DESIGN.md §1); that includes
<handshake/>, which is why it is matched and built in jabber:client here.
"""
import hashlib
import hmac

from twisted.internet.protocol import ServerFactory
from zope.interface import implementer

from jabberapp import stanza as st
from jabberapp.component.route import ComponentRoute, parent_host
from jabberapp.errors import StreamError
from jabberapp.interfaces import ISession
from jabberapp.jid import InvalidJID, JID
from jabberapp.logging import logger
from jabberapp.stream.xmlstream import XMLStreamProtocol, addressed_domain
from jabberapp.xml import StreamParser, element
from jabberapp.xml.namedict import TRUNK_STREAM_NAMES
from jabberapp.xml.ns import NS_CLIENT, NS_COMPONENT

__all__ = ["ComponentFactory", "ComponentStream", "handshake_digest"]

log = logger(__name__)

HANDSHAKE = f"{{{NS_CLIENT}}}handshake"


def handshake_digest(stream_id, secret):
    """The XEP-0114 handshake value: lower-case hex SHA-1 of the stream id then the secret."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


@implementer(ISession)
class ComponentStream(XMLStreamProtocol):
    """One external component's connection; an ISession (for its domain) once accepted."""

    stream_ns = NS_COMPONENT
    priority = 0          # ISession attributes that only mean something for clients
    available = False
    presence = None

    def __init__(self, factory):
        super().__init__(max_stanza_size=factory.max_stanza_size)
        self.parser = StreamParser(max_stanza_size=factory.max_stanza_size,
                                   canonical_from=NS_COMPONENT, max_names=TRUNK_STREAM_NAMES)
        self.factory = factory
        self.route = None          # the ComponentRoute named in the stream header
        self.jid = None            # the component's domain JID once accepted
        self.state = {}
        self.stream_id = None
        self.peer_address = "?"
        self._timeout = None

    # -- connection ------------------------------------------------------------------------

    def connectionMade(self):
        self.peer_address = getattr(self.transport.getPeer(), "host", "?")
        self._timeout = self.factory.clock.callLater(self.factory.handshake_timeout,
                                                     self._timed_out)

    def _timed_out(self):
        self._timeout = None
        if self.jid is None:
            self.close(StreamError("connection-timeout"))

    def connectionLost(self, reason=None):
        self._detach()
        super().connectionLost(reason)
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def close(self, error=None):
        """Leave the route first: nothing may be written into a closing stream."""
        self._detach()
        super().close(error)

    def _detach(self):
        if self.jid is not None and self.route is not None and self.route.link is self:
            self.route.detach(self)
            log.info("component {domain} disconnected", domain=self.route.domain)

    # -- stream header and handshake ------------------------------------------------------

    def default_header(self):
        return {"from": self.route.domain if self.route is not None else None,
                "id": self.stream_id or self.new_stream_id()}

    def stream_opened(self, event):
        if event.ns != NS_COMPONENT:
            raise StreamError("invalid-namespace")
        domain = addressed_domain(event.attrs.get("to"))
        route = self.factory.routes.get(domain)
        if route is None:
            log.info("component stream for unknown domain from {address}",
                     address=self.peer_address)
            raise StreamError("host-unknown")
        self.route = route
        # XEP-0114 §3: no 'version', so no stream features; the handshake comes next.
        self.send_header({"from": domain, "id": self.new_stream_id()})

    def element_received(self, el):
        if el.tag == HANDSHAKE:
            return self._handshake(el)
        if self.jid is None:
            raise StreamError("not-authorized")
        if el.tag in st.STANZA_TAGS:
            return self._stanza_received(el)
        raise StreamError("unsupported-stanza-type")

    def _handshake(self, el):
        if self.jid is not None:
            raise StreamError("policy-violation", "Already authenticated")
        domain = self.route.domain
        received = (el.text or "").strip().lower().encode("utf-8")
        expected = handshake_digest(self.stream_id, self.factory.secret(domain))
        if len(el) or not hmac.compare_digest(received, expected.encode("ascii")):
            log.info("component {domain} failed the handshake from {address}",
                     domain=domain, address=self.peer_address)
            raise StreamError("not-authorized")
        if self.route.link is not None:
            log.warn("component {domain} is already connected: refusing a second connection "
                     "from {address}", domain=domain, address=self.peer_address)
            raise StreamError("conflict", "Component already connected")
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        self.send(element(NS_CLIENT, "handshake"))
        self.jid = self.route.jid
        self.route.attach(self)
        log.info("component {domain} connected from {address}", domain=domain,
                 address=self.peer_address)

    # -- stanzas from the component -------------------------------------------------------

    def _stanza_received(self, el):
        router = self.route.router
        sender = el.get("from")
        if sender is None:
            # COMPAT: XEP-0114 components must set 'from'; Prosody stamps the component's
            # domain when they do not, and some components rely on it.
            el.set("from", self.route.domain)
        else:
            try:
                claimed = JID.parse(sender)
            except InvalidJID:
                raise StreamError("invalid-from") from None
            if claimed.domain != self.route.domain:
                raise StreamError("invalid-from")
            el.set("from", str(claimed))
        error = _check_stanza(el)
        if error is not None:
            router.bounce(el, error)
            return None
        to = el.get("to")
        if to is None:
            router.bounce(el, "bad-request", "A component must address every stanza")
            return None
        try:
            el.set("to", str(JID.parse(to)))
        except InvalidJID:
            router.bounce(el, "jid-malformed")
            return None
        router.route(el, self)
        return None


class ComponentFactory(ServerFactory):
    """
    The component listener's shared state: one L{ComponentRoute} per configured component,
    registered with the router for as long as the factory lives (until L{shutdown}).

    C{components} are the configured components (with 'domain', 'secret' and 'name');
    C{hosts} maps domain -> VirtualHost, to find each component's parent host for disco.
    """

    noisy = False  # no log line per listener start/stop

    def __init__(self, router, hosts, components, clock, handshake_timeout=60.0,
                 max_stanza_size=262144):
        self.router = router
        self.clock = clock
        self.handshake_timeout = handshake_timeout
        self.max_stanza_size = max_stanza_size
        self.routes = {}
        self._secrets = {}
        for component in components:
            route = ComponentRoute(component.domain, router,
                                   parent_host(component.domain, hosts),
                                   component.name or None)
            router.add_domain(component.domain, route)
            self.routes[component.domain] = route
            self._secrets[component.domain] = component.secret

    def secret(self, domain):
        """The configured secret of the component C{domain}."""
        return self._secrets[domain]

    def buildProtocol(self, addr):
        return ComponentStream(self)

    def shutdown(self):
        """Close every connected component with <system-shutdown/> and drop the routes."""
        for domain, route in self.routes.items():
            if route.link is not None:
                route.link.close(StreamError("system-shutdown"))
            if self.router.destination(domain) is route:
                self.router.remove_domain(domain)
        self.routes = {}


def _check_stanza(el):
    """The stanza error condition for a malformed stanza, or None (as on c2s)."""
    type_ = el.get("type")
    if el.tag == st.IQ:
        if type_ not in st.IQ_TYPES or not el.get("id"):
            return "bad-request"
        if type_ in ("get", "set") and sum(1 for c in el if isinstance(c.tag, str)) != 1:
            return "bad-request"
    elif el.tag == st.PRESENCE:
        if type_ is not None and type_ not in st.PRESENCE_TYPES:
            return "bad-request"
    return None
