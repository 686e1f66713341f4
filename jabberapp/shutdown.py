"""
The steps of a graceful shutdown that concern sessions and pending writes (DESIGN §7: "a
graceful shutdown flushes"); jabberapp.server.ServerService.stopService runs them in order:

1. stop accepting (the listeners; done by the service);
2. L{end_sessions}: every bound c2s session of every host -- TCP, WebSocket, BOSH, and
   the ones stream management keeps detached for a resumption -- is first taken out of its
   host's registry, so that nothing is routed to a session that is going, then closed with
   <system-shutdown/> and ended at once, while the extensions are still installed: stream
   management re-routes what its client did not acknowledge to the bare JID, which now has
   no resource, so the messages go to offline storage;
3. L{writes_done}: wait, bounded, until the writes extensions started are over (offline
   storage's exists -> count -> append sequence of each message, registered by the
   extension as the host service L{WRITES_SERVICE}: anything with a C{len()} of the work
   still pending);
4. unload the extensions (MAM's batched writer queues what it holds on unload; storage
   runs it before it closes), then close storage.
"""
from twisted.internet import defer

from jabberapp.errors import StreamError
from jabberapp.logging import logger

log = logger(__name__)

# Host services named so hold work that must finish before storage closes: anything whose
# len() is the number of pending operations (offline storage's per-user queue).
WRITES_SERVICE = "offline.writes"
POLL_INTERVAL = 0.05    # seconds between two looks at the pending writes


def end_sessions(hosts, condition="system-shutdown"):
    """End every session bound on C{hosts} (VirtualHosts) with a stream error of
    C{condition}; the number ended."""
    sessions = []
    for host in hosts:
        for session in list(host.sessions):
            sessions.append((host, session))
    # Unbound first, all of them: a message re-routed from one ending session must not go
    # to another resource that is ending too (it would be lost in a closed stream).
    for host, session in sessions:
        host.sessions.unbind(session)
    for host, session in sessions:
        try:
            session.close(StreamError(condition))
            # close() ends an attached session only once its connection is gone; end it now,
            # while every extension is installed to hear SESSION_CLOSED.
            session.end()
        except Exception:
            log.failure("ending the session {jid} failed", jid=session.jid)
    return len(sessions)


def pending_writes(hosts):
    """The writes still pending on C{hosts} (see L{WRITES_SERVICE})."""
    return sum(len(host.services[WRITES_SERVICE]) for host in hosts
               if WRITES_SERVICE in host.services)


def writes_done(hosts, clock, timeout):
    """A Deferred that fires (with True) once no write is pending on C{hosts}, or (with
    False, after a log line) when C{timeout} seconds have passed first. Never fails."""
    d = defer.Deferred()
    deadline = clock.seconds() + timeout

    def look():
        left = pending_writes(hosts)
        if not left:
            d.callback(True)
        elif clock.seconds() >= deadline:
            log.warn("shutdown: {count} users' writes still pending after {timeout} s; "
                     "closing storage anyway", count=left, timeout=timeout)
            d.callback(False)
        else:
            clock.callLater(POLL_INTERVAL, look)

    look()
    return d
