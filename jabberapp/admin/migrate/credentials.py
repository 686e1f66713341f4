"""
SCRAM material in XEP-0227 files, from its text forms: the <scram-credentials/> values
(base64), and the COMPAT forms older exports use -- ejabberd's 'scram:' password and
Prosody's extended attributes.
"""
from __future__ import annotations

import base64
import binascii
import re

from jabberapp.admin.migrate.pie import MigrationError
from jabberapp.sasl.scram import ScramCredentials

__all__ = ["MAX_ITERATIONS", "NS_PROSODY_EXTENDED", "credentials", "ejabberd_scram",
           "prosody_scram"]

#: Highest SCRAM iteration count accepted, as for [auth] scram_iterations: every login
#: costs the client (and PLAIN costs the server) that many rounds.
MAX_ITERATIONS = 10_000_000
_ITERATIONS = re.compile(r"[1-9][0-9]{0,9}\Z")
_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64}

# COMPAT: Prosody before 0.12 kept hashed accounts (SCRAM-SHA-1) as attributes in its own
# namespace: iteration_count, salt (raw), stored_key and server_key (hex).
NS_PROSODY_EXTENDED = "http://prosody.im/protocol/extended-xep0227"
_PROSODY_SCRAM = ("iteration_count", "salt", "stored_key", "server_key")


def credentials(hash_name, iterations, salt, stored_key, server_key, decode=None):
    """ScramCredentials from their text forms (base64 unless C{decode}); ValueError."""
    if not _ITERATIONS.match(iterations) or int(iterations) > MAX_ITERATIONS:
        raise ValueError(f"the iteration count must be a number from 1 to {MAX_ITERATIONS}")
    decode = decode or _base64
    salt_bytes = decode(salt, "salt")
    keys = [decode(stored_key, "StoredKey"), decode(server_key, "ServerKey")]
    size = _DIGEST_SIZES[hash_name]
    for key, what in zip(keys, ("StoredKey", "ServerKey")):
        if len(key) != size:
            raise ValueError(f"the {what} has {len(key)} bytes, not {size}")
    return ScramCredentials(salt=salt_bytes, iterations=int(iterations),
                            stored_key=keys[0], server_key=keys[1])


def _base64(text, what):
    try:
        data = base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"the {what} is not base64") from None
    if not data:
        raise ValueError(f"the {what} is empty")
    return data


def _hex(text, what):
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"the {what} is not hexadecimal") from None
    if not data:
        raise ValueError(f"the {what} is empty")
    return data


def _raw(text, what):
    if not text:
        raise ValueError(f"the {what} is empty")
    return text.encode("utf-8")


def ejabberd_scram(text, user, line):
    """COMPAT: ejabberd's old 'scram:[HASH,]STOREDKEY,SERVERKEY,SALT,ITERATIONS' password."""
    parts = text.split(",")
    hash_name = "sha1"
    if len(parts) == 5 and parts[0] in ("sha256", "sha512"):
        hash_name = parts.pop(0)
    try:
        if len(parts) != 4:
            raise ValueError("expected scram:[HASH,]STOREDKEY,SERVERKEY,SALT,ITERATIONS")
        stored, server, salt, iterations = parts
        return hash_name, credentials(hash_name, iterations, salt, stored, server)
    except ValueError as exc:
        raise MigrationError(f"bad SCRAM 'password' of {user.jid}: {exc}", user.source,
                             line) from None


def prosody_scram(el, user) -> None:
    """COMPAT: Prosody < 0.12's SCRAM-SHA-1 attributes (see NS_PROSODY_EXTENDED)."""
    prefix = f"{{{NS_PROSODY_EXTENDED}}}"
    values = {key[len(prefix):]: value for key, value in el.attrib.items()
              if key.startswith(prefix)}
    if not all(name in values for name in _PROSODY_SCRAM):
        return
    try:
        user.scram["sha1"] = credentials(
            "sha1", values["iteration_count"], values["salt"], values["stored_key"],
            values["server_key"], decode=lambda text, what: (
                _raw(text, what) if what == "salt" else _hex(text, what)))
    except ValueError as exc:
        raise MigrationError(f"bad Prosody SCRAM-SHA-1 attributes of {user.jid}: {exc}",
                             user.source, el.sourceline) from None
