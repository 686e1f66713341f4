"""RFC 6121 §3 and §4 through the server: subscriptions between users, presence, probes."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import dispatch
from jabberapp.jid import JID
from tests.extensions.roster.helpers import World, presences, pushes

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"


class PresenceTestCase(SynchronousTestCase):
    def setUp(self):
        self.world = World()
        self.host = self.world.host

    def mutual(self, user, contact):
        """Make C{user} and C{contact} (local users) subscribed both ways."""
        self.world.set_state(user, f"{contact}@example.org", "Both")
        self.world.set_state(contact, f"{user}@example.org", "Both")


class SubscriptionFlowTests(PresenceTestCase):
    def test_mutual_subscription_between_local_users(self):
        """alice and bob subscribe to each other and end with 'both' and each other's
        presence."""
        alice = self.world.login(f"{ALICE}/a")
        bob = self.world.login(f"{BOB}/b")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}' type='subscribe'>"
                        "<status>hi bob</status></presence>")
        [request] = presences(bob.sent, "subscribe")
        self.assertEqual((request.get("from"), request.findtext("{jabber:client}status")),
                         (ALICE, "hi bob"))
        self.assertEqual(pushes(alice)[-1].get("ask"), "subscribe")
        self.world.send(f"<presence from='{BOB}/b' to='{ALICE}' type='subscribed'/>")
        self.assertEqual(presences(alice.sent, "subscribed", sender=BOB)[0].get("to"), ALICE)
        # §3.1.5: bob's current presence follows his approval.
        self.assertTrue(presences(alice.sent, None, sender=f"{BOB}/b"))
        self.world.send(f"<presence from='{BOB}/b' to='{ALICE}' type='subscribe'/>")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}' type='subscribed'/>")
        self.assertEqual(self.world.state("alice", BOB).name, "Both")
        self.assertEqual(self.world.state("bob", ALICE).name, "Both")
        self.assertTrue(presences(bob.sent, None, sender=f"{ALICE}/a"))
        self.assertEqual([p.get("subscription") for p in pushes(bob)][-1], "both")

    def test_full_jid_addressee_is_made_bare(self):
        """A subscription request to a full JID is stored and routed for the bare JID."""
        self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='romeo@remote.example/r' "
                        "type='subscribe'/>")
        [routed] = self.host.remote.received
        self.assertEqual((routed.get("from"), routed.get("to")), (ALICE, "romeo@remote.example"))
        self.assertIn(JID.parse("romeo@remote.example"), self.world.roster("alice").items)

    def test_inbound_to_full_jid_is_handled_as_bare(self):
        """A request sent to a full JID is a request to the account (§8.5.3)."""
        alice = self.world.login(f"{ALICE}/a")
        other = self.world.login(f"{ALICE}/b")
        self.world.send(f"<presence from='romeo@remote.example' to='{ALICE}/a' "
                        "type='subscribe'/>")
        self.assertEqual(len(presences(alice.sent, "subscribe")), 1)
        self.assertEqual(len(presences(other.sent, "subscribe")), 1)
        self.assertTrue(self.world.state("alice", "romeo@remote.example").pending_in)

    def test_subscription_to_self_is_ignored(self):
        """A subscription request to one's own JID changes and sends nothing."""
        alice = self.world.login(f"{ALICE}/a")
        self.host.sent.clear()
        self.world.send(f"<presence from='{ALICE}/a' to='{ALICE}' type='subscribe'/>")
        self.assertEqual((self.host.sent, alice.sent), ([], []))
        self.assertEqual(self.world.roster("alice").items, {})

    def test_request_to_missing_local_user_is_ignored(self):
        """Subscription stanzas to a user that does not exist are dropped silently."""
        self.world.login(f"{ALICE}/a")
        self.host.sent.clear()
        for kind in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            self.world.send(f"<presence from='{ALICE}/a' to='ghost@example.org' "
                            f"type='{kind}'/>")
        self.assertEqual([s for s in self.host.sent if s.get("to") != f"{ALICE}/a"], [])
        self.assertEqual(presences(self.host.sent, "error"), [])
        self.assertEqual(self.world.roster("ghost").pending, {})
        stored = self.successResultOf(self.host.storage.keyvalue("roster").keys(
            "example.org", "ghost"))
        self.assertEqual(stored, [])

    def test_request_to_other_domain_goes_to_router(self):
        """Subscription stanzas for other domains are handed to the router."""
        self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='romeo@remote.example' "
                        "type='subscribe'/>")
        self.assertEqual([s.get("type") for s in self.host.remote.received], ["subscribe"])

    def test_unsubscribe_flow(self):
        """alice unsubscribes from bob: alice has 'from', bob 'to', and bob is told."""
        alice = self.world.login(f"{ALICE}/a")
        bob = self.world.login(f"{BOB}/b")
        self.mutual("alice", "bob")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}' type='unsubscribe'/>")
        self.assertEqual(self.world.state("alice", BOB).name, "From")
        self.assertEqual(self.world.state("bob", ALICE).name, "To")
        self.assertTrue(presences(bob.sent, "unsubscribe", sender=ALICE))
        # §3.3.3: alice no longer receives bob's presence: she sees him go unavailable.
        self.assertTrue(presences(alice.sent, "unavailable", sender=f"{BOB}/b"))

    def test_cancellation_flow(self):
        """bob cancels alice's subscription: unavailable first, then 'unsubscribed'."""
        alice = self.world.login(f"{ALICE}/a")
        self.world.login(f"{BOB}/b")
        self.mutual("alice", "bob")
        alice.sent.clear()
        self.world.send(f"<presence from='{BOB}/b' to='{ALICE}' type='unsubscribed'/>")
        kinds = [(p.get("type"), p.get("from")) for p in presences(alice.sent)]
        self.assertEqual(kinds, [("unavailable", f"{BOB}/b"), ("unsubscribed", BOB)])
        self.assertEqual(self.world.state("alice", BOB).name, "From")
        self.assertEqual(self.world.state("bob", ALICE).name, "To")

    def test_pre_approval(self):
        """bob pre-approves alice; her later request is approved without asking him."""
        self.world.login(f"{ALICE}/a")
        bob = self.world.login(f"{BOB}/b")
        self.world.send(f"<presence from='{BOB}/b' to='{ALICE}' type='subscribed'/>")
        self.assertEqual(pushes(bob)[-1].get("approved"), "true")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}' type='subscribe'/>")
        self.assertEqual(presences(bob.sent, "subscribe"), [])
        self.assertEqual(self.world.state("alice", BOB).name, "To")
        self.assertEqual(self.world.state("bob", ALICE).name, "From")


class OfflineRequestTests(PresenceTestCase):
    def test_request_to_offline_user_is_delivered_at_login(self):
        """A request to an offline user is stored and delivered at their next login, and
        again at every login until answered."""
        self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='{BOB}' type='subscribe'>"
                        "<status>remember me</status></presence>")
        self.assertIn(JID.parse(ALICE), self.world.roster("bob").pending)
        for attempt in range(2):
            bob = self.world.login(f"{BOB}/b{attempt}", presence=False)
            self.world.send(f"<presence from='{BOB}/b{attempt}'/>")
            [request] = presences(bob.sent, "subscribe")
            self.assertEqual((request.get("from"), request.findtext("{jabber:client}status")),
                             (ALICE, "remember me"))
            bob.close()
        bob = self.world.login(f"{BOB}/c", presence=False)
        self.world.send(f"<presence from='{BOB}/c' to='{ALICE}' type='subscribed'/>")
        self.world.send(f"<presence from='{BOB}/c'/>")
        self.assertEqual(presences(bob.sent, "subscribe"), [])

    def test_request_survives_restart(self):
        """A stored request is still delivered by a new server over the same storage."""
        self.world.send("<presence from='romeo@remote.example' to='bob@example.org' "
                        "type='subscribe'/>")
        again = World(storage=self.host.storage)
        bob = again.login(f"{BOB}/b", presence=False)
        again.send(f"<presence from='{BOB}/b'/>")
        self.assertEqual(len(presences(bob.sent, "subscribe")), 1)

    def test_stored_request_from_a_blocked_contact_is_not_shown(self):
        """A stored request from a contact the user has since blocked is not redelivered."""
        from jabberapp.extensions.blocking import blocking
        from jabberapp.extensions.disco import service_discovery
        self.host.install(service_discovery)
        self.host.install(blocking)
        self.world.send("<presence from='romeo@remote.example' to='bob@example.org' "
                        "type='subscribe'/>")
        bob = self.world.login(f"{BOB}/b", presence=False)
        self.world.send(f"<iq type='set' id='blk' from='{BOB}/b'><block xmlns='urn:xmpp:blocking'>"
                        "<item jid='romeo@remote.example'/></block></iq>")
        self.world.send(f"<presence from='{BOB}/b'/>")
        self.assertEqual(presences(bob.sent, "subscribe"), [])

    def test_unanswered_own_request_is_sent_again(self):
        """A user's pending outbound request is sent again when they log in."""
        self.world.set_state("alice", "romeo@remote.example", "None + Pending Out")
        self.world.login(f"{ALICE}/a")
        self.assertEqual([(s.get("type"), s.get("from")) for s in self.host.remote.received],
                         [("subscribe", ALICE)])


class BroadcastTests(PresenceTestCase):
    def setUp(self):
        super().setUp()
        self.world.set_state("alice", "from@remote.example", "From")
        self.world.set_state("alice", "both@remote.example", "Both")
        self.world.set_state("alice", "to@remote.example", "To")
        self.world.set_state("alice", "none@remote.example", "None + Pending Out")

    def remote(self, type_="any"):
        return sorted((s.get("to"), s.get("type")) for s in
                      presences(self.host.remote.received, type_))

    def test_initial_presence_broadcast_and_probes(self):
        """Initial presence goes to from/both contacts; probes from the bare JID go to
        to/both contacts."""
        self.world.login(f"{ALICE}/a")
        self.assertEqual(self.remote(None), [("both@remote.example", None),
                                             ("from@remote.example", None)])
        probes = presences(self.host.remote.received, "probe")
        self.assertEqual(sorted(p.get("to") for p in probes),
                         ["both@remote.example", "to@remote.example"])
        self.assertEqual({p.get("from") for p in probes}, {ALICE})

    def test_subsequent_presence(self):
        """A later presence change is broadcast with its payload, without new probes."""
        self.world.login(f"{ALICE}/a")
        self.host.remote.received.clear()
        self.world.send(f"<presence from='{ALICE}/a'><show>dnd</show></presence>")
        sent = presences(self.host.remote.received)
        self.assertEqual(sorted(p.get("to") for p in sent),
                         ["both@remote.example", "from@remote.example"])
        self.assertEqual({p.findtext("{jabber:client}show") for p in sent}, {"dnd"})
        self.assertEqual({p.get("from") for p in sent}, {f"{ALICE}/a"})

    def test_logoff_is_broadcast(self):
        """Unavailable presence from the client is broadcast to from/both contacts."""
        self.world.login(f"{ALICE}/a")
        self.host.remote.received.clear()
        self.world.send(f"<presence from='{ALICE}/a' type='unavailable'/>")
        self.assertEqual(self.remote(), [("both@remote.example", "unavailable"),
                                         ("from@remote.example", "unavailable")])

    def test_abrupt_disconnect_is_broadcast(self):
        """A session that ends without unavailable presence is broadcast unavailable."""
        session = self.world.login(f"{ALICE}/a")
        self.host.remote.received.clear()
        session.close()
        self.assertEqual(self.remote(), [("both@remote.example", "unavailable"),
                                         ("from@remote.example", "unavailable")])

    def test_outbound_filter_applies(self):
        """Broadcasts go through FILTER_OUTBOUND, so blocking can drop them."""
        def block(stanza, origin):
            if stanza.get("to") == "both@remote.example":
                return dispatch.HANDLED
        self.host.hook(dispatch.FILTER_OUTBOUND, block)
        self.world.login(f"{ALICE}/a")
        self.assertEqual(self.remote(None), [("from@remote.example", None)])


class ProbeTests(PresenceTestCase):
    def setUp(self):
        super().setUp()
        self.world.set_state("alice", "friend@remote.example", "From")

    def probe(self, sender, to=ALICE):
        self.host.remote.received.clear()
        self.world.send(f"<presence from='{sender}' to='{to}' type='probe'/>")
        return presences(self.host.remote.received)

    def test_answer_with_each_available_resource(self):
        """A subscribed prober gets the last presence of every available resource."""
        self.world.login(f"{ALICE}/a")
        self.world.login(f"{ALICE}/b", priority=5)
        self.world.send(f"<presence from='{ALICE}/a'><show>away</show></presence>")
        answers = self.probe("friend@remote.example")
        self.assertEqual(sorted((p.get("from"), p.findtext("{jabber:client}show"))
                                for p in answers),
                         [(f"{ALICE}/a", "away"), (f"{ALICE}/b", None)])
        self.assertEqual({p.get("to") for p in answers}, {"friend@remote.example"})
        self.assertEqual([p.findtext("{jabber:client}priority") for p in answers
                          if p.get("from") == f"{ALICE}/b"], ["5"])

    def test_probe_to_full_jid(self):
        """A probe to a full JID is answered for the account."""
        self.world.login(f"{ALICE}/a")
        self.assertEqual(len(self.probe("friend@remote.example", f"{ALICE}/zzz")), 1)

    def test_answer_when_offline(self):
        """A subscribed prober of a user with no available resource gets unavailable."""
        self.world.login(f"{ALICE}/a", presence=False)
        [answer] = self.probe("friend@remote.example/r")
        self.assertEqual((answer.get("type"), answer.get("from"), answer.get("to")),
                         ("unavailable", ALICE, "friend@remote.example/r"))

    def test_unsubscribed_prober(self):
        """Someone not subscribed gets 'unsubscribed' and no presence (§4.3.2)."""
        self.world.login(f"{ALICE}/a")
        self.world.set_state("alice", "half@remote.example", "To + Pending In")
        for prober in ("stranger@remote.example", "half@remote.example"):
            [answer] = self.probe(prober)
            self.assertEqual((answer.get("type"), answer.get("from")), ("unsubscribed", ALICE))

    def test_missing_user(self):
        """A probe for a user that does not exist gets the same 'unsubscribed'."""
        [answer] = self.probe("friend@remote.example", "ghost@example.org")
        self.assertEqual(answer.get("type"), "unsubscribed")

    def test_local_probe_at_login(self):
        """bob's login probes alice; alice's resources answer to bob's resources."""
        alice = self.world.login(f"{ALICE}/a")
        self.mutual("alice", "bob")
        self.world.send(f"<presence from='{ALICE}/a'><status>here</status></presence>")
        bob = self.world.login(f"{BOB}/b", presence=False)
        self.world.send(f"<presence from='{BOB}/b'/>")
        [seen] = presences(bob.sent, None, sender=f"{ALICE}/a")
        self.assertEqual(seen.findtext("{jabber:client}status"), "here")
        self.assertTrue(presences(alice.sent, None, sender=f"{BOB}/b"))


class DirectedPresenceTests(PresenceTestCase):
    def test_unavailable_on_logoff(self):
        """A JID that got directed presence gets unavailable when the session logs off."""
        self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='room@muc.remote.example/alice'/>")
        self.host.remote.received.clear()
        self.world.send(f"<presence from='{ALICE}/a' type='unavailable'/>")
        self.assertEqual([(p.get("to"), p.get("type")) for p in presences(
            self.host.remote.received)], [("room@muc.remote.example/alice", "unavailable")])

    def test_unavailable_on_disconnect(self):
        """Directed presence recipients get unavailable when the connection drops."""
        session = self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='carol@example.org'/>")
        carol = self.world.login(f"{CAROL}/c")
        session.close()
        self.assertEqual([p.get("type") for p in presences(carol.sent, sender=f"{ALICE}/a")],
                         ["unavailable"])

    def test_no_duplicate_for_subscribed_contact(self):
        """A from/both contact that also got directed presence gets one unavailable."""
        self.world.set_state("alice", "friend@remote.example", "Both")
        self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='friend@remote.example/x'/>")
        self.host.remote.received.clear()
        self.world.send(f"<presence from='{ALICE}/a' type='unavailable'/>")
        self.assertEqual(len(presences(self.host.remote.received, "unavailable")), 1)

    def test_directed_unavailable_forgets(self):
        """Directed unavailable presence removes the JID from the list."""
        self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='x@remote.example'/>")
        self.world.send(f"<presence from='{ALICE}/a' to='x@remote.example' type='unavailable'/>")
        self.host.remote.received.clear()
        self.world.send(f"<presence from='{ALICE}/a' type='unavailable'/>")
        self.assertEqual(self.host.remote.received, [])

    def test_session_without_initial_presence(self):
        """A session that only sent directed presence still says unavailable when it ends."""
        session = self.world.login(f"{ALICE}/a", presence=False)
        self.world.send(f"<presence from='{ALICE}/a' to='x@remote.example'/>")
        self.host.remote.received.clear()
        session.close()
        self.assertEqual([(p.get("to"), p.get("type")) for p in presences(
            self.host.remote.received)], [("x@remote.example", "unavailable")])

    def test_not_sent_to_updates(self):
        """Later broadcast presence is not sent to directed presence recipients (§4.6)."""
        self.world.login(f"{ALICE}/a")
        self.world.send(f"<presence from='{ALICE}/a' to='x@remote.example'/>")
        self.host.remote.received.clear()
        self.world.send(f"<presence from='{ALICE}/a'><show>away</show></presence>")
        self.assertEqual(self.host.remote.received, [])


class CoreDeliveryTests(PresenceTestCase):
    def test_own_resources_see_each_other(self):
        """A user's available resources see each other's presence."""
        first = self.world.login(f"{ALICE}/a")
        second = self.world.login(f"{ALICE}/b", presence=False)
        self.world.send(f"<presence from='{ALICE}/b'/>")
        self.assertTrue(presences(first.sent, None, sender=f"{ALICE}/b"))
        [seen] = presences(second.sent, None, sender=f"{ALICE}/a")
        self.assertEqual(seen.get("to"), f"{ALICE}/b")

    def test_presence_to_bare_jid_reaches_available_resources(self):
        """Presence from anyone to a bare JID goes to every available resource (§8.5.2)."""
        first = self.world.login(f"{ALICE}/a")
        second = self.world.login(f"{ALICE}/b")
        quiet = self.world.login(f"{ALICE}/c", presence=False)
        self.world.send(f"<presence from='stranger@remote.example/x' to='{ALICE}'/>")
        for session, expected in ((first, 1), (second, 1), (quiet, 0)):
            self.assertEqual(len(presences(session.sent, None,
                                           sender="stranger@remote.example/x")), expected)
