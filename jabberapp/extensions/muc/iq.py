"""
IQs to the MUC service domain and to its rooms: each payload goes to its handler through
a table keyed by (IQ type, payload element), and the handler's answer (an element, None,
or a Deferred for changes written through to storage) becomes the result or the error.
IQs to an occupant JID are relayed (relay.py).

Room handlers are called as handler(service, room, sender, type, payload), service
handlers as handler(service, sender, payload); both return the result payload or None,
or raise StanzaError or a domain error (stanza_errors.py).
"""
from twisted.internet import defer

from jabberapp import stanza as st
from jabberapp.errors import StanzaError
from jabberapp.extensions.muc import admin, disco, owner, register, relay
from jabberapp.extensions.muc.names import (
    ADMIN_QUERY, DISCO_INFO_QUERY, DISCO_ITEMS_QUERY, OWNER_QUERY, PING, REGISTER_QUERY)
from jabberapp.extensions.muc.stanza_errors import stanza_error


def ping_service(service, sender, payload):
    """XEP-0199 ping of the service domain: answered."""
    return None


def ping_room(service, room, sender, type_, payload):
    """XEP-0199 ping of a room JID: answered for its occupants."""
    if room.by_jid.get(sender) is None:
        raise StanzaError("not-acceptable", "You are not an occupant of this room")
    return None


SERVICE_QUERIES = {
    ("get", DISCO_INFO_QUERY): disco.service_info,
    ("get", DISCO_ITEMS_QUERY): disco.service_items,
    ("get", PING): ping_service,
}

ROOM_QUERIES = {
    ("get", DISCO_INFO_QUERY): disco.room_info,
    ("get", DISCO_ITEMS_QUERY): disco.room_items,
    ("get", PING): ping_room,
    ("get", OWNER_QUERY): owner.query,
    ("set", OWNER_QUERY): owner.query,
    ("get", ADMIN_QUERY): admin.query,
    ("set", ADMIN_QUERY): admin.query,
    ("get", REGISTER_QUERY): register.query,
    ("set", REGISTER_QUERY): register.query,
}


def to_service(service, iq, sender):
    """An IQ to the service domain itself."""
    payload = _payload(iq)
    if payload is None:
        return
    handler = SERVICE_QUERIES.get((iq.get("type"), payload.tag))
    if handler is None:
        raise StanzaError("service-unavailable")
    _answer(service, iq, handler(service, sender, payload))


def receive(service, iq, sender, to, room):
    """An IQ to a room JID or an occupant JID (C{room} is None when none exists)."""
    if room is None:
        if iq.get("type") in ("get", "set"):
            raise StanzaError("item-not-found", "No such room")
        return
    if to.resource is not None:
        if iq.get("type") in ("result", "error"):
            relay.answer(service, iq, room, sender)
        else:
            relay.request(service, iq, room, sender, to.resource)
        return
    payload = _payload(iq)
    if payload is None:
        return
    type_ = iq.get("type")
    handler = ROOM_QUERIES.get((type_, payload.tag))
    if handler is None:
        raise StanzaError("service-unavailable")
    _answer(service, iq, handler(service, room, sender, type_, payload))


def _payload(iq):
    """The one child of an IQ get or set; None for a result or an error."""
    if iq.get("type") not in ("get", "set"):
        return None
    children = [c for c in iq if isinstance(c.tag, str)]
    if len(children) != 1:
        raise StanzaError("bad-request", "An IQ get or set has exactly one child element")
    return children[0]


def _answer(service, iq, payload):
    """Send C{payload} as the result of C{iq}; for a Deferred, once it fires."""
    if isinstance(payload, defer.Deferred):
        # Answered once storage has the change: a result means it is kept.
        payload.addCallbacks(lambda result: _result(service, iq, result),
                             lambda failure: _failed(service, iq, failure))
    else:
        _result(service, iq, payload)


def _result(service, iq, payload):
    answer = st.reply(iq)
    if payload is not None:
        answer.append(payload)
    service.host.send(answer)


def _failed(service, iq, failure):
    value = failure.value
    if isinstance(value, defer.FirstError):
        value = value.subFailure.value
    error = stanza_error(value)
    if error is None:
        service.host.log.failure("answering an IQ to {to} failed", failure, to=iq.get("to"))
        error = StanzaError("internal-server-error")
    service.bounce(iq, error)
