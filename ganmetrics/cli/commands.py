"""The metric commands: ``eval`` (any registered metrics, one pass per source) and ``fid``,
``is`` and ``stats`` with their CONTRACT.md output."""

import json
from pathlib import Path

import click

from ..api import compute_stats_with_config, evaluate_with_config, fid_with_config, inception_score_with_config
from ..config import IntervalOptions, RunConfig
from ..errors import GanMetricsError
from ..metrics.registry import METRICS, build_metrics
from ..store.atomicfile import check_writable_folder
from ..store.statsfile import load_statistics, save_statistics
from ..version import __version__
from .gates import ThresholdCrossed, crossed, crossed_interval, parse_gates
from .options import MetricOptionsCommand, interval_options, shared_options
from .plot import check_plot_output, save_plot
from .render import calibration_note, echo_eval, echo_json, echo_table, eval_row, require_finite


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


@click.command("is")
@click.argument("source")
@click.option("--splits", default=10, show_default=True, type=int, help="Contiguous splits for mean ± std.")
@click.option("--fail-below", type=float, default=None, help="Exit 1 when the IS mean is below this value.")
@shared_options
def is_command(source, splits, fail_below, options: RunConfig, as_json: bool):
    """Inception Score of SOURCE: mean ± std over --splits contiguous splits."""
    r = inception_score_with_config(options, source, splits)
    require_finite({"mean": r.mean, "std": r.std}, f"IS of {source}")
    if as_json:
        echo_json({"metric": "is", "mean": r.mean, "std": r.std, "splits": r.splits, "n": r.n, "resize": r.resize,
                   "weights": {"sha256": r.weights_sha256, "calibrated": r.calibrated}, "tf32": r.tf32,
                   "version": __version__})
    else:
        click.echo(f"IS {r.mean:.6f} ± {r.std:.6f}  (n={r.n}, splits={r.splits}, resize={r.resize})"
                   f"{calibration_note(r.calibrated)}")
    if fail_below is not None and r.mean < fail_below:
        raise ThresholdCrossed(f"IS {r.mean:.4f} below --fail-below {fail_below}")


@click.command("stats")
@click.argument("source", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Statistics file to write (.npz).")
@click.option("--features", is_flag=True,
              help="Also store every image's features (the feature bank KID needs): 4 x dims bytes an image.")
@click.option("--info", "info_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Print what statistics FILE holds (n, dims and its metadata) instead.")
@shared_options
def stats_command(source, output: Path | None, features: bool, info_file: Path | None, options: RunConfig,
                  as_json: bool):
    """Reference statistics of SOURCE for later `ganmetrics fid` (or, with --features, `eval
    --metrics kid`), written atomically to -o; or, with --info FILE, what a statistics file holds."""
    if info_file is not None:
        if source is not None or output is not None:
            raise click.UsageError("--info FILE takes no SOURCE and no -o", ctx=click.get_current_context())
        _echo_info(info_file, as_json)
        return
    if source is None or output is None:
        raise click.UsageError("give SOURCE and -o OUT.npz (or --info FILE)", ctx=click.get_current_context())
    _check_output(output, source)
    stats = compute_stats_with_config(options, source, features)
    save_statistics(output, stats)
    if as_json:
        echo_json({"path": str(output), "n": stats.n, **stats.meta})
    else:
        note = "" if stats.meta["calibrated"] else " [UNCALIBRATED weights]"
        bank = ", with features" if stats.features is not None else ""
        click.echo(f"wrote {output}: {stats.n} images, dims={stats.dims}, resize={stats.meta['resize']}{bank}{note}")


def _check_output(output: Path, source: str) -> None:
    """Refuse, before any work, an output that is not a .npz, whose folder is missing or not
    writable, or that is (or resolves to, through links) the input."""
    if output.suffix.lower() != ".npz":
        raise GanMetricsError(f"-o {output}: statistics files end in .npz; pass e.g. {output.with_suffix('.npz')}")
    check_writable_folder(output, "-o")
    if output.exists() and Path(source).exists() and output.resolve() == Path(source).resolve():
        raise GanMetricsError(f"-o {output} is the input {source}: writing it would replace the images; choose another -o")


def _echo_info(path: Path, as_json: bool) -> None:
    stats = load_statistics(path)  # warns when the file has no metadata (pytorch-fid, TTUR)
    if as_json:
        echo_json({"path": str(path), "n": stats.n, "dims": stats.dims, **(stats.meta or {}),
                   **({"features": True} if stats.features is not None else {})})
        return
    click.echo(f"{path}: {'unknown number of' if stats.n is None else stats.n} images, dims={stats.dims}"
               f"{', with features' if stats.features is not None else ''}")
    if stats.meta is None:
        click.echo("  no metadata (written by pytorch-fid or TTUR?)")
    for key, value in sorted((stats.meta or {}).items()):
        if key != "dims":
            click.echo(f"  {key}: {json.dumps(value) if isinstance(value, bool) else value}")


@click.command("eval", cls=MetricOptionsCommand)
@click.argument("reference", metavar="SOURCE_A")
@click.argument("others", metavar="SOURCE_B...", nargs=-1, required=True)
@click.option("--metrics", "metric_names", default="fid,is", show_default=True, metavar="NAMES",
              help=f"Comma-separated metrics: {', '.join(METRICS)} (one-sided ones, e.g. is, on each SOURCE_B).")
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
    is_inf) are computed on each SOURCE_B. KID, FID∞ and IS∞ keep every feature of a side in
    memory (pool3: 8 KiB an image, 410 MB per side at 50,000 images), as FID does with --ci;
    otherwise FID and IS stream.
    """
    names = [name.strip() for name in metric_names.split(",") if name.strip()]
    metrics = build_metrics(names, {"dims": options.dims, **metric_options})
    above, below = parse_gates(fail_above, "--fail-above", metrics), parse_gates(fail_below, "--fail-below", metrics)
    above_ci = parse_gates(fail_above_ci, "--fail-above-ci", metrics, interval=True)
    below_ci = parse_gates(fail_below_ci, "--fail-below-ci", metrics, interval=True)
    if (above_ci or below_ci) and interval.replicates is None:
        option = "--fail-above-ci" if above_ci else "--fail-below-ci"
        raise GanMetricsError(f"{option} gates on the bounds of a confidence interval: add --ci B (e.g. --ci 100)")
    if plot_file is not None:
        check_plot_output(plot_file)
    results = evaluate_with_config(options, reference, list(others), metrics, interval)
    for r in results:
        require_finite({**r.results, **r.details}, f"results for {r.source_b}")
    if as_json:
        rows = [eval_row(r) for r in results]
        echo_json(rows[0] if len(rows) == 1 else rows)
    else:
        echo_eval(results, results[0].provenance)
    if plot_file is not None:
        save_plot(results, metrics, plot_file)
    reasons = [f"{r.source_b}: {', '.join(c)}" for r in results
               if (c := crossed(r.results, above, below) + crossed_interval(r.results, above_ci, below_ci, interval.level))]
    if reasons:
        raise ThresholdCrossed("threshold crossed: " + "; ".join(reasons))


