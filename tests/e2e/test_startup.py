"""End to end: a server that cannot start exits with a non-zero status and one clear line
(port in use, corrupt or locked database, unusable data_dir, unreadable certificate), and
SIGHUP is ignored with a log line instead of killing the server."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.e2e.harness import TIMEOUT, ServerProcess, ctl, subprocess_env
from tests.e2e.rawclient import RawClient


def run_server(server):
    """Run the server's twistd until it exits by itself; return (status, output)."""
    result = subprocess.run(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
         "-n", "--pidfile=", "jabberapp", "--config", server.config_path],
        capture_output=True, text=True, cwd=server.directory, env=subprocess_env(),
        timeout=TIMEOUT * 2)
    return result.returncode, result.stdout + result.stderr


def assert_one_line(output, text):
    """C{text} is said on exactly one line, and no traceback is printed."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if text in line]
    assert len(lines) == 1, output


@pytest.fixture
def server(tmp_path):
    """A server with federation off (nothing else listens)."""
    return ServerProcess(tmp_path, s2s="enabled = no")


def test_port_in_use(server):
    """A c2s port another process listens on: status 1 and one critical line naming it."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        status, output = run_server(server)
    assert status == 1, output
    assert_one_line(output, f"could not start: Couldn't listen on 127.0.0.1:{server.port}")


def test_corrupt_database(server):
    """A database file that is not SQLite: status 1 and one line saying so."""
    os.makedirs(server.data_dir)
    with open(os.path.join(server.data_dir, "jabberapp.sqlite"), "wb") as f:
        f.write(b"this is not a database" * 400)
    status, output = run_server(server)
    assert status == 1, output
    assert_one_line(output, "could not start")
    assert "file is not a database" in output


def test_locked_database(server):
    """A database another process holds an exclusive lock on: status 1 and one line."""
    server.adduser("alice@localhost", "secret-password")     # creates the database
    holder = sqlite3.connect(os.path.join(server.data_dir, "jabberapp.sqlite"),
                             isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        status, output = run_server(server)
    finally:
        holder.close()
    assert status == 1, output
    assert_one_line(output, "could not start")
    assert "database is locked" in output


@pytest.mark.parametrize("kind", ["file", "missing parent"])
def test_unusable_data_dir(server, tmp_path, kind):
    """A data_dir that is a file, or cannot be made: status 1, one line, no traceback; and
    check-config reports the same line."""
    if kind == "file":
        path = tmp_path / "a-file"
        path.write_text("not a directory")
        expected = f"[server] data_dir: cannot use {path}: it is not a directory"
    else:
        path = tmp_path / "a-file-parent"
        path.write_text("not a directory")
        path = path / "data"
        expected = f"[server] data_dir: cannot use {path}"
    with open(server.config_path) as f:
        config = f.read().replace(f"data_dir = {server.data_dir}", f"data_dir = {path}")
    with open(server.config_path, "w") as f:
        f.write(config)
    status, output = run_server(server)
    assert status == 1, output
    assert_one_line(output, expected)
    checked = ctl(server.config_path, "check-config")
    assert checked.returncode != 0, checked.stdout
    assert_one_line(checked.stdout + checked.stderr, expected)


def test_unreadable_certificate(server, tmp_path):
    """A certificate file that is not PEM: status 1 and one line naming it."""
    bad = tmp_path / "bad.pem"
    bad.write_text("garbage")
    with open(server.config_path, "a") as f:
        f.write(f"[tls]\ncertificate = {bad}\nprivate_key = {bad}\n")
    status, output = run_server(server)
    assert status == 1, output
    assert_one_line(output, f"{bad}: not a PEM certificate file")


def test_sighup_is_ignored_with_a_log_line(server):
    """SIGHUP does not stop the server: it says it ignored it and still serves clients."""
    with server:
        server.process.send_signal(signal.SIGHUP)
        for _ in server.lines_until(lambda line: "SIGHUP received and ignored" in line):
            pass
        assert server.process.poll() is None
        with RawClient(server.port, server.certificate) as client:
            features = client.open_stream()
        assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is not None
    assert "Traceback" not in server.log()
