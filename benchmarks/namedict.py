"""
Memory kept by element and attribute names a peer invents (issue 11): run by hand, not in the
suite.

libxml2 interns every element name, attribute name, namespace prefix and namespace URI it
parses in a dictionary that only ever grows; lxml 6 shares one such dictionary per thread
between all parsers and documents.  This feeds 1 000 000 stanzas, each with names no other
stanza uses::

    <message><x{n} xmlns='urn:n{n}' a{n}='v'/></message>

through the real StreamParser, either all within one stream ("one") or spread over 1 000 streams
(each opened, fed and closed in turn: "many"), or over 1 000 streams with each stanza also
copied into a server-built element outside the parser, as handlers do for presence
broadcasts, MUC, carbons and offline storage ("copies"), or over 1 000 logged-in c2s sessions
of the real server (every built-in extension, in-memory storage, driven in-process as
benchmarks/fuzz/streams.py does) sending such messages to their own account, presences and
IQs to the server in turn ("c2s"), and prints the resident set size (VmRSS) before, after the
stanzas and after the streams and stanzas are gone (after gc and malloc_trim, so that what is
left is what is still referenced).  Every run is its own process.

    python3 benchmarks/namedict.py            # both cases, 1 000 000 names
    python3 benchmarks/namedict.py one 200000 # one case, fewer names
"""
import ctypes
import gc
import subprocess
import sys
import time

STREAM_HEADER = (b"<stream:stream xmlns='jabber:client' "
                 b"xmlns:stream='http://etherx.jabber.org/streams' to='example.org' "
                 b"version='1.0'>")
BATCH = 100     # stanzas per feed() call, as a busy TCP read would deliver them


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settle() -> int:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return rss_kib()


def stanzas(first: int, count: int):
    for n in range(first, first + count):
        yield f"<message><x{n} xmlns='urn:n{n}' a{n}='v'/></message>".encode()


def feed_stream(parser_class, first: int, count: int, copy=None) -> None:
    parser = parser_class()
    parser.feed(STREAM_HEADER)
    batch = []
    for data in stanzas(first, count):
        batch.append(data)
        if len(batch) == BATCH:
            for event in parser.feed(b"".join(batch)):
                if copy is not None and not hasattr(event, "attrs"):
                    copy(event)
            batch = []
    if batch:
        parser.feed(b"".join(batch))
    try:
        parser.feed(b"</stream:stream>")
    except Exception as err:        # a parser that refuses the stream first: report, go on
        print(f"  stream ended with {type(err).__name__}: {err}")
    parser.close()


def c2s_world():
    """The server of benchmarks/fuzz/streams.py, and its transport class."""
    sys.modules.setdefault("atheris", None)     # no coverage instrumentation here
    from benchmarks.fuzz.streams import TLSStringTransport, World
    return World(), TLSStringTransport


def c2s_case(world, transport_class, streams: int, per_stream: int, peak: list,
             base: int = 0) -> int:
    """Log in `streams` times and send `per_stream` stanzas with unique names each time;
    returns the number of sessions the server ended itself."""
    ended = 0
    for index in range(streams):
        protocol = world.c2s.buildProtocol(None)
        transport = transport_class()
        protocol.makeConnection(transport)
        for step in world.login:
            protocol.dataReceived(step)
        first = base + index * per_stream
        batch = []
        for n in range(first, first + per_stream):
            payload = f"<x{n} xmlns='urn:n{n}' a{n}='v'/>"
            kind = n % 3
            if kind == 0:
                # headline: delivered to the sender's own session, neither archived nor stored
                batch.append(f"<message to='alice@example.org' type='headline'>{payload}"
                             "</message>")
            elif kind == 1:
                batch.append(f"<presence>{payload}</presence>")
            else:
                batch.append(f"<iq type='get' id='i{n}' to='example.org'>{payload}</iq>")
            if len(batch) == BATCH:
                protocol.dataReceived("".join(batch).encode())
                batch = []
        if transport.disconnecting:
            ended += 1
        peak[0] = max(peak[0], rss_kib())
        protocol.connectionLost(None)
        world.clock.advance(120)
    return ended


def run(case: str, names: int) -> None:
    sys.path.insert(0, ".")
    from jabberapp.errors import StreamError
    from jabberapp.xml import StreamParser, element
    streams = 1 if case == "one" else 1000
    copy = None
    if case == "copies":
        import copy as copy_module

        def copy(stanza):
            # What a handler does with a peer's stanza: wrap a copy in an element of its own.
            wrapper = element("urn:xmpp:forward:0", "forwarded")
            wrapper.append(copy_module.deepcopy(stanza))
    per_stream = names // streams
    if case == "c2s":
        world, transport_class = c2s_world()
        # Warm up (first logins, caches) with names the measured part does not use.
        c2s_case(world, transport_class, 20, 100, [0], base=10**9)
    before = settle()
    started = time.perf_counter()
    refused = 0
    peak = before
    if case == "c2s":
        highest = [peak]
        refused = c2s_case(world, transport_class, streams, per_stream, highest)
        peak = highest[0]
        streams = 0
    for index in range(streams):
        try:
            feed_stream(StreamParser, index * per_stream, per_stream, copy)
        except StreamError as err:
            refused += 1
            if refused == 1:
                print(f"  stream refused: {err.condition} ({err.text})")
        peak = max(peak, rss_kib())
    elapsed = time.perf_counter() - started
    after = settle()
    # Does a name never seen before still parse (libxml2 caps a dictionary at 100 MB)?
    probe = StreamParser()
    probe.feed(STREAM_HEADER)
    try:
        probe.feed(b"<message><never-seen-before-name xmlns='urn:probe'/></message>")
        fresh = "yes"
    except StreamError as err:
        fresh = f"no ({err.condition})"
    streams = streams or names // per_stream
    print(f"{case}: {names} unique names in {streams} stream(s) of {per_stream} stanzas, "
          f"{elapsed:.1f} s, {refused} stream(s) refused")
    print(f"  VmRSS before {before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
          f"after the streams are gone {after / 1024:.1f} MiB "
          f"(kept: {(after - before) / 1024:+.1f} MiB); a new name parses afterwards: {fresh}")


def main(argv):
    if len(argv) >= 2:
        run(argv[0], int(argv[1]))
        return
    cases = [argv[0]] if argv else ["one", "many", "copies", "c2s"]
    for case in cases:
        subprocess.run([sys.executable, __file__, case, "1000000"], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
