"""
Tests for XEP-0227 import and export (jabberapp.admin.migrate, jabberappctl import/export).

The Prosody samples are real: Prosody 0.12.3 (Debian) wrote them with prosody-migrator from
its internal storage to mod_storage_xep0227 (one file per user, on one line), for accounts
registered with prosodyctl (passwords below). The other samples follow the XEP's examples
and what ejabberd's ejabberd_piefxis writes (a main file including a file per host).

``write_export()`` generates large files for the by-hand measurement of the issue's target
(10,000 accounts with 100-contact rosters); the tests here use small ones and time nothing:

    python -c "from tests.test_xep0227 import write_export; \\
               write_export('/tmp/big.xml', 'localhost', 10000, 100, passwords=True)"
    time jabberappctl --config FILE import /tmp/big.xml
"""
import base64
import io
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
from concurrent.futures import Executor, Future

from lxml import etree
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.admin.migrate import exporter, importer
from jabberapp.admin.migrate import reader as reader_module
from jabberapp.admin.migrate import user as user_module
from jabberapp.admin.migrate.pie import MigrationError, parse_stamp
from jabberapp.admin.migrate.reader import Limits
from jabberapp.auth import InternalAuthProvider
from jabberapp.extensions.offline import offline_messages
from jabberapp.extensions.private import private_storage
from jabberapp.extensions.roster.extension import roster
from jabberapp.extensions.roster.items import Roster, RosterItem
from jabberapp.extensions.vcard import vcard_temp
from jabberapp.extensions.disco import service_discovery
from jabberapp.jid import JID
from jabberapp.sasl.scram import HASHES, derive
from jabberapp.storage.memory import MemoryStorage
from jabberapp.testing import FakeHost, FakeSession

from tests.test_admin_cli import CtlTestCase

HOST = "capulet.lit"
NOW = 1_700_000_000.5
ITERATIONS = 4096

# -- samples ------------------------------------------------------------------------------------

# Prosody 0.12.3, prosody-migrator to xep0227; prosodyctl register juliet capulet.lit 'R0meo!'
# and romeo 'J/liet' (internal_hashed: SCRAM-SHA-1, 10000 iterations, a UUID as salt).
PROSODY_JULIET = (
    "<server-data xmlns='urn:xmpp:pie:0'><host jid='capulet.lit'><user name='juliet'>"
    "<scram-credentials mechanism='SCRAM-SHA-1' xmlns='urn:xmpp:pie:0#scram'><server-key>"
    "yRrYQ3wrVu/q9CeF0aHkvexpBOM=</server-key><stored-key>G/TStNdWo+tie9MyN8I4sOhH2iw="
    "</stored-key><iter-count>10000</iter-count><salt>MzVlMTE5NTktNDVlOS00ZTVhLTliMGQtZTVj"
    "OGMyYmI5ZDBh</salt></scram-credentials><query version='3' xmlns='jabber:iq:roster'>"
    "<item subscription='both' name='Romeo' jid='romeo@montague.lit'><group>Lovers</group>"
    "<group>Friends</group></item><item subscription='from' name='Cousin &amp; &lt;Tybalt"
    "&gt;' jid='tybalt@capulet.lit'/><item subscription='none' jid='nurse@capulet.lit' "
    "ask='subscribe'/></query><presence type='subscribe' from='mercutio@montague.lit'/>"
    "<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><NICKNAME>Jules</NICKNAME></vCard>"
    "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference "
    "autojoin='true' name='The Balcony' jid='balcony@rooms.capulet.lit'><nick>juliet</nick>"
    "</conference></storage><exodus xmlns='exodus:prefs'><defaultnick>Jules</defaultnick>"
    "</exodus></query></user></host></server-data>")
PROSODY_ROMEO = (
    "<server-data xmlns='urn:xmpp:pie:0'><host jid='capulet.lit'><user name='romeo'>"
    "<scram-credentials mechanism='SCRAM-SHA-1' xmlns='urn:xmpp:pie:0#scram'><server-key>"
    "QP+0Zp7sEIFXFi1qKNJLySyCs4w=</server-key><stored-key>vi/rtSJvSNwIt8PgbrGQcVqfV3s="
    "</stored-key><iter-count>10000</iter-count><salt>MDAwYjAwMzMtODVlMC00MzgyLTk2MGEtOWY1"
    "M2Y2NjVmMmY5</salt></scram-credentials></user></host></server-data>")
JULIET_PASSWORD = "R0meo!"
ROMEO_PASSWORD = "J/liet"

# ejabberd's layout (XEP-0227 §4): a main file including a file per host, which may include
# a file per user; plaintext passwords, as ejabberd exports them with plain storage.
MAIN_FILE = """\
<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>
  <xi:include href='capulet.lit.xml'/>
</server-data>
"""
HOST_FILE = """\
<?xml version='1.0' encoding='UTF-8'?>
<host xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude' jid='Capulet.lit'>
  <user name='Juliet' password='s3crEt p&#xE4;ss'>
    <query xmlns='jabber:iq:roster'>
      <item jid='romeo@montague.lit' name='Romeo' subscription='both'>
        <group>Friends</group>
      </item>
      <item jid='nurse@capulet.lit' subscription='to' approved='true'/>
    </query>
    <presence xmlns='jabber:client' type='subscribe' id='xk3h1v69'
              from='mercutio@montague.lit' to='juliet@capulet.lit'>
      <nick xmlns='http://jabber.org/protocol/nick'>Mercutio</nick>
    </presence>
    <vCard xmlns='vcard-temp'>
      <FN>Juliet Capulet</FN>
    </vCard>
    <query xmlns='jabber:iq:private'>
      <exodus xmlns='exodus:prefs'><defaultnick>Juliet</defaultnick></exodus>
    </query>
    <offline-messages>
      <message xmlns='jabber:client' from='romeo@montague.lit/orchard'
               to='juliet@capulet.lit/balcony' type='chat'>
        <body>Neither, fair saint, if either thee dislike.</body>
        <delay xmlns='urn:xmpp:delay' from='capulet.lit'
               stamp='1469-07-21T00:32:29Z'>Offline Storage</delay>
      </message>
      <message xmlns='jabber:client' from='nurse@capulet.lit/kitchen' type='normal'>
        <body>Madam!</body>
      </message>
      <message xmlns='jabber:client' from='tybalt@capulet.lit' type='headline'>
        <body>News</body>
      </message>
    </offline-messages>
    <query xmlns='jabber:iq:privacy'>
      <list name='public'><item action='allow' order='1'/></list>
    </query>
  </user>
  <xi:include href='capulet.lit/nurse.xml'/>
</host>
"""
NURSE_FILE = """\
<?xml version='1.0' encoding='UTF-8'?>
<user xmlns='urn:xmpp:pie:0' name='nurse' password='nurse-pass'/>
"""
JULIET_PLAIN_PASSWORD = "s3crEt päss"

TYBALT_PASSWORD = "wherefore art thou"


def scram_user(name, password, hashes=("sha256", "sha512"), iterations=ITERATIONS):
    """A <user/> with SCRAM credentials of C{password}, as XEP-0227 §2.3 shows them."""
    parts = [f"<user name='{name}'>"]
    for hash_name in hashes:
        credentials = derive(password, hash_name, salt=f"salt-{hash_name}".encode(),
                             iterations=iterations)
        mechanism = {"sha1": "SCRAM-SHA-1", "sha256": "SCRAM-SHA-256",
                     "sha512": "SCRAM-SHA-512"}[hash_name]
        parts.append(
            f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mechanism}'>"
            f"<iter-count>{credentials.iterations}</iter-count>"
            f"<salt>{base64.b64encode(credentials.salt).decode()}</salt>"
            f"<server-key>{base64.b64encode(credentials.server_key).decode()}</server-key>"
            f"<stored-key>{base64.b64encode(credentials.stored_key).decode()}</stored-key>"
            f"</scram-credentials>")
    parts.append("</user>")
    return "".join(parts)


def document(*users, host=HOST):
    """A one-host file holding C{users} (XML text), one a line."""
    body = "\n".join(users)
    return (f"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n"
            f"<host jid='{host}'>\n{body}\n</host>\n</server-data>\n")


def write_export(path, host, users, contacts, passwords=False, offline=0, start=0):
    """
    Write a XEP-0227 file of C{users} accounts on C{host}, one <user/> a line, each with a
    roster of C{contacts} (other users of the file, then remote JIDs), a vCard and
    C{offline} offline messages: plaintext passwords if C{passwords}, else SCRAM-SHA-1
    and SCRAM-SHA-256 material (the same for every account: generating stays cheap).
    """
    material = {name: derive("password", name, salt=b"generated-salt", iterations=ITERATIONS)
                for name in ("sha1", "sha256")}
    scram = "".join(
        f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mechanism}'>"
        f"<iter-count>{c.iterations}</iter-count>"
        f"<salt>{base64.b64encode(c.salt).decode()}</salt>"
        f"<server-key>{base64.b64encode(c.server_key).decode()}</server-key>"
        f"<stored-key>{base64.b64encode(c.stored_key).decode()}</stored-key>"
        "</scram-credentials>"
        for mechanism, c in (("SCRAM-SHA-1", material["sha1"]),
                             ("SCRAM-SHA-256", material["sha256"])))
    subscriptions = ("both", "to", "from", "none")
    with open(path, "w", encoding="utf-8") as f:
        f.write("<?xml version='1.0' encoding='UTF-8'?>\n"
                f"<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='{host}'>\n")
        for n in range(start, start + users):
            password = f" password='password-{n}'" if passwords else ""
            items = []
            for i in range(contacts):
                other = (n + 1 + i) % (start + users)
                jid = (f"user{other}@{host}" if other != n and i < contacts // 2
                       else f"friend{n}-{i}@remote.example")
                items.append(f"<item jid='{jid}' name='Contact {i}' subscription="
                             f"'{subscriptions[i % 4]}'><group>Group {i % 5}</group></item>")
            messages = "".join(
                f"<message xmlns='jabber:client' from='friend{n}-0@remote.example/r' "
                f"type='chat'><body>message {m}</body><delay xmlns='urn:xmpp:delay' "
                f"from='{host}' stamp='2024-01-0{1 + m % 9}T10:00:00.000Z'/></message>"
                for m in range(offline))
            f.write(f"<user name='user{n}'{password}>{'' if passwords else scram}"
                    f"<query xmlns='jabber:iq:roster'>{''.join(items)}</query>"
                    f"<vCard xmlns='vcard-temp'><FN>User {n}</FN></vCard>"
                    + (f"<offline-messages>{messages}</offline-messages>" if offline else "")
                    + "</user>\n")
        f.write("</host>\n</server-data>\n")


class InlineExecutor(Executor):
    """Runs each submitted call at once: the tests fork no processes."""

    def submit(self, fn, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def run_sync(fn, *args):
    """A run_in_thread for InternalAuthProvider that runs at once."""
    return defer.maybeDeferred(fn, *args)


# -- in-process tests ---------------------------------------------------------------------------


class MigrationTestCase(SynchronousTestCase):
    """Temporary files, and the two import passes run in this process on memory storage."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="xep0227-")
        self.addCleanup(shutil.rmtree, self.dir)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def prepare(self, *paths, hosts=(HOST,), limits=Limits(), **kwargs):
        return importer.prepare(paths, hosts, limits, ITERATIONS, now=NOW,
                                executor=InlineExecutor(), **kwargs)

    def import_into(self, storage, *paths, **kwargs):
        """Import C{paths} into C{storage}; the plan and the report."""
        plan = self.prepare(*paths, **kwargs)
        report = self.successResultOf(defer.ensureDeferred(importer.run(plan, storage)))
        return plan, report

    def refused(self, text, name="bad.xml", **kwargs):
        """The MigrationError of importing C{text} (nothing may be written)."""
        path = self.write(name, text)
        storage = MemoryStorage()
        try:
            self.import_into(storage, path, **kwargs)
        except MigrationError as exc:
            self.assertEqual(storage.accounts._accounts, {})
            return exc
        self.fail("the file was accepted")

    def value(self, d):
        return self.successResultOf(d)

    def check_password(self, storage, host, username, password):
        auth = InternalAuthProvider(storage.accounts, run_sync)
        return self.value(auth.check_password(host, username, password))

    def roster_of(self, storage, username, host=HOST):
        return Roster.from_json(self.value(storage.keyvalue("roster").get(host, username,
                                                                          "roster")))


class ProsodyImportTests(MigrationTestCase):
    """Files written by Prosody 0.12 (prosody-migrator, mod_storage_xep0227)."""

    def setUp(self):
        super().setUp()
        self.storage = MemoryStorage()
        self.plan, self.report = self.import_into(
            self.storage, self.write("juliet@capulet.lit.xml", PROSODY_JULIET),
            self.write("romeo@capulet.lit.xml", PROSODY_ROMEO))

    def test_login(self):
        """The SCRAM-SHA-1 material Prosody exported opens the accounts, with their
        passwords only; no other hash can be made up without the password."""
        self.assertTrue(self.check_password(self.storage, HOST, "juliet", JULIET_PASSWORD))
        self.assertTrue(self.check_password(self.storage, HOST, "romeo", ROMEO_PASSWORD))
        self.assertFalse(self.check_password(self.storage, HOST, "juliet", ROMEO_PASSWORD))
        credentials = self.value(self.storage.accounts.get_credentials(HOST, "juliet", "sha1"))
        self.assertEqual((credentials.iterations, credentials.salt),
                         (10000, b"35e11959-45e9-4e5a-9b0d-e5c8c2bb9d0a"))
        self.assertIsNone(self.value(self.storage.accounts.get_credentials(HOST, "juliet",
                                                                           "sha256")))

    def test_roster(self):
        """Items keep name, groups, subscription and ask; Prosody's namespace-less pending
        request becomes a jabber:client presence kept for delivery."""
        roster_ = self.roster_of(self.storage, "juliet")
        self.assertEqual(list(roster_.items.values()), [
            RosterItem(JID.parse("romeo@montague.lit"), "Romeo", ("Lovers", "Friends"),
                       "both"),
            RosterItem(JID.parse("tybalt@capulet.lit"), "Cousin & <Tybalt>", (), "from"),
            RosterItem(JID.parse("nurse@capulet.lit"), None, (), "none", ask=True)])
        self.assertEqual(roster_.pending, {JID.parse("mercutio@montague.lit"): (
            '<presence xmlns="jabber:client" type="subscribe" from="mercutio@montague.lit" '
            'to="juliet@capulet.lit"/>')})
        self.assertEqual(roster_.version, 1)
        self.assertIsNotNone(roster_.epoch)
        self.assertEqual(self.roster_of(self.storage, "romeo").items, {})

    def test_vcard_and_private(self):
        """The vCard and each private XML element are stored as the extensions store them."""
        self.assertEqual(self.value(self.storage.keyvalue("vcard").get(HOST, "juliet",
                                                                       "vcard")),
                         '<vCard xmlns="vcard-temp"><FN>Juliet Capulet</FN>'
                         '<NICKNAME>Jules</NICKNAME></vCard>')
        private = self.value(self.storage.keyvalue("private").get(HOST, "juliet", "private"))
        self.assertEqual(sorted(private), ["{exodus:prefs}exodus", "{storage:bookmarks}storage"])
        self.assertEqual(private["{exodus:prefs}exodus"],
                         '<exodus xmlns="exodus:prefs"><defaultnick>Jules</defaultnick>'
                         '</exodus>')

    def test_report(self):
        """The report counts what was imported and says which logins SCRAM-SHA-1 limits."""
        self.assertEqual(self.report.splitlines(), [
            "imported 2 accounts on capulet.lit: 1 roster (3 contacts, 1 pending "
            "subscription request), 1 vCard, 1 private XML document, 0 offline messages",
            "note: 2 accounts have SCRAM-SHA-1 credentials only: they log in with that "
            "mechanism or PLAIN until the password is set again"])

    def test_existing_accounts(self):
        """Importing the same files again is refused: the accounts exist."""
        path = os.path.join(self.dir, "juliet@capulet.lit.xml")
        plan = self.prepare(path)
        failure = self.failureResultOf(defer.ensureDeferred(importer.run(plan, self.storage)),
                                       MigrationError)
        self.assertEqual(str(failure.value),
                         f"{path}:1: juliet@capulet.lit exists on this server already")


class PlaintextImportTests(MigrationTestCase):
    """ejabberd's layout (XInclude) with plaintext passwords, and the XEP's examples."""

    def setUp(self):
        super().setUp()
        self.storage = MemoryStorage()
        self.write("capulet.lit.xml", HOST_FILE)
        self.write("capulet.lit/nurse.xml", NURSE_FILE)
        self.plan, self.report = self.import_into(self.storage,
                                                  self.write("main.xml", MAIN_FILE))

    def test_passwords(self):
        """A plaintext password becomes SCRAM material for every hash, at the configured
        iteration count, each with its own salt; names and hosts are prepared."""
        self.assertEqual(self.value(self.storage.accounts.list_users(HOST)),
                         ["juliet", "nurse"])
        self.assertTrue(self.check_password(self.storage, HOST, "juliet",
                                            JULIET_PLAIN_PASSWORD))
        self.assertTrue(self.check_password(self.storage, HOST, "nurse", "nurse-pass"))
        self.assertFalse(self.check_password(self.storage, HOST, "nurse", "Nurse-pass"))
        salts = set()
        for hash_name in HASHES:
            credentials = self.value(self.storage.accounts.get_credentials(HOST, "juliet",
                                                                           hash_name))
            self.assertEqual(credentials.iterations, ITERATIONS)
            salts.add(credentials.salt)
        self.assertEqual(len(salts), 3)

    def test_roster_and_request(self):
        """The roster (approved included) and the pending request with its payload."""
        roster_ = self.roster_of(self.storage, "juliet")
        self.assertEqual(roster_.items[JID.parse("nurse@capulet.lit")],
                         RosterItem(JID.parse("nurse@capulet.lit"), None, (), "to",
                                    approved=True))
        kept = roster_.pending[JID.parse("mercutio@montague.lit")]
        request = etree.fromstring(kept)
        self.assertEqual((request.tag, request.get("id"), request.get("to")),
                         ("{jabber:client}presence", "xk3h1v69", "juliet@capulet.lit"))
        self.assertEqual(request.findtext("{http://jabber.org/protocol/nick}nick"),
                         "Mercutio")

    def test_offline_messages(self):
        """Messages keep their delay, which gives their time; one without gets ours, at
        import time; headline messages are not offline messages here."""
        rows = self.value(self.storage.archive("offline").query(HOST, "juliet"))
        self.assertEqual([(when, with_jid) for _, when, with_jid, _ in rows],
                         [(parse_stamp("1469-07-21T00:32:29Z"), "romeo@montague.lit"),
                          (NOW, "nurse@capulet.lit")])
        first = etree.fromstring(rows[0][3])
        self.assertEqual((first.tag, first.get("to"), first.findtext("{jabber:client}body")),
                         ("{jabber:client}message", "juliet@capulet.lit/balcony",
                          "Neither, fair saint, if either thee dislike."))
        second = etree.fromstring(rows[1][3])
        delay = second.find("{urn:xmpp:delay}delay")
        self.assertEqual((second.get("to"), delay.get("from"), delay.get("stamp")),
                         ("juliet@capulet.lit", HOST, "2023-11-14T22:13:20.500Z"))

    def test_report(self):
        """What was left out is named and counted (XEP-0227 §2: notify the operator)."""
        self.assertEqual(self.report.splitlines(), [
            "imported 2 accounts on capulet.lit: 1 roster (2 contacts, 1 pending "
            "subscription request), 1 vCard, 1 private XML document, 2 offline messages",
            "note: skipped what jabberapp does not keep: 1 × <query "
            "xmlns='jabber:iq:privacy'/>, 1 × offline messages of type headline"])

    def test_through_the_extensions(self):
        """The imported data is what the extensions serve: the roster, the vCard, and the
        offline messages delivered at the next login."""
        host = FakeHost(HOST, storage=self.storage, clock=Clock())
        for extension in (service_discovery, roster, vcard_temp, private_storage,
                          offline_messages):
            host.install(extension)
        host.receive("<iq type='get' id='r1' from='juliet@capulet.lit/balcony'>"
                     "<query xmlns='jabber:iq:roster'/></iq>")
        items = host.sent[-1].findall("{jabber:iq:roster}query/{jabber:iq:roster}item")
        self.assertEqual(sorted(item.get("jid") for item in items),
                         ["nurse@capulet.lit", "romeo@montague.lit"])
        host.receive("<iq type='get' id='v1' from='romeo@montague.lit/orchard' "
                     "to='juliet@capulet.lit'><vCard xmlns='vcard-temp'/></iq>")
        self.assertEqual(host.sent[-1].findtext("{vcard-temp}vCard/{vcard-temp}FN"),
                         "Juliet Capulet")
        session = FakeSession(host, "juliet@capulet.lit/balcony", available=False)
        host.receive("<presence from='juliet@capulet.lit/balcony'/>")
        bodies = [stanza.findtext("{jabber:client}body") for stanza in session.sent
                  if stanza.tag == "{jabber:client}message"]
        self.assertEqual(bodies, ["Neither, fair saint, if either thee dislike.", "Madam!"])
        # Pending requests are delivered at login too (RFC 6121 §3.1.3).
        requests = [stanza.get("from") for stanza in session.sent
                    if stanza.tag == "{jabber:client}presence"
                    and stanza.get("type") == "subscribe"]
        self.assertEqual(requests, ["mercutio@montague.lit"])


class ScramImportTests(MigrationTestCase):
    """SCRAM credentials as XEP-0227 1.1 §2.3 carries them, and the older forms."""

    def test_sha256_and_sha512(self):
        """Given material is stored as given, for the hashes given."""
        storage = MemoryStorage()
        self.import_into(storage, self.write("f.xml", document(
            scram_user("tybalt", TYBALT_PASSWORD))))
        self.assertTrue(self.check_password(storage, HOST, "tybalt", TYBALT_PASSWORD))
        credentials = self.value(storage.accounts.get_credentials(HOST, "tybalt", "sha512"))
        self.assertEqual(credentials, derive(TYBALT_PASSWORD, "sha512", salt=b"salt-sha512",
                                             iterations=ITERATIONS))
        self.assertIsNone(self.value(storage.accounts.get_credentials(HOST, "tybalt", "sha1")))

    def test_password_wins(self):
        """With both a password and SCRAM material, the password gives every hash."""
        user = scram_user("tybalt", "old password").replace(
            "<user name='tybalt'>", f"<user name='tybalt' password='{TYBALT_PASSWORD}'>")
        storage = MemoryStorage()
        self.import_into(storage, self.write("f.xml", document(user)))
        self.assertTrue(self.check_password(storage, HOST, "tybalt", TYBALT_PASSWORD))
        for hash_name in HASHES:
            self.assertIsNotNone(self.value(storage.accounts.get_credentials(
                HOST, "tybalt", hash_name)))

    def test_prosody_before_0_12(self):
        """COMPAT: Prosody < 0.12's SCRAM-SHA-1 attributes (raw salt, hex keys)."""
        credentials = derive(TYBALT_PASSWORD, "sha1", salt=b"8d3c-uuid", iterations=4096)
        user = ("<user name='tybalt' xmlns:ns1='http://prosody.im/protocol/extended-xep0227' "
                "ns1:iteration_count='4096' xmlns:ns2='http://prosody.im/protocol/extended-"
                "xep0227' ns2:salt='8d3c-uuid' xmlns:ns3='http://prosody.im/protocol/extended-"
                f"xep0227' ns3:stored_key='{credentials.stored_key.hex()}' xmlns:ns4='http://"
                f"prosody.im/protocol/extended-xep0227' ns4:server_key="
                f"'{credentials.server_key.hex()}'/>")
        storage = MemoryStorage()
        self.import_into(storage, self.write("f.xml", document(user)))
        self.assertTrue(self.check_password(storage, HOST, "tybalt", TYBALT_PASSWORD))

    def test_ejabberd_scram_password(self):
        """COMPAT: ejabberd's old password='scram:[HASH,]STORED,SERVER,SALT,ITERATIONS'."""
        c = derive(TYBALT_PASSWORD, "sha256", salt=b"ej-salt", iterations=4096)
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        user = (f"<user name='tybalt' password='scram:sha256,{b64(c.stored_key)},"
                f"{b64(c.server_key)},{b64(c.salt)},4096'/>")
        storage = MemoryStorage()
        self.import_into(storage, self.write("f.xml", document(user)))
        self.assertTrue(self.check_password(storage, HOST, "tybalt", TYBALT_PASSWORD))

    def test_no_credentials(self):
        """An account without password or material is created; nobody can log in."""
        storage = MemoryStorage()
        _, report = self.import_into(storage, self.write("f.xml", document(
            "<user name='ghost'/>")))
        self.assertTrue(self.value(storage.accounts.exists(HOST, "ghost")))
        self.assertIn("note: 1 account without a password or SCRAM credentials", report)


class RefusedFileTests(MigrationTestCase):
    """A malformed file is refused with its line and the reason; nothing is written."""

    def assert_refused(self, users, line, reason, **kwargs):
        """C{users} (a file's <user/> lines) are refused at C{line} (of the user lines,
        counted from 1) with a message containing C{reason}."""
        exc = self.refused(document(*users), **kwargs)
        path = os.path.join(self.dir, "bad.xml")
        self.assertTrue(str(exc).startswith(f"{path}:{line + 3}: "), str(exc))
        self.assertIn(reason, str(exc))

    def test_not_well_formed(self):
        """A syntax error: libxml2's message at its line."""
        exc = self.refused("<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='capulet.lit'>"
                           "\n<user name='a'>\n</host>\n</server-data>\n")
        self.assertRegex(str(exc), r"bad\.xml:4: not well-formed XML: Opening and ending tag "
                                   r"mismatch: user line 3 and host\Z")

    def test_empty_file(self):
        """An empty file is no XML document."""
        self.assertIn("not well-formed XML", str(self.refused("")))

    def test_doctype(self):
        """No DTD, so no entity tricks."""
        exc = self.refused("<!DOCTYPE server-data [<!ENTITY a 'x'>]>\n"
                           "<server-data xmlns='urn:xmpp:pie:0'/>")
        self.assertIn("DOCTYPE declarations are not allowed", str(exc))

    def test_wrong_root(self):
        """The root must be <server-data/> (or <host/>) in the XEP's namespace."""
        exc = self.refused("<server-data xmlns='urn:example'/>")
        self.assertIn(":1: not a XEP-0227 file: the root element is <server-data "
                      "xmlns='urn:example'/>", str(exc))

    def test_unknown_host(self):
        """Every host must be configured; the error names it and the configured ones."""
        exc = self.refused(document("<user name='a'/>", host="Montague.lit"))
        self.assertIn(":3: 'montague.lit' is not a host of this server (hosts: capulet.lit)",
                      str(exc))

    def test_missing_file(self):
        """A file that cannot be read is named."""
        with self.assertRaises(MigrationError) as caught:
            self.prepare(os.path.join(self.dir, "nowhere.xml"))
        self.assertIn("nowhere.xml: cannot read the file: No such file or directory",
                      str(caught.exception))

    def test_users(self):
        """User names: present, valid, once."""
        self.assert_refused(["<user/>"], 1, "<user/> without a 'name'")
        self.assert_refused(["<user name='a b'/>"], 1, "invalid user name 'a b'")
        self.assert_refused(["<user name='juliet'/>", "<user name='Juliet'/>"], 2,
                            "juliet@capulet.lit is there twice (first at ")
        self.assert_refused(["<user name='a' password='bad\u200bpassword'/>"], 1,
                            "the password of a@capulet.lit cannot be used: the password is "
                            "not allowed by the PRECIS OpaqueString profile")

    def test_twice_across_files(self):
        """A user in two files is a duplicate too, named with both places."""
        first = self.write("one.xml", document("<user name='a'/>"))
        second = self.write("two.xml", document("<user name='b'/>", "<user name='a'/>"))
        with self.assertRaises(MigrationError) as caught:
            self.prepare(first, second)
        self.assertEqual(str(caught.exception),
                         f"{second}:5: a@capulet.lit is there twice (first at {first}:4)")

    def test_scram(self):
        """Unsupported mechanisms and malformed material are refused."""
        good = scram_user("a", "pw", hashes=("sha256",))
        self.assert_refused([good.replace("SCRAM-SHA-256", "SCRAM-SHA3-512")], 1,
                            "unsupported SCRAM mechanism 'SCRAM-SHA3-512' for a@capulet.lit "
                            "(supported: SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512)")
        self.assert_refused([good.replace("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS")], 1,
                            "unsupported SCRAM mechanism 'SCRAM-SHA-256-PLUS'")
        self.assert_refused([scram_user("a", "pw", hashes=("sha1", "sha1"))], 1,
                            "a second <scram-credentials/> for SCRAM-SHA-1")
        self.assert_refused([good.replace("<iter-count>4096", "<iter-count>04096")], 1,
                            "the iteration count must be a number from 1 to 10000000")
        self.assert_refused([good.replace("<salt>", "<salt>!")], 1, "the salt is not base64")
        self.assert_refused([good.replace("SCRAM-SHA-256", "SCRAM-SHA-1")], 1,
                            "bad SCRAM-SHA-1 credentials for a@capulet.lit: the StoredKey "
                            "has 32 bytes, not 20")
        start, end = good.index("<salt>"), good.index("</salt>") + len("</salt>")
        self.assert_refused([good[:start] + good[end:]], 1,
                            "<scram-credentials/> of a@capulet.lit without <salt/>")

    def test_roster(self):
        """Bad roster items are refused with the item's line."""
        def user(*items):
            return ("<user name='a'><query xmlns='jabber:iq:roster'>\n" + "\n".join(items)
                    + "\n</query></user>")
        self.assert_refused([user("<item jid='b@x.example'/>", "<item jid='@x'/>")], 3,
                            "invalid JID '@x' in the roster of a@capulet.lit")
        self.assert_refused([user("<item/>")], 2, "a roster item of a@capulet.lit without "
                                                  "a 'jid'")
        self.assert_refused([user("<item jid='b@x.example/phone'/>")], 2,
                            "roster item 'b@x.example/phone' of a@capulet.lit has a resource")
        self.assert_refused([user("<item jid='b@x.example' subscription='remove'/>")], 2,
                            "has subscription 'remove' (expected none, to, from or both)")
        self.assert_refused([user("<item jid='b@x.example' ask='maybe'/>")], 2,
                            "has ask='maybe'")
        self.assert_refused([user("<item jid='b@x.example' approved='yes'/>")], 2,
                            "has approved='yes'")
        self.assert_refused([user("<item jid='b@x.example'>", "<group/></item>")], 3,
                            "an empty <group/> in roster item b@x.example")
        self.assert_refused([user("<item jid='B@x.example'/>", "<item jid='b@X.example'/>")],
                            3, "b@x.example is twice in the roster of a@capulet.lit")
        items = [f"<item jid='c{n}@x.example'/>" for n in range(3)]
        self.assert_refused([user(*items)], 1, "the roster of a@capulet.lit has 3 items, more "
                                               "than [extension:roster] max_items = 2",
                            limits=Limits(max_roster_items=2))

    def test_empty_vcard_kept(self):
        """An empty <vCard/> is imported as the vcard extension stores one that was set, so
        it is served back rather than answered service-unavailable."""
        storage = MemoryStorage()
        self.import_into(storage, self.write("f.xml", document(
            "<user name='a'><vCard xmlns='vcard-temp'/></user>")))
        self.assertEqual(self.value(storage.keyvalue("vcard").get(HOST, "a", "vcard")),
                         '<vCard xmlns="vcard-temp"/>')

    def test_self_contact_skipped(self):
        """COMPAT: a roster item naming its own user is left out, and counted."""
        storage = MemoryStorage()
        _, report = self.import_into(storage, self.write("f.xml", document(
            "<user name='a'><query xmlns='jabber:iq:roster'><item jid='a@capulet.lit'/>"
            "<item jid='b@capulet.lit'/></query></user>")))
        self.assertEqual(list(self.roster_of(storage, "a").items), [JID.parse("b@capulet.lit")])
        self.assertIn("1 × roster items naming their own user", report)

    def test_sections_twice(self):
        """A user has at most one roster, vCard, private XML and offline messages."""
        for section in ("<query xmlns='jabber:iq:roster'/>", "<vCard xmlns='vcard-temp'/>",
                        "<query xmlns='jabber:iq:private'/>", "<offline-messages/>"):
            self.assert_refused([f"<user name='a'>\n{section}\n{section}</user>"], 3,
                                "a second <")

    def test_vcard_and_private(self):
        """The extensions' size limits and reserved namespaces apply to imported data."""
        self.assert_refused(["<user name='a'><vCard xmlns='vcard-temp'><FN>" + "x" * 2000
                             + "</FN></vCard></user>"], 1,
                            "the vCard of a@capulet.lit has 2043 bytes, more than "
                            "[extension:vcard] max_size = 1024",
                            limits=Limits(max_vcard_size=1024))
        self.assert_refused(["<user name='a'><query xmlns='jabber:iq:private'>\n"
                             "<x xmlns='jabber:iq:roster'/></query></user>"], 2,
                            "private XML <x xmlns='jabber:iq:roster'/> of a@capulet.lit: "
                            "XEP-0049 reserves that namespace")
        self.assert_refused(["<user name='a'><query xmlns='jabber:iq:private'><x xmlns='p:1'>"
                             + "y" * 100 + "</x></query></user>"], 1,
                            "the private XML of a@capulet.lit has 119 bytes, more than "
                            "[extension:private] max_size = 100",
                            limits=Limits(max_private_size=100))

    def test_offline_messages(self):
        """Offline messages need a valid sender, the user as recipient, valid stamps."""
        def user(message):
            return f"<user name='a'><offline-messages>\n{message}</offline-messages></user>"
        self.assert_refused([user("<message xmlns='jabber:client'><body>x</body></message>")],
                            2, "an offline message for a@capulet.lit without a 'from'")
        self.assert_refused([user("<message xmlns='jabber:client' from='@bad'/>")], 2,
                            "an offline message for a@capulet.lit has an invalid 'from'")
        self.assert_refused([user("<message xmlns='jabber:client' from='b@x.example' "
                                  "to='c@capulet.lit'/>")], 2,
                            "an offline message of a@capulet.lit is addressed to "
                            "'c@capulet.lit'")
        self.assert_refused([user("<message xmlns='jabber:client' from='b@x.example'><delay "
                                  "xmlns='urn:xmpp:delay' stamp='yesterday'/></message>")], 2,
                            "invalid time stamp 'yesterday'")
        self.assert_refused([user("<message xmlns='jabber:client' from='b@x.example'/>" * 3)],
                            1, "a@capulet.lit has 3 offline messages, more than "
                               "[extension:offline] max_messages = 2",
                            limits=Limits(max_offline=2))

    def test_includes(self):
        """Only relative references inside the export's directory are followed."""
        for href, reason in (("/etc/passwd", "only relative references are followed"),
                             ("http://example.com/x.xml", "only relative references"),
                             ("../outside.xml", "leaves the directory of the export"),
                             ("missing.xml", "missing.xml: cannot read the file")):
            exc = self.refused("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3."
                               f"org/2001/XInclude'>\n<xi:include href='{href}'/>"
                               "</server-data>")
            self.assertIn(reason, str(exc))
        exc = self.refused("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/"
                           "2001/XInclude'>\n<xi:include href='h.xml' parse='text'/>"
                           "</server-data>")
        self.assertIn("bad.xml:2: only <include href='...'/> of whole XML files", str(exc))

    def test_error_in_included_file(self):
        """An error in an included file names that file and its line."""
        self.write("h.xml", "<host xmlns='urn:xmpp:pie:0' jid='capulet.lit'>\n"
                            "<user name='a'>\n<query xmlns='jabber:iq:roster'>"
                            "<item jid='x@y/z'/></query></user></host>")
        exc = self.refused("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/"
                           "2001/XInclude'><xi:include href='h.xml'/></server-data>")
        self.assertTrue(str(exc).startswith(os.path.join(self.dir, "h.xml") + ":3: roster "
                                            "item 'x@y/z' of a@capulet.lit has a resource"),
                        str(exc))

    def test_unknown_data_skipped(self):
        """What jabberapp does not keep is skipped, counted by name, and not an error."""
        storage = MemoryStorage()
        _, report = self.import_into(storage, self.write("f.xml", document(
            "<user name='a'><pubsub xmlns='http://jabber.org/protocol/pubsub'/>"
            "<archive xmlns='urn:xmpp:pie:0#mam'/><x:y xmlns:x='urn:other'/>"
            "<presence xmlns='jabber:client' type='unsubscribed' from='b@x.example'/>"
            "</user>", "<other xmlns='urn:other'/>")))
        self.assertTrue(self.value(storage.accounts.exists(HOST, "a")))
        self.assertIn("note: skipped what jabberapp does not keep: "
                      "1 × <archive xmlns='urn:xmpp:pie:0#mam'/>, "
                      "1 × <other xmlns='urn:other'/>, "
                      "1 × <presence type='unsubscribed'/> in a user, "
                      "1 × <pubsub xmlns='http://jabber.org/protocol/pubsub'/>, "
                      "1 × <y xmlns='urn:other'/>", report)

    def test_draft_namespace(self):
        """COMPAT: the draft namespace old ejabberd versions wrote is read as well."""
        storage = MemoryStorage()
        self.import_into(storage, self.write("f.xml", document(
            "<user name='a' password='pw'/>").replace(
            "urn:xmpp:pie:0", "http://www.xmpp.org/extensions/xep-0227.html#ns")))
        self.assertTrue(self.check_password(storage, HOST, "a", "pw"))


class TwoPassTests(MigrationTestCase):
    """Nothing is written that pass 1 did not check."""

    def test_files_read_once(self):
        """Pass 2 writes what pass 1 checked and spooled: the files are not read again,
        and the spool holds no password."""
        path = self.write("f.xml", document("<user name='a' password='pw-in-plaintext'>"
                                            "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>"
                                            "</user>"))
        plan = self.prepare(path)
        os.unlink(path)
        plan.spool._file.seek(0)
        self.assertNotIn(b"pw-in-plaintext", plan.spool._file.read())
        storage = MemoryStorage()
        self.successResultOf(defer.ensureDeferred(importer.run(plan, storage)))
        self.assertTrue(self.check_password(storage, HOST, "a", "pw-in-plaintext"))
        self.assertEqual(self.value(storage.keyvalue("vcard").get(HOST, "a", "vcard")),
                         '<vCard xmlns="vcard-temp"><FN>A</FN></vCard>')
        self.assertTrue(plan.spool._file.closed)

    def test_interrupted(self):
        """Once the stop flag is set, the records end with an error: the transaction
        rolls back."""
        path = self.write("f.xml", document("<user name='a'/>", "<user name='b'/>"))
        plan = self.prepare(path)
        self.addCleanup(plan.close)
        stop = threading.Event()
        records = plan.records(stop)
        next(records)
        stop.set()
        self.assertRaises(MigrationError, list, records)

    def test_dry_run(self):
        """A dry run checks files and storage, derives nothing, writes nothing."""
        path = self.write("f.xml", document("<user name='a' password='pw'/>"))
        plan = self.prepare(path, dry_run=True)
        storage = MemoryStorage()
        report = self.successResultOf(defer.ensureDeferred(
            importer.run(plan, storage, dry_run=True)))
        self.assertTrue(report.startswith("checked 1 account on capulet.lit"), report)
        self.assertTrue(report.endswith("nothing was written (--dry-run)"), report)
        self.assertEqual(storage.accounts._accounts, {})

    def test_memory_bounded_reader(self):
        """The reader drops each user once read: the tree holds the users of one chunk
        that lxml parsed ahead, never the file's."""
        path = self.write("f.xml", document(*[f"<user name='u{n}'><vCard xmlns='vcard-temp'>"
                                              f"<FN>{n}</FN></vCard></user>"
                                              for n in range(3000)]))
        held = []
        original = reader_module._drop

        def drop(el):
            parent = el.getparent()
            if parent is not None and el.tag == "{urn:xmpp:pie:0}user":
                held.append(len(parent))
            original(el)

        self.patch(reader_module, "_drop", drop)
        users = list(reader_module.Reader((HOST,), Limits(), NOW).read([path]))
        self.assertEqual(len(users), 3000)
        self.assertEqual(len(held), 3000)
        self.assertLess(max(held), 1000)


class JIDParsingTests(SynchronousTestCase):
    """The reader's JID memory gives what JID.parse gives, errors included."""

    def test_same_as_jid_parse(self):
        """Bare, full, domain, odd and invalid JIDs: the same result or the same error."""
        from jabberapp.jid import InvalidJID
        jids = user_module._JIDs()
        for text in ("alice@example.org", "Alice@Example.ORG.", "ΣΑΣ@ΕΛΛΆΔΑ.example",
                     "a@b@c", "a@b/c@d", "example.org", "a@[::1]", "a@127.0.0.1",
                     "@example.org", "a@", "a b@example.org", "a@exa mple.org", "a@b/",
                     "x" * 1024 + "@example.org", "a@" + "d" * 64 + ".example"):
            for _ in range(2):      # the second time from memory
                try:
                    expected = JID.parse(text)
                except InvalidJID as exc:
                    with self.assertRaises(InvalidJID) as caught:
                        jids.parse(text)
                    self.assertEqual(str(caught.exception), str(exc))
                else:
                    self.assertEqual(jids.parse(text), expected, text)


class RoundTripTests(MigrationTestCase):
    """Data written through the real extensions, exported, imported into a fresh storage:
    every store holds the same."""

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.clock.advance(NOW)
        self.source = MemoryStorage()
        host = FakeHost(HOST, storage=self.source, clock=self.clock)
        for extension in (service_discovery, roster, vcard_temp, private_storage,
                          offline_messages):
            host.install(extension)
        for user in ("alice", "bob", "carol"):
            host.add_account(user, f"{user}-password")
        host.add_account("dave")        # no credentials
        alice = FakeSession(host, "alice@capulet.lit/home")
        host.receive("<presence from='alice@capulet.lit/home'/>")
        host.receive("<iq type='set' id='r1' from='alice@capulet.lit/home'><query xmlns="
                     "'jabber:iq:roster'><item jid='friend@remote.example' name='Friend &amp; "
                     "co'><group>Work</group><group>Ünïcode</group></item></query></iq>")
        # alice asks bob (offline): pending at bob, ask at alice; bob's request to carol too.
        host.receive("<presence from='alice@capulet.lit/home' to='bob@capulet.lit' "
                     "type='subscribe'><status>hi bob</status></presence>")
        host.receive("<presence from='carol@capulet.lit/c' to='alice@capulet.lit' "
                     "type='subscribe'/>")
        host.receive("<iq type='set' id='v1' from='alice@capulet.lit/home'><vCard xmlns="
                     "'vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBOR"
                     "</BINVAL></PHOTO><x xmlns='urn:other' a='1'/></vCard></iq>")
        host.receive("<iq type='set' id='p1' from='alice@capulet.lit/home'><query xmlns="
                     "'jabber:iq:private'><storage xmlns='storage:bookmarks'><conference "
                     "jid='room@conference.capulet.lit' autojoin='true'/></storage><prefs "
                     "xmlns='urn:example:prefs' x='y'>text</prefs></query></iq>")
        for n in range(3):
            host.receive(f"<message from='alice@capulet.lit/home' to='bob@capulet.lit' "
                         f"type='chat' id='m{n}'><body>hello {n} &lt;&amp;&gt;</body></message>")
            self.clock.advance(1.25)
        self.assertEqual([s.get("type") for s in alice.sent if s.get("type") == "error"], [])
        self.host = host

    def export(self, storage):
        out = io.BytesIO()
        summary = self.successResultOf(defer.ensureDeferred(
            exporter.export_host(storage, HOST, out)))
        return out.getvalue(), summary

    def snapshot(self, storage):
        """Everything the stores hold for the host, roster epochs and archive ids aside."""
        data = {}
        for username in self.value(storage.accounts.list_users(HOST)):
            credentials = tuple(self.value(storage.accounts.get_credentials(HOST, username, h))
                                for h in HASHES)
            roster_ = self.roster_of(storage, username)
            rows = self.value(storage.archive("offline").query(HOST, username))
            data[username] = (
                credentials, roster_.items, roster_.pending,
                self.value(storage.keyvalue("vcard").get(HOST, username, "vcard")),
                self.value(storage.keyvalue("private").get(HOST, username, "private")),
                [(when, with_jid, item) for _, when, with_jid, item in rows])
        return data

    def test_round_trip(self):
        """Export, then import into a fresh storage: every store is the same, and the
        export of the imported data is the same file."""
        text, summary = self.export(self.source)
        self.assertEqual(summary.counts["accounts"], 4)
        self.assertEqual(dict(summary.unreadable), {})
        path = self.write("export.xml", text.decode("utf-8"))
        target = MemoryStorage()
        _, report = self.import_into(target, path)
        before, after = self.snapshot(self.source), self.snapshot(target)
        self.assertEqual(sorted(after), ["alice", "bob", "carol", "dave"])
        for username in before:
            self.assertEqual(after[username], before[username], username)
        # The data is not trivially empty.
        alice = after["alice"]
        self.assertEqual(sorted(map(str, alice[1])), ["bob@capulet.lit",    # ask
                                                      "friend@remote.example"])
        self.assertEqual(list(alice[2]), [JID.parse("carol@capulet.lit")])   # pending in
        self.assertEqual(len(after["bob"][5]), 3)
        self.assertEqual(self.export(target)[0], text)
        self.assertIn("note: 1 account without a password or SCRAM credentials", report)

    def test_export_format(self):
        """The export is XEP-0227 1.1: SCRAM credentials per hash, never a password."""
        text, _ = self.export(self.source)
        root = etree.fromstring(text)
        self.assertEqual(root.tag, "{urn:xmpp:pie:0}server-data")
        [host] = root
        self.assertEqual((host.tag, host.get("jid")), ("{urn:xmpp:pie:0}host", HOST))
        alice = host.find("{urn:xmpp:pie:0}user[@name='alice']")
        self.assertIsNone(alice.get("password"))
        mechanisms = [el.get("mechanism") for el in
                      alice.findall("{urn:xmpp:pie:0#scram}scram-credentials")]
        self.assertEqual(mechanisms, ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"])
        scram = alice.find("{urn:xmpp:pie:0#scram}scram-credentials")
        self.assertEqual([child.tag.rpartition("}")[2] for child in scram],
                         ["iter-count", "salt", "server-key", "stored-key"])
        self.assertNotIn(b"alice-password", text)
        bob = host.find("{urn:xmpp:pie:0}user[@name='bob']")
        [request] = bob.findall("{jabber:client}presence")
        self.assertEqual((request.get("type"), request.get("from"),
                          request.findtext("{jabber:client}status")),
                         ("subscribe", "alice@capulet.lit", "hi bob"))
        messages = bob.findall("{urn:xmpp:pie:0}offline-messages/{jabber:client}message")
        self.assertEqual([m.find("{urn:xmpp:delay}delay").get("stamp") for m in messages],
                         ["2023-11-14T22:13:20.500Z", "2023-11-14T22:13:21.750Z",
                          "2023-11-14T22:13:23.000Z"])
        # The declaration, <server-data>, <host>, one line per user, the end tags.
        self.assertEqual(len(text.splitlines()), 3 + 4 + 2)

    def test_unreadable_stored_data(self):
        """A stored vCard that cannot be read is left out and counted, not fatal."""
        self.successResultOf(self.source.keyvalue("vcard").set(HOST, "bob", "vcard", "<broken"))
        text, summary = self.export(self.source)
        self.assertEqual(dict(summary.unreadable), {"vCards": 1})
        self.assertNotIn(b"<broken", text)


# -- jabberappctl, as a subprocess --------------------------------------------------------------

CTL_CONFIG = """\
[server]
hosts = capulet.lit, localhost
data_dir = {data_dir}

[auth]
scram_iterations = 4096

[storage]
path = {db}
"""


class ImportCommandTests(CtlTestCase):
    """jabberappctl import and export against SQLite."""

    def setUp(self):
        super().setUp()
        self.config = self.write_config(CTL_CONFIG.format(data_dir=self.data_dir, db=self.db))

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    @defer.inlineCallbacks
    def test_prosody_files(self):
        """Prosody's files (one per user) are imported in one go, and logins work."""
        out = self.ok("import", self.write("juliet@capulet.lit.xml", PROSODY_JULIET),
                      self.write("romeo@capulet.lit.xml", PROSODY_ROMEO))
        self.assertTrue(out.startswith("imported 2 accounts on capulet.lit: 1 roster "
                                       "(3 contacts, 1 pending subscription request)"), out)
        self.assertTrue((yield self.check_password(HOST, "juliet", JULIET_PASSWORD)))
        self.assertTrue((yield self.check_password(HOST, "romeo", ROMEO_PASSWORD)))

    @defer.inlineCallbacks
    def test_plaintext_with_process_pool(self):
        """Plaintext passwords are derived in worker processes; the logins work."""
        self.write("capulet.lit.xml", HOST_FILE)
        self.write("capulet.lit/nurse.xml", NURSE_FILE)
        self.ok("import", "--jobs", "2", self.write("main.xml", MAIN_FILE))
        self.assertTrue((yield self.check_password(HOST, "juliet", JULIET_PLAIN_PASSWORD)))
        self.assertTrue((yield self.check_password(HOST, "nurse", "nurse-pass")))
        with open(self.db, "rb") as f:
            self.assertNotIn(b"nurse-pass", f.read())

    @defer.inlineCallbacks
    def test_generated_file(self):
        """A generated export of a few hundred users, some 20-contact rosters, plaintext
        passwords and offline messages: everything arrives (the same shape as the 10,000 x
        100 measurement, smaller and untimed)."""
        path = os.path.join(self.dir, "big.xml")
        write_export(path, HOST, 120, 20, passwords=True, offline=2)
        out = self.ok("import", path)
        self.assertEqual(out.splitlines()[0],
                         "imported 120 accounts on capulet.lit: 120 rosters (2400 contacts, "
                         "0 pending subscription requests), 120 vCards, 0 private XML "
                         "documents, 240 offline messages")
        storage = yield self.storage()
        self.assertEqual(len((yield storage.accounts.list_users(HOST))), 120)
        self.assertTrue((yield self.check_password(HOST, "user77", "password-77")))
        roster_ = Roster.from_json((yield storage.keyvalue("roster").get(HOST, "user5",
                                                                         "roster")))
        self.assertEqual(len(roster_.items), 20)
        self.assertEqual((yield storage.archive("offline").count(HOST, "user119")), 2)

    def test_error_line(self):
        """A malformed file: one line, FILE:LINE: reason, exit status 1, nothing imported."""
        path = self.write("bad.xml", document("<user name='a' password='pw'/>",
                                              "<user name='b'><query xmlns='jabber:iq:roster'>"
                                              "<item jid='not a jid@x'/></query></user>"))
        error = self.fails("import", path)
        self.assertEqual(error, f"{path}:5: invalid JID 'not a jid@x' in the roster of "
                                f"b@capulet.lit: localpart contains a disallowed character "
                                f"U+0020 (spaces)")

    @defer.inlineCallbacks
    def test_nothing_half_imported(self):
        """The storage failing in the middle of the write (after batches were written)
        leaves nothing behind."""
        path = os.path.join(self.dir, "big.xml")
        write_export(path, HOST, 700, 2)
        storage = yield self.storage()
        yield storage.accounts.create(HOST, "someone", {})
        yield storage.close()
        with sqlite3.connect(self.db) as db:
            db.execute("CREATE TRIGGER fail_midway BEFORE INSERT ON keyvalue "
                       "WHEN NEW.username = 'user650' "
                       "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
        self.assertEqual(self.fails("import", path), "database error: disk on fire")
        with sqlite3.connect(self.db) as db:
            self.assertEqual(db.execute("SELECT username FROM accounts").fetchall(),
                             [("someone",)])
            for table in ("credentials", "keyvalue", "archive"):
                self.assertEqual(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone(), (0,))

    @defer.inlineCallbacks
    def test_existing_user(self):
        """An account that exists already refuses the import, with its line."""
        self.ok("adduser", "romeo@capulet.lit", "pw")
        juliet = self.write("juliet.xml", PROSODY_JULIET)
        romeo = self.write("romeo.xml", PROSODY_ROMEO)
        self.assertEqual(self.fails("import", juliet, romeo),
                         f"{romeo}:1: romeo@capulet.lit exists on this server already")
        storage = yield self.storage()
        self.assertFalse((yield storage.accounts.exists(HOST, "juliet")))

    def test_unknown_host(self):
        """A host that is not configured is named."""
        path = self.write("f.xml", document("<user name='a'/>", host="montague.lit"))
        self.assertEqual(self.fails("import", path),
                         f"{path}:3: 'montague.lit' is not a host of this server (hosts: "
                         f"capulet.lit, localhost); add it to [server] hosts first")

    @defer.inlineCallbacks
    def test_dry_run(self):
        """--dry-run checks and writes nothing."""
        out = self.ok("import", "--dry-run", self.write("r.xml", PROSODY_ROMEO))
        self.assertTrue(out.startswith("checked 1 account on capulet.lit"), out)
        storage = yield self.storage()
        self.assertEqual((yield storage.accounts.list_users(HOST)), [])

    @defer.inlineCallbacks
    def test_export_and_import_again(self):
        """Export to a private file, import into a fresh database: the same data."""
        self.ok("import", self.write("j.xml", PROSODY_JULIET), self.write("r.xml", PROSODY_ROMEO))
        export = os.path.join(self.dir, "export.xml")
        self.assertEqual(self.ok("export", "Capulet.lit", export),
                         f"exported 2 accounts of capulet.lit to {export}\n")
        self.assertEqual(stat.S_IMODE(os.stat(export).st_mode), 0o600)
        self.assertEqual([name for name in os.listdir(self.dir) if name.endswith(".tmp")], [])
        first = self.ok("export", "capulet.lit", "-")
        with open(export) as f:
            self.assertEqual(f.read(), first)
        self.db = os.path.join(self.dir, "db2", "jabberapp.sqlite")
        self.config = self.write_config(CTL_CONFIG.format(data_dir=self.data_dir, db=self.db),
                                        name="second.ini")
        self.ok("import", export)
        self.assertEqual(self.ok("export", "capulet.lit", "-"), first)
        self.assertTrue((yield self.check_password(HOST, "juliet", JULIET_PASSWORD)))

    def test_export_errors(self):
        """An unknown host, an unwritable file: one line each."""
        self.assertEqual(self.fails("export", "montague.lit", "-"),
                         "'montague.lit' is not a host of this server (hosts: capulet.lit, "
                         "localhost)")
        path = os.path.join(self.dir, "no", "such", "dir.xml")
        self.assertEqual(self.fails("export", "capulet.lit", path),
                         f"{path}: cannot write the file: No such file or directory")
