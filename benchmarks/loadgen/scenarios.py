"""
The benchmark scenarios. Each one is an async function taking a Target and its parameters and
returning a dict of plain numbers (JSON-ready). Every loop is bounded in count and in time.

1. login_storm  N logins with a fixed number in flight: logins/s, p50/p99 login latency.
2. messages     1:1 chat messages between online pairs, both directions: delivered msgs/s at
                saturation (a closed loop with a fixed window per flow), then p50/p99
                end-to-end latency at a fixed moderate rate (open loop), messages lost
                (counted by id: every id sent must arrive once at its addressee).
3. idle         authenticated, available, idle sessions at several levels (1k, 5k, 10k):
                server RSS per session over a baseline, idle server CPU.
4. presence     presence fan-out with pre-subscribed rosters (a ring: each user's contacts
                are its nearest neighbours): presence deliveries/s at saturation (a closed
                loop on each sender's own reflected presence), deliveries lost.
5. muc          MUC fan-out (benchmarks/loadgen/muc.py): groupchat deliveries/s in rooms of
                100 occupants; skipped, with the reason, where no room can be joined.

Scenarios 4 and 5 share their closed loop and measurements (fan_out).
"""
from __future__ import annotations

import asyncio
import os
import re
import time

from benchmarks.loadgen import procstat
from benchmarks.loadgen.client import LoginError, answer_pings, close_all, login

_MSG_ID = re.compile(rb"""\sid=["']m(\d+)-(\d+)["']""")
_PRESENCE_TAG = re.compile(rb"<presence\b[^>]*>")
_TYPE = re.compile(rb"""\stype=["']([a-z]+)["']""")
_FROM = re.compile(rb"""\sfrom=["']([^"'/]+)""")
_BOTH = re.compile(rb"""subscription=["']both["']""")


def percentile(values, q):
    """The q-th percentile (0..100) of C{values}, nearest-rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def complete_part(data):
    """How many leading bytes of C{data} can be scanned now: all of it when it ends with an
    end tag or an empty-element tag, else up to the last '<' (the rest -- a partial tag, a
    start tag whose text has not arrived, or text of an element still open -- is kept and
    scanned with the next bytes). Neither server writes a raw '>' inside attribute values
    or text, so a final '>' always ends a tag."""
    cut = data.rfind(b"<")
    if cut < 0:
        return 0
    if data.endswith(b">") and (data.endswith(b"/>") or data.startswith(b"</", cut)):
        return len(data)
    return cut


def _ms(value):
    return None if value is None else round(value * 1000, 3)


async def login_many(target, users, concurrency, presence_for=None, deadline_s=600.0,
                     login_fn=login):
    """Log in every (index, username) of C{users} with at most C{concurrency} in flight,
    with C{login_fn} (client.login; sm.login for stream management).

    Returns (sessions in input order with None for failures, [error texts]).
    """
    results = [None] * len(users)
    errors = []
    queue = list(enumerate(users))
    queue.reverse()
    deadline = time.monotonic() + deadline_s

    async def worker():
        while queue and time.monotonic() < deadline:
            position, (index, user) = queue.pop()
            try:
                if presence_for is None:
                    results[position] = await login_fn(target, index, user)
                else:
                    results[position] = await login_fn(target, index, user,
                                                       presence=presence_for(index))
            except (LoginError, OSError, asyncio.TimeoutError) as exc:
                errors.append(f"{user}: {type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(users))))))
    return results, errors


async def _wait_until(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(interval)
    return predicate()


# -- 1. login storm ----------------------------------------------------------------------


async def login_storm(target, users=2000, concurrency=50, prefix="u"):
    """N logins, C in flight; sessions stay connected until the storm is over."""
    names = [(i, f"{prefix}{i}") for i in range(users)]
    window = procstat.Window(target.server_pid)
    sessions, errors = await login_many(target, names, concurrency)
    stats = window.close()
    ok = [s for s in sessions if s is not None]
    latencies = [s.login_latency for s in ok]
    result = {
        "logins": len(ok), "failures": len(errors), "errors": errors[:5],
        "concurrency": concurrency,
        "logins_per_s": len(ok) / stats["wall_s"],
        "login_p50_ms": _ms(percentile(latencies, 50)),
        "login_p99_ms": _ms(percentile(latencies, 99)),
        **stats,
    }
    if stats.get("server_cpu_s"):
        result["logins_per_cpu_s"] = len(ok) / stats["server_cpu_s"]
    await close_all(ok)
    return result


# -- 2. one-to-one messages ------------------------------------------------------------------


class Flow:
    """Messages from one session to another, numbered from 0; ids are m<flow>-<seq>."""

    __slots__ = ("number", "sender", "receiver", "prefix", "suffix", "sent", "expected",
                 "gaps", "times")

    def __init__(self, number, sender, receiver, to, body):
        self.number = number
        self.sender = sender
        self.receiver = receiver
        self.prefix = b"<message to='%s' type='chat' id='m%d-" % (to, number)
        self.suffix = b"'><body>" + body + b"</body></message>"
        self.sent = 0
        self.expected = 0          # every seq below this arrived, except those in gaps
        self.gaps = set()
        self.times = None          # seq -> send time, while latency is measured

    def send(self, count):
        seq = self.sent
        prefix, suffix = self.prefix, self.suffix
        self.sent = seq + count
        self.sender.write_many([prefix + b"%d" % s + suffix for s in range(seq, seq + count)])
        if self.times is not None:
            now = time.perf_counter()
            for s in range(seq, seq + count):
                self.times[s] = now

    def missing(self):
        return self.sent - self.expected + len(self.gaps)


class MessageRun:
    """Receive side of the message scenario: counts deliveries by id and refills windows."""

    def __init__(self, flows):
        self.flows = flows
        self.delivered = 0
        self.duplicates = 0
        self.misdirected = 0       # an id arriving at the wrong session (e.g. a bounce)
        self.errors = 0            # type='error' messages received
        self.refill = False
        self.latencies = []

    def on_data(self, session, data):
        tail = session.state
        if tail:
            data = tail + data
        cut = complete_part(data)
        session.state = data[cut:]
        if cut <= 0:
            return
        if b"type='error'" in data or b'type="error"' in data:
            self.errors += data.count(b"type='error'", 0, cut) + data.count(b'type="error"', 0,
                                                                           cut)
        now = time.perf_counter()
        flows = self.flows
        counts = {}
        for match in _MSG_ID.finditer(data, 0, cut):
            flow = flows[int(match.group(1))]
            if flow.receiver is not session:
                self.misdirected += 1
                continue
            seq = int(match.group(2))
            expected = flow.expected
            if seq == expected:
                flow.expected = seq + 1
            elif seq > expected:
                flow.gaps.update(range(expected, seq))
                flow.expected = seq + 1
            elif seq in flow.gaps:
                flow.gaps.discard(seq)
            else:
                self.duplicates += 1
                continue
            self.delivered += 1
            if flow.times is not None:
                sent = flow.times.pop(seq, None)
                if sent is not None:
                    self.latencies.append(now - sent)
            counts[flow] = counts.get(flow, 0) + 1
        if self.refill:
            for flow, count in counts.items():
                if not flow.sender.lost:
                    flow.send(count)

    def missing(self):
        return sum(flow.missing() for flow in self.flows)


async def messages(target, pairs=100, window=10, warmup_s=2.0, duration_s=10.0, rate=1000,
                   rate_duration_s=10.0, drain_s=15.0, concurrency=50, prefix="u",
                   body_bytes=100):
    """1:1 chat messages between online pairs; see the module docstring."""
    names = [(i, f"{prefix}{i}") for i in range(2 * pairs)]
    sessions, errors = await login_many(target, names, concurrency)
    if any(s is None for s in sessions):
        await close_all([s for s in sessions if s is not None])
        return {"error": f"{len(errors)} logins failed", "errors": errors[:5]}
    body = (b"Benchmark message; " * (body_bytes // 19 + 1))[:body_bytes]
    domain = target.domain.encode()
    flows = []
    for k in range(pairs):
        a, b = sessions[2 * k], sessions[2 * k + 1]
        flows.append(Flow(2 * k, a, b, b"%s@%s" % (b.user.encode(), domain), body))
        flows.append(Flow(2 * k + 1, b, a, b"%s@%s" % (a.user.encode(), domain), body))
    run = MessageRun(flows)
    for session in sessions:
        session.state = b""
        session.on_data = run.on_data
    result = {"pairs": pairs, "flows": len(flows), "window": window, "body_bytes": body_bytes}

    # Saturation: every flow keeps `window` messages in flight.
    run.refill = True
    for flow in flows:
        flow.send(window)
    await asyncio.sleep(warmup_s)
    measure = procstat.Window(target.server_pid)
    before = run.delivered
    await asyncio.sleep(duration_s)
    delivered = run.delivered - before
    stats = measure.close()
    run.refill = False
    result.update({
        "sat_msgs_per_s": delivered / stats["wall_s"],
        "sat_msgs": delivered,
        **{f"sat_{k}": v for k, v in stats.items()},
    })
    if stats.get("server_cpu_s"):
        result["sat_msgs_per_cpu_s"] = delivered / stats["server_cpu_s"]
    drained = await _wait_until(lambda: run.missing() == 0, drain_s)
    result["sat_drained"] = drained

    # Fixed rate: open loop, `rate` messages/s spread round-robin over the flows.
    for flow in flows:
        flow.times = {}
    run.latencies = []
    measure = procstat.Window(target.server_pid)
    started = time.perf_counter()
    sent = 0
    turn = 0
    nflows = len(flows)
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= rate_duration_s:
            break
        due = int(rate * elapsed) - sent
        for _ in range(due):
            flows[turn].send(1)
            turn = (turn + 1) % nflows
        sent += max(due, 0)
        await asyncio.sleep(0.001)
    drained = await _wait_until(lambda: run.missing() == 0, drain_s)
    stats = measure.close()
    latencies = run.latencies
    result.update({
        "rate_target": rate,
        "rate_sent": sent,
        "rate_achieved": sent / rate_duration_s,
        "rate_p50_ms": _ms(percentile(latencies, 50)),
        "rate_p90_ms": _ms(percentile(latencies, 90)),
        "rate_p99_ms": _ms(percentile(latencies, 99)),
        "rate_max_ms": _ms(max(latencies) if latencies else None),
        "rate_drained": drained,
        # CPU over the fixed-rate phase (including its drain): cost of a steady load.
        "rate_server_cpu_share": stats.get("server_cpu_share"),
        "rate_gen_cpu_share": stats["gen_cpu_share"],
    })
    result.update({
        "total_sent": sum(flow.sent for flow in flows),
        "total_delivered": run.delivered,
        "lost": run.missing(),
        "duplicates": run.duplicates,
        "misdirected": run.misdirected,
        "error_stanzas": run.errors,
        "disconnected": sum(1 for s in sessions if s.lost),
    })
    await close_all(sessions)
    return result


# -- 3. idle sessions ----------------------------------------------------------------------


async def idle(target, levels=(1000, 5000, 10000), concurrency=100, settle_s=5.0,
               window_s=10.0, warmup_sessions=20, prefix="u"):
    """Idle authenticated sessions: RSS per session over the baseline, idle CPU."""
    if not target.server_pid:
        return {"error": "idle needs the server pid"}
    pid = target.server_pid
    # Warm-up: a few logins load every code path and TLS context, then leave.
    warm, errors = await login_many(target, [(i, f"{prefix}{i}") for i in range(
        warmup_sessions)], concurrency)
    await close_all([s for s in warm if s is not None])
    await asyncio.sleep(settle_s)
    baseline = procstat.rss_kb(pid)
    result = {"baseline_rss_kb": baseline, "levels": []}
    sessions = []
    for level in sorted(levels):
        names = [(i, f"{prefix}{i}") for i in range(len(sessions), level)]
        started = time.perf_counter()
        new, errors = await login_many(target, names, concurrency)
        ramp_s = time.perf_counter() - started
        for session in new:
            if session is not None:
                session.on_data = answer_pings
                sessions.append(session)
        await asyncio.sleep(settle_s)
        rss = procstat.rss_kb(pid)
        window = procstat.Window(pid)
        await asyncio.sleep(window_s)
        stats = window.close()
        alive = sum(1 for s in sessions if not s.lost)
        result["levels"].append({
            "target": level, "sessions": alive, "failures": len(errors),
            "errors": errors[:3], "ramp_s": round(ramp_s, 2),
            "rss_kb": rss, "rss_per_session_kb": (rss - baseline) / alive if alive else None,
            "idle_cpu_share": stats["server_cpu_share"],
            "gen_cpu_share": stats["gen_cpu_share"],
            "gen_rss_kb": procstat.rss_kb(os.getpid()),
        })
        if alive < level * 0.99:
            break
    await close_all(sessions, timeout=30.0)
    return result


# -- fan-out: scenarios 4 (presence) and 5 (MUC) --------------------------------------------


class FanOutRun:
    """A closed loop over senders whose stanzas the server fans out (presence to contacts,
    groupchat to occupants). Counts the copies carrying C{tag} that arrive: deliveries at
    the others, and echoes, the sender's own copy coming back, each of which sends its next
    stanza (so every sender keeps a fixed window in flight)."""

    def __init__(self, tag: bytes):
        self.tag = tag
        self.deliveries = 0
        self.echoes = 0
        self.sent = 0
        self.running = False

    def join(self, session, own: bytes, prefix: bytes, suffix: bytes):
        """C{session} sends prefix + seq + suffix; C{own} marks its stanzas' copies."""
        session.state = [b"", 0, own, prefix, suffix]
        session.on_data = self.on_data

    def send(self, session, count):
        state = session.state
        seq = state[1]
        state[1] = seq + count
        self.sent += count
        prefix, suffix = state[3], state[4]
        session.write_many([prefix + b"%d" % s + suffix for s in range(seq, seq + count)])

    def on_data(self, session, data):
        state = session.state
        if state[0]:
            data = state[0] + data
        cut = complete_part(data)
        state[0] = data[cut:]
        if cut <= 0:
            return
        total = data.count(self.tag, 0, cut)
        if not total:
            return
        own = data.count(state[2], 0, cut)
        self.deliveries += total - own
        self.echoes += own
        if own and self.running and not session.lost:
            self.send(session, own)


async def fan_out(target, senders, tag, recipients, window, warmup_s, duration_s, drain_s,
                  settle_max_s, unit):
    """Run a fan-out closed loop and return its measurements (the result dictionary of
    scenarios 4 and 5, without their own parameters).

    C{senders}: (session, own marker, stanza prefix, stanza suffix) for each online session;
    C{tag} is in every copy of every stanza sent, C{recipients} the copies each stanza
    should reach besides its sender's; C{unit} names the stanzas in the result
    ('updates': updates_per_s, updates_sent)."""
    sessions = [sender[0] for sender in senders]
    last = [time.monotonic()]

    def quiet(session, data):
        last[0] = time.monotonic()

    for session in sessions:
        session.on_data = quiet
    # Let the joins' or logins' own traffic finish: wait for 1 s of silence.
    settle_deadline = time.monotonic() + settle_max_s
    while time.monotonic() < settle_deadline and time.monotonic() - last[0] < 1.0:
        await asyncio.sleep(0.1)
    run = FanOutRun(tag)
    for sender in senders:
        run.join(*sender)
    run.running = True
    for session in sessions:
        run.send(session, window)
    await asyncio.sleep(warmup_s)
    measure = procstat.Window(target.server_pid)
    before_deliveries, before_echoes = run.deliveries, run.echoes
    await asyncio.sleep(duration_s)
    deliveries = run.deliveries - before_deliveries
    echoes = run.echoes - before_echoes
    stats = measure.close()
    run.running = False
    expected = lambda: run.sent * recipients  # noqa: E731
    await _wait_until(lambda: run.deliveries >= expected() and run.echoes >= run.sent,
                      drain_s)
    result = {
        "deliveries_per_s": deliveries / stats["wall_s"],
        f"{unit}_per_s": echoes / stats["wall_s"],
        **stats,
        f"{unit}_sent": run.sent,
        "deliveries": run.deliveries,
        "lost": expected() - run.deliveries,
        "echoes_missing": run.sent - run.echoes,
        "disconnected": sum(1 for s in sessions if s.lost),
    }
    if stats.get("server_cpu_s"):
        result["deliveries_per_cpu_s"] = deliveries / stats["server_cpu_s"]
    return result


# -- 4. presence fan-out -------------------------------------------------------------------


async def presence(target, users=1000, contacts=100, window=2, warmup_s=2.0, duration_s=10.0,
                   drain_s=20.0, concurrency=50, prefix="p", provision="none",
                   settle_max_s=30.0):
    """Presence fan-out with pre-subscribed ring rosters; see the module docstring."""
    # Does the server keep rosters at all? One login tells.
    probe = await login(target, 0, f"{prefix}0")
    roster_ok, items = probe.roster_ok, probe.roster_items
    await close_all([probe])
    if not roster_ok:
        return {"skipped": "the server answered the roster get (jabber:iq:roster) with an "
                           "error: no roster support, so no presence subscriptions"}
    result = {"users": users, "contacts": contacts, "window": window}
    if items < contacts:
        if provision != "protocol":
            return {"error": f"{prefix}0 has {items} roster items, {contacts} expected: "
                             "rosters not provisioned"}
        provisioned = await subscribe_ring(target, users, contacts, concurrency, prefix)
        if "skipped" in provisioned:
            return provisioned
        result["provisioning"] = provisioned
    names = [(i, f"{prefix}{i}") for i in range(users)]
    sessions, errors = await login_many(target, names, concurrency)
    online = [s for s in sessions if s is not None]
    if len(online) < users:
        await close_all(online)
        return {"error": f"{len(errors)} logins failed", "errors": errors[:5]}
    short = [s.user for s in online if s.roster_items < contacts]
    if short:
        await close_all(online)
        return {"error": f"{len(short)} users have fewer than {contacts} roster items "
                         f"(e.g. {short[:3]})"}
    # Each update's <status> carries p<index>-<seq>: the sender's copy comes back to it.
    senders = [(s, b"<status>p%d-" % s.index, b"<presence><status>p%d-" % s.index,
                b"</status></presence>") for s in online]
    result.update(await fan_out(target, senders, b"<status>p", contacts, window, warmup_s,
                                duration_s, drain_s, settle_max_s, "updates"))
    await close_all(online)
    return result


async def subscribe_ring(target, users, contacts, concurrency=50, prefix="p", timeout_s=900.0,
                         batch=20):
    """Make the ring rosters over XMPP (RFC 6121 §3): every user asks each contact for a
    subscription and approves every request it gets. For servers whose storage we cannot
    write; the server keeps the result, so this runs once."""
    from benchmarks.servers import ring_contacts

    started = time.monotonic()
    probe = await login(target, 0, f"{prefix}0")
    roster_ok = probe.roster_ok
    await close_all([probe])
    if not roster_ok:
        return {"skipped": "the server answered the roster get (jabber:iq:roster) with an "
                           "error: no roster support, so no presence subscriptions"}
    names = [(i, f"{prefix}{i}") for i in range(users)]
    sessions, errors = await login_many(target, names, concurrency)
    online = [s for s in sessions if s is not None]
    if len(online) < users:
        await close_all(online)
        raise RuntimeError(f"subscribe_ring: {len(errors)} logins failed: {errors[:3]}")
    domain = target.domain.encode()
    approved = {}

    def on_data(session, data):
        if session.state:
            data = session.state + data
        cut = complete_part(data)
        session.state = data[cut:]
        for tag in _PRESENCE_TAG.finditer(data, 0, cut):
            element = tag.group(0)
            kind = _TYPE.search(element)
            sender = _FROM.search(element)
            if kind is None or sender is None:
                continue
            if kind.group(1) == b"subscribe":
                session.write(b"<presence to='" + sender.group(1) + b"' type='subscribed'/>")
            elif kind.group(1) == b"subscribed":
                approved[session.index] = approved.get(session.index, 0) + 1

    for session in online:
        session.state = b""
        session.on_data = on_data
    deadline = time.monotonic() + timeout_s
    for start in range(0, users, batch):
        group = online[start:start + batch]
        for session in group:
            session.write(b"".join(
                b"<presence to='%s%d@%s' type='subscribe'/>" % (prefix.encode(), j, domain)
                for j in ring_contacts(session.index, users, contacts)))
        await _wait_until(lambda: all(approved.get(s.index, 0) >= contacts for s in group),
                          max(1.0, deadline - time.monotonic()))
    # Requests sent by later users to earlier ones are approved by then too: check rosters.
    await asyncio.sleep(1.0)
    received = {s.index: bytearray() for s in online}

    def collect(session, data):
        received[session.index] += data

    for session in online:
        session.on_data = collect
        session.write(b"<iq type='get' id='verify'><query xmlns='jabber:iq:roster'/></iq>")
    await _wait_until(lambda: all(b"</iq>" in buf[buf.find(b"'verify'"):]
                                  or b"</iq>" in buf[buf.find(b'"verify"'):]
                                  for buf in received.values()), 30.0)
    complete = sum(1 for buf in received.values() if len(_BOTH.findall(buf)) >= contacts)
    await close_all(online)
    if complete < users:
        raise RuntimeError(f"subscribe_ring: only {complete}/{users} rosters complete")
    return {"seconds": round(time.monotonic() - started, 1), "users": users}
