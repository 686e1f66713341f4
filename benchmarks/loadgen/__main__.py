"""
Run one scenario and print its result as one JSON line (the last line of stdout).

    python -m benchmarks.loadgen SCENARIO --target '{"port": 5222, ...}' --params '{...}'

The orchestrator (benchmarks/bench.py) runs this pinned to its own core with ``taskset``.
uvloop is used when it is installed (``--loop asyncio`` to compare).
"""
import argparse
import asyncio
import json
import resource
import sys
import time

import dataclasses

from benchmarks.loadgen import muc, scenarios, smscenarios
from benchmarks.loadgen.client import Target


def over_websocket(scenario):
    """C{scenario} with every session over WebSocket (RFC 7395) instead of TCP."""
    async def run(target, **params):
        if not target.ws_port:
            return {"skipped": "no WebSocket endpoint on this server"}
        return await scenario(dataclasses.replace(target, transport="ws"), **params)
    return run


# Scenario 5 lives in muc.py, 6 and 7 in smscenarios.py, which build on scenarios.py: the
# registry is here, so that any module can be imported first.
SCENARIOS = {
    "login": scenarios.login_storm,
    "messages": scenarios.messages,
    "idle": scenarios.idle,
    "presence": scenarios.presence,
    "muc": muc.muc,
    "subscribe": scenarios.subscribe_ring,
    "sm-messages": smscenarios.sm_messages,
    "storm": smscenarios.storm,
    "ws-login": over_websocket(scenarios.login_storm),
    "ws-messages": over_websocket(scenarios.messages),
}


def raise_nofile():
    """Raise the soft RLIMIT_NOFILE to the hard limit: 10k sessions need 10k descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def install_loop(name):
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


def run(scenario, target, params, loop="auto"):
    """Run C{scenario} (a name of SCENARIOS) and return its result dict."""
    loop_name = install_loop(loop)
    nofile = raise_nofile()
    started = time.perf_counter()
    result = asyncio.run(SCENARIOS[scenario](target, **params))
    result["generator"] = {"loop": loop_name, "nofile": nofile,
                           "seconds": round(time.perf_counter() - started, 2)}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--target", default="{}", help="JSON: Target fields")
    parser.add_argument("--params", default="{}", help="JSON: the scenario's parameters")
    parser.add_argument("--loop", default="auto", choices=("auto", "uvloop", "asyncio"))
    args = parser.parse_args(argv)
    fields = json.loads(args.target)
    if "sources" in fields:
        fields["sources"] = tuple(fields["sources"])
    result = run(args.scenario, Target(**fields), json.loads(args.params), args.loop)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
