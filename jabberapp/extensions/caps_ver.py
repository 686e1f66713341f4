"""
XEP-0115 §5: the verification string and the ver of a disco#info answer -- pure functions,
no I/O, used by the caps extension (caps.py) for the server's own ver and to verify the
vers clients advertise.

``parse_disco_info(query)`` reads a disco#info <query/> into a L{DiscoInfo} (identities,
features, and the XEP-0128 forms with a hidden FORM_TYPE, read with jabberapp.forms), or
raises L{IllFormed} per §5.4 3.3-3.5 (and for '<' in any string, which would let one
answer pose as another with the same ver). ``compute_ver(info, hash_name)`` is the ver
with one of HASHES; ``verification_string(info)`` the string S it hashes.
"""
import base64
import hashlib
from dataclasses import dataclass

from jabberapp import forms
from jabberapp.xml.ns import NS_DISCO_INFO, NS_XML

SERVER_HASH = "sha-1"     # §8.1: mandatory to implement, so every client can check it

# Hash name (IANA Hash Function Textual Names; sha3-*, blake2b-* from XEP-0300) -> factory.
_HASH_FACTORIES = {
    "sha-1": lambda: hashlib.sha1(), "sha-224": lambda: hashlib.sha224(),
    "sha-256": lambda: hashlib.sha256(), "sha-384": lambda: hashlib.sha384(),
    "sha-512": lambda: hashlib.sha512(), "sha3-224": lambda: hashlib.sha3_224(),
    "sha3-256": lambda: hashlib.sha3_256(), "sha3-384": lambda: hashlib.sha3_384(),
    "sha3-512": lambda: hashlib.sha3_512(),
    "blake2b-256": lambda: hashlib.blake2b(digest_size=32),
    "blake2b-512": lambda: hashlib.blake2b(digest_size=64),
}
HASHES = frozenset(_HASH_FACTORIES)


class IllFormed(ValueError):
    """A disco#info answer that cannot be hashed (§5.4 3.3-3.5, or '<' in a string)."""


@dataclass(frozen=True)
class DiscoInfo:
    """What a disco#info answer says, as XEP-0115 hashes it."""

    identities: tuple   # (category, type, lang, name), '' when absent
    features: tuple     # namespaces
    forms: tuple        # (FORM_TYPE, ((var, (value, ...)), ...)), hidden FORM_TYPE only


def parse_disco_info(query):
    """The DiscoInfo of a disco#info <query/>; IllFormed per §5.4 (forms without a hidden
    FORM_TYPE are left out, §5.4 3.6)."""
    identities, features, hashed = [], [], []
    form_types = set()
    for child in query:
        if child.tag == f"{{{NS_DISCO_INFO}}}identity":
            category, type_ = child.get("category"), child.get("type")
            if not category or not type_:
                raise IllFormed("an identity without category or type")
            identities.append((category, type_, child.get(f"{{{NS_XML}}}lang", ""),
                               child.get("name", "")))
        elif child.tag == f"{{{NS_DISCO_INFO}}}feature":
            if not child.get("var"):
                raise IllFormed("a feature without var")
            features.append(child.get("var"))
        elif child.tag == forms.X:
            try:
                form = forms.extended_info(child)
            except forms.FormError as e:
                raise IllFormed(str(e)) from None
            if form is None:
                continue
            if form[0] in form_types:
                raise IllFormed(f"two forms of FORM_TYPE {form[0]!r}")
            form_types.add(form[0])
            if form[1] is not None:
                hashed.append(form)
    if len(set(identities)) != len(identities):
        raise IllFormed("the same identity twice")
    if len(set(features)) != len(features):
        raise IllFormed("the same feature twice")
    info = DiscoInfo(tuple(identities), tuple(features),
                     tuple((form_type, fields) for form_type, fields in hashed))
    for text in _strings(info):
        if "<" in text:
            raise IllFormed("'<' in a hashed string")
    return info


def _strings(info):
    for identity in info.identities:
        yield from identity
    yield from info.features
    for form_type, fields in info.forms:
        yield form_type
        for var, values in fields:
            yield var
            yield from values


def _octets(strings):
    """Sorted with the i;octet collation (§5.1): by UTF-8 bytes."""
    return sorted(strings, key=lambda text: text.encode("utf-8"))


def verification_string(info):
    """The string S of §5.1, before hashing."""
    parts = [f"{identity}<" for identity in
             _octets("/".join(identity) for identity in info.identities)]
    parts.extend(f"{feature}<" for feature in _octets(info.features))
    for form_type, fields in sorted(info.forms, key=lambda form: form[0].encode("utf-8")):
        parts.append(f"{form_type}<")
        for var, values in sorted(fields, key=lambda field: field[0].encode("utf-8")):
            parts.append(f"{var}<")
            parts.extend(f"{value}<" for value in _octets(values))
    return "".join(parts)


def compute_ver(info, hash_name=SERVER_HASH):
    """The ver of C{info} with the hash C{hash_name} (§5.1); KeyError when not in HASHES."""
    digest = _HASH_FACTORIES[hash_name]()
    digest.update(verification_string(info).encode("utf-8"))
    return base64.b64encode(digest.digest()).decode("ascii")
