"""
What later extensions build on the core's stream API: a toy stream management (enable after
bind, queue in the outbound pipeline, keep a dropped session, resume it on a new connection
before binding), written only against IHost, IStreamFeature, IClientStream and
IClientSession.
"""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import dispatch
from jabberapp.errors import StreamError
from jabberapp.xml import element
from tests.c2s_bytes import World

NS_SM = "urn:test:toy-sm"


class ToyStreamManagement:
    """Enable, queue, keep, resume: the shape of XEP-0198 without acknowledgements."""

    name = "toy-sm"
    depends = ()

    def __init__(self):
        self.resumable = {}    # id -> session

    def install(self, host):
        host.add_stream_feature(self)
        host.add_outbound_stage(self.stage, priority=-100)   # nearest the wire
        host.hook(dispatch.SESSION_DETACHED, self.detached)
        host.hook(dispatch.SESSION_CLOSED, self.closed)

    # IStreamFeature
    namespace = NS_SM

    def advertise(self, stream):
        return element(NS_SM, "sm") if stream.username is not None else None

    def handle(self, stream, el):
        name = el.tag.rpartition("}")[2]
        if name == "enable" and stream.session is not None:
            session = stream.session
            session.state[self.name] = {"queue": []}
            self.resumable[str(session.jid)] = session
            stream.send(element(NS_SM, "enabled", id=str(session.jid)))
            return None
        if name == "resume" and stream.username is not None and stream.session is None:
            session = self.resumable.get(el.get("previd"))
            if session is None or session.jid.local != stream.username:
                stream.send(element(NS_SM, "failed"))
                return None
            stream.adopt(session)
            stream.send(element(NS_SM, "resumed"))
            for stanza in session.state[self.name]["queue"]:
                session.write(stanza)
            return None
        raise StreamError("unsupported-stanza-type")

    # the outbound stage and the session hooks
    def stage(self, session, stanza):
        state = session.state.get(self.name)
        if state is not None:
            state["queue"].append(stanza)      # unacknowledged (no <a/> in the toy)
        return stanza

    def detached(self, session):
        return dispatch.HANDLED if self.name in session.state else None

    def closed(self, session):
        self.resumable.pop(str(session.jid), None)


class ToyStreamManagementTests(SynchronousTestCase):
    """The toy resumes a session on a new connection with everything it missed."""

    def setUp(self):
        self.world = World()
        self.sm = ToyStreamManagement()
        self.world.host.install(self.sm)

    def message(self, id):
        self.world.router.route(element("jabber:client", "message", id=id,
                                        to="alice@example.org/r", from_="bob@example.org/b"))

    def test_resume_after_a_drop(self):
        """A dropped session with the feature enabled stays bound; the stanzas sent
        meanwhile are written nowhere; a new connection that authenticates and resumes
        gets the same session (JID, presence, registry entry) and every queued stanza."""
        old = self.world.login("alice", "r")
        old.feed(b"<presence><priority>3</priority></presence>"
                 + f"<enable xmlns='{NS_SM}'/>".encode())
        self.assertIn(b"<enabled", old.take())
        session = old.stream.session
        self.message("before")
        self.assertIn(b"id=\"before\"", old.take())
        old.drop()
        self.assertIsNone(session.stream)
        self.message("meanwhile")
        self.assertEqual(old.take(), b"")
        new = self.world.secure()
        self.assertIn(f"<sm xmlns=\"{NS_SM}\"/>".encode(), self.world.scram(new))
        new.feed(f"<resume xmlns='{NS_SM}' previd='alice@example.org/r'/>".encode())
        out = new.take()
        self.assertIn(b"<resumed", out)
        self.assertLess(out.index(b"id=\"before\""), out.index(b"id=\"meanwhile\""))
        self.assertIs(new.stream.session, session)
        self.assertEqual((str(session.jid), session.available, session.priority),
                         ("alice@example.org/r", True, 3))
        self.assertIs(self.world.host.sessions.get(session.jid), session)
        self.message("after")
        self.assertIn(b"id=\"after\"", new.take())

    def test_not_enabled_is_not_kept(self):
        """Without <enable/>, a drop ends the session as before."""
        transport = self.world.login("alice", "r")
        session = transport.stream.session
        transport.drop()
        self.assertTrue(session.ended)
        self.assertIsNone(self.world.host.sessions.get(session.jid))
