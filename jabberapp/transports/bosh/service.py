"""
The BOSH sessions of one server (XEP-0124 §7, §14; XEP-0206), sans-I/O: each request's body
goes to the session its 'sid' names, or creates one.

The 'sid' is the only key to a session: 128 bits from the secrets module, never derived from
anything a client can see, and compared as a dict key. Which address a request comes from
does not matter (a phone changes networks); an unknown 'sid' is item-not-found, whatever the
request. A session created over HTTPS takes requests over HTTPS only (§15 of XEP-0124's
security considerations): one over plain HTTP is refused without touching the session.
With C{see_other_uri} set, every session creation request is answered see-other-uri with
that <uri/> (§17.2) and nothing else happens.
"""
import secrets

from jabberapp.logging import logger
from jabberapp.transports.bosh.body import BadBody, parse_body, peek_sid, render_body
from jabberapp.transports.bosh.session import BOSHSession

__all__ = ["BOSHService"]

log = logger(__name__)


class BOSHService:
    """
    The sessions of one endpoint. C{open_stream(transport)} makes a session's stream (a
    FramedClientStream of the c2s listener); C{max_body} is the largest body taken (the c2s
    stanza limit); C{see_other_uri}, when not empty, redirects every client there.
    """

    def __init__(self, open_stream, clock, limits, max_body, see_other_uri=""):
        self.open_stream = open_stream
        self.clock = clock
        self.limits = limits
        self.max_body = max_body
        self.see_other_uri = see_other_uri
        self.sessions = {}          # sid -> BOSHSession

    def request(self, data, channel, secure=False, address="?"):
        """One POSTed body (bytes), answered on C{channel} (channel.respond(code, data)),
        now or later; C{channel.session} is set to the session that holds it, which the
        HTTP side tells of a lost connection (session.lost(channel))."""
        if len(data) > self.max_body:
            self._too_large(data, channel)
            return
        try:
            body = parse_body(data, self.max_body)
        except BadBody:
            channel.respond(400, render_body({"type": "terminate",
                                              "condition": "bad-request"}))
            return
        sid = body.get("sid")
        if sid is None:
            self._create(body, channel, secure, address)
            return
        session = self.sessions.get(sid)
        if session is None:
            channel.respond(200, _terminal("item-not-found"))
            return
        if session.secure and not secure:
            channel.respond(403, b"")
            return
        channel.session = session      # a lost connection is reported to it
        session.handle(body, channel)

    def _too_large(self, data, channel):
        """A body over the limit (§11): the session it names ends with policy-violation;
        without one it is HTTP 413."""
        session = self.sessions.get(peek_sid(data))
        if session is None:
            channel.respond(413, b"")
            return
        session.terminate("policy-violation", channel)

    def _create(self, body, channel, secure, address):
        try:
            rid = body.integer("rid")
            for name in ("wait", "hold", "ack"):
                body.integer(name)
        except BadBody:
            rid = None
        if rid is None or body.get("type") is not None:
            channel.respond(400, _terminal("bad-request"))
            return
        if self.see_other_uri:
            uri = _escape_text(self.see_other_uri)
            channel.respond(200, render_body({"type": "terminate",
                                              "condition": "see-other-uri"},
                                             b"<uri>" + uri.encode("utf-8") + b"</uri>"))
            return
        sid = secrets.token_urlsafe(16)
        session = BOSHSession(sid, body, self.limits, self.clock, self.open_stream,
                              self._ended, secure=secure, peer_address=address)
        self.sessions[sid] = session
        channel.session = session
        log.debug("BOSH session created")
        try:
            session.start(channel)
        except Exception:
            log.failure("BOSH session creation failed")
            session.fail(channel)

    def _ended(self, session):
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    def shutdown(self):
        """Every session ends with system-shutdown (the server stops)."""
        for session in list(self.sessions.values()):
            session.terminate("system-shutdown")


def _terminal(condition):
    return render_body({"type": "terminate", "condition": condition})


def _escape_text(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
