"""
The stream management scenarios (issue 12), on the client side of benchmarks/loadgen/sm.py:

6. sm_messages  1:1 chat messages between online pairs, both directions, every client with
                XEP-0198 on (<enable resume='true'/>), an <r/> after each batch it sends and
                every <r/> of the server answered: delivered msgs/s and per server CPU-second
                at saturation (a closed loop, a fixed window per flow); every message must
                arrive exactly once (lost, duplicated, misdirected counted) and, at the end,
                the server's h must equal what each client sent.
7. storm        reconnect storm: N sessions with resumption; their TCP connections are all
                cut at once (a reset, no stream close); other clients send messages to them
                during the gap; then all reconnect (C at a time) and <resume/>: resumptions/s
                and per server CPU-second, sessions resumed (must be all), every message
                exactly once (those received before the cut and those of the gap).

Message ids carry a nonce of the run (k<nonce>f<flow>-<seq>), so messages of an earlier run
(say, stored offline after a failure) are told apart and counted as stale, never as ours.
"""
from __future__ import annotations

import asyncio
import os
import re
import time

from benchmarks.loadgen import procstat, sm
from benchmarks.loadgen.client import LoginError
from benchmarks.loadgen.scenarios import _ms, _wait_until, login_many, percentile


class SMFlow:
    """Messages from one session to another; C{receiver} is the receiving session's index
    (its Session object changes when it resumes)."""

    __slots__ = ("number", "sender", "receiver", "prefix", "suffix", "sent", "expected",
                 "gaps")

    def __init__(self, number, sender, receiver, to, body, nonce):
        self.number = number
        self.sender = sender
        self.receiver = receiver
        self.prefix = b"<message to='%s' type='chat' id='k%sf%d-" % (to, nonce, number)
        self.suffix = b"'><body>" + body + b"</body></message>"
        self.sent = 0
        self.expected = 0          # every seq below this arrived, except those in gaps
        self.gaps = set()

    def stanzas(self, count):
        seq = self.sent
        self.sent = seq + count
        prefix, suffix = self.prefix, self.suffix
        return [prefix + b"%d" % s + suffix for s in range(seq, seq + count)]

    def missing(self):
        return self.sent - self.expected + len(self.gaps)


class SMRun:
    """The receive side: each message of ours is checked at its addressee by flow and seq
    (exactly once); with C{refill}, each delivery makes its flow's sender send one more."""

    def __init__(self, flows, nonce):
        self.flows = flows
        self.id = re.compile(rb"""\sid=["']k""" + nonce + rb"""f(\d+)-(\d+)["']""")
        self.delivered = 0
        self.duplicates = 0
        self.misdirected = 0
        self.errors = 0            # type='error' stanzas received
        self.stale = 0             # other messages (not of this run)
        self.refill = False

    def on_elements(self, session, elements):
        counts = {}
        flows = self.flows
        for kind, element in elements:
            head = element[:element.find(b">") + 1]
            if b"type='error'" in head or b'type="error"' in head:
                self.errors += 1
                continue
            if kind != b"message":
                continue
            match = self.id.search(head)
            if match is None:
                self.stale += 1
                continue
            flow = flows[int(match.group(1))]
            if flow.receiver != session.index:
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
            counts[flow] = counts.get(flow, 0) + 1
        if self.refill:
            for flow, count in counts.items():
                if not flow.sender.lost:
                    sm.send(flow.sender, flow.stanzas(count))

    def missing(self):
        return sum(flow.missing() for flow in self.flows)


def _nonce():
    return os.urandom(4).hex().encode()


def _body(body_bytes):
    return (b"Benchmark message; " * (body_bytes // 19 + 1))[:body_bytes]


async def _login_all(target, names, concurrency, deadline_s=600.0):
    sessions, errors = await login_many(target, names, concurrency, deadline_s=deadline_s,
                                        login_fn=sm.login)
    return sessions, errors


def _take_stale(sessions):
    """Drop what arrived before the scenario's handler (offline messages of old runs)."""
    stale = 0
    for session in sessions:
        stale += sum(1 for kind, _ in session.sm.other if kind == b"message")
        session.sm.other.clear()
    return stale


async def _verify_acks(sessions, timeout):
    """Ask every session's server for its h; the number of sessions whose h stays below
    what they sent."""
    for session in sessions:
        sm.request_ack(session)
    await _wait_until(lambda: all(s.sm.acked == s.sm.sent for s in sessions if not s.lost),
                      timeout)
    return sum(1 for s in sessions if s.sm.acked != s.sm.sent)


# -- 6. messages with stream management ---------------------------------------------------------


async def sm_messages(target, pairs=100, window=10, warmup_s=2.0, duration_s=6.0,
                      drain_s=15.0, concurrency=50, prefix="u", body_bytes=100):
    """1:1 chat messages with stream management on every client; see the module docstring."""
    names = [(i, f"{prefix}{i}") for i in range(2 * pairs)]
    sessions, errors = await _login_all(target, names, concurrency)
    if any(s is None for s in sessions):
        await sm.close_all([s for s in sessions if s is not None])
        return {"error": f"{len(errors)} logins with stream management failed",
                "errors": errors[:5]}
    stale = _take_stale(sessions)
    nonce = _nonce()
    body = _body(body_bytes)
    domain = target.domain.encode()
    flows = []
    for k in range(pairs):
        a, b = sessions[2 * k], sessions[2 * k + 1]
        flows.append(SMFlow(2 * k, a, b.index, b"%s@%s" % (b.user.encode(), domain), body,
                            nonce))
        flows.append(SMFlow(2 * k + 1, b, a.index, b"%s@%s" % (a.user.encode(), domain),
                            body, nonce))
    run = SMRun(flows, nonce)
    for session in sessions:
        session.on_elements = run.on_elements
    result = {"pairs": pairs, "flows": len(flows), "window": window, "body_bytes": body_bytes}
    requests_before = sum(s.sm.requests for s in sessions)

    run.refill = True
    for flow in flows:
        sm.send(flow.sender, flow.stanzas(window))
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
    result["drained"] = await _wait_until(lambda: run.missing() == 0, drain_s)
    unacked = await _verify_acks(sessions, 10.0)
    result.update({
        "total_sent": sum(flow.sent for flow in flows),
        "total_delivered": run.delivered,
        "lost": run.missing(),
        "duplicates": run.duplicates,
        "misdirected": run.misdirected,
        "error_stanzas": run.errors,
        "stale": stale + run.stale,
        # Sessions whose server h stayed below the stanzas they sent (must be 0).
        "unacked_sessions": unacked,
        "server_requests": sum(s.sm.requests for s in sessions) - requests_before,
        "client_requests_answered": sum(s.sm.acks for s in sessions),
        "disconnected": sum(1 for s in sessions if s.lost),
    })
    await sm.close_all(sessions)
    return result


# -- 7. reconnect storm -------------------------------------------------------------------------


async def storm(target, sessions=1000, senders=20, before_messages=1, gap_messages=2,
                concurrency=100, login_concurrency=50, gap_s=1.0, drain_s=30.0,
                deadline_s=300.0, prefix="u", body_bytes=100):
    """A reconnect storm with resumption; see the module docstring."""
    count, senders = sessions, max(1, min(senders, sessions))
    names = [(i, f"{prefix}{i}") for i in range(count + senders)]
    started = time.perf_counter()
    online, errors = await _login_all(target, names, login_concurrency)
    login_s = time.perf_counter() - started
    if any(s is None for s in online):
        await sm.close_all([s for s in online if s is not None])
        return {"error": f"{len(errors)} logins with stream management failed",
                "errors": errors[:5]}
    receivers, sending = online[:count], online[count:]
    stale = _take_stale(online)
    nonce = _nonce()
    body = _body(body_bytes)
    domain = target.domain.encode()
    flows = [SMFlow(i, sending[i % senders], receiver.index,
                    b"%s@%s" % (receiver.user.encode(), domain), body, nonce)
             for i, receiver in enumerate(receivers)]
    by_sender = {}
    for flow in flows:
        by_sender.setdefault(flow.sender.index, []).append(flow)
    run = SMRun(flows, nonce)
    for session in online:
        session.on_elements = run.on_elements
    result = {"sessions": count, "senders": senders, "before_messages": before_messages,
              "gap_messages": gap_messages, "concurrency": concurrency,
              "login_s": round(login_s, 2)}

    def send_round(per_flow):
        for sender in sending:
            stanzas = []
            for flow in by_sender[sender.index]:
                stanzas += flow.stanzas(per_flow)
            sm.send(sender, stanzas)

    # Before the cut: messages that arrive and are counted in the receivers' h.
    if before_messages:
        send_round(before_messages)
        if not await _wait_until(lambda: run.missing() == 0, drain_s):
            result["error"] = f"{run.missing()} messages before the cut did not arrive"
    result["before_delivered"] = run.delivered

    # The cut: every receiver's TCP connection reset at once.
    for receiver in receivers:
        receiver.cut()
    await asyncio.sleep(gap_s)       # every server sees its connections drop
    gap_started = time.perf_counter()
    send_round(gap_messages)
    gap_acked = await _wait_until(
        lambda: all(s.sm.acked == s.sm.sent for s in sending if not s.lost), drain_s)
    result["gap_s"] = round(time.perf_counter() - gap_started + gap_s, 2)
    result["gap_acked"] = gap_acked
    result["gap_sent"] = gap_messages * count
    delivered_before_resume = run.delivered

    # The storm: every receiver reconnects and resumes, C at a time.
    queue = list(reversed(range(count)))
    failures = []
    latencies = []
    deadline = time.monotonic() + deadline_s

    async def worker():
        while queue and time.monotonic() < deadline:
            position = queue.pop()
            old = receivers[position]
            try:
                new = await sm.resume(target, old)
            except (LoginError, OSError, asyncio.TimeoutError) as exc:
                failures.append(f"{old.user}: {type(exc).__name__}: {exc}"[:300])
                continue
            receivers[position] = new
            latencies.append(new.login_latency)

    measure = procstat.Window(target.server_pid)
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    resumed_at = time.perf_counter() - measure.wall
    delivered = await _wait_until(lambda: run.missing() == 0, drain_s, interval=0.005)
    stats = measure.close()
    resumed = len(latencies)
    result.update({
        "resumed": resumed,
        "resume_failures": len(failures),
        "errors": failures[:5],
        "resumptions_per_s": resumed / stats["wall_s"],
        "resume_p50_ms": _ms(percentile(latencies, 50)),
        "resume_p99_ms": _ms(percentile(latencies, 99)),
        "all_resumed_s": round(resumed_at, 3),
        "all_delivered": delivered,
        **stats,
    })
    if stats.get("server_cpu_s"):
        result["resumptions_per_cpu_s"] = resumed / stats["server_cpu_s"]
    if not delivered:
        # Late ones still count as delivered (not lost) if they come within the drain.
        await _wait_until(lambda: run.missing() == 0, drain_s)
    unacked = await _verify_acks([s for s in online[count:]] + receivers, 10.0)
    result.update({
        "gap_delivered": run.delivered - result["before_delivered"],
        "delivered_before_resume": delivered_before_resume - result["before_delivered"],
        "lost": run.missing(),
        "duplicates": run.duplicates,
        "misdirected": run.misdirected,
        "error_stanzas": run.errors,
        "stale": stale + run.stale,
        "unacked_sessions": unacked,
        "unacked_at_resume": sum(r.sm.unacked_at_resume for r in receivers),
        "disconnected": sum(1 for s in sending + receivers if s.lost),
    })
    await sm.close_all(sending + receivers)
    return result
