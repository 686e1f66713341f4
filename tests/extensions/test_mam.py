"""XEP-0313 archiving through a FakeHost: what is archived, for whom, with which stanza-id."""
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.extensions.mam.plugin import mam
from jabberapp.extensions.mam.ns import NS_MAM, NS_SID
from jabberapp.extensions.offline import offline_messages
from jabberapp.extensions.roster.extension import roster
from jabberapp.interfaces import IExtension
from jabberapp.storage.messages import ArchiveQuery
from jabberapp.testing import FakeHost, FakeSession
from jabberapp.xml import parse_element

STANZA_ID = f"{{{NS_SID}}}stanza-id"
NOW = 1_700_000_000.0


class MamTestCase(SynchronousTestCase):
    """A host with mam (and offline storage), accounts alice and bob, sessions for both."""

    options = {}
    extra = ()

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.host = FakeHost("example.org", clock=self.clock)
        for user in ("alice", "bob"):
            self.host.add_account(user)
        for extension in self.extra:
            self.host.install(extension)
        self.host.install(offline_messages)
        self.host.install(mam, **self.options)
        self.alice = FakeSession(self.host, "alice@example.org/phone")
        self.bob = FakeSession(self.host, "bob@example.org/laptop")
        self.store = self.host.storage.message_archive()

    def send(self, xml):
        """A stanza from a client, then the archive writes of this reactor turn."""
        stanza = self.host.receive(xml)
        self.clock.advance(0)
        return stanza

    def chat(self, body="hi", sender="alice@example.org/phone", to="bob@example.org",
             extra="", type="chat"):
        body_xml = f"<body>{body}</body>" if body is not None else ""
        return self.send(f"<message from='{sender}' to='{to}' type='{type}' id='m1'>"
                         f"{body_xml}{extra}</message>")

    def archived(self, username, **kwargs):
        """The account's archived stanzas, parsed."""
        page = self.successResultOf(self.store.query("example.org", username,
                                                     ArchiveQuery(limit=1000, **kwargs)))
        return [parse_element(m.stanza) for m in page.messages]

    def archived_ids(self, username):
        page = self.successResultOf(self.store.query("example.org", username,
                                                     ArchiveQuery(limit=1000)))
        return [m.id for m in page.messages]


class ArchivingTests(MamTestCase):
    def test_interface(self):
        """The plugin object provides IExtension."""
        verifyObject(IExtension, mam)

    def test_both_parties(self):
        """A chat message is archived for the sender and the recipient."""
        self.chat("hello")
        self.assertEqual([m.findtext("{jabber:client}body") for m in self.archived("alice")],
                         ["hello"])
        self.assertEqual([m.findtext("{jabber:client}body") for m in self.archived("bob")],
                         ["hello"])

    def test_stanza_id_on_delivered_copy(self):
        """The recipient's copy carries <stanza-id by='bob@example.org'/> of bob's archive."""
        self.chat()
        delivered = self.bob.sent[-1]
        stamps = delivered.findall(STANZA_ID)
        self.assertEqual([s.get("by") for s in stamps], ["bob@example.org"])
        self.assertEqual([stamps[0].get("id")], self.archived_ids("bob"))

    def test_sender_archive_not_stamped_on_wire(self):
        """The sender's archive id is not put on the message the recipient gets."""
        self.chat()
        delivered = self.bob.sent[-1]
        self.assertNotIn("alice@example.org",
                         [s.get("by") for s in delivered.findall(STANZA_ID)])
        self.assertEqual(len(self.archived_ids("alice")), 1)

    def test_spoofed_stanza_id_removed(self):
        """A stanza-id by the recipient's archive that we did not issue is removed."""
        self.chat(extra=f"<stanza-id xmlns='{NS_SID}' by='bob@example.org' id='fake'/>"
                        f"<stanza-id xmlns='{NS_SID}' by='room@muc.example.net' id='keep'/>")
        stamps = {s.get("by"): s.get("id") for s in self.bob.sent[-1].findall(STANZA_ID)}
        self.assertEqual(stamps["room@muc.example.net"], "keep")
        self.assertNotEqual(stamps["bob@example.org"], "fake")
        self.assertEqual(stamps["bob@example.org"], self.archived_ids("bob")[0])

    def test_spoof_without_body_removed(self):
        """A spoofed stanza-id is removed even from a message that is not archived."""
        self.chat(body=None, extra=f"<stanza-id xmlns='{NS_SID}' by='bob@example.org' "
                                   f"id='fake'/><active xmlns='http://jabber.org/protocol/"
                                   f"chatstates'/>")
        self.assertEqual(self.bob.sent[-1].findall(STANZA_ID), [])

    def test_not_archived(self):
        """Chat states alone, errors, groupchat, headline and no-store hints are not kept."""
        chatstate = "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
        self.chat(body=None, extra=chatstate)
        self.chat(extra="<no-store xmlns='urn:xmpp:hints'/>")
        self.chat(extra="<no-permanent-store xmlns='urn:xmpp:hints'/>")
        self.chat(type="headline")
        self.chat(type="error")
        self.chat(type="groupchat", to="bob@example.org/laptop")
        self.chat(body=None, extra="<received xmlns='urn:xmpp:receipts' id='x'/>")
        self.assertEqual(self.archived("alice"), [])
        self.assertEqual(self.archived("bob"), [])

    def test_kept_without_body(self):
        """A store hint, an encrypted payload or a chat marker keeps a message."""
        self.chat(body=None, extra="<store xmlns='urn:xmpp:hints'/>")
        self.chat(body=None, extra="<encrypted xmlns='eu.siacs.conversations.axolotl'/>")
        self.chat(body=None, extra="<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/>")
        self.assertEqual(len(self.archived("bob")), 3)
        self.assertEqual(len(self.archived("alice")), 3)

    def test_normal_without_type(self):
        """A message with no type (normal) and a body is archived."""
        self.send("<message from='alice@example.org/phone' to='bob@example.org'>"
                  "<body>x</body></message>")
        self.assertEqual(len(self.archived("bob")), 1)

    def test_from_remote(self):
        """A message from another server is archived for the local recipient only."""
        self.send("<message from='carol@example.net/x' to='bob@example.org' type='chat'>"
                  "<body>from afar</body></message>")
        bob = self.archived("bob")
        self.assertEqual(len(bob), 1)
        self.assertEqual(self.archived("bob", with_jid="carol@example.net",
                                       with_resource="x")[0].findtext(
            "{jabber:client}body"), "from afar")

    def test_to_remote(self):
        """A message to another server is archived for the sender, 'with' the recipient."""
        self.chat(to="carol@example.net")
        self.assertEqual(len(self.archived("alice", with_jid="carol@example.net")), 1)
        self.assertEqual(self.host.remote.received[-1].findall(STANZA_ID), [])

    def test_to_own_account_once(self):
        """A message to another resource of one's own account is archived once."""
        FakeSession(self.host, "alice@example.org/laptop")
        self.chat(to="alice@example.org/laptop")
        self.assertEqual(len(self.archived("alice")), 1)

    def test_full_jid_that_bounces(self):
        """A normal message to a resource that is not there bounces and is not archived."""
        self.chat(type="normal", to="bob@example.org/gone")
        self.assertEqual(self.archived("bob"), [])

    def test_unknown_account(self):
        """A message to an account that does not exist is not archived for it."""
        self.chat(to="nobody@example.org")
        self.assertEqual(self.archived("nobody"), [])

    def test_blocked_not_archived(self):
        """A message a filter rejects (HANDLED before delivery) is not in the archive."""
        from jabberapp import dispatch
        self.host.hook(dispatch.MESSAGE_BARE, lambda m, o=None: dispatch.HANDLED,
                       priority=1000)
        self.chat()
        self.assertEqual(self.archived("bob"), [])

    def test_batched(self):
        """Messages arriving in one reactor turn are written in one batch."""
        writer_batches = []
        store = self.store
        real = store.append

        def counting(messages, keep=None):
            writer_batches.append(len(messages))
            return real(messages, keep)

        store.append = counting
        for n in range(5):
            self.host.receive(f"<message from='alice@example.org/phone' to='bob@example.org'"
                              f" type='chat'><body>{n}</body></message>")
        self.assertEqual(writer_batches, [])
        self.clock.advance(0)
        self.assertEqual(writer_batches, [10])
        self.assertEqual(len(self.archived("bob")), 5)


class OfflineInterplayTests(MamTestCase):
    def setUp(self):
        super().setUp()
        self.bob.close()

    def test_offline_message_archived_once(self):
        """A message stored offline is archived once, and delivered later with its id."""
        self.chat("while away")
        self.assertEqual(len(self.archived("bob")), 1)
        archived_id = self.archived_ids("bob")[0]
        laptop = FakeSession(self.host, "bob@example.org/laptop", available=False)
        self.send("<presence from='bob@example.org/laptop'/>")
        delivered = [m for m in laptop.sent if m.findtext("{jabber:client}body")]
        self.assertEqual(len(delivered), 1)
        self.assertEqual([s.get("id") for s in delivered[0].findall(STANZA_ID)],
                         [archived_id])
        self.clock.advance(0)
        self.assertEqual(self.archived_ids("bob"), [archived_id])

    def test_rerouted_not_archived_again(self):
        """A stamped message routed again (a stream-management re-route) is not re-archived."""
        phone = FakeSession(self.host, "bob@example.org/phone")
        self.chat("once")
        again = phone.sent[-1]
        again.set("to", "bob@example.org")
        self.host.send(again)
        self.clock.advance(0)
        self.assertEqual(len(self.archived("bob")), 1)

    def test_copied_id_from_other_sender_is_spoof(self):
        """An issued id copied onto another sender's message does not pass."""
        phone = FakeSession(self.host, "bob@example.org/phone")
        self.chat("once")
        issued = phone.sent[-1].find(STANZA_ID).get("id")
        self.send(f"<message from='mallory@example.net/x' to='bob@example.org' type='chat' "
                  f"id='m1'><body>fake</body><stanza-id xmlns='{NS_SID}' "
                  f"by='bob@example.org' id='{issued}'/></message>")
        self.assertNotEqual(phone.sent[-1].find(STANZA_ID).get("id"), issued)
        self.assertEqual(len(self.archived("bob")), 2)


class PrefsArchivingTests(MamTestCase):
    extra = (roster,)

    def set_prefs(self, xml):
        self.send(f"<iq type='set' id='p' from='bob@example.org/laptop'>"
                  f"<prefs xmlns='{NS_MAM}' {xml}</prefs></iq>")
        self.assertEqual(self.host.sent[-1].get("type"), "result")

    def test_never_list(self):
        """A JID on the never list is not archived, and no stanza-id is stamped."""
        self.set_prefs("default='always'><never><jid>alice@example.org</jid></never>")
        self.chat()
        self.assertEqual(self.archived("bob"), [])
        self.assertEqual(self.bob.sent[-1].findall(STANZA_ID), [])
        self.assertEqual(len(self.archived("alice")), 1)

    def test_default_never_with_always(self):
        """default='never' archives only the always list (a full JID matches itself)."""
        self.set_prefs("default='never'><always><jid>carol@example.net/x</jid></always>")
        self.send("<message from='carol@example.net/x' to='bob@example.org' type='chat'>"
                  "<body>1</body></message>")
        self.send("<message from='carol@example.net/y' to='bob@example.org' type='chat'>"
                  "<body>2</body></message>")
        self.chat()
        self.assertEqual([m.findtext("{jabber:client}body") for m in self.archived("bob")],
                         ["1"])

    def test_roster_default(self):
        """default='roster' archives only contacts in the roster."""
        self.set_prefs("default='roster'>")
        self.send("<iq type='set' id='r' from='bob@example.org/laptop'><query "
                  "xmlns='jabber:iq:roster'><item jid='carol@example.net'/></query></iq>")
        self.send("<message from='carol@example.net/x' to='bob@example.org' type='chat'>"
                  "<body>friend</body></message>")
        self.chat("stranger")
        self.assertEqual([m.findtext("{jabber:client}body") for m in self.archived("bob")],
                         ["friend"])

    def test_prefs_survive_restart(self):
        """Preferences are stored: a new install reads them back."""
        self.set_prefs("default='never'>")
        self.host.unload("mam")
        self.host.install(mam)
        self.chat()
        self.assertEqual(self.archived("bob"), [])


class SizeBoundTests(MamTestCase):
    options = {"max_messages": 3}

    def test_oldest_dropped(self):
        """Past max_messages the oldest messages of the archive are deleted."""
        for n in range(5):
            self.chat(str(n))
        self.assertEqual([m.findtext("{jabber:client}body") for m in self.archived("bob")],
                         ["2", "3", "4"])


class RetentionTests(MamTestCase):
    options = {"expire_after": 3600.0}

    def test_expiry_on_timer(self):
        """Messages older than expire_after are deleted by the sweep on the host's clock."""
        self.chat("old")
        self.clock.advance(3000)
        self.chat("new")
        self.clock.advance(700)     # 'old' is 3700 s old: past the next sweep (every 360 s)
        self.assertEqual([m.findtext("{jabber:client}body") for m in self.archived("bob")],
                         ["new"])

    def test_nothing_expires_early(self):
        """A message younger than expire_after stays through sweeps."""
        self.chat("young")
        self.clock.advance(3500)
        self.assertEqual(len(self.archived("bob")), 1)


class DeletionTests(MamTestCase):
    def test_account_deletion_purges(self):
        """Deleting the account deletes its archive (IStorage.delete_user)."""
        self.chat()
        self.successResultOf(self.host.storage.delete_user("example.org", "bob"))
        self.host.user_deleted("bob@example.org")
        self.assertEqual(self.archived("bob"), [])
        self.assertEqual(len(self.archived("alice")), 1)

    def test_service_purge(self):
        """The "mam" service purges one account's archive, pending writes included."""
        self.host.receive("<message from='alice@example.org/phone' to='bob@example.org' "
                          "type='chat'><body>x</body></message>")
        self.successResultOf(self.host.service("mam").purge("bob"))
        self.clock.advance(0)
        self.assertEqual(self.archived("bob"), [])

    def test_unload_flushes(self):
        """Unloading the extension writes what was waiting for the next turn."""
        self.host.receive("<message from='alice@example.org/phone' to='bob@example.org' "
                          "type='chat'><body>x</body></message>")
        self.host.unload("mam")
        self.assertEqual(len(self.archived("bob")), 1)


class StartupFailureTests(SynchronousTestCase):
    def test_closed_storage_logged_in_one_line(self):
        """Installed on a storage that is closed (the server failed to start), the
        extension logs one warning per load, no traceback."""
        from twisted.logger import globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        host = FakeHost("example.org", clock=Clock())
        host.install(mam, expire_after=60.0)
        self.successResultOf(host.storage.close())
        host2 = FakeHost("example.org", clock=Clock(), storage=host.storage)
        host2.install(mam, expire_after=60.0)
        mine = [e for e in events if "mam" in e.get("log_namespace", "")]
        self.assertTrue(mine)
        self.assertFalse([e for e in mine if e.get("log_failure") is not None])


class WriterTests(SynchronousTestCase):
    def test_group_commit_and_bound(self):
        """While a batch is written, new messages wait and form the next batch; past
        max_pending they are not queued."""
        from twisted.internet import defer
        from jabberapp.extensions.mam.writer import BatchWriter

        class Store:
            def __init__(self):
                self.calls = []

            def append(self, messages, keep=None):
                d = defer.Deferred()
                self.calls.append((list(messages), d))
                return d

        class Log:
            def __init__(self):
                self.errors = 0

            def error(self, *args, **kwargs):
                self.errors += 1

        clock, store, log = Clock(), Store(), Log()
        writer = BatchWriter(store, clock, log, max_pending=3)
        writer.add(1)
        clock.advance(0)
        self.assertEqual([batch for batch, _ in store.calls], [[1]])
        for n in (2, 3, 4, 5):
            writer.add(n)
        clock.advance(0)
        self.assertEqual(len(store.calls), 1)       # waits for the batch in flight
        self.assertEqual((writer.dropped, log.errors), (1, 1))
        store.calls[0][1].callback(1)
        self.assertEqual([batch for batch, _ in store.calls], [[1], [2, 3, 4]])
