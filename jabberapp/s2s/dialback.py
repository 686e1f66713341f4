"""
XEP-0220: Server Dialback -- keys (XEP-0185) and the db:result / db:verify elements.

A key proves that the Originating Server really opened a stream: only the process that holds
the secret can compute it, and it is bound to both domains and to the Receiving Server's
stream id, so it cannot be replayed on another stream.

    key = hex(HMAC-SHA256(hex(SHA256(secret)), receiving + ' ' + originating + ' ' + stream_id))

which is XEP-0185's algorithm (and Prosody's), so its test vector applies.
"""
import hashlib
import hmac
import secrets

from lxml import etree

from jabberapp.errors import STANZA_CONDITIONS
from jabberapp.xml.ns import NS_DIALBACK, NS_SERVER, NS_STANZAS

DB_RESULT = f"{{{NS_DIALBACK}}}result"
DB_VERIFY = f"{{{NS_DIALBACK}}}verify"


def new_secret() -> str:
    """A fresh per-process dialback secret (256 bits)."""
    return secrets.token_hex(32)


def dialback_key(secret: str, receiving: str, originating: str, stream_id: str) -> str:
    """The XEP-0185 key for a stream from C{originating} to C{receiving} with C{stream_id}."""
    hmac_key = hashlib.sha256(secret.encode("utf-8")).hexdigest().encode("ascii")
    message = f"{receiving} {originating} {stream_id}".encode("utf-8")
    return hmac.new(hmac_key, message, hashlib.sha256).hexdigest()


def key_matches(expected: str, offered: str | None) -> bool:
    """Constant-time comparison of a key with what the peer sent (whitespace trimmed)."""
    if not offered:
        return False
    return hmac.compare_digest(expected.encode("ascii"),
                               offered.strip().encode("utf-8", "replace"))


def _db(tag: str, from_: str, to: str, type_: str | None = None, id_: str | None = None,
        key: str | None = None) -> etree._Element:
    el = etree.Element(f"{{{NS_DIALBACK}}}{tag}", nsmap={"db": NS_DIALBACK})
    el.set("from", from_)
    el.set("to", to)
    if id_ is not None:
        el.set("id", id_)
    if type_ is not None:
        el.set("type", type_)
    if key is not None:
        el.text = key
    return el


def result(from_: str, to: str, key: str | None = None, type_: str | None = None,
           condition: str | None = None) -> etree._Element:
    """A <db:result/>: a key (request) or a verdict (type valid, invalid or error)."""
    el = _db("result", from_, to, type_=type_, key=key)
    if condition is not None:
        _error(el, condition)
    return el


def verify(from_: str, to: str, id_: str, key: str | None = None, type_: str | None = None,
           condition: str | None = None) -> etree._Element:
    """A <db:verify/>: a key to check (request) or the answer (type valid or invalid)."""
    el = _db("verify", from_, to, type_=type_, id_=id_, key=key)
    if condition is not None:
        _error(el, condition)
    return el


def _error(el, condition):
    # XEP-0220 §2.4: <error type='...'><condition xmlns=stanzas/></error>, the error element
    # in the stream's content namespace. Written in jabber:server directly: the serializer
    # only renames a jabber:client declaration on the top element, not on a child.
    error = etree.SubElement(el, f"{{{NS_SERVER}}}error",
                             type=STANZA_CONDITIONS.get(condition, "cancel"),
                             nsmap={None: NS_SERVER})
    etree.SubElement(error, f"{{{NS_STANZAS}}}{condition}", nsmap={None: NS_STANZAS})


def error_condition(el) -> str | None:
    """The defined condition of a typed error <db:result/> or <db:verify/>, if any."""
    for error in el:
        if isinstance(error.tag, str) and error.tag.endswith("}error"):
            for condition in error:
                if isinstance(condition.tag, str) and condition.tag.startswith(
                        f"{{{NS_STANZAS}}}") and not condition.tag.endswith("}text"):
                    return condition.tag.rpartition("}")[2]
    return None
