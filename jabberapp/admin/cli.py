"""
jabberappctl: the operator's console script -- accounts and configuration checks.

    jabberappctl [--config FILE] adduser JID [PASSWORD]
    jabberappctl [--config FILE] passwd JID [PASSWORD]
    jabberappctl [--config FILE] deluser JID
    jabberappctl [--config FILE] users HOST
    jabberappctl [--config FILE] import [--dry-run] [--jobs N] FILE...
    jabberappctl [--config FILE] export HOST FILE
    jabberappctl [--config FILE] check-config

Theory of operation. Everything that needs no storage -- the configuration, the JID, the
password -- is read and checked first, synchronously, so a mistake costs nothing and Ctrl-C
at the password prompt is an ordinary KeyboardInterrupt. Then one reactor run (task.react)
opens the storage named in the configuration, performs the command, and closes the storage
whatever happened, an interruption included. PBKDF2 runs in the reactor's thread pool through
InternalAuthProvider.make_credentials, as it does in the server.

The server may be running on the same SQLite file: each storage call is one short
transaction, and a writer waits on SQLite's busy timeout (jabberapp.storage.sqlite).
import is the exception: it checks its files first (jabberapp.admin.migrate.importer), but
then writes them in one transaction, so it is meant to run while the server is stopped.

Every error is one line on stderr, "jabberappctl: <message>", and exit status 1 (130 when
interrupted); usage errors are argparse's, exit status 2. Passwords are never printed or
logged: not in messages, not in tracebacks (--debug shows tracebacks only of our own bugs).
"""
from __future__ import annotations

import argparse
import functools
import getpass
import os
import sqlite3
import sys
import traceback
from collections.abc import Awaitable, Callable

from twisted.internet import defer, task, threads

from jabberapp import __version__
from jabberapp.admin.check import load_settings, validate
from jabberapp.admin.migrate import exporter, importer
from jabberapp.admin.migrate.pie import MigrationError
from jabberapp.auth import InternalAuthProvider
from jabberapp.config import ConfigError, ServerConfig
from jabberapp.status import read_status
from jabberapp.jid import JID, InvalidJID, prep_domain
from jabberapp.sasl.scram import prep_password
from jabberapp.server import StartupError
from jabberapp.storage import AccountExists, NoSuchAccount, StorageError, open_storage

__all__ = ["CommandError", "build_parser", "main", "read_password"]

PROG = "jabberappctl"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

#: A line read from standard input longer than this is not taken as a password: it is
#: a wrong file redirected by mistake, and reading it all could exhaust memory.
MAX_PASSWORD_BYTES = 4096

#: A command's storage step: (reactor, storage) -> the success message (or None).
Job = Callable[..., Awaitable[str | None]]


class CommandError(Exception):
    """A problem the operator can fix; its text is the single line printed on stderr."""


# -- output ---------------------------------------------------------------------------------


def _write(stream, line: str) -> None:
    """
    Write C{line} and a newline; never fails on characters the terminal cannot encode.
    When the reader has gone (`jabberappctl users HOST | head -1`), exit quietly with 1.
    """
    try:
        try:
            stream.write(line + "\n")
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write(line.encode(encoding, "backslashreplace").decode(encoding) + "\n")
        stream.flush()
    except BrokenPipeError:
        # Python would report the pipe again when it flushes the stream at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
        raise SystemExit(EXIT_ERROR) from None


def _end_prompt_line() -> None:
    """After Ctrl-C or Ctrl-D at a password prompt: start the error on a line of its own."""
    if sys.stderr.isatty():
        _write(sys.stderr, "")


def _fail(message: str, code: int = EXIT_ERROR):
    """Print C{message} as the one error line and exit with C{code}."""
    _write(sys.stderr, f"{PROG}: {' '.join(message.splitlines())}")
    raise SystemExit(code)


# -- arguments and input --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of jabberappctl (--config is accepted before or after the command)."""
    config_help = ("INI configuration file, as given to `twistd jabberapp --config` "
                   "(default: the built-in defaults, like the server)")
    parser = argparse.ArgumentParser(
        prog=PROG, description="Manage jabberapp accounts and check its configuration.")
    parser.add_argument("-c", "--config", metavar="FILE", default=None, help=config_help)
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of an unexpected error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Repeated on each command, so `jabberappctl adduser ... --config FILE` works too;
    # SUPPRESS keeps the value given before the command when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS,
                        help=config_help)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    password_help = ("the password; when omitted it is asked twice on a terminal, or read "
                     "as one line from standard input (safer: arguments are visible to "
                     "other local users)")

    adduser = commands.add_parser("adduser", parents=[common], help="create an account",
                                  description="Create an account with a password.")
    adduser.add_argument("jid", metavar="JID", help="bare JID of the account, user@host")
    adduser.add_argument("password", metavar="PASSWORD", nargs="?", help=password_help)
    adduser.set_defaults(handler=_adduser, uses_storage=True)

    passwd = commands.add_parser("passwd", parents=[common], help="set an account's password",
                                 description="Replace the password of an account.")
    passwd.add_argument("jid", metavar="JID", help="bare JID of the account, user@host")
    passwd.add_argument("password", metavar="PASSWORD", nargs="?", help=password_help)
    passwd.set_defaults(handler=_passwd, uses_storage=True)

    deluser = commands.add_parser(
        "deluser", parents=[common], help="delete an account and all its data",
        description="Delete an account with its credentials and everything stored for it "
                    "(roster, vCard, offline messages, ...), in one transaction.")
    deluser.add_argument("jid", metavar="JID", help="bare JID of the account, user@host")
    deluser.set_defaults(handler=_deluser, uses_storage=True)

    users = commands.add_parser("users", parents=[common], help="list the accounts of a host",
                                description="Print the usernames of HOST, one a line, sorted.")
    users.add_argument("host", metavar="HOST", help="a host of [server] hosts")
    users.set_defaults(handler=_users, uses_storage=True)

    import_ = commands.add_parser(
        "import", parents=[common], help="import XEP-0227 files (from Prosody, ejabberd)",
        description="Import accounts, rosters, vCards, private XML and offline messages "
                    "from XEP-0227 files, as Prosody (prosody-migrator) and ejabberd "
                    "(ejabberdctl export_piefxis) write them. Everything is checked "
                    "first, then written in one transaction: a bad file imports nothing. "
                    "Run it while the server is stopped.")
    import_.add_argument("files", metavar="FILE", nargs="+",
                         help="a XEP-0227 file (several for Prosody's one file per user)")
    import_.add_argument("--dry-run", action="store_true",
                         help="check the files and the storage, write nothing")
    import_.add_argument("-j", "--jobs", type=_positive, default=None, metavar="N",
                         help="processes deriving SCRAM keys from plaintext passwords "
                              "(default: one per CPU)")
    import_.set_defaults(handler=_import, uses_storage=True)

    export = commands.add_parser(
        "export", parents=[common], help="export a host's accounts and data (XEP-0227)",
        description="Write every account of HOST with its SCRAM credentials, roster, "
                    "vCard, private XML and offline messages to FILE in the XEP-0227 "
                    "format. FILE is readable by its owner only; - writes to standard "
                    "output.")
    export.add_argument("host", metavar="HOST", help="a host of [server] hosts")
    export.add_argument("file", metavar="FILE", help="the file to write, or -")
    export.set_defaults(handler=_export, uses_storage=True)

    check = commands.add_parser(
        "check-config", parents=[common], help="validate the configuration",
        description="Check the configuration and the extension list as the server does "
                    "before it starts, without opening ports or writing anything.")
    check.set_defaults(handler=_check_config, uses_storage=False)

    links = commands.add_parser(
        "links", parents=[common], help="show the running server's s2s links",
        description="List the federation links of the server running with this "
                    "configuration: direction, local and remote domain, state, TLS, "
                    "authentication method.")
    links.set_defaults(handler=_links, uses_storage=False)
    return parser


def _positive(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return value


def user_jid(text: str, hosts: tuple[str, ...]):
    """The prepared bare JID of an account on one of C{hosts}; CommandError otherwise."""
    try:
        jid = JID.parse(text)
    except InvalidJID as exc:
        raise CommandError(f"invalid JID {text!r}: {exc}") from None
    if jid.local is None:
        raise CommandError(f"{text!r} is not a user JID: expected user@host")
    if jid.resource is not None:
        raise CommandError(f"{text!r} has a resource: expected a bare JID, user@host")
    if jid.domain not in hosts:
        raise CommandError(f"{jid.domain!r} is not a host of this server "
                           f"(hosts: {', '.join(hosts)})")
    return jid


def served_host(text: str, hosts: tuple[str, ...]) -> str:
    """The prepared domain C{text} if it is one of C{hosts}; CommandError otherwise."""
    try:
        host = prep_domain(text)
    except InvalidJID as exc:
        raise CommandError(f"invalid host {text!r}: {exc}") from None
    if host not in hosts:
        raise CommandError(f"{host!r} is not a host of this server (hosts: {', '.join(hosts)})")
    return host


def read_password(jid, stdin=None, ask: Callable[[str], str] = getpass.getpass) -> str:
    """
    The password for C{jid}: asked twice with C{ask} when C{stdin} is a terminal, otherwise
    the first line of C{stdin} (UTF-8, without its line ending). CommandError on failure.
    """
    if stdin is None:
        stdin = sys.stdin
    if stdin is None:   # the process was started with standard input closed
        raise CommandError("no PASSWORD argument and no standard input to read it from")
    try:
        interactive = stdin.isatty()
    except (OSError, ValueError):
        interactive = False
    if interactive:
        try:
            first = ask(f"Password for {jid}: ")
            second = ask(f"Password for {jid} (again): ")
        except EOFError:
            _end_prompt_line()
            raise CommandError("no password entered") from None
        if first != second:
            raise CommandError("the two passwords do not match")
        return first
    source = getattr(stdin, "buffer", stdin)
    try:
        line = source.readline(MAX_PASSWORD_BYTES + 2)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise CommandError(f"cannot read the password from standard input: {reason}") from None
    if isinstance(line, str):
        line = line.encode("utf-8", "surrogateescape")
    if not line:
        raise CommandError("no password on standard input (give PASSWORD, or one line on "
                           "standard input)")
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    elif len(line) > MAX_PASSWORD_BYTES:
        raise CommandError(f"the first line of standard input is longer than "
                           f"{MAX_PASSWORD_BYTES} bytes: not a password")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("cannot read the password from standard input: not UTF-8 "
                           "text") from None


def _password(args, jid) -> str:
    """The checked password of C{args} or from standard input; CommandError when unusable."""
    password = args.password if args.password is not None else read_password(jid)
    try:
        prep_password(password)
    except ValueError as exc:   # the message never contains the password
        raise CommandError(str(exc)) from None
    return password


# -- the commands ---------------------------------------------------------------------------
#
# Each handler takes (args, settings), checks its arguments synchronously and returns the
# Job to run against the storage; check-config (uses_storage=False) gets no settings, does
# all its work at once and returns None.


def _make_credentials(reactor, storage, password: str, iterations: int):
    """Deferred: SCRAM material for C{password}, derived in the reactor's thread pool."""
    run_in_thread = functools.partial(threads.deferToThreadPool, reactor,
                                      reactor.getThreadPool())
    auth = InternalAuthProvider(storage.accounts, run_in_thread)
    return auth.make_credentials(password, iterations)


def _adduser(args, settings: ServerConfig) -> Job:
    jid = user_jid(args.jid, settings.hosts)
    password = _password(args, jid)

    async def job(reactor, storage):
        accounts = storage.accounts
        # Checked first only to spare the derivation; create() decides, atomically.
        if await accounts.exists(jid.domain, jid.local):
            raise CommandError(f"{jid} already exists")
        credentials = await _make_credentials(reactor, storage, password,
                                              settings.auth.scram_iterations)
        try:
            await accounts.create(jid.domain, jid.local, credentials)
        except AccountExists:
            raise CommandError(f"{jid} already exists") from None
        return f"added {jid}"

    return job


def _passwd(args, settings: ServerConfig) -> Job:
    jid = user_jid(args.jid, settings.hosts)
    password = _password(args, jid)

    async def job(reactor, storage):
        accounts = storage.accounts
        if not await accounts.exists(jid.domain, jid.local):
            raise CommandError(f"no such user {jid}")
        credentials = await _make_credentials(reactor, storage, password,
                                              settings.auth.scram_iterations)
        try:
            await accounts.set_credentials(jid.domain, jid.local, credentials)
        except NoSuchAccount:
            raise CommandError(f"no such user {jid}") from None
        return f"changed the password of {jid}"

    return job


def _deluser(args, settings: ServerConfig) -> Job:
    jid = user_jid(args.jid, settings.hosts)

    async def job(reactor, storage):
        # Not accounts.delete(): a deleted user must leave no data behind.
        if not await storage.delete_user(jid.domain, jid.local):
            raise CommandError(f"no such user {jid}")
        return f"deleted {jid}"

    return job


def _users(args, settings: ServerConfig) -> Job:
    host = served_host(args.host, settings.hosts)

    async def job(reactor, storage):
        for username in await storage.accounts.list_users(host):
            _write(sys.stdout, username)
        return None

    return job


def _import(args, settings: ServerConfig) -> Job:
    # Pass 1, before the storage is opened: a bad file costs nothing, Ctrl-C is plain.
    plan = importer.prepare(args.files, settings.hosts,
                            importer.limits_from(settings.extension_options),
                            settings.auth.scram_iterations, jobs=args.jobs,
                            dry_run=args.dry_run,
                            spool_dir=settings.data_dir if os.path.isdir(settings.data_dir)
                            else None)

    async def job(reactor, storage):
        return await importer.run(plan, storage, dry_run=args.dry_run)

    return job


def _export(args, settings: ServerConfig) -> Job:
    host = served_host(args.host, settings.hosts)

    async def job(reactor, storage):
        try:
            summary = await exporter.export_to(storage, host, args.file, sys.stdout.buffer)
        except BrokenPipeError:
            # The reader has gone (export HOST - | head): say so once, and keep Python from
            # reporting the pipe again when it flushes standard output at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise CommandError("standard output was closed before the export was complete")
        for what, count in sorted(summary.unreadable.items()):
            _write(sys.stderr, f"{PROG}: warning: left out {count} unreadable stored {what}")
        if args.file == "-":
            return None
        count = summary.counts["accounts"]
        return f"exported {count} account{'' if count == 1 else 's'} of {host} to {args.file}"

    return job


def _check_config(args, settings: None) -> None:
    checked = validate(args.config)
    _write(sys.stdout, f"configuration OK: {', '.join(checked.settings.hosts)}")


def _links(args, settings: None) -> None:
    settings, _ = load_settings(args.config)
    status = read_status(settings.data_dir)
    if status is None:
        raise CommandError(f"no jabberapp with federation is running on {settings.data_dir}")
    rows = status["s2s_links"]
    if not rows:
        _write(sys.stdout, "no s2s links")
    for link in rows:
        arrow = "->" if link["direction"] == "outbound" else "<-"
        _write(sys.stdout, " ".join(str(part) for part in (
            link["direction"], link["local"], arrow, link["peer"], link["state"],
            link["tls"] or "no-TLS", link["auth"] or "-", link["address"] or "-",
            "bidi" if link["bidi"] else "")).rstrip())


# -- running --------------------------------------------------------------------------------


def _describe(failure_value: BaseException) -> str | None:
    """The one-line message for an anticipated exception, or None for one of our bugs."""
    if isinstance(failure_value, (CommandError, ConfigError, MigrationError, StartupError,
                                  StorageError)):
        return str(failure_value)
    if isinstance(failure_value, sqlite3.Error):
        return f"database error: {failure_value}"
    return None


def _report(exc: BaseException, debug: bool):
    """Print C{exc} as the one error line (plus a traceback for our bugs with --debug); exit."""
    message = _describe(exc)
    if message is None:
        if debug:
            traceback.print_exception(exc)
        message = f"unexpected error: {type(exc).__name__}: {exc}"
    _fail(message)


async def _with_storage(reactor, settings: ServerConfig, job: Job) -> str | None:
    """Open the storage, run C{job} on it and close it, whatever happened."""
    storage = await open_storage(settings.storage, reactor)
    try:
        return await job(reactor, storage)
    finally:
        await storage.close()


def _run_job(settings: ServerConfig, job: Job, debug: bool):
    """Run C{job} in one reactor run; exits the process (task.react) with its status."""

    async def main(reactor):
        work = defer.ensureDeferred(_with_storage(reactor, settings, job))
        interrupted = []

        def before_shutdown():
            # Ctrl-C (or SIGTERM) stops the reactor: cancel the command at its current
            # step and let the reactor wait until the storage is closed.
            if work.called:
                return None
            interrupted.append(True)
            done = defer.Deferred()
            work.addBoth(lambda result: (done.callback(None), result)[1])
            work.cancel()
            return done

        reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
        try:
            message = await work
        except Exception as exc:
            if interrupted:
                _fail("interrupted", EXIT_INTERRUPTED)
            _report(exc, debug)
        if message:
            _write(sys.stdout, message)

    task.react(main)


def main(argv: list[str] | None = None):
    """Entry point of the jabberappctl console script; exits the process with its status."""
    args = build_parser().parse_args(argv)
    try:
        settings = None
        if args.uses_storage:
            settings, _ = load_settings(args.config)
            if settings.storage.backend == "memory":
                raise CommandError("[storage] backend is memory: it keeps nothing between "
                                   "runs, so there are no accounts to manage")
        job = args.handler(args, settings)
    except KeyboardInterrupt:
        _end_prompt_line()
        _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        _report(exc, args.debug)
    if job is None:
        raise SystemExit(0)
    _run_job(settings, job, args.debug)


if __name__ == "__main__":
    main()
