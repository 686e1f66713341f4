"""
XML fragments kept in storage as text (vCards, private XML, ...): written with exactly the
namespace declarations they use, read back with a parser that resolves no entities, loads
nothing from the network and drops comments and processing instructions.
"""
import copy

from lxml import etree

__all__ = ["from_text", "to_text"]

# For stored documents (ours, or imported): no entities, no network, no comments.
_STORED = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False, collect_ids=False, remove_comments=True,
                          remove_pis=True)


def to_text(el):
    """C{el} as standalone XML text: its subtree with exactly the namespace declarations it
    uses (none of its stanza's), no tail."""
    el = copy.deepcopy(el)
    el.tail = None
    etree.cleanup_namespaces(el)
    return etree.tostring(el, encoding="unicode")


def from_text(text):
    """The element stored as C{text} by to_text()."""
    return etree.fromstring(text, _STORED)
