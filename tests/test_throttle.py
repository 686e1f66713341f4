"""Tests for jabberapp.sasl.throttle: back-off before credential checks, with bounded memory,
and its use by the c2s SASL step."""
import base64

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.sasl.throttle import FailureThrottle, ThrottleFull, address_key
from tests.c2s_bytes import NS_SASL, PASSWORD, World, b64, text_of, unb64
from tests.scram_client import Client

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


OWNER = ("ip", "198.51.100.7")


class Check:
    """A credential check driven by a test: records when it started, fails or succeeds on demand."""

    def __init__(self, throttle, account=USER, address=IP, alive=lambda: True):
        self.started = False
        self.attempt = throttle.admit(account, address, alive=alive)
        if self.attempt.wait is None:
            self.started = True
        else:
            self.attempt.wait.addCallback(self._start)

    def _start(self, _):
        self.started = True


class AdmitTests(SynchronousTestCase):
    """FailureThrottle.admit: the check itself waits for its turn."""

    def setUp(self):
        self.clock = Clock()
        self.throttle = FailureThrottle(self.clock, base_delay=1.0, max_delay=30.0,
                                        forget_after=300.0, max_keys=100, max_waiting=64)

    def test_clean_keys_run_at_once(self):
        """Without failures a check runs at once, with no timer, and a success leaves nothing."""
        check = Check(self.throttle)
        self.assertIsNone(check.attempt.wait)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        check.attempt.succeeded()
        self.assertEqual((len(self.throttle), self.throttle.queued()), (0, 0))

    def test_check_waits_for_the_account_delay(self):
        """After a checked failure the next check on the account starts only after the delay,
        whatever address it comes from."""
        Check(self.throttle).attempt.failed()
        later = Check(self.throttle, address=OWNER)
        self.assertFalse(later.started)
        self.clock.advance(0.99)
        self.assertFalse(later.started)
        self.clock.advance(0.01)
        self.assertTrue(later.started)

    def test_check_waits_for_the_address_delay(self):
        """After failures from an address, its check on another account waits for the delay."""
        Check(self.throttle).attempt.failed()
        Check(self.throttle, account=("user", "example.org", "romeo")).attempt.failed()
        other = Check(self.throttle, account=("user", "example.org", "nurse"))
        self.assertFalse(other.started)
        self.clock.advance(2)
        self.assertTrue(other.started)

    def test_failing_address_starts_one_check_per_delay(self):
        """Guesses on many accounts from one address with failures start a delay apart, not
        all at once when the delay is over."""
        Check(self.throttle).attempt.failed()
        checks = [Check(self.throttle, account=("user", "example.org", str(i)))
                  for i in range(5)]
        starts = []
        for _ in range(80):
            self.clock.advance(0.5)
            for check in checks:
                if check.started and not check.attempt._done:
                    starts.append(self.clock.seconds())
                    check.attempt.failed()
        self.assertEqual(starts, [1, 3, 7, 15, 31])

    def test_one_check_per_account_at_a_time(self):
        """A second check on an account waits for the running one; a success lets it go at once."""
        first = Check(self.throttle)
        second = Check(self.throttle, address=OWNER)
        self.assertFalse(second.started)
        first.attempt.succeeded()
        self.assertTrue(second.started)
        self.assertEqual(len(self.throttle), 0)

    def test_delays_double_up_to_the_cap(self):
        """Back-to-back guesses are checked at 0, 1, 3, 7, 15, 31, then every 30 seconds."""
        starts = []
        for _ in range(9):
            check = Check(self.throttle)
            while not check.started:
                self.clock.advance(0.5)
            starts.append(self.clock.seconds())
            check.attempt.failed()
        self.assertEqual(starts, [0, 1, 3, 7, 15, 31, 61, 91, 121])

    def test_parallel_guesses_are_bounded(self):
        """60 guesses sent at once from 60 addresses: at most 7 are checked in a minute."""
        checks = [Check(self.throttle, address=("ip", str(i))) for i in range(60)]
        checked = 0
        for _ in range(600):
            for check in checks:
                if check.started and not check.attempt._done:
                    checked += 1
                    check.attempt.failed()
            self.clock.advance(0.1)
        self.assertLessEqual(checked, 7)
        self.assertGreaterEqual(checked, 5)

    def test_abandoned_attempt_is_counted(self):
        """An attempt whose connection is gone when its turn comes is counted, never started."""
        running = Check(self.throttle)
        gone = [False]
        waiting = Check(self.throttle, address=OWNER, alive=lambda: not gone[0])
        gone[0] = True
        running.attempt.failed()
        self.assertFalse(waiting.started)
        self.assertEqual(self.throttle.delay(USER), 2)
        self.assertEqual(self.throttle.delay(OWNER), 1)
        self.assertEqual(self.throttle.queued(), 0)

    def test_cancelled_wait_is_counted(self):
        """Cancelling a waiting attempt counts it as a failure and frees its place."""
        running = Check(self.throttle)
        waiting = Check(self.throttle, address=OWNER)
        waiting.attempt.wait.addErrback(lambda failure: failure.trap(CancelledError))
        waiting.attempt.wait.cancel()
        self.assertEqual(self.throttle.delay(USER), 1)
        running.attempt.succeeded()
        self.assertEqual(self.throttle.queued(), 0)

    def test_abandon_frees_a_waiting_place_at_once(self):
        """An abandoned waiting attempt is counted and leaves the queue at once, its wait never
        fires; abandoning the running check changes nothing until it reports its outcome."""
        running = Check(self.throttle)
        waiting = Check(self.throttle, address=OWNER)
        waiting.attempt.abandon()
        self.assertEqual(self.throttle.queued(), 1)
        self.assertEqual(self.throttle.delay(USER), 1)
        running.attempt.abandon()
        self.assertEqual(self.throttle.queued(), 1)
        running.attempt.failed()
        self.assertEqual(self.throttle.queued(), 0)
        self.assertEqual(self.throttle.delay(USER), 2)
        self.clock.advance(60)
        self.assertFalse(waiting.started)

    def test_abandoned_attempts_do_not_push_the_owner_back(self):
        """However many attempts are abandoned, the owner is checked within max_delay of the
        latest checked failure, before the attacker's live attempts."""
        for _ in range(10):
            check = Check(self.throttle)
            while not check.started:
                self.clock.advance(1)
            check.attempt.failed()
        last_check = self.clock.seconds()
        gone = [False]
        for i in range(50):
            Check(self.throttle, address=("ip", f"a{i}"), alive=lambda: not gone[0])
        gone[0] = True
        live_attacker = Check(self.throttle)
        self.clock.advance(1)
        owner = Check(self.throttle, address=OWNER)
        self.clock.advance(last_check + 30 - self.clock.seconds())
        self.assertTrue(owner.started)
        self.assertFalse(live_attacker.started)
        owner.attempt.succeeded()
        self.assertTrue(live_attacker.started)

    def test_release_counts_nothing(self):
        """An attempt released without an outcome counts nothing and frees the account."""
        first = Check(self.throttle)
        second = Check(self.throttle)
        first.attempt.release()
        self.assertTrue(second.started)
        self.assertEqual(self.throttle.delay(USER, IP), 0)

    def test_outcomes_are_reported_once(self):
        """A second outcome on the same attempt changes nothing."""
        check = Check(self.throttle)
        check.attempt.failed()
        check.attempt.failed()
        check.attempt.succeeded()
        self.assertEqual(self.throttle.delay(USER), 1)

    def test_success_clears_both_keys(self):
        """A success forgets the failures of its account and its address."""
        for _ in range(3):
            check = Check(self.throttle)
            self.clock.advance(10)
            check.attempt.failed()
        self.clock.advance(10)
        check = Check(self.throttle)
        self.assertTrue(check.started)
        check.attempt.succeeded()
        self.assertEqual(self.throttle.delay(USER, IP), 0)
        self.assertIsNone(Check(self.throttle).attempt.wait)

    def test_idle_keys_expire(self):
        """forget_after seconds after the latest failure a key is free again and forgotten."""
        for _ in range(6):
            check = Check(self.throttle)
            self.clock.advance(30)
            check.attempt.failed()
        self.clock.advance(300)
        self.assertEqual(len(self.throttle), 0)
        self.assertIsNone(Check(self.throttle).attempt.wait)

    def test_waiting_attempts_are_bounded(self):
        """An account queues at most max_waiting attempts; gone ones make room first."""
        throttle = FailureThrottle(self.clock, max_waiting=3)
        Check(throttle)
        gone = [False]
        for i in range(3):
            Check(throttle, address=("ip", str(i)), alive=lambda: not gone[0])
        self.assertRaises(ThrottleFull, Check, throttle, address=OWNER)
        gone[0] = True
        Check(throttle, address=OWNER)
        self.assertEqual(throttle.queued(), 2)

    def test_table_stays_bounded(self):
        """Failed attempts from very many addresses never hold more than max_keys keys."""
        throttle = FailureThrottle(self.clock, max_keys=10)
        for i in range(500):
            check = Check(throttle, account=("user", "example.org", str(i)),
                          address=("ip", str(i)))
            check.attempt.failed()
            self.assertLessEqual(len(throttle), 10)
        self.assertEqual(throttle.queued(), 0)


class AddressKeyTests(SynchronousTestCase):
    """address_key: the throttle key of a client address."""

    def test_ipv4_is_itself(self):
        """An IPv4 address is its own key; a different address is another key."""
        self.assertEqual(address_key("192.0.2.1"), ("address", "192.0.2.1"))
        self.assertNotEqual(address_key("192.0.2.1"), address_key("192.0.2.2"))

    def test_ipv6_by_64(self):
        """IPv6 addresses in one /64 share a key; another /64 is another key."""
        self.assertEqual(address_key("2001:db8::1"), address_key("2001:db8::ffff:abcd:1"))
        self.assertEqual(address_key("2001:db8::1"), ("address", "2001:db8::/64"))
        self.assertNotEqual(address_key("2001:db8::1"), address_key("2001:db8:0:1::1"))

    def test_mapped_ipv4(self):
        """An IPv4-mapped IPv6 address is keyed as the IPv4 address."""
        self.assertEqual(address_key("::ffff:192.0.2.1"), address_key("192.0.2.1"))

    def test_other_is_as_given(self):
        """Anything that is no IP address (a UNIX socket, '?') is keyed as given."""
        self.assertEqual(address_key("?"), ("address", "?"))


def plain_auth(user, password):
    """A PLAIN <auth/> element for C{user} and C{password}."""
    message = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{message}</auth>".encode()


class StreamTests(SynchronousTestCase):
    """The c2s SASL step asks the throttle before the mechanism checks a password."""

    def setUp(self):
        self.world = World()
        self.clock = self.world.clock
        auth = self.world.host.auth
        self.checks = []
        check_password = auth.check_password

        def counting(host, username, password):
            self.checks.append(username)
            return check_password(host, username, password)

        auth.check_password = counting

    def test_dropped_guess_is_not_checked_but_counted(self):
        """A guess whose connection drops while it waits for its turn is never checked, but
        counts: the account's delay grows all the same."""
        first = self.world.secure()
        first.feed(plain_auth("alice", "wrong"))
        self.assertIn(b"<not-authorized/>", first.take())
        second = self.world.secure()
        second.feed(plain_auth("alice", "wrong again"))
        second.drop()
        self.clock.advance(60)
        self.assertEqual(self.checks, ["alice"])
        self.assertEqual(self.world.listener.throttle.delay(("account", "example.org", "alice")),
                         2)

    def test_dropped_guess_leaves_the_queue_at_once(self):
        """A guess whose connection drops while it waits for its turn leaves the account's
        queue at once, counted; the next attempt is checked after the delay of two failures."""
        throttle = self.world.listener.throttle
        account = ("account", "example.org", "alice")
        first = self.world.secure()
        first.feed(plain_auth("alice", "wrong"))
        self.assertIn(b"<not-authorized/>", first.take())
        second = self.world.secure()
        second.feed(plain_auth("alice", "wrong again"))
        self.assertEqual(throttle.queued(), 1)
        second.drop()
        self.assertEqual(throttle.queued(), 0)
        self.assertEqual(throttle.delay(account), 2)
        self.assertEqual(self.checks, ["alice"])
        third = self.world.secure()
        third.feed(plain_auth("alice", PASSWORD))
        self.clock.advance(1.9)
        self.assertEqual(self.checks, ["alice"])
        self.clock.advance(0.1)
        self.assertEqual(self.checks, ["alice", "alice"])
        self.assertIn(b"<success", third.take())

    def test_plain_check_waits_for_its_turn(self):
        """After a wrong password the next PLAIN check on the account runs after the delay,
        and the right password then succeeds."""
        first = self.world.secure()
        first.feed(plain_auth("alice", "wrong"))
        second = self.world.secure()
        second.feed(plain_auth("alice", PASSWORD))
        self.assertEqual((self.checks, second.take()), (["alice"], b""))
        self.clock.advance(1)
        self.assertEqual(self.checks, ["alice", "alice"])
        self.assertIn(b"<success", second.take())

    def test_scram_proof_waits_for_its_turn(self):
        """After a wrong password the next SCRAM proof on the account is checked after the
        delay (the server-first message is not held), and the right one then succeeds."""
        first = self.world.secure()
        first.feed(plain_auth("alice", "wrong"))
        second = self.world.secure()
        client = Client("sha256", "alice", PASSWORD)
        second.feed(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                    f"{b64(client.first())}</auth>".encode())
        server_first = unb64(text_of(second.take(), "challenge"))
        second.feed(f"<response xmlns='{NS_SASL}'>"
                    f"{b64(client.final(server_first))}</response>".encode())
        self.assertEqual(second.take(), b"")
        self.clock.advance(1)
        client.verify(unb64(text_of(second.take(), "success")))

    def test_clean_login_needs_no_timer(self):
        """A login on an account and address without failures sets no timer and leaves
        nothing in the throttle."""
        before = len(self.clock.getDelayedCalls())
        self.world.scram(self.world.secure())
        self.assertEqual(len(self.clock.getDelayedCalls()), before + 1)   # negotiation timeout
        self.assertEqual((len(self.world.listener.throttle),
                          self.world.listener.throttle.queued()), (0, 0))
