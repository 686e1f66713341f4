"""
Scenario 5: MUC fan-out (XEP-0045). Rooms of N occupants (100), every occupant online and
joined; each occupant keeps a fixed number of groupchat messages in flight, the next one
sent when the room reflects one of its own back. Measured: groupchat deliveries/s (messages
arriving at the other occupants), deliveries per server CPU-second, deliveries lost.
Skipped, with the reason, on a server where joining a room fails (no MUC service).
"""
from __future__ import annotations

import asyncio
import re
import time

from benchmarks.loadgen import procstat
from benchmarks.loadgen.client import LoginError, close_all
from benchmarks.loadgen.scenarios import complete_part, login_many

NS_MUC = b"http://jabber.org/protocol/muc"


class RoomRun:
    """Counts groupchat deliveries (<body>g…) and keeps each sender's window full."""

    def __init__(self):
        self.deliveries = 0
        self.echoes = 0
        self.sent = 0
        self.running = False

    def send(self, session, count):
        state = session.state
        seq = state[1]
        state[1] = seq + count
        self.sent += count
        prefix = state[3]
        session.transport.write(b"".join(
            [prefix + b"%d</body></message>" % s for s in range(seq, seq + count)]))

    def on_data(self, session, data):
        state = session.state
        if state[0]:
            data = state[0] + data
        cut = complete_part(data)
        state[0] = data[cut:]
        if cut <= 0:
            return
        total = data.count(b"<body>g", 0, cut)
        if not total:
            return
        own = data.count(state[2], 0, cut)
        self.deliveries += total - own
        self.echoes += own
        if own and self.running and not session.lost:
            self.send(session, own)


async def _join(session, room_jid: bytes, nick: bytes, timeout: float):
    occupant = room_jid + b"/" + nick
    session.write(b"<presence to='" + occupant + b"'><x xmlns='" + NS_MUC
                  + b"'><history maxstanzas='0'/></x></presence>")
    # Our own occupant presence (status 110) ends the join; an error presence fails it.
    quoted = re.escape(occupant)
    pattern = re.compile(rb"<presence\b[^>]*?\sfrom=[\"']" + quoted + rb"[\"'][^>]*?"
                         rb"(?:/>|>.*?</presence>)", re.S)
    while True:
        (element,) = await asyncio.wait_for(session.expect(pattern), timeout)
        if re.search(rb"""\stype=["']error["']""", element[:element.find(b">")]):
            raise LoginError(f"joining {occupant.decode()} failed: "
                             f"{element.decode('utf-8', 'replace')[:300]}")
        if b"110" in element:
            return


async def muc(target, rooms=1, occupants=100, window=2, warmup_s=2.0, duration_s=10.0,
              drain_s=20.0, concurrency=50, prefix="u", service=None, settle_max_s=30.0):
    """MUC fan-out; see the module docstring."""
    service = (service or f"conference.{target.domain}").encode()
    names = [(i, f"{prefix}{i}") for i in range(rooms * occupants)]
    sessions, errors = await login_many(target, names, concurrency)
    online = [s for s in sessions if s is not None]
    if len(online) < len(names):
        await close_all(online)
        return {"error": f"{len(errors)} logins failed", "errors": errors[:5]}
    try:
        await _join(online[0], b"bench0@" + service, online[0].user.encode(), 10.0)
    except (LoginError, asyncio.TimeoutError) as exc:
        await close_all(online)
        return {"skipped": f"cannot join a room at {service.decode()}: "
                           f"{str(exc) or 'no answer'}"[:300]}
    started = time.perf_counter()
    queue = list(enumerate(online))[1:]
    queue.reverse()

    async def joiner():
        while queue:
            index, session = queue.pop()
            room = b"bench%d@" % (index // occupants) + service
            await _join(session, room, session.user.encode(), target.timeout)

    try:
        await asyncio.gather(*(joiner() for _ in range(min(concurrency, 20))))
    except (LoginError, asyncio.TimeoutError) as exc:
        await close_all(online)
        return {"error": f"join failed: {exc}"[:300]}
    join_s = time.perf_counter() - started
    last = [time.monotonic()]

    def quiet(session, data):
        last[0] = time.monotonic()

    for session in online:
        session.on_data = quiet
    deadline = time.monotonic() + settle_max_s
    while time.monotonic() < deadline and time.monotonic() - last[0] < 1.0:
        await asyncio.sleep(0.1)
    run = RoomRun()
    for index, session in enumerate(online):
        room = b"bench%d@" % (index // occupants) + service
        session.state = [b"", 0, b"<body>g%d-" % index,
                         b"<message to='" + room + b"' type='groupchat'><body>g%d-" % index]
        session.on_data = run.on_data
    run.running = True
    for session in online:
        run.send(session, window)
    await asyncio.sleep(warmup_s)
    measure = procstat.Window(target.server_pid)
    before_deliveries, before_echoes = run.deliveries, run.echoes
    await asyncio.sleep(duration_s)
    deliveries = run.deliveries - before_deliveries
    messages = run.echoes - before_echoes
    stats = measure.close()
    run.running = False
    expected = lambda: run.sent * (occupants - 1)  # noqa: E731
    drain_deadline = time.monotonic() + drain_s
    while time.monotonic() < drain_deadline and (run.deliveries < expected()
                                                  or run.echoes < run.sent):
        await asyncio.sleep(0.02)
    result = {
        "rooms": rooms, "occupants": occupants, "window": window,
        "join_s": round(join_s, 2),
        "deliveries_per_s": deliveries / stats["wall_s"],
        "messages_per_s": messages / stats["wall_s"],
        **stats,
        "messages_sent": run.sent,
        "deliveries": run.deliveries,
        "lost": expected() - run.deliveries,
        "echoes_missing": run.sent - run.echoes,
        "disconnected": sum(1 for s in online if s.lost),
    }
    if stats.get("server_cpu_s"):
        result["deliveries_per_cpu_s"] = deliveries / stats["server_cpu_s"]
    await close_all(online)
    return result
