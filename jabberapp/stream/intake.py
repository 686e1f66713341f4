"""
Stanzas from a bound client session, on their way in (RFC 6120 §8, RFC 6121 §4).

Every stanza gets its 'from' stamped with the session's full JID (a different 'from' is
<invalid-from/>), its 'to' checked and normalised, then passes the host's PRE_* hooks and
FILTER_OUTBOUND and goes to the router. Presence without 'to' updates the session's
availability and is broadcast; the RFC 3921 session IQ is answered. Whatever transport the
session is attached to, its stanzas come in here.

Handled means delivered or stored (XEP-0198 acknowledges a stanza only then; DESIGN §7).
While a stanza is handled here, C{TAKING.session} names its session (the stream counts the
stanza in C{session.received} once this returns, so it is number C{received + 1}). Whoever
the stanza reaches on this synchronous path and writes it to storage instead of handing it
to a session -- offline storage -- passes the write's Deferred to L{handled_when}: the stanza
counts as handled only once it has fired (after the error bounce, when the write failed). A
delivered stanza costs one slot set and reset here, nothing allocated. Code that holds a
stanza and handles it later (waiting for a load) takes L{handling} now and runs its
continuation with L{continuing}.
"""
from jabberapp import dispatch, stanza as st
from jabberapp.errors import StreamError
from jabberapp.jid import InvalidJID, JID
from jabberapp.sessions import presence_without_to
from jabberapp.stream.steps import is_session_request


class _Taking:
    """What the client stanza being handled now came from: its Session, a Continuation,
    or None (no client stanza is being handled)."""

    __slots__ = ("session",)

    def __init__(self):
        self.session = None


TAKING = _Taking()


class Continuation:
    """A client stanza held to be handled later (L{handling}): it stands for the session in
    C{TAKING} while L{continuing} runs, with C{received} just below the stanza's number."""

    __slots__ = ("session", "received")

    def __init__(self, session, number):
        self.session = session
        self.received = number - 1

    def handled_when(self, number, d):
        """See Session.handled_when."""
        return self.session.handled_when(number, d)


def handled_when(d):
    """The client stanza being handled now is handled only once C{d} fires (its write to
    storage); C{d} is returned, its result unchanged. Outside an intake, nothing happens."""
    taking = TAKING.session
    if taking is not None:
        taking.handled_when(taking.received + 1, d)
    return d


def handling():
    """The client stanza being handled now (a Continuation), for L{continuing} later; None
    outside an intake."""
    taking = TAKING.session
    if taking is None or isinstance(taking, Continuation):
        return taking
    return Continuation(taking, taking.received + 1)


def continuing(handle, fn, *args):
    """Call C{fn(*args)} as part of the handling of C{handle} (from L{handling}), so that
    what it stores is waited for too (L{handled_when}); its result is returned."""
    taking = TAKING
    outer = taking.session
    taking.session = handle
    try:
        return fn(*args)
    finally:
        taking.session = outer


def client_stanza(session, el):
    """Handle stanza C{el} that bound C{session} sent (its stream's StreamErrors raise)."""
    taking = TAKING
    outer = taking.session      # None, unless a stream's queue drains inside another's
    taking.session = session
    try:
        return _take(session, el)
    finally:
        taking.session = outer


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
