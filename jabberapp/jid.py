"""
RFC 7622: XMPP addresses (JIDs) -- parsing, preparation and a hashable value type.

Each part is prepared once, when the JID is made, so two JIDs are equal exactly when they
address the same entity and compare/hash by plain string equality afterwards:

- localpart: PRECIS UsernameCaseMapped (RFC 8265 §3.3) minus the eight characters
  RFC 7622 §3.3.1 forbids (``" & ' / : < > @``);
- domainpart: one trailing dot stripped, IP literals kept (normalised), otherwise
  UTS #46 mapping and IDNA2008 validation to the lowercase U-label form (RFC 7622 §3.2);
- resourcepart: PRECIS OpaqueString (RFC 8265 §4.2), so case is preserved.

``JID.parse`` sits on the stanza hot path and is memoised in a bounded LRU cache.
"""
from __future__ import annotations

import functools
import ipaddress
import re

import attrs
import idna
import precis_i18n

__all__ = ["InvalidJID", "JID", "prep_localpart", "prep_domain", "prep_resource"]

# RFC 7622 §3.1: each part is 1..1023 octets once prepared.
MAX_PART_BYTES = 1023

# Preparation never shrinks a PRECIS string by more than a small factor (NFC composes at most
# four code points into one), so anything longer than this cannot become a valid part; refusing
# it up front keeps a peer from making us map megabytes of text.
_MAX_INPUT_CHARS = 4 * MAX_PART_BYTES

_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_OPAQUE = precis_i18n.get_profile("OpaqueString")

# RFC 7622 §3.3.1: allowed by the IdentifierClass, but forbidden in a localpart.
_LOCAL_FORBIDDEN = frozenset("\"&'/:<>@")

# Full stop and the three dots UTS #46 maps to it; RFC 7622 §3.2 strips one trailing dot
# before any other canonicalisation.
_DOTS = ".\u3002\uff0e\uff61"
_DOTTED_DIGITS = re.compile(r"[0-9.]+\Z")

# Bound from the task brief: about 65k distinct JIDs in flight on a busy node.
_CACHE_SIZE = 65536


class InvalidJID(ValueError):
    """A string is not a valid JID or JID part; the message says which part and why."""


def _byte_length_ok(part: str, value: str) -> str:
    size = len(value.encode("utf-8"))
    if size == 0:
        raise InvalidJID(f"{part} is empty")
    if size > MAX_PART_BYTES:
        raise InvalidJID(f"{part} is longer than {MAX_PART_BYTES} bytes")
    return value


def _check_input(part: str, s: str) -> None:
    if not isinstance(s, str):
        # Our own misuse, not a peer's error.
        raise TypeError(f"{part} must be str, not {type(s).__name__}")
    if not s:
        raise InvalidJID(f"{part} is empty")
    if len(s) > _MAX_INPUT_CHARS:
        raise InvalidJID(f"{part} is longer than {MAX_PART_BYTES} bytes")


def _precis_error(part: str, exc: UnicodeError) -> InvalidJID:
    """Turn a precis_i18n error into a one-line message naming the rule that failed."""
    reason = getattr(exc, "reason", "") or ""
    rule = reason.rpartition("/")[2] or "invalid"
    if rule == "empty":
        return InvalidJID(f"{part} is empty")
    obj = getattr(exc, "object", None)
    start = getattr(exc, "start", -1)
    end = getattr(exc, "end", -1)
    if isinstance(obj, str) and 0 <= start < len(obj) and end == start + 1:
        code = ord(obj[start])
        return InvalidJID(f"{part} contains a disallowed character U+{code:04X} ({rule})")
    return InvalidJID(f"{part} is not allowed ({rule})")


def _enforce(profile, part: str, s: str) -> str:
    try:
        return profile.enforce(s)
    except UnicodeError as exc:   # UnicodeEncodeError from precis_i18n
        raise _precis_error(part, exc) from None


def prep_localpart(s: str) -> str:
    """
    Prepare a localpart (RFC 7622 §3.3): PRECIS UsernameCaseMapped, then reject the
    characters RFC 7622 forbids, then check the 1..1023 byte length.
    """
    _check_input("localpart", s)
    value = _enforce(_USERNAME, "localpart", s)
    for ch in value:
        if ch in _LOCAL_FORBIDDEN:
            raise InvalidJID(f"localpart contains a forbidden character U+{ord(ch):04X}")
    return _byte_length_ok("localpart", value)


def prep_resource(s: str) -> str:
    """
    Prepare a resourcepart (RFC 7622 §3.4): PRECIS OpaqueString (case preserved), then
    check the 1..1023 byte length. Any character the profile allows, '@' and '/' included.
    """
    _check_input("resourcepart", s)
    return _byte_length_ok("resourcepart", _enforce(_OPAQUE, "resourcepart", s))


def _idna_error(exc: Exception) -> InvalidJID:
    # idna's messages are one line and quote labels with repr(); keep them ASCII and short.
    text = str(exc).encode("ascii", "backslashreplace").decode("ascii").replace("\n", " ")
    return InvalidJID(f"domainpart is not a valid domain name: {text[:200] or 'IDNA2008'}")


def _prep_ip_literal(s: str) -> str:
    # RFC 3986 IP-literal: IPv6 only (IPvFuture and zone identifiers are not addresses
    # a server can be reached at in XMPP); normalised so [::1] == [0:0::1].
    inner = s[1:-1]
    if not s.endswith("]") or "%" in inner:
        raise InvalidJID("domainpart is not a valid IPv6 literal")
    try:
        return f"[{ipaddress.IPv6Address(inner).compressed}]"
    except ValueError:
        raise InvalidJID("domainpart is not a valid IPv6 literal") from None


@functools.lru_cache(maxsize=65536)  # IDNA processing costs ~70 µs; domains repeat
def prep_domain(s: str) -> str:
    """
    Prepare a domainpart (RFC 7622 §3.2): strip one trailing dot, keep IPv6 ("[...]") and
    IPv4 literals (normalised), otherwise map with UTS #46 and validate each label with
    IDNA2008, returning the lowercase U-label form. Labels are at most 63 octets as A-labels
    and the result is 1..1023 bytes.
    """
    _check_input("domainpart", s)
    if s[-1] in _DOTS:
        s = s[:-1]
        if not s:
            raise InvalidJID("domainpart is empty")
    if s.startswith("["):
        return _prep_ip_literal(s)
    try:
        mapped = idna.uts46_remap(s, std3_rules=True, transitional=False)
    except (idna.IDNAError, ValueError) as exc:
        raise _idna_error(exc) from None
    if _DOTTED_DIGITS.match(mapped):
        # All digits and dots: an IPv4 address or nothing; "999.1.1.1" is not a host name.
        try:
            return str(ipaddress.IPv4Address(mapped))
        except ValueError:
            raise InvalidJID("domainpart is not a valid IPv4 address") from None
    labels = []
    for label in mapped.split("."):
        if not label:
            raise InvalidJID("domainpart has an empty label")
        try:
            a_label = idna.alabel(label)
            u_label = idna.ulabel(a_label)
            round_trip = idna.alabel(u_label)
        except (idna.IDNAError, ValueError) as exc:
            raise _idna_error(exc) from None
        # An A-label must round-trip (RFC 5891 §5.4); "xn--" input that decodes to
        # something else is not one.
        if round_trip != a_label:
            raise InvalidJID("domainpart has a label that is not a valid A-label")
        labels.append(u_label)
    return _byte_length_ok("domainpart", ".".join(labels))


@attrs.frozen(repr=False, slots=True)
class JID:
    """
    An XMPP address with prepared parts; equality and hash are on those parts.

    Build one with ``JID.parse()`` or ``JID.make()``. The constructor takes parts that are
    already prepared and does not check them.
    """

    local: str | None
    domain: str
    resource: str | None = None
    # Computed on first use and kept: every routed stanza asks for these again.
    _text: str | None = attrs.field(default=None, init=False, eq=False, hash=False)
    _bare: JID | None = attrs.field(default=None, init=False, eq=False, hash=False)

    @classmethod
    def parse(cls, s: str) -> JID:
        """Parse and prepare a JID string (RFC 7622 §3.1); raises InvalidJID."""
        return _parse(s)

    @classmethod
    def make(cls, local: str | None, domain: str, resource: str | None = None) -> JID:
        """Prepare each given part and build a JID; None means the part is absent."""
        return cls(
            None if local is None else prep_localpart(local),
            prep_domain(domain),
            None if resource is None else prep_resource(resource),
        )

    def bare(self) -> JID:
        """This JID without its resource."""
        if self.resource is None:
            return self
        bare = self._bare
        if bare is None:
            bare = JID(self.local, self.domain, None)
            object.__setattr__(self, "_bare", bare)
        return bare

    def with_resource(self, resource: str) -> JID:
        """This JID with the given (prepared here) resource in place of any existing one."""
        return JID(self.local, self.domain, prep_resource(resource))

    @property
    def is_bare(self) -> bool:
        """True when there is no resource."""
        return self.resource is None

    @property
    def is_domain(self) -> bool:
        """True for a server or component JID: no localpart and no resource."""
        return self.local is None and self.resource is None

    def __str__(self) -> str:
        s = self._text
        if s is None:
            s = self.domain
            if self.local is not None:
                s = f"{self.local}@{s}"
            if self.resource is not None:
                s = f"{s}/{self.resource}"
            object.__setattr__(self, "_text", s)
        return s

    def __repr__(self) -> str:
        return f"JID({str(self)!r})"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse(s: str) -> JID:
    if not isinstance(s, str):
        raise TypeError(f"JID must be str, not {type(s).__name__}")
    if not s:
        raise InvalidJID("JID is empty")
    # RFC 7622 §3.1: the resource is everything after the first '/', the localpart
    # everything before the first '@' that comes before it.
    rest, slash, resource = s.partition("/")
    local, at, domain = rest.partition("@")
    if not at:
        local, domain = None, rest
    if slash and not resource:
        raise InvalidJID("resourcepart is empty")
    if at and not local:
        raise InvalidJID("localpart is empty")
    return JID(
        None if local is None else prep_localpart(local),
        prep_domain(domain),
        prep_resource(resource) if slash else None,
    )
