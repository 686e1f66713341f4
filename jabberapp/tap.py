"""
twistd entry point: `twistd -n jabberapp [--config FILE]`.

The config is read and validated, the extensions resolved and the certificates loaded here,
before twistd starts anything: a bad setting is one clear line on stderr and exit status 1.
"""
import sys

from twisted.python import usage

from jabberapp import logging
from jabberapp.config import ConfigError, load_config
from jabberapp.server import (ServerService, StartupError, discover_extensions,
                              select_extensions)


class Options(usage.Options):
    """Command line of `twistd jabberapp`."""

    optParameters = [
        ["config", "c", None, "INI configuration file (default: built-in defaults, host localhost)"],
    ]


def build_service(config_path, reactor):
    """Validate everything and return the ServerService; raises ConfigError or StartupError."""
    available = discover_extensions()
    schemas = {name: tuple(ext.options) for name, ext in available.items()}
    settings = load_config(config_path, schemas)
    logging.set_level(settings.log_level)
    extensions = select_extensions(available, settings.extensions)
    return ServerService(settings, extensions, reactor)


def makeService(options):
    from twisted.internet import reactor
    try:
        return build_service(options["config"], reactor)
    except (ConfigError, StartupError) as e:
        sys.stderr.write(f"jabberapp: {e}\n")
        raise SystemExit(1)
