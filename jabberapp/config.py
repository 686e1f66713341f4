"""
Configuration: the INI file, read once into frozen and validated objects.

``load_config(path, extension_schemas)`` reads the file with configparser and checks every
section and key before any port is opened: an unknown section or key, a bad value, a missing
file or a duplicate key is a ``ConfigError`` whose text is a single line naming the file, the
section and the key. A silently ignored typo could switch a control off unnoticed, so nothing
unknown is ever ignored.

The core sections are described by ``CORE_SCHEMA`` and each extension by its ``options``
(a tuple of ``Option``); the same schemas drive validation and ``render_example()``, which
writes config.example.ini, so the documentation cannot drift from the code.

Sections:

- ``[server]``, ``[c2s]``, ``[auth]``, ``[tls]``, ``[storage]``: see ``CORE_SCHEMA``.
- ``[tls:HOST]``: certificate and private_key for one host of ``[server] hosts``.
- ``[extension:NAME]``: options of the extension NAME, validated against its schema.
- ``[component:DOMAIN]``: one external component (XEP-0114), see ``COMPONENT_SCHEMA``.

Relative paths are made absolute against the working directory when the file is loaded.
"""
from __future__ import annotations

import ast
import configparser
import difflib
import ipaddress
import os
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jabberapp.jid import InvalidJID, prep_domain

__all__ = [
    "AuthConfig",
    "C2SConfig",
    "COMPONENT_SCHEMA",
    "CORE_SCHEMA",
    "ComponentConfig",
    "ComponentsConfig",
    "ConfigError",
    "LOG_LEVELS",
    "Option",
    "ServerConfig",
    "S2SConfig",
    "StorageConfig",
    "TLSConfig",
    "comma_list",
    "int_range",
    "ip_address",
    "load_config",
    "one_of",
    "render_example",
]

#: Log levels accepted by ``[server] log_level`` (twisted.logger.LogLevel names).
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TLS_PREFIX = "tls:"
_EXTENSION_PREFIX = "extension:"
_COMPONENT_PREFIX = "component:"
# configparser copies the keys of its default section into every section; no real
# section can be called this, so [DEFAULT] in a file is just an unknown section.
_NO_DEFAULT_SECTION = "\x00no default section"
_TRUE = frozenset({"yes", "true", "on", "1"})
_FALSE = frozenset({"no", "false", "off", "0"})


# -- the schema type ------------------------------------------------------------------------


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


def sasl_mechanisms(raw: str) -> tuple[str, ...]:
    """A comma-separated list of SASL mechanism names this server implements."""
    from jabberapp.sasl import MECHANISM_NAMES  # the one list of what is implemented
    names = tuple(name.upper() for name in comma_list(raw))
    unknown = [name for name in names if name not in MECHANISM_NAMES]
    if unknown:
        raise ValueError(f"unknown mechanism {', '.join(unknown)} "
                         f"(known: {', '.join(MECHANISM_NAMES)})")
    return names


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

_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?\.?")


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[v6]', '[v6]:port' or 'v4:port' -> (host, port)."""
    text = text.strip()
    port = default_port
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: missing ']'")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port = _port(rest[1:], text)
        try:
            return str(ipaddress.IPv6Address(host)), port
        except ValueError:
            raise ValueError(f"{text!r}: not an IPv6 address in brackets") from None
    host, colon, rest = text.rpartition(":")
    if not colon:
        host = rest
    else:
        port = _port(rest, text)
    if ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, as [::1]:5269")
    try:
        return str(ipaddress.IPv4Address(host)), port
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host) or len(host) > 253:
        raise ValueError(f"{text!r}: not a host name or IP address")
    return host.lower().rstrip("."), port


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be from 1 to 65535")
    return int(text)


def s2s_routes(raw: str) -> tuple[S2SRoute, ...]:
    """
    Parse static s2s routes: comma-separated DOMAIN=[tls:]HOST[:PORT] entries. 'tls:' means
    direct TLS (XEP-0368) instead of STARTTLS; the port defaults to 5269. A domain written
    more than once gets several targets, tried in the order written.
    """
    routes = []
    for entry in comma_list(raw):
        domain, equals, target = entry.partition("=")
        if not equals or not domain.strip() or not target.strip():
            raise ValueError(f"{entry!r}: expected DOMAIN=HOST:PORT")
        try:
            domain = prep_domain(domain.strip())
        except InvalidJID as exc:
            raise ValueError(f"{entry!r}: {exc}") from None
        target = target.strip()
        direct_tls = target.lower().startswith("tls:")
        if direct_tls:
            target = target[4:]
        host, port = _host_port(target, 5269)
        routes.append(S2SRoute(domain, host, port, direct_tls))
    return tuple(routes)


s2s_routes.description = "comma-separated DOMAIN=[tls:]HOST[:PORT]"  # type: ignore[attr-defined]


def dns_servers(raw: str) -> tuple[tuple[str, int], ...]:
    """Parse comma-separated name server addresses, IP[:PORT] or [IPv6][:PORT] (port 53)."""
    servers = []
    for entry in comma_list(raw):
        host, port = _host_port(entry, 53)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{entry!r}: a name server must be an IP address") from None
        servers.append((host, port))
    return tuple(servers)


dns_servers.description = "comma-separated IP[:PORT]"  # type: ignore[attr-defined]


# -- the result types -----------------------------------------------------------------------


class ConfigError(Exception):
    """
    The configuration is unusable. Its text is one line:
    "<file>: [section] key: what is wrong (got 'value')".
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


class _FrozenMap(Mapping):
    """A read-only, hashable mapping (so the frozen config objects stay hashable)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] = ()) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._data.items())}}}"


@dataclass(frozen=True)
class C2SConfig:
    """The client listener ([c2s])."""

    interface: str = "127.0.0.1"
    port: int = 5222
    direct_tls_port: int = 5223
    require_encryption: bool = True
    max_stanza_size: int = 262144


@dataclass(frozen=True)
class AuthConfig:
    """Authentication settings ([auth])."""

    scram_iterations: int = 10000
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True)
class TLSConfig:
    """
    Certificates ([tls] and [tls:HOST]); every path is absolute. A host with neither its
    own section nor a [tls] certificate gets a self-signed one generated in data_dir.
    """

    certificate: str | None = None
    private_key: str | None = None
    per_host: Mapping[str, tuple[str, str]] = _FrozenMap()

    def for_host(self, host: str) -> tuple[str, str] | None:
        """(certificate, private_key) for C{host}, or None: generate a self-signed one."""
        if host in self.per_host:
            return self.per_host[host]
        if self.certificate is not None and self.private_key is not None:
            return (self.certificate, self.private_key)
        return None


@dataclass(frozen=True)
class StorageConfig:
    """The storage backend ([storage]); C{path} is absolute."""

    backend: str
    path: str


@dataclass(frozen=True)
class S2SRoute:
    """One static s2s route target ([s2s] routes): connect to host:port for domain."""

    domain: str
    host: str
    port: int = 5269
    direct_tls: bool = False


@dataclass(frozen=True)
class S2SConfig:
    """Server-to-server federation ([s2s]); ca_file is absolute when set."""

    enabled: bool = True
    interface: str = "127.0.0.1"
    port: int = 5269
    direct_tls_port: int = 0
    require_encryption: bool = True
    allow_dialback: bool = True
    bidi: bool = True
    ca_file: str | None = None
    trust_self_signed: tuple[str, ...] = ()
    routes: tuple[S2SRoute, ...] = ()
    dns_servers: tuple[tuple[str, int], ...] = ()
    connect_timeout: float = 10.0
    negotiation_timeout: float = 60.0
    idle_timeout: float = 600.0
    max_stanza_size: int = 524288

    def routes_for(self, domain: str) -> tuple[S2SRoute, ...]:
        """The static targets of C{domain}, in the order written (empty: use DNS)."""
        return tuple(route for route in self.routes if route.domain == domain)


@dataclass(frozen=True)
class ComponentConfig:
    """One external component ([component:DOMAIN], XEP-0114); the secret is never shown."""

    domain: str
    secret: str = field(repr=False)
    name: str = ""


@dataclass(frozen=True)
class ComponentsConfig:
    """The external component listener ([components]) and its components."""

    interface: str = "127.0.0.1"
    port: int = 5347
    components: tuple[ComponentConfig, ...] = ()


@dataclass(frozen=True)
class ServerConfig:
    """The whole validated configuration of one server process."""

    path: str | None
    hosts: tuple[str, ...]
    data_dir: str
    log_level: str
    extensions: tuple[str, ...] | None
    c2s: C2SConfig
    auth: AuthConfig
    tls: TLSConfig
    storage: StorageConfig
    extension_options: Mapping[str, Mapping[str, Any]]
    s2s: S2SConfig = S2SConfig()
    components: ComponentsConfig = ComponentsConfig()


# -- the core schema ------------------------------------------------------------------------

#: The core sections: section name -> options. [tls:HOST] sections take the [tls] options.
CORE_SCHEMA: Mapping[str, tuple[Option, ...]] = MappingProxyType({
    "server": (
        Option("hosts", comma_list, ("localhost",),
               "Virtual hosts (XMPP domains) served by this process, comma-separated."),
        Option("data_dir", str, "jabberapp-data",
               "Directory for the database, generated certificates and other state."),
        Option("log_level", one_of(*LOG_LEVELS), "info",
               "Least severe log level written."),
        Option("extensions", comma_list, None,
               "Extensions installed on every host, comma-separated. Unset: every built-in "
               "extension; empty: none. Third-party extensions are installed only when "
               "listed here; a listed name that is not installed is an error."),
    ),
    "c2s": (
        Option("interface", ip_address, "127.0.0.1",
               "Address the client listeners bind to. The default accepts clients from "
               "this machine only (a local development server); use :: (every IPv6 and, "
               "on most systems, IPv4 address) or 0.0.0.0 in production."),
        Option("port", int_range(1, 65535), 5222,
               "Port for client connections (STARTTLS, RFC 6120)."),
        Option("direct_tls_port", int_range(0, 65535), 5223,
               "Port for direct TLS client connections (XEP-0368); 0 disables it."),
        Option("require_encryption", bool, True,
               "Require TLS before authentication. Disable only for local testing."),
        Option("max_stanza_size", int_range(10000, 2**31 - 1), 262144,
               "Largest client stanza accepted, in bytes; a larger one closes the stream "
               "with policy-violation. RFC 6120 requires at least 10000."),
    ),
    "s2s": (
        Option("enabled", bool, True,
               "Federate with other XMPP domains (server-to-server, RFC 6120). When off, "
               "stanzas to other domains are answered with remote-server-not-found."),
        Option("interface", ip_address, "127.0.0.1",
               "Address the s2s listeners bind to. Other servers must reach it on port "
               "5269 (or the port an _xmpp-server._tcp SRV record names): use :: or "
               "0.0.0.0 in production."),
        Option("port", int_range(0, 65535), 5269,
               "Port for incoming server connections (STARTTLS); 0: accept none (outgoing "
               "links still work, though dialback peers cannot verify us)."),
        Option("direct_tls_port", int_range(0, 65535), 0,
               "Port for incoming direct TLS server connections (XEP-0368, advertised "
               "with _xmpps-server._tcp SRV records); 0 disables it."),
        Option("require_encryption", bool, True,
               "Require TLS on every server-to-server stream, both directions. Disable "
               "only for local testing."),
        Option("allow_dialback", bool, True,
               "Accept and use server dialback (XEP-0220) when a certificate does not "
               "authenticate the peer. Off: only peers whose certificate validates for "
               "their domain (SASL EXTERNAL, XEP-0178) can federate."),
        Option("bidi", bool, True,
               "Bidirectional server-to-server streams (XEP-0288): stanzas to a peer may "
               "travel on the stream it opened, and ours carry its answers."),
        Option("ca_file", str, "",
               "PEM file of the certificate authorities trusted for peer certificates. "
               "Empty: the system's trust store."),
        Option("trust_self_signed", comma_list, (),
               "Domains whose self-signed certificate is accepted when it names the "
               "domain (private networks and tests). No other domain's self-signed "
               "certificate ever authenticates it."),
        Option("routes", s2s_routes, (),
               "Static routes, consulted before DNS: comma-separated DOMAIN=HOST:PORT "
               "(STARTTLS) or DOMAIN=tls:HOST:PORT (direct TLS); write IPv6 addresses in "
               "brackets, [::1]:5269. A domain listed twice gets two targets, tried in "
               "order. Example: example.net=127.0.0.1:5270, other.test=[::1]:5269"),
        Option("dns_servers", dns_servers, (),
               "Name servers for SRV and address lookups, comma-separated IP[:PORT]. "
               "Empty: those of /etc/resolv.conf."),
        Option("connect_timeout", positive_seconds, 10.0,
               "Seconds one outgoing TCP connection attempt may take before the next "
               "target is tried."),
        Option("negotiation_timeout", positive_seconds, 60.0,
               "Seconds a link may take from its first connection attempt to "
               "authentication. Stanzas queued for a link that times out bounce with "
               "remote-server-timeout; an incoming stream not authenticated by then is "
               "closed."),
        Option("idle_timeout", seconds_or_zero, 600.0,
               "Seconds after which an outgoing link that carried no stanza is closed; "
               "0: never."),
        Option("max_stanza_size", int_range(10000, 2**31 - 1), 524288,
               "Largest stanza accepted from a server, in bytes; a larger one closes the "
               "stream with policy-violation."),
    ),
    "components": (
        Option("interface", ip_address, "127.0.0.1",
               "Address the external component listener (XEP-0114) binds to. Component "
               "streams are not encrypted: keep it on loopback or a private network."),
        Option("port", int_range(0, 65535), 5347,
               "Port for external components (XEP-0114); 0 disables the listener. It is "
               "opened only when at least one [component:DOMAIN] section exists."),
    ),
    "auth": (
        Option("scram_iterations", int_range(4096, 10_000_000), 10000,
               "PBKDF2 iteration count for SCRAM credentials stored when a password is "
               "set; existing credentials keep theirs. At least 4096 (RFC 7677)."),
        Option("mechanisms", sasl_mechanisms, (),
               "SASL mechanisms offered to clients, comma-separated. Empty: all of them. "
               "Accounts imported with SCRAM-SHA-1 credentials only (as Prosody exports "
               "them) can use SCRAM-SHA-1(-PLUS) and PLAIN only: offer just those until "
               "their users have set new passwords."),
    ),
    "tls": (
        Option("certificate", str, "",
               "PEM certificate chain file (leaf first) for hosts without a [tls:HOST] "
               "section. Empty: a self-signed certificate is generated in "
               "<data_dir>/certs for each such host (development only)."),
        Option("private_key", str, "",
               "PEM private key file of the certificate; required with certificate."),
    ),
    "storage": (
        Option("backend", str, "sqlite",
               "Storage backend: sqlite (built in), memory (volatile, for tests) or the "
               "name of a storage plugin."),
        Option("path", str, "",
               "Database file of the sqlite backend. Empty: jabberapp.sqlite in data_dir."),
    ),
})


#: The options of a [component:DOMAIN] section: one external component (XEP-0114).
COMPONENT_SCHEMA: tuple[Option, ...] = (
    Option("secret", str, "",
           "Required: the shared secret the component authenticates with (the XEP-0114 "
           "handshake). Use a long random string."),
    Option("name", str, "",
           "The component's name in the disco#items of its parent host (the served host "
           "DOMAIN is a subdomain of). Empty: no name."),
)


# -- loading --------------------------------------------------------------------------------


def _shown(value: str) -> str:
    """The (got '...') part of an error: short and on one line."""
    if len(value) > 80:
        value = value[:77] + "..."
    return repr(value)


class _Reader:
    """Validation state for one file: knows its name for error messages."""

    def __init__(self, path: str | None, parser: configparser.ConfigParser) -> None:
        self.source = path if path is not None else "<defaults>"
        self.parser = parser

    def error(self, section: str, key: str | None, problem: str,
              value: str | None = None) -> ConfigError:
        where = f"[{section}] {key}" if key else f"[{section}]"
        got = f" (got {_shown(value)})" if value is not None else ""
        return ConfigError(f"{self.source}: {where}: {problem}{got}")

    def section(self, section: str, schema: tuple[Option, ...],
                display: str | None = None) -> dict[str, Any]:
        """Validate one section against C{schema}: name -> value, defaults filled in."""
        display = display or section
        options = {option.name: option for option in schema}
        if len(options) != len(schema):
            raise ValueError(f"schema of [{display}] has duplicate option names")
        values = {option.name: option.default for option in schema}
        if not self.parser.has_section(section):
            return values
        for key, raw in self.parser.items(section):
            option = options.get(key)
            if option is None:
                close = difflib.get_close_matches(key, options, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(display, key, f"unknown option{hint}")
            try:
                values[key] = option.parse(raw)
            except ValueError as exc:
                raise self.error(display, key, str(exc), raw) from None
        return values

    def raw(self, section: str, key: str) -> str | None:
        """The text written for C{key}, for error messages (None when defaulted)."""
        if self.parser.has_section(section) and self.parser.has_option(section, key):
            return self.parser.get(section, key)
        return None


def _read(path: str) -> configparser.ConfigParser:
    parser = _new_parser()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read: not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: duplicate section [{exc.section}]"
                          ) from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(f"{path}: [{exc.section}] {exc.option}: duplicate option "
                          f"(line {exc.lineno})") from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: option outside any section "
                          f"(got {_shown(exc.line.strip())})") from None
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        try:
            line = ast.literal_eval(line)   # configparser stores repr(line)
        except (ValueError, SyntaxError):
            pass
        raise ConfigError(f"{path}: line {lineno}: not a 'key = value' line or a "
                          f"[section] header (got {_shown(line.strip())})") from None
    return parser


def _new_parser() -> configparser.ConfigParser:
    return configparser.ConfigParser(
        interpolation=None, strict=True, default_section=_NO_DEFAULT_SECTION,
        empty_lines_in_values=False)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def load_config(path: str | None,
                extension_schemas: Mapping[str, tuple[Option, ...]] = MappingProxyType({})
                ) -> ServerConfig:
    """
    Read and validate the INI file at C{path} (None: every default).

    C{extension_schemas} maps each known extension name to its options; they are the
    only extensions [server] extensions and [extension:NAME] sections may name. Raises
    ConfigError on the first problem found.
    """
    parser = _read(path) if path is not None else _new_parser()
    reader = _Reader(path, parser)

    for section in parser.sections():
        if section in CORE_SCHEMA:
            continue
        if section.startswith(_TLS_PREFIX) or section.startswith(_EXTENSION_PREFIX):
            continue
        if section.startswith(_COMPONENT_PREFIX):
            continue
        raise ConfigError(f"{reader.source}: unknown section [{section}]")

    server = reader.section("server", CORE_SCHEMA["server"])
    hosts = _check_hosts(reader, server["hosts"])
    data_dir_raw = server["data_dir"]
    if not data_dir_raw.strip():
        raise reader.error("server", "data_dir", "must not be empty", data_dir_raw)
    data_dir = _absolute(data_dir_raw)
    extensions = server["extensions"]
    if extensions is not None:
        _check_extensions(reader, extensions, extension_schemas)

    c2s_values = reader.section("c2s", CORE_SCHEMA["c2s"])
    c2s = C2SConfig(**c2s_values)
    if c2s.direct_tls_port == c2s.port:
        raise reader.error("c2s", "direct_tls_port", "must differ from port",
                           reader.raw("c2s", "direct_tls_port") or str(c2s.direct_tls_port))

    auth = AuthConfig(**reader.section("auth", CORE_SCHEMA["auth"]))
    components = _components_config(reader, hosts)
    s2s = _s2s_config(reader, hosts)
    tls = _tls_config(reader, hosts)

    storage_values = reader.section("storage", CORE_SCHEMA["storage"])
    backend = storage_values["backend"].strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", backend):
        raise reader.error("storage", "backend", "expected a backend name",
                           storage_values["backend"])
    storage_path = storage_values["path"].strip()
    storage = StorageConfig(
        backend=backend,
        path=_absolute(storage_path) if storage_path
        else os.path.join(data_dir, "jabberapp.sqlite"))

    extension_options = _extension_options(reader, extension_schemas)

    return ServerConfig(
        path=_absolute(path) if path is not None else None,
        hosts=hosts,
        data_dir=data_dir,
        log_level=server["log_level"],
        extensions=extensions,
        c2s=c2s,
        auth=auth,
        tls=tls,
        storage=storage,
        extension_options=extension_options,
        s2s=s2s,
        components=components,
    )


def _s2s_config(reader: _Reader, hosts: tuple[str, ...]) -> S2SConfig:
    values = reader.section("s2s", CORE_SCHEMA["s2s"])
    config = S2SConfig(**{**values, "ca_file": None, "trust_self_signed": ()})
    if config.direct_tls_port and config.direct_tls_port == config.port:
        raise reader.error("s2s", "direct_tls_port", "must differ from port",
                           reader.raw("s2s", "direct_tls_port"))
    ca_file = values["ca_file"].strip()
    if ca_file:
        ca_file = _absolute(ca_file)
        if not os.path.isfile(ca_file) or not os.access(ca_file, os.R_OK):
            raise reader.error("s2s", "ca_file", "not a readable file",
                               reader.raw("s2s", "ca_file"))
    trusted = []
    for name in values["trust_self_signed"]:
        try:
            trusted.append(prep_domain(name))
        except InvalidJID as exc:
            raise reader.error("s2s", "trust_self_signed", f"{name!r}: {exc}",
                               reader.raw("s2s", "trust_self_signed")) from None
    for route in config.routes:
        if route.domain in hosts:
            raise reader.error("s2s", "routes", f"{route.domain!r} is one of [server] hosts",
                               reader.raw("s2s", "routes"))
    return S2SConfig(**{**values, "ca_file": ca_file or None,
                        "trust_self_signed": tuple(trusted)})


def _components_config(reader: _Reader, hosts: tuple[str, ...]) -> ComponentsConfig:
    values = reader.section("components", CORE_SCHEMA["components"])
    components: list[ComponentConfig] = []
    for section in reader.parser.sections():
        if not section.startswith(_COMPONENT_PREFIX):
            continue
        name = section[len(_COMPONENT_PREFIX):]
        try:
            domain = prep_domain(name)
        except InvalidJID as exc:
            raise ConfigError(f"{reader.source}: [{section}]: {name!r} is not a valid "
                              f"domain ({exc})") from None
        if domain in hosts:
            raise ConfigError(f"{reader.source}: [{section}]: {domain!r} is one of [server] "
                              "hosts; a component needs a domain of its own")
        if any(component.domain == domain for component in components):
            raise ConfigError(f"{reader.source}: [{section}]: a second section for component "
                              f"{domain!r}")
        options = reader.section(section, COMPONENT_SCHEMA)
        if not options["secret"]:
            # The value is never shown in an error: it is a credential.
            raise reader.error(section, "secret", "required: the secret the component "
                               "authenticates with")
        components.append(ComponentConfig(domain, options["secret"], options["name"].strip()))
    return ComponentsConfig(interface=values["interface"], port=values["port"],
                            components=tuple(components))


def _check_hosts(reader: _Reader, names: tuple[str, ...]) -> tuple[str, ...]:
    raw = reader.raw("server", "hosts")
    if not names:
        raise reader.error("server", "hosts", "at least one host is required", raw or "")
    hosts: list[str] = []
    for name in names:
        try:
            host = prep_domain(name)
        except InvalidJID as exc:
            raise reader.error("server", "hosts", f"{name!r}: {exc}", raw) from None
        if host in hosts:
            raise reader.error("server", "hosts", f"{name!r} is listed twice", raw)
        hosts.append(host)
    return tuple(hosts)


def _check_extensions(reader: _Reader, names: tuple[str, ...],
                      schemas: Mapping[str, tuple[Option, ...]]) -> None:
    raw = reader.raw("server", "extensions")
    seen: set[str] = set()
    for name in names:
        if name not in schemas:
            known = ", ".join(sorted(schemas)) or "none"
            raise reader.error("server", "extensions",
                               f"unknown extension {name!r} (installed: {known})", raw)
        if name in seen:
            raise reader.error("server", "extensions", f"{name!r} is listed twice", raw)
        seen.add(name)


def _cert_pair(reader: _Reader, section: str, values: Mapping[str, str],
               required: bool) -> tuple[str, str] | None:
    certificate = values["certificate"].strip()
    private_key = values["private_key"].strip()
    if not certificate and not private_key and not required:
        return None
    for key, value, other in (("certificate", certificate, "private_key"),
                              ("private_key", private_key, "certificate")):
        if not value:
            problem = (f"required in a [{section}] section" if required
                       else f"required when {other} is set")
            raise reader.error(section, key, problem, reader.raw(section, key))
    pair = (_absolute(certificate), _absolute(private_key))
    for key, file in zip(("certificate", "private_key"), pair):
        if not os.path.isfile(file) or not os.access(file, os.R_OK):
            raise reader.error(section, key, "not a readable file", reader.raw(section, key))
    return pair


def _tls_config(reader: _Reader, hosts: tuple[str, ...]) -> TLSConfig:
    default = _cert_pair(reader, "tls", reader.section("tls", CORE_SCHEMA["tls"]), False)
    per_host: dict[str, tuple[str, str]] = {}
    for section in reader.parser.sections():
        if not section.startswith(_TLS_PREFIX):
            continue
        name = section[len(_TLS_PREFIX):]
        try:
            host = prep_domain(name)
        except InvalidJID:
            host = None
        if host not in hosts:
            raise ConfigError(f"{reader.source}: [{section}]: {name!r} is not one of "
                              f"[server] hosts ({', '.join(hosts)})")
        if host in per_host:
            raise ConfigError(f"{reader.source}: [{section}]: a second section for host "
                              f"{host!r}")
        values = reader.section(section, CORE_SCHEMA["tls"])
        pair = _cert_pair(reader, section, values, True)
        assert pair is not None
        per_host[host] = pair
    return TLSConfig(
        certificate=default[0] if default else None,
        private_key=default[1] if default else None,
        per_host=_FrozenMap(per_host),
    )


def _extension_options(reader: _Reader, schemas: Mapping[str, tuple[Option, ...]]
                       ) -> Mapping[str, Mapping[str, Any]]:
    for section in reader.parser.sections():
        if section.startswith(_EXTENSION_PREFIX):
            name = section[len(_EXTENSION_PREFIX):]
            if name not in schemas:
                known = ", ".join(sorted(schemas)) or "none"
                raise ConfigError(f"{reader.source}: unknown section [{section}]: no "
                                  f"extension {name!r} is installed (installed: {known})")
    return _FrozenMap({
        name: _FrozenMap(reader.section(_EXTENSION_PREFIX + name, tuple(schema)))
        for name, schema in schemas.items()
    })


# -- the example file -----------------------------------------------------------------------

_EXAMPLE_HEADER = """\
; jabberapp configuration: every section and option with its default.
; Generated from the option schemas by jabberapp.config.render_example(); do not edit
; config.example.ini by hand.
;
; Uncomment an option (remove the leading ';') to change it. Unknown sections and
; options are errors, so a typo cannot silently switch a setting off.
; Booleans are yes/no; lists are comma-separated; relative paths are relative to the
; working directory of the server.
"""


def _format_value(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(item) for item in value)
    return str(value)


def _describe_type(kind: Any) -> str:
    names = {bool: "yes or no", int: "integer", float: "number", str: "text"}
    if kind in names:
        return names[kind]
    return getattr(kind, "description", None) or getattr(kind, "__name__", "value")


def _render_options(lines: list[str], options: tuple[Option, ...],
                    example_values: Mapping[str, str] = MappingProxyType({})) -> None:
    if not options:
        lines.append("; (no options)")
        lines.append("")
    for option in options:
        lines.extend("; " + line for line in textwrap.wrap(option.doc, 86))
        default = ("unset" if option.default is None
                   else _format_value(option.default) or "empty")
        lines.append(f"; ({_describe_type(option.type)}; default: {default})")
        value = example_values.get(option.name, _format_value(option.default))
        lines.append(f";{option.name} = {value}".rstrip())
        lines.append("")


def render_example(extension_schemas: Mapping[str, tuple[Option, ...]] = MappingProxyType({})
                   ) -> str:
    """The text of config.example.ini: every core and extension option, commented out."""
    lines = [_EXAMPLE_HEADER]
    for section, options in CORE_SCHEMA.items():
        lines.append(f"[{section}]")
        lines.append("")
        examples = {}
        if section == "server":
            examples["extensions"] = ", ".join(sorted(extension_schemas))
        _render_options(lines, options, examples)
        if section == "tls":
            lines.extend([
                "; A [tls:HOST] section gives one host of [server] hosts its own certificate,",
                "; taking the two options above (both required), for example:",
                "; [tls:example.org]",
                "; certificate = /etc/jabberapp/example.org/fullchain.pem",
                "; private_key = /etc/jabberapp/example.org/privkey.pem",
                "",
            ])
        if section == "components":
            lines.extend([
                "; A [component:DOMAIN] section lets one external component serve DOMAIN and",
                "; every JID in it, for example:",
                "; [component:gateway.example.org]",
                "; secret = a long random string",
                "; name = Gateway",
                "; Its options:",
            ])
            for option in COMPONENT_SCHEMA:
                lines.extend("; " + line for line in textwrap.wrap(
                    f"{option.name}: {option.doc}", 84, subsequent_indent="  "))
            lines.append("")
    for name in sorted(extension_schemas):
        lines.append(f"[{_EXTENSION_PREFIX}{name}]")
        lines.append("")
        _render_options(lines, tuple(extension_schemas[name]))
    return "\n".join(lines).rstrip("\n") + "\n"
