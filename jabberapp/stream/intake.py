"""
Stanzas from a bound client session, on their way in (RFC 6120 §8, RFC 6121 §4).

Every stanza gets its 'from' stamped with the session's full JID (a different 'from' is
<invalid-from/>), its 'to' checked and normalised, then passes the host's PRE_* hooks and
FILTER_OUTBOUND and goes to the router. Presence without 'to' updates the session's
availability and is broadcast; the RFC 3921 session IQ is answered. Whatever transport the
session is attached to, its stanzas come in here.

Handled means delivered or stored (XEP-0198 acknowledges a stanza only then; DESIGN §7).
While a stanza is handled here, C{TAKING} names its session and number (the stream counts it
in C{session.received} once this returns). Whoever the stanza reaches on this synchronous
path and writes it to storage instead of handing it to a session -- offline storage --
passes the write's Deferred to L{handled_when}: the stanza counts as handled only once it has
fired (after the error bounce, when the write failed). A delivered stanza costs nothing more
than the two slots set and reset here. Code that holds a stanza and handles it later
(waiting for a load) takes L{handling} now and runs its continuation with L{continuing}.
"""
from jabberapp import dispatch, stanza as st
from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, JID
from jabberapp.sessions import presence_without_to
from jabberapp.stream.steps import is_session_request


class _Taking:
    """The client stanza being handled now: its session (None: none) and number."""

    __slots__ = ("session", "number")

    def __init__(self):
        self.session = None
        self.number = 0


TAKING = _Taking()


def handled_when(d):
    """The client stanza being handled now is handled only once C{d} fires (its write to
    storage); C{d} is returned, its result unchanged. Outside an intake, nothing happens."""
    taking = TAKING
    if taking.session is not None:
        taking.session.handled_when(taking.number, d)
    return d


def handling():
    """The client stanza being handled now, for L{continuing} later; None outside an intake."""
    taking = TAKING
    return None if taking.session is None else (taking.session, taking.number)


def continuing(handle, fn, *args):
    """Call C{fn(*args)} as part of the handling of C{handle} (from L{handling}), so that
    what it stores is waited for too (L{handled_when}); its result is returned."""
    taking = TAKING
    outer, outer_number = taking.session, taking.number
    taking.session, taking.number = handle if handle is not None else (None, 0)
    try:
        return fn(*args)
    finally:
        taking.session = outer
        taking.number = outer_number


def client_stanza(session, el):
    """Handle stanza C{el} that bound C{session} sent (its stream's StreamErrors raise)."""
    taking = TAKING
    outer, outer_number = taking.session, taking.number     # None, 0 but when nested
    taking.session = session
    taking.number = session.received + 1
    try:
        return _take(session, el)
    finally:
        taking.session = outer
        taking.number = outer_number


def _take(session, el):
    host = session.host
    if is_session_request(el) and el.get("to") in (None, host.domain):
        # RFC 3921 §3: old clients still establish a session after binding.
        session.send(st.reply(el))
        return None
    jid = session.jid
    sender = el.get("from")
    if sender is not None and sender != str(jid):
        try:
            claimed = JID.parse(sender)
        except InvalidJID:
            raise StreamError("invalid-from") from None
        if claimed != jid and claimed != jid.bare():
            raise StreamError("invalid-from")
    el.set("from", str(jid))
    dispatcher = host.dispatcher
    error = _check_stanza(el)
    if error is not None:
        dispatcher.bounce(el, error)
        return None
    to = el.get("to")
    if to is not None:
        try:
            el.set("to", str(JID.parse(to)))
        except InvalidJID:
            dispatcher.bounce(el, "jid-malformed")
            return None
    if el.tag == st.IQ and el.get("type") in ("get", "set"):
        if _child_count(el) != 1:
            dispatcher.bounce(el, "bad-request")
            return None
    if dispatcher.outgoing(el, session):
        return None
    if to is None:
        if el.tag == st.PRESENCE:
            presence_without_to(host, session, el)
            return None
        # RFC 6120 §10.3: handled on behalf of the account.
        el.set("to", str(jid.bare()))
    if not dispatcher.hooks.fire(dispatch.FILTER_OUTBOUND, el, session):
        host.router.route(el, session)
    return None


def _check_stanza(el):
    """The stanza error condition for a malformed stanza, or None."""
    type_ = el.get("type")
    if el.tag == st.IQ:
        if type_ not in st.IQ_TYPES or not el.get("id"):
            return "bad-request"
    elif el.tag == st.PRESENCE:
        if type_ is not None and type_ not in st.PRESENCE_TYPES:
            return "bad-request"
    return None


def _child_count(el):
    return sum(1 for c in el if isinstance(c.tag, str))
