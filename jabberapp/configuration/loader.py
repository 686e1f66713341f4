"""
The loader: ``load_config(path, extension_schemas)`` reads the INI file with configparser
and checks every section and key against the schemas before any port is opened, returning
the frozen objects of ``jabberapp.configuration.settings``.

An unknown section or key, a bad value, a missing file or a duplicate key is a
``ConfigError`` whose text is a single line naming the file, the section and the key. A
silently ignored typo could switch a control off unnoticed, so nothing unknown is ever
ignored. Relative paths are made absolute against the working directory.
"""
from __future__ import annotations

import ast
import configparser
import difflib
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from jabberapp.configuration.core import (COMPONENT_PREFIX, COMPONENT_SCHEMA, CORE_SCHEMA,
                                          EXTENSION_PREFIX, TLS_PREFIX)
from jabberapp.configuration.options import Option
from jabberapp.configuration.settings import (AuthConfig, BOSHConfig, C2SConfig, ComponentConfig,
                                              ComponentsConfig, ConfigError, HTTPConfig,
                                              S2SConfig, ServerConfig, StorageConfig,
                                              TLSConfig, FrozenMap, WebSocketConfig)
from jabberapp.jid import InvalidJID, prep_domain

__all__ = ["load_config"]

# configparser copies the keys of its default section into every section; no real
# section can be called this, so [DEFAULT] in a file is just an unknown section.
_NO_DEFAULT_SECTION = "\x00no default section"


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
        if section.startswith(TLS_PREFIX) or section.startswith(EXTENSION_PREFIX):
            continue
        if section.startswith(COMPONENT_PREFIX):
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
    http = _http_config(reader, c2s, s2s, components)

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
        http=http,
        bosh=BOSHConfig(**reader.section("bosh", CORE_SCHEMA["bosh"])),
        websocket=WebSocketConfig(**reader.section("websocket", CORE_SCHEMA["websocket"])),
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


def _http_config(reader: _Reader, c2s: C2SConfig, s2s: S2SConfig,
                 components: ComponentsConfig) -> HTTPConfig:
    """[http]; when enabled, its ports must be set, differ, and be no other listener's."""
    config = HTTPConfig(**reader.section("http", CORE_SCHEMA["http"]))
    if not config.enabled:
        return config
    if not config.port and not config.tls_port:
        raise reader.error("http", "port", "port or tls_port must be set when enabled",
                           reader.raw("http", "port"))
    if config.port and config.port == config.tls_port:
        raise reader.error("http", "tls_port", "must differ from port",
                           reader.raw("http", "tls_port"))
    others = {c2s.port: "[c2s] port", c2s.direct_tls_port: "[c2s] direct_tls_port"}
    if s2s.enabled:
        others.update({s2s.port: "[s2s] port", s2s.direct_tls_port: "[s2s] direct_tls_port"})
    if components.components:
        others[components.port] = "[components] port"
    others.pop(0, None)
    for key in ("port", "tls_port"):
        port = getattr(config, key)
        if port in others:
            raise reader.error("http", key, f"must differ from {others[port]}",
                               reader.raw("http", key))
    return config


def _components_config(reader: _Reader, hosts: tuple[str, ...]) -> ComponentsConfig:
    values = reader.section("components", CORE_SCHEMA["components"])
    components: list[ComponentConfig] = []
    for section in reader.parser.sections():
        if not section.startswith(COMPONENT_PREFIX):
            continue
        name = section[len(COMPONENT_PREFIX):]
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
        if not section.startswith(TLS_PREFIX):
            continue
        name = section[len(TLS_PREFIX):]
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
        per_host=FrozenMap(per_host),
    )


def _extension_options(reader: _Reader, schemas: Mapping[str, tuple[Option, ...]]
                       ) -> Mapping[str, Mapping[str, Any]]:
    for section in reader.parser.sections():
        if section.startswith(EXTENSION_PREFIX):
            name = section[len(EXTENSION_PREFIX):]
            if name not in schemas:
                known = ", ".join(sorted(schemas)) or "none"
                raise ConfigError(f"{reader.source}: unknown section [{section}]: no "
                                  f"extension {name!r} is installed (installed: {known})")
    return FrozenMap({
        name: FrozenMap(reader.section(EXTENSION_PREFIX + name, tuple(schema)))
        for name, schema in schemas.items()
    })
