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
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from jabberapp.jid import InvalidJID, prep_domain

__all__ = [
    "AuthConfig",
    "C2SConfig",
    "CORE_SCHEMA",
    "ConfigError",
    "LOG_LEVELS",
    "Option",
    "ServerConfig",
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
    "auth": (
        Option("scram_iterations", int_range(4096, 10_000_000), 10000,
               "PBKDF2 iteration count for SCRAM credentials stored when a password is "
               "set; existing credentials keep theirs. At least 4096 (RFC 7677)."),
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
    )


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
    for name in sorted(extension_schemas):
        lines.append(f"[{_EXTENSION_PREFIX}{name}]")
        lines.append("")
        _render_options(lines, tuple(extension_schemas[name]))
    return "\n".join(lines).rstrip("\n") + "\n"
