"""
End to end over real sockets: password guesses sent from parallel connections that drop at once,
without waiting for the answer, are throttled before they are checked (issue 11, gap 2), and the
owner's correct password still gets in once the delay has passed.

The number of guesses checked is read from the server's own log ("SASL failure not-authorized"
lines, one per checked wrong password), never from timings on the client: the server may only be
slower than its schedule, so counting after T seconds bounds what it checked in T seconds.
"""
import base64
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.harness import ServerProcess
from tests.e2e.rawclient import NS_SASL, RawClient

PASSWORD = "the right one"
GUESSES = 24
PARALLEL = 6
CHECKED = "SASL failure not-authorized"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("guessing"))
    server.adduser("alice@localhost", PASSWORD)
    with server:
        yield server


def guess_and_drop(server, password):
    """Send one PLAIN guess for alice over TLS and drop the connection without waiting."""
    client = RawClient(server.port, server.certificate)
    try:
        client.open_stream()
        client.starttls()
        message = base64.b64encode(f"\0alice\0{password}".encode()).decode()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{message}</auth>")
    finally:
        client._sock.close()    # abruptly: no closing tag, no TLS close_notify


def checked(server):
    """How many wrong passwords the server has checked so far, by its own log."""
    return sum(CHECKED in line for line in list(server.output))


def test_abandoned_guesses_are_bounded(server):
    """Guesses from parallel connections that drop at once are checked at most at the
    throttle's doubling pace (1, 2, 4... s apart), and the owner logs in after the delay."""
    before = checked(server)
    started = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(lambda i: guess_and_drop(server, f"guess {i}"), range(GUESSES)))
    # Let the server see every guess and drop (each connection is gone on our side already).
    time.sleep(2)
    elapsed = time.monotonic() - started
    done = checked(server) - before
    # The throttle lets checks on one account start at 0, 1, 3, 7, 15... s: in T seconds at
    # most floor(log2(T + 1)) + 1 of them. Without it all GUESSES are checked at once.
    assert 1 <= done <= math.floor(math.log2(elapsed + 1)) + 1, (done, elapsed)

    # The owner is never locked out: the correct password succeeds once the delay is over.
    with RawClient(server.port, server.certificate, timeout=90) as owner:
        owner.open_stream()
        owner.starttls()
        message = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        owner.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{message}</auth>")
        owner.expect(f"{{{NS_SASL}}}success")
    assert checked(server) - before == done
