"""
IBulkImport for the sqlite backend: the records of one bulk_import() written in one
transaction, batched into executemany calls.
"""
from __future__ import annotations

from jabberapp.storage import AccountExists, checked_record

__all__ = ["BULK_BATCH", "bulk_import"]

#: bulk_import() writes its records with one executemany per table every this many records.
BULK_BATCH = 1000


class _BulkWriter:
    """
    The rows of one bulk_import() transaction, written with executemany every BULK_BATCH
    records. Accounts are checked against the table before each write, so an existing one
    is named (AccountExists) rather than reported as a constraint failure.
    """

    def __init__(self, txn) -> None:
        self.txn = txn
        self.count = 0
        self.seen: set[tuple[str, str]] = set()
        self.accounts: list[tuple[str, str]] = []
        self.credentials: list[tuple] = []
        self.documents: list[tuple] = []
        self.items: list[tuple] = []

    def add(self, checked: tuple) -> None:
        kind = checked[0]
        if kind == "account":
            _, host, username, credentials = checked
            if (host, username) in self.seen:
                raise AccountExists(f"{username}@{host}")
            self.seen.add((host, username))
            self.accounts.append((host, username))
            self.credentials.extend(
                (host, username, hash_name, c.salt, c.iterations, c.stored_key, c.server_key)
                for hash_name, c in credentials.items())
        elif kind == "document":
            self.documents.append(checked[1:])
        else:
            self.items.append(checked[1:])
        self.count += 1
        if self.count % BULK_BATCH == 0:
            self.flush()

    def flush(self) -> None:
        txn = self.txn
        if self.accounts:
            self._check_new(self.accounts)
            txn.executemany("INSERT INTO accounts (host, username) VALUES (?, ?)",
                            self.accounts)
            txn.executemany(
                "INSERT INTO credentials (host, username, hash_name, salt, iterations, "
                "stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)", self.credentials)
        if self.documents:
            txn.executemany("INSERT OR REPLACE INTO keyvalue (store, host, username, key, "
                            "value) VALUES (?, ?, ?, ?, ?)", self.documents)
        if self.items:
            txn.executemany('INSERT INTO archive (store, host, username, item, "when", '
                            "with_jid) VALUES (?, ?, ?, ?, ?, ?)", self.items)
        self.accounts, self.credentials, self.documents, self.items = [], [], [], []

    def _check_new(self, accounts) -> None:
        by_host: dict[str, list[str]] = {}
        for host, username in accounts:
            by_host.setdefault(host, []).append(username)
        existing = set()
        chunk = 500   # well below SQLite's limit on bound parameters
        for host, usernames in by_host.items():
            for i in range(0, len(usernames), chunk):
                part = usernames[i:i + chunk]
                self.txn.execute(f"SELECT username FROM accounts WHERE host = ? AND username "
                                 f"IN ({', '.join('?' * len(part))})", (host, *part))
                existing.update((host, row[0]) for row in self.txn.fetchall())
        for host, username in accounts:
            if (host, username) in existing:
                raise AccountExists(f"{username}@{host}")


def bulk_import(txn, records):
    """IBulkImport.bulk_import as one interaction: the number of records written."""
    txn.execute("BEGIN IMMEDIATE")    # the write lock now: another writer waits, not fails
    writer = _BulkWriter(txn)
    for record in records:
        writer.add(checked_record(record))
    writer.flush()
    return writer.count
