"""
XEP-0045 §7.3 private IQs: an IQ get or set to an occupant JID is relayed to the
occupant's real JID (vCard requests to its bare JID, which its server answers) from the
sender's occupant JID under a fresh id, and the answer is relayed back under the sender's
id; remote-server-timeout after RELAY_TIMEOUT seconds without one. A joined occupant's
self-ping (XEP-0410) is answered here without relaying.

Every function takes the MUCService (service.py) as C{service}; the pending requests are
its C{relayed} dict (relay id -> L{RelayedIQ}).
"""
import copy
import secrets
from dataclasses import dataclass

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc.names import PING, VCARD
from jabberapp.jid import JID

RELAY_TIMEOUT = 60       # seconds a relayed IQ waits for its answer
MAX_RELAYED = 10000      # IQs relayed to occupants and not answered yet, service-wide


@dataclass(frozen=True)
class RelayedIQ:
    """An IQ relayed to an occupant: where its answer goes and who must send it."""

    room: str
    request: object      # the IQ as the requester sent it (its real JID and its id)
    responder: JID       # the JID the request went to
    nick: str            # the nick it was addressed to
    timer: object        # the IDelayedCall that forgets it


def request(service, iq, room, sender, nick):
    """An IQ get or set to occupant C{nick}: a self-ping is answered, anything else
    relayed under a fresh id that maps the answer back to the sender and its id."""
    requester = room.by_jid.get(sender)
    if requester is None:
        raise StanzaError("not-acceptable", "You are not an occupant of this room")
    children = [c for c in iq if isinstance(c.tag, str)]
    if len(children) != 1:
        raise StanzaError("bad-request", "An IQ get or set has exactly one child element")
    target = room.occupants.get(nick)
    if target is None:
        raise StanzaError("item-not-found", "No occupant has that nick")
    query = children[0]
    if target is requester and query.tag == PING:
        service.host.send(st.reply(iq))
        return
    if len(service.relayed) >= MAX_RELAYED:
        raise StanzaError("resource-constraint", "Too many requests are pending",
                          type="wait")
    destination = target.jid
    if query.tag == VCARD and iq.get("type") == "get":
        # vCards belong to accounts: the occupant's server answers for the bare JID.
        destination = target.jid.bare()
    relay_id = "muc-" + secrets.token_hex(8)
    out = copy.deepcopy(iq)
    out.set("id", relay_id)
    out.set("from", f"{room.jid}/{requester.nick}")
    out.set("to", str(destination))
    timer = service.host.call_later(RELAY_TIMEOUT, expired, service, relay_id)
    service.relayed[relay_id] = RelayedIQ(room.name, iq, destination, target.nick, timer)
    service.host.send(out)


def answer(service, iq, room, sender):
    """The answer to a relayed IQ goes back to the requester under its own id, from
    the answering occupant's JID; anything else of type result or error is dropped."""
    pending = service.relayed.get(iq.get("id"))
    if pending is None or pending.room != room.name or pending.responder != sender:
        return
    del service.relayed[iq.get("id")]
    if pending.timer.active():
        pending.timer.cancel()
    answerer = room.by_jid.get(sender)
    nick = answerer.nick if answerer is not None else pending.nick
    out = copy.deepcopy(iq)
    if pending.request.get("id") is None:
        del out.attrib["id"]
    else:
        out.set("id", pending.request.get("id"))
    out.set("from", f"{room.jid}/{nick}")
    out.set("to", pending.request.get("from"))
    service.host.send(out)


def expired(service, relay_id):
    """No answer came in time: the requester gets remote-server-timeout."""
    pending = service.relayed.pop(relay_id, None)
    if pending is not None:
        service.bounce(pending.request, StanzaError("remote-server-timeout"))
