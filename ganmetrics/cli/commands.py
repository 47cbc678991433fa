"""The metric commands: ``eval`` (any registered metrics on any encoders, one pass per source) and
``fid``, ``is`` and ``stats`` with their CONTRACT.md output; ``pack`` (images to an ADM batch).
Each is a thin layer over one API function; the output is drawn by ``render.py``."""

from pathlib import Path

import click

from ..api import (FIDResult, ISResult, compute_stats, compute_stats_shard, evaluate_many, merge_stats_shards, pack,
                   plan_of)
from ..config import IntervalOptions, RunConfig
from ..engine import distributed
from ..errors import GanMetricsError
from ..evaluation.classes import class_names
from ..metrics.registry import suite_rows
from ..report.plot import check_plot_output, save_plot
from ..store.shardfile import save_shard
from ..store.statsfile import save_statistics
from .gates import ThresholdCrossed, parse_gates, verdicts
from .options import MetricOptionsCommand, interval_options, shared_options
from .outputs import check_output
from .pairs import NearestPairs, nearest_option
from .render import (echo_classes, echo_eval, echo_fid, echo_info, echo_is, echo_json, echo_pack, echo_shard,
                     echo_suite, echo_written, eval_row, fid_row, is_row, require_finite, run_record)
from .report_commands import ReportOptions, report_options

STATS_FORMATS = {"ganmetrics": ((), None), "adm": (("spatial",), "adm")}
"""``stats --format``: (the default encoder's features whose Gaussians go beside its FID
Gaussian, the suite whose features the file's must be: the ADM evaluator's pool3)."""


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
    results = evaluate_many(reference, list(others), ["fid"], options, fid_ranks=True, **interval.keywords())
    for r, other in zip(results, others):
        require_finite({**r.results}, f"FID of {other}")
    rows = [fid_row(FIDResult.of(r), str(other), interval) for r, other in zip(results, others)]
    echo_fid(rows, reference, interval, as_json)
    reasons = []
    over = [row for row in rows if fail_above is not None and row["value"] > fail_above]
    if over:
        names = ", ".join(f"{row['source_b']} ({row['value']:.4f})" for row in over)
        reasons.append(f"FID above --fail-above {fail_above}: {names}")
    level = f"{interval.level * 100:g}% CI"
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
    (result,) = evaluate_many(None, [source], ["is"], options, splits=splits, is_split_size=split_size)
    r = ISResult.of(result)
    require_finite({"mean": r.mean, "std": r.std}, f"IS of {source}")
    echo_is(is_row(r), as_json)
    if fail_below is not None and r.mean < fail_below:
        raise ThresholdCrossed(f"IS {r.mean:.4f} below --fail-below {fail_below}")


is_command.runs_distributed = True


@click.command("stats")
@click.argument("sources", metavar="SOURCE", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Statistics file to write (.npz).")
@click.option("--metrics", "metric_names", default="fid", show_default=True, metavar="NAMES",
              help="Store what these metrics need of a reference (NAME or NAME@ENCODER, comma-separated).")
@click.option("--features", is_flag=True,
              help="Also store every image's FID features (the feature bank KID, P/R and D/C need): 4 x dims bytes an image.")
@click.option("--shard", "shard", default=None, metavar="K/N",
              help="Only part K (0 to N-1) of N of SOURCE, as an exact shard file for `stats merge`.")
@click.option("--info", "info_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Print what statistics FILE holds (n, dims and its metadata) instead.")
@click.option("--format", "file_format", type=click.Choice(STATS_FORMATS), default="ganmetrics", show_default=True,
              help="adm: also sFID's mu_s, sigma_s beside pool3's mu, sigma, as the ADM evaluator's batches.")
@click.option("--per-class", "per_class", is_flag=True,
              help="Each class subfolder's statistics apart, in one file, for `eval FILE FOLDER --per-class` "
                   "(docs/metrics.md).")
@shared_options
def stats_command(sources: tuple[str, ...], output: Path | None, metric_names: str, features: bool, shard: str | None,
                  info_file: Path | None, file_format: str, per_class: bool, options: RunConfig, as_json: bool):
    """Reference statistics of SOURCE for later `ganmetrics fid` and `eval` (with --features also
    KID, P/R and D/C; with --format adm also sFID; with --metrics what those metrics need),
    written atomically to -o; or, with --info FILE, what a statistics file holds.

    For batch schedulers: `stats SOURCE --shard K/N -o part-K.npz` writes part K of N (a
    contiguous block of whole batches; run every part with the same options), and `stats merge
    part-*.npz -o all.npz` merges every part, exactly, into an ordinary statistics file.
    """
    ctx = click.get_current_context()
    if sources[:1] == ("merge",):
        _merge_command(ctx, list(sources[1:]), output, as_json)
    elif info_file is not None:
        if sources or output is not None or shard is not None:
            raise click.UsageError("--info FILE takes no SOURCE, no -o and no --shard", ctx=ctx)
        echo_info(info_file, as_json)
    elif len(sources) != 1 or output is None:
        raise click.UsageError("give one SOURCE and -o OUT.npz (or --info FILE, or merge PART... -o OUT.npz)", ctx=ctx)
    else:
        names = [name.strip() for name in metric_names.split(",") if name.strip()]
        _stats(sources[0], output, names, features, shard, file_format, per_class, options, as_json)


stats_command.runs_distributed = True


def _stats(source: str, output: Path, names: list[str], features: bool, shard: str | None, file_format: str,
           per_class: bool, options: RunConfig, as_json: bool) -> None:
    """``stats SOURCE -o OUT.npz``: the whole source's statistics (with ``per_class``, each
    class's), or with ``shard`` one part's states."""
    if per_class and (shard is not None or file_format != "ganmetrics"):
        raise GanMetricsError(f"--per-class and {'--shard' if shard is not None else f'--format {file_format}'} do not go "
                              "together: a per-class file holds each class's statistics in ganmetrics' layout alone "
                              "(--metrics fid,sfid keeps sFID's too)")
    more, suite = STATS_FORMATS[file_format]
    if suite:
        plan_of([suite], options, {})  # refuses encoder options under which the suite's features differ
    if file_format != "ganmetrics" and shard is not None:
        raise GanMetricsError(f"--format {file_format} and --shard do not go together: shard files hold the exact "
                              "states of the FID features; write the parts, merge them, then compute the other format")
    check_output(output, [source])
    if shard is not None:
        part = compute_stats_shard(source, shard, features, names, options)
        if distributed.is_main():
            save_shard(output, part)
        echo_shard(output, shard, part, features, as_json)
        return
    stats = compute_stats(source, features, more, names, options, per_class)
    if distributed.is_main():
        save_statistics(output, stats)
    echo_written(output, stats, as_json, file_format)


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
    check_output(output, parts, "a part")
    stats = merge_stats_shards(parts)
    if distributed.is_main():
        save_statistics(output, stats)
    echo_written(output, stats, as_json)


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
    check_output(output, [source], kind="batches")
    echo_pack(pack(source, output, options), as_json)


@click.command("eval", cls=MetricOptionsCommand)
@click.argument("reference", metavar="SOURCE_A")
@click.argument("others", metavar="SOURCE_B...", nargs=-1, required=True)
@click.option("--metrics", "metric_names", default="fid,is", show_default=True, metavar="NAMES",
              help="Comma-separated metrics, each NAME or NAME@ENCODER (listed in docs/metrics.md).")
@click.option("--fail-above", default=None, metavar="NAME=X[,...]", help="Exit 1 when a result is above X, e.g. fid=30,kid=0.01.")
@click.option("--fail-below", default=None, metavar="NAME=X[,...]", help="Exit 1 when a result is below X, e.g. is=5.")
@click.option("--fail-above-ci", default=None, metavar="NAME=X[,...]",
              help="Exit 1 when the whole --ci interval of a result is above X (its low end is), e.g. fid=30.")
@click.option("--fail-below-ci", default=None, metavar="NAME=X[,...]",
              help="Exit 1 when the whole --ci interval of a result is below X (its high end is), e.g. is=5.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE.png",
              help="Also draw each metric per SOURCE_B with its interval into FILE.png (needs ganmetrics[plot]).")
@click.option("--per-class", "per_class", is_flag=True,
              help="Every metric on each class subfolder apart, as KEY/CLASS (fid/cat), and intra_fid, the "
                   "classes' mean FID (docs/metrics.md).")
@nearest_option
@report_options
@interval_options
@shared_options
def eval_command(reference, others, metric_names, fail_above, fail_below, fail_above_ci, fail_below_ci,
                 plot_file: Path | None, per_class: bool, nearest: NearestPairs, report: ReportOptions,
                 interval: IntervalOptions, options: RunConfig, as_json: bool, **metric_options):
    """Every requested metric of each SOURCE_B against SOURCE_A, reading each source once and
    decoding each image once for every encoder the metrics run on.

    SOURCE_A is the reference (real) side, each SOURCE_B a generated set; one-sided metrics (is,
    is_inf, vendi) are computed on each SOURCE_B. Memory and the metrics' definitions: docs/metrics.md.
    """
    names = [name.strip() for name in metric_names.split(",") if name.strip()]
    metric_options.update(nearest.keywords())
    plan = plan_of(names, options, {**metric_options, **interval.keywords()})
    plot_here = _check_outputs(plan, [reference, *others], per_class, plot_file, nearest, report)
    classes = class_names(reference if plan.needs("a") else others[0], options.sources) if per_class else None
    gates = _gates(plan.metrics, interval, (fail_above, fail_below, fail_above_ci, fail_below_ci), classes)
    results = evaluate_many(reference, list(others), names, options, per_class, **metric_options, **interval.keywords())
    for r in results:
        require_finite({**r.results, **r.details}, f"results for {r.source_b}")
    suite = suite_rows(names)
    rows = [eval_row(r, run_record(options.sources, verdicts(r.results, gates, interval.level))) for r in results]
    if as_json:
        echo_json(rows[0] if len(rows) == 1 else rows)
    elif per_class:
        echo_classes(results)
    elif suite:
        echo_suite(results, suite)
    else:
        echo_eval(results)
    if plot_here:
        save_plot(rows, plot_file)
    nearest.write(results, plan)
    report.write(rows)
    reasons = [f"{row['source_b']}: {', '.join(crossed)}" for row in rows
               if (crossed := [gate["reason"] for gate in row["run"]["gates"] if gate["crossed"]])]
    if reasons:
        raise ThresholdCrossed("threshold crossed: " + "; ".join(reasons))


eval_command.runs_distributed = True


def _check_outputs(plan, inputs: list[str], per_class: bool, plot_file: Path | None, nearest: NearestPairs,
                   report: ReportOptions) -> bool:
    """Refuse, before any work, ``eval``'s outputs that do not go together or cannot be written
    (``--plot``, ``--nearest``, ``--report``); whether this process draws the plot: under
    torchrun rank 0 alone draws and writes."""
    if per_class and plot_file is not None:
        raise GanMetricsError("--plot draws results of whole sets, and --per-class gives each class's: drop one of them")
    nearest.check(plan, inputs, per_class)
    report.check(inputs)
    plot_here = plot_file is not None and distributed.is_main()
    if plot_here:
        check_plot_output(plot_file)
    return plot_here


def _gates(metrics, interval: IntervalOptions, specs: tuple, classes: list[str] | None) -> tuple:
    """The four gates of ``eval`` (``specs``: --fail-above, --fail-below, --fail-above-ci and
    --fail-below-ci as given) parsed against ``metrics``' result keys, of ``classes`` in a
    ``--per-class`` run (``gates.parse_gates``)."""
    fail_above, fail_below, fail_above_ci, fail_below_ci = specs
    with_ci = interval.replicates is not None
    above = parse_gates(fail_above, "--fail-above", metrics, with_ci=with_ci, classes=classes)
    below = parse_gates(fail_below, "--fail-below", metrics, with_ci=with_ci, classes=classes)
    above_ci = parse_gates(fail_above_ci, "--fail-above-ci", metrics, interval=True, classes=classes)
    below_ci = parse_gates(fail_below_ci, "--fail-below-ci", metrics, interval=True, classes=classes)
    if (above_ci or below_ci) and not with_ci:
        option = "--fail-above-ci" if above_ci else "--fail-below-ci"
        raise GanMetricsError(f"{option} gates on the bounds of a confidence interval: add --ci B (e.g. --ci 100)")
    return above, below, above_ci, below_ci
