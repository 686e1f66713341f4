"""
Reading XEP-0227 files: a streaming reader that checks everything and yields one L{UserData}
per <user/>, in file order.

Theory of operation. lxml's iterparse builds each <user/> element and hands it over at its
end tag; the user is checked and converted into the values the stores hold (user.py,
with credentials.py for SCRAM material), then its element is dropped, so memory holds the
few users of the chunk lxml has parsed ahead, whatever the size of the file.
Anything wrong raises L{MigrationError} naming the file, the line (lxml's sourceline) and
the reason. What the format allows but jabberapp does not keep (privacy lists, PEP nodes,
message archives, unknown namespaces) is skipped and counted in C{notices}, which XEP-0227
§2 asks for ("SHOULD ignore the unknown data, SHOULD notify the operator").

XInclude (§4): an <include href='...'/> child of <server-data/> or <host/> is read in its
place (ejabberd's export is a main file including one file per host). Only relative
references inside the directory of the file named by the operator are followed, with no
'parse' other than xml and no 'xpointer'; includes inside a <user/> are user data and are
never followed (§4, §6).

Safety: no DTD (a DOCTYPE is refused), no entities, no network, comments and processing
instructions dropped.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator

from lxml import etree

from jabberapp.admin.migrate.pie import NS_XINCLUDE, MigrationError, describe, is_pie
from jabberapp.admin.migrate.user import Limits, UserData, UserReader
from jabberapp.jid import InvalidJID, prep_domain

__all__ = ["Limits", "Reader", "UserData"]

_PARSER_OPTIONS = dict(events=("start", "end"), resolve_entities=False, no_network=True,
                       load_dtd=False, remove_comments=True, remove_pis=True,
                       huge_tree=False)


class Reader:
    """
    Reads XEP-0227 files for the hosts C{hosts} (prepared domains) under C{limits}.
    C{now} (POSIX seconds) stamps offline messages that carry no delay.
    """

    def __init__(self, hosts: Iterable[str], limits: Limits, now: float) -> None:
        self.hosts = tuple(hosts)
        self.limits = limits
        self.now = now
        #: what was skipped -> how often (see the module docstring).
        self.notices: Counter[str] = Counter()
        self._users = UserReader(limits, now, self.notices)

    def read(self, paths: Iterable[str]) -> Iterator[UserData]:
        """Every user of the files C{paths} (each rooted in <server-data/> or <host/>)."""
        for path in paths:
            base = os.path.dirname(os.path.realpath(path))
            yield from self._file(path, path, ("server-data", "host"), None, base)

    def _file(self, path, source, roots, host, base) -> Iterator[UserData]:
        """The users of one file whose root is one of C{roots}; C{host} when it is a user."""
        try:
            f = open(path, "rb")
        except OSError as exc:
            raise MigrationError(f"cannot read the file: {exc.strerror or exc}",
                                 source) from None
        # Per open element: what it is -- server-data, host, user, include, skip (unknown
        # data, counted), inner (inside a user: handled with the user).
        kinds: list[str] = []
        try:
            for event, el in etree.iterparse(f, **_PARSER_OPTIONS):
                if event == "start":
                    kind = self._start(el, kinds, roots, source)
                    kinds.append(kind)
                    if kind == "host":
                        host = self._host(el, source)
                    continue
                kind = kinds.pop()
                if kind == "inner":
                    continue
                if kind == "user":
                    yield self._users.read(el, host, source)
                elif kind == "include":
                    yield from self._include(el, kinds[-1], host, source, base)
                elif kind == "skip":
                    self.notices[describe(el)] += 1
                _drop(el)
        except etree.XMLSyntaxError as exc:
            line = exc.lineno or None
            raise MigrationError(f"not well-formed XML: {_syntax_message(exc)}", source,
                                 line) from None
        finally:
            f.close()

    def _start(self, el, kinds, roots, source) -> str:
        if not kinds:
            if el.getroottree().docinfo.doctype:
                raise MigrationError("DOCTYPE declarations are not allowed", source,
                                     el.sourceline)
            for root in roots:
                if is_pie(el, root):
                    return root
            wanted = " or ".join(f"<{root} xmlns='urn:xmpp:pie:0'>" for root in roots)
            raise MigrationError(f"not a XEP-0227 file: the root element is {describe(el)}, "
                                 f"expected {wanted}", source, el.sourceline)
        parent = kinds[-1]
        if parent in ("user", "inner", "skip", "include"):
            return "inner"
        if isinstance(el.tag, str) and etree.QName(el).namespace in NS_XINCLUDE \
                and etree.QName(el).localname == "include":
            return "include"
        if parent == "server-data" and is_pie(el, "host"):
            return "host"
        if parent == "host" and is_pie(el, "user"):
            return "user"
        return "skip"

    def _host(self, el, source) -> str:
        text = el.get("jid")
        if text is None:
            raise MigrationError("<host/> without a 'jid'", source, el.sourceline)
        try:
            host = prep_domain(text)
        except InvalidJID as exc:
            raise MigrationError(f"invalid host {text!r}: {exc}", source,
                                 el.sourceline) from None
        if host not in self.hosts:
            raise MigrationError(f"{host!r} is not a host of this server (hosts: "
                                 f"{', '.join(self.hosts)}); add it to [server] hosts "
                                 f"first", source, el.sourceline)
        return host

    def _include(self, el, parent, host, source, base) -> Iterator[UserData]:
        line = el.sourceline
        href = el.get("href")
        if not href:
            raise MigrationError("<include/> without an 'href'", source, line)
        if el.get("parse", "xml") != "xml" or el.get("xpointer") is not None:
            raise MigrationError("only <include href='...'/> of whole XML files is supported",
                                 source, line)
        reference = urllib.parse.urlsplit(href)
        relative = urllib.parse.unquote(reference.path)
        if reference.scheme or reference.netloc or not relative or os.path.isabs(relative):
            raise MigrationError(f"<include/> of {href!r}: only relative references are "
                                 f"followed", source, line)
        path = os.path.join(os.path.dirname(os.path.realpath(source)), relative)
        if os.path.commonpath([base, os.path.realpath(path)]) != base:
            raise MigrationError(f"<include/> of {href!r} leaves the directory of the "
                                 f"export", source, line)
        included = os.path.join(os.path.dirname(source), relative)
        if parent == "server-data":
            yield from self._file(path, included, ("host",), None, base)
        else:
            yield from self._file(path, included, ("user",), host, base)


def _drop(el) -> None:
    """Free a finished element: memory holds one user at a time."""
    el.clear()
    parent = el.getparent()
    if parent is not None:
        parent.remove(el)


def _syntax_message(exc) -> str:
    # lxml appends ", line N, column M" to libxml2's message; the line is reported already.
    return re.sub(r", line \d+, column \d+\Z", "", str(exc.msg or exc))
