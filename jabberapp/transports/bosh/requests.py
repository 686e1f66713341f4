"""
The values a BOSH session works with: its limits, a terminal condition, and the requests it
holds (handled, waiting for a response) or keeps waiting (ahead of a gap in the rids).
"""
from dataclasses import dataclass

__all__ = ["BOSHLimits", "Held", "Terminal", "Waiting"]


@dataclass(frozen=True)
class BOSHLimits:
    """What the server allows a session ([bosh] options); the client may ask for less."""

    max_wait: int = 60
    max_inactivity: int = 60
    max_hold: int = 1
    max_requests: int = 2
    max_pause: int = 120
    polling: int = 5
    max_pending: int = 4194304  # bytes of output waiting for a request ([c2s] max_send_buffer)


class Terminal(Exception):
    """A terminal binding condition (XEP-0124 §17.2) ending the session."""

    def __init__(self, condition):
        super().__init__(condition)
        self.condition = condition


class Held:
    """A request handled and waiting for its response."""

    __slots__ = ("rid", "channel", "timer", "report")

    def __init__(self, rid, channel, timer=None, report=None):
        self.rid = rid
        self.channel = channel
        self.timer = timer
        self.report = report        # (report, time) attributes to answer with, at once


class Waiting:
    """A request whose rid is ahead of a gap: not handled until the gap fills."""

    __slots__ = ("body", "channel", "timer")

    def __init__(self, body, channel, timer):
        self.body = body
        self.channel = channel
        self.timer = timer
