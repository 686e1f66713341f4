"""
An XML stream (RFC 6120 §4) without I/O: bytes in, parser events out, one at a time, and
stanzas serialised back out -- plus the thin Twisted protocol that s2s and component streams
put on top of it (c2s streams sit on a transport adapter instead: jabberapp.transports).

Theory of operation
-------------------
data_received() feeds the sans-I/O parser and queues its events. Events are handled strictly in
order; a handler that must wait (SASL, binding, storage) returns a Deferred and the queue pauses
until it fires, so a pipelining peer can never overtake its own negotiation. Any StreamError --
from the parser or a handler -- ends the stream: the opening header is sent first when it has
not been yet (RFC 6120 §4.9.1.2), then <stream:error/> and the closing tag, then the TCP close.
Subclasses implement stream_opened(event), element_received(element) and stream_closed(),
and say where bytes go: write_bytes(data) and lose_connection().
"""
import secrets

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from jabberapp.logging import logger
from twisted.python.failure import Failure

from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, prep_domain
from jabberapp.xml import StreamClosed, StreamOpened, StreamParser, serialize, stream_header
from jabberapp.xml.ns import NS_CLIENT

log = logger(__name__)

CLOSE_TAG = b"</stream:stream>"


class XMLStream:
    """The sans-I/O stream: parser, ordered event queue, output; see the module docstring."""

    stream_ns = NS_CLIENT  # the content namespace written on this stream

    def __init__(self, max_stanza_size=262144):
        self.parser = StreamParser(max_stanza_size=max_stanza_size)
        # Events read and not yet handled: the parser's own list and the index of the next
        # one; None when there are none, so an idle stream keeps no queue.
        self._events = None
        self._next = 0
        self._busy = False
        self.header_sent = False
        self.closed = False
        self.stream_id = None

    # -- input ----------------------------------------------------------------------------

    def data_received(self, data):
        """Feed bytes read from the peer; their events are handled in order."""
        if self.closed:
            return
        try:
            events = self.parser.feed(data)
        except StreamError as error:
            # Stanzas completed before the violation are still handled, then the error.
            events = [*getattr(error, "events", ()), error]
        if not events:
            return
        # _queue(events), inline: this runs for every read of every stream.
        if self._events is None:
            self._events, self._next = events, 0
        else:
            self._events.extend(events)
        self._drain()

    def _queue(self, events):
        """Queue C{events} behind those still waiting and handle what may be handled."""
        if self.closed:
            return
        if self._events is None:
            self._events, self._next = events, 0
        else:
            self._events.extend(events)
        self._drain()

    def _drain(self):
        while not self._busy and not self.closed:
            events = self._events
            if events is None:
                return
            index = self._next
            if index == len(events):
                self._events, self._next = None, 0
                return
            event = events[index]
            events[index] = None    # handled elements are not kept while the rest waits
            self._next = index + 1
            try:
                if isinstance(event, StreamError):
                    raise event
                if isinstance(event, StreamOpened):
                    result = self.stream_opened(event)
                elif isinstance(event, StreamClosed):
                    result = self.stream_closed()
                else:
                    result = self.element_received(event)
            except StreamError as error:
                self.close(error)
                return
            except Exception:
                log.failure("stream handler failed")
                self.close(StreamError("internal-server-error"))
                return
            if isinstance(result, defer.Deferred):
                self._busy = True
                result.addBoth(self._resume)

    def _resume(self, result):
        self._busy = False
        if isinstance(result, Failure):
            if result.check(StreamError):
                self.close(result.value)
            else:
                log.failure("stream handler failed", result)
                self.close(StreamError("internal-server-error"))
            return None
        self._drain()
        return None

    def stream_lost(self):
        """The connection is gone: the stream is over, its parser is freed."""
        self.closed = True
        self.parser.close()

    def discard_pending(self):
        """Drop queued events and restart the parser (after STARTTLS and SASL success: bytes
        sent before the restart must not be trusted, RFC 6120 §5.3.4, §6.4.6)."""
        self._events, self._next = None, 0
        self.parser.reset()

    def new_stream_id(self):
        """A fresh unguessable stream id (dialback and SCRAM-less handshakes rely on it)."""
        self.stream_id = secrets.token_hex(16)
        return self.stream_id

    # -- output ---------------------------------------------------------------------------

    def send_header(self, attrs):
        self.write_bytes(stream_header(attrs, self.stream_ns))
        self.header_sent = True

    def send(self, element):
        """Write one stanza or nonza; silently dropped once the stream is closed."""
        if not self.closed:
            self.write_bytes(serialize(element, self.stream_ns))

    def send_serialized(self, data):
        """Write C{data}, what send() writes for an element (serialize(el, stream_ns)),
        serialised once by the caller; silently dropped once the stream is closed."""
        if not self.closed:
            self.write_bytes(data)

    def close(self, error=None):
        """End the stream, sending C{error} (a StreamError) first when given."""
        if self.closed:
            return
        if not self.header_sent:
            self.send_header(self.default_header())
        if error is not None:
            log.info("closing stream: {condition}", condition=error.condition)
            self.write_bytes(serialize(error.to_element(), self.stream_ns))
        self.closed = True
        self.write_bytes(CLOSE_TAG)
        self.lose_connection()

    def default_header(self):
        """Header attributes for an error sent before the peer's header was accepted."""
        return {"version": "1.0"}

    # -- for subclasses ------------------------------------------------------------------

    def write_bytes(self, data):
        """Write C{data} to the peer (a transport's write)."""
        raise NotImplementedError

    def lose_connection(self):
        """Close the connection once what was written has gone."""
        raise NotImplementedError

    def stream_opened(self, event):
        raise NotImplementedError

    def element_received(self, element):
        raise NotImplementedError

    def stream_closed(self):
        """The peer closed its stream: close ours (RFC 6120 §4.4)."""
        self.close()


class XMLStreamProtocol(XMLStream, Protocol):
    """An XMLStream that is its own Twisted protocol (s2s and component streams)."""

    def dataReceived(self, data):
        self.data_received(data)

    def connectionLost(self, reason=None):
        """Subclasses extend this: the stream is over, its parser is freed."""
        self.stream_lost()

    def write_bytes(self, data):
        self.transport.write(data)

    def lose_connection(self):
        self.transport.loseConnection()


def addressed_domain(value, invalid="host-unknown", missing="improper-addressing"):
    """The prepared domain named by a header or dialback attribute; a StreamError with
    C{missing} when it is absent and C{invalid} when it is no domain."""
    if not value:
        raise StreamError(missing, "A 'to' attribute is required")
    try:
        return prep_domain(value)
    except InvalidJID:
        raise StreamError(invalid) from None
