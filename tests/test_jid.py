"""Tests for jabberapp.jid: RFC 7622 JIDs, PRECIS preparation and the parse cache."""
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jabberapp.jid import (
    JID,
    InvalidJID,
    _parse,
    prep_domain,
    prep_localpart,
    prep_resource,
)

# Preparation is pure computation, but the first PRECIS/IDNA call in a process loads tables.
_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- RFC 7622 §3.5 examples -------------------------------------------------------------------

RFC_VALID = [
    ("juliet@example.com", ("juliet", "example.com", None)),
    ("juliet@example.com/foo", ("juliet", "example.com", "foo")),
    ("juliet@example.com/foo bar", ("juliet", "example.com", "foo bar")),
    ("juliet@example.com/foo@bar", ("juliet", "example.com", "foo@bar")),
    ("foo\\20bar@example.com", ("foo\\20bar", "example.com", None)),
    ("fussball@example.com", ("fussball", "example.com", None)),
    ("fu\u00dfball@example.com", ("fu\u00dfball", "example.com", None)),
    ("\u03c0@example.com", ("\u03c0", "example.com", None)),
    ("\u03a3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c2@example.com/foo", ("\u03c2", "example.com", "foo")),
    ("king@example.com/\u265a", ("king", "example.com", "\u265a")),
    ("example.com", (None, "example.com", None)),
    ("example.com/foobar", (None, "example.com", "foobar")),
    ("a.example.com/b@example.net", (None, "a.example.com", "b@example.net")),
]

RFC_INVALID = [
    '"juliet"@example.com',
    "foo bar@example.com",
    "juliet@example.com/",
    "@example.com/",
    "henri\u2163@example.com",
    "\u265a@example.com",
    "juliet@",
    "/foobar",
]


@pytest.mark.parametrize("text, parts", RFC_VALID)
def test_rfc7622_valid_examples(text, parts):
    """Every valid example of RFC 7622 §3.5 parses into the expected prepared parts."""
    jid = JID.parse(text)
    assert (jid.local, jid.domain, jid.resource) == parts


@pytest.mark.parametrize("text", RFC_INVALID)
def test_rfc7622_invalid_examples(text):
    """Every invalid example of RFC 7622 §3.5 raises InvalidJID."""
    with pytest.raises(InvalidJID):
        JID.parse(text)


def test_sigma_forms_are_distinct():
    """Capital sigma maps to small sigma, while final sigma stays a different localpart."""
    assert JID.parse("\u03a3@example.com") == JID.parse("\u03c3@example.com")
    assert JID.parse("\u03c2@example.com") != JID.parse("\u03c3@example.com")


# --- Splitting and empty parts ----------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "", "@", "/", "@/", "@example.com", "a@example.com/", "example.com/", "/r", "a@/r",
    "a@", "@example.com/r",
])
def test_empty_parts_are_invalid(text):
    """A JID with an empty localpart, domainpart or resourcepart (or no text at all) is invalid."""
    with pytest.raises(InvalidJID):
        JID.parse(text)


def test_resource_is_everything_after_first_slash():
    """The resource runs from the first '/' to the end and may contain '/' and '@'."""
    jid = JID.parse("a@example.com/x/y@z/@")
    assert (jid.local, jid.domain, jid.resource) == ("a", "example.com", "x/y@z/@")


def test_at_after_slash_belongs_to_resource():
    """An '@' that only appears after the first '/' does not start a localpart."""
    jid = JID.parse("example.com/user@host")
    assert (jid.local, jid.domain, jid.resource) == (None, "example.com", "user@host")


def test_second_at_lands_in_domain():
    """Only the first '@' separates the localpart, so a second one makes the domain invalid."""
    with pytest.raises(InvalidJID, match="domainpart"):
        JID.parse("a@b@example.com")


# --- Case and width mapping -------------------------------------------------------------------

def test_localpart_case_mapped():
    """Localparts differing only in case are the same JID."""
    assert JID.parse("JuLiEt@example.com") == JID.parse("juliet@example.com")
    assert prep_localpart("JULIET") == "juliet"


def test_domain_case_mapped():
    """Domainparts differing only in case are the same JID."""
    assert JID.parse("juliet@EXAMPLE.Com") == JID.parse("juliet@example.com")
    assert prep_domain("ExAmPlE.CoM") == "example.com"


def test_resource_not_case_mapped():
    """Resourceparts keep their case, so '/Balcony' and '/balcony' differ."""
    assert JID.parse("juliet@example.com/Balcony").resource == "Balcony"
    assert JID.parse("juliet@example.com/Balcony") != JID.parse("juliet@example.com/balcony")


def test_localpart_width_mapped():
    """Fullwidth letters in a localpart map to their ASCII forms."""
    assert prep_localpart("\uff2a\uff35\uff2c\uff29\uff25\uff34") == "juliet"


def test_domain_width_mapped():
    """Fullwidth letters and the fullwidth full stop in a domain map to ASCII."""
    fullwidth = "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d"
    assert prep_domain(fullwidth) == "example.com"


def test_ideographic_full_stop_separates_labels():
    """UTS #46 treats U+3002 as a label separator."""
    assert prep_domain("example\u3002com") == "example.com"


def test_resource_not_width_mapped():
    """OpaqueString does no width mapping, so a fullwidth resource stays fullwidth."""
    assert prep_resource("\uff32") == "\uff32"


def test_resource_maps_non_ascii_space():
    """OpaqueString maps non-ASCII spaces in a resource to U+0020."""
    assert prep_resource("foo\u3000bar") == "foo bar"


def test_resource_nfc():
    """A resource is normalised to NFC, so decomposed and precomposed forms are equal."""
    assert prep_resource("caf\u0065\u0301") == prep_resource("caf\u00e9") == "caf\u00e9"


def test_localpart_nfc():
    """A localpart is normalised to NFC."""
    assert prep_localpart("caf\u0065\u0301") == "caf\u00e9"


# --- Forbidden characters ---------------------------------------------------------------------

@pytest.mark.parametrize("ch", list("\"&'/:<>@"))
def test_localpart_forbidden_characters(ch):
    """RFC 7622 §3.3.1 forbids " & ' / : < > @ in a localpart."""
    with pytest.raises(InvalidJID, match="localpart"):
        prep_localpart(f"a{ch}b")


@pytest.mark.parametrize("ch", list("\"&':<>"))
def test_localpart_forbidden_characters_in_parse(ch):
    """The forbidden characters that survive splitting are rejected by parse() too."""
    with pytest.raises(InvalidJID, match="localpart"):
        JID.parse(f"a{ch}b@example.com")


def test_fullwidth_at_in_localpart_is_forbidden():
    """A fullwidth '@' width-maps to '@' and is then rejected, rather than splitting anew."""
    with pytest.raises(InvalidJID, match="localpart"):
        JID.parse("a\uff20b@example.com")


@pytest.mark.parametrize("text", ["a b", "a\u0000b", "a\tb", "\u200d", "a\u2163", "\u265a"])
def test_localpart_precis_disallowed(text):
    """Spaces, controls, joiners, compatibility characters and symbols are not in localparts."""
    with pytest.raises(InvalidJID, match="localpart"):
        prep_localpart(text)


@pytest.mark.parametrize("text", ["a\u0000b", "a\u0007", "\u200d", "\ufffe"])
def test_resource_precis_disallowed(text):
    """Controls, joiners and noncharacters are not allowed in a resource."""
    with pytest.raises(InvalidJID, match="resourcepart"):
        prep_resource(text)


def test_resource_allows_symbols_and_punctuation():
    """A resource may contain symbols, spaces, '@', '/' and other punctuation."""
    assert prep_resource(" \u265a @/:<>&\"' ") == " \u265a @/:<>&\"' "


# --- Domainparts: IDN, dots, IP literals ------------------------------------------------------

@pytest.mark.parametrize("text", [
    "\u00c4\u00d6.example", "\u00e4\u00f6.example", "xn--4ca0b.example", "XN--4CA0B.EXAMPLE",
    "\u00e4\u00f6.example.",
])
def test_idn_forms_prep_to_u_label(text):
    """A U-label, its uppercase form and its A-label all prepare to the lowercase U-label."""
    assert prep_domain(text) == "\u00e4\u00f6.example"


def test_idn_jids_equal():
    """JIDs whose domains are the U-label and A-label of one name are equal."""
    assert JID.parse("juliet@\u00c4\u00d6.example") == JID.parse("juliet@xn--4ca0b.example")


def test_eszett_kept_in_domain():
    """Nontransitional UTS #46 processing keeps 'ß' rather than mapping it to 'ss'."""
    assert prep_domain("fa\u00df.de") == "fa\u00df.de"


@pytest.mark.parametrize("text", [
    "xn--abc.com",          # Punycode that decodes to disallowed code points
    "xn--.com",             # empty Punycode
    "-example.com",         # leading hyphen
    "example-.com",         # trailing hyphen
    "ab--cd.com",           # hyphens in positions 3 and 4
    "ex_ample.com",         # underscore is not in IDNA2008
    "ex ample.com",         # space
    "exa\u0000mple.com",    # control
    "a..b",                 # empty label
    ".example.com",         # leading empty label
    "example.com..",        # only one trailing dot is stripped
    ".",                    # only the dot
    "\u2603.\u2603",        # symbols are not IDNA2008 PVALID
])
def test_invalid_domains(text):
    """Names that are not IDNA2008 host names are rejected."""
    with pytest.raises(InvalidJID, match="domainpart"):
        prep_domain(text)


def test_trailing_dot_stripped():
    """One trailing dot is stripped, so 'example.com.' and 'example.com' are the same JID."""
    assert JID.parse("juliet@example.com./r") == JID.parse("juliet@example.com/r")
    assert str(JID.parse("example.com.")) == "example.com"


@pytest.mark.parametrize("text, expected", [
    ("[::1]", "[::1]"),
    ("[0:0:0:0:0:0:0:1]", "[::1]"),
    ("[2001:DB8::1]", "[2001:db8::1]"),
    ("[::ffff:192.0.2.1]", "[::ffff:c000:201]"),
    ("192.0.2.1", "192.0.2.1"),
    ("192.0.2.1.", "192.0.2.1"),
    ("\uff11\uff19\uff12.0.2.1", "192.0.2.1"),
])
def test_ip_literals(text, expected):
    """IPv6 literals in brackets and dotted IPv4 addresses are kept, in a normalised form."""
    assert prep_domain(text) == expected


@pytest.mark.parametrize("text", [
    "[::1", "[::1]]", "[]", "[example.com]", "[192.0.2.1]", "[fe80::1%eth0]", "[v1.fe]",
    "256.0.0.1", "1.2.3", "01.2.3.4", "1.2.3.4.5",
])
def test_invalid_ip_literals(text):
    """Malformed IP literals and dotted-digit strings that are not IPv4 addresses are rejected."""
    with pytest.raises(InvalidJID, match="domainpart"):
        prep_domain(text)


def test_full_jid_with_ip_literal():
    """A JID may have an IPv6 literal domain with a localpart and resource."""
    jid = JID.parse("juliet@[2001:db8::1]/r")
    assert (jid.local, jid.domain, jid.resource) == ("juliet", "[2001:db8::1]", "r")


# --- Length limits ----------------------------------------------------------------------------

def test_localpart_length_limit():
    """A localpart may be 1023 bytes but not 1024."""
    assert prep_localpart("a" * 1023) == "a" * 1023
    with pytest.raises(InvalidJID, match="localpart"):
        prep_localpart("a" * 1024)


def test_localpart_length_counts_utf8_bytes():
    """The localpart limit counts UTF-8 bytes, not code points."""
    assert prep_localpart("\u00e9" * 511)
    with pytest.raises(InvalidJID, match="localpart"):
        prep_localpart("\u00e9" * 512)


def test_resource_length_limit():
    """A resource may be 1023 bytes but not 1024."""
    assert prep_resource("R" * 1023) == "R" * 1023
    with pytest.raises(InvalidJID, match="resourcepart"):
        prep_resource("R" * 1024)
    with pytest.raises(InvalidJID, match="resourcepart"):
        prep_resource("\u265a" * 342)  # 1026 bytes


def test_label_length_limit():
    """A domain label may be 63 octets but not 64."""
    assert prep_domain("a" * 63 + ".com") == "a" * 63 + ".com"
    with pytest.raises(InvalidJID, match="domainpart"):
        prep_domain("a" * 64 + ".com")


def test_label_length_measured_as_a_label():
    """The 63-octet label limit applies to the A-label, even when the U-label is shorter."""
    def label(n):
        return "".join(chr(0x4E00 + i * 37) for i in range(n))
    assert prep_domain(label(27) + ".example") == label(27) + ".example"
    with pytest.raises(InvalidJID, match="domainpart"):
        prep_domain(label(28) + ".example")


def test_domain_length_limit():
    """A domainpart may be 1023 bytes but not more."""
    ok = ".".join(["a" * 63] * 16)          # 16 * 64 - 1 = 1023 bytes
    assert prep_domain(ok) == ok
    with pytest.raises(InvalidJID, match="domainpart"):
        prep_domain(ok + ".b")


def test_huge_input_rejected():
    """A very long string is rejected as too long without being prepared."""
    for prep in (prep_localpart, prep_domain, prep_resource):
        with pytest.raises(InvalidJID, match="longer"):
            prep("a" * 1_000_000)
    with pytest.raises(InvalidJID):
        JID.parse("a" * 1_000_000 + "@example.com")


# --- The value type ---------------------------------------------------------------------------

def test_make_preps_each_part():
    """make() prepares every part it is given and equals the parsed form."""
    assert JID.make("Juliet", "EXAMPLE.com", "Balcony") == JID.parse("juliet@example.com/Balcony")
    assert JID.make(None, "Example.com") == JID.parse("example.com")


@pytest.mark.parametrize("args", [
    ("", "example.com", None),
    ("a", "", None),
    ("a", "example.com", ""),
    ("a@b", "example.com", None),
])
def test_make_rejects_invalid_parts(args):
    """make() raises InvalidJID for an empty or invalid part."""
    with pytest.raises(InvalidJID):
        JID.make(*args)


def test_str_is_canonical():
    """str() gives the canonical form of the prepared parts."""
    jid = JID.parse("JULIET@\u00c4\u00d6.Example./Balcony")
    assert str(jid) == "juliet@\u00e4\u00f6.example/Balcony"
    assert str(JID.parse("example.com/r")) == "example.com/r"
    assert str(JID.parse("a@example.com")) == "a@example.com"


def test_repr_shows_the_jid():
    """repr() shows the canonical string."""
    assert repr(JID.parse("a@example.com/r")) == "JID('a@example.com/r')"


def test_bare():
    """bare() drops the resource, and a bare JID returns itself."""
    full = JID.parse("a@example.com/r")
    assert full.bare() == JID.parse("a@example.com")
    bare = JID.parse("a@example.com")
    assert bare.bare() is bare


def test_with_resource_preps_resource():
    """with_resource() replaces the resource with a prepared one and keeps the rest."""
    jid = JID.parse("a@example.com/old").with_resource("caf\u0065\u0301")
    assert jid == JID.parse("a@example.com/caf\u00e9")
    with pytest.raises(InvalidJID):
        jid.with_resource("")


@pytest.mark.parametrize("text, is_bare, is_domain", [
    ("example.com", True, True),
    ("example.com/r", False, False),
    ("a@example.com", True, False),
    ("a@example.com/r", False, False),
])
def test_is_bare_and_is_domain(text, is_bare, is_domain):
    """is_bare means no resource; is_domain means neither localpart nor resource."""
    jid = JID.parse(text)
    assert (jid.is_bare, jid.is_domain) == (is_bare, is_domain)


def test_equality_and_hash_on_prepared_parts():
    """Differently written forms of one address are equal, hash equal and dedupe in a set."""
    forms = ["Juliet@Example.COM/r", "juliet@example.com./r", "\uff2aULIET@example.com/r"]
    jids = [JID.parse(f) for f in forms]
    assert len(set(jids)) == 1
    assert len({hash(j) for j in jids}) == 1


def test_frozen():
    """A JID is immutable."""
    jid = JID.parse("a@example.com")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        jid.local = "b"


def test_parse_cache_returns_equal_objects():
    """Parsing the same string twice returns equal (indeed the same cached) JID."""
    first = JID.parse("cache-test@example.com/r")
    second = JID.parse("cache-test@example.com/r")
    assert first == second
    assert first is second


def test_parse_cache_is_bounded():
    """The parse cache is an LRU with a fixed maximum size."""
    assert _parse.cache_info().maxsize == 65536


def test_invalid_jid_is_value_error_with_one_line_message():
    """InvalidJID is a ValueError whose message is one line naming the bad part."""
    with pytest.raises(ValueError) as info:
        JID.parse("bad\nlocal@example.com")
    assert isinstance(info.value, InvalidJID)
    message = str(info.value)
    assert "\n" not in message and message.startswith("localpart")


@pytest.mark.parametrize("text", [
    "a\ud800@example.com", "exa\udc00mple.com", "a@example.com/r\udfff", "\ud800", "1.2.3.\ud800",
])
def test_lone_surrogates_are_invalid(text):
    """Lone surrogates, which cannot be encoded as UTF-8, give InvalidJID in any part."""
    with pytest.raises(InvalidJID):
        JID.parse(text)


def test_non_string_is_type_error():
    """Passing something other than str is our own bug and raises TypeError."""
    with pytest.raises(TypeError):
        JID.parse(b"a@example.com")
    with pytest.raises(TypeError):
        prep_localpart(None)


# --- Properties -------------------------------------------------------------------------------

_LOCAL_CHARS = st.characters(
    categories=("Lu", "Ll", "Lo", "Nd", "Mn", "Pc", "Pd", "Po", "Sm", "Sc"),
)
_RESOURCE_CHARS = st.characters(exclude_categories=("Cs",))
_LABELS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True),
    st.sampled_from(
        ["\u00c4\u00d6", "xn--4ca0b", "fa\u00df", "\u03c0", "\u4e2d\u6587", "\uff45\uff58"]
    ),
)
_DOMAINS = st.one_of(
    st.lists(_LABELS, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["[::1]", "[2001:DB8::1]", "192.0.2.1", "example.com."]),
)


@st.composite
def _jid_like(draw):
    local = draw(st.none() | st.text(_LOCAL_CHARS, min_size=1, max_size=12))
    domain = draw(_DOMAINS)
    resource = draw(st.none() | st.text(_RESOURCE_CHARS, min_size=1, max_size=12))
    s = domain
    if local is not None:
        s = f"{local}@{s}"
    if resource is not None:
        s = f"{s}/{resource}"
    return s


def _parses_or_invalid(text):
    try:
        return JID.parse(text)
    except InvalidJID:
        return None


@_SETTINGS
@given(st.text() | _jid_like())
def test_parse_is_idempotent(text):
    """For any string that parses, parsing its canonical form gives the same JID."""
    jid = _parses_or_invalid(text)
    if jid is not None:
        again = JID.parse(str(jid))
        assert again == jid
        assert str(again) == str(jid)


@_SETTINGS
@given(st.text(st.characters(codec=None, exclude_categories=())) | _jid_like())
def test_parse_raises_only_invalid_jid(text):
    """Any text (surrogates included) either parses or raises InvalidJID, never another error."""
    _parses_or_invalid(text)


@_SETTINGS
@given(st.text(st.characters(exclude_categories=()), max_size=20))
def test_prep_functions_idempotent_and_only_raise_invalid_jid(text):
    """Each prep function raises only InvalidJID and is idempotent on what it accepts."""
    for prep in (prep_localpart, prep_domain, prep_resource):
        try:
            once = prep(text)
        except InvalidJID:
            continue
        assert prep(once) == once


@_SETTINGS
@given(_jid_like())
def test_make_agrees_with_parse(text):
    """make() from a parsed JID's parts rebuilds an equal JID."""
    jid = _parses_or_invalid(text)
    if jid is not None:
        assert JID.make(jid.local, jid.domain, jid.resource) == jid
