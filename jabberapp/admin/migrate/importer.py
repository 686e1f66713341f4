"""
``jabberappctl import FILE...``: XEP-0227 files into the storage, all or nothing.

Theory of operation: check everything, then write everything in one transaction, with
memory bounded however large the files are.

1. L{prepare} (synchronous, before the storage is opened) reads every file once with the
   checking L{Reader}: hosts, names, JIDs, rosters, credentials, limits, duplicates. Each
   user, converted to what the stores hold, is appended to a spool -- an unnamed
   temporary file (mode 0600, deleted when closed; jabberappctl puts it in the data
   directory, on disk, rather than a /tmp that may be memory) -- so memory keeps only each
   account's place in the files and its SCRAM material. Plaintext passwords are turned
   into SCRAM material (every hash, the configured iteration count) in a pool of
   processes while the files are still being read, and are never written anywhere:
   PBKDF2 is what takes the time of a large import.
2. L{run} refuses accounts that exist in the storage already, then hands the spool, read
   back as records, to IBulkImport.bulk_import: one transaction, written in batches,
   rolled back if anything fails -- a database error or an interruption.
"""
from __future__ import annotations

import os
import pickle
import secrets
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from jabberapp.admin.migrate.pie import MECHANISM_NAMES, MigrationError
from jabberapp.admin.migrate.reader import Limits, Reader, UserData
from jabberapp.extensions import offline, private, vcard
from jabberapp.extensions.roster import items as roster_items
from jabberapp.interfaces import IBulkImport
from jabberapp.sasl.scram import HASHES, derive_all
from jabberapp.storage import AccountExists, AccountRecord, ArchiveRecord, DocumentRecord

__all__ = ["ImportPlan", "default_jobs", "limits_from", "prepare", "run"]


def limits_from(extension_options) -> Limits:
    """The L{Limits} of the configured extensions (their defaults when not configured)."""
    defaults = Limits()

    def option(extension, name, default):
        return extension_options.get(extension, {}).get(name, default)

    return Limits(
        max_roster_items=option("roster", "max_items", defaults.max_roster_items),
        max_vcard_size=option("vcard", "max_size", defaults.max_vcard_size),
        max_private_size=option("private", "max_size", defaults.max_private_size),
        max_offline=option("offline", "max_messages", defaults.max_offline))


class _Spool:
    """Pass 1's converted users, pickled one after the other to an unnamed temporary file."""

    def __init__(self, directory: str | None = None) -> None:
        try:
            self._file = tempfile.TemporaryFile(dir=directory)
        except OSError as exc:
            raise MigrationError(f"cannot create a temporary file in "
                                 f"{directory or tempfile.gettempdir()}: "
                                 f"{exc.strerror or exc}") from None
        self._pickler = pickle.Pickler(self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def add(self, user: UserData) -> None:
        """Keep what the stores will hold for C{user} -- never its password."""
        roster = None
        if user.roster or user.pending:
            roster = roster_items.Roster(dict(user.roster), dict(user.pending)).to_json()
        self._pickler.dump((user.host, user.username, roster, user.vcard, user.private,
                            user.offline))
        self._pickler.clear_memo()      # each user stands alone: memory stays flat

    def users(self) -> Iterator[tuple]:
        """Every user added, in order."""
        self._file.flush()
        self._file.seek(0)
        while True:
            try:
                # A fresh unpickler each time: one kept would remember every object loaded.
                yield pickle.load(self._file)
            except EOFError:
                return

    def close(self) -> None:
        self._file.close()


@dataclass
class ImportPlan:
    """What pass 1 found and kept: enough to check the storage and to write in pass 2."""

    limits: Limits
    now: float
    #: (host, username) -> (file, line), in file order.
    places: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    #: (host, username) -> {hash name: ScramCredentials}
    credentials: dict[tuple[str, str], dict] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    #: accounts with SCRAM material for some hashes only: (hash names...) -> how many
    partial: Counter = field(default_factory=Counter)
    #: what the files hold that jabberapp does not keep -> how often
    notices: Counter = field(default_factory=Counter)
    spool: _Spool | None = None

    def place(self, host: str, username: str) -> tuple[str | None, int | None]:
        """Where the user was read, (None, None) if it was not."""
        return self.places.get((host, username), (None, None))

    def records(self, stop: threading.Event | None = None) -> Iterator:
        """The bulk_import records of pass 2; MigrationError once C{stop} is set."""
        for host, username, roster, vcard_text, private_xml, messages in self.spool.users():
            if stop is not None and stop.is_set():
                raise MigrationError("interrupted")
            yield AccountRecord(host, username, self.credentials[(host, username)])
            if roster is not None:
                # A new roster, as RosterStore stores one: a fresh epoch, version 1.
                roster.update(epoch=secrets.token_urlsafe(6), version=1)
                yield DocumentRecord(roster_items.STORE_NAME, host, username,
                                     roster_items.ROSTER_KEY, roster)
            if vcard_text is not None:
                yield DocumentRecord(vcard.STORE, host, username, vcard.KEY, vcard_text)
            if private_xml:
                yield DocumentRecord(private.STORE, host, username, private.KEY, private_xml)
            for item, when, with_jid in messages:
                yield ArchiveRecord(offline.STORE_NAME, host, username, item, when, with_jid)

    def close(self) -> None:
        """Delete the spool."""
        if self.spool is not None:
            self.spool.close()

    def report(self, verb: str = "imported") -> str:
        """The lines telling the operator what was (or would be) imported and skipped."""
        c = self.counts
        hosts = sorted({host for host, _ in self.places})
        lines = [f"{verb} {_n(c['accounts'], 'account')}"
                 + (f" on {', '.join(hosts)}" if hosts else "")
                 + f": {_n(c['rosters'], 'roster')} ({_n(c['contacts'], 'contact')}, "
                 f"{_n(c['pending'], 'pending subscription request')}), "
                 f"{_n(c['vcards'], 'vCard')}, {_n(c['private'], 'private XML document')}, "
                 f"{_n(c['offline'], 'offline message')}"]
        for hash_names, count in sorted(self.partial.items()):
            have = " and ".join(MECHANISM_NAMES[name] for name in hash_names)
            lines.append(
                f"note: {_n(count, 'account')} {'has' if count == 1 else 'have'} {have} "
                f"credentials only: {'it logs' if count == 1 else 'they log'} in with "
                f"{'that mechanism' if len(hash_names) == 1 else 'those mechanisms'} or "
                f"PLAIN until the password is set again")
        if c["no_credentials"]:
            lines.append(f"note: {_n(c['no_credentials'], 'account')} without a password or "
                         f"SCRAM credentials: nobody can log in to "
                         f"{'it' if c['no_credentials'] == 1 else 'them'} until "
                         f"`jabberappctl passwd` sets one")
        if self.notices:
            skipped = ", ".join(f"{count} × {what}"
                                for what, count in sorted(self.notices.items()))
            lines.append(f"note: skipped what jabberapp does not keep: {skipped}")
        return "\n".join(lines)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _quiet_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool, the workers
    # must not each print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_jobs() -> int:
    """The processes deriving SCRAM keys: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def prepare(paths: Sequence[str], hosts: Sequence[str], limits: Limits, iterations: int,
            jobs: int | None = None, now: float | None = None, dry_run: bool = False,
            executor: Executor | None = None, spool_dir: str | None = None) -> ImportPlan:
    """
    Pass 1 (see the module docstring): check the files C{paths} for C{hosts}, spool the
    users (in C{spool_dir}, the system's temporary directory by default) and derive the
    SCRAM material of plaintext passwords with C{iterations} in C{jobs} processes, or on
    C{executor}, which the caller shuts down. A C{dry_run} only checks. Raises
    MigrationError for the first problem found; close() the plan when done with it.
    """
    plan = ImportPlan(limits, time.time() if now is None else now)
    reader = Reader(hosts, limits, plan.now)
    pool = None
    derived: dict[tuple[str, str], Future] = {}
    counts = plan.counts
    try:
        if not dry_run:
            plan.spool = _Spool(spool_dir)
        for user in reader.read(paths):
            key = (user.host, user.username)
            if key in plan.places:
                source, line = plan.places[key]
                raise MigrationError(f"{user.jid} is there twice (first at {source}:{line})",
                                     user.source, user.line)
            plan.places[key] = (user.source, user.line)
            counts["accounts"] += 1
            counts["rosters"] += bool(user.roster or user.pending)
            counts["contacts"] += len(user.roster)
            counts["pending"] += len(user.pending)
            counts["vcards"] += user.vcard is not None
            counts["private"] += bool(user.private)
            counts["offline"] += len(user.offline)
            if user.password is None:
                plan.credentials[key] = user.scram
                if not user.scram:
                    counts["no_credentials"] += 1
                elif len(user.scram) < len(HASHES):
                    plan.partial[tuple(name for name in HASHES if name in user.scram)] += 1
            elif not dry_run:
                if pool is None:
                    pool = executor or ProcessPoolExecutor(jobs or default_jobs(),
                                                           initializer=_quiet_worker)
                derived[key] = pool.submit(derive_all, user.password, iterations)
            if plan.spool is not None:
                plan.spool.add(user)
        for key, future in derived.items():
            plan.credentials[key] = future.result()
    except BaseException:
        plan.close()
        raise
    finally:
        if pool is not None and pool is not executor:
            # After an error or Ctrl-C: drop the queued derivations, wait for the running.
            pool.shutdown(wait=True, cancel_futures=True)
    plan.notices = reader.notices
    return plan


async def run(plan: ImportPlan, storage, dry_run: bool = False) -> str:
    """
    Pass 2 (see the module docstring) into C{storage}; the report for the operator.
    With C{dry_run}, only the check against the accounts already stored is made. The
    plan is closed in any case.
    """
    stop = threading.Event()
    try:
        if not IBulkImport.providedBy(storage):
            raise MigrationError(f"the storage backend ({type(storage).__name__}) cannot "
                                 f"import data (it does not provide IBulkImport)")
        for host in sorted({host for host, _ in plan.places}):
            existing = set(await storage.accounts.list_users(host))
            clashes = [username for (h, username) in plan.places
                       if h == host and username in existing]
            if clashes:
                source, line = plan.place(host, clashes[0])
                more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
                raise MigrationError(f"{clashes[0]}@{host} exists on this server already"
                                     f"{more}", source, line)
        if dry_run:
            return plan.report("checked") + "\nnothing was written (--dry-run)"
        await storage.bulk_import(plan.records(stop))
    except AccountExists as exc:    # created meanwhile by someone else
        username, _, host = str(exc).rpartition("@")
        source, line = plan.place(host, username)
        raise MigrationError(f"{exc} exists on this server already", source, line) from None
    finally:
        # Interrupted (CancelledError), the transaction may still be running in the
        # storage's thread: the stop flag (or the closed spool) makes it fail, and roll
        # back, at the next user; closing the storage waits for it.
        stop.set()
        plan.close()
    return plan.report()
