"""download_file against a local HTTP server on 127.0.0.1 serving seeded random bytes."""

import hashlib
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ganmetrics.store.download import download_file
from ganmetrics.store.hashing import sha256_of_file
from ganmetrics.errors import GanMetricsError

PAYLOAD = random.Random(0).randbytes(3 * 1024 * 1024)  # 3 MiB
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
WRONG_PREFIX = f"{int(PAYLOAD_SHA256[:8], 16) ^ 0xFFFFFFFF:08x}"  # differs in every digit
SENTINEL = b"the previous file, which a failed download must not touch"


class PayloadHandler(BaseHTTPRequestHandler):
    """/good: the payload; /truncated: half of it under the full Content-Length, then hang up;
    /slow: headers, then nothing until the test ends; anything else: 404."""

    timeout = 5  # seconds; a stuck client cannot hold a handler thread longer
    release_slow = threading.Event()

    def do_GET(self):
        if self.path not in ("/good", "/truncated", "/slow"):
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path == "/good":
            self.wfile.write(PAYLOAD)
        elif self.path == "/truncated":
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
        else:
            self.wfile.flush()
            self.release_slow.wait(timeout=5)
        self.close_connection = True

    def log_message(self, format, *args):
        pass


@pytest.fixture
def server_url():
    """The base URL of a running server; stopped after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PayloadHandler)
    PayloadHandler.release_slow.clear()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    PayloadHandler.release_slow.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A URL on a port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/good"


def names_in(folder):
    return sorted(path.name for path in folder.iterdir())


def test_sha256_of_file_matches_hashlib(tmp_path):
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    assert sha256_of_file(path) == PAYLOAD_SHA256


def test_good_file_is_downloaded_verified_and_moved_into_place(server_url, tmp_path):
    dest = tmp_path / "new" / "folder" / "weights.pth"
    result = download_file(
        f"{server_url}/good", dest, sha256_prefix=PAYLOAD_SHA256[:8], progress=False
    )
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert sha256_of_file(dest) == PAYLOAD_SHA256
    assert names_in(dest.parent) == ["weights.pth"]


def test_good_file_replaces_an_existing_dest(server_url, tmp_path):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(SENTINEL)
    download_file(f"{server_url}/good", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert names_in(tmp_path) == ["weights.pth"]


def test_progress_bar_goes_to_stderr_only_when_asked(server_url, tmp_path, capsys):
    download_file(f"{server_url}/good", tmp_path / "quiet.pth", progress=False)
    assert capsys.readouterr() == ("", "")
    download_file(f"{server_url}/good", tmp_path / "loud.pth", progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "loud.pth" in err and "100%" in err and "3.00M" in err


def test_wrong_hash_is_rejected_and_nothing_is_left(server_url, tmp_path):
    dest = tmp_path / "weights.pth"
    with pytest.raises(GanMetricsError) as caught:
        download_file(f"{server_url}/good", dest, sha256_prefix=WRONG_PREFIX, progress=False)
    message = str(caught.value)
    assert WRONG_PREFIX in message and PAYLOAD_SHA256 in message
    assert "\n" not in message
    assert not dest.exists()
    assert names_in(tmp_path) == []


def test_truncated_transfer_is_rejected_and_nothing_is_left(server_url, tmp_path):
    dest = tmp_path / "weights.pth"
    url = f"{server_url}/truncated"
    with pytest.raises(GanMetricsError) as caught:
        download_file(url, dest, progress=False)
    message = str(caught.value)
    assert url in message and "truncated" in message
    assert f"received {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes" in message
    assert not dest.exists()
    assert names_in(tmp_path) == []


def test_server_down_names_the_url_and_the_cause(dead_url, tmp_path):
    dest = tmp_path / "weights.pth"
    with pytest.raises(GanMetricsError) as caught:
        download_file(dead_url, dest, progress=False)
    assert str(caught.value) == f"cannot download {dead_url}: connection refused"
    assert not dest.exists()
    assert names_in(tmp_path) == []


def test_http_404_names_the_status(server_url, tmp_path):
    dest = tmp_path / "weights.pth"
    url = f"{server_url}/missing.pth"
    with pytest.raises(GanMetricsError) as caught:
        download_file(url, dest, progress=False)
    assert str(caught.value) == f"cannot download {url}: HTTP 404 Not Found"
    assert names_in(tmp_path) == []


def test_silent_server_times_out(server_url, tmp_path):
    dest = tmp_path / "weights.pth"
    url = f"{server_url}/slow"
    with pytest.raises(GanMetricsError) as caught:
        download_file(url, dest, progress=False, timeout=0.3)
    assert str(caught.value) == f"cannot download {url}: no response within 0.3 s"
    assert names_in(tmp_path) == []


@pytest.mark.parametrize("path, sha256_prefix", [
    ("/good", WRONG_PREFIX), ("/truncated", None), ("/missing.pth", None), ("/slow", None),
])
def test_failed_download_keeps_the_existing_dest(server_url, tmp_path, path, sha256_prefix):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(SENTINEL)
    with pytest.raises(GanMetricsError):
        download_file(server_url + path, dest, sha256_prefix, progress=False, timeout=0.3)
    assert dest.read_bytes() == SENTINEL
    assert names_in(tmp_path) == ["weights.pth"]
