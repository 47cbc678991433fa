"""Download a file over HTTP(S) atomically, checking its length and sha256 on the way.

The body is streamed into a temporary file next to the destination (``atomicfile``) and moved
into place only after every check passed, so the destination is either the complete, verified
file or left as it was. Standard library only (``urllib.request``), plus a tqdm progress bar.
"""

import hashlib
import http.client
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import GanMetricsError
from .atomicfile import atomic_write
from .hashing import CHUNK_BYTES

def download_file(
    url: str,
    dest: Path,
    sha256_prefix: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    ``sha256_prefix``: hex digits the file's sha256 must start with (None: no check).
    ``progress``: show a tqdm bar in bytes on stderr. ``timeout``: seconds the connection may
    stay silent. Creates ``dest``'s folder. Raises ``GanMetricsError`` on a network failure, an
    HTTP error status, a truncated transfer or a hash mismatch; ``dest`` is then untouched and no
    temporary file is left behind.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GanMetricsError(
            f"cannot write to {dest.parent}: {_describe(err, timeout)}; choose a writable folder"
        ) from None
    with atomic_write(dest) as part:
        digest = _stream_to_file(url, part, progress, timeout, label=dest.name)
        if sha256_prefix is not None and not digest.startswith(sha256_prefix.lower()):
            raise GanMetricsError(
                f"file downloaded from {url} has sha256 {digest}, expected one starting with "
                f"{sha256_prefix}; the server sent another file, check the URL"
            )
    return dest


def _stream_to_file(url: str, file, progress: bool, timeout: float, label: str) -> str:
    """Write the body of ``url`` to the open binary ``file``; return its sha256 hex digest."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            with tqdm(
                total=expected, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not progress, file=sys.stderr,
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        raise GanMetricsError(f"cannot download {url}: {_describe(err, timeout)}") from None
    if expected is not None and received != expected:
        raise GanMetricsError(
            f"cannot download {url}: transfer truncated, received {received} of {expected} bytes"
        )
    return digest.hexdigest()


def _describe(error: BaseException | str, timeout: float) -> str:
    """A short lowercase cause for a network or file error, e.g. ``connection refused``."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return _describe(error.reason, timeout)
    if isinstance(error, TimeoutError):
        return f"no response within {timeout:g} s"
    if isinstance(error, socket.gaierror):
        return f"host name lookup failed ({error.strerror})"
    if isinstance(error, http.client.IncompleteRead):
        return f"transfer truncated, connection closed after {len(error.partial)} bytes of a chunk"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]
