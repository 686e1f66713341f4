"""
End to end over real sockets: clients whose only channel-binding type is one we do not offer
(tls-unique, undefined on TLS 1.3 by RFC 9266) still log in, none of their refused attempts is
counted as a guessed password, and the downgrade check of RFC 5802 §6 still holds.

The legacy client is slixmpp 1.8.3 (Debian 12's release, used by poezio) with its default
mechanism choice, installed with pip into a directory of its own and run in a subprocess with
that directory first on PYTHONPATH; the rest of the suite uses the installed slixmpp.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from tests.e2e.harness import TIMEOUT, ServerProcess
from tests.e2e.rawclient import (
    RawClient,
    SASLFailed,
    channel_binding_types,
    mechanisms,
)

LEGACY_SLIXMPP = "1.8.3"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "legacy_slixmpp_client.py")
PASSWORD = "legacy pässword"
TLS_UNIQUE = b"\x05" * 12          # what a client would send as its tls-unique data
PLUS = ("SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS")
NON_PLUS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1")
# More than the stream allows counted failures (MAX_SASL_ATTEMPTS in jabberapp.c2s.stream).
REPEATS = 6


@pytest.fixture(scope="module")
def legacy_slixmpp():
    """A directory holding slixmpp 1.8.3 only, installed once per machine and release."""
    target = os.path.join(tempfile.gettempdir(), f"jabberapp-tests-slixmpp-{LEGACY_SLIXMPP}")
    if not os.path.isdir(os.path.join(target, "slixmpp")):
        staging = tempfile.mkdtemp(prefix="slixmpp-", dir=tempfile.gettempdir())
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--target", staging, f"slixmpp=={LEGACY_SLIXMPP}"],
            capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            message = f"cannot install slixmpp {LEGACY_SLIXMPP}: {result.stderr[-2000:]}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        try:
            os.rename(staging, target)  # atomic: a parallel run either wins or finds it there
        except OSError:
            pass
    return target


def run_legacy(server, legacy_slixmpp, jid="alice@localhost", password=PASSWORD):
    """Run the slixmpp 1.8.3 client script against C{server}: (exit status, its report)."""
    env = dict(os.environ, PYTHONPATH=legacy_slixmpp)
    result = subprocess.run([sys.executable, SCRIPT, jid, password, str(server.port),
                             server.certificate],
                            capture_output=True, text=True, env=env, timeout=3 * TIMEOUT)
    lines = result.stdout.strip().splitlines()
    assert lines, f"no report from the legacy client:\n{result.stderr[-3000:]}"
    return result.returncode, json.loads(lines[-1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("legacy-cb"))
    server.adduser("alice@localhost", PASSWORD)
    with server:
        yield server


@pytest.fixture(scope="module")
def server_without_plus(tmp_path_factory):
    """A server whose operator left out PLAIN and every -PLUS mechanism."""
    server = ServerProcess(tmp_path_factory.mktemp("legacy-noplus"))
    with open(server.config_path) as f:     # the harness writes [auth] already
        config = f.read()
    with open(server.config_path, "w") as f:
        f.write(config.replace("[auth]\n", "[auth]\nmechanisms = SCRAM-SHA-256, SCRAM-SHA-1\n", 1))
    server.adduser("alice@localhost", PASSWORD)
    with server:
        yield server


def secured(server):
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    return client, client.starttls()


def test_slixmpp_1_8_default_login(server, legacy_slixmpp):
    """slixmpp 1.8.3 with its defaults logs in over TLS 1.3 and gets its ping answered, again
    and again from the same address, after its tls-unique and 'y' attempts were refused."""
    for _ in range(3):
        status, report = run_legacy(server, legacy_slixmpp)
        assert report["version"] == LEGACY_SLIXMPP
        assert report["stream_error"] is None, report
        assert status == 0 and report["pinged"], report
        tried = [mechanism for mechanism, _ in report["attempts"]]
        # The path of issue 11: every -PLUS with tls-unique, every SCRAM with 'y', then PLAIN.
        assert tried == [*PLUS, *NON_PLUS, "PLAIN"], report
        assert report["attempts"][-1] == ["PLAIN", "success"], report


def test_refusals_are_not_counted(server):
    """An unsupported binding type and the 'y' flag, each refused more often than a stream
    allows counted failures, leave the stream open, the throttle without a record of this
    address (a wrong password right after is answered at once) and the account usable."""
    client, features = secured(server)
    with client:
        assert client.tls_version == "TLSv1.3"
        assert "tls-unique" not in channel_binding_types(features)
        for _ in range(REPEATS):
            with pytest.raises(SASLFailed) as failed:
                client.authenticate("SCRAM-SHA-256-PLUS", "alice", PASSWORD,
                                    cb_type="tls-unique", cb_data=TLS_UNIQUE)
            assert failed.value.condition == "malformed-request"
        for _ in range(REPEATS):
            with pytest.raises(SASLFailed) as failed:
                client.authenticate("SCRAM-SHA-256", "alice", PASSWORD, gs2_header="y,,")
            assert failed.value.condition == "not-authorized"

        # The throttle doubles its delay per counted failure (1 s for the first one): twelve
        # counted failures would hold this answer for its 30 s cap.
        with RawClient(server.port, server.certificate) as other:
            other.open_stream()
            other.starttls()
            started = time.monotonic()
            with pytest.raises(SASLFailed) as failed:
                other.authenticate("SCRAM-SHA-256", "alice", "wrong password")
            assert failed.value.condition == "not-authorized"
            assert time.monotonic() - started < 5

        # Still the same stream: it was never closed for too many failures.
        client.authenticate("SCRAM-SHA-256-PLUS", "alice", PASSWORD, cb_type="tls-exporter")
        assert client.bind("after") == "alice@localhost/after"


def test_y_after_unsupported_type_is_still_a_downgrade(server):
    """'y' right after a refused tls-unique request on the same stream is still refused: a man
    in the middle could have sent that request himself, so it proves nothing."""
    client, features = secured(server)
    with client:
        assert "SCRAM-SHA-256-PLUS" in mechanisms(features)
        with pytest.raises(SASLFailed):
            client.authenticate("SCRAM-SHA-512-PLUS", "alice", PASSWORD,
                                cb_type="tls-unique", cb_data=TLS_UNIQUE)
        with pytest.raises(SASLFailed) as failed:
            client.authenticate("SCRAM-SHA-512", "alice", PASSWORD, gs2_header="y,,")
        assert failed.value.condition == "not-authorized"


def test_without_plus_the_y_flag_logs_in(server_without_plus, legacy_slixmpp):
    """With PLAIN and every -PLUS left out, no binding is advertised (XEP-0440) and slixmpp
    1.8.3 logs in with SCRAM and its 'y' flag, which is right then (RFC 5802 §6)."""
    client, features = secured(server_without_plus)
    with client:
        assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
        assert channel_binding_types(features) == []
    status, report = run_legacy(server_without_plus, legacy_slixmpp)
    assert status == 0 and report["pinged"], report
    assert report["attempts"] == [["SCRAM-SHA-256", "success"]], report
