"""The ``ganmetrics`` command line. The one place where errors become messages and exit codes:
0 success, 1 a --fail-above/--fail-below threshold crossed, 2 bad usage or bad input (one line
on stderr, never a traceback)."""

import functools
import json
import shutil
import sys
import warnings
from pathlib import Path

import click

from . import __version__, cache
from .api import FIDResult, ISResult, Options, fid_many, inception_score
from .atomicfile import atomic_write
from .errors import GanMetricsError
from .inception import FEATURE_DIMS
from .preprocess import RESIZE_MODES
from .statsfile import load_statistics, save_statistics
from .weights import (ENV_WEIGHTS, WEIGHTS_FILENAME, cache_dir, fetch_weights, find_weights_file,
                      verify_weights_file)


class ThresholdCrossed(Exception):
    """A gating threshold was crossed: exit code 1 with this one-line reason."""


class GanMetricsGroup(click.Group):
    """Runs a command and turns every failure into one line on stderr and an exit code."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                result = super().main(args, prog_name or "ganmetrics", standalone_mode=False, **extra)
            except ThresholdCrossed as err:
                _exit(str(err), 1)
            except GanMetricsError as err:
                _exit(f"error: {err}", 2)
            except click.UsageError as err:
                command = err.ctx.command_path if err.ctx else "ganmetrics"
                _exit(f"error: {err.format_message()} (see `{command} --help`)", 2)
            except click.ClickException as err:
                _exit(f"error: {err.format_message()}", err.exit_code)
            except click.Abort:
                _exit("aborted", 130)
            except KeyboardInterrupt:
                _exit("interrupted", 130)
        sys.exit(result if isinstance(result, int) else 0)


def _exit(message: str, code: int):
    click.echo(f"ganmetrics: {message}", err=True)
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"ganmetrics: warning: {message}", err=True)


def shared_options(command):
    """The options of CONTRACT.md shared by fid, is and stats, gathered into ``options``."""
    decorators = [
        click.option("--weights", "weights", default=None, metavar="SPEC",
                     help=f"Weights file, or random:SEED (uncalibrated). Default: ${ENV_WEIGHTS}, weights/, the user cache, then download."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--batch-size", default=50, show_default=True, type=int, help="Images per forward pass."),
        click.option("--workers", default=None, type=int, help="Decoding processes [default: CPUs - 1, at most 8]."),
        click.option("--resize", default="tf", show_default=True, type=click.Choice(RESIZE_MODES),
                     help="tf (as the TF code / torch-fidelity), pytorch (as pytorch-fid), clean (as clean-fid)."),
        click.option("--dims", default=2048, show_default=True, type=click.Choice([str(d) for d in FEATURE_DIMS]),
                     help="FID feature layer."),
        click.option("--limit", default=None, type=int, help="Use only the first N images of each source."),
        click.option("--no-recursive", "recursive", flag_value=False, default=True,
                     help="Do not search subfolders."),
        click.option("--key", default=None, help="Array to read from an .npz source [default: the first]."),
        click.option("--allow-mismatch", is_flag=True, help="Accept statistics files made with other resize or weights."),
        click.option("--strict", is_flag=True, help="Refuse non-image files in folders and archives instead of skipping them."),
        click.option("--allow-tf32", is_flag=True,
                     help="Let a CUDA GPU compute in TF32: faster on Ampere and later, but moves FID [default: exact fp32]."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, nothing else."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)

    @functools.wraps(command)
    def wrapper(weights, device, batch_size, workers, resize, dims, limit, recursive, key,
                allow_mismatch, strict, allow_tf32, as_json, quiet, **kwargs):
        options = Options(weights=weights, device=device, batch_size=batch_size, workers=workers,
                          resize=resize, dims=int(dims), limit=limit, recursive=recursive, key=key,
                          progress=not quiet, allow_mismatch=allow_mismatch, strict=strict, allow_tf32=allow_tf32)
        return command(options=options, as_json=as_json, **kwargs)

    return wrapper


def _tail(result: FIDResult | ISResult) -> dict:
    return {"weights": {"sha256": result.weights_sha256, "calibrated": result.calibrated}, "tf32": result.tf32,
            "version": __version__}


def _calibration_note(result: FIDResult | ISResult) -> str:
    if result.calibrated:
        return ""
    return " [UNCALIBRATED weights: not comparable with published values]"


@click.group(cls=GanMetricsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganmetrics")
def cli():
    """Inception Score and Fréchet Inception Distance for generative image models."""


@cli.command("fid")
@click.argument("reference", metavar="SOURCE_A")
@click.argument("others", metavar="SOURCE_B...", nargs=-1, required=True)
@click.option("--fail-above", type=float, default=None, help="Exit 1 when an FID is above this value.")
@click.option("--cache/--no-cache", "use_cache", default=None,
              help="Cache statistics of every source / of none [default: of SOURCE_A when a folder or archive].")
@shared_options
def fid_command(reference, others, fail_above, use_cache, options: Options, as_json: bool):
    """Fréchet Inception Distance between SOURCE_A and each SOURCE_B.

    A source is a folder of images, a .zip/.tar/.tar.gz archive, a .npy/.npz uint8 array, or a
    statistics .npz. With several SOURCE_B, SOURCE_A's statistics are computed once and one row
    is printed per SOURCE_B (a JSON list with --json).
    """
    options.cache = use_cache
    results = fid_many(options.extractor(), reference, list(others), options)
    rows = [{"metric": "fid", "value": r.value, "n_a": r.n_a, "n_b": r.n_b, "dims": r.dims, "resize": r.resize,
             "rank_a": r.rank_a, "rank_b": r.rank_b, "source_b": str(other), **_tail(r)}
            for r, other in zip(results, others)]
    if as_json:
        click.echo(json.dumps(rows[0] if len(rows) == 1 else rows))
    elif len(rows) == 1:
        r = results[0]
        click.echo(f"FID {r.value:.6f}  (n_a={r.n_a}, n_b={r.n_b}, dims={r.dims}, "
                   f"resize={r.resize}){_calibration_note(r)}")
    else:
        _echo_table([[row["source_b"], f"{row['value']:.6f}", "?" if row["n_b"] is None else str(row["n_b"])]
                     for row in rows], ["SOURCE_B", "FID", "n_b"])
        r = results[0]
        click.echo(f"against {reference} (n_a={r.n_a}, dims={r.dims}, resize={r.resize}){_calibration_note(r)}")
    crossed = [row for row in rows if fail_above is not None and row["value"] > fail_above]
    if crossed:
        names = ", ".join(f"{row['source_b']} ({row['value']:.4f})" for row in crossed)
        raise ThresholdCrossed(f"FID above --fail-above {fail_above}: {names}")


def _echo_table(rows: list[list[str]], header: list[str] | None = None) -> None:
    """Aligned columns: the first left-aligned, the others right-aligned."""
    rows = [header, *rows] if header else rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        click.echo("  ".join(cells).rstrip())


@cli.command("is")
@click.argument("source")
@click.option("--splits", default=10, show_default=True, type=int, help="Contiguous splits for mean ± std.")
@click.option("--fail-below", type=float, default=None, help="Exit 1 when the IS mean is below this value.")
@shared_options
def is_command(source, splits, fail_below, options: Options, as_json: bool):
    """Inception Score of SOURCE: mean ± std over --splits contiguous splits."""
    r = inception_score(source, splits=splits, **vars(options))
    if as_json:
        click.echo(json.dumps({"metric": "is", "mean": r.mean, "std": r.std, "splits": r.splits, "n": r.n,
                               "resize": r.resize, **_tail(r)}))
    else:
        click.echo(f"IS {r.mean:.6f} ± {r.std:.6f}  (n={r.n}, splits={r.splits}, resize={r.resize})"
                   f"{_calibration_note(r)}")
    if fail_below is not None and r.mean < fail_below:
        raise ThresholdCrossed(f"IS {r.mean:.4f} below --fail-below {fail_below}")


@cli.command("stats")
@click.argument("source", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Statistics file to write (.npz).")
@click.option("--info", "info_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Print what statistics FILE holds (n, dims and its metadata) instead.")
@shared_options
def stats_command(source, output: Path | None, info_file: Path | None, options: Options, as_json: bool):
    """Reference statistics of SOURCE for later `ganmetrics fid`, written atomically to -o;
    or, with --info FILE, what a statistics file holds."""
    if info_file is not None:
        if source is not None or output is not None:
            raise click.UsageError("--info FILE takes no SOURCE and no -o", ctx=click.get_current_context())
        _echo_info(info_file, as_json)
        return
    if source is None or output is None:
        raise click.UsageError("give SOURCE and -o OUT.npz (or --info FILE)", ctx=click.get_current_context())
    if output.suffix.lower() != ".npz":
        raise GanMetricsError(f"-o {output}: statistics files end in .npz; pass e.g. {output.with_suffix('.npz')}")
    from .api import compute_stats

    stats = compute_stats(source, **vars(options))
    save_statistics(output, stats)
    if as_json:
        click.echo(json.dumps({"path": str(output), "n": stats.n, **stats.meta}))
    else:
        note = "" if stats.meta["calibrated"] else " [UNCALIBRATED weights]"
        click.echo(f"wrote {output}: {stats.n} images, dims={stats.dims}, resize={stats.meta['resize']}{note}")


def _echo_info(path: Path, as_json: bool) -> None:
    stats = load_statistics(path)  # warns when the file has no metadata (pytorch-fid, TTUR)
    if as_json:
        click.echo(json.dumps({"path": str(path), "n": stats.n, "dims": stats.dims, **(stats.meta or {})}))
        return
    click.echo(f"{path}: {'unknown number of' if stats.n is None else stats.n} images, dims={stats.dims}")
    if stats.meta is None:
        click.echo("  no metadata (written by pytorch-fid or TTUR?)")
    for key, value in sorted((stats.meta or {}).items()):
        if key != "dims":
            click.echo(f"  {key}: {json.dumps(value) if isinstance(value, bool) else value}")


@cli.group("cache")
def cache_group():
    """List or clear the statistics cache (in $GANMETRICS_CACHE_DIR/stats or ~/.cache/ganmetrics/stats)."""


@cache_group.command("list")
def cache_list():
    """One line per cached statistics file: source, n, dims, resize, size."""
    entries = cache.list_entries()
    if not entries:
        click.echo(f"no cached statistics in {cache.stats_cache_dir()}", err=True)
        return
    _echo_table([
        [e.source or f"{e.path} (unreadable)",
         *(f"{name}={'?' if value is None else value}" for name, value in (("n", e.n), ("dims", e.dims), ("resize", e.resize))),
         _human_size(e.size)]
        for e in entries
    ])


@cache_group.command("clear")
def cache_clear():
    """Remove every cached statistics file."""
    removed, freed = cache.clear()
    click.echo(f"removed {removed} cached statistics file{'s' if removed != 1 else ''} ({_human_size(freed)}) "
               f"from {cache.stats_cache_dir()}")


def _human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@cli.group("weights")
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


from .train.commands import sample_command, toy_data_command, train_command  # noqa: E402

cli.add_command(train_command)
cli.add_command(sample_command)
cli.add_command(toy_data_command)


def main():
    cli()
