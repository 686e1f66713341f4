"""
jabberapp's log events go through one filtering observer, so `[server] log_level` applies to
every module. Use `log = logging.logger(__name__)`; never log passwords, tokens or bodies.
"""
from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate, Logger,
                            globalLogPublisher)

LEVELS = ("debug", "info", "warn", "error", "critical")

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
# Looked up at emit time so the global publisher can be replaced (twistd, tests).
_observer = FilteringLogObserver(lambda event: globalLogPublisher(event), [_predicate])


def logger(namespace):
    """A Logger for C{namespace} whose events obey the configured level."""
    return Logger(namespace=namespace, observer=_observer)


def set_level(name):
    """Set the minimum level of jabberapp's events: one of LEVELS."""
    _predicate.setLogLevelForNamespace("jabberapp", LogLevel.levelWithName(name))
    _predicate.defaultLogLevel = LogLevel.levelWithName(name)
