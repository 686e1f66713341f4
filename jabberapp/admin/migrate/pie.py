"""
XEP-0227 (version 1.1): the names of the format, the error an import or export reports, and
the conversions the reader and the writer share.

A file is ``<server-data xmlns='urn:xmpp:pie:0'>`` holding ``<host jid='...'>`` elements
holding ``<user name='...' password?='...'>`` elements; each user holds its
``<scram-credentials xmlns='urn:xmpp:pie:0#scram'>`` (§2.3), roster ``<query
xmlns='jabber:iq:roster'>``, pending inbound requests as ``<presence type='subscribe'/>``,
``<vCard xmlns='vcard-temp'>``, private XML ``<query xmlns='jabber:iq:private'>`` and
``<offline-messages>``. An export may be split with XInclude (§4), as ejabberd's is.
"""
from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone

from lxml import etree

from jabberapp.xml.ns import NS_CLIENT

NS_PIE = "urn:xmpp:pie:0"
# COMPAT: ejabberd before 2.1 wrote the namespace of the XEP's drafts; ejabberd still reads it.
NS_PIE_DRAFT = "http://www.xmpp.org/extensions/xep-0227.html#ns"
PIE_NAMESPACES = frozenset({NS_PIE, NS_PIE_DRAFT})
NS_SCRAM = "urn:xmpp:pie:0#scram"
NS_XINCLUDE = frozenset({"http://www.w3.org/2001/XInclude",
                         "http://www.w3.org/2003/XInclude"})   # the older one libxml2 reads

#: XEP-0227 §2.3 mechanism names (never -PLUS) -> our hash names.
SCRAM_MECHANISMS = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256",
                    "SCRAM-SHA-512": "sha512"}
MECHANISM_NAMES = {hash_name: name for name, hash_name in SCRAM_MECHANISMS.items()}

NS_DELAY = "urn:xmpp:delay"
NS_LEGACY_DELAY = "jabber:x:delay"   # XEP-0091, obsolete: read, never written


class MigrationError(Exception):
    """
    An import or export cannot go on; nothing was written. Its text is the one line for
    the operator: "FILE:LINE: reason" when a place in a file is to blame.
    """

    def __init__(self, reason: str, source: str | None = None, line: int | None = None):
        self.reason = reason
        self.source = source
        self.line = line
        where = source or ""
        if source is not None and line:
            where = f"{source}:{line}"
        super().__init__(f"{where}: {reason}" if where else reason)


def describe(el) -> str:
    """C{el}'s name as an operator reads it: <query xmlns='jabber:iq:privacy'/>."""
    name = etree.QName(el)
    if name.namespace:
        return f"<{name.localname} xmlns='{name.namespace}'/>"
    return f"<{name.localname}/>"


def is_pie(el, localname: str) -> bool:
    """True when C{el} is the XEP-0227 element C{localname} (in either namespace)."""
    if not isinstance(el.tag, str):
        return False
    name = etree.QName(el)
    return name.localname == localname and name.namespace in PIE_NAMESPACES


def client_stanza(el) -> etree._Element:
    """
    A copy of the stanza C{el} (a <message/> or <presence/>) in jabber:client, declared as
    the default namespace, as the server stores stanzas.

    COMPAT: Prosody 0.12 writes pending requests without a namespace of their own, so they
    are in urn:xmpp:pie:0; the stanza's children in its own namespace (<body/>, <status/>)
    move with it, children in other namespaces are copied as they are.
    """
    source = etree.QName(el).namespace

    def convert(node, parent):
        local = etree.QName(node).localname
        if parent is None:
            new = etree.Element(f"{{{NS_CLIENT}}}{local}", nsmap={None: NS_CLIENT})
        else:
            new = etree.SubElement(parent, f"{{{NS_CLIENT}}}{local}")
        for key, value in node.attrib.items():
            new.set(key, value)
        new.text = node.text
        for child in node:
            if not isinstance(child.tag, str):
                continue
            if etree.QName(child).namespace == source:
                convert(child, new).tail = child.tail
            else:
                new.append(_copy(child))
        return new

    stanza = convert(el, None)
    etree.cleanup_namespaces(stanza)
    return stanza


def _copy(el):
    copied = copy.deepcopy(el)      # with the namespace declarations it needs
    copied.tail = el.tail
    return copied


# XEP-0082 date-time, as XEP-0203 stamps use it; XEP-0091's legacy form.
_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                       r"(Z|[+-]\d\d:\d\d)\Z")
_LEGACY = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d):(\d\d):(\d\d)\Z")


def parse_stamp(text: str, legacy: bool = False) -> float:
    """POSIX seconds of a XEP-0082 date-time (XEP-0091's form when C{legacy}); ValueError."""
    text = (text or "").strip()
    match = (_LEGACY if legacy else _DATETIME).match(text)
    if match is None:
        raise ValueError(f"invalid time stamp {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset = timedelta(0)
    fraction = 0.0
    if not legacy:
        if match.group(7):
            fraction = float("0." + match.group(7))
        zone = match.group(8)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"invalid time stamp {text!r}") from None
    return (moment - offset).timestamp() + fraction
