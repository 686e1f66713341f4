"""
The option schema every extension imports: ``Option`` and the value types of its ``type``.

An extension declares its ``[extension:NAME]`` section as a tuple of ``Option``; the core
sections are declared the same way (``jabberapp.configuration.core``). One declaration
drives validation (``jabberapp.configuration.loader``) and the generated config.example.ini
(``jabberapp.configuration.example``). Import these names from ``jabberapp.config``, the
stable public path.

A value type is a callable taking the raw INI text and returning the value; it rejects bad
text by raising ValueError with a message saying what is wrong, and its ``description``
attribute (shown in config.example.ini) says what it accepts.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "comma_list", "int_range", "ip_address", "one_of", "positive_seconds",
           "seconds_or_zero"]

_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TRUE = frozenset({"yes", "true", "on", "1"})
_FALSE = frozenset({"no", "false", "off", "0"})


@dataclass(frozen=True)
class Option:
    """
    One configuration key: its name, how its text is parsed, its default and its doc.

    ``type`` is ``bool`` (yes/no, true/false, on/off, 1/0), ``int``, ``float``, ``str`` or
    any callable taking the raw text and returning the value; a callable rejects bad text
    by raising ValueError with a message saying what is wrong (see ``comma_list``,
    ``one_of``, ``int_range``, ``ip_address``). The default is used as is, not parsed.
    """

    name: str
    type: type | Callable[[str], Any]
    default: Any
    doc: str

    def __post_init__(self) -> None:
        # configparser lower-cases keys: a name it could never match is a schema bug.
        if not isinstance(self.name, str) or not _OPTION_NAME.fullmatch(self.name):
            raise ValueError(f"option name must match [a-z][a-z0-9_]*, not {self.name!r}")
        if not callable(self.type):
            raise TypeError(f"option {self.name!r}: type must be callable, not {self.type!r}")

    def parse(self, raw: str) -> Any:
        """Return the value for the INI text C{raw}; ValueError says what is wrong."""
        if self.type is bool:
            word = raw.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise ValueError("expected yes or no")
        if self.type is int:
            try:
                return int(raw.strip())
            except ValueError:
                raise ValueError("expected an integer") from None
        if self.type is float:
            try:
                value = float(raw.strip())
            except ValueError:
                raise ValueError("expected a number") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("expected a finite number")
            return value
        if self.type is str:
            return raw
        try:
            return self.type(raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc) or "invalid value") from None


def comma_list(raw: str) -> tuple[str, ...]:
    """Parse a comma- (or newline-) separated list into a tuple of stripped, non-empty items."""
    return tuple(item.strip() for item in re.split(r"[,\n]", raw) if item.strip())


comma_list.description = "comma-separated list"  # type: ignore[attr-defined]


def one_of(*choices: str) -> Callable[[str], str]:
    """An Option type accepting exactly one of C{choices} (case-insensitive)."""
    if not choices:
        raise ValueError("one_of() needs at least one choice")
    allowed = ", ".join(choices)

    def parse(raw: str) -> str:
        word = raw.strip().lower()
        if word not in choices:
            raise ValueError(f"expected one of {allowed}")
        return word

    parse.description = f"one of {allowed}"  # type: ignore[attr-defined]
    return parse


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An Option type accepting an integer from C{low} to C{high} inclusive."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return value

    parse.description = f"integer, {low} to {high}"  # type: ignore[attr-defined]
    return parse


def ip_address(raw: str) -> str:
    """Parse an IPv4 or IPv6 address (no brackets), returned in its normal text form."""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise ValueError("expected an IPv4 or IPv6 address") from None


ip_address.description = "IP address"  # type: ignore[attr-defined]


def positive_seconds(raw: str) -> float:
    """Parse a duration in seconds greater than zero."""
    try:
        value = float(raw.strip())
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise ValueError("expected a number of seconds greater than 0")
    return value


positive_seconds.description = "seconds, more than 0"  # type: ignore[attr-defined]


def seconds_or_zero(raw: str) -> float:
    """Parse a duration in seconds; 0 switches the timer off."""
    try:
        value = float(raw.strip())
    except ValueError:
        value = None
    if value is None or not 0 <= value < float("inf"):
        raise ValueError("expected a number of seconds (0: never)")
    return value


seconds_or_zero.description = "seconds, 0 for never"  # type: ignore[attr-defined]
