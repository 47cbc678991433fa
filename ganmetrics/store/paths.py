"""Where ganmetrics keeps files of its own: the user cache folder (weights, statistics)."""

import os
from pathlib import Path

ENV_CACHE_DIR = "GANMETRICS_CACHE_DIR"


def cache_dir() -> Path:
    """``$GANMETRICS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganmetrics``, else ``~/.cache/ganmetrics``."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ganmetrics"
