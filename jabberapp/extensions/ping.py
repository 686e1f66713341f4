"""
XEP-0199: XMPP Ping -- answering pings to the server, and pinging bound clients.

<iq type='get' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq> gets an empty result.

Every ``interval`` seconds the server pings each bound c2s session (XEP-0199 §4.2):
<iq type='get' from='example.org' to='user@example.org/res'><ping xmlns='urn:xmpp:ping'/>
</iq>. Any answer -- a result, or an error such as <service-unavailable/> or
<feature-not-implemented/> from a client without ping support -- proves the client is
there. No answer within ``timeout`` seconds closes the session with a <connection-timeout/>
stream error -- unless XEP-0198 stream management allows it to resume: then the connection is
taken for dead and dropped (``Session.drop``), as stream management's own ack timeout does,
and the session waits for its resumption. A session is not pinged again while its previous
ping is outstanding.
"""
import secrets

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.config import Option, int_range
from jabberapp.errors import StanzaError, StreamError
from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_CLIENT, NS_PING

DAY = 86400


@implementer(IPlugin, IExtension)
class Ping:
    """Answers pings to the host JID and drops clients that stop answering ours."""

    name = "ping"
    specs = (Spec("XEP-0199", "2.0.1", "XMPP Ping", "including server pings that drop dead connections"),)
    depends = ("disco",)    # XEP-0199 §5: support MUST be advertised through disco
    options = (
        Option("interval", int_range(0, DAY), default=300,
               doc="Seconds between the server's pings to each connected client; "
                   "0 disables server-initiated pings."),
        Option("timeout", int_range(1, DAY), default=60,
               doc="Seconds a client has to answer a server ping before its session is "
                   "closed with a connection-timeout stream error."),
    )

    def install(self, host):
        """Own pings to the host JID and start the keepalive loop when enabled."""
        host.add_feature(NS_PING)
        host.iq_handler("get", NS_PING, "ping", lambda iq: None, to="host")
        interval = host.config["interval"]
        if interval:
            KeepAlive(host, interval, host.config["timeout"]).start()


class KeepAlive:
    """The server-initiated pings of one host; stopped when the extension unloads."""

    def __init__(self, host, interval, timeout):
        self.host = host
        self.interval = interval
        self.timeout = timeout
        self.outstanding = {}   # session -> Deferred of its unanswered ping
        self._loop = LoopingCall(self.ping_all)
        self._loop.clock = host.clock

    def start(self):
        """Ping every C{interval} seconds, the first time one interval from now."""
        self._loop.start(self.interval, now=False)
        self.host.on_unload(self.stop)

    def stop(self):
        """Stop the loop and forget the pings still in flight."""
        if self._loop.running:
            self._loop.stop()
        outstanding, self.outstanding = self.outstanding, {}
        for d in outstanding.values():
            d.cancel()

    def ping_all(self):
        """Ping each bound session that has no ping outstanding and is attached to a
        connection (a detached one waits for its resumption: XEP-0198 times it out)."""
        for session in list(self.host.sessions):
            if session not in self.outstanding and not _detached(session):
                try:
                    self.ping(session)
                except Exception:
                    # One bad session must not stop the loop for everyone else.
                    self.host.log.failure("pinging {jid} failed", jid=session.jid)

    def ping(self, session):
        """Send one ping to C{session}; close it if no answer comes in time."""
        iq = element(NS_CLIENT, "iq", {"type": "get", "id": f"ping-{secrets.token_hex(8)}",
                                       "from": self.host.domain, "to": str(session.jid)})
        iq.append(element(NS_PING, "ping"))
        d = self.host.request(iq, timeout=self.timeout)
        if not d.called:    # an error reply may already have come back (no such session)
            self.outstanding[session] = d
        d.addCallbacks(lambda _: self._answered(session, d),
                       lambda failure: self._failed(session, d, failure))

    def _answered(self, session, d):
        if self.outstanding.get(session) is d:
            del self.outstanding[session]

    def _failed(self, session, d, failure):
        self._answered(session, d)
        if failure.check(StanzaError):
            return None     # the client answered, with an error: it is alive
        if failure.check(defer.CancelledError):
            return None     # the extension is unloading
        if failure.check(defer.TimeoutError):
            if _detached(session):
                return None     # its connection dropped meanwhile: resumption decides
            if self.host.sessions.get(session.jid) is session:
                if _resumable(session):
                    self.host.log.info("no ping answer from {jid}: dropping its connection",
                                       jid=session.jid)
                    session.drop()      # it hibernates until resumed or timed out
                    return None
                self.host.log.info("no ping answer from {jid}: closing", jid=session.jid)
                session.close(StreamError("connection-timeout"))
            return None
        self.host.log.failure("ping to {jid} failed", failure, jid=session.jid)
        return None


ping = Ping()   # re-exported by jabberapp/plugins/jabberapp_builtin.py


def _resumable(session):
    """Whether stream management lets C{session} resume (its state under "sm", read
    duck-typed: ping does not depend on the extension)."""
    state = getattr(session, "state", None) or {}
    return bool(getattr(state.get("sm"), "resume", False)) and hasattr(session, "drop")


def _detached(session):
    """Whether C{session} is kept without a connection (waiting for a resumption)."""
    return getattr(session, "stream", True) is None
