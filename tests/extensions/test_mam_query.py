"""XEP-0313 queries through a FakeHost: results, paging, filters, form, metadata, prefs, limits."""
from jabberapp.extensions.mam.ns import NS_FORWARD, NS_MAM
from jabberapp.extensions.mam.plugin import mam
from jabberapp.rsm import NS_RSM
from jabberapp.testing import FakeSession

from .test_mam import NOW, MamTestCase

RESULT = f"{{{NS_MAM}}}result"
FIN = f"{{{NS_MAM}}}fin"
BODY = "{jabber:client}body"


def form(**fields):
    """A submitted MAM form with C{fields} (var -> value or list of values)."""
    parts = ["<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
             f"<value>{NS_MAM}</value></field>"]
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        parts.append(f"<field var='{var}'>"
                     + "".join(f"<value>{v}</value>" for v in values) + "</field>")
    return "".join(parts) + "</x>"


def rsm_set(**kwargs):
    inner = "".join(f"<{k}>{v}</{k}>" if v is not None else f"<{k}/>"
                    for k, v in kwargs.items())
    return f"<set xmlns='{NS_RSM}'>{inner}</set>"


class QueryTestCase(MamTestCase):
    def setUp(self):
        super().setUp()
        for n in range(1, 8):
            self.clock.advance(10)
            self.chat(f"message {n}", sender="alice@example.org/phone" if n % 2 else
                      "bob@example.org/laptop", to="bob@example.org" if n % 2 else
                      "alice@example.org")
        self.alice.sent.clear()

    def query(self, inner="", queryid="q", session=None, to="alice@example.org", iq_id="iq1",
              extra=""):
        session = session or self.alice
        self.host.receive(f"<iq type='set' id='{iq_id}' from='{session.jid}' to='{to}'>"
                          f"<query xmlns='{NS_MAM}' queryid='{queryid}'>{inner}</query>"
                          f"{extra}</iq>")
        answer = self.host.sent[-1]
        results = [m for m in session.sent if m.find(RESULT) is not None]
        session.sent.clear()
        return answer, results

    def bodies(self, results):
        return [r.find(f"{RESULT}/{{{NS_FORWARD}}}forwarded/{{jabber:client}}message")
                .findtext(BODY) for r in results]

    def error(self, answer):
        self.assertEqual(answer.get("type"), "error", answer)
        return answer.find("{jabber:client}error")[0].tag.rpartition("}")[2]


class ResultTests(QueryTestCase):
    def test_results_then_fin(self):
        """Every message comes as a <result/> in order, then the IQ result with <fin/>."""
        answer, results = self.query()
        self.assertEqual(self.bodies(results), [f"message {n}" for n in range(1, 8)])
        self.assertEqual(answer.get("type"), "result")
        fin = answer.find(FIN)
        self.assertEqual(fin.get("complete"), "true")
        rsm = fin.find(f"{{{NS_RSM}}}set")
        self.assertEqual(rsm.findtext(f"{{{NS_RSM}}}count"), "7")
        # No index on <first/>: slixmpp's backward paging misreads it (COMPAT in protocol).
        self.assertIsNone(rsm.find(f"{{{NS_RSM}}}first").get("index"))
        self.assertEqual(rsm.findtext(f"{{{NS_RSM}}}first"),
                         results[0].find(RESULT).get("id"))
        self.assertEqual(rsm.findtext(f"{{{NS_RSM}}}last"),
                         results[-1].find(RESULT).get("id"))

    def test_result_shape(self):
        """A result names the query, the archive id, carries a delay and the original."""
        _, results = self.query()
        first = results[0]
        self.assertEqual((first.get("from"), first.get("to")),
                         ("alice@example.org", "alice@example.org/phone"))
        result = first.find(RESULT)
        self.assertEqual(result.get("queryid"), "q")
        delay = result.find(f"{{{NS_FORWARD}}}forwarded/{{urn:xmpp:delay}}delay")
        self.assertTrue(delay.get("stamp").startswith("2023-11-14T22:13:30"))
        original = result.find(f"{{{NS_FORWARD}}}forwarded/{{jabber:client}}message")
        self.assertEqual((original.get("from"), original.get("to")),
                         ("alice@example.org/phone", "bob@example.org"))

    def test_recipient_archive_id_matches_stamp(self):
        """The id in bob's archive is the stanza-id bob's client received."""
        stamped = [m.find("{urn:xmpp:sid:0}stanza-id").get("id") for m in self.bob.sent
                   if m.findtext(BODY)]
        _, results = self.query(session=self.bob, to="bob@example.org")
        received = [r for r in results if self.bodies([r])[0] in
                    ("message 1", "message 3", "message 5", "message 7")]
        self.assertEqual([r.find(RESULT).get("id") for r in received], stamped)

    def test_last_page_and_back(self):
        """An empty <before/> is the last page; <before>first</before> pages back to the
        start, where the page is complete."""
        answer, results = self.query(rsm_set(max=3, before=None))
        self.assertEqual(self.bodies(results), ["message 5", "message 6", "message 7"])
        fin = answer.find(FIN)
        self.assertIsNone(fin.get("complete"))
        seen = self.bodies(results)
        first = fin.findtext(f"{{{NS_RSM}}}set/{{{NS_RSM}}}first")
        while fin.get("complete") != "true":
            answer, results = self.query(rsm_set(max=3, before=first))
            fin = answer.find(FIN)
            seen = self.bodies(results) + seen
            first = fin.findtext(f"{{{NS_RSM}}}set/{{{NS_RSM}}}first")
        self.assertEqual(seen, [f"message {n}" for n in range(1, 8)])

    def test_forward_paging(self):
        """<after/> pages forward; the last page is complete."""
        answer, results = self.query(rsm_set(max=4))
        last = answer.findtext(f"{FIN}/{{{NS_RSM}}}set/{{{NS_RSM}}}last")
        self.assertIsNone(answer.find(FIN).get("complete"))
        answer, results = self.query(rsm_set(max=4, after=last))
        self.assertEqual(self.bodies(results), ["message 5", "message 6", "message 7"])
        self.assertEqual(answer.find(FIN).get("complete"), "true")

    def test_flip_page(self):
        """<flip-page/> sends the page newest first; first/last stay in archive order."""
        answer, results = self.query(rsm_set(max=2, before=None) + "<flip-page/>")
        self.assertEqual(self.bodies(results), ["message 7", "message 6"])
        first = answer.findtext(f"{FIN}/{{{NS_RSM}}}set/{{{NS_RSM}}}first")
        self.assertEqual(first, results[-1].find(RESULT).get("id"))

    def test_page_size_default_and_cap(self):
        """Without <max/> the default page size applies; a larger <max/> is clamped."""
        self.host.unload("mam")
        self.host.install(mam, page_size=2, max_page_size=3)
        answer, results = self.query()
        self.assertEqual(len(results), 2)
        answer, results = self.query(rsm_set(max=1000))
        self.assertEqual(len(results), 3)
        self.assertIsNone(answer.find(FIN).get("complete"))

    def test_count_only(self):
        """<max>0</max> returns no messages, only the count."""
        answer, results = self.query(rsm_set(max=0))
        self.assertEqual(results, [])
        self.assertEqual(answer.findtext(f"{FIN}/{{{NS_RSM}}}set/{{{NS_RSM}}}count"), "7")

    def test_sees_messages_not_yet_written(self):
        """A query sees a message that arrived in the same reactor turn."""
        self.host.receive("<message from='bob@example.org/laptop' to='alice@example.org' "
                          "type='chat'><body>just now</body></message>")
        _, results = self.query()
        self.assertEqual(self.bodies(results)[-1], "just now")


class FilterTests(QueryTestCase):
    def test_with(self):
        """'with' a bare JID matches both directions with that contact."""
        self.send("<message from='carol@example.net/x' to='alice@example.org' type='chat'>"
                  "<body>other</body></message>")
        _, results = self.query(form(**{"with": "carol@example.net"}))
        self.assertEqual(self.bodies(results), ["other"])
        _, results = self.query(form(**{"with": "bob@example.org"}))
        self.assertEqual(len(results), 7)

    def test_with_full_jid(self):
        """'with' a full JID matches only that resource."""
        _, results = self.query(form(**{"with": "bob@example.org/laptop"}))
        self.assertEqual(self.bodies(results), ["message 2", "message 4", "message 6"])

    def test_start_end(self):
        """start and end bound the timestamps, inclusive."""
        start = "2023-11-14T22:13:40Z"     # NOW + 20: message 2
        end = "2023-11-14T22:14:00.000Z"    # NOW + 40: message 4
        _, results = self.query(form(start=start, end=end))
        self.assertEqual(self.bodies(results), ["message 2", "message 3", "message 4"])

    def test_ids_and_id_bounds(self):
        """ids selects messages; after-id and before-id bound the set, exclusively."""
        _, results = self.query()
        ids = [r.find(RESULT).get("id") for r in results]
        _, picked = self.query(form(ids=[ids[4], ids[1]]))
        self.assertEqual(self.bodies(picked), ["message 2", "message 5"])
        _, between = self.query(form(**{"after-id": ids[1], "before-id": ids[4]}))
        self.assertEqual(self.bodies(between), ["message 3", "message 4"])

    def test_full_text(self):
        """The full-text field finds messages by their words; 'withtext' too."""
        self.send("<message from='bob@example.org/laptop' to='alice@example.org' "
                  "type='chat'><body>The Quick brown fox</body></message>")
        _, results = self.query(form(**{"{urn:xmpp:fulltext:0}fulltext": "quick FOX"}))
        self.assertEqual(self.bodies(results), ["The Quick brown fox"])
        _, results = self.query(form(withtext="brown"))
        self.assertEqual(self.bodies(results), ["The Quick brown fox"])

    def test_form_query(self):
        """A get returns the form: the six fields, the full-text field, ids open."""
        self.host.receive(f"<iq type='get' id='f' from='alice@example.org/phone'>"
                          f"<query xmlns='{NS_MAM}'/></iq>")
        answer = self.host.sent[-1]
        fields = {f.get("var"): f for f in answer.iter("{jabber:x:data}field")}
        self.assertEqual(set(fields), {"FORM_TYPE", "with", "start", "end", "before-id",
                                       "after-id", "ids", "{urn:xmpp:fulltext:0}fulltext"})
        self.assertEqual(fields["with"].get("type"), "jid-single")
        self.assertIsNotNone(fields["ids"].find(
            "{http://jabber.org/protocol/xdata-validate}validate/"
            "{http://jabber.org/protocol/xdata-validate}open"))
        self.assertFalse(any(f.find("{jabber:x:data}required") is not None
                             for f in fields.values()))

    def test_metadata(self):
        """<metadata/> gives the first and last message's id and timestamp."""
        _, results = self.query()
        self.host.receive(f"<iq type='get' id='m' from='alice@example.org/phone'>"
                          f"<metadata xmlns='{NS_MAM}'/></iq>")
        meta = self.host.sent[-1].find(f"{{{NS_MAM}}}metadata")
        start, end = meta.find(f"{{{NS_MAM}}}start"), meta.find(f"{{{NS_MAM}}}end")
        self.assertEqual(start.get("id"), results[0].find(RESULT).get("id"))
        self.assertEqual(end.get("id"), results[-1].find(RESULT).get("id"))
        self.assertTrue(start.get("timestamp").endswith("Z"))

    def test_metadata_empty(self):
        """An empty archive's metadata has no start or end."""
        carol = FakeSession(self.host, "carol@example.org/x")
        self.host.add_account("carol")
        self.host.receive(f"<iq type='get' id='m' from='{carol.jid}'>"
                          f"<metadata xmlns='{NS_MAM}'/></iq>")
        self.assertEqual(len(self.host.sent[-1].find(f"{{{NS_MAM}}}metadata")), 0)

    def test_features(self):
        """The host advertises mam:2, #extended and XEP-0431 full-text search."""
        features = self.host.virtual_host.features
        for feature in (NS_MAM, NS_MAM + "#extended", "urn:xmpp:fulltext:0",
                        "urn:xmpp:sid:0"):
            self.assertIn(feature, features)


class PrefsTests(QueryTestCase):
    def test_default_prefs(self):
        """Without stored preferences, the host default with empty lists."""
        self.host.receive(f"<iq type='get' id='p' from='alice@example.org/phone'>"
                          f"<prefs xmlns='{NS_MAM}'/></iq>")
        prefs = self.host.sent[-1].find(f"{{{NS_MAM}}}prefs")
        self.assertEqual(prefs.get("default"), "always")
        self.assertEqual([c.tag for c in prefs],
                         [f"{{{NS_MAM}}}always", f"{{{NS_MAM}}}never"])

    def test_set_and_get(self):
        """Set preferences come back as applied, then from a get."""
        self.host.receive(f"<iq type='set' id='p' from='alice@example.org/phone'>"
                          f"<prefs xmlns='{NS_MAM}' default='roster'><always><jid>"
                          f"bob@example.org</jid></always><never/></prefs></iq>")
        answer = self.host.sent[-1]
        self.assertEqual(answer.get("type"), "result")
        self.host.receive(f"<iq type='get' id='p2' from='alice@example.org/phone'>"
                          f"<prefs xmlns='{NS_MAM}'/></iq>")
        prefs = self.host.sent[-1].find(f"{{{NS_MAM}}}prefs")
        self.assertEqual(prefs.get("default"), "roster")
        self.assertEqual(prefs.findtext(f"{{{NS_MAM}}}always/{{{NS_MAM}}}jid"),
                         "bob@example.org")

    def test_bad_prefs(self):
        """A default that is not always/never/roster is bad-request; a bad JID malformed."""
        self.host.receive(f"<iq type='set' id='p' from='alice@example.org/phone'>"
                          f"<prefs xmlns='{NS_MAM}' default='sometimes'/></iq>")
        self.assertEqual(self.error(self.host.sent[-1]), "bad-request")
        self.host.receive(f"<iq type='set' id='p' from='alice@example.org/phone'>"
                          f"<prefs xmlns='{NS_MAM}' default='always'><never><jid>@@</jid>"
                          f"</never></prefs></iq>")
        self.assertEqual(self.error(self.host.sent[-1]), "jid-malformed")


class BadInputTests(QueryTestCase):
    def test_other_users_archive_forbidden(self):
        """Querying, reading metadata or prefs of another user's archive is forbidden."""
        answer, results = self.query(session=self.alice, to="bob@example.org")
        self.assertEqual((self.error(answer), results), ("forbidden", []))
        for payload in (f"<metadata xmlns='{NS_MAM}'/>", f"<prefs xmlns='{NS_MAM}'/>",
                        f"<query xmlns='{NS_MAM}'/>"):
            self.host.receive(f"<iq type='get' id='x' from='alice@example.org/phone' "
                              f"to='bob@example.org'>{payload}</iq>")
            self.assertEqual(self.error(self.host.sent[-1]), "forbidden")

    def test_remote_requester_forbidden(self):
        """Someone of another server asking for a local archive is refused."""
        self.host.receive(f"<iq type='set' id='x' from='alice@example.net/r' "
                          f"to='alice@example.org'><query xmlns='{NS_MAM}'/></iq>")
        self.assertEqual(self.error(self.host.sent[-1]), "forbidden")

    def test_unknown_field(self):
        """A field the server does not know is feature-not-implemented."""
        answer, _ = self.query(form(**{"include-groupchat": "true"}))
        self.assertEqual(self.error(answer), "feature-not-implemented")

    def test_malformed(self):
        """Bad dates, bad JIDs, repeated values, a wrong FORM_TYPE or form type: bad-request."""
        for inner in (form(start="yesterday"), form(end="2023-13-45T99:00:00Z"),
                      form(**{"with": "@bad@"}), form(start=["2020-01-01T00:00:00Z"] * 2),
                      form().replace(NS_MAM, "urn:xmpp:mam:1"),
                      form().replace("type='submit'", "type='result'"),
                      rsm_set(max="lots"), rsm_set(after=""), form() + form()):
            answer, results = self.query(inner)
            self.assertEqual((self.error(answer), results), ("bad-request", []), inner)

    def test_unknown_ids(self):
        """An id the archive does not hold is item-not-found, wherever it is named."""
        for inner in (rsm_set(after="nope"), rsm_set(before="nope"),
                      form(**{"after-id": "nope"}), form(ids=["nope"])):
            answer, results = self.query(inner)
            self.assertEqual((self.error(answer), results), ("item-not-found", []), inner)

    def test_ids_of_another_archive(self):
        """An id of another user's archive is not found in one's own."""
        _, results = self.query(session=self.bob, to="bob@example.org")
        bob_id = results[0].find(RESULT).get("id")
        answer, _ = self.query(form(ids=[bob_id]))
        self.assertEqual(self.error(answer), "item-not-found")


class RateLimitTests(QueryTestCase):
    options = {"query_rate": 1.0, "query_burst": 2}

    def test_slowed_not_refused(self):
        """Past its burst a session's query waits for its turn; it is answered later."""
        for n in range(2):
            answer, _ = self.query(iq_id=f"a{n}")
            self.assertEqual(answer.get("type"), "result")
        self.host.receive(f"<iq type='set' id='late' from='alice@example.org/phone'>"
                          f"<query xmlns='{NS_MAM}'/></iq>")
        self.assertNotEqual(self.host.sent[-1].get("id"), "late")
        self.clock.advance(1)
        self.assertEqual((self.host.sent[-1].get("id"), self.host.sent[-1].get("type")),
                         ("late", "result"))

    def test_other_sessions_not_slowed(self):
        """Another session (of the same user or another) is not slowed by one past its rate."""
        for n in range(3):
            self.query(iq_id=f"a{n}")
        other = FakeSession(self.host, "alice@example.org/laptop")
        answer, _ = self.query(session=other, iq_id="other")
        self.assertEqual((answer.get("id"), answer.get("type")), ("other", "result"))
        answer, _ = self.query(session=self.bob, to="bob@example.org", iq_id="bob")
        self.assertEqual((answer.get("id"), answer.get("type")), ("bob", "result"))

    def test_too_many_waiting(self):
        """A session with ten queries waiting (past its burst of two) gets
        resource-constraint; the waiting ones are all answered, in order."""
        for n in range(13):
            self.host.receive(f"<iq type='set' id='w{n}' from='alice@example.org/phone'>"
                              f"<query xmlns='{NS_MAM}'/></iq>")
        answer = self.host.sent[-1]
        self.assertEqual((answer.get("id"), self.error(answer)), ("w12", "resource-constraint"))
        self.clock.pump([1] * 20)
        answered = [s.get("id") for s in self.host.sent if s.get("type") == "result"
                    and (s.get("id") or "").startswith("w")]
        self.assertEqual(answered, [f"w{n}" for n in range(12)])

    def test_results_not_interleaved(self):
        """Two queries of one session: the first's results and fin come before the second's."""
        self.host.receive(f"<iq type='set' id='x1' from='alice@example.org/phone'>"
                          f"<query xmlns='{NS_MAM}' queryid='one'/></iq>")
        self.host.receive(f"<iq type='set' id='x2' from='alice@example.org/phone'>"
                          f"<query xmlns='{NS_MAM}' queryid='two'/></iq>")
        order = [(m.find(RESULT).get("queryid") if m.find(RESULT) is not None else m.get("id"))
                 for m in self.alice.sent]
        self.assertEqual(order, ["one"] * 7 + ["x1"] + ["two"] * 7 + ["x2"])


del NOW


class AccountDiscoTests(MamTestCase):
    """The owner's disco#info of its bare JID lists the MAM features (XEP-0313 §6)."""

    def disco(self, session, to):
        self.host.receive(f"<iq type='get' id='d' from='{session.jid}' to='{to}'>"
                          "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        answer = self.host.sent[-1]
        return answer, {f.get("var") for f in answer.iter(
            "{http://jabber.org/protocol/disco#info}feature")}

    def setUp(self):
        from jabberapp.extensions.caps import caps
        from jabberapp.extensions.disco import service_discovery
        from jabberapp.extensions.pubsub.plugin import pep
        from jabberapp.extensions.roster.extension import roster
        self.extra = (service_discovery, roster, caps)
        super().setUp()
        # As the server installs them: by name, so mam before pep.
        self.host.install(pep)

    def test_owner_sees_mam_and_pep(self):
        """The owner gets the MAM features with PEP's answer, not instead of it."""
        answer, features = self.disco(self.alice, "alice@example.org")
        self.assertEqual(answer.get("type"), "result")
        self.assertTrue({NS_MAM, NS_MAM + "#extended", "urn:xmpp:fulltext:0",
                         "http://jabber.org/protocol/pubsub"} <= features, features)
        identities = {(i.get("category"), i.get("type")) for i in answer.iter(
            "{http://jabber.org/protocol/disco#info}identity")}
        self.assertIn(("pubsub", "pep"), identities)

    def test_others_do_not(self):
        """Someone else asking the bare JID is not told about the archive."""
        answer, features = self.disco(self.bob, "alice@example.org")
        self.assertNotIn(NS_MAM, features)
