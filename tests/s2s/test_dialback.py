"""XEP-0185 dialback keys and the XEP-0220 elements."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.s2s import dialback
from jabberapp.xml import serialize
from jabberapp.xml.ns import NS_SERVER


class DialbackKeyTests(SynchronousTestCase):
    def test_xep_0185_example(self):
        """The key of XEP-0185 §3's worked example is reproduced exactly."""
        self.assertEqual(
            dialback.dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org",
                                  "D60000229F"),
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643")

    def test_every_input_matters(self):
        """Changing the secret, either domain or the stream id changes the key."""
        base = ("secret", "receiving.example", "originating.example", "id1")
        key = dialback.dialback_key(*base)
        for index, other in enumerate(("other", "x.example", "y.example", "id2")):
            changed = list(base)
            changed[index] = other
            self.assertNotEqual(dialback.dialback_key(*changed), key)

    def test_domains_are_not_interchangeable(self):
        """Swapping the receiving and originating domains gives another key."""
        self.assertNotEqual(dialback.dialback_key("s", "a.example", "b.example", "i"),
                            dialback.dialback_key("s", "b.example", "a.example", "i"))

    def test_new_secrets_differ(self):
        """Each process gets its own random secret of 256 bits."""
        first, second = dialback.new_secret(), dialback.new_secret()
        self.assertNotEqual(first, second)
        self.assertEqual(len(first), 64)

    def test_key_matches(self):
        """Comparison ignores surrounding whitespace and rejects anything else."""
        key = dialback.dialback_key("s", "a", "b", "c")
        self.assertTrue(dialback.key_matches(key, f"\n  {key}\n"))
        self.assertFalse(dialback.key_matches(key, key[:-1] + "0"))
        self.assertFalse(dialback.key_matches(key, None))
        self.assertFalse(dialback.key_matches(key, "ünïcode"))


class DialbackElementTests(SynchronousTestCase):
    def test_result_request(self):
        """A key request is <db:result from to>key</db:result> with the db prefix."""
        out = serialize(dialback.result("a.example", "b.example", key="k"), NS_SERVER)
        self.assertEqual(out, b'<db:result xmlns:db="jabber:server:dialback" '
                              b'from="a.example" to="b.example">k</db:result>')

    def test_error_verdict(self):
        """An error verdict carries the condition in jabber:server, readable back."""
        el = dialback.result("b.example", "a.example", type_="error",
                             condition="remote-server-not-found")
        out = serialize(el, NS_SERVER)
        self.assertIn(b'<error xmlns="jabber:server" type="cancel">', out)
        self.assertEqual(dialback.error_condition(el), "remote-server-not-found")

    def test_verify(self):
        """A verify request carries the stream id; its answer has a type."""
        el = dialback.verify("b.example", "a.example", "sid", type_="valid")
        self.assertEqual((el.get("id"), el.get("type"), el.text), ("sid", "valid", None))
