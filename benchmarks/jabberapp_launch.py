"""
Start ``twistd`` for the benchmark, with TCP_NODELAY on accepted sockets when
JABBERAPP_BENCH_NODELAY=1.

Why: the issue asks for TCP_NODELAY on both servers. Prosody has an option for it
(network_settings.nagle = false); jabberapp (and Twisted's TCP server transport) leaves Nagle's
algorithm on and has no option yet. Until it has one, this benchmark-only shim sets the
socket option on each accepted connection, before any byte is written, so both servers are
measured alike. Nothing else of the server is changed.
"""
import os
import sys


def _enable_nodelay():
    from twisted.internet import tcp

    original = tcp.Server.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.setTcpNoDelay(True)

    tcp.Server.__init__ = __init__


if __name__ == "__main__":
    if os.environ.get("JABBERAPP_BENCH_NODELAY") == "1":
        _enable_nodelay()
    from twisted.scripts.twistd import run

    sys.argv[0] = "twistd"
    run()
