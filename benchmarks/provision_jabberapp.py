"""
Bulk-create benchmark accounts in a jabberapp storage, through jabberapp's own storage API.

    python -m benchmarks.provision_jabberapp --config FILE --host localhost \
        --password PW --iterations 10000 --salt HEX NAME_PATTERN:COUNT ...

Every account gets the same SCRAM material (one salt, derived once per hash), so creating
10 000 accounts costs three PBKDF2 runs, not 30 000. Accounts that already exist are kept.
Prints one JSON line: {"created": N, "existing": M, "seconds": S}.
"""
import argparse
import json
import sys
import time

from twisted.internet import defer, task


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--salt", required=True, help="hex")
    parser.add_argument("groups", nargs="+", help="PREFIX:COUNT, e.g. u:10000 p:1000")
    return parser.parse_args(argv)


async def provision(reactor, args):
    from jabberapp.admin.check import load_settings
    from jabberapp.sasl.scram import HASHES, derive
    from jabberapp.storage import open_storage

    settings, _ = load_settings(args.config)
    salt = bytes.fromhex(args.salt)
    credentials = {name: derive(args.password, name, salt, args.iterations) for name in HASHES}
    started = time.monotonic()
    storage = await open_storage(settings.storage, reactor)
    try:
        existing = set(await storage.accounts.list_users(args.host))
        wanted = []
        for group in args.groups:
            prefix, count = group.rsplit(":", 1)
            wanted.extend(f"{prefix}{i}" for i in range(int(count)))
        missing = [name for name in wanted if name not in existing]
        # The sqlite backend runs every call on its one thread, in order: queue them in
        # bounded batches so the reactor's queue stays small.
        for start in range(0, len(missing), 500):
            batch = missing[start:start + 500]
            await defer.gatherResults(
                [storage.accounts.create(args.host, name, credentials) for name in batch],
                consumeErrors=True)
    finally:
        await storage.close()
    print(json.dumps({"created": len(missing), "existing": len(wanted) - len(missing),
                      "seconds": round(time.monotonic() - started, 2)}))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    task.react(lambda reactor: defer.ensureDeferred(provision(reactor, args)))


if __name__ == "__main__":
    main()
