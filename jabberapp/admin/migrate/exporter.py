"""
``jabberappctl export HOST FILE``: one host's accounts and data as a XEP-0227 file.

Theory of operation: lxml's incremental writer (etree.xmlfile) writes the document as it
goes; each <user/> is built from the stores, written on a line of its own and dropped, so
memory holds one user whatever the size of the host. Per user, in this order: the stored
SCRAM material, one <scram-credentials/> per hash (XEP-0227 §2.3 -- there is no
plaintext password to write), the roster, pending subscription requests as <presence/>
(§2.9), the vCard, private XML and offline messages, oldest first, as stored (with
their XEP-0203 delay).

A FILE is written under a temporary name in its directory, readable by its owner only
(§6: the file holds credentials and private data), and renamed into place once complete:
a failed export leaves no partial file behind. ``-`` writes to standard output.
"""
from __future__ import annotations

import base64
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field

from lxml import etree

from jabberapp.admin.migrate.pie import MECHANISM_NAMES, NS_PIE, NS_SCRAM, MigrationError
from jabberapp.extensions import offline, private, vcard
from jabberapp.extensions.roster import items as roster_items
from jabberapp.sasl.scram import HASHES
from jabberapp.xml import parse_element
from jabberapp.xml.ns import NS_CLIENT

__all__ = ["ExportSummary", "export_host", "export_to"]

NS_ROSTER = roster_items.NS_ROSTER


@dataclass
class ExportSummary:
    """What an export wrote, and what stored data it could not read (and left out)."""

    counts: Counter = field(default_factory=Counter)
    unreadable: Counter = field(default_factory=Counter)


async def export_host(storage, host: str, out) -> ExportSummary:
    """Write every account of C{host} in C{storage}, with its data, to the binary C{out}."""
    summary = ExportSummary()
    usernames = await storage.accounts.list_users(host)
    with etree.xmlfile(out, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(f"{{{NS_PIE}}}server-data", nsmap={None: NS_PIE}):
            xf.write("\n")
            with xf.element(f"{{{NS_PIE}}}host", jid=host):
                xf.write("\n")
                for username in usernames:
                    xf.write(await _user(storage, host, username, summary))
                    xf.write("\n")
                    xf.flush()
            xf.write("\n")
    out.write(b"\n")
    return summary


async def export_to(storage, host: str, path: str, stdout) -> ExportSummary:
    """
    L{export_host} into the file C{path} (or C{stdout}, a binary stream, for '-'), as the
    module docstring describes. MigrationError when the file cannot be written.
    """
    if path == "-":
        return await export_host(storage, host, stdout)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                         suffix=".tmp", dir=directory)   # mode 0600
    except OSError as exc:
        raise MigrationError(f"cannot write the file: {exc.strerror or exc}", path) from None
    try:
        with os.fdopen(fd, "wb") as out:
            summary = await export_host(storage, host, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        os.unlink(temporary)
        raise MigrationError(f"cannot write the file: {exc.strerror or exc}", path) from None
    except BaseException:
        os.unlink(temporary)
        raise
    return summary


async def _user(storage, host, username, summary) -> etree._Element:
    """The <user/> element of one account."""
    counts = summary.counts
    counts["accounts"] += 1
    user = etree.Element(f"{{{NS_PIE}}}user", nsmap={None: NS_PIE}, name=username)
    for hash_name in HASHES:
        credentials = await storage.accounts.get_credentials(host, username, hash_name)
        if credentials is not None:
            user.append(_scram(hash_name, credentials))
    user_jid = f"{username}@{host}"

    # The stored document as it is (items.py describes it): its JIDs were prepared when
    # stored, and parsing a million of them again would be most of an export's time.
    document = await storage.keyvalue(roster_items.STORE_NAME).get(
        host, username, roster_items.ROSTER_KEY) or {}
    items = document.get("items") or {}
    if items:
        counts["rosters"] += 1
        query = etree.SubElement(user, f"{{{NS_ROSTER}}}query", nsmap={None: NS_ROSTER})
        for jid, item in items.items():
            if isinstance(item, dict):
                _roster_item(query, jid, item)
                counts["contacts"] += 1
    for contact, kept in (document.get("pending") or {}).items():
        user.append(_request(kept, contact, user_jid))
        counts["pending"] += 1

    text = await storage.keyvalue(vcard.STORE).get(host, username, vcard.KEY)
    if text is not None:
        element = _stored(text, summary, "vCards")
        if element is not None:
            user.append(element)
            counts["vcards"] += 1

    document = await storage.keyvalue(private.STORE).get(host, username, private.KEY)
    if document:
        query = etree.SubElement(user, private.QUERY, nsmap={None: private.NS_PRIVATE})
        for key in sorted(document):
            element = _stored(document[key], summary, "private XML elements")
            if element is not None:
                query.append(element)
        counts["private"] += 1

    rows = await storage.archive(offline.STORE_NAME).query(host, username)
    if rows:
        messages = etree.SubElement(user, f"{{{NS_PIE}}}offline-messages")
        for _, _, _, item in rows:
            try:
                messages.append(parse_element(item))
            except ValueError:
                summary.unreadable["offline messages"] += 1
                continue
            counts["offline"] += 1
    return user


def _scram(hash_name, credentials) -> etree._Element:
    scram = etree.Element(f"{{{NS_SCRAM}}}scram-credentials", nsmap={None: NS_SCRAM},
                          mechanism=MECHANISM_NAMES[hash_name])
    for name, value in (("iter-count", str(credentials.iterations)),
                        ("salt", _b64(credentials.salt)),
                        ("server-key", _b64(credentials.server_key)),
                        ("stored-key", _b64(credentials.stored_key))):
        etree.SubElement(scram, f"{{{NS_SCRAM}}}{name}").text = value
    return scram


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _roster_item(query, jid, item) -> None:
    """An RFC 6121 roster item, as a roster result carries it, from its stored form."""
    el = etree.SubElement(query, f"{{{NS_ROSTER}}}item", jid=jid)
    if item.get("name"):
        el.set("name", item["name"])
    el.set("subscription", item.get("subscription") or "none")
    if item.get("ask"):
        el.set("ask", "subscribe")
    if item.get("approved"):
        el.set("approved", "true")
    for group in item.get("groups") or ():
        etree.SubElement(el, f"{{{NS_ROSTER}}}group").text = group


def _request(kept, contact, user_jid) -> etree._Element:
    """A pending request as kept by the roster extension, or a plain one."""
    request = None
    if kept:
        try:
            request = parse_element(kept)
        except ValueError:
            request = None
    if request is None or request.tag != f"{{{NS_CLIENT}}}presence":
        request = etree.Element(f"{{{NS_CLIENT}}}presence", nsmap={None: NS_CLIENT})
    request.set("type", "subscribe")
    request.set("from", contact)
    request.set("to", user_jid)
    return request


def _stored(text, summary, what):
    """The element stored as C{text} (vcard.to_text), or None when it cannot be read."""
    try:
        return vcard.from_text(text)
    except (etree.XMLSyntaxError, ValueError, TypeError):
        summary.unreadable[what] += 1
        return None
