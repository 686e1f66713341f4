"""
The events a StreamParser returns besides stanzas (detached lxml elements): the peer's stream
header was received (StreamOpened) and the peer closed its stream (StreamClosed).
"""
from dataclasses import dataclass, field

__all__ = ["StreamClosed", "StreamOpened"]


@dataclass(frozen=True)
class StreamOpened:
    """The peer's stream header (<stream:stream>) was received."""

    # Plain attributes: 'to', 'from', 'id', 'version', 'xml:lang' (for {NS_XML}lang); other
    # namespaced attributes keep their Clark name.
    attrs: dict = field(hash=False)
    # The content (default) namespace the peer declared, e.g. 'jabber:client', or None.
    ns: str | None


@dataclass(frozen=True)
class StreamClosed:
    """The peer closed its stream (</stream:stream>)."""
