"""Bound sessions, their registry and the router."""
from zope.interface import Attribute, Interface

__all__ = ["ISession", "IClientSession", "ISessionRegistry", "IRouter"]


class ISession(Interface):
    """An origin and destination of stanzas: a c2s resource, an s2s link, a component."""

    jid = Attribute("The JID this session speaks for (full JID for a bound c2s session).")
    priority = Attribute("Presence priority of a c2s session (int), 0 by default.")
    available = Attribute("True once the session has sent available broadcast presence.")
    presence = Attribute("The session's last available broadcast presence element, or None.")
    state = Attribute("Dict of per-extension state for this session, keyed by extension name.")

    def send(stanza):
        """Queue C{stanza} (an lxml element) for writing to the peer."""

    def close(error=None):
        """Close the stream, first sending C{error} (a jabberapp.errors.StreamError)."""


class IClientSession(ISession):
    """
    A bound c2s resource (jabberapp.stream.session.Session), apart from the connection it
    arrived on.

    Negotiation on a transport produces it; from then on the transport's stream is
    *attached* to it. Stanzas to the session pass the host's outbound pipeline
    (IHost.add_outbound_stage) and then go to the attached stream, if any. When the
    connection drops without a close, the session is *detached* and SESSION_DETACHED fires:
    a hook returning HANDLED keeps it bound (stream management, waiting for a resumption
    that attaches a new stream); otherwise the session ends (unavailable presence,
    unbound, SESSION_CLOSED). close() always ends it.
    """

    host = Attribute("The VirtualHost the session is bound on.")
    stream = Attribute("The attached IClientStream, or None while detached.")
    secure = Attribute("True when the stream it was last attached to is encrypted.")
    ended = Attribute("True once the session is over (unbound, SESSION_CLOSED fired).")

    def send(stanza):
        """
        Send C{stanza} to the client: through the outbound pipeline, then to the attached
        stream. Nothing is written while detached (a pipeline stage may have queued it);
        once the session has ended, nothing passes the pipeline either.
        """

    def release(stanza, after):
        """
        Let a stanza that the pipeline stage C{after} held continue: through the stages
        after it, then to the stream.
        """

    def write(element):
        """
        Write C{element} to the attached stream, past the pipeline (a stage's own
        nonzas such as stream management's <r/>, or queued stanzas re-sent on
        resumption); False when detached.
        """

    def attach(stream):
        """
        Make C{stream} (an IClientStream) the session's stream: what is sent from now on
        goes there. A stream attached before is detached first and closed when it is still
        open; the JID, presence, state and registry entry stay.
        """

    def detach():
        """
        Forget the attached stream (returned, or None) without ending the session: the
        session stays bound, stanzas sent to it pass the pipeline and are written nowhere.
        """

    handled = Attribute("Stanzas of its client handled so far (XEP-0198's h): all it received "
                        "up to the oldest one whose write to storage is not over; never falls.")

    def handled_when(number, d):
        """Stanza C{number} is handled only once C{d} (its write) fires; C{d} is returned.
        SESSION_HANDLED fires when C{handled} moves on (see jabberapp.stream.intake)."""

    def drop():
        """Take the connection for dead: detach as if it dropped (SESSION_DETACHED may keep
        the session for a resumption, else it ends), close it writing nothing more."""


class ISessionRegistry(Interface):
    """
    The bound c2s sessions of one host, looked up by bare JID and resource: the only way the
    dispatcher, the presence rules and extensions find a local recipient. Whatever it
    returns is an ISession whose send() delivers; a cluster registry may return proxies for
    sessions held by other nodes (with their jid, priority and available), so callers never
    learn where a session lives.
    """

    def bind(session):
        """Register a bound session; returns the session it replaced (or None)."""

    def unbind(session):
        """Remove a session if it is the one registered for its full JID."""

    def get(full_jid):
        """The session bound to C{full_jid}, or None."""

    def resources(bare_jid):
        """A list of the sessions bound for C{bare_jid} (possibly empty)."""

    def available(bare_jid):
        """
        A list of the sessions of C{bare_jid} that have sent available presence (a new
        list the caller may change).
        """

    def __iter__():
        """Every bound session this process holds (a cluster registry does not walk other
        nodes': what iterates -- keepalive pings, shutdown -- acts on local sessions)."""

    def __len__():
        """The number of bound sessions this process holds."""


class IRouter(Interface):
    """Delivers a stanza to a local host, a component or a remote domain."""

    def route(stanza, origin=None):
        """Deliver C{stanza} by its 'to' domain; C{origin} is the sending ISession, if
        any. Local domains go to their VirtualHost, whose dispatcher delivers to sessions
        only through the host's ISessionRegistry and ISession.send. Never raises for an
        unknown destination: the sender gets the stanza error."""
