"""The status file the running server writes for jabberappctl."""
import json
import os

from jabberapp.status import STATUS_FILE, StatusFile, read_status
from tests.e2e.harness import ServerProcess, ctl


def test_written_state_is_read_back(tmp_path):
    """What the server writes is what read_status returns while the server lives."""
    links = [{"direction": "outbound", "local": "a.test", "peer": "b.test"}]
    status = StatusFile(str(tmp_path), lambda: links)
    status.write()
    assert read_status(str(tmp_path))["s2s_links"] == links
    status.remove()
    assert read_status(str(tmp_path)) is None


def test_a_crashed_servers_file_is_stale(tmp_path):
    """A status file naming a process that no longer exists is ignored."""
    with open(os.path.join(tmp_path, STATUS_FILE), "w") as f:
        json.dump({"pid": 2 ** 22 + 12345, "s2s_links": []}, f)
    assert read_status(str(tmp_path)) is None


def test_links_without_a_running_server(tmp_path):
    """jabberappctl links says clearly that no server is running, in one line."""
    server = ServerProcess(tmp_path)
    result = ctl(server.config_path, "links")
    assert result.returncode == 1
    assert result.stderr.startswith("jabberappctl: no jabberapp with federation is running")
    assert "Traceback" not in result.stderr
