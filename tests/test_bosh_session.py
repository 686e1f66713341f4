"""The BOSH session machinery (jabberapp.transports.bosh), with a fake stream, fake
requests and task.Clock: every rule of XEP-0124 and each terminal condition."""
from lxml import etree
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from jabberapp.interfaces import IFramedTransport
from jabberapp.transports.bosh.body import NS_HTTPBIND, NS_XBOSH
from jabberapp.transports.bosh.requests import BOSHLimits
from jabberapp.transports.bosh.service import BOSHService
from jabberapp.transports.bosh.session import REPORT_AFTER

FEATURES = b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"
RID = 1000


class FakeStream:
    """Records what the session hands it; answers an opening as a stream does."""

    def __init__(self, transport):
        self.transport = transport
        self.opened = []
        self.received = []
        self.closed = False
        self.close_received_count = 0
        self.lost = []
        self.busy = False       # a negotiation step holds the queue

    def open_received(self, attrs):
        self.opened.append(attrs)
        if attrs.get("to") != "example.org":
            self.close(b"<stream:error><host-unknown/></stream:error>")
            return
        self.transport.open({"from": "example.org", "id": "s1", "version": "1.0"})
        self.transport.write(FEATURES)

    def elements_received(self, data):
        self.received.append(data)
        if b"<boom" in data:
            raise RuntimeError("a bug")
        if b"<conflict" in data:
            self.close(b"<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                       b"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                       b"</stream:error>")

    def close_received(self):
        self.close_received_count += 1
        if not self.busy:
            self.close()

    def close(self, error=None):
        if self.closed:
            return
        self.closed = True
        self.transport.close_stream(error)
        self.transport.close()

    def connection_lost(self, reason=None):
        self.lost.append((reason, self.closed))


class FakeChannel:
    """A request waiting for its answer."""

    def __init__(self):
        self.answers = []
        self.session = None

    @property
    def answered(self):
        return bool(self.answers)

    @property
    def code(self):
        return self.answers[0][0]

    @property
    def body(self):
        [(code, data)] = self.answers
        return etree.fromstring(data)

    def respond(self, code, data):
        self.answers.append((code, data))


def body(rid=None, sid=None, payload="", **attrs):
    """A request body as bytes."""
    if rid is not None:
        attrs["rid"] = str(rid)
    if sid is not None:
        attrs["sid"] = sid
    text = " ".join(f"{key.replace('__', ':').replace('_', '')}='{value}'"
                    for key, value in attrs.items())
    return (f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' {text}>"
            f"{payload}</body>").encode()


class Harness(SynchronousTestCase):
    """A BOSHService on a Clock whose streams are FakeStreams."""

    limits = BOSHLimits()

    def setUp(self):
        self.clock = Clock()
        self.streams = []
        self.service = BOSHService(self._open, self.clock, self.limits, max_body=10000)

    def _open(self, transport):
        stream = FakeStream(transport)
        self.streams.append(stream)
        return stream

    def post(self, data, secure=True):
        channel = FakeChannel()
        self.service.request(data, channel, secure=secure, address="192.0.2.1")
        return channel

    def create(self, **attrs):
        """A session created and its creation response read; returns (sid, response)."""
        attrs = {"to": "example.org", "wait": "60", "hold": "1", "ver": "1.6",
                 "xmpp__version": "1.0", "xml__lang": "en", **attrs}
        channel = self.post(body(RID, **attrs))
        self.clock.advance(0)
        response = channel.body
        return response.get("sid"), response

    def send(self, rid, sid, payload="", **attrs):
        return self.post(body(rid, sid, payload, **attrs))

    def session(self, sid):
        return self.service.sessions[sid]


def terminal(channel):
    """(HTTP code, type, condition) of an answered request."""
    response = channel.body
    return channel.code, response.get("type"), response.get("condition")


class CreationTests(Harness):
    """Session creation (XEP-0124 §7, XEP-0206 §5)."""

    def test_session_provides_iframedtransport(self):
        """A session is its stream's IFramedTransport."""
        sid, _ = self.create()
        verifyObject(IFramedTransport, self.session(sid))

    def test_creation_response_attributes_and_features(self):
        """The creation response carries sid, wait, requests, hold, inactivity, polling,
        maxpause, ver, from, secure, xmpp:version, authid, and the stream features."""
        sid, response = self.create()
        self.assertEqual(
            {key: response.get(key) for key in ("wait", "requests", "hold", "inactivity",
                                                "polling", "maxpause", "ver", "from",
                                                "secure", "authid")},
            {"wait": "60", "requests": "2", "hold": "1", "inactivity": "60",
             "polling": "5", "maxpause": "120", "ver": "1.6", "from": "example.org",
             "secure": "true", "authid": "s1"})
        self.assertEqual(response.get(f"{{{NS_XBOSH}}}version"), "1.0")
        self.assertEqual([child.tag for child in response],
                         ["{http://etherx.jabber.org/streams}features"])
        self.assertEqual(self.streams[0].opened,
                         [{"to": "example.org", "xml:lang": "en", "version": "1.0"}])

    def test_sid_is_long_and_random(self):
        """Each sid is 128 random bits, different every time."""
        sids = {self.create()[0] for _ in range(20)}
        self.assertEqual(len(sids), 20)
        self.assertTrue(all(len(sid) >= 22 for sid in sids))

    def test_client_values_are_capped_by_limits(self):
        """wait and hold are the client's, at most the server's maximum; requests is
        hold + 1 at most max_requests."""
        _, response = self.create(wait="3600", hold="5")
        self.assertEqual((response.get("wait"), response.get("hold"),
                          response.get("requests")), ("60", "1", "2"))
        _, response = self.create(wait="10", hold="0")
        self.assertEqual((response.get("wait"), response.get("hold"),
                          response.get("requests")), ("10", "0", "1"))

    def test_ver_is_the_lower_version(self):
        """ver is the lower of the client's and ours (1.11)."""
        _, response = self.create(ver="1.20")
        self.assertEqual(response.get("ver"), "1.11")

    def test_creation_without_rid_is_bad_request(self):
        """A creation request without a rid is HTTP 400, bad-request."""
        channel = self.post(body(to="example.org"))
        self.assertEqual(terminal(channel), (400, "terminate", "bad-request"))
        self.assertEqual(self.service.sessions, {})

    def test_creation_with_malformed_number_is_bad_request(self):
        """A wait that is no number is bad-request."""
        channel = self.post(body(RID, to="example.org", wait="soon"))
        self.assertEqual(terminal(channel), (400, "terminate", "bad-request"))

    def test_unknown_host(self):
        """A 'to' we do not serve ends the session with host-unknown."""
        channel = self.post(body(RID, to="elsewhere.net", ver="1.6"))
        self.assertEqual(terminal(channel), (200, "terminate", "host-unknown"))
        self.assertEqual(self.service.sessions, {})

    def test_malformed_body_is_bad_request(self):
        """A body that is not XML, not a <body/> or holds a comment is HTTP 400."""
        for data in (b"<body", b"<presence/>", f"<body xmlns='{NS_HTTPBIND}'><!-- x -->"
                     f"</body>".encode(), b"\xff\xfe"):
            channel = self.post(data)
            self.assertEqual(terminal(channel), (400, "terminate", "bad-request"))

    def test_unknown_sid_is_item_not_found(self):
        """A sid no session has is item-not-found."""
        self.create()
        channel = self.send(RID + 1, "nosuchsid")
        self.assertEqual(terminal(channel), (200, "terminate", "item-not-found"))


class RequestTests(Harness):
    """Payloads, holding, wait, rid order."""

    def test_payload_goes_to_stream_and_request_is_held(self):
        """A body's content goes to the stream; the request waits for output."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid, "<message xmlns='jabber:client'/>")
        self.assertEqual(self.streams[0].received, [b"<message xmlns='jabber:client'/>"])
        self.clock.advance(1)
        self.assertFalse(channel.answered)

    def test_output_answers_held_request_batched(self):
        """Elements written in one turn go out in one response to the held request."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid)
        session = self.session(sid)
        session.write(b"<message xmlns='jabber:client' id='1'/>")
        session.write(b"<message xmlns='jabber:client' id='2'/>")
        self.assertFalse(channel.answered)
        self.clock.advance(0)
        self.assertEqual([child.get("id") for child in channel.body], ["1", "2"])

    def test_output_without_request_waits_for_next(self):
        """Output with no request held goes in the next request's response."""
        sid, _ = self.create()
        session = self.session(sid)
        session.write(b"<message xmlns='jabber:client' id='1'/>")
        channel = self.send(RID + 1, sid)
        self.clock.advance(0)
        self.assertEqual([child.get("id") for child in channel.body], ["1"])

    def test_wait_expiry_answers_empty(self):
        """A held request is answered empty after 'wait' seconds."""
        sid, _ = self.create(wait="30")
        channel = self.send(RID + 1, sid)
        self.clock.advance(29)
        self.assertFalse(channel.answered)
        self.clock.advance(1)
        self.assertEqual((channel.code, len(channel.body), channel.body.get("type")),
                         (200, 0, None))

    def test_hold_exceeded_answers_oldest(self):
        """With hold=1 a second request answers the first at once."""
        sid, _ = self.create()
        first = self.send(RID + 1, sid)
        second = self.send(RID + 2, sid)
        self.assertTrue(first.answered)
        self.assertFalse(second.answered)

    def test_out_of_order_request_waits_for_gap(self):
        """A rid ahead of a gap is held until the missing request arrives; payloads reach
        the stream in rid order."""
        sid, _ = self.create()
        later = self.send(RID + 2, sid, "<presence xmlns='jabber:client' id='2'/>")
        self.assertEqual(self.streams[0].received, [])
        earlier = self.send(RID + 1, sid, "<presence xmlns='jabber:client' id='1'/>")
        self.assertEqual(self.streams[0].received,
                         [b"<presence xmlns='jabber:client' id='1'/>",
                          b"<presence xmlns='jabber:client' id='2'/>"])
        self.assertTrue(earlier.answered)
        self.assertFalse(later.answered)

    def test_gap_never_filled_ends_session(self):
        """A gap not filled within 'wait' seconds ends the session with item-not-found."""
        sid, _ = self.create(wait="20")
        later = self.send(RID + 2, sid)
        self.clock.advance(20)
        self.assertEqual(terminal(later), (200, "terminate", "item-not-found"))
        self.assertNotIn(sid, self.service.sessions)

    def test_rid_beyond_window_is_item_not_found(self):
        """A rid more than 'requests' ahead ends the session with item-not-found; the
        request held meanwhile gets other-request."""
        sid, _ = self.create()
        held = self.send(RID + 1, sid)
        channel = self.send(RID + 4, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "item-not-found"))
        self.assertEqual(terminal(held), (200, "terminate", "other-request"))
        self.assertNotIn(sid, self.service.sessions)
        self.clock.advance(0)
        self.assertEqual(self.streams[0].lost, [(None, True)])

    def test_replayed_rid_gets_same_response(self):
        """A rid already answered gets the same response again."""
        sid, _ = self.create()
        first = self.send(RID + 1, sid)
        self.session(sid).write(b"<message xmlns='jabber:client' id='m'/>")
        self.clock.advance(0)
        again = self.send(RID + 1, sid)
        self.assertEqual(again.answers, first.answers)
        self.assertIn(sid, self.service.sessions)

    def test_replayed_creation_rid_gets_creation_response(self):
        """The creation request repeated gets the creation response again."""
        channel = self.post(body(RID, to="example.org", ver="1.6"))
        self.clock.advance(0)
        sid = channel.body.get("sid")
        again = self.send(RID, sid)
        self.assertEqual(again.answers, channel.answers)

    def test_rid_behind_buffer_is_item_not_found(self):
        """A rid older than the buffer of responses is item-not-found."""
        sid, _ = self.create()
        for rid in range(RID + 1, RID + 5):
            self.send(rid, sid)
        channel = self.send(RID + 1, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "item-not-found"))

    def test_repeat_of_held_rid_takes_its_place(self):
        """A held request sent again (its connection broke) is answered on the new one."""
        sid, _ = self.create()
        old = self.send(RID + 1, sid)
        new = self.send(RID + 1, sid)
        self.session(sid).write(b"<message xmlns='jabber:client' id='m'/>")
        self.clock.advance(0)
        self.assertEqual([child.get("id") for child in new.body], ["m"])
        self.assertEqual(len(old.body), 0)

    def test_lost_connection_answers_into_the_void(self):
        """A held request whose client left is answered empty, kept for a repeat; output
        waits for the next request."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid)
        self.session(sid).lost(channel)
        self.assertFalse(channel.answered)
        self.session(sid).write(b"<message xmlns='jabber:client' id='m'/>")
        self.clock.advance(0)
        again = self.send(RID + 1, sid)
        self.assertEqual(len(again.body), 0)
        nxt = self.send(RID + 2, sid)
        self.clock.advance(0)
        self.assertEqual([child.get("id") for child in nxt.body], ["m"])

    def test_request_over_plain_http_on_secure_session_refused(self):
        """A session created over HTTPS refuses a plain HTTP request and lives on."""
        sid, _ = self.create()
        channel = self.post(body(RID + 1, sid), secure=False)
        self.assertEqual(channel.answers, [(403, b"")])
        self.assertIn(sid, self.service.sessions)

    def test_address_change_is_fine(self):
        """Requests of one session may come from any address: the sid is the key."""
        sid, _ = self.create()
        channel = FakeChannel()
        self.service.request(body(RID + 1, sid), channel, secure=True, address="203.0.113.5")
        self.clock.advance(0)
        self.assertIn(sid, self.service.sessions)
        self.assertFalse(channel.answered)

    def test_restart(self):
        """xmpp:restart='true' reopens the stream; the response carries the features."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid, to="example.org", xmpp__restart="true")
        self.clock.advance(0)
        self.assertEqual(len(self.streams[0].opened), 2)
        self.assertEqual([child.tag for child in channel.body],
                         ["{http://etherx.jabber.org/streams}features"])

    def test_bad_attribute_is_bad_request(self):
        """A request whose rid is no number ends the session with bad-request."""
        sid, _ = self.create()
        channel = self.post(body(sid=sid, rid="x"))
        self.assertEqual(terminal(channel), (200, "terminate", "bad-request"))


class PolicyTests(Harness):
    """Overactivity, polling and size (XEP-0124 §11, §12)."""

    def test_too_many_simultaneous_requests(self):
        """More unanswered requests than 'requests' is policy-violation for the one too
        many; the others, held or waiting, get other-request."""
        sid, _ = self.create()
        held = self.send(RID + 1, sid)
        ahead = self.send(RID + 3, sid)
        channel = self.send(RID + 2, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "policy-violation"))
        for each in (held, ahead):
            self.assertEqual(terminal(each), (200, "terminate", "other-request"))
        self.assertNotIn(sid, self.service.sessions)
        self.assertTrue(self.streams[0].closed)

    def test_pause_may_be_one_more_request(self):
        """A pause request may be one more than 'requests'."""
        sid, _ = self.create()
        self.send(RID + 1, sid)
        self.send(RID + 3, sid)
        channel = self.send(RID + 2, sid, pause="10")
        self.assertIn(sid, self.service.sessions)
        self.assertEqual(channel.code, 200)

    def test_too_frequent_polling(self):
        """Two empty requests closer than 'polling' while the first got nothing is
        policy-violation."""
        sid, _ = self.create(hold="0", wait="0")
        first = self.send(RID + 1, sid)
        self.clock.advance(0)
        self.assertTrue(first.answered)
        self.clock.advance(1)
        second = self.send(RID + 2, sid)
        self.assertEqual(terminal(second), (200, "terminate", "policy-violation"))

    def test_polling_at_interval_is_fine(self):
        """Empty polls 'polling' seconds apart are fine."""
        sid, _ = self.create(hold="0", wait="0")
        for rid in range(RID + 1, RID + 4):
            channel = self.send(rid, sid)
            self.clock.advance(0)
            self.assertEqual(channel.body.get("type"), None)
            self.clock.advance(5)

    def test_quick_poll_after_payload_is_fine(self):
        """An empty request right after a response that carried payloads is fine."""
        sid, _ = self.create(hold="0", wait="0")
        self.send(RID + 1, sid)
        self.session(sid).write(b"<message xmlns='jabber:client'/>")
        self.clock.advance(0)
        self.send(RID + 2, sid)
        self.clock.advance(0)
        self.assertIn(sid, self.service.sessions)

    def test_oversized_body_terminates_its_session(self):
        """A body larger than the stanza limit ends its session with policy-violation."""
        sid, _ = self.create()
        held = self.send(RID + 1, sid)
        channel = self.send(RID + 2, sid, "<message xmlns='jabber:client'>" + "x" * 10000
                            + "</message>")
        self.assertEqual(terminal(channel), (200, "terminate", "policy-violation"))
        self.assertEqual(terminal(held), (200, "terminate", "other-request"))
        self.assertNotIn(sid, self.service.sessions)

    def test_oversized_body_without_session_is_413(self):
        """A body too large that names no session is HTTP 413."""
        channel = self.post(b"<body xmlns='x'>" + b"x" * 20000 + b"</body>")
        self.assertEqual(channel.answers, [(413, b"")])

    def test_legacy_client_gets_http_codes(self):
        """A client without 'ver' gets HTTP 404 for item-not-found and 403 for
        policy-violation."""
        channel = self.post(body(RID, to="example.org"))
        self.clock.advance(0)
        sid = channel.body.get("sid")
        bad = self.send(RID + 9, sid)
        self.assertEqual(bad.code, 404)
        channel = self.post(body(RID, to="example.org"))
        self.clock.advance(0)
        sid = channel.body.get("sid")
        self.send(RID + 1, sid)
        self.send(RID + 3, sid)
        self.assertEqual(self.send(RID + 2, sid).code, 403)


class InactivityTests(Harness):
    """Inactivity and pause (XEP-0124 §10)."""

    def test_inactivity_drops_session_unclosed(self):
        """No request for 'inactivity' seconds drops the session; its stream is lost
        without a close (its Session may be kept for a resumption)."""
        sid, _ = self.create()
        self.clock.advance(59)
        self.assertIn(sid, self.service.sessions)
        self.clock.advance(1)
        self.assertNotIn(sid, self.service.sessions)
        [(reason, closed)] = self.streams[0].lost
        self.assertFalse(closed)
        channel = self.send(RID + 1, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "item-not-found"))

    def test_held_request_keeps_session(self):
        """While a request is held the inactivity timer does not run."""
        sid, _ = self.create()
        for rid in range(RID + 1, RID + 4):
            self.send(rid, sid)
            self.clock.advance(60)
        self.assertIn(sid, self.service.sessions)

    def test_pause_answers_everything_and_extends_inactivity(self):
        """A pause answers held requests and the pause request at once (no payload in
        the latter) and lets the client be away that long."""
        sid, _ = self.create()
        held = self.send(RID + 1, sid)
        self.session(sid).write(b"<message xmlns='jabber:client' id='m'/>")
        pause = self.send(RID + 2, sid, pause="100")
        self.assertEqual([child.get("id") for child in held.body], ["m"])
        self.assertEqual(len(pause.body), 0)
        self.clock.advance(99)
        self.assertIn(sid, self.service.sessions)
        self.clock.advance(1)
        self.assertNotIn(sid, self.service.sessions)

    def test_pause_bounded_by_maxpause(self):
        """A pause longer than maxpause lasts maxpause."""
        sid, _ = self.create()
        self.send(RID + 1, sid, pause="1000")
        self.clock.advance(120)
        self.assertNotIn(sid, self.service.sessions)

    def test_pause_ends_with_next_request(self):
        """The next request after a pause restores the normal inactivity period."""
        sid, _ = self.create()
        self.send(RID + 1, sid, pause="100")
        channel = self.send(RID + 2, sid)
        self.clock.advance(60)      # answered after wait; then 60 s of inactivity
        self.assertTrue(channel.answered)
        self.clock.advance(59)
        self.assertIn(sid, self.service.sessions)
        self.clock.advance(1)
        self.assertNotIn(sid, self.service.sessions)


class TerminateTests(Harness):
    """The end of a session (XEP-0124 §13, XEP-0206 remote-stream-error)."""

    def test_client_terminate(self):
        """A terminate request's payload reaches the stream, which is closed; the answer
        is type='terminate' and the session is gone."""
        sid, _ = self.create()
        held = self.send(RID + 1, sid)
        channel = self.send(RID + 2, sid, "<presence xmlns='jabber:client' "
                                          "type='unavailable'/>", type="terminate")
        stream = self.streams[0]
        self.assertEqual(stream.received,
                         [b"<presence xmlns='jabber:client' type='unavailable'/>"])
        self.assertTrue(stream.closed)
        self.assertEqual(terminal(channel), (200, "terminate", None))
        self.assertTrue(held.answered)
        self.assertNotIn(sid, self.service.sessions)
        self.clock.advance(0)
        self.assertEqual(stream.lost, [(None, True)])

    def test_client_terminate_while_negotiating(self):
        """A terminate while a negotiation step holds the stream's queue closes it."""
        sid, _ = self.create()
        self.streams[0].busy = True
        channel = self.send(RID + 1, sid, type="terminate")
        self.assertTrue(self.streams[0].closed)
        self.assertEqual(terminal(channel), (200, "terminate", None))

    def test_stream_error_is_remote_stream_error(self):
        """The stream ending with an error answers the held request with
        remote-stream-error carrying the <stream:error/>."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid)
        error = (b"<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                 b"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
        self.streams[0].close(error)
        self.assertEqual(terminal(channel), (200, "terminate", "remote-stream-error"))
        self.assertEqual(channel.body[0].tag, "{http://etherx.jabber.org/streams}error")
        self.assertNotIn(sid, self.service.sessions)

    def test_stream_error_with_no_request_waits_for_next(self):
        """A stream error while no request is held is the answer to the next one."""
        sid, _ = self.create()
        self.streams[0].close(b"<stream:error xmlns:stream='http://etherx.jabber.org/"
                              b"streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-"
                              b"streams'/></stream:error>")
        self.assertIn(sid, self.service.sessions)
        channel = self.send(RID + 1, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "remote-stream-error"))
        self.assertNotIn(sid, self.service.sessions)

    def test_terminal_response_to_bad_request_carries_no_stanzas(self):
        """A terminal condition a request caused (here a rid out of the window, as from
        someone who borrowed the sid) is answered without the session's pending stanzas."""
        sid, _ = self.create()
        self.session(sid).write(b"<message xmlns='jabber:client'><body>secret</body>"
                                b"</message>")
        channel = self.send(RID + 50, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "item-not-found"))
        self.assertNotIn(b"secret", channel.answers[0][1])

    def test_kept_stream_error_only_for_a_rid_in_the_window(self):
        """The stream's last stanzas and error, kept for the next request, go only to a
        request with a rid in the window; any other gets a bare item-not-found."""
        sid, _ = self.create()
        self.session(sid).write(b"<message xmlns='jabber:client'><body>secret</body>"
                                b"</message>")
        self.streams[0].close(b"<stream:error xmlns:stream='http://etherx.jabber.org/"
                              b"streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-"
                              b"streams'/></stream:error>")
        channel = self.send(RID + 50, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "item-not-found"))
        self.assertNotIn(b"secret", channel.answers[0][1])
        self.assertNotIn(sid, self.service.sessions)

    def test_kept_stream_error_goes_to_next_rid(self):
        """The next rid gets the kept stanzas and the stream error."""
        sid, _ = self.create()
        self.session(sid).write(b"<message xmlns='jabber:client'><body>mine</body>"
                                b"</message>")
        self.streams[0].close(b"<stream:error xmlns:stream='http://etherx.jabber.org/"
                              b"streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-"
                              b"streams'/></stream:error>")
        channel = self.send(RID + 1, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "remote-stream-error"))
        self.assertEqual(len(channel.body), 2)

    def test_unclaimed_final_response_expires(self):
        """A terminal response nobody asks for is dropped after the inactivity period."""
        sid, _ = self.create()
        self.streams[0].close(None)
        self.clock.advance(60)
        self.assertNotIn(sid, self.service.sessions)

    def test_shutdown(self):
        """The service's shutdown ends every session with system-shutdown."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid)
        self.service.shutdown()
        self.assertEqual(terminal(channel), (200, "terminate", "system-shutdown"))

    def test_server_close_without_error_is_undefined_condition(self):
        """The server closing the stream without an error (not after the client's
        terminate) answers undefined-condition with what was pending."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid)
        self.session(sid).write(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.streams[0].close(None)
        self.assertEqual(terminal(channel), (200, "terminate", "undefined-condition"))
        self.assertEqual(len(channel.body), 1)
        self.assertNotIn(sid, self.service.sessions)


class OtherRequestTests(Harness):
    """The requests a terminal condition did not come from get other-request (§17.2)."""

    limits = BOSHLimits(max_hold=2, max_requests=3)

    def test_client_terminate_answers_held_requests_other_request(self):
        """A client terminate is answered type='terminate' with the pending stanzas; the
        requests held meanwhile get other-request and no stanzas."""
        sid, _ = self.create(hold="2")
        first, second = self.send(RID + 1, sid), self.send(RID + 2, sid)
        self.session(sid).write(b"<message xmlns='jabber:client' id='last'/>")
        channel = self.send(RID + 3, sid, type="terminate")
        self.assertEqual(terminal(channel), (200, "terminate", None))
        self.assertEqual(channel.body[0].get("id"), "last")
        for other in (first, second):
            self.assertEqual(terminal(other), (200, "terminate", "other-request"))
            self.assertEqual(len(other.body), 0)

    def test_stream_error_goes_to_the_request_that_caused_it(self):
        """A stream error a request's payload caused answers that request with
        remote-stream-error; the other held request gets other-request."""
        sid, _ = self.create(hold="2")
        first = self.send(RID + 1, sid)
        channel = self.send(RID + 2, sid, "<conflict/>")
        self.assertEqual(terminal(channel), (200, "terminate", "remote-stream-error"))
        self.assertEqual(terminal(first), (200, "terminate", "other-request"))
        self.assertEqual(len(first.body), 0)

    def test_no_cause_answers_the_oldest(self):
        """With no request behind the end (shutdown), the oldest held request carries
        the condition and the others get other-request."""
        sid, _ = self.create(hold="2")
        first, second = self.send(RID + 1, sid), self.send(RID + 2, sid)
        self.service.shutdown()
        self.assertEqual(terminal(first), (200, "terminate", "system-shutdown"))
        self.assertEqual(terminal(second), (200, "terminate", "other-request"))

    def test_waiting_request_gets_other_request(self):
        """A request waiting ahead of a gap gets other-request too."""
        sid, _ = self.create(hold="2")
        ahead = self.send(RID + 3, sid)
        channel = self.send(RID + 1, sid, type="terminate")
        self.assertEqual(terminal(channel), (200, "terminate", None))
        self.assertEqual(terminal(ahead), (200, "terminate", "other-request"))


class InternalErrorTests(Harness):
    """An unexpected exception ends its session with internal-server-error."""

    limits = BOSHLimits(max_hold=2, max_requests=3)

    def test_exception_while_handling_a_request(self):
        """An exception from the stream is logged once and answers the request with
        internal-server-error; the held request gets other-request; the session ends."""
        sid, _ = self.create(hold="2")
        held = self.send(RID + 1, sid)
        channel = self.send(RID + 2, sid, "<boom/>")
        self.assertEqual(terminal(channel), (200, "terminate", "internal-server-error"))
        self.assertEqual(terminal(held), (200, "terminate", "other-request"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertNotIn(sid, self.service.sessions)
        self.assertTrue(self.streams[0].closed)

    def test_exception_while_creating_a_session(self):
        """An exception while the stream opens answers the creation request with
        internal-server-error and keeps no session."""
        def broken(transport):
            stream = FakeStream(transport)
            stream.open_received = lambda attrs: 1 / 0
            return stream
        self.service.open_stream = broken
        channel = self.post(body(RID, to="example.org", ver="1.6"))
        self.assertEqual(terminal(channel), (200, "terminate", "internal-server-error"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.service.sessions, {})

    def test_exception_while_closing_too(self):
        """When closing the stream fails as well, the request is still answered with
        internal-server-error and the stream hears of a lost connection."""
        sid, _ = self.create()
        stream = self.streams[0]
        stream.close = lambda error=None: 1 / 0
        channel = self.send(RID + 1, sid, "<boom/>")
        self.assertEqual(terminal(channel), (200, "terminate", "internal-server-error"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertNotIn(sid, self.service.sessions)
        self.clock.advance(0)
        self.assertEqual(len(stream.lost), 1)


class SeeOtherURITests(Harness):
    """[bosh] see_other_uri redirects every session creation request (§17.2)."""

    def test_creation_is_redirected(self):
        """A creation request is answered see-other-uri with the <uri/>; no session or
        stream is made."""
        self.service.see_other_uri = "https://other.example.org/http-bind?a=1&b=2"
        channel = self.post(body(RID, to="example.org", ver="1.6"))
        self.assertEqual(terminal(channel), (200, "terminate", "see-other-uri"))
        [uri] = channel.body
        self.assertEqual(uri.tag, f"{{{NS_HTTPBIND}}}uri")
        self.assertEqual(uri.text, "https://other.example.org/http-bind?a=1&b=2")
        self.assertEqual((self.service.sessions, self.streams), ({}, []))


class AckTests(Harness):
    """Acknowledgements (XEP-0124 §9)."""

    def test_creation_response_acks_rid(self):
        """A client sending ack='1' gets ack set to the creation rid."""
        _, response = self.create(ack="1")
        self.assertEqual(response.get("ack"), str(RID))

    def test_no_acks_without_client_ack(self):
        """Without ack='1' no response carries 'ack'."""
        _, response = self.create()
        self.assertIsNone(response.get("ack"))

    def test_response_acks_highest_rid(self):
        """A response to a rid lower than the highest received acknowledges the latter."""
        sid, _ = self.create(ack="1")
        first = self.send(RID + 1, sid)
        second = self.send(RID + 2, sid)
        self.assertEqual(first.body.get("ack"), str(RID + 2))
        self.session(sid).write(b"<message xmlns='jabber:client'/>")
        self.clock.advance(0)
        self.assertIsNone(second.body.get("ack"))

    def test_report_of_missed_response(self):
        """A request acknowledging less than a response sent long ago is answered at
        once with report and time; that response can then be asked for again."""
        sid, _ = self.create(ack="1")
        first = self.send(RID + 1, sid, ack=str(RID))
        self.session(sid).write(b"<message xmlns='jabber:client' id='m'/>")
        self.clock.advance(0)
        self.clock.advance(REPORT_AFTER + 1)
        self.assertTrue(first.answered)
        channel = self.send(RID + 2, sid, ack=str(RID))
        response = channel.body
        self.assertEqual((response.get("report"), response.get("time")),
                         (str(RID + 1), str(int((REPORT_AFTER + 1) * 1000))))
        again = self.send(RID + 1, sid)
        self.assertEqual(again.answers, first.answers)

    def test_acknowledged_responses_are_forgotten(self):
        """Responses the client acknowledged are no longer kept."""
        sid, _ = self.create(ack="1")
        self.send(RID + 1, sid, ack=str(RID))
        self.session(sid).write(b"<message xmlns='jabber:client'/>")
        self.clock.advance(0)
        self.assertIn(RID + 1, self.session(sid).responses)
        self.send(RID + 2, sid, ack=str(RID + 1))
        self.assertNotIn(RID + 1, self.session(sid).responses)


class PendingLimitTests(Harness):
    """Output waiting for a request is bounded."""

    limits = BOSHLimits(max_pending=200)

    def test_output_piling_up_without_requests(self):
        """Output past max_pending while no request is held ends the session with
        policy-violation, answered to the next request."""
        sid, _ = self.create()
        session = self.session(sid)
        session.write(b"<message xmlns='jabber:client'>" + b"x" * 100 + b"</message>")
        self.assertIsNone(session.final)
        session.write(b"<message xmlns='jabber:client'>" + b"x" * 100 + b"</message>")
        self.assertTrue(self.streams[0].closed)
        channel = self.send(RID + 1, sid)
        self.assertEqual(terminal(channel), (200, "terminate", "policy-violation"))

    def test_output_to_held_request_is_not_limited(self):
        """Output for a held request goes out whatever its size."""
        sid, _ = self.create()
        channel = self.send(RID + 1, sid)
        session = self.session(sid)
        for _ in range(3):
            session.write(b"<message xmlns='jabber:client'>" + b"x" * 100 + b"</message>")
        self.clock.advance(0)
        self.assertEqual(len(channel.body), 3)
