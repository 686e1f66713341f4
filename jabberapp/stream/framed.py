"""
The c2s stream over transports that carry whole elements instead of one XML document:
WebSocket (RFC 7395) and BOSH (XEP-0124, XEP-0206).

Theory of operation
-------------------
A FramedClientStream is a ClientStream (jabberapp.stream.negotiation): the same steps, limits,
session and event queue. Only its edges differ:

  in:   open_received(attrs)   the client opens (or, after SASL success, restarts) the
                               stream: RFC 7395 <open/>, a BOSH session request or restart;
                               checked as a stream header is ('to' -> host-unknown,
                               version -> unsupported-version)
        frame_received(data)   one WebSocket message: exactly one complete element; an
                               <open/> or <close/> of the framing namespace opens or
                               closes the stream
        elements_received(data)  zero or more complete elements (a BOSH body's content)
        close_received()       the client closed its stream (RFC 7395 <close/>, BOSH
                               terminate)
  out:  transport.open(attrs), transport.write(one element), transport.close_stream(error)
        (jabberapp.interfaces.IFramedTransport)

Elements go through the stream's own StreamParser, fed a stream header of its own after
every reset: each frame is parsed like a stanza of a TCP stream (restricted XML, the stanza
size and depth limits, detached into a document of its own) and must leave the parser between
elements, so a frame holding half an element, two elements or a stray </stream:stream> is a
not-well-formed stream error. Opening, elements and closing share the event queue, so a
client's <open/> after SASL success waits for the success like a stream header does, and
restart() (STARTTLS is never offered here; SASL success) drops what was queued behind it.
An element before the stream is opened, or a second opening without a restart, is
not-well-formed too.

Output needs no change of the TCP path: send() serialises each element standalone (it
declares its namespaces: <message xmlns="jabber:client">) and hands it to transport.write,
which is exactly one frame; only the stream header and the close are the transport's own.
"""
from lxml import etree

from jabberapp.errors import StreamError
from jabberapp.logging import logger
from jabberapp.stream.negotiation import ClientStream
from jabberapp.xml import StreamClosed, StreamOpened, StreamParser, element, serialize
from jabberapp.xml.ns import NS_CLIENT, NS_STREAMS, NS_XML
from jabberapp.xml.restricted import WS

__all__ = ["NS_FRAMING", "FramedClientStream", "close_frame", "open_frame"]

log = logger(__name__)

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
_OPEN = f"{{{NS_FRAMING}}}open"
_CLOSE = f"{{{NS_FRAMING}}}close"
_XML_LANG = f"{{{NS_XML}}}lang"
# What the parser is primed with: elements of a frame then parse as stanzas of a c2s stream.
_HEADER = (f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>").encode()


def open_frame(attrs):
    """The RFC 7395 <open/> carrying the stream header attributes C{attrs}, as bytes."""
    return etree.tostring(element(NS_FRAMING, "open", attrs))


def close_frame(see_other_uri=None):
    """The RFC 7395 <close/> (with a see-other-uri redirect, §3.6.1), as bytes."""
    return etree.tostring(element(NS_FRAMING, "close", {"see-other-uri": see_other_uri}))


class _FrameParser(StreamParser):
    """A StreamParser that can tell whether it is between two top-level elements."""

    def between_elements(self):
        """True when no element is open or begun and nothing is held back: what was fed
        so far ends with complete elements (whitespace aside), and the stream is open."""
        return (self._depth == 1 and self._unit_start is None and not self._closed
                and not self._pending.strip(WS))


class FramedClientStream(ClientStream):
    """A ClientStream on an IFramedTransport; see the module docstring."""

    def __init__(self, transport, listener, core):
        super().__init__(transport, listener, core)
        self.parser = _FrameParser(max_stanza_size=listener.max_stanza_size)
        self.parser.feed(_HEADER)
        self.opened = False         # the client opened the stream since the last restart

    # -- input ----------------------------------------------------------------------------

    def open_received(self, attrs):
        """The client opens the stream with these header attributes ('to', 'version',
        'xml:lang', 'from'); answered with transport.open() and the features, or an error."""
        self._queue([StreamOpened(dict(attrs), NS_CLIENT)])

    def close_received(self):
        """The client closed its stream: ours is closed too (RFC 6120 §4.4)."""
        self._queue([StreamClosed()])

    def frame_received(self, data):
        """One message (bytes): exactly one complete element. The framing namespace's
        <open/> and <close/> open and close the stream (RFC 7395 §3.3); a message of
        whitespace only is ignored."""
        events = self._parse(data, single=True)
        if events:
            event = events[0]
            if not isinstance(event, StreamError):
                tag = event.tag
                if tag == _OPEN:
                    attrs = {"xml:lang" if key == _XML_LANG else key: value
                             for key, value in event.items()}
                    events = [StreamOpened(attrs, NS_CLIENT)]
                elif tag == _CLOSE:
                    events = [StreamClosed()]
            self._queue(events)

    def elements_received(self, data):
        """Bytes holding zero or more complete elements (the content of a BOSH body)."""
        events = self._parse(data, single=False)
        if events:
            self._queue(events)

    def _parse(self, data, single):
        if self.closed or not data.strip(WS):
            return None
        parser = self.parser
        try:
            events = parser.feed(data)
            if not parser.between_elements() or (single and len(events) != 1):
                raise StreamError("not-well-formed",
                                  "a frame must hold one complete element" if single
                                  else "a body must hold complete elements")
        except StreamError as error:
            # From a frame that is not one element, nothing is handled; from a body, the
            # elements before the violation are (as on a TCP stream).
            return [error] if single else [*getattr(error, "events", ()), error]
        return events

    # -- the stream's steps -----------------------------------------------------------------

    def stream_opened(self, event):
        if self.opened:
            raise StreamError("not-well-formed", "the stream is already open")
        self.opened = True
        super().stream_opened(event)

    def element_received(self, el):
        if not self.opened:
            raise StreamError("not-well-formed", "the stream is not open")
        return super().element_received(el)

    def discard_pending(self):
        """See XMLStream.discard_pending; the client opens the stream again next."""
        super().discard_pending()
        self.parser.feed(_HEADER)
        self.opened = False

    # -- output ---------------------------------------------------------------------------

    def send_header(self, attrs):
        self.transport.open(attrs)
        self.header_sent = True

    def close(self, error=None):
        """End the stream: C{error} (a StreamError) first when given, then the transport's
        close of the stream and of the connection."""
        if self.closed:
            return
        if not self.header_sent:
            self.send_header(self.default_header())
        data = None
        if error is not None:
            log.info("closing stream: {condition}", condition=error.condition)
            data = serialize(error.to_element())
        self.closed = True
        self.transport.close_stream(data)
        self.lose_connection()
