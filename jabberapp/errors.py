"""
Stanza errors (RFC 6120 §8.3) and stream errors (RFC 6120 §4.9), with their condition tables.

Stanza errors answer one request and leave the stream up; stream errors end the connection and
are raised only by the stream layers (xml/, stream/, c2s/, s2s/, component/).

This module is on the ground floor: it imports nothing of jabberapp but the namespace
constants (jabberapp.namespaces, a leaf), so every layer, the XML parser included, may raise
these errors.
"""
from lxml import etree

from jabberapp.namespaces import NS_CLIENT, NS_STANZAS, NS_STREAM_ERRORS, NS_STREAMS

# Condition -> default error type, RFC 6120 §8.3.3.
STANZA_CONDITIONS = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

# RFC 6120 §4.9.3.
STREAM_CONDITIONS = frozenset({
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone",
    "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
    "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed",
    "policy-violation", "remote-connection-failed", "reset", "resource-constraint",
    "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
    "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type",
    "unsupported-version",
})


class StanzaError(Exception):
    """A per-stanza error; the dispatcher turns it into an error reply."""

    def __init__(self, condition, text=None, type=None, app_condition=None):
        if condition not in STANZA_CONDITIONS:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text
        self.type = type or STANZA_CONDITIONS[condition]
        self.app_condition = app_condition

    def to_element(self, by=None):
        """The <error/> child element (in the client namespace) for a reply."""
        error = etree.Element(f"{{{NS_CLIENT}}}error", type=self.type)
        if by:
            error.set("by", by)
        etree.SubElement(error, f"{{{NS_STANZAS}}}{self.condition}", nsmap={None: NS_STANZAS})
        if self.text:
            text = etree.SubElement(error, f"{{{NS_STANZAS}}}text", nsmap={None: NS_STANZAS})
            text.text = self.text
        if self.app_condition is not None:
            error.append(self.app_condition)
        return error


class StreamError(Exception):
    """An error that ends the stream; sent as <stream:error/> before the close."""

    def __init__(self, condition, text=None):
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def to_element(self):
        """The <stream:error/> element."""
        error = etree.Element(f"{{{NS_STREAMS}}}error", nsmap={"stream": NS_STREAMS})
        etree.SubElement(error, f"{{{NS_STREAM_ERRORS}}}{self.condition}",
                         nsmap={None: NS_STREAM_ERRORS})
        if self.text:
            text = etree.SubElement(error, f"{{{NS_STREAM_ERRORS}}}text",
                                    nsmap={None: NS_STREAM_ERRORS})
            text.text = self.text
        return error
