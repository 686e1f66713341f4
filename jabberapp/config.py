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

This module is the stable public path (third-party extensions write
``from jabberapp.config import Option, int_range``); the code lives in
``jabberapp.configuration``: ``options`` (the schema type), ``settings`` (the result
types), ``core`` (the core schema), ``loader`` and ``example`` (the example writer).
"""
from jabberapp.configuration.core import (COMPONENT_SCHEMA, CORE_SCHEMA, LOG_LEVELS, dns_servers,
                                          s2s_routes, sasl_mechanisms)
from jabberapp.configuration.example import render_example
from jabberapp.configuration.loader import load_config
from jabberapp.configuration.options import (Option, comma_list, int_range, ip_address, one_of,
                                             positive_seconds, seconds_or_zero)
from jabberapp.configuration.settings import (AuthConfig, C2SConfig, ComponentConfig,
                                              ComponentsConfig, ConfigError, S2SConfig,
                                              S2SRoute, ServerConfig, StorageConfig, TLSConfig)

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
    "S2SRoute",
    "StorageConfig",
    "TLSConfig",
    "comma_list",
    "dns_servers",
    "int_range",
    "ip_address",
    "load_config",
    "one_of",
    "positive_seconds",
    "render_example",
    "s2s_routes",
    "sasl_mechanisms",
    "seconds_or_zero",
]
