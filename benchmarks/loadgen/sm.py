"""
XEP-0198 stream management for the load generator, as the phone clients do it
(Conversations): ``<enable resume='true'/>`` right after binding, an ``<r/>`` after each
batch of stanzas sent, every ``<r/>`` of the server answered at once with ``<a h=…/>``, and
after a dropped connection a new one that authenticates and sends ``<resume/>``.

Once stream management is on, a session's bytes are split into whole top-level elements
(a regular expression per element; a stanza counts only once its end has arrived, so h never
counts a stanza that a cut connection delivered half of). Complete stanzas (message,
presence, iq) count towards h; ``<r/>`` and ``<a/>`` are handled here; every other element
goes, once per received chunk, to ``session.on_elements(session, [(kind, bytes), ...])``.

Counts are kept unbounded (h on the wire is modulo 2^32): ``handled`` (stanzas received),
``sent`` (stanzas sent since enable) and ``acked`` (the server's last h for ours).
"""
from __future__ import annotations

import asyncio
import re
import time

from benchmarks.loadgen.client import (LoginError, _iq_end, _own_presence, authenticate,
                                       bind, new_session)

NS_SM = b"urn:xmpp:sm:3"
MOD = 2 ** 32
REQUEST = b"<r xmlns='urn:xmpp:sm:3'/>"
STANZAS = frozenset((b"message", b"presence", b"iq"))

# A whole top-level element of the kinds that matter here; the name is group 1. Nested
# elements of the same names do not occur in this traffic (no carbons, no forwards).
_TOP = re.compile(rb"<(message|presence|iq|r|a|enabled|resumed|failed|stream:error|close)"
                  rb"\b[^>]*?(?:/>|>.*?</\1>)", re.S)
_H = re.compile(rb"""\sh=["'](\d+)["']""")
_SM_ID = re.compile(rb"""\sid=["']([^"']+)["']""")
_ENABLED = re.compile(rb"<(enabled|failed)\b[^>]*?(?:/>|>.*?</failed>)", re.S)
_RESUMED = re.compile(rb"<(resumed|failed)\b[^>]*?(?:/>|>.*?</failed>)", re.S)


class SMState:
    """One client's stream management counters (see the module docstring)."""

    __slots__ = ("id", "handled", "sent", "acked", "acks", "requests", "tail", "other",
                 "resumes", "unacked_at_resume")

    def __init__(self, sm_id):
        self.id = sm_id            # the resumption id (None: no resumption)
        self.handled = 0           # stanzas received (our h)
        self.sent = 0              # stanzas sent since <enable/>
        self.acked = 0             # the server's latest h for our stanzas
        self.acks = 0              # <a/> received
        self.requests = 0          # <r/> of the server answered
        self.tail = b""            # an unfinished element
        self.other = []            # elements not for a handler (before one is installed)
        self.resumes = 0
        self.unacked_at_resume = 0  # stanzas of ours the server had not handled at <resume/>


def on_data(session, data):
    """The session's on_data once stream management is on (see the module docstring)."""
    sm = session.sm
    if sm.tail:
        data = sm.tail + data
    pos = 0
    elements = []
    handled = sm.handled
    request = False
    search = _TOP.search
    while True:
        match = search(data, pos)
        if match is None:
            break
        pos = match.end()
        kind = match.group(1)
        if kind in STANZAS:
            handled += 1
            elements.append((kind, match.group(0)))
        elif kind == b"r":
            request = True
        elif kind == b"a":
            h = _H.search(match.group(0))
            if h is not None:
                # Unbounded: the server's h is modulo 2^32, ours is not.
                sm.acked = sm.sent - ((sm.sent - int(h.group(1))) % MOD)
                sm.acks += 1
        else:
            elements.append((kind, match.group(0)))
    sm.tail = data[pos:]
    sm.handled = handled
    if request and not session.lost:
        sm.requests += 1
        session.write(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % (handled % MOD))
    if elements:
        if session.on_elements is not None:
            session.on_elements(session, elements)
        else:
            sm.other.extend(elements)


def send(session, stanzas, request=True):
    """Send C{stanzas} (a list of serialised stanzas), counted, with an <r/> after them."""
    session.sm.sent += len(stanzas)
    if request:
        session.write_many(stanzas + [REQUEST])
    else:
        session.write_many(stanzas)


def request_ack(session):
    """Ask the server for its h (the answer updates session.sm.acked)."""
    if not session.lost:
        session.write(REQUEST)


def final_ack(session):
    """What a client sends before it closes: its h, so the server keeps nothing to re-route."""
    if not session.lost and session.sm is not None:
        session.write(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % (session.sm.handled % MOD))


def _start(session, sm):
    session.sm = sm
    session.on_data = on_data
    rest = bytes(session.buf)
    session.buf.clear()
    if rest:
        on_data(session, rest)


async def _next_element(session, predicate, timeout):
    """The first element received for which C{predicate(kind, element)} holds; the others
    meanwhile are kept in session.sm.other."""
    future = asyncio.get_running_loop().create_future()

    def collect(s, elements):
        for kind, element in elements:
            if not future.done() and predicate(kind, element):
                future.set_result(element)
            else:
                s.sm.other.append((kind, element))

    previous, session.on_elements = session.on_elements, collect
    previous_lost, session.on_lost = session.on_lost, (
        lambda s: future.done() or future.set_exception(LoginError("connection lost")))
    try:
        for i, (kind, element) in enumerate(session.sm.other):
            if predicate(kind, element):
                del session.sm.other[i]
                return element
        return await asyncio.wait_for(future, timeout)
    finally:
        session.on_elements = previous
        session.on_lost = previous_lost


async def login(target, index, user, resume=True, presence=b"<presence/>"):
    """Log in as the phone clients do: bind, <enable resume='true'/>, roster, presence,
    <r/>. Returns the session with stream management on (session.sm)."""
    session = new_session(target, index, user)
    try:
        return await asyncio.wait_for(_login(target, session, resume, presence),
                                      target.timeout)
    except BaseException:
        session.abort()
        raise


async def _login(target, session, resume, presence):
    started = time.perf_counter()
    features = await authenticate(target, session)
    if NS_SM not in features:
        raise LoginError("no stream management (urn:xmpp:sm:3) offered")
    await bind(target, session)
    session.write(b"<enable xmlns='urn:xmpp:sm:3'" + (b" resume='true'/>" if resume else b"/>"))
    element, kind = await session.expect(_ENABLED)
    if kind != b"enabled":
        raise LoginError(f"<enable/> failed: {element.decode('utf-8', 'replace')[:200]}")
    sm_id = _SM_ID.search(element)
    if resume and (sm_id is None or not re.search(rb"""resume=["'](true|1)["']""", element)):
        raise LoginError(f"no resumption offered: {element.decode('utf-8', 'replace')[:200]}")
    _start(session, SMState(sm_id.group(1) if sm_id else None))
    roster = _iq_end(b"roster1")
    send(session, [b"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>"],
         request=False)
    await _next_element(session, lambda k, e: k == b"iq" and roster.match(e), target.timeout)
    session.roster_ok = True
    send(session, [presence])
    own = _own_presence(session.jid)
    await _next_element(session, lambda k, e: k == b"presence" and own.match(e),
                        target.timeout)
    session.login_latency = time.perf_counter() - started
    return session


async def resume(target, old):
    """A new connection for C{old}'s session: authenticate, <resume previd h/>. Returns the
    new Session (same index, user, jid, counters and handler); what the server resends
    after <resumed/> goes to the handler."""
    session = new_session(target, old.index, old.user)
    session.jid = old.jid
    try:
        return await asyncio.wait_for(_resume(target, old, session), target.timeout)
    except BaseException:
        session.abort()
        raise


async def _resume(target, old, session):
    started = time.perf_counter()
    sm = old.sm
    await authenticate(target, session)
    session.write(b"<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>"
                  % (sm.id, sm.handled % MOD))
    element, kind = await session.expect(_RESUMED)
    if kind != b"resumed":
        raise LoginError(f"<resume/> failed: {element.decode('utf-8', 'replace')[:200]}")
    h = _H.search(element)
    if h is None:
        raise LoginError(f"<resumed/> without h: {element.decode('utf-8', 'replace')[:200]}")
    sm.acked = sm.sent - ((sm.sent - int(h.group(1))) % MOD)
    # What the server did not handle of ours we would send again; the scenarios make sure
    # there is nothing (and count it if there is).
    sm.unacked_at_resume += sm.sent - sm.acked
    sm.resumes += 1
    sm.tail = b""
    session.state = old.state
    session.on_elements = old.on_elements
    session.on_lost = old.on_lost
    session.login_latency = time.perf_counter() - started
    _start(session, sm)
    return session


async def close_all(sessions, timeout=10.0):
    """Acknowledge everything received, then close (client.close_all)."""
    from benchmarks.loadgen.client import close_all as close

    for session in sessions:
        final_ack(session)
    await close(sessions, timeout)
