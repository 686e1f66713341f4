"""
The data directory ([server] data_dir): made on first start, and checked so that a directory
the server cannot use is one clear line for the operator instead of a traceback later.
"""
import os


class DataDirError(Exception):
    """The data directory cannot be used; the message is one line for the operator."""


def ensure_data_dir(path: str, create: bool = True) -> None:
    """Make C{path} (with C{create}) and check that the server can write in it; raise
    L{DataDirError} saying why not. Without C{create}, a missing directory is fine when its
    nearest existing parent is a writable directory (the server would make it)."""
    where = f"[server] data_dir: cannot use {path}"
    if create:
        try:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            raise DataDirError(f"{where}: it is not a directory") from None
        except OSError as e:
            raise DataDirError(f"{where}: {e.strerror}") from None
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(os.path.abspath(existing))
        if parent == existing:
            break
        existing = parent
    what = "it" if existing == path else existing
    if not os.path.isdir(existing):
        raise DataDirError(f"{where}: {what} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataDirError(f"{where}: {what} is not writable by this user")
