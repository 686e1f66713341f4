"""
Configuration checks for jabberappctl: read a config file the way `twistd jabberapp` does.

``load_settings()`` is what every jabberappctl command needs: the extensions are discovered
first so that their ``[extension:NAME]`` sections validate exactly as they do for the server.
``validate()`` adds the remaining checks the server makes before it serves (the extension
list and its dependencies, a usable data_dir, the configured certificates, the storage
backend's name), without opening a port or the database, creating a directory or generating a certificate.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from twisted.plugin import getPlugins

import jabberapp.plugins
from jabberapp import tls
from jabberapp.config import ServerConfig, load_config
from jabberapp.datadir import DataDirError, ensure_data_dir
from jabberapp.interfaces import IExtension, IStorageBackend
from jabberapp.server import StartupError, discover_extensions, select_extensions
from jabberapp.storage import UnknownBackend

__all__ = ["Validated", "check_certificates", "check_storage_backend", "load_settings",
           "validate"]


@dataclass(frozen=True)
class Validated:
    """A configuration that passed every check the server makes before it starts."""

    settings: ServerConfig
    #: The extensions the server would install on every host, dependencies first.
    extensions: tuple[IExtension, ...]


def load_settings(config_path: str | None) -> tuple[ServerConfig, Mapping[str, IExtension]]:
    """
    (settings, discovered extensions by name) for C{config_path} (None: built-in defaults).

    Raises ConfigError or StartupError, whose text is one line for the operator.
    """
    available = discover_extensions()
    schemas = {name: tuple(extension.options) for name, extension in available.items()}
    return load_config(config_path, schemas), available


def check_certificates(settings: ServerConfig) -> None:
    """
    Load every configured certificate and key as the server does; StartupError if one fails.

    A host without a configured certificate is skipped: the server generates (or reuses) a
    self-signed one in data_dir when it starts, and a check must not write anything.
    """
    for host in settings.hosts:
        pair = settings.tls.for_host(host)
        if pair is None:
            continue
        try:
            tls.load_certificate(*pair)
        except ValueError as exc:
            raise StartupError(f"[tls] {host}: {exc}") from None


def check_storage_backend(settings: ServerConfig) -> None:
    """
    UnknownBackend unless exactly one installed plugin provides [storage] backend, the
    condition open_storage() checks when the server starts; the database is not opened.
    """
    name = settings.storage.backend
    installed = list(getPlugins(IStorageBackend, jabberapp.plugins))
    providers = [backend for backend in installed if backend.name == name]
    if not providers:
        known = sorted({backend.name for backend in installed})
        raise UnknownBackend(f"unknown storage backend {name!r} "
                             f"(installed: {', '.join(known) or 'none'})")
    if len(providers) > 1:
        modules = ", ".join(sorted(type(backend).__module__ for backend in providers))
        raise UnknownBackend(f"storage backend {name!r} is provided twice ({modules})")


def validate(config_path: str | None) -> Validated:
    """
    Check C{config_path} as `twistd jabberapp --config` would before serving anything.

    Raises ConfigError, StartupError or UnknownBackend, whose text is one line for the
    operator.
    """
    settings, available = load_settings(config_path)
    extensions = select_extensions(available, settings.extensions)
    try:
        ensure_data_dir(settings.data_dir, create=False)
    except DataDirError as e:
        raise StartupError(str(e)) from None
    check_certificates(settings)
    check_storage_backend(settings)
    return Validated(settings=settings, extensions=tuple(extensions))
