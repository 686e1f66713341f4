"""
Sans-I/O XML for XMPP streams: namespaces, element builder, parser, serializer.

``from jabberapp.xml import StreamParser, element, serialize, stream_header, NS_CLIENT, ...``
is the usual way in. The namespace constants are imported here at once (``ns`` imports
nothing of this package); the other names are imported from the module that defines them
when first used (PEP 562), so this ``__init__`` loads none of the modules that import each
other (parser, serializer, restricted, header): importing one of them, or ``jabberapp.xml.ns``,
never runs the others first, and there is no import cycle through the package.
"""
from jabberapp.lazyexports import lazy_exports

from jabberapp.xml import ns as _ns
from jabberapp.xml.ns import *  # noqa: F401,F403 -- every NS_* constant

# Name -> the module that defines it.
_EXPORTS = {
    "element": "jabberapp.xml.serializer",
    "serialize": "jabberapp.xml.serializer",
    "stream_header": "jabberapp.xml.serializer",
    "parse_element": "jabberapp.xml.parser",
    "StreamParser": "jabberapp.xml.parser",
    "StreamOpened": "jabberapp.xml.events",
    "StreamClosed": "jabberapp.xml.events",
}

__all__ = [
    "element", "serialize", "stream_header", "parse_element",
    "StreamParser", "StreamOpened", "StreamClosed",
    *sorted(name for name in vars(_ns) if name.startswith("NS_")),
]

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
