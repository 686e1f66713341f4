"""
A MAM <query/> read into an ArchiveQuery: the XEP-0004 form, XEP-0059 paging, flip-page.

The form (XEP-0313 §4.1, FORM_TYPE urn:xmpp:mam:2) has the fields 'with', 'start', 'end',
'before-id', 'after-id', 'ids' and, for full-text search (XEP-0431),
'{urn:xmpp:fulltext:0}fulltext' (ejabberd's 'withtext' is accepted too). What a client
gets wrong is refused as the XEP says: a field the server does not know (including
'include-groupchat', which it does not advertise) is <feature-not-implemented/> (§4.1.5);
a form of the wrong type or FORM_TYPE, a field with several values where one is allowed,
a JID or a timestamp that does not parse is <bad-request/>; an id the archive does not
hold is <item-not-found/> (answered by the store).

The page size is RSM's <max/>, else C{default}, never above C{maximum}: XEP-0313 §4.3.1
lets a server limit a page and return what it limited, so a larger <max/> is clamped, not
refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from jabberapp import forms, rsm
from jabberapp.errors import StanzaError
from jabberapp.extensions.mam.ns import FULLTEXT_FIELD, NS_MAM, WITHTEXT_FIELD
from jabberapp.jid import InvalidJID, JID
from jabberapp.storage.messages import ArchiveQuery
from jabberapp.xml import element

__all__ = ["ParsedQuery", "QUERY_FORM", "parse_query", "query_form", "timestamp"]

NS_VALIDATE = "http://jabber.org/protocol/xdata-validate"
FLIP_PAGE = f"{{{NS_MAM}}}flip-page"
MAX_IDS = 250
MAX_TEXT = 1000
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")

#: The fields a client may submit, as the form query (§4.1.5) offers them.
QUERY_FORM = forms.Form("form", NS_MAM, fields=(
    forms.Field("with", "jid-single"),
    forms.Field("start", "text-single"),
    forms.Field("end", "text-single"),
    forms.Field("before-id", "text-single"),
    forms.Field("after-id", "text-single"),
    forms.Field("ids", "list-multi"),
    forms.Field(FULLTEXT_FIELD, "text-single", label="Search for messages containing "
                                                     "these words"),
))
_SINGLE = frozenset({"with", "start", "end", "before-id", "after-id", FULLTEXT_FIELD,
                     WITHTEXT_FIELD})
_KNOWN = _SINGLE | {"ids"}


def query_form():
    """The <x type='form'/> of the form query, 'ids' marked open (XEP-0122) as §4.1.5
    requires: the list of ids is never sent."""
    x = QUERY_FORM.to_element()
    for field in x.iterchildren(f"{{{forms.NS_DATA_FORMS}}}field"):
        if field.get("var") == "ids":
            validate = element(NS_VALIDATE, "validate", datatype="xs:string")
            validate.append(element(NS_VALIDATE, "open"))
            field.append(validate)
    return x


@dataclass(frozen=True)
class ParsedQuery:
    """A query request: the store query, flip-page, and the client's queryid."""

    query: ArchiveQuery
    flip: bool
    queryid: str | None


def timestamp(seconds: float) -> str:
    """XEP-0082 DateTime in UTC with microseconds, so it can be given back as 'start'."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


def parse_time(var: str, text: str) -> float:
    """POSIX seconds of a XEP-0082 DateTime; StanzaError('bad-request') otherwise."""
    text = text.strip()
    if not _DATETIME.fullmatch(text):
        raise StanzaError("bad-request", f"{var} must be a XEP-0082 date-time")
    # fromisoformat takes at most 6 fractional digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise StanzaError("bad-request", f"{var} is not a valid date-time") from None


def _form_values(query) -> dict:
    """var -> list of values of the submitted form (none: no form)."""
    found = list(query.iterchildren(forms.X))
    if not found:
        return {}
    if len(found) > 1:
        raise StanzaError("bad-request", "More than one data form")
    x = found[0]
    if x.get("type") not in (None, "submit"):
        raise StanzaError("bad-request", "The form must be of type submit")
    try:
        form = forms.parse(x)
    except forms.FormError as e:
        raise e.stanza_error() from None
    if form.form_type not in (None, NS_MAM):
        raise StanzaError("bad-request", f"FORM_TYPE must be {NS_MAM}")
    values = {}
    for field in form.fields:
        if field.var == forms.FORM_TYPE:
            if field.values != (NS_MAM,):
                raise StanzaError("bad-request", f"FORM_TYPE must be {NS_MAM}")
            continue
        if field.var not in _KNOWN:
            raise StanzaError("feature-not-implemented",
                              f"Unknown field {field.var!r}")
        if field.var in values:
            raise StanzaError("bad-request", f"Field {field.var!r} given twice")
        if field.var in _SINGLE and len(field.values) > 1:
            raise StanzaError("bad-request", f"Field {field.var!r} takes one value")
        values[field.var] = list(field.values)
    return values


def parse_query(query, default: int, maximum: int) -> ParsedQuery:
    """The ParsedQuery of a <query xmlns='urn:xmpp:mam:2'/> set; StanzaError when the
    request is not acceptable (see the module docstring)."""
    if query.get("node") is not None:
        raise StanzaError("feature-not-implemented", "No pubsub archive here")
    values = _form_values(query)

    def single(var):
        got = values.get(var)
        return got[0].strip() if got else None

    filters = {}
    with_text = single("with")
    if with_text:
        try:
            with_jid = JID.parse(with_text)
        except InvalidJID:
            raise StanzaError("bad-request", "'with' is not a valid JID") from None
        filters["with_jid"] = str(with_jid.bare())
        filters["with_resource"] = with_jid.resource
    for var in ("start", "end"):
        text = single(var)
        if text:
            filters[var] = parse_time(var, text)
    for var, name in (("after-id", "after_id"), ("before-id", "before_id")):
        text = single(var)
        if text:
            filters[name] = text
    if "ids" in values:
        ids = tuple(v.strip() for v in values["ids"] if v.strip())
        if len(ids) > MAX_IDS:
            raise StanzaError("policy-violation", f"At most {MAX_IDS} ids in one query")
        filters["ids"] = ids
    text = single(FULLTEXT_FIELD) or single(WITHTEXT_FIELD)
    if text:
        if len(text) > MAX_TEXT:
            raise StanzaError("policy-violation", "The search text is too long")
        filters["text"] = text
    request = rsm.parse(query) or rsm.ResultSetRequest()
    try:
        archive_query = ArchiveQuery(
            **filters, after=request.after, before=request.before, index=request.index,
            limit=request.page_size(default, maximum), count=True)
    except ValueError as e:
        raise StanzaError("bad-request", str(e)) from None
    return ParsedQuery(archive_query, query.find(FLIP_PAGE) is not None, query.get("queryid"))
