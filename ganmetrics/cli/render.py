"""Results as text for people and JSON for machines (CONTRACT.md): every command's output drawn
from the same evaluation results (``fid`` and ``is`` rows are views of ``eval``'s)."""

import dataclasses
import json
import math
from pathlib import Path

import click

from ..api import EvalResult, FIDResult, ISResult, PackResult
from ..config import IntervalOptions, SourceOptions
from ..errors import GanMetricsError
from ..evaluation.classes import class_key
from ..extractors.registry import DEFAULT_ENCODER
from ..provenance import Provenance
from ..report.page import command_line, versions
from ..report.results import number
from ..store.compat import LEGACY_ENCODER, gaussian_keys
from ..store.shardfile import Shard
from ..store.statsfile import Statistics, load_statistics
from ..store.batchfile import IMAGES_KEY
from ..version import __version__


def calibration_note(provenance: Provenance | bool) -> str:
    """" [UNCALIBRATED weights: ...]" where some encoder's weights are not the standard file
    (naming them where the run has several encoders), else ""."""
    if isinstance(provenance, bool):
        return "" if provenance else " [UNCALIBRATED weights: not comparable with published values]"
    missing = provenance.uncalibrated()
    if not missing:
        return ""
    which = f" of {', '.join(missing)}" if len(provenance.encoders) > 1 else ""
    return f" [UNCALIBRATED weights{which}: not comparable with published values]"


def _non_finite(value, where: str = "") -> tuple[str, float] | None:
    """The first (key path, value) in a JSON-able value (dicts, lists, floats) that is a float
    NaN or infinity, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where or "value", value)
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def require_finite(values, what: str) -> None:
    """Refuse a result that is not finite (NaN or infinity anywhere in ``values``: a dict,
    list or float), so that it never reaches a gate (NaN > X is False) or an exit 0. ``what``
    names the result, e.g. "FID of runs/b"."""
    found = _non_finite(values)
    if found:
        key, value = found
        raise GanMetricsError(
            f"{what}: result is not finite ({key} = {value}): the features hold NaN or infinity; check the "
            "images, the weights and the device (--device cpu to compare)"
        )


def echo_json(value) -> None:
    """``value`` as one JSON line on stdout; a NaN or infinity anywhere is refused (it is not
    JSON, and it must never pass for a result)."""
    require_finite(value, "JSON output")
    click.echo(json.dumps(value, allow_nan=False))


def echo_table(rows: list[list[str]], header: list[str] | None = None) -> None:
    """Aligned columns: the first left-aligned, the others right-aligned."""
    rows = [header, *rows] if header else rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        click.echo("  ".join(cells).rstrip())


def _count(n: int | None) -> str:
    """An image count, "?" where unknown (a statistics file that does not say)."""
    return "?" if n is None else str(n)


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def eval_row(result: EvalResult, run: dict) -> dict:
    """The JSON object of one ``EvalResult`` (CONTRACT.md "eval"), with its ``details`` (FID∞'s
    fitted points, ...) where a metric gave some, a ``--per-class`` run's ``classes``
    ({class: {"n_a", "n_b"}}), and its ``run`` (``run_record``)."""
    return {"metric": "eval", "source_a": result.source_a, "source_b": result.source_b, "n_a": result.n_a,
            "n_b": result.n_b, **({"classes": result.classes} if result.classes else {}), "results": result.results,
            "settings": result.settings, **({"details": result.details} if result.details else {}),
            **result.provenance.json_tail(DEFAULT_ENCODER), "run": run}


def run_record(sources: SourceOptions, gates: list[dict]) -> dict:
    """The ``run`` of an ``eval`` JSON object: how to reproduce it and how it was gated —
    ``command`` (the command line as typed), ``versions`` ({package: version}), ``sources``
    (the source options, with which ``ganmetrics report`` re-opens the sources) and ``gates``
    (``gates.verdicts``)."""
    return {"command": command_line(), "versions": versions(), "sources": dataclasses.asdict(sources), "gates": gates}


def fid_row(r: FIDResult, source_b: str, interval: IntervalOptions) -> dict:
    """The JSON object of one ``fid`` comparison (CONTRACT.md "fid")."""
    return {"metric": "fid", "value": r.value, "n_a": r.n_a, "n_b": r.n_b, "dims": r.dims, "resize": r.resize,
            "rank_a": r.rank_a, "rank_b": r.rank_b, "source_b": source_b,
            **({"ci_low": r.ci_low, "ci_high": r.ci_high, **r.ci_settings} if interval.replicates else {}),
            "weights": {"sha256": r.weights_sha256, "calibrated": r.calibrated}, "tf32": r.tf32, "version": __version__}


def is_row(r: ISResult) -> dict:
    """The JSON object of one ``is`` score (CONTRACT.md "is")."""
    sized = {} if r.split_size is None else {"split_size": r.split_size}
    return {"metric": "is", "mean": r.mean, "std": r.std, "splits": r.splits, **sized, "n": r.n, "resize": r.resize,
            "weights": {"sha256": r.weights_sha256, "calibrated": r.calibrated}, "tf32": r.tf32, "version": __version__}


def echo_fid(rows: list[dict], reference, interval: IntervalOptions, as_json: bool) -> None:
    """``fid``'s output: one line, or one row per SOURCE_B and what they were compared against."""
    r, level = rows[0], f"{interval.level * 100:g}% CI"
    if as_json:
        echo_json(rows[0] if len(rows) == 1 else rows)
    elif len(rows) == 1:
        ci = f" [{level} {r['ci_low']:.6f}, {r['ci_high']:.6f}; B={interval.replicates}]" if interval.replicates else ""
        click.echo(f"FID {r['value']:.6f}{ci}  (n_a={r['n_a']}, n_b={r['n_b']}, dims={r['dims']}, "
                   f"resize={r['resize']}){calibration_note(r['weights']['calibrated'])}")
    else:
        intervals = ["ci_low", "ci_high"] if interval.replicates else []
        echo_table([[row["source_b"], f"{row['value']:.6f}", *(f"{row[k]:.6f}" for k in intervals),
                     _count(row["n_b"])] for row in rows],
                   ["SOURCE_B", "FID", *intervals, "n_b"])
        click.echo(f"against {reference} (n_a={r['n_a']}, dims={r['dims']}, resize={r['resize']}"
                   f"{f', {level}, B={interval.replicates}' if interval.replicates else ''})"
                   f"{calibration_note(r['weights']['calibrated'])}")


def echo_is(row: dict, as_json: bool) -> None:
    """``is``'s output."""
    if as_json:
        echo_json(row)
        return
    size = "" if "split_size" not in row else f" of {row['split_size']}"
    click.echo(f"IS {row['mean']:.6f} ± {row['std']:.6f}  (n={row['n']}, splits={row['splits']}{size}, "
               f"resize={row['resize']}){calibration_note(row['weights']['calibrated'])}")


def echo_eval(results: list[EvalResult]) -> None:
    """One row per SOURCE_B, one column per result key, then what they were computed against."""
    keys = list(results[0].results)
    echo_table([[r.source_b, _count(r.n_b), *(number(r.results[k]) for k in keys)]
                for r in results], ["SOURCE_B", "n_b", *keys])
    _echo_against(results[0])


def echo_classes(results: list[EvalResult]) -> None:
    """A ``--per-class`` run: for each SOURCE_B (under a "SOURCE_B:" line where there are
    several) one row per class, its image counts and its value of each result key, then the
    keys of no class (``intra_fid``) one a line; then what they were computed against."""
    for r in results:
        first = next(iter(r.classes))
        keys = [base for base, slash, name in (key.partition("/") for key in r.results) if slash and name == first]
        if len(results) > 1:
            click.echo(f"{r.source_b}:")
        echo_table([[name, _count(counts["n_a"]), _count(counts["n_b"]),
                     *(number(r.results[class_key(key, name)]) for key in keys)] for name, counts in r.classes.items()],
                   ["CLASS", "n_a", "n_b", *keys])
        for key, value in r.results.items():
            if "/" not in key:
                click.echo(f"{key}: {number(value)}")
    _echo_against(results[0], with_n_b=True)


def echo_suite(results: list[EvalResult], rows: tuple[tuple[str, str], ...]) -> None:
    """A suite's results as the tool it follows prints them: one "Label: value" line per row, in
    its order (the ADM evaluator's "Inception Score: 215.8..." to "Recall: ..."), under a
    "SOURCE_B:" line each where there are several; then what they were computed against."""
    for r in results:
        if len(results) > 1:
            click.echo(f"{r.source_b}:")
        for key, label in rows:
            click.echo(f"{label}: {float(r.results[key])}")
    _echo_against(results[0], with_n_b=True)


def _echo_against(first: EvalResult, with_n_b: bool = False) -> None:
    """The closing line: the reference, its count (and ``first``'s generated count where the
    rows above do not show it), the settings and the calibration note."""
    counts = f"n_a={_count(first.n_a)}"
    if with_n_b:
        counts += f", n_b={_count(first.n_b)}"
    settings = ", ".join(f"{k}={v}" for k, v in first.settings.items())
    click.echo(f"against {first.source_a} ({counts}; {settings}){calibration_note(first.provenance)}")


def _beside(stats: Statistics) -> str:
    """", with spatial statistics (2023 dims: mu_s, sigma_s)" for each Gaussian beside the primary
    one (in pytorch-fid's names for the legacy encoder's), and ", with ENCODER FEATURE statistics
    (D dims)" for every other encoder's."""
    primary_encoder = stats.primary[0]
    text = "".join(f", with {feature} statistics ({other.dims} dims"
                   f"{': ' + ', '.join(gaussian_keys(feature)) if primary_encoder == LEGACY_ENCODER else ''})"
                   for feature, other in stats.more.items())
    for encoder, feature, kind in stats.entries:
        if encoder != primary_encoder:
            fields = stats.entries[(encoder, feature, kind)]
            width = len(fields["mu"]) if "mu" in fields else fields["features"].shape[1]
            what = "statistics" if kind == "gaussian" else "features"
            text += f", with {encoder} {feature} {what} ({width} dims)"
    return text


def _stats_json(stats: Statistics) -> dict:
    """The keys ``stats`` prints of a file beside its path: n, its primary meta, and what else it holds."""
    others = {encoder: meta for encoder, meta in stats.metas.items() if encoder != stats.primary[0]}
    return {"n": stats.n, **(stats.meta or {}), **({"encoders": others} if others else {})}


def _classes_json(stats: Statistics) -> dict:
    """Per-class statistics' keys beside their first class's: ``n``, their total, and ``classes``
    ({class: its image count})."""
    counts = {name: part.n for name, part in stats.classes.items()}
    return {"n": None if None in counts.values() else sum(counts.values()), "classes": counts}


def _classes_text(stats: Statistics) -> str:
    """How a per-class file's images are counted: "3 classes (cat 10, dog 12, owl 8) of 30 images"."""
    counts = _classes_json(stats)
    each = ", ".join(f"{name} {_count(n)}" for name, n in counts["classes"].items())
    return f"{len(stats.classes)} classes ({each}) of {_count(counts['n'])} images"


def echo_written(output: Path, stats: Statistics, as_json: bool, file_format: str = "ganmetrics") -> None:
    """What ``stats`` (or ``stats merge``) wrote; of per-class statistics, their first class's
    settings and every class's count."""
    first = next(iter(stats.classes.values())) if stats.classes else stats
    if as_json:
        echo_json({"path": str(output), **_stats_json(first), **({"format": file_format} if first.more else {}),
                   **(_classes_json(stats) if stats.classes else {})})
        return
    calibrated = all(meta.get("calibrated", False) for meta in stats.metas.values() if meta)
    bank = ", with features" if first.features is not None else ""
    counted = _classes_text(stats) if stats.classes else f"{stats.n} images"
    click.echo(f"wrote {output}: {counted}, dims={first.dims}, resize={first.meta.get('resize')}{bank}"
               f"{_beside(first)}{'' if calibrated else ' [UNCALIBRATED weights]'}")


def echo_info(path: Path, as_json: bool) -> None:
    """``stats --info FILE``: what a statistics file holds (of a per-class file, its first
    class's settings and every class's count)."""
    stats = load_statistics(path)  # warns when the file has no metadata (pytorch-fid, TTUR)
    first = next(iter(stats.classes.values())) if stats.classes else stats
    if as_json:
        echo_json({"path": str(path), **_stats_json(first), "dims": first.dims,
                   **({"features": True} if first.features is not None else {}),
                   **({"more": {feature: other.dims for feature, other in first.more.items()}} if first.more else {}),
                   **(_classes_json(stats) if stats.classes else {})})
        return
    counted = _classes_text(stats) if stats.classes else f"{'unknown number of' if stats.n is None else stats.n} images"
    click.echo(f"{path}: {counted}, dims={first.dims}{', with features' if first.features is not None else ''}"
               f"{_beside(first)}")
    if first.meta is None:
        click.echo("  no metadata (written by pytorch-fid or TTUR?)")
    for key, value in sorted((first.meta or {}).items()):
        if key != "dims":
            click.echo(f"  {key}: {json.dumps(value) if isinstance(value, bool) else value}")


def echo_shard(output: Path, spec: str, part: Shard, features: bool, as_json: bool) -> None:
    """What ``stats --shard`` wrote."""
    info = part.info
    encoders = part.meta["encoders"]
    first = next(iter(encoders.values()))
    if as_json:
        echo_json({"path": str(output), "shard": spec, "start": info["start"], "stop": info["stop"],
                   "total": info["total"], **{k: v for k, v in first.items() if k not in ("encoder", "feature")},
                   **({"encoders": encoders} if len(encoders) > 1 else {})})
        return
    held = f"images {info['start']} to {info['stop'] - 1}" if info["stop"] > info["start"] else "no images"
    calibrated = all(meta["calibrated"] for meta in encoders.values())
    click.echo(f"wrote {output}: shard {spec} ({held} of {info['total']}), dims={first['dims']}, "
               f"resize={first.get('resize')}{', with features' if features else ''}"
               f"{'' if calibrated else ' [UNCALIBRATED weights]'}")


def echo_pack(result: PackResult, as_json: bool) -> None:
    """What ``pack`` wrote."""
    if as_json:
        echo_json({"path": result.path, "key": IMAGES_KEY, "n": result.n, "height": result.height, "width": result.width})
    else:
        click.echo(f"wrote {result.path}: {result.n} images of {result.width}x{result.height} as {IMAGES_KEY}")
