"""
twistd entry point: `twistd -n jabberapp [--config FILE]`.

The config is read and validated, the extensions resolved and the certificates loaded here,
before twistd starts anything: a bad setting is one clear line on stderr and exit status 1.
What can only fail once twistd runs (a port in use, a corrupt or locked database) is one
critical log line, and the process still exits with status 1 (twistd itself would say 0).
SIGHUP is ignored with a log line: there is no configuration reload yet.
"""
import atexit
import os
import signal
import sys

from twisted.python import usage

from jabberapp import logging
from jabberapp.config import ConfigError, load_config
from jabberapp.server import (ServerService, StartupError, discover_extensions,
                              select_extensions)

log = logging.logger(__name__)


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
        service = build_service(options["config"], reactor)
    except (ConfigError, StartupError) as e:
        sys.stderr.write(f"jabberapp: {e}\n")
        raise SystemExit(1)
    atexit.register(_exit_status, service)
    signal.signal(signal.SIGHUP, lambda signum, frame: reactor.callFromThread(_sighup))
    return service


def _exit_status(service):
    """At interpreter exit, after twistd's own clean-up: a server that could not start
    leaves with status 1, so that service managers and scripts do not see a success
    (twistd returns normally after any reactor stop, so its status would be 0)."""
    if service.failed:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _sighup():
    log.warn("SIGHUP received and ignored: jabberapp cannot reload its configuration yet; "
             "restart it to apply changes")
