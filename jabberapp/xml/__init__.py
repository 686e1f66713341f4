"""Sans-I/O XML for XMPP streams: namespaces, element builder, parser, serializer."""
from jabberapp.xml import ns as _ns
from jabberapp.xml.ns import *  # noqa: F401,F403 -- every NS_* constant
from jabberapp.xml.parser import StreamClosed, StreamOpened, StreamParser, parse_element
from jabberapp.xml.serializer import element, serialize, stream_header

__all__ = [
    "element", "serialize", "stream_header", "parse_element",
    "StreamParser", "StreamOpened", "StreamClosed",
    *sorted(name for name in vars(_ns) if name.startswith("NS_")),
]
