"""
The benchmark run: jabberapp against Prosody and ejabberd on the same machine, in the same run.

For each round, for each selected scenario, the servers are run one after the other (the
order rotates every round), each time as a fresh process pinned to core 0, with the load
generator pinned to core 1 (``python -m benchmarks.loadgen``, one subprocess per scenario).
Per scenario and metric the medians over the rounds are printed with their min–max and the
ratios jabberapp / Prosody and jabberapp / ejabberd, raw and per server CPU-second, and
written to benchmarks/RESULTS.md (a section per --label, kept across runs).

Started by ``benchmarks/run`` (which installs what is missing first); see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import time

from benchmarks.loadgen import procstat
from benchmarks.servers import (DOMAIN, PASSWORD, ROOT, EjabberdServer, JabberappServer,
                                ProsodyServer, ejabberd_lib_dir, ejabberd_modules,
                                prosody_modules)

SCENARIOS = ("login", "messages", "idle", "presence", "muc", "sm-messages", "storm",
             "ws-login", "ws-messages")
SERVERS = ("jabberapp", "prosody", "ejabberd")
# The reference servers jabberapp's ratios are given against, with their names as printed.
REFERENCES = {"prosody": "Prosody", "ejabberd": "ejabberd"}
SERVER_CPU = "0"
GENERATOR_CPU = "1"

FULL = dict(
    rounds=3, idle_rounds=1,
    login_users=2000, login_concurrency=50,
    pairs=100, window=10, warmup=2.0, duration=6.0, rate=1000, rate_duration=6.0,
    idle_levels="1000,5000,10000", idle_concurrency=100, idle_settle=3.0, idle_window=5.0,
    presence_users=200, contacts=100, presence_window=2, presence_duration=6.0,
    muc_rooms=1, occupants=100, muc_window=2, muc_duration=6.0,
    sm_pairs=100, sm_window=10, sm_duration=6.0,
    storm_sessions=1000, storm_senders=20, storm_gap_messages=2, storm_concurrency=100,
)
QUICK = dict(
    rounds=1, idle_rounds=1,
    login_users=300, login_concurrency=20,
    pairs=20, window=10, warmup=1.0, duration=3.0, rate=500, rate_duration=3.0,
    idle_levels="200,500", idle_concurrency=50, idle_settle=1.0, idle_window=2.0,
    presence_users=60, contacts=20, presence_window=2, presence_duration=3.0,
    muc_rooms=1, occupants=20, muc_window=2, muc_duration=3.0,
    sm_pairs=20, sm_window=10, sm_duration=3.0,
    storm_sessions=200, storm_senders=10, storm_gap_messages=2, storm_concurrency=50,
)


# -- arguments ---------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="benchmarks/run",
        description="Benchmark jabberapp against Prosody and ejabberd (see "
                    "benchmarks/README.md).")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (one round, small sizes): checks the set-up")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--idle-rounds", type=int,
                        help="rounds that include the idle scenario (it is the longest, and "
                             "its RSS numbers vary little); default 1")
    parser.add_argument("--label", default="latest",
                        help="RESULTS.md section title; a run with the same label replaces "
                             "that section, others are kept")
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "RESULTS.md"),
                        help="the results file ('-': do not write one)")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "benchmarks", ".work"),
                        help="data directories, configs, certificate, logs, raw JSON")
    parser.add_argument("--jabberapp-src", default="worktree",
                        help="jabberapp to measure: 'worktree' (this checkout as it is), a git "
                             "revision (exported to the workdir), or a directory")
    parser.add_argument("--iterations", type=int, default=10000,
                        help="SCRAM iteration count of every account on every server")
    parser.add_argument("--mechanism", choices=("SCRAM-SHA-1", "SCRAM-SHA-256"),
                        default="SCRAM-SHA-1")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    parser.add_argument("--quiet-threshold", type=float, default=0.85,
                        help="before each scenario, wait while a spinning process gets less "
                             "than this share of either core (other load on the machine)")
    parser.add_argument("--quiet-wait", type=float, default=180.0,
                        help="longest wait for a quiet machine before each scenario (s)")
    parser.add_argument("--without", default="",
                        help="comma-separated jabberapp extensions to leave out, and their "
                             "counterparts on the others (e.g. mam: archiving costs depend "
                             "on each server's storage more than on anything else)")
    parser.add_argument("--sources", type=int, default=1,
                        help="spread the generator's connections over 127.0.0.1..127.0.0.N")
    for name, value in FULL.items():
        if name in ("rounds", "idle_rounds"):
            continue
        parser.add_argument("--" + name.replace("_", "-"), type=type(value),
                            help=f"default {value} (quick: {QUICK[name]})")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    for name, value in base.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    args.scenarios = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    unknown = set(args.servers.split(",")) - set(SERVERS)
    if unknown:
        parser.error(f"--servers: unknown {', '.join(sorted(unknown))} (known: "
                     f"{', '.join(SERVERS)})")
    args.servers = [s for s in SERVERS if s in args.servers.split(",")]
    args.idle_levels = [int(x) for x in str(args.idle_levels).split(",") if x]
    args.without = [x.strip() for x in args.without.split(",") if x.strip()]
    return args


def scenario_params(args, scenario, server_name):
    if scenario.startswith("ws-"):
        # The same parameters over WebSocket.
        return scenario_params(args, scenario[3:], server_name)
    if scenario == "sm-messages":
        return {"pairs": args.sm_pairs, "window": args.sm_window, "warmup_s": args.warmup,
                "duration_s": args.sm_duration}
    if scenario == "storm":
        return {"sessions": args.storm_sessions, "senders": args.storm_senders,
                "gap_messages": args.storm_gap_messages,
                "concurrency": args.storm_concurrency}
    if scenario == "login":
        return {"users": args.login_users, "concurrency": args.login_concurrency}
    if scenario == "messages":
        return {"pairs": args.pairs, "window": args.window, "warmup_s": args.warmup,
                "duration_s": args.duration, "rate": args.rate,
                "rate_duration_s": args.rate_duration}
    if scenario == "idle":
        return {"levels": args.idle_levels, "concurrency": args.idle_concurrency,
                "settle_s": args.idle_settle, "window_s": args.idle_window}
    if scenario == "presence":
        return {"users": args.presence_users, "contacts": args.contacts,
                "window": args.presence_window, "warmup_s": args.warmup,
                "duration_s": args.presence_duration, "prefix": presence_prefix(args),
                "provision": "none"}
    if scenario == "muc":
        return {"rooms": args.muc_rooms, "occupants": args.occupants,
                "window": args.muc_window, "warmup_s": args.warmup,
                "duration_s": args.muc_duration}
    return {}


def presence_prefix(args):
    # One set of accounts per ring shape, so rosters made over XMPP for another shape never
    # get in the way.
    return f"r{args.presence_users}c{args.contacts}n"


def scenario_timeout(args, scenario):
    if scenario.startswith("ws-"):
        return scenario_timeout(args, scenario[3:])
    if scenario == "sm-messages":
        return 120 + args.sm_pairs / 5 + args.warmup + args.sm_duration + 40
    if scenario == "storm":
        return 300 + (args.storm_sessions + args.storm_senders) / 5
    if scenario == "login":
        return 120 + args.login_users / 5
    if scenario == "messages":
        return 120 + args.pairs / 5 + args.warmup + args.duration + args.rate_duration + 40
    if scenario == "idle":
        return 300 + sum(args.idle_levels) / 10 + len(args.idle_levels) * (
            args.idle_settle + args.idle_window)
    if scenario == "presence":
        return 300 + args.presence_users
    if scenario == "subscribe":
        return 1200 + args.presence_users * args.contacts / 10
    if scenario == "muc":
        return 300 + args.muc_rooms * args.occupants
    return 60


# -- running -----------------------------------------------------------------------------------


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare_src(spec, workdir):
    """(directory, description) of the jabberapp source to measure."""
    if spec == "worktree":
        return ROOT, None
    if os.path.isdir(spec):
        return os.path.abspath(spec), f"source tree {os.path.abspath(spec)}"
    rev = subprocess.run(["git", "rev-parse", "--verify", spec + "^{commit}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    if rev.returncode != 0:
        raise SystemExit(f"--jabberapp-src: {spec!r} is neither a directory nor a git revision")
    sha = rev.stdout.strip()
    target = os.path.join(workdir, f"src-{sha[:12]}")
    if not os.path.isdir(os.path.join(target, "jabberapp")):
        os.makedirs(target, exist_ok=True)
        archive = subprocess.Popen(["git", "archive", sha, "jabberapp", "twisted"], cwd=ROOT,
                                   stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", target], stdin=archive.stdout, check=True,
                       timeout=120)
        archive.wait(60)
    return target, f"git {sha[:10]} ({spec})"


def cpu_availability(seconds=1.0):
    """CPU time each core gives a spinning process over C{seconds} of wall time (both cores
    at once). Virtual machines may get less than a full core; this tells how much."""
    code = ("import time\nt=time.perf_counter(); c=time.process_time()\n"
            f"while time.perf_counter()-t<{seconds}: pass\n"
            "print((time.process_time()-c)/(time.perf_counter()-t))")
    procs = [subprocess.Popen(["taskset", "-c", cpu, sys.executable, "-c", code],
                              stdout=subprocess.PIPE, text=True)
             for cpu in (SERVER_CPU, GENERATOR_CPU)]
    return [round(float(p.communicate(timeout=60)[0].strip() or 0), 3) for p in procs]


def run_generator(args, scenario, server, params):
    target = {"port": server.port, "cafile": server.cert, "password": PASSWORD,
              "mechanism": args.mechanism, "server_pid": server.pid, "domain": DOMAIN,
              "ws_port": server.ws_port}
    if args.sources > 1:
        target["sources"] = [f"127.0.0.{i}" for i in range(1, args.sources + 1)]
    cmd = ["taskset", "-c", GENERATOR_CPU, sys.executable, "-m", "benchmarks.loadgen", scenario,
           "--target", json.dumps(target), "--params", json.dumps(params), "--loop", args.loop]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    err_path = os.path.join(args.workdir, f"generator-{scenario}-{server.name}.err")
    with open(err_path, "wb") as err:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
        try:
            out, _ = process.communicate(timeout=scenario_timeout(args, scenario))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return {"error": f"generator timed out after {scenario_timeout(args, scenario)} s"}
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        with open(err_path, "rb") as f:
            tail = f.read()[-1500:].decode("utf-8", "replace")
        return {"error": f"generator exited {process.returncode}: {tail}"}
    return json.loads(lines[-1])


def core_busy_seconds(cpu: int) -> float:
    """Busy (non-idle, non-iowait) seconds of one CPU since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                fields = [int(x) for x in line.split()[1:]]
                busy = sum(fields[:8]) - fields[3] - fields[4]
                return busy / procstat.CLOCK_TICKS
    return 0.0


def run_one(args, scenario, server):
    params = scenario_params(args, scenario, server.name)
    server.start()
    try:
        wall, busy = time.perf_counter(), core_busy_seconds(int(SERVER_CPU))
        own = procstat.cpu_seconds(server.pid)
        result = run_generator(args, scenario, server, params)
        if server.process.poll() is not None:
            result.setdefault("error", f"{server.name} died: {server.log_tail()}")
        else:
            # Whatever else ran on the server's core meanwhile (other processes on this
            # machine): a noise indicator for this run.
            wall = time.perf_counter() - wall
            other = (core_busy_seconds(int(SERVER_CPU)) - busy
                     - (procstat.cpu_seconds(server.pid) - own))
            result["other_load_core0"] = round(max(0.0, other) / wall, 3) if wall else None
    finally:
        server.stop()
    return result


def wait_for_quiet(args):
    """Probe both cores; while other processes take them (availability below
    --quiet-threshold), wait, at most --quiet-wait seconds. Returns the last probe."""
    deadline = time.monotonic() + args.quiet_wait
    while True:
        probe = cpu_availability()
        if min(probe) >= args.quiet_threshold or time.monotonic() >= deadline:
            return probe
        log(f"  other processes are using the CPUs (availability {probe}); waiting")
        time.sleep(5)


def prepare_jabberapp_rosters(args, server):
    """The presence scenario's ring in jabberapp, once per data directory: imported with
    `jabberappctl import` (XEP-0227) where it exists, else subscribed over XMPP (we never
    write jabberapp's roster storage behind its back)."""
    marker = os.path.join(server.dir, f"rosters-{presence_prefix(args)}{args.contacts}.done")
    started = time.monotonic()
    how = server.provision_rosters(presence_prefix(args), args.presence_users, args.contacts)
    if how == "done":
        return {"done": "earlier"}
    if how == "import":
        return {"imported": args.presence_users,
                "seconds": round(time.monotonic() - started, 1)}
    params = {"users": args.presence_users, "contacts": args.contacts,
              "prefix": presence_prefix(args)}
    server.start()
    try:
        result = run_generator(args, "subscribe", server, params)
    finally:
        server.stop()
    if "seconds" in result:
        with open(marker, "w") as f:
            json.dump(result, f)
    return result


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    started = time.time()
    if "prosody" in args.servers and not shutil.which("prosody"):
        raise SystemExit("prosody is not installed (benchmarks/run installs it: apt-get)")
    if "ejabberd" in args.servers and not (ejabberd_lib_dir() and shutil.which("erl")):
        raise SystemExit("ejabberd is not installed (benchmarks/run installs it: apt-get)")
    src, src_description = prepare_src(args.jabberapp_src, args.workdir)
    servers = {}
    if "jabberapp" in args.servers:
        servers["jabberapp"] = JabberappServer(args.workdir, args.iterations, args.mechanism,
                                               cpu=SERVER_CPU, src=src, without=args.without)
        servers["jabberapp"].src_description = src_description
        extensions = servers["jabberapp"].extensions()
    else:
        extensions = ["disco", "ping", "time", "version"]
    modules, unmatched = prosody_modules(extensions)
    if "prosody" in args.servers:
        servers["prosody"] = ProsodyServer(args.workdir, args.iterations, args.mechanism,
                                           cpu=SERVER_CPU, modules=modules,
                                           muc="muc" in extensions)
    ejabberd_mods, ejabberd_unmatched = ejabberd_modules(extensions)
    if "ejabberd" in args.servers:
        servers["ejabberd"] = EjabberdServer(args.workdir, args.iterations, args.mechanism,
                                             cpu=SERVER_CPU, modules=ejabberd_mods)
    users = max([args.login_users, 2 * args.pairs, args.muc_rooms * args.occupants,
                 2 * args.sm_pairs, args.storm_sessions + args.storm_senders]
                + args.idle_levels)
    for name, server in servers.items():
        groups = {"u": users}
        if not (name == "jabberapp" and server.can_import()):
            # jabberapp with `jabberappctl import` gets the ring's accounts with its rosters.
            groups[presence_prefix(args)] = args.presence_users
        log(f"accounts for {name}: {server.provision(groups)}")
    for name in ("prosody", "ejabberd"):
        if name in servers and "presence" in args.scenarios:
            # Written to their storage (Prosody's files; ejabberd's API, in its own process).
            began = time.monotonic()
            servers[name].provision_rosters(presence_prefix(args), args.presence_users,
                                            args.contacts)
            log(f"rosters for {name}: {args.presence_users} written in "
                f"{time.monotonic() - began:.1f} s")
    if "jabberapp" in servers and "presence" in args.scenarios:
        prepared = prepare_jabberapp_rosters(args, servers["jabberapp"])
        log(f"rosters for jabberapp: {headline('subscribe', prepared)}")
    results = {s: {name: [] for name in servers} for s in args.scenarios}
    availability = []
    try:
        for round_number in range(1, args.rounds + 1):
            # Each round starts with the next server: every server takes every place in
            # the order (with two servers, they swap every round).
            shift = (round_number - 1) % len(servers)
            order = list(servers)[shift:] + list(servers)[:shift]
            log(f"round {round_number}/{args.rounds}")
            for scenario in args.scenarios:
                if scenario == "idle" and round_number > args.idle_rounds:
                    continue
                availability.append(wait_for_quiet(args))
                for name in order:
                    log(f"  {scenario} on {name} ...")
                    result = run_one(args, scenario, servers[name])
                    result["round"] = round_number
                    results[scenario][name].append(result)
                    log(f"  {scenario} on {name}: {headline(scenario, result)}")
    finally:
        for server in servers.values():
            server.stop()
    meta = describe_run(args, servers, availability, started, extensions,
                        {"prosody": (modules, unmatched),
                         "ejabberd": (list(ejabberd_mods), ejabberd_unmatched)})
    raw_path = os.path.join(args.workdir, time.strftime("results-%Y%m%d-%H%M%S.json"))
    with open(raw_path, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    meta_text = render_meta(args, meta)
    text = render(args, results)
    print()
    print(meta_text)
    print(text)
    if args.results != "-":
        write_results(args.results, args.label, meta_text, text)
        log(f"wrote {args.results} (section {args.label!r}); raw results in {raw_path}")


# -- reporting ---------------------------------------------------------------------------------


def headline(scenario, result):
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if "error" in result:
        return f"ERROR: {str(result['error'])[:300]}"
    if scenario.startswith("ws-"):
        return "over WebSocket: " + headline(scenario[3:], result)
    if scenario == "sm-messages":
        return (f"{result['sat_msgs_per_s']:.0f} msgs/s, "
                f"{result.get('sat_msgs_per_cpu_s', 0):.0f} per server CPU-s, lost "
                f"{result['lost']}, duplicated {result['duplicates']}, unacked sessions "
                f"{result['unacked_sessions']}")
    if scenario == "storm":
        return (f"{result['resumed']}/{result['sessions']} resumed, "
                f"{result['resumptions_per_s']:.0f}/s, "
                f"{result.get('resumptions_per_cpu_s', 0):.0f} per server CPU-s; gap messages "
                f"{result['gap_delivered']}/{result['gap_sent']}, lost {result['lost']}, "
                f"duplicated {result['duplicates']}")
    if scenario == "login":
        return (f"{result['logins_per_s']:.0f} logins/s, p99 {result['login_p99_ms']} ms, "
                f"{result['failures']} failed")
    if scenario == "messages":
        return (f"{result['sat_msgs_per_s']:.0f} msgs/s, p99 {result['rate_p99_ms']} ms at "
                f"{result['rate_target']}/s, lost {result['lost']}")
    if scenario == "idle":
        return ", ".join(f"{lv['sessions']}: {lv['rss_per_session_kb']:.1f} KiB/session"
                         for lv in result["levels"] if lv["rss_per_session_kb"] is not None)
    if scenario == "presence":
        return f"{result['deliveries_per_s']:.0f} deliveries/s, lost {result['lost']}"
    if scenario == "muc":
        return (f"{result['deliveries_per_s']:.0f} deliveries/s, lost {result['lost']} "
                f"({result['occupants']} occupants joined in {result['join_s']} s)")
    if scenario == "subscribe":
        if "done" in result:
            return "made by an earlier run"
        if "imported" in result:
            return (f"{result['imported']} accounts with rosters imported (XEP-0227) in "
                    f"{result['seconds']} s")
        return f"{result['users']} rosters made over XMPP in {result['seconds']} s"
    return json.dumps(result)[:200]


# (key, label, better: 'higher' | 'lower' | '' , format, aggregate)
OTHER_LOAD = ("other_load_core0", "other processes' load on the server core (max)", "",
              "{:.2f}", "max")
METRICS = {
    "login": [
        ("logins_per_s", "logins/s", "higher", "{:.0f}", "median"),
        ("logins_per_cpu_s", "logins per server CPU-s", "higher", "{:.0f}", "median"),
        ("login_p50_ms", "login latency p50 (ms)", "lower", "{:.1f}", "median"),
        ("login_p99_ms", "login latency p99 (ms)", "lower", "{:.1f}", "median"),
        ("failures", "failed logins (sum)", "lower", "{:.0f}", "sum"),
        ("server_cpu_share", "server CPU share of a core", "", "{:.2f}", "median"),
        ("gen_cpu_share", "generator CPU share of a core", "", "{:.2f}", "median"),
        OTHER_LOAD,
    ],
    "messages": [
        ("sat_msgs_per_s", "delivered msgs/s at saturation", "higher", "{:.0f}", "median"),
        ("sat_msgs_per_cpu_s", "delivered msgs per server CPU-s", "higher", "{:.0f}",
         "median"),
        ("rate_p50_ms", "latency p50 at the fixed rate (ms)", "lower", "{:.2f}", "median"),
        ("rate_p99_ms", "latency p99 at the fixed rate (ms)", "lower", "{:.2f}", "median"),
        ("rate_server_cpu_share", "server CPU share at the fixed rate", "lower", "{:.3f}",
         "median"),
        ("lost", "messages lost (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("sat_server_cpu_share", "server CPU share at saturation", "", "{:.2f}", "median"),
        ("sat_gen_cpu_share", "generator CPU share at saturation", "", "{:.2f}", "median"),
        OTHER_LOAD,
    ],
    "sm-messages": [
        ("sat_msgs_per_s", "delivered msgs/s at saturation", "higher", "{:.0f}", "median"),
        ("sat_msgs_per_cpu_s", "delivered msgs per server CPU-s", "higher", "{:.0f}",
         "median"),
        ("lost", "messages lost (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("duplicates", "messages duplicated (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("unacked_sessions", "sessions whose server h stayed below what they sent (sum)",
         "lower", "{:.0f}", "sum"),
        ("server_requests", "server <r/> answered", "", "{:.0f}", "median"),
        ("sat_server_cpu_share", "server CPU share at saturation", "", "{:.2f}", "median"),
        ("sat_gen_cpu_share", "generator CPU share at saturation", "", "{:.2f}", "median"),
        OTHER_LOAD,
    ],
    "storm": [
        ("resumptions_per_s", "resumptions/s", "higher", "{:.0f}", "median"),
        ("resumptions_per_cpu_s", "resumptions per server CPU-s", "higher", "{:.0f}",
         "median"),
        ("resume_p50_ms", "resumption latency p50 (ms)", "lower", "{:.1f}", "median"),
        ("resume_p99_ms", "resumption latency p99 (ms)", "lower", "{:.1f}", "median"),
        ("resumed", "sessions resumed (sum)", "higher", "{:.0f}", "sum"),
        ("resume_failures", "resumptions failed (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("gap_delivered", "gap messages delivered (sum)", "higher", "{:.0f}", "sum"),
        ("lost", "messages lost (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("duplicates", "messages duplicated (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("server_cpu_share", "server CPU share", "", "{:.2f}", "median"),
        ("gen_cpu_share", "generator CPU share", "", "{:.2f}", "median"),
        OTHER_LOAD,
    ],
    "presence": [
        ("deliveries_per_s", "presence deliveries/s", "higher", "{:.0f}", "median"),
        ("deliveries_per_cpu_s", "presence deliveries per server CPU-s", "higher", "{:.0f}",
         "median"),
        ("lost", "deliveries lost (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("server_cpu_share", "server CPU share", "", "{:.2f}", "median"),
        ("gen_cpu_share", "generator CPU share", "", "{:.2f}", "median"),
        OTHER_LOAD,
    ],
    "muc": [
        ("deliveries_per_s", "groupchat deliveries/s", "higher", "{:.0f}", "median"),
        ("deliveries_per_cpu_s", "groupchat deliveries per server CPU-s", "higher", "{:.0f}",
         "median"),
        ("lost", "deliveries lost (sum, must be 0)", "lower", "{:.0f}", "sum"),
        ("server_cpu_share", "server CPU share", "", "{:.2f}", "median"),
        ("gen_cpu_share", "generator CPU share", "", "{:.2f}", "median"),
        OTHER_LOAD,
    ],
}


METRICS["ws-login"] = METRICS["login"]
METRICS["ws-messages"] = METRICS["messages"]


def _values(runs, key):
    return [r[key] for r in runs if "error" not in r and "skipped" not in r
            and r.get(key) is not None]


def _idle_values(runs, level, key):
    out = []
    for run in runs:
        for entry in run.get("levels", ()):
            if entry["target"] == level and entry.get(key) is not None:
                out.append(entry[key])
    return out


def _cell(values, fmt, aggregate):
    if not values:
        return "—", None
    if aggregate == "sum":
        total = sum(values)
        return fmt.format(total), total
    if aggregate == "max":
        return fmt.format(max(values)), max(values)
    median = statistics.median(values)
    if len(values) == 1:
        return fmt.format(median), median
    return f"{fmt.format(median)} ({fmt.format(min(values))}–{fmt.format(max(values))})", median


def _ratio(a, b, better):
    if a is None or b is None or b == 0:
        return "—"
    ratio = a / b
    if not better:
        return f"{ratio:.2f}"
    good = ratio >= 1 if better == "higher" else ratio <= 1
    return f"{ratio:.2f} {'✓' if good else '✗'}"


def render_table(scenario, results, servers, metrics, values_of):
    """One column per server, then jabberapp / Prosody (the primary ratio) and jabberapp /
    ejabberd, for those that ran."""
    names = list(servers)
    ratios = [r for r in REFERENCES if "jabberapp" in names and r in names]
    header = ("| metric | " + " | ".join(names)
              + "".join(f" | jabberapp / {REFERENCES[r]}" for r in ratios) + " |")
    lines = [header, "|---" * (len(names) + 1 + len(ratios)) + "|"]
    for key, label, better, fmt, aggregate in metrics:
        cells, medians = [], {}
        for name in names:
            text, median = _cell(values_of(results[name], key), fmt, aggregate)
            cells.append(text)
            medians[name] = median
        for reference in ratios:
            cells.append("—" if aggregate == "max"
                         else _ratio(medians["jabberapp"], medians[reference], better))
        arrow = {"higher": " (↑)", "lower": " (↓)"}.get(better, "")
        lines.append(f"| {label}{arrow} | " + " | ".join(cells) + " |")
    return lines


def render(args, results):
    servers = [s for s in SERVERS if s in args.servers]
    out = []
    for scenario in args.scenarios:
        per = results[scenario]
        out.append(f"### {SCENARIO_TITLES[scenario]}")
        out.append("")
        notes = []
        for name in servers:
            runs = per.get(name, [])
            skipped = {r["skipped"] for r in runs if "skipped" in r}
            errors = [r["error"] for r in runs if "error" in r]
            if skipped:
                notes.append(f"- {name}: skipped: {'; '.join(sorted(skipped))}")
            if errors:
                notes.append(f"- {name}: {len(errors)} failed run(s): "
                             + str(errors[0]).replace("\n", " ")[:400])
        if scenario in METRICS:
            if any(_values(per[n], METRICS[scenario][0][0]) for n in servers):
                out += render_table(scenario, per, servers, METRICS[scenario], _values)
        elif scenario == "idle":
            metrics = []
            for level in args.idle_levels:
                metrics.append((f"rss@{level}", f"RSS per session at {level} sessions (KiB)",
                                "lower", "{:.1f}", "median"))
                metrics.append((f"cpu@{level}", f"idle server CPU at {level} sessions "
                                "(% of a core)", "lower", "{:.2f}", "median"))

            def values_of(runs, key):
                kind, level = key.split("@")
                if kind == "rss":
                    return _idle_values(runs, int(level), "rss_per_session_kb")
                return [v * 100 for v in _idle_values(runs, int(level), "idle_cpu_share")]

            metrics.append(("baseline", "baseline RSS before any session (MiB)", "", "{:.1f}",
                            "median"))

            def values_with_baseline(runs, key):
                if key == "baseline":
                    return [r["baseline_rss_kb"] / 1024 for r in runs if "baseline_rss_kb" in r]
                return values_of(runs, key)

            if any(r.get("levels") for n in servers for r in per[n]):
                out += render_table(scenario, per, servers, metrics, values_with_baseline)
        if notes:
            out.append("")
            out += notes
        out.append("")
    return "\n".join(out)


SCENARIO_TITLES = {
    "login": "1. Login storm",
    "messages": "2. One-to-one messages",
    "idle": "3. Idle authenticated sessions",
    "presence": "4. Presence fan-out",
    "muc": "5. MUC fan-out",
    "sm-messages": "6. One-to-one messages with stream management",
    "storm": "7. Reconnect storm with resumption",
    "ws-login": "8. Login storm over WebSocket",
    "ws-messages": "9. One-to-one messages over WebSocket",
}


def describe_run(args, servers, availability, started, extensions, counterparts):
    """The run's metadata; C{counterparts}: server -> (its modules, jabberapp extensions
    it has no counterpart for)."""
    def lscpu(field):
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return "?"
        for line in out.splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
        return "?"

    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    try:
        import uvloop
        uvloop_version = uvloop.__version__
    except ImportError:
        uvloop_version = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": round(time.time() - started),
        "cpu_model": lscpu("Model name"),
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "uvloop": uvloop_version,
        "versions": {name: server.version() for name, server in servers.items()},
        "cpu_availability": availability,
        "jabberapp_extensions": extensions,
        "modules": {name: counterparts[name][0] for name in counterparts if name in servers},
        "unmatched": {name: counterparts[name][1] for name in counterparts if name in servers},
        "args": {k: v for k, v in vars(args).items() if k not in ("results",)},
    }


def write_results(path, label, meta_text, body_text):
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "latest"
    begin, end = f"<!-- run:{slug}:begin -->", f"<!-- run:{slug}:end -->"
    section = f"{begin}\n## {label}\n\n{meta_text}\n{body_text}{end}\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    else:
        text = RESULTS_HEADER
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        _, after = rest.split(end, 1)
        text = before + section + after.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)


RESULTS_HEADER = """\
# Benchmark results: jabberapp, Prosody and ejabberd

Written by `benchmarks/run` (see [README.md](README.md) for how to run it and what each
number means). Every section is one run; a run replaces the section with its `--label` and
keeps the others, so the baseline stays next to later runs. Medians over the rounds, with
min–max in parentheses; ratios are jabberapp / Prosody (the primary one) and jabberapp /
ejabberd: ↑ higher is better, ↓ lower is better, ✓ where jabberapp is at least as good.

## Optimisation log

Each optimisation, the run (label) that measured it, and its effect on the ratios.

| change | run | effect |
|---|---|---|
"""

def render_meta(args, meta):
    a = meta["args"]
    availability = meta["cpu_availability"]
    lines = [
        f"- date: {meta['date']}; run time {meta['duration_s'] // 60} min "
        f"{meta['duration_s'] % 60} s",
        f"- machine: {meta['cpu_model']}, {meta['cpus']} cores, {meta['mem_gib']} GiB RAM, "
        f"Linux {meta['kernel']}; server pinned to core {SERVER_CPU}, generator to core "
        f"{GENERATOR_CPU}",
        "- CPU share a spinning process got on cores 0/1 before each scenario: "
        + ", ".join(f"{a0:.2f}/{a1:.2f}" for a0, a1 in availability)
        + " (1.00 = a whole core; less means other processes or the hypervisor took it: raw "
          "rates are then noisier than per-CPU-second ones)",
        f"- software: Python {meta['python']}, {meta['openssl']}, "
        + "; ".join(meta["versions"].values())
        + f"; generator loop {'uvloop ' + meta['uvloop'] if meta['uvloop'] and a['loop'] != 'asyncio' else 'asyncio'}",
        f"- every server: TLS 1.3 via STARTTLS (same self-signed P-256 certificate, pinned by "
        f"the generator), {a['mechanism']} with {a['iterations']} iterations, no rate limits, "
        f"256 KiB stanza limit, log level warning, TCP_NODELAY (jabberapp sets it on c2s "
        f"sockets, Prosody network_settings.nagle = false, ejabberd sets it on its "
        f"listeners); ejabberd with one BEAM scheduler (+S 1:1)",
        f"- jabberapp extensions: {', '.join(meta['jabberapp_extensions'])}"
        + (f" (left out with --without, with their counterparts: {', '.join(a['without'])})"
           if a.get("without") else "")
        + "".join(f"; {REFERENCES[name]} modules: {', '.join(modules)}"
                  + (f" (no {REFERENCES[name]} counterpart for: "
                     f"{', '.join(meta['unmatched'][name])})"
                     if meta["unmatched"][name] else "")
                  for name, modules in meta["modules"].items()),
        f"- rounds: {a['rounds']} (idle scenario: {min(a['idle_rounds'], a['rounds'])}), "
        f"server order rotating, a fresh server process per scenario",
        f"- parameters: login {a['login_users']} users, {a['login_concurrency']} in flight; "
        f"messages {a['pairs']} pairs (both directions), window {a['window']} per flow, "
        f"{a['warmup']} s warm-up + {a['duration']} s at saturation, then {a['rate']} msgs/s "
        f"for {a['rate_duration']} s; idle {', '.join(map(str, a['idle_levels']))} sessions "
        f"({a['idle_settle']} s settle, {a['idle_window']} s CPU window); presence "
        f"{a['presence_users']} users with {a['contacts']} contacts each, window "
        f"{a['presence_window']} per user, {a['presence_duration']} s; MUC {a['muc_rooms']} "
        f"room(s) of {a['occupants']} occupants, window {a['muc_window']} per occupant, "
        f"{a['muc_duration']} s; stream management messages {a['sm_pairs']} pairs, window "
        f"{a['sm_window']} per flow, {a['sm_duration']} s; storm {a['storm_sessions']} "
        f"sessions cut at once, {a['storm_gap_messages']} messages each during the gap from "
        f"{a['storm_senders']} senders, {a['storm_concurrency']} resuming at a time; "
        "WebSocket scenarios with the login and messages parameters",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
