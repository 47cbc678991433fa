"""The ``cache`` and ``weights`` command groups: the statistics cache and each encoder's weights file."""

import shutil
import warnings
from pathlib import Path

import click

from ..errors import GanMetricsError
from ..extractors.registry import DEFAULT_ENCODER, ENCODERS, encoder_class
from ..extractors.weights import fetch_weights, find_weights_file, verify_weights_file
from ..store import cache
from ..store.atomicfile import atomic_write
from ..store.paths import cache_dir
from .render import echo_table, human_size

ENTRY_KEYS = ("encoder", "extractor", "feature", "dims", "weights_sha256", "calibrated", "tf32", "version", "source")
"""Keys of an encoder's meta that are not its options (``cache list`` shows the options)."""


def _describe(entry: cache.CachedEntry) -> list[str]:
    """``cache list``'s cells of one entry: source, n, dims, the encoder's options, what it holds, size."""
    meta = entry.meta
    if meta is None:
        return [f"{entry.path} (unreadable)", "n=?", "dims=?", human_size(entry.size)]
    ((name, encoder),) = meta.get("encoders", {"?": {}}).items()
    options = [f"{key}={value}" for key, value in encoder.items() if key not in ENTRY_KEYS]
    held = " ".join([name, str(encoder.get("feature", "?")), meta.get("kind", "?"),
                     *(f"{option}={value}" for option, value in meta.get("options", {}).items())])
    return [meta["source"], f"n={meta.get('n', '?')}", f"dims={encoder.get('dims', '?')}", *options, held,
            human_size(entry.size)]


@click.group("cache")
def cache_group():
    """List or clear the statistics cache (in $GANMETRICS_CACHE_DIR/stats or ~/.cache/ganmetrics/stats)."""


@cache_group.command("list")
def cache_list():
    """One line per cached value: source, n, dims, the encoder's options, what it holds, size."""
    entries = cache.list_entries()
    if not entries:
        click.echo(f"no cached statistics in {cache.stats_cache_dir()}", err=True)
        return
    rows = [_describe(entry) for entry in entries]
    width = max(map(len, rows))
    echo_table([row[:-1] + [""] * (width - len(row)) + row[-1:] for row in rows])


@cache_group.command("clear")
def cache_clear():
    """Remove every cached statistics file."""
    removed, freed = cache.clear()
    click.echo(f"removed {removed} cached statistics file{'s' if removed != 1 else ''} ({human_size(freed)}) "
               f"from {cache.stats_cache_dir()}")


def _encoder_option(command):
    return click.option("--encoder", "encoder", default=DEFAULT_ENCODER, show_default=True,
                        type=click.Choice(list(ENCODERS)), help="Whose weights.")(command)


@click.group("weights")
def weights_group():
    """Find, download, verify or install an encoder's weights (default: the FID Inception's)."""


@weights_group.command("path")
@_encoder_option
def weights_path(encoder):
    """Print the weights file that would be used (no download)."""
    cls = encoder_class(encoder)
    path = find_weights_file(cls)
    if path is None:
        standard = cls.weights_file
        raise GanMetricsError(
            f"no {standard.filename} found: run `ganmetrics weights fetch --encoder {encoder}`, set {standard.env}=PATH, "
            f"or `ganmetrics weights install FILE --encoder {encoder}`"
        )
    click.echo(path)


@weights_group.command("fetch")
@_encoder_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def weights_fetch(encoder, quiet):
    """Download the standard weights into the user cache (sha256-checked)."""
    click.echo(fetch_weights(encoder_class(encoder), progress=not quiet))


@weights_group.command("verify")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@_encoder_option
def weights_verify(file, encoder):
    """Check FILE (default: the resolved weights file): keys, shapes and hash."""
    cls = encoder_class(encoder)
    path = find_weights_file(cls, file)
    if path is None:
        raise GanMetricsError(f"no {cls.weights_file.filename} found: pass a FILE to verify")
    digest, calibrated = verify_weights_file(cls, path)
    state = "standard (calibrated)" if calibrated else "right keys and shapes, but not the standard file (uncalibrated)"
    click.echo(f"{path}: sha256 {digest}: {state}")


@weights_group.command("install")
@click.argument("file", type=click.Path(path_type=Path))
@_encoder_option
def weights_install(file, encoder):
    """Verify FILE and copy it into the user cache, where every run finds it."""
    cls = encoder_class(encoder)
    path = find_weights_file(cls, file)
    digest, calibrated = verify_weights_file(cls, path)
    if not calibrated:
        warnings.warn(f"{path} is not the standard file (sha256 {digest[:12]}…): results will be marked uncalibrated")
    dest = cache_dir() / cls.weights_file.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as original, atomic_write(dest) as copy:
        shutil.copyfileobj(original, copy)
    click.echo(f"installed {dest}")
