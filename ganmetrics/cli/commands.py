"""The metric commands: ``eval`` (any registered metrics, one pass per source) and ``fid``,
``is`` and ``stats`` with their CONTRACT.md output; ``pack`` (images to an ADM batch)."""

import json
from pathlib import Path

import click

from ..api import (compute_stats_shard_with_config, compute_stats_with_config, evaluate_with_config,
                   fid_with_config, inception_score_with_config, merge_stats_shards, pack_with_config)
from ..config import IntervalOptions, RunConfig
from ..engine import distributed
from ..engine.distributed import ShardSpec
from ..errors import GanMetricsError
from ..metrics.registry import build_metrics, known_names, suite_rows
from ..store.atomicfile import check_writable_folder
from ..store.batchfile import IMAGES_KEY
from ..store.shardfile import save_shard
from ..store.statsfile import gaussian_keys, load_statistics, save_statistics
from ..version import __version__
from .gates import ThresholdCrossed, crossed, crossed_interval, parse_gates
from .options import MetricOptionsCommand, interval_options, shared_options
from .plot import check_plot_output, save_plot
from .render import calibration_note, echo_eval, echo_json, echo_suite, echo_table, eval_row, require_finite

STATS_FORMATS = {"ganmetrics": (), "adm": ("spatial",)}
"""``stats --format``: the features whose Gaussians go beside the FID tap's (``Statistics.more``)."""


@click.command("fid")
@click.argument("reference", metavar="SOURCE_A")
@click.argument("others", metavar="SOURCE_B...", nargs=-1, required=True)
@click.option("--fail-above", type=float, default=None, help="Exit 1 when an FID is above this value.")
@click.option("--fail-above-ci", type=float, default=None,
              help="Exit 1 when the whole --ci interval of an FID is above this value (its low end is).")
@interval_options
@shared_options
def fid_command(reference, others, fail_above, fail_above_ci, interval: IntervalOptions, options: RunConfig,
                as_json: bool):
    """Fréchet Inception Distance between SOURCE_A and each SOURCE_B.

    A source is a folder of images, a .zip/.tar/.tar.gz archive, a .npy/.npz uint8 array, or a
    statistics .npz. With several SOURCE_B, SOURCE_A's statistics are computed once and one row
    is printed per SOURCE_B (a JSON list with --json).
    """
    if fail_above_ci is not None and interval.replicates is None:
        raise GanMetricsError("--fail-above-ci gates on the bounds of a confidence interval: add --ci B (e.g. --ci 100)")
    results = fid_with_config(options, reference, list(others), interval)
    for r, other in zip(results, others):
        require_finite({"fid": r.value, "ci": [r.ci_low, r.ci_high] if interval.replicates else []}, f"FID of {other}")
    rows = [{"metric": "fid", "value": r.value, "n_a": r.n_a, "n_b": r.n_b, "dims": r.dims, "resize": r.resize,
             "rank_a": r.rank_a, "rank_b": r.rank_b, "source_b": str(other),
             **({"ci_low": r.ci_low, "ci_high": r.ci_high, **r.ci_settings} if interval.replicates else {}),
             "weights": {"sha256": r.weights_sha256, "calibrated": r.calibrated}, "tf32": r.tf32,
             "version": __version__}
            for r, other in zip(results, others)]
    r = results[0]
    level = f"{interval.level * 100:g}% CI"
    if as_json:
        echo_json(rows[0] if len(rows) == 1 else rows)
    elif len(rows) == 1:
        ci = f" [{level} {r.ci_low:.6f}, {r.ci_high:.6f}; B={interval.replicates}]" if interval.replicates else ""
        click.echo(f"FID {r.value:.6f}{ci}  (n_a={r.n_a}, n_b={r.n_b}, dims={r.dims}, "
                   f"resize={r.resize}){calibration_note(r.calibrated)}")
    else:
        intervals = (["ci_low", "ci_high"] if interval.replicates else [])
        echo_table([[row["source_b"], f"{row['value']:.6f}", *(f"{row[k]:.6f}" for k in intervals),
                     "?" if row["n_b"] is None else str(row["n_b"])] for row in rows],
                   ["SOURCE_B", "FID", *intervals, "n_b"])
        click.echo(f"against {reference} (n_a={r.n_a}, dims={r.dims}, resize={r.resize}"
                   f"{f', {level}, B={interval.replicates}' if interval.replicates else ''})"
                   f"{calibration_note(r.calibrated)}")
    reasons = []
    over = [row for row in rows if fail_above is not None and row["value"] > fail_above]
    if over:
        names = ", ".join(f"{row['source_b']} ({row['value']:.4f})" for row in over)
        reasons.append(f"FID above --fail-above {fail_above}: {names}")
    surely_over = [row for row in rows if fail_above_ci is not None and not row["ci_low"] <= fail_above_ci]
    if surely_over:
        names = ", ".join(f"{row['source_b']} ({level} [{row['ci_low']:.4f}, {row['ci_high']:.4f}])"
                          for row in surely_over)
        reasons.append(f"FID interval above --fail-above-ci {fail_above_ci:g}: {names}")
    if reasons:
        raise ThresholdCrossed("; ".join(reasons))


fid_command.runs_distributed = True


@click.command("is")
@click.argument("source")
@click.option("--splits", default=10, show_default=True, type=int, help="Contiguous splits for mean ± std.")
@click.option("--is-split-size", "split_size", default=None, type=int, metavar="N",
              help="Contiguous splits of N images instead of --splits, the last one shorter (the ADM evaluator: 5000).")
@click.option("--fail-below", type=float, default=None, help="Exit 1 when the IS mean is below this value.")
@shared_options
def is_command(source, splits, split_size, fail_below, options: RunConfig, as_json: bool):
    """Inception Score of SOURCE: mean ± std over --splits contiguous splits (or splits of
    --is-split-size images, as the ADM evaluator, which reports the mean)."""
    r = inception_score_with_config(options, source, splits, split_size)
    require_finite({"mean": r.mean, "std": r.std}, f"IS of {source}")
    sized = {} if r.split_size is None else {"split_size": r.split_size}
    if as_json:
        echo_json({"metric": "is", "mean": r.mean, "std": r.std, "splits": r.splits, **sized, "n": r.n,
                   "resize": r.resize, "weights": {"sha256": r.weights_sha256, "calibrated": r.calibrated},
                   "tf32": r.tf32, "version": __version__})
    else:
        size = "" if r.split_size is None else f" of {r.split_size}"
        click.echo(f"IS {r.mean:.6f} ± {r.std:.6f}  (n={r.n}, splits={r.splits}{size}, resize={r.resize})"
                   f"{calibration_note(r.calibrated)}")
    if fail_below is not None and r.mean < fail_below:
        raise ThresholdCrossed(f"IS {r.mean:.4f} below --fail-below {fail_below}")


is_command.runs_distributed = True


@click.command("stats")
@click.argument("sources", metavar="SOURCE", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Statistics file to write (.npz).")
@click.option("--features", is_flag=True,
              help="Also store every image's features (the feature bank KID, P/R and D/C need): 4 x dims bytes an image.")
@click.option("--shard", "shard", default=None, metavar="K/N",
              help="Only part K (0 to N-1) of N of SOURCE, as an exact shard file for `stats merge`.")
@click.option("--info", "info_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Print what statistics FILE holds (n, dims and its metadata) instead.")
@click.option("--format", "file_format", type=click.Choice(STATS_FORMATS), default="ganmetrics", show_default=True,
              help="adm: also sFID's spatial statistics (mu_s, sigma_s: 2023 dims) beside pool3's mu, sigma, as the "
                   "ADM evaluator's reference batches hold them (pool3: --dims 2048).")
@shared_options
def stats_command(sources: tuple[str, ...], output: Path | None, features: bool, shard: str | None,
                  info_file: Path | None, file_format: str, options: RunConfig, as_json: bool):
    """Reference statistics of SOURCE for later `ganmetrics fid` (or, with --features, `eval
    --metrics kid,pr,dc`; with --format adm, also `eval --metrics sfid`), written atomically to
    -o; or, with --info FILE, what a statistics file holds.

    For batch schedulers: `stats SOURCE --shard K/N -o part-K.npz` writes part K of N (a
    contiguous block of whole batches; run every part with the same options), and `stats merge
    part-*.npz -o all.npz` merges every part, exactly, into an ordinary statistics file.
    """
    ctx = click.get_current_context()
    if sources[:1] == ("merge",):
        _merge_command(ctx, list(sources[1:]), output, as_json)
        return
    if info_file is not None:
        if sources or output is not None or shard is not None:
            raise click.UsageError("--info FILE takes no SOURCE, no -o and no --shard", ctx=ctx)
        _echo_info(info_file, as_json)
        return
    if len(sources) != 1 or output is None:
        raise click.UsageError("give one SOURCE and -o OUT.npz (or --info FILE, or merge PART... -o OUT.npz)", ctx=ctx)
    source = sources[0]
    spec = None if shard is None else ShardSpec.parse(shard)
    if file_format == "adm" and options.dims != 2048:
        raise GanMetricsError(f"--format adm writes pool3 statistics (2048 dims), not --dims {options.dims}: drop --dims")
    if file_format != "ganmetrics" and spec is not None:
        raise GanMetricsError(f"--format {file_format} and --shard do not go together: shard files hold the exact "
                              "states of the FID features; write the parts, merge them, then compute the other format")
    _check_output(output, [source])
    if spec is not None:
        part = compute_stats_shard_with_config(options, source, spec, features)
        if distributed.is_main():
            save_shard(output, part)
        info = part.info
        if as_json:
            echo_json({"path": str(output), "shard": str(spec), "start": info["start"], "stop": info["stop"],
                       "total": info["total"], **{k: v for k, v in part.meta.items() if k != "shard"}})
        else:
            held = f"images {info['start']} to {info['stop'] - 1}" if info["stop"] > info["start"] else "no images"
            click.echo(f"wrote {output}: shard {spec} ({held} of {info['total']}), dims={part.meta['dims']}, "
                       f"resize={part.meta['resize']}{', with features' if features else ''}"
                       f"{'' if part.meta['calibrated'] else ' [UNCALIBRATED weights]'}")
        return
    stats = compute_stats_with_config(options, source, features, STATS_FORMATS[file_format])
    if distributed.is_main():
        save_statistics(output, stats)
    _echo_written(output, stats, as_json, file_format)


stats_command.runs_distributed = True


def _echo_written(output: Path, stats, as_json: bool, file_format: str = "ganmetrics") -> None:
    if as_json:
        echo_json({"path": str(output), "n": stats.n, **stats.meta,
                   **({"format": file_format} if stats.more else {})})
    else:
        note = "" if stats.meta["calibrated"] else " [UNCALIBRATED weights]"
        bank = ", with features" if stats.features is not None else ""
        click.echo(f"wrote {output}: {stats.n} images, dims={stats.dims}, resize={stats.meta['resize']}{bank}"
                   f"{_beside(stats)}{note}")


def _beside(stats) -> str:
    """", with spatial statistics (2023 dims: mu_s, sigma_s)" for each Gaussian beside the FID tap's."""
    return "".join(f", with {feature} statistics ({other.dims} dims: {', '.join(gaussian_keys(feature))})"
                   for feature, other in stats.more.items())


MERGE_OPTIONS = ("output", "as_json", "quiet")
"""What ``stats merge`` takes besides the part files: the rest would not change the result."""


def _merge_command(ctx: click.Context, parts: list[str], output: Path | None, as_json: bool) -> None:
    """``stats merge PART... -o OUT.npz``: every shard of one run merged into a statistics file."""
    given = [param for param in ctx.command.params if param.name not in MERGE_OPTIONS and param.name != "sources"
             and ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(f"stats merge takes part files, -o and --json only, not {given[0].opts[0]} "
                               "(the parts carry their settings)", ctx=ctx)
    if not parts or output is None:
        raise click.UsageError("give the part files and -o OUT.npz: stats merge part-*.npz -o all.npz", ctx=ctx)
    _check_output(output, parts, "a part")
    stats = merge_stats_shards(parts)
    if distributed.is_main():
        save_statistics(output, stats)
    _echo_written(output, stats, as_json)


def _check_output(output: Path, inputs: list[str], what: str = "the images", kind: str = "statistics files") -> None:
    """Refuse, before any work, an output that is not a .npz (``kind``: what it holds), whose
    folder is missing or not writable, or that is (or resolves to, through links) one of the
    ``inputs`` (``what`` they hold). Under torchrun only rank 0 writes, so only its view of the folder counts (a refusal there
    reaches the other ranks at their first exchange)."""
    if not distributed.is_main():
        return
    if output.suffix.lower() != ".npz":
        raise GanMetricsError(f"-o {output}: {kind} end in .npz; pass e.g. {output.with_suffix('.npz')}")
    check_writable_folder(output, "-o")
    for source in inputs:
        if output.exists() and Path(source).exists() and output.resolve() == Path(source).resolve():
            raise GanMetricsError(f"-o {output} is the input {source}: writing it would replace {what}; choose another -o")


def _echo_info(path: Path, as_json: bool) -> None:
    stats = load_statistics(path)  # warns when the file has no metadata (pytorch-fid, TTUR)
    if as_json:
        echo_json({"path": str(path), "n": stats.n, "dims": stats.dims, **(stats.meta or {}),
                   **({"features": True} if stats.features is not None else {}),
                   **({"more": {feature: other.dims for feature, other in stats.more.items()}} if stats.more else {})})
        return
    click.echo(f"{path}: {'unknown number of' if stats.n is None else stats.n} images, dims={stats.dims}"
               f"{', with features' if stats.features is not None else ''}{_beside(stats)}")
    if stats.meta is None:
        click.echo("  no metadata (written by pytorch-fid or TTUR?)")
    for key, value in sorted((stats.meta or {}).items()):
        if key != "dims":
            click.echo(f"  {key}: {json.dumps(value) if isinstance(value, bool) else value}")


@click.command("pack")
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The batch to write (.npz).")
@shared_options(only=("batch_size", "workers", "limit", "recursive", "key", "strict", "as_json", "quiet"))
def pack_command(source, output: Path, options: RunConfig, as_json: bool):
    """Write the images of SOURCE (a folder, archive or array) as an ADM batch: OUT.npz whose
    arr_0 is uint8 (N, H, W, 3), as np.savez writes it and the ADM evaluator reads it, streamed
    (a few batches in memory, whatever N) and written atomically. Every image must have the size
    of the first."""
    _check_output(output, [source], kind="batches")
    result = pack_with_config(options, source, output)
    if as_json:
        echo_json({"path": result.path, "key": IMAGES_KEY, "n": result.n, "height": result.height,
                   "width": result.width})
    else:
        click.echo(f"wrote {output}: {result.n} images of {result.width}x{result.height} as {IMAGES_KEY}")


@click.command("eval", cls=MetricOptionsCommand)
@click.argument("reference", metavar="SOURCE_A")
@click.argument("others", metavar="SOURCE_B...", nargs=-1, required=True)
@click.option("--metrics", "metric_names", default="fid,is", show_default=True, metavar="NAMES",
              help=f"Comma-separated metrics: {known_names()} (one-sided ones, e.g. is, on each SOURCE_B).")
@click.option("--fail-above", default=None, metavar="NAME=X[,...]", help="Exit 1 when a result is above X, e.g. fid=30,kid=0.01.")
@click.option("--fail-below", default=None, metavar="NAME=X[,...]", help="Exit 1 when a result is below X, e.g. is=5.")
@click.option("--fail-above-ci", default=None, metavar="NAME=X[,...]",
              help="Exit 1 when the whole --ci interval of a result is above X (its low end is), e.g. fid=30.")
@click.option("--fail-below-ci", default=None, metavar="NAME=X[,...]",
              help="Exit 1 when the whole --ci interval of a result is below X (its high end is), e.g. is=5.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE.png",
              help="Also draw each metric per SOURCE_B (in the given order) with its interval, and FID∞/IS∞'s "
                   "fits, into FILE.png (needs matplotlib: pip install 'ganmetrics[plot]').")
@interval_options
@shared_options
def eval_command(reference, others, metric_names, fail_above, fail_below, fail_above_ci, fail_below_ci,
                 plot_file: Path | None, interval: IntervalOptions, options: RunConfig, as_json: bool, **metric_options):
    """Every requested metric of each SOURCE_B against SOURCE_A, reading each source once.

    SOURCE_A is the reference (real) side, each SOURCE_B a generated set; one-sided metrics (is,
    is_inf) are computed on each SOURCE_B. KID, P/R, FID∞ and IS∞ keep every feature of a side in
    memory (pool3: 8 KiB an image, 410 MB per side at 50,000 images), as FID does with --ci;
    otherwise FID, IS and D/C's generated side stream. P/R and D/C compute distances one block of
    B x B = 10,000 x 10,000 at a time, never N x N: at most 6·B² + 12·B·D bytes a block (0.85 GB
    at D = 2048; D/C's float64 blocks 13·B² + 16·B·D, 1.6 GB).
    """
    names = [name.strip() for name in metric_names.split(",") if name.strip()]
    metrics = build_metrics(names, {"dims": options.dims, **metric_options})
    with_ci = interval.replicates is not None
    above = parse_gates(fail_above, "--fail-above", metrics, with_ci=with_ci)
    below = parse_gates(fail_below, "--fail-below", metrics, with_ci=with_ci)
    above_ci = parse_gates(fail_above_ci, "--fail-above-ci", metrics, interval=True)
    below_ci = parse_gates(fail_below_ci, "--fail-below-ci", metrics, interval=True)
    if (above_ci or below_ci) and interval.replicates is None:
        option = "--fail-above-ci" if above_ci else "--fail-below-ci"
        raise GanMetricsError(f"{option} gates on the bounds of a confidence interval: add --ci B (e.g. --ci 100)")
    plot_here = plot_file is not None and distributed.is_main()  # under torchrun rank 0 alone draws and writes
    if plot_here:
        check_plot_output(plot_file)
    results = evaluate_with_config(options, reference, list(others), metrics, interval)
    for r in results:
        require_finite({**r.results, **r.details}, f"results for {r.source_b}")
    suite = suite_rows(names)
    if as_json:
        rows = [eval_row(r) for r in results]
        echo_json(rows[0] if len(rows) == 1 else rows)
    elif suite:
        echo_suite(results, suite, results[0].provenance)
    else:
        echo_eval(results, results[0].provenance)
    if plot_here:
        save_plot(results, metrics, plot_file)
    reasons = [f"{r.source_b}: {', '.join(c)}" for r in results
               if (c := crossed(r.results, above, below) + crossed_interval(r.results, above_ci, below_ci, interval.level))]
    if reasons:
        raise ThresholdCrossed("threshold crossed: " + "; ".join(reasons))


eval_command.runs_distributed = True
