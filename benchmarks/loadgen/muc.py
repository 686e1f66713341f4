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

from benchmarks.loadgen.client import LoginError, close_all
from benchmarks.loadgen.scenarios import fan_out, login_many

NS_MUC = b"http://jabber.org/protocol/muc"


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
    # Each message's <body> carries g<index>-<seq>: the room reflects it to its sender too.
    senders = []
    for index, session in enumerate(online):
        room = b"bench%d@" % (index // occupants) + service
        senders.append((session, b"<body>g%d-" % index,
                        b"<message to='" + room + b"' type='groupchat'><body>g%d-" % index,
                        b"</body></message>"))
    result = {"rooms": rooms, "occupants": occupants, "window": window,
              "join_s": round(join_s, 2)}
    result.update(await fan_out(target, senders, b"<body>g", occupants - 1, window, warmup_s,
                                duration_s, drain_s, settle_max_s, "messages"))
    await close_all(online)
    return result
