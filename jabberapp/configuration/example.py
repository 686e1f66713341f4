"""
The example writer: ``render_example(extension_schemas)`` is the text of config.example.ini,
every core and extension option commented out with its doc, type and default, generated from
the same schemas the loader validates against so the documentation cannot drift from the code
(``python -m jabberapp.admin.example > config.example.ini`` writes the built-in one).
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from jabberapp.configuration.core import COMPONENT_SCHEMA, CORE_SCHEMA, EXTENSION_PREFIX
from jabberapp.configuration.options import Option

__all__ = ["render_example"]

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
        lines.append(f"[{EXTENSION_PREFIX}{name}]")
        lines.append("")
        _render_options(lines, tuple(extension_schemas[name]))
    return "\n".join(lines).rstrip("\n") + "\n"
