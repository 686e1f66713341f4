"""
Fuzzing target for the real parser and the real stream machines (outside the test suite).

Run it with ``benchmarks/fuzz/run`` (it installs atheris, writes a seed corpus, then runs a
bounded number of inputs). Every input is a byte string; its first byte picks a target:

  0  the sans-I/O StreamParser alone, fed in chunks whose sizes come from the input;
  1  a c2s stream before authentication (stream header, STARTTLS, SASL, pre-auth IQs);
  2  a c2s stream of a bound session on a host with every built-in extension installed
     (in-memory storage): what a logged-in client can send to the whole server;
  3  an external component stream (XEP-0114) after its handshake.

Seeds are generated, not recorded: well-formed streams and one stanza for every IQ
handler the installed extensions registered, plus messages and presences for users, rooms
and pubsub; libFuzzer's mutations (coverage-guided, through atheris) do the rest.

A finding is anything that escapes: an exception out of dataReceived or out of the parser
other than StreamError, or a logged failure (the stream layer and the dispatcher catch our
own bugs, log them with a traceback and answer internal-server-error; for the fuzzer each
of those is a bug). Time is a task.Clock advanced after each input, so timers fire too.
Every few thousand inputs the host is rebuilt, so stored state (rosters, items) stays
bounded whatever the input.
"""
import base64
import contextlib
import hashlib
import os
import re
import sys

from lxml import etree
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, globalLogPublisher

try:
    import atheris
except ImportError:     # writing the seed corpus needs no fuzzer
    atheris = None

# Coverage feedback for libFuzzer: instrument jabberapp's own modules as they are imported.
with (atheris.instrument_imports(include=["jabberapp"]) if atheris is not None
      else contextlib.nullcontext()):
    from jabberapp import server as server_module
    from jabberapp.auth import InternalAuthProvider
    from jabberapp.c2s import stream as c2s
    from jabberapp.component.accept import ComponentFactory
    from jabberapp.config import ComponentConfig
    from jabberapp.errors import StreamError
    from jabberapp.host import VirtualHost
    from jabberapp.router import Router
    from jabberapp.sasl.scram import derive_all
    from jabberapp.sasl.throttle import FailureThrottle
    from jabberapp.storage.memory import MemoryStorage
    from jabberapp.xml import StreamParser
    # The extensions are imported here too, so that their code is instrumented.
    EXTENSIONS = server_module.select_extensions(server_module.discover_extensions(), None)

DOMAIN = "example.org"
PASSWORD = "fuzz"
HEADER = (f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>").encode()
COMPONENT = "gateway.example.org"
COMPONENT_SECRET = "s3cret"
COMPONENT_HEADER = (f"<stream:stream to='{COMPONENT}' xmlns='jabber:component:accept' "
                    "xmlns:stream='http://etherx.jabber.org/streams'>").encode()
REBUILD_EVERY = 5000

TARGETS = ("parser", "c2s-preauth", "c2s-bound", "component")


class Finding(Exception):
    """An input made the server fail in a way it must not."""


class TLSStringTransport(StringTransport):
    """Records STARTTLS instead of doing it: the machine then behaves as over TLS."""

    def startTLS(self, options):
        pass


class World:
    """One host with every built-in extension, a c2s factory and a component factory."""

    def __init__(self):
        self.clock = Clock()
        storage = MemoryStorage()
        credentials = derive_all(PASSWORD, 4096)
        for user in ("alice", "bob"):
            storage.accounts.create(DOMAIN, user, credentials)
        auth = InternalAuthProvider(storage.accounts, _memoised)
        self.router = Router()
        self.host = VirtualHost(DOMAIN, self.router, storage, auth, self.clock, self.clock)
        for extension in EXTENSIONS:
            defaults = {option.name: option.default for option in extension.options}
            self.host.install(extension, defaults)
        hosts = {DOMAIN: self.host}
        self.c2s = c2s.C2SFactory(hosts, tls_options=object(), clock=self.clock,
                                  throttle=FailureThrottle(self.clock))
        self.components = ComponentFactory(self.router, hosts, _component_settings(),
                                           self.clock)
        # One read per step: bytes after a stream restart in the same read are discarded.
        self.login = (
            HEADER, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", HEADER,
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
            + base64.b64encode(f"\0alice\0{PASSWORD}".encode()) + b"</auth>",
            HEADER, b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>fuzz</resource></bind></iq>")

    def iq_seeds(self):
        """One get and one set for every IQ payload some extension handles."""
        seeds = []
        for type_, tag, addressee in self.host.dispatcher._iq_table:
            qname = etree.QName(tag)
            to = {"host": DOMAIN, "bare": f"alice@{DOMAIN}"}.get(addressee, DOMAIN)
            seeds.append(f"<iq type='{type_}' id='s' to='{to}'>"
                         f"<{qname.localname} xmlns='{qname.namespace}'/></iq>".encode())
        return seeds


_derived = {}


def _memoised(fn, *args):
    """Run C{fn} as the server's thread pool would, remembering results: the fuzzing
    account's password is derived once, not on every login (PBKDF2 would dominate)."""
    key = (fn, args)
    if key not in _derived:
        _derived[key] = fn(*args)
    return defer.succeed(_derived[key])


def _component_settings():
    return (ComponentConfig(domain=COMPONENT, secret=COMPONENT_SECRET),)


def _component_handshake(protocol, transport):
    """Open the component stream and answer its handshake (XEP-0114 §3) correctly."""
    protocol.dataReceived(COMPONENT_HEADER)
    stream_id = re.search(rb"id=['\"]([^'\"]+)", transport.value()).group(1)
    digest = hashlib.sha1(stream_id + COMPONENT_SECRET.encode()).hexdigest()
    protocol.dataReceived(f"<handshake>{digest}</handshake>".encode())


class Fuzzer:
    """Runs one input against one target; counts inputs; turns failures into Findings."""

    def __init__(self):
        self.world = World()
        self.runs = 0
        self.failures = []
        globalLogPublisher.addObserver(self._observe)

    def _observe(self, event):
        if event.get("log_failure") is not None or event.get("log_level") in (
                LogLevel.error, LogLevel.critical):
            self.failures.append(event)

    def __call__(self, data: bytes):
        self.runs += 1
        if self.runs % REBUILD_EVERY == 0:
            self.world = World()
        if not data:
            return
        target, body = data[0] % len(TARGETS), data[1:]
        self.failures.clear()
        if target == 0:
            self._parser(body)
        elif target == 1:
            self._stream(self.world.c2s, None, body)
        elif target == 2:
            self._stream(self.world.c2s, self._log_in, body)
        else:
            self._stream(self.world.components, _component_handshake, body)
        if self.failures:
            event = self.failures[0]
            failure = event.get("log_failure")
            detail = failure.getTraceback() if failure is not None else repr(event)
            raise Finding(f"{TARGETS[target]}: logged failure for input {data!r}\n{detail}")

    def _log_in(self, protocol, transport):
        for step in self.world.login:
            protocol.dataReceived(step)
        if b"<jid>" not in transport.value():
            raise Finding("the fuzzing account could not log in: " + repr(transport.value()))

    def _parser(self, body):
        parser = StreamParser(max_stanza_size=4096)
        cut = body[0] if body else 0
        chunks = [body[i:i + cut + 1] for i in range(1, len(body), cut + 1)] or [b""]
        try:
            for chunk in chunks:
                parser.feed(chunk)
        except StreamError:
            pass
        finally:
            parser.close()

    def _stream(self, factory, prefix, body):
        protocol = factory.buildProtocol(None)
        transport = TLSStringTransport()
        protocol.makeConnection(transport)
        try:
            if prefix is not None:
                prefix(protocol, transport)
            # Two feeds: a stanza split across reads must behave like one read.
            half = len(body) // 2
            protocol.dataReceived(body[:half])
            protocol.dataReceived(body[half:])
            self.world.clock.advance(120)
        finally:
            protocol.connectionLost(None)
            self.world.clock.advance(120)


def seeds(world):
    """Generated, well-formed inputs for every target."""
    stanzas = [
        b"<message to='bob@example.org' type='chat' id='m'><body>hi</body></message>",
        b"<message to='bob@example.org/x'><body>x</body><request xmlns='urn:xmpp:receipts'/>"
        b"</message>",
        b"<presence/>",
        b"<presence><show>away</show><priority>5</priority>"
        b"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
        b"<presence to='bob@example.org' type='subscribe'/>",
        b"<presence to='bob@example.org' type='subscribed'/>",
        b"<presence to='room@conference.example.org/nick'>"
        b"<x xmlns='http://jabber.org/protocol/muc'/></presence>",
        b"<message to='room@conference.example.org' type='groupchat'><body>x</body></message>",
        b"<iq type='set' id='p' to='pubsub.example.org'>"
        b"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item id='1'>"
        b"<entry xmlns='urn:x'/></item></publish></pubsub></iq>",
        b"<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='bob@example.org'"
        b" name='Bob'><group>g</group></item></query></iq>",
        b"<iq type='set' id='k'><block xmlns='urn:xmpp:blocking'>"
        b"<item jid='eve@example.org'/></block></iq>",
        b"<iq type='get' id='d' to='conference.example.org'>"
        b"<query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    ] + world.iq_seeds()
    out = []
    for stanza in stanzas:
        out.append(bytes([2]) + stanza)
    out.append(bytes([0, 7]) + HEADER + b"".join(stanzas[:4]) + b"</stream:stream>")
    out.append(bytes([1]) + HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
               + HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
               b"mechanism='SCRAM-SHA-1'>biwsbj1hbGljZSxyPWZ5a2NrbG5vZg==</auth>")
    out.append(bytes([1]) + HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
               + HEADER + b"<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>")
    out.append(bytes([3]) + b"<message from='a@gateway.example.org' to='alice@example.org'><body>x</body>"
               b"</message>")
    return out


def main(argv):
    """Fuzz until libFuzzer's -runs are done; it prints the count and inputs/s at the end
    (-print_final_stats=1), and stops at the first Finding with the input saved."""
    atheris.Setup(argv, Fuzzer())
    atheris.Fuzz()


def write_corpus(directory):
    """Write the generated seeds into C{directory} (one file each)."""
    os.makedirs(directory, exist_ok=True)
    for index, seed in enumerate(seeds(World())):
        with open(os.path.join(directory, f"seed-{index:03d}"), "wb") as f:
            f.write(seed)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-corpus":
        write_corpus(sys.argv[2])
    else:
        main(sys.argv)
