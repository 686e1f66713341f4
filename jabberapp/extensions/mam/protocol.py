"""
The MAM IQs of a user's archive, at the user's bare JID (XEP-0313 §4, §5; XEP-0441):

- ``<query/>`` set: the matching messages are sent to the querying session, each as
  ``<message><result queryid id><forwarded><delay stamp/><message/></forwarded></result>
  </message>``, in archive order (reversed with ``<flip-page/>``, which changes only the
  order they are sent in), then the IQ result ``<fin complete?><set/></fin>`` with RSM's
  first, last (archive order) and count;
- ``<query/>`` get: the form of the fields a query may use;
- ``<metadata/>`` get: the first and last message's id and timestamp;
- ``<prefs/>`` get and set: the archiving preferences.

Only the owner may touch an archive: anyone else is answered <forbidden/> (§7.1). Queries
go through the session's QueryGate (ratelimit.py). Before a query reads the store, the
messages still waiting to be written are handed to it, so a query sees every message that
arrived before it.
"""
from __future__ import annotations

from twisted.internet import defer

from jabberapp import rsm
from jabberapp.errors import StanzaError
from jabberapp.extensions.mam.ns import NS_DELAY, NS_FORWARD, NS_MAM
from jabberapp.extensions.mam.prefs import parse_prefs
from jabberapp.extensions.mam.query import parse_query, query_form, timestamp
from jabberapp.extensions.mam.ratelimit import QueryGate
from jabberapp.jid import InvalidJID, JID
from jabberapp.storage import ItemNotFound
from jabberapp.xml import element, parse_element
from jabberapp.xml.ns import NS_CLIENT

__all__ = ["ArchiveProtocol"]

STATE_KEY = "mam"


class ArchiveProtocol:
    """The IQ handlers of one host; see the module docstring."""

    def __init__(self, host, store, book, writer, page_size, max_page_size, rate, burst):
        self.host = host
        self.store = store
        self.book = book
        self.writer = writer
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.rate = rate
        self.burst = burst
        self._gates: dict = {}     # requesters without a session (none in practice)

    def install(self):
        """Register the IQ handlers on the host."""
        host = self.host
        host.iq_handler("set", NS_MAM, "query", self.query, to="user")
        host.iq_handler("get", NS_MAM, "query", self.form, to="user")
        host.iq_handler("get", NS_MAM, "metadata", self.metadata, to="user")
        host.iq_handler("get", NS_MAM, "prefs", self.get_prefs, to="user")
        host.iq_handler("set", NS_MAM, "prefs", self.set_prefs, to="user")

    def _owner(self, iq):
        """(requester JID, username) when the requester owns the archive addressed."""
        try:
            requester = JID.parse(iq.get("from") or "")
            archive = JID.parse(iq.get("to") or "")
        except InvalidJID:
            raise StanzaError("forbidden") from None
        if (requester.bare() != archive.bare() or archive.domain != self.host.domain
                or archive.local is None):
            raise StanzaError("forbidden", "Only the owner may use this archive")
        return requester, archive.local

    # -- queries --------------------------------------------------------------------------

    def query(self, iq):
        """IQ set <query/>: send the page of results, then answer with <fin/>."""
        requester, username = self._owner(iq)
        request = parse_query(iq[0], self.page_size, self.max_page_size)
        return self._gate(requester).run(self._answer, requester, username, request)

    def _gate(self, requester):
        session = self.host.sessions.get(requester)
        state = session.state if session is not None else self._gates
        key = STATE_KEY if session is not None else requester
        gate = state.get(key)
        if gate is None:
            gate = state[key] = QueryGate(self.host.clock, self.rate, self.burst)
        return gate

    @defer.inlineCallbacks
    def _answer(self, requester, username, request):
        self.writer.flush()
        try:
            page = yield self.store.query(self.host.domain, username, request.query)
        except ItemNotFound:
            raise StanzaError("item-not-found", "No message with that id in the archive") \
                from None
        session = self.host.sessions.get(requester)
        archive = f"{username}@{self.host.domain}"
        messages = reversed(page.messages) if request.flip else page.messages
        for message in messages:
            result = self._result(message, archive, requester, request.queryid)
            if result is not None and session is not None:
                session.send(result)
        fin = element(NS_MAM, "fin")
        if page.complete:
            fin.set("complete", "true")
        # COMPAT: slixmpp 1.8-1.17 stops paging backwards after the first page when
        # <first/> has an index (it reads index + page == count as the end). The index
        # is optional (XEP-0313 §4.3.2); <count/> stays.
        fin.append(rsm.result_set([(m.id, None) for m in page.messages], page.count))
        return fin

    def _result(self, message, archive, requester, queryid):
        """The <message><result/></message> carrying one archived message."""
        try:
            original = parse_element(message.stanza)
        except ValueError:
            self.host.log.error("unreadable archived message {id} of {jid}", id=message.id,
                                jid=archive)
            return None
        original.tail = None
        wrapper = element(NS_CLIENT, "message", {"to": str(requester), "from": archive,
                                                 "id": message.id})
        result = element(NS_MAM, "result", {"id": message.id})
        if queryid is not None:
            result.set("queryid", queryid)
        forwarded = element(NS_FORWARD, "forwarded")
        forwarded.append(element(NS_DELAY, "delay", {"stamp": timestamp(message.when)}))
        forwarded.append(original)
        result.append(forwarded)
        wrapper.append(result)
        return wrapper

    def form(self, iq):
        """IQ get <query/>: the query form (§4.1.5)."""
        self._owner(iq)
        query = element(NS_MAM, "query")
        query.append(query_form())
        return query

    @defer.inlineCallbacks
    def metadata(self, iq):
        """IQ get <metadata/>: the archive's first and last message (§5)."""
        _, username = self._owner(iq)
        self.writer.flush()
        ends = yield self.store.bounds(self.host.domain, username)
        answer = element(NS_MAM, "metadata")
        if ends is not None:
            for name, (item_id, when) in zip(("start", "end"), ends):
                answer.append(element(NS_MAM, name, {"id": item_id,
                                                     "timestamp": timestamp(when)}))
        return answer

    # -- preferences --------------------------------------------------------------------

    def get_prefs(self, iq):
        """IQ get <prefs/>: the account's preferences."""
        _, username = self._owner(iq)
        return self.book.get(username).to_element()

    @defer.inlineCallbacks
    def set_prefs(self, iq):
        """IQ set <prefs/>: store the preferences, answer with them as applied."""
        _, username = self._owner(iq)
        prefs = parse_prefs(iq[0])
        applied = yield self.book.set(username, prefs)
        return applied.to_element()

    def unload(self):
        """Stop the gates' timers."""
        for session in self.host.sessions:
            gate = session.state.pop(STATE_KEY, None)
            if gate is not None:
                gate.cancel()
        for gate in self._gates.values():
            gate.cancel()
