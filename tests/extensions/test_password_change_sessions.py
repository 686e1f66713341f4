"""A password change ends the account's other sessions (IHost.password_changed)."""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.extensions.register import register
from jabberapp.jid import JID
from jabberapp.testing import FakeHost, FakeSession
from tests.extensions.test_register import PASSWORD, condition, registration


class PasswordChangeEndsSessionsTests(SynchronousTestCase):
    """XEP-0077 §3.3 password change and the host's password_changed()."""

    def setUp(self):
        self.host = FakeHost("example.org", clock=Clock())
        self.host.add_account("alice", PASSWORD)
        self.host.add_account("bob", PASSWORD)
        self.host.install(register)
        self.requester = FakeSession(self.host, "alice@example.org/r")
        self.other = FakeSession(self.host, "alice@example.org/other")
        self.bob = FakeSession(self.host, "bob@example.org/r")

    def test_change_closes_the_other_sessions_with_reset(self):
        """The session that changed the password stays; alice's others end with <reset/>
        and a text saying why; bob's is untouched."""
        self.host.receive(
            f"<iq type='set' id='q' from='alice@example.org/r' to='example.org'>"
            f"{registration('alice', 'new pass')}</iq>")
        answers = [s for s in self.requester.sent if s.tag == "{jabber:client}iq"]
        self.assertEqual([(a.get("type"), condition(a)) for a in answers], [("result", None)])
        self.assertFalse(self.requester.closed)
        self.assertTrue(self.other.closed)
        self.assertEqual(self.other.closed_with.condition, "reset")
        self.assertEqual(self.other.closed_with.text, "Password changed")
        self.assertFalse(self.bob.closed)

    def test_refused_change_closes_nothing(self):
        """A refused change (another user's name) ends no session."""
        self.host.receive(f"<iq type='set' id='q' from='alice@example.org/r' "
                          f"to='example.org'>{registration('bob', 'x')}</iq>")
        self.assertFalse(self.other.closed)

    def test_password_changed_without_keep_closes_all(self):
        """password_changed() with no session to keep (an administrator's change) ends
        every session of the account."""
        self.host.password_changed(JID.parse("alice@example.org"))
        self.assertTrue(self.requester.closed and self.other.closed)
        self.assertFalse(self.bob.closed)
