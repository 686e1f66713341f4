"""Unit tests of XEP-0163 PEP through a FakeHost: auto-create, +notify, publish-options."""
from jabberapp.extensions.caps import QUERY_TIMEOUT, caps, compute_ver, parse_disco_info
from tests.extensions.pubsub.helpers import NS_EVENT, NS_PUBSUB, PubSubTestCase, form, parse

ALICE = "alice@example.org/phone"
ALICE2 = "alice@example.org/laptop"
BOB = "bob@example.org/r"
CAROL = "carol@example.org/r"
OWN = "alice@example.org"
AVATAR = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
NICK = "http://jabber.org/protocol/nick"
NS_CAPS = "http://jabber.org/protocol/caps"
OMEMO = "eu.siacs.conversations.axolotl.devicelist"
METADATA = f"<metadata xmlns='{AVATAR}'><info id='abc' bytes='1' type='image/png'/></metadata>"
BOOKMARK_OPTIONS = {"persist_items": "true", "max_items": "max",
                    "send_last_published_item": "never", "access_model": "whitelist"}


class PEPTests(PubSubTestCase):
    def setUp(self):
        super().setUp()
        self.befriend("alice", "bob@example.org", "both")
        self.befriend("bob", "alice@example.org", "both")
        self.befriend("alice", "carol@example.org", "to")

    def pep_publish(self, node, payload, item_id="current", sender=ALICE, options=None,
                    to=OWN):
        inner, _, _ = self.publish(node, payload, item_id, options=options)
        return self.iq(sender, "set", inner, to=to)

    def client_caps(self, features, name="client"):
        """(disco#info answer, ver) of a client with C{features}; the test's id in the
        identity makes the ver new to the process-wide cache."""
        query = ("<query xmlns='http://jabber.org/protocol/disco#info'>"
                 f"<identity category='client' type='pc' name='{name} {self.id()}'/>"
                 + "".join(f"<feature var='{f}'/>" for f in features) + "</query>")
        return query, compute_ver(parse_disco_info(parse(query)))

    def present(self, jid, ver, type_=None, hash_="sha-1"):
        """Broadcast presence from C{jid} with caps C{ver} (none when None)."""
        hash_attr = f" hash='{hash_}'" if hash_ else ""
        c = (f"<c xmlns='{NS_CAPS}'{hash_attr} node='urn:test' ver='{ver}'/>"
             if ver else "")
        t = f" type='{type_}'" if type_ else ""
        self.host.receive(f"<presence from='{jid}'{t}>{c}</presence>")

    def caps_queries(self, jid):
        """The caps disco#info queries the server sent to C{jid}."""
        return [s for s in self.host.sent if s.get("to") == jid and s.get("type") == "get"
                and s.find("{http://jabber.org/protocol/disco#info}query") is not None]

    def answer(self, query, xml):
        self.host.receive(f"<iq type='result' id='{query.get('id')}' "
                          f"from='{query.get('to')}' to='example.org'>{xml}</iq>")

    def waiters(self):
        """The caps service's when_known waiters still held."""
        return self.host.service("caps")._verifier._waiters

    def test_auto_create_and_presence_default(self):
        """A publish to one's own bare JID creates the node with access model presence."""
        reply = self.pep_publish(AVATAR, METADATA)
        self.assertEqual(reply.get("type"), "result")
        self.assertEqual(reply.get("from"), OWN)
        conf = self.ok(ALICE, "get", self.pubsub(f"<configure node='{AVATAR}'/>", owner=True),
                       to=OWN)
        values = {f.get("var"): f.findtext("{jabber:x:data}value")
                  for f in conf.iter("{jabber:x:data}field")}
        self.assertEqual(values["pubsub#access_model"], "presence")

    def test_without_to(self):
        """An IQ without 'to' from the owner's session addresses its own account."""
        inner, _, _ = self.publish(AVATAR, METADATA, "x")
        self.ok(ALICE, "set", inner, to=None)
        reply = self.ok(ALICE, "get", self.pubsub(f"<items node='{AVATAR}'/>"), to=None)
        self.assertEqual(reply[0][0][0].get("id"), "x")

    def test_notify_filtered_by_caps_and_subscription(self):
        """Contacts that see the owner's presence and want +notify get the event."""
        self.bind(BOB, [f"{AVATAR}+notify"])
        self.bind("bob@example.org/other", [])
        self.bind(CAROL, [f"{AVATAR}+notify"])      # alice has 'to' only: no presence
        self.bind(ALICE2, [f"{AVATAR}+notify"])
        self.bind(ALICE, [])
        self.assertEqual(self.pep_publish(AVATAR, METADATA).get("type"), "result")
        event = self.events(BOB)[-1]
        self.assertEqual(event.get("from"), OWN)
        self.assertEqual(event.get("type"), "headline")
        self.assertEqual(event.find(f".//{{{NS_EVENT}}}item").get("id"), "current")
        self.assertEqual(self.events("bob@example.org/other"), [])
        self.assertEqual(self.events(CAROL), [])
        self.assertEqual(len(self.events(ALICE2)), 1)
        self.assertEqual(self.events(ALICE), [])

    def test_others_cannot_publish(self):
        """Only the owner publishes to its PEP nodes."""
        reply = self.pep_publish(AVATAR, METADATA, sender=BOB, to=OWN)
        self.assertEqual(reply.get("type"), "error")
        self.assertIsNotNone(reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden"))

    def test_contact_reads_presence_node(self):
        """A contact with presence subscription reads items; others are refused."""
        self.pep_publish(AVATAR, METADATA)
        self.ok(BOB, "get", self.pubsub(f"<items node='{AVATAR}'/>"), to=OWN)
        self.assertEqual(self.error(CAROL, "get", self.pubsub(f"<items node='{AVATAR}'/>"),
                                    to=OWN),
                         ("not-authorized", "presence-subscription-required"))

    def test_bookmarks_publish_options(self):
        """Bookmarks' publish-options create a whitelist node; matching options publish
        again, differing ones are conflict/precondition-not-met; contacts see nothing."""
        self.bind(BOB, [f"{BOOKMARKS}+notify"])
        self.bind(ALICE2, [f"{BOOKMARKS}+notify"])
        conference = ("<conference xmlns='urn:xmpp:bookmarks:1' name='Room' "
                      "autojoin='true'><nick>al</nick></conference>")
        reply = self.pep_publish(BOOKMARKS, conference, "room@conf.example.org",
                                 options=BOOKMARK_OPTIONS)
        self.assertEqual(reply.get("type"), "result")
        reply = self.pep_publish(BOOKMARKS, conference, "other@conf.example.org",
                                 options=BOOKMARK_OPTIONS)
        self.assertEqual(reply.get("type"), "result")
        self.assertEqual(len(self.events(ALICE2)), 2)
        self.assertEqual(self.events(BOB), [])
        self.assertEqual(self.error(BOB, "get", self.pubsub(f"<items node='{BOOKMARKS}'/>"),
                                    to=OWN), ("not-allowed", "closed-node"))
        reply = self.ok(ALICE, "get", self.pubsub(f"<items node='{BOOKMARKS}'/>"), to=OWN)
        self.assertEqual(len(reply[0][0]), 2)     # max_items 'max' keeps both
        reply = self.pep_publish(BOOKMARKS, conference, "x@conf.example.org",
                                 options=dict(BOOKMARK_OPTIONS, access_model="open"))
        self.assertEqual(reply.get("type"), "error")
        self.assertIsNotNone(reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}conflict"))
        self.assertIsNotNone(reply.find(
            ".//{http://jabber.org/protocol/pubsub#errors}precondition-not-met"))

    def test_omemo_open_devicelist(self):
        """An open OMEMO device list is readable by anyone, even without a subscription."""
        devices = ("<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>")
        self.pep_publish(OMEMO, devices, options={"access_model": "open"})
        reply = self.ok(CAROL, "get", self.pubsub(f"<items node='{OMEMO}'/>"), to=OWN)
        self.assertEqual(len(reply[0][0]), 1)

    def test_last_item_at_login(self):
        """A contact becoming available gets the last item once its caps are known."""
        self.pep_publish(AVATAR, METADATA)
        query, ver = self.client_caps([f"{AVATAR}+notify"])
        self.present(BOB, ver)
        self.assertEqual(self.events(BOB), [])
        [request] = self.caps_queries(BOB)
        self.answer(request, query)
        self.assertEqual(len(self.events(BOB)), 1)
        self.clock.advance(30)
        self.assertEqual(len(self.events(BOB)), 1)

    def test_last_item_at_login_known_caps(self):
        """A contact whose caps are verified already gets the last item with its initial
        presence, and nothing is scheduled for it."""
        self.pep_publish(AVATAR, METADATA)
        caps.cache.put("bob-ver", frozenset({f"{AVATAR}+notify"}))
        self.present(BOB, "bob-ver")
        self.assertEqual(len(self.events(BOB)), 1)
        self.assertEqual(self.caps_queries(BOB), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.waiters(), {})

    def test_no_caps_no_timer(self):
        """A session whose presence has no caps, or legacy caps, waits for nothing: no
        delayed call and no waiter is left after its login, and it gets no last item."""
        self.pep_publish(AVATAR, METADATA)
        self.present(BOB, None)
        self.present(CAROL, "0.9", hash_=None)      # legacy caps (XEP-0115 §10)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.waiters(), {})
        self.assertEqual(self.events(BOB) + self.events(CAROL), [])

    def test_last_item_as_soon_as_verified(self):
        """While caps are verified the only timer is the caps query's timeout; the last
        item goes out with the verifying answer, without the clock moving."""
        self.pep_publish(AVATAR, METADATA)
        query, ver = self.client_caps([f"{AVATAR}+notify"])
        self.present(BOB, ver)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), self.clock.seconds() + QUERY_TIMEOUT)
        self.assertEqual(self.events(BOB), [])
        self.answer(self.caps_queries(BOB)[0], query)
        self.assertEqual(len(self.events(BOB)), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.waiters(), {})

    def test_last_item_when_another_client_verifies(self):
        """Sessions with the same caps get their last items from the one query for the
        ver, as soon as it is answered."""
        self.pep_publish(AVATAR, METADATA)
        query, ver = self.client_caps([f"{AVATAR}+notify"])
        self.present(ALICE2, ver)
        self.present(BOB, ver)
        self.assertEqual(self.caps_queries(BOB), [])
        self.answer(self.caps_queries(ALICE2)[0], query)
        self.assertEqual((len(self.events(ALICE2)), len(self.events(BOB))), (1, 1))
        self.assertEqual(self.waiters(), {})

    def test_last_item_when_next_client_verifies(self):
        """When the first client's answer does not verify, the next one with the ver is
        asked (XEP-0115 §5.4 3.9) and its answer brings both their last items."""
        self.pep_publish(AVATAR, METADATA)
        query, ver = self.client_caps([f"{AVATAR}+notify"])
        self.present(BOB, ver)
        self.present(ALICE2, ver)
        wrong = query.replace("</query>", "<feature var='urn:not:hashed'/></query>")
        self.answer(self.caps_queries(BOB)[0], wrong)
        self.assertEqual(self.events(BOB), [])
        [second] = self.caps_queries(ALICE2)
        self.answer(second, query)
        self.assertEqual((len(self.events(ALICE2)), len(self.events(BOB))), (1, 1))
        self.assertEqual(self.waiters(), {})

    def test_session_gone_while_waiting(self):
        """A session that ends while its caps are verified leaves no waiter and no timer
        behind, and a late answer sends it nothing."""
        self.pep_publish(AVATAR, METADATA)
        query, ver = self.client_caps([f"{AVATAR}+notify"])
        self.present(BOB, ver)
        [request] = self.caps_queries(BOB)
        self.host.session(BOB).close()
        self.assertEqual(self.waiters(), {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.answer(request, query)
        self.assertEqual(self.events(BOB), [])

    def test_unavailable_while_waiting(self):
        """A session that goes unavailable before its caps are verified gets no last item
        and its wait is dropped."""
        self.pep_publish(AVATAR, METADATA)
        query, ver = self.client_caps([f"{AVATAR}+notify"])
        self.present(BOB, ver)
        self.present(BOB, None, type_="unavailable")
        self.assertEqual(self.waiters(), {})
        self.answer(self.caps_queries(BOB)[0], query)
        self.assertEqual(self.events(BOB), [])
        self.assertEqual(caps.cache.get(ver), frozenset({f"{AVATAR}+notify"}))

    def test_caps_change_while_waiting(self):
        """Caps replaced while the first are verified: the new ones decide, and the late
        answer for the old ones sends nothing more."""
        self.pep_publish(AVATAR, METADATA)
        self.pep_publish(NICK, "<nick xmlns='http://jabber.org/protocol/nick'>A</nick>")
        query, ver = self.client_caps([f"{AVATAR}+notify", f"{NICK}+notify"])
        self.present(BOB, ver)
        caps.cache.put("bob-new-ver", frozenset({f"{AVATAR}+notify"}))
        self.present(BOB, "bob-new-ver")
        self.assertEqual(len(self.events(BOB)), 1)
        self.answer(self.caps_queries(BOB)[0], query)
        self.assertEqual([e.find(f".//{{{NS_EVENT}}}items").get("node")
                          for e in self.events(BOB)], [AVATAR])
        self.assertEqual(self.waiters(), {})

    def test_last_item_not_sent_for_never(self):
        """Nodes with send_last_published_item never are not sent at login."""
        self.pep_publish(BOOKMARKS, "<conference xmlns='urn:xmpp:bookmarks:1'/>", "r@c",
                         options=BOOKMARK_OPTIONS)
        query, ver = self.client_caps([f"{BOOKMARKS}+notify"])
        self.present(ALICE2, ver)
        self.answer(self.caps_queries(ALICE2)[0], query)     # its caps become known
        self.assertEqual(caps.cache.get(ver), frozenset({f"{BOOKMARKS}+notify"}))
        self.clock.advance(20)
        self.assertEqual(self.events(ALICE2), [])

    def test_instant_node_refused(self):
        """PEP has no instant nodes: nodeid-required."""
        self.assertEqual(self.error(ALICE, "set", self.pubsub("<create/>"), to=OWN),
                         ("not-acceptable", "nodeid-required"))

    def test_explicit_subscription(self):
        """An explicit subscriber gets notifications without caps."""
        self.pep_publish(AVATAR, METADATA)
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='{AVATAR}' jid='{BOB}'/>"), to=OWN)
        self.clock.advance(0)       # on_sub_and_presence: the last item follows
        self.assertEqual(len(self.events(BOB)), 1)
        self.pep_publish(AVATAR, METADATA, "second")
        self.assertEqual(len(self.events(BOB)), 2)

    def test_account_disco(self):
        """The owner's disco#info of its account shows pubsub/pep and publish-options."""
        reply = self.ok(ALICE, "get",
                        "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=OWN)
        identities = {(i.get("category"), i.get("type"))
                      for i in reply[0].iter("{http://jabber.org/protocol/disco#info}identity")}
        self.assertIn(("pubsub", "pep"), identities)
        features = {f.get("var") for f in reply[0]}
        self.assertIn(f"{NS_PUBSUB}#publish-options", features)

    def test_delete_and_retract(self):
        """The owner retracts and deletes its PEP nodes, notifying interested resources."""
        self.bind(BOB, [f"{AVATAR}+notify"])
        self.pep_publish(AVATAR, METADATA)
        self.ok(ALICE, "set", self.pubsub(
            f"<retract node='{AVATAR}' notify='1'><item id='current'/></retract>"), to=OWN)
        self.assertIsNotNone(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}retract"))
        self.ok(ALICE, "set", self.pubsub(f"<delete node='{AVATAR}'/>", owner=True), to=OWN)
        self.assertIsNotNone(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}delete"))

    def test_account_disco_items(self):
        """The owner's disco#items of its account list its PEP nodes."""
        self.pep_publish(AVATAR, METADATA)
        reply = self.ok(ALICE, "get",
                        "<query xmlns='http://jabber.org/protocol/disco#items'/>", to=OWN)
        self.assertEqual([(i.get("jid"), i.get("node")) for i in reply[0]], [(OWN, AVATAR)])

    def test_private_storage_profile(self):
        """XEP-0223: a whitelist, persistent node keeps private data for its owner only."""
        options = {"persist_items": "1", "access_model": "whitelist"}
        storage = "<storage xmlns='storage:bookmarks'><conference jid='r@c'/></storage>"
        reply = self.pep_publish("storage:bookmarks", storage, "current", options=options)
        self.assertEqual(reply.get("type"), "result")
        reply = self.ok(ALICE2, "get", self.pubsub("<items node='storage:bookmarks'/>"),
                        to=OWN)
        self.assertEqual(reply[0][0][0][0].tag, "{storage:bookmarks}storage")
        self.assertEqual(self.error(BOB, "get", self.pubsub(
            "<items node='storage:bookmarks'/>"), to=OWN), ("not-allowed", "closed-node"))

    def test_last_item_when_caps_change(self):
        """A session announcing new caps with +notify later gets the last item then."""
        self.pep_publish(AVATAR, METADATA)
        self.host.receive(f"<presence from='{BOB}'/>")
        self.bind(BOB, [])
        self.clock.advance(1)
        self.assertEqual(self.events(BOB), [])
        caps.cache.put("bob-new-ver", frozenset({f"{AVATAR}+notify"}))
        self.host.receive(f"<presence from='{BOB}'><c xmlns='http://jabber.org/protocol/caps'"
                          " hash='sha-1' node='urn:test' ver='bob-new-ver'/></presence>")
        self.assertEqual(len(self.events(BOB)), 1)      # at once: the ver is verified
        self.host.receive(f"<presence from='{BOB}'><c xmlns='http://jabber.org/protocol/caps'"
                          " hash='sha-1' node='urn:test' ver='bob-new-ver'/></presence>")
        self.clock.advance(10)
        self.assertEqual(len(self.events(BOB)), 1)

    def test_legacy_bookmarks_node(self):
        """XEP-0048 bookmarks via XEP-0223 (node storage:bookmarks, private publish-options)
        are stored, read back by another resource and refused to contacts."""
        storage = ("<storage xmlns='storage:bookmarks'><conference jid='team@conference."
                   "example.org' autojoin='true' name='Team'><nick>al</nick></conference>"
                   "</storage>")
        options = {"persist_items": "true", "access_model": "whitelist"}
        reply = self.pep_publish("storage:bookmarks", storage, options=options)
        self.assertEqual(reply.get("type"), "result")
        reply = self.ok(ALICE2, "get", self.pubsub("<items node='storage:bookmarks'/>"),
                        to=OWN)
        conference = reply.find(".//{storage:bookmarks}conference")
        self.assertEqual(conference.get("jid"), "team@conference.example.org")
        self.assertEqual(self.error(BOB, "get", self.pubsub(
            "<items node='storage:bookmarks'/>"), to=OWN), ("not-allowed", "closed-node"))

    def test_authorize_approved_by_owner_form(self):
        """With access model authorize, a contact's subscription waits for the owner, who
        approves it by sending the §8.6 form back to its own bare JID."""
        self.bind(ALICE)
        self.ok(ALICE, "set", self.pubsub("<create node='diary'/><configure>" + form(
            {"access_model": "authorize"}, "node_config") + "</configure>"), to=OWN)
        reply = self.ok(BOB, "set", self.pubsub(f"<subscribe node='diary' jid='{BOB}'/>"),
                        to=OWN)
        self.assertEqual(reply[0][0].get("subscription"), "pending")
        self.clock.advance(0)
        [request] = [s for s in self.host.sent if s.get("to") == OWN
                     and s.find("{jabber:x:data}x") is not None]
        self.assertEqual(request.get("from"), OWN)
        x = request.find("{jabber:x:data}x")
        x.set("type", "submit")
        for field in x.iterchildren("{jabber:x:data}field"):
            if field.get("var") == "pubsub#allow":
                field[0].text = "true"
        x.remove(x.find("{jabber:x:data}title"))
        x.remove(x.find("{jabber:x:data}instructions"))
        message = parse(f"<message from='{ALICE}' to='{OWN}' id='ok'/>")
        message.append(x)
        self.host.receive(message)
        events = [e.find(f".//{{{NS_EVENT}}}subscription") for e in self.events(BOB)]
        self.assertEqual([e.get("subscription") for e in events if e is not None],
                         ["subscribed"])
        self.pep_publish("diary", "<entry xmlns='urn:test'>day 1</entry>")
        self.assertEqual(self.events(BOB)[-1].find(f".//{{{NS_EVENT}}}item").get("id"),
                         "current")


    def test_authorization_form_from_others_delivered(self):
        """A subscription authorization form someone else sends to the owner is an
        ordinary message: delivered, not applied."""
        self.bind(ALICE)
        self.ok(ALICE, "set", self.pubsub("<create node='diary'/><configure>" + form(
            {"access_model": "authorize"}, "node_config") + "</configure>"), to=OWN)
        self.ok(BOB, "set", self.pubsub(f"<subscribe node='diary' jid='{BOB}'/>"), to=OWN)
        fields = {"FORM_TYPE": "http://jabber.org/protocol/pubsub#subscribe_authorization",
                  "pubsub#node": "diary", "pubsub#subscriber_jid": BOB,
                  "pubsub#allow": "true"}
        x = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
        self.host.receive(f"<message id='fake' from='{BOB}' to='{OWN}'>"
                          f"<x xmlns='jabber:x:data' type='submit'>{x}</x></message>")
        self.assertIn("fake", [s.get("id") for s in self.host.session(ALICE).sent])
        self.assertEqual(self.error(BOB, "get", self.pubsub("<items node='diary'/>"),
                                    to=OWN), ("not-authorized", "pending-subscription"))

DAN = "dan@remote.example/phone"


class RemoteContactTests(PubSubTestCase):
    """XEP-0163 §4.3 for contacts on other servers: their presence's caps decide."""

    def setUp(self):
        super().setUp()
        self.befriend("alice", "dan@remote.example", "both")
        self.befriend("alice", "erin@remote.example", "to")

    def presence(self, sender, ver=None, type_=None, to=OWN):
        c = f"<c xmlns='{NS_CAPS}' hash='sha-1' node='urn:test' ver='{ver}'/>" if ver else ""
        t = f" type='{type_}'" if type_ else ""
        self.host.receive(f"<presence from='{sender}' to='{to}'{t}>{c}</presence>")

    def remote_events(self, jid=DAN):
        return [s for s in self.host.remote.received if s.get("to") == jid
                and s.find(f"{{{NS_EVENT}}}event") is not None]

    def publish_avatar(self, item_id="current"):
        inner, _, _ = self.publish(AVATAR, METADATA, item_id)
        self.ok(ALICE, "set", inner, to=OWN)

    def test_notified_when_caps_say_notify(self):
        """A remote contact's resource whose presence caps include +notify gets events."""
        caps.cache.put("remote-ver-1", frozenset({f"{AVATAR}+notify"}))
        self.presence(DAN, "remote-ver-1")
        self.presence("dan@remote.example/desk", None)     # no caps: no notifications
        self.publish_avatar()
        [event] = self.remote_events()
        self.assertEqual((event.get("from"), event.get("type")), (OWN, "headline"))
        self.assertEqual(event.find(f".//{{{NS_EVENT}}}item").get("id"), "current")
        self.assertEqual(self.remote_events("dan@remote.example/desk"), [])

    def test_filters(self):
        """No events without +notify, without a from/both subscription, or once the
        resource is unavailable."""
        caps.cache.put("remote-ver-2", frozenset({"urn:other+notify"}))
        caps.cache.put("remote-ver-1", frozenset({f"{AVATAR}+notify"}))
        self.presence(DAN, "remote-ver-2")
        self.presence("erin@remote.example/r", "remote-ver-1")     # alice has 'to' only
        self.publish_avatar("a")
        self.assertEqual(self.remote_events() + self.remote_events("erin@remote.example/r"),
                         [])
        self.presence(DAN, "remote-ver-1")      # now +notify: the last item, "a"
        self.assertEqual([e.find(f".//{{{NS_EVENT}}}item").get("id")
                          for e in self.remote_events()], ["a"])
        self.presence(DAN, type_="unavailable")
        self.publish_avatar("b")
        self.assertEqual(len(self.remote_events()), 1)

    def test_unknown_caps_verified_then_last_item(self):
        """Unknown caps are asked of the remote resource and, when the answer hashes to
        the ver, the last item of the +notify nodes is sent to it."""
        from jabberapp.extensions.caps import compute_ver, parse_disco_info
        self.publish_avatar("before")
        query = ("<query xmlns='http://jabber.org/protocol/disco#info'>"
                 "<identity category='client' type='phone' name='x'/>"
                 f"<feature var='{AVATAR}+notify'/><feature var='urn:remote:only'/></query>")
        ver = compute_ver(parse_disco_info(parse(query)))
        self.presence(DAN, ver)
        self.presence(DAN, ver, to=OWN + "/phone")      # one query per ver
        [request] = [s for s in self.host.remote.received if s.get("to") == DAN
                     and s.tag == "{jabber:client}iq"]
        self.assertEqual(request[0].get("node"), f"urn:test#{ver}")
        self.assertEqual(self.remote_events(), [])
        self.host.receive(f"<iq type='result' id='{request.get('id')}' from='{DAN}' "
                          f"to='example.org'>{query}</iq>")
        [event] = self.remote_events()
        self.assertEqual(event.find(f".//{{{NS_EVENT}}}item").get("id"), "before")
        self.publish_avatar("after")
        self.assertEqual(self.remote_events()[-1].find(f".//{{{NS_EVENT}}}item").get("id"),
                         "after")

    def test_wrong_answer_not_trusted(self):
        """An answer that does not hash to the ver is not used."""
        self.publish_avatar("before")
        self.presence(DAN, "bogusver")
        [request] = [s for s in self.host.remote.received if s.tag == "{jabber:client}iq"]
        self.host.receive(f"<iq type='result' id='{request.get('id')}' from='{DAN}' "
                          "to='example.org'><query xmlns='http://jabber.org/protocol/"
                          f"disco#info'><feature var='{AVATAR}+notify'/></query></iq>")
        self.publish_avatar("after")
        self.assertEqual(self.remote_events(), [])

    def test_strangers_not_asked(self):
        """Presence from a remote non-contact (a MUC occupant) is not queried or kept:
        it counts again only with its next presence."""
        self.presence("room@conference.remote.example/nick", "unknownver")
        self.presence("erin@remote.example/r", "unknownver")
        self.assertEqual([s for s in self.host.remote.received
                          if s.tag == "{jabber:client}iq"], [])
        caps.cache.put("unknownver", frozenset({f"{AVATAR}+notify"}))
        self.befriend("alice", "erin@remote.example", "both")
        self.publish_avatar()
        self.assertEqual(self.remote_events("erin@remote.example/r"), [])
