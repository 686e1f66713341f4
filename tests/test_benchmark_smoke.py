"""
A tiny run of the benchmark load generator (benchmarks/loadgen) against a real jabberapp
server, so the generator cannot rot: a few sessions log in the whole way, a few messages
travel, none is lost, a small room's fan-out (the loop the presence and MUC scenarios
share) counts every copy, messages with stream management arrive once and are acknowledged,
a tiny reconnect storm resumes every session, and the login and message scenarios run over
WebSocket (RFC 7395) too. Nothing about speed is measured or asserted here (benchmarks/run does
that, outside the test suite).
"""
import asyncio
import os
import subprocess
import sys

import pytest

from benchmarks.loadgen import muc, scenarios, smscenarios
from benchmarks.loadgen.__main__ import SCENARIOS
from benchmarks.loadgen.client import Target
from tests.e2e.harness import ROOT, ServerProcess, subprocess_env

PASSWORD = "bench-password"
USERS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Rooms open on first join, as the benchmark configures jabberapp.
    # [http] on (its TLS port serves /xmpp-websocket), as the benchmark runs jabberapp.
    server = ServerProcess(tmp_path_factory.mktemp("bench"), http="",
                           config="[extension:muc]\nlock_new_rooms = no\n")
    # The benchmark's own bulk account creation (one process, one PBKDF2 per hash).
    created = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "provision_jabberapp.py"),
         "--config", server.config_path, "--host", "localhost", "--password", PASSWORD,
         "--iterations", "4096", "--salt", os.urandom(16).hex(), f"u:{USERS}"],
        capture_output=True, text=True, env=subprocess_env(), cwd=ROOT, timeout=60)
    assert created.returncode == 0, created.stderr
    with server:
        yield server


def _target(server):
    return Target(port=server.port, cafile=server.certificate, password=PASSWORD,
                  server_pid=server.process.pid, timeout=20, ws_port=server.https_port)


def _run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_generator_sessions_log_in(server):
    """Generator sessions log in like real clients: STARTTLS, SCRAM, bind, roster, presence."""
    result = _run(scenarios.login_storm(_target(server), users=USERS, concurrency=2))
    assert (result["logins"], result["failures"]) == (USERS, 0), result["errors"]
    assert result["login_p99_ms"] > 0 and result["server_cpu_s"] >= 0


def test_generator_messages_arrive_once_each(server):
    """Messages between two online pairs all reach their addressee once, none bounces."""
    result = _run(scenarios.messages(_target(server), pairs=2, window=3, warmup_s=0.1,
                                     duration_s=0.3, rate=100, rate_duration_s=0.3,
                                     drain_s=5.0))
    assert result["total_sent"] > 0
    assert result["total_delivered"] == result["total_sent"]
    assert (result["lost"], result["duplicates"], result["misdirected"],
            result["error_stanzas"]) == (0, 0, 0, 0)
    assert result["rate_p99_ms"] is not None


def test_generator_muc_fan_out_counts_every_copy(server):
    """In a room of three, every groupchat message reaches the two others and its sender."""
    result = _run(muc.muc(_target(server), rooms=1, occupants=3, window=1, warmup_s=0.1,
                          duration_s=0.3, drain_s=5.0, settle_max_s=5.0))
    assert "error" not in result and "skipped" not in result, result
    assert result["messages_sent"] > 0
    assert result["deliveries"] == 2 * result["messages_sent"]
    assert (result["lost"], result["echoes_missing"], result["disconnected"]) == (0, 0, 0)
    assert result["deliveries_per_s"] > 0


def test_generator_sm_messages_arrive_once_and_are_acknowledged(server):
    """With stream management on every client, each message arrives once and the server's h
    ends equal to what each client sent."""
    result = _run(smscenarios.sm_messages(_target(server), pairs=2, window=3, warmup_s=0.1,
                                          duration_s=0.3, drain_s=5.0))
    assert "error" not in result, result
    assert result["total_sent"] > 0
    assert result["total_delivered"] == result["total_sent"]
    assert (result["lost"], result["duplicates"], result["misdirected"],
            result["error_stanzas"], result["unacked_sessions"],
            result["disconnected"]) == (0, 0, 0, 0, 0, 0)
    assert result["client_requests_answered"] > 0


def test_generator_storm_resumes_every_session_and_delivers_the_gap_once(server):
    """Sessions whose TCP connections are reset at once all resume, and every message sent
    to them meanwhile arrives exactly once."""
    result = _run(smscenarios.storm(_target(server), sessions=3, senders=1, concurrency=3,
                                    login_concurrency=2, gap_s=0.2, drain_s=5.0))
    assert "error" not in result, result
    assert (result["resumed"], result["resume_failures"]) == (3, 0), result["errors"]
    assert result["gap_delivered"] == result["gap_sent"] == 6
    assert (result["lost"], result["duplicates"], result["misdirected"],
            result["unacked_at_resume"], result["unacked_sessions"]) == (0, 0, 0, 0, 0)
    assert result["resumptions_per_s"] > 0


def test_generator_websocket_sessions_log_in(server):
    """Generator sessions log in over WebSocket: wss, upgrade with xmpp, <open/>, SCRAM,
    bind, roster, presence."""
    result = _run(SCENARIOS["ws-login"](_target(server), users=USERS, concurrency=2))
    assert "skipped" not in result, result
    assert (result["logins"], result["failures"]) == (USERS, 0), result["errors"]


def test_generator_websocket_messages_arrive_once_each(server):
    """Messages between pairs over WebSocket (a frame each) all reach their addressee once."""
    result = _run(SCENARIOS["ws-messages"](_target(server), pairs=2, window=3, warmup_s=0.1,
                                           duration_s=0.3, rate=100, rate_duration_s=0.3,
                                           drain_s=5.0))
    assert "skipped" not in result and "error" not in result, result
    assert result["total_sent"] > 0
    assert result["total_delivered"] == result["total_sent"]
    assert (result["lost"], result["duplicates"], result["misdirected"],
            result["error_stanzas"], result["disconnected"]) == (0, 0, 0, 0, 0)
