"""
jabberapp.logging: one level for every module's events.
"""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import logging


class LevelTests(SynchronousTestCase):
    def setUp(self):
        self.addCleanup(logging.set_level, "info")   # the default

    def recording(self):
        events = []
        log = logging.logger("jabberapp.test")
        log.observer = events.append
        return log, events

    def test_below_the_level_is_dropped_before_the_observer(self):
        """After set_level('warn') an info event never reaches an observer; a warning and
        a failure do."""
        logging.set_level("warn")
        log, events = self.recording()
        log.info("bound {jid}", jid="a@b/c")
        log.debug("detail")
        log.warn("slow {what}", what="disk")
        try:
            1 / 0
        except ZeroDivisionError:
            log.failure("broken")
        self.assertEqual([e["log_format"] for e in events], ["slow {what}", "broken"])

    def test_level_can_be_lowered_again(self):
        """set_level('debug') lets every event through."""
        logging.set_level("error")
        logging.set_level("debug")
        log, events = self.recording()
        log.debug("detail")
        self.assertEqual(len(events), 1)
