"""
The outbound pipeline of one host's c2s sessions: the stages every stanza to a session
passes before its transport (IHost.add_outbound_stage), the mirror of the inbound hooks.

The stages are kept as a tuple rebuilt at registration, like the hook chains: a session
reads one attribute per stanza and, with no stage registered (the common case), sends at
once. A stage may add or remove stages while a stanza passes without changing that pass.
"""
from jabberapp.logging import logger

log = logger(__name__)


class OutboundPipeline:
    """Priority-ordered stages C{stage(session, stanza) -> stanza or None}."""

    def __init__(self):
        self._entries = []   # (priority, stage), as registered
        self.stages = ()     # in running order: higher priority first, ties as registered

    def add(self, stage, priority=0):
        """Add C{stage}; see IHost.add_outbound_stage."""
        self._entries.append((priority, stage))
        # A stable sort keeps registration order among equal priorities.
        self._entries.sort(key=lambda entry: -entry[0])
        self.stages = tuple(stage for _, stage in self._entries)

    def remove(self, stage):
        """Remove C{stage} (nothing when it is not registered)."""
        self._entries = [entry for entry in self._entries if entry[1] is not stage]
        self.stages = tuple(stage for _, stage in self._entries)

    def run(self, session, stanza, stages=None):
        """
        Pass C{stanza} through C{stages} (all of them by default): the stanza that comes
        out, or None when a stage dropped or held it.
        """
        for stage in self.stages if stages is None else stages:
            try:
                result = stage(session, stanza)
            except Exception:
                # Fail open: a broken filter must not lose the user's stanzas.
                log.failure("outbound stage {stage!r} failed", stage=stage)
                continue
            if result is None:
                return None
            stanza = result
        return stanza

    def after(self, stage):
        """The stages that run after C{stage}; all of them when it is no longer registered
        (a stage unloaded while it held stanzas lets them through the whole pipeline)."""
        stages = self.stages
        try:
            return stages[stages.index(stage) + 1:]
        except ValueError:
            return stages
