"""
The running server's status file: what `jabberappctl` reads to show live state (s2s links)
without a network admin port.

The server rewrites <data_dir>/status.json atomically (write, then rename) whenever the state
changes -- links change rarely, and a file written before the change is logged means an operator
never sees a log line the status contradicts -- and removes it on a clean stop. The file names
the server's PID, so a file left by a crash is recognised as stale.
"""
import json
import os

STATUS_FILE = "status.json"


class StatusFile:
    """Writes C{{"pid": ..., "s2s_links": links()}} to the status file on demand."""

    def __init__(self, data_dir, links):
        self.path = os.path.join(data_dir, STATUS_FILE)
        self._links = links

    def write(self):
        """Rewrite the file from the current state."""
        state = {"pid": os.getpid(), "s2s_links": self._links()}
        temporary = self.path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(temporary, self.path)

    def remove(self):
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def read_status(data_dir):
    """The status of the server running on C{data_dir}, or None when none is running."""
    try:
        with open(os.path.join(data_dir, STATUS_FILE), encoding="utf-8") as f:
            state = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        return None  # left behind by a server that is gone
    except PermissionError:
        pass  # alive, run by another user
    return state
