"""Tests for jabberapp.sasl.throttle: back-off after failed logins, with bounded memory."""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.sasl.throttle import FailureThrottle

IP = ("ip", "192.0.2.1")
USER = ("user", "example.org", "juliet")


class FailureThrottleTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.throttle = FailureThrottle(self.clock, base_delay=1.0, max_delay=30.0,
                                        forget_after=300.0, max_keys=100)

    def test_no_failures(self):
        """Keys that never failed, or no keys at all, need no delay."""
        self.assertEqual(self.throttle.delay(IP, USER), 0)
        self.assertEqual(self.throttle.delay(), 0)

    def test_growth(self):
        """Each failure doubles the delay: 1, 2, 4, 8, 16 seconds."""
        delays = []
        for _ in range(5):
            self.throttle.failed(USER)
            delays.append(self.throttle.delay(USER))
        self.assertEqual(delays, [1, 2, 4, 8, 16])

    def test_cap(self):
        """The delay never exceeds max_delay, even after very many failures."""
        for _ in range(2000):
            self.throttle.failed(USER)
        self.assertEqual(self.throttle.delay(USER), 30)

    def test_max_over_keys(self):
        """The delay is the largest of the given keys' delays."""
        for _ in range(3):
            self.throttle.failed(USER)
        self.throttle.failed(IP)
        self.assertEqual(self.throttle.delay(IP), 1)
        self.assertEqual(self.throttle.delay(IP, USER), 4)
        self.assertEqual(self.throttle.delay(("ip", "other"), IP), 1)

    def test_failed_counts_every_key(self):
        """One failure reported for several keys counts once for each."""
        self.throttle.failed(IP, USER)
        self.throttle.failed(IP, USER)
        self.assertEqual((self.throttle.delay(IP), self.throttle.delay(USER)), (2, 2))

    def test_reset_on_success(self):
        """A success forgets the failures of the keys given, and only those."""
        self.throttle.failed(IP, USER)
        self.throttle.failed(IP, USER)
        self.throttle.succeeded(USER)
        self.assertEqual(self.throttle.delay(USER), 0)
        self.assertEqual(self.throttle.delay(IP), 2)
        self.throttle.succeeded(("never", "seen"))
        self.throttle.failed(USER)
        self.assertEqual(self.throttle.delay(USER), 1)

    def test_forgetting(self):
        """Failures are forgotten forget_after seconds after the latest one."""
        self.throttle.failed(USER)
        self.throttle.failed(USER)
        self.clock.advance(299)
        self.assertEqual(self.throttle.delay(USER), 2)
        self.clock.advance(1)
        self.assertEqual(self.throttle.delay(USER), 0)
        self.assertEqual(len(self.throttle), 0)
        self.throttle.failed(USER)
        self.assertEqual(self.throttle.delay(USER), 1)

    def test_new_failure_extends_memory(self):
        """A new failure restarts the forgetting period for its key."""
        self.throttle.failed(USER)
        self.clock.advance(200)
        self.throttle.failed(USER)
        self.clock.advance(200)
        self.assertEqual(self.throttle.delay(USER), 2)

    def test_stale_entries_are_dropped(self):
        """Expired entries leave the table even if nobody asks about them again."""
        for i in range(50):
            self.throttle.failed(("ip", str(i)))
        self.clock.advance(301)
        self.throttle.failed(IP)
        self.assertEqual(len(self.throttle), 1)

    def test_max_keys(self):
        """The table never holds more than max_keys entries; the least recently failed go first."""
        throttle = FailureThrottle(self.clock, max_keys=10)
        throttle.failed(USER)
        for i in range(1000):
            self.clock.advance(0.01)
            throttle.failed(("ip", str(i)))
            self.assertLessEqual(len(throttle), 10)
        self.assertEqual(throttle.delay(USER), 0)
        self.assertEqual(throttle.delay(("ip", "999")), 1)
        self.assertEqual(throttle.delay(("ip", "990")), 1)
        self.assertEqual(throttle.delay(("ip", "989")), 0)

    def test_recent_failure_survives_eviction(self):
        """A key that keeps failing stays in a full table while idle keys are evicted."""
        throttle = FailureThrottle(self.clock, max_keys=3)
        for i in range(20):
            throttle.failed(USER)
            throttle.failed(("ip", str(i)))
        self.assertEqual(throttle.delay(USER), 30)

    def test_custom_delays(self):
        """base_delay and max_delay scale and cap the back-off."""
        throttle = FailureThrottle(self.clock, base_delay=0.5, max_delay=3)
        delays = []
        for _ in range(5):
            throttle.failed(IP)
            delays.append(throttle.delay(IP))
        self.assertEqual(delays, [0.5, 1, 2, 3, 3])

    def test_invalid_arguments(self):
        """Negative delays, a non-positive memory or a zero table size are refused."""
        self.assertRaises(ValueError, FailureThrottle, self.clock, base_delay=-1)
        self.assertRaises(ValueError, FailureThrottle, self.clock, forget_after=0)
        self.assertRaises(ValueError, FailureThrottle, self.clock, max_keys=0)
