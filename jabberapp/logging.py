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


_minimum = [LogLevel.info]    # the configured level, read by every emit()


class _LevelLogger(Logger):
    """A Logger that drops an event below the configured level before building it.

    Twisted's Logger builds the whole event and hands it to the observers, which filter it
    only then; 'bound {jid}' and friends sit on the path of every login and stream."""

    def emit(self, level, format=None, **kwargs):
        if level < _minimum[0]:
            return
        super().emit(level, format, **kwargs)


def logger(namespace):
    """A Logger for C{namespace} whose events obey the configured level."""
    return _LevelLogger(namespace=namespace, observer=_observer)


def set_level(name):
    """Set the minimum level of jabberapp's events: one of LEVELS."""
    level = LogLevel.levelWithName(name)
    _predicate.setLogLevelForNamespace("jabberapp", level)
    _predicate.defaultLogLevel = level
    _minimum[0] = level
