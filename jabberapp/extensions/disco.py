"""
XEP-0030: Service Discovery -- disco#info and disco#items for the host and its accounts.

Who answers what:

- The host JID without a node: the identities and features declared with
  ``host.add_identity``/``host.add_feature`` (this extension declares disco#info and
  disco#items itself), merged with what every IDiscoProvider adds for the host JID. The
  host's items are empty until providers add some (components, MUC, pubsub).
- Every other target -- a node, a user's bare JID or one of its nodes, the host JID with a
  resource -- is owned by the IDiscoProvider objects: the first to answer (not None) wins.
  Providers may return Deferreds and may raise StanzaError.
- A user's bare JID that no provider claims is answered by the server on behalf of the
  account (XEP-0030 §3.1): <identity category='account' type='registered'/>, to the account
  owner. An account's existence is revealed only to those entitled to the user's presence
  (XEP-0030 §8), which is the roster's business: a roster extension answers contacts as a
  provider. To everyone else, and for accounts that do not exist, the answer is
  <service-unavailable/>, the same in both cases so nothing leaks.
- To its owner, an account's disco#info (no node) also lists the features extensions add
  with ``host.service("disco").add_account_features(...)`` (the archive, push), whichever
  provider answered.
- A node nobody owns is <item-not-found/>.

Extended information (XEP-0128): the disco extension offers the service "disco"
(L{ExtendedInfo}). Another extension (which depends on "disco") adds a data form of type
'result' with a hidden FORM_TYPE to the host JID's disco#info answer, and takes it away
when it unloads, with

    remove = host.service("disco").add(forms.result_form(FORM_TYPE, fields))
    host.on_unload(remove)

(jabberapp.forms builds the form, its fields typed as the FORM_TYPE's registry says).
``host.service("disco").forms()`` lists them, for entity capabilities hashes that must
cover them (XEP-0115 §5.4).
"""
import copy

from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.dispatch import addressee_kind, parse_jid_attr
from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

ACCOUNT_IDENTITY = ("account", "registered", None)


@implementer(IPlugin, IExtension)
class ServiceDiscovery:
    """Answers disco#info and disco#items queries to the host JID and users' bare JIDs."""

    name = "disco"
    specs = (Spec("XEP-0030", "2.5rc3", "Service Discovery"),
             Spec("XEP-0128", "1.0.1", "Service Discovery Extensions",
                  "extended information forms in the host's disco#info"))
    depends = ()
    options = ()

    def install(self, host):
        """Declare the two disco features, own disco queries to the host and users, and
        offer the extended information forms as the service "disco"."""
        host.add_feature(NS_DISCO_INFO)
        host.add_feature(NS_DISCO_ITEMS)
        forms = ExtendedInfo()
        host.provide("disco", forms)
        responder = _Responder(host, forms)
        for to in ("host", "user"):
            host.iq_handler("get", NS_DISCO_INFO, "query", responder.info, to=to)
            host.iq_handler("get", NS_DISCO_ITEMS, "query", responder.items, to=to)


class ExtendedInfo:
    """
    The XEP-0128 extended information forms of the host JID, in the order they were
    added; at most one per FORM_TYPE (XEP-0115 §5.4 makes a caps hash over duplicates
    invalid). Offered to other extensions as the service "disco".
    """

    def __init__(self):
        self._forms = []
        self._account_features = []     # tuples of namespaces, in the order added

    def account_features(self):
        """The features added to every account's own disco#info, in the order added."""
        return [feature for added in self._account_features for feature in added]

    def add_account_features(self, features):
        """Add C{features} (namespaces) to the disco#info of every account's bare JID as
        its owner asks it (XEP-0313 §6 and XEP-0357 §5 have the account advertise the
        archive and push), whichever provider answers for the account; return a function
        that removes them again."""
        added = tuple(features)
        self._account_features.append(added)
        return lambda: self._account_features.remove(added)

    def forms(self):
        """Copies of the forms, in the order they were added."""
        return [copy.deepcopy(form) for form in self._forms]

    def add(self, form):
        """Add C{form} (an <x/> element or a jabberapp.forms.Form; a copy is kept);
        return a function that removes it again. ValueError when it is no XEP-0128 form
        (type 'result', a hidden FORM_TYPE with a value) or its FORM_TYPE is already
        there."""
        if isinstance(form, forms.Form):
            form = form.to_element()
        form_type = _form_type(form)
        if form_type in (_form_type(f) for f in self._forms):
            raise ValueError(f"a disco#info form of FORM_TYPE {form_type!r} is already added")
        kept = copy.deepcopy(form)
        kept.tail = None
        self._forms.append(kept)
        return lambda: self._forms.remove(kept)


def _form_type(form):
    """The FORM_TYPE of an XEP-0128 form; ValueError when C{form} is not one."""
    parsed = forms.parse(form)
    if parsed.type != "result" or not parsed.form_type:
        raise ValueError("an extended information form is <x xmlns='jabber:x:data' "
                         "type='result'/> with a hidden FORM_TYPE that has a value")
    return parsed.form_type


class _Responder:
    """Builds disco answers from the host's declarations, its providers and its accounts."""

    def __init__(self, host, extended):
        self.host = host
        self.extended = extended

    async def info(self, iq):
        """The disco#info answer for the IQ's target and node."""
        requester, target, node = self._request(iq, NS_DISCO_INFO)
        forms = []
        if node is None and target == self.host.jid:
            identities = list(self.host.identities)
            features = list(self.host.features)
            forms = self.extended.forms()
            for extra in await self._every("info", requester, target, node):
                identities.extend(extra[0])
                features.extend(extra[1])
        else:
            answer = await self._first("info", requester, target, node)
            if answer is None:
                await self._check_account(requester, target, node)
                answer = ([ACCOUNT_IDENTITY], [NS_DISCO_INFO, NS_DISCO_ITEMS])
            identities, features = answer
            if (node is None and requester is not None and requester.bare() == target
                    and addressee_kind(target) == "bare"):
                features = [*features, *self.extended.account_features()]
        query = _query(NS_DISCO_INFO, node)
        for category, type_, name in _unique(tuple(i) for i in identities):
            attrs = {"category": category, "type": type_}
            if name:
                attrs["name"] = name
            query.append(element(NS_DISCO_INFO, "identity", attrs))
        for feature in _unique(features):
            query.append(element(NS_DISCO_INFO, "feature", {"var": feature}))
        for form in forms:
            query.append(form)     # as in the XEP-0128 examples: after the features
        return query

    async def items(self, iq):
        """The disco#items answer for the IQ's target and node."""
        requester, target, node = self._request(iq, NS_DISCO_ITEMS)
        if node is None and target == self.host.jid:
            items = [item for extra in await self._every("items", requester, target, node)
                     for item in extra]
        else:
            items = await self._first("items", requester, target, node)
            if items is None:
                await self._check_account(requester, target, node)
                items = []
        query = _query(NS_DISCO_ITEMS, node)
        for jid, item_node, name in _unique(tuple(i) for i in items):
            attrs = {"jid": str(jid)}
            if item_node:
                attrs["node"] = item_node
            if name:
                attrs["name"] = name
            query.append(element(NS_DISCO_ITEMS, "item", attrs))
        return query

    def _request(self, iq, namespace):
        query = iq.find(f"{{{namespace}}}query")
        return parse_jid_attr(iq, "from"), parse_jid_attr(iq, "to"), query.get("node")

    async def _every(self, method, requester, target, node):
        """Every provider's non-None answer, in registration order."""
        answers = []
        for provider in self.host.disco_providers:
            answer = await _call(provider, method, requester, target, node)
            if answer is not None:
                answers.append(answer)
        return answers

    async def _first(self, method, requester, target, node):
        """The first provider's non-None answer, or None."""
        for provider in self.host.disco_providers:
            answer = await _call(provider, method, requester, target, node)
            if answer is not None:
                return answer
        return None

    async def _check_account(self, requester, target, node):
        """Return when the server may answer for C{target} as its user's account; raise
        the StanzaError to send otherwise."""
        if addressee_kind(target) != "bare":
            # The host JID with a node nobody owns, or with a resource: nothing there.
            raise StanzaError("item-not-found" if node is not None and target == self.host.jid
                              else "service-unavailable")
        owner = requester is not None and requester.bare() == target
        if not owner or not await self.host.storage.accounts.exists(self.host.domain,
                                                                    target.local):
            raise StanzaError("service-unavailable")
        if node is not None:
            raise StanzaError("item-not-found")


def _call(provider, method, requester, target, node):
    return defer.maybeDeferred(getattr(provider, method), requester, target, node)


def _query(namespace, node):
    query = element(namespace, "query")
    if node is not None:
        query.set("node", node)     # XEP-0030 §3.2: the node is echoed in the answer
    return query


def _unique(values):
    """C{values} without repeats, first occurrence kept (XEP-0030 §3.1 forbids duplicates)."""
    seen = set()
    unique = []
    for value in values:
        if value not in seen:
            seen.add(value)
            unique.append(value)
    return unique


service_discovery = ServiceDiscovery()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
