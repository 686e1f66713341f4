"""
The SQLite schema, versioned: ``schema_version`` holds the number of MIGRATIONS applied;
migrate() applies the missing ones in one transaction and refuses a database newer than the
code. Add a migration by appending to MIGRATIONS; never edit one that has shipped.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from jabberapp.storage import SchemaTooNew, StorageError

__all__ = ["MIGRATIONS", "migrate"]

#: Each migration is a sequence of SQL statements or a callable taking the cursor.
#: Migration N (1-based) brings the schema from version N-1 to N.
MIGRATIONS: Sequence[Sequence[str] | Callable] = (
    # 1: accounts with SCRAM credentials, key-value documents, archives.
    (
        """CREATE TABLE accounts (
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               PRIMARY KEY (host, username)
           ) WITHOUT ROWID""",
        """CREATE TABLE credentials (
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               hash_name TEXT NOT NULL,
               salt BLOB NOT NULL,
               iterations INTEGER NOT NULL,
               stored_key BLOB NOT NULL,
               server_key BLOB NOT NULL,
               PRIMARY KEY (host, username, hash_name),
               FOREIGN KEY (host, username) REFERENCES accounts (host, username)
                   ON DELETE CASCADE
           ) WITHOUT ROWID""",
        """CREATE TABLE keyvalue (
               store TEXT NOT NULL,
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               key TEXT NOT NULL,
               value TEXT NOT NULL,
               PRIMARY KEY (store, host, username, key)
           ) WITHOUT ROWID""",
        # AUTOINCREMENT: an id is never reused, even after the newest item is deleted.
        """CREATE TABLE archive (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               store TEXT NOT NULL,
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               "when" REAL NOT NULL,
               with_jid TEXT,
               item TEXT NOT NULL
           )""",
        'CREATE INDEX archive_by_time ON archive (store, host, username, "when", id)',
        'CREATE INDEX archive_by_with ON archive (store, host, username, with_jid, "when", id)',
    ),
    # 2: XEP-0313 message archives (jabberapp.storage.sqlite.messages): the messages in
    # archive order per account (useq), their ids, a full-text index of their text
    # (FTS5, external content kept in step by triggers), and archiving preferences.
    (
        """CREATE TABLE mam_message (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               useq INTEGER NOT NULL,
               id TEXT NOT NULL,
               "when" REAL NOT NULL,
               with_jid TEXT NOT NULL,
               with_resource TEXT,
               stanza TEXT NOT NULL,
               text TEXT
           )""",
        'CREATE UNIQUE INDEX mam_by_user ON mam_message (host, username, useq, "when")',
        "CREATE UNIQUE INDEX mam_by_id ON mam_message (host, username, id)",
        "CREATE INDEX mam_by_with ON mam_message (host, username, with_jid, useq)",
        'CREATE INDEX mam_by_age ON mam_message (host, "when")',
        """CREATE VIRTUAL TABLE mam_text USING fts5(
               text, content='mam_message', content_rowid='seq',
               tokenize='unicode61 remove_diacritics 2', detail=none)""",
        """CREATE TRIGGER mam_text_added AFTER INSERT ON mam_message
               WHEN new.text IS NOT NULL BEGIN
               INSERT INTO mam_text (rowid, text) VALUES (new.seq, new.text);
           END""",
        """CREATE TRIGGER mam_text_removed AFTER DELETE ON mam_message
               WHEN old.text IS NOT NULL BEGIN
               INSERT INTO mam_text (mam_text, rowid, text) VALUES ('delete', old.seq, old.text);
           END""",
        """CREATE TABLE mam_prefs (
               host TEXT NOT NULL,
               username TEXT NOT NULL,
               prefs TEXT NOT NULL,
               PRIMARY KEY (host, username)
           ) WITHOUT ROWID""",
    ),
)



def migrate(txn, path: str) -> tuple[int, int]:
    """Bring the database at C{path} to the latest schema: (version before, version now)."""
    txn.execute("BEGIN IMMEDIATE")
    txn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    txn.execute("SELECT version FROM schema_version")
    rows = txn.fetchall()
    current = rows[0][0] if rows else 0
    target = len(MIGRATIONS)
    if len(rows) > 1 or current < 0:
        raise StorageError(f"{path}: the schema_version table is corrupt")
    if current > target:
        raise SchemaTooNew(
            f"{path}: database schema version {current} is newer than this jabberapp "
            f"supports ({target}); run a newer jabberapp or restore a backup")
    for version in range(current + 1, target + 1):
        step = MIGRATIONS[version - 1]
        if callable(step):
            step(txn)
        else:
            for statement in step:
                txn.execute(statement)
    if not rows:
        txn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
    elif current != target:
        txn.execute("UPDATE schema_version SET version = ?", (target,))
    return current, target
