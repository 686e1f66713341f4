"""Process measurements from /proc: CPU seconds (utime + stime, all threads) and VmRSS."""
from __future__ import annotations

import os
import resource
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process C{pid} (every thread), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    """Resident set size of C{pid} in KiB (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Window:
    """CPU of the server and of this process (the generator) over a wall-clock window."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid
        self.wall = time.perf_counter()
        self.own = own_cpu_seconds()
        self.server = cpu_seconds(server_pid) if server_pid else None

    def close(self) -> dict:
        wall = time.perf_counter() - self.wall
        own = own_cpu_seconds() - self.own
        result = {"wall_s": wall, "gen_cpu_s": own, "gen_cpu_share": own / wall if wall else 0.0}
        if self.server_pid:
            server = cpu_seconds(self.server_pid) - self.server
            result["server_cpu_s"] = server
            result["server_cpu_share"] = server / wall if wall else 0.0
        return result
