"""The ``cache`` and ``weights`` command groups: the statistics cache and the Inception weights file."""

import shutil
import warnings
from pathlib import Path

import click

from ..errors import GanMetricsError
from ..extractors.inception.weights import (ENV_WEIGHTS, WEIGHTS_FILENAME, fetch_weights, find_weights_file,
                                            verify_weights_file)
from ..store import cache
from ..store.atomicfile import atomic_write
from ..store.paths import cache_dir
from .render import echo_table, human_size


@click.group("cache")
def cache_group():
    """List or clear the statistics cache (in $GANMETRICS_CACHE_DIR/stats or ~/.cache/ganmetrics/stats)."""


@cache_group.command("list")
def cache_list():
    """One line per cached file: source, n, dims, resize, (what a derived value's entry holds,) size."""
    entries = cache.list_entries()
    if not entries:
        click.echo(f"no cached statistics in {cache.stats_cache_dir()}", err=True)
        return
    derived = any(e.derived for e in entries)  # a column only when some entry holds a derived value
    echo_table([
        [e.source or f"{e.path} (unreadable)",
         *(f"{name}={'?' if value is None else value}" for name, value in (("n", e.n), ("dims", e.dims), ("resize", e.resize))),
         *([e.derived or "statistics"] if derived else []), human_size(e.size)]
        for e in entries
    ])


@cache_group.command("clear")
def cache_clear():
    """Remove every cached statistics file."""
    removed, freed = cache.clear()
    click.echo(f"removed {removed} cached statistics file{'s' if removed != 1 else ''} ({human_size(freed)}) "
               f"from {cache.stats_cache_dir()}")


@click.group("weights")
def weights_group():
    """Find, download, verify or install the FID Inception weights."""


@weights_group.command("path")
def weights_path():
    """Print the weights file that would be used (no download)."""
    path = find_weights_file()
    if path is None:
        raise GanMetricsError(
            f"no {WEIGHTS_FILENAME} found: run `ganmetrics weights fetch`, set {ENV_WEIGHTS}=PATH, "
            "or `ganmetrics weights install FILE`"
        )
    click.echo(path)


@weights_group.command("fetch")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def weights_fetch(quiet):
    """Download the standard weights into the user cache (sha256-checked)."""
    click.echo(fetch_weights(progress=not quiet))


@weights_group.command("verify")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def weights_verify(file):
    """Check FILE (default: the resolved weights file): keys, shapes and hash."""
    path = find_weights_file(file)
    if path is None:
        raise GanMetricsError(f"no {WEIGHTS_FILENAME} found: pass a FILE to verify")
    digest, calibrated = verify_weights_file(path)
    state = "standard (calibrated)" if calibrated else "right keys and shapes, but not the standard file (uncalibrated)"
    click.echo(f"{path}: sha256 {digest}: {state}")


@weights_group.command("install")
@click.argument("file", type=click.Path(path_type=Path))
def weights_install(file):
    """Verify FILE and copy it into the user cache, where every run finds it."""
    path = find_weights_file(file)
    digest, calibrated = verify_weights_file(path)
    if not calibrated:
        warnings.warn(f"{path} is not the standard file (sha256 {digest[:12]}…): results will be marked uncalibrated")
    dest = cache_dir() / WEIGHTS_FILENAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as original, atomic_write(dest) as copy:
        shutil.copyfileobj(original, copy)
    click.echo(f"installed {dest}")
