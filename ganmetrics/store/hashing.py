"""Content hashes of files."""

import hashlib
import os

CHUNK_BYTES = 1 << 20  # 1 MiB


def sha256_of_file(path: str | os.PathLike) -> str:
    """The sha256 of the file at ``path`` as 64 lowercase hex digits, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
