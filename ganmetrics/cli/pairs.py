"""``eval --nearest K FILE.csv``: memorisation's closest pairs as a CSV file for people to look
at, one row per pair: the generated image, its nearest reference image and their distance,
closest first. The metric gives image indices (its details); this module names the images."""

import csv
import io
from pathlib import Path

from ..api import EvalResult
from ..errors import GanMetricsError
from ..evaluation.plan import Plan
from ..metrics.base import Metric
from ..metrics.memorisation import PAIRS, Memorisation
from ..store.atomicfile import atomic_write
from .outputs import check_output

HEADER = ("generated", "reference", "distance")


def check_pairs(nearest: tuple[int, Path] | None, plan: Plan, inputs: list[str]) -> Metric | None:
    """The memorisation metric whose pairs ``--nearest K FILE.csv`` (``nearest``) writes, with
    FILE checked before any work (``outputs.check_output``); None without ``--nearest``. K
    below 1 is refused where the metric is made (``Memorisation``)."""
    if nearest is None:
        return None
    chosen = [metric for metric in plan.metrics if metric.name == Memorisation.name]
    if len(chosen) != 1:
        have = ", ".join(metric.label for metric in chosen) or "none"
        raise GanMetricsError(f"--nearest lists the closest pairs of one memorisation metric (requested: {have}): "
                              "request memorisation or memorisation@ENCODER once in --metrics")
    check_output(nearest[1], inputs, kind="CSV files", option="--nearest", suffix=".csv")
    return chosen[0]


def image_path(source: str, names, index: int) -> str:
    """How the CSV names image ``index`` of the side given as ``source`` whose image names are
    ``names``: a folder's image by its path, any other source's as ``SOURCE[NAME]`` (an
    archive's member, an array's row), a statistics file's bank row as ``SOURCE[INDEX]``."""
    if names is None:
        return f"{source}[{index}]"
    return str(Path(source) / names[index]) if Path(source).is_dir() else f"{source}[{names[index]}]"


def save_pairs(path: Path, results: list[EvalResult], metric: Metric, k: int) -> None:
    """The ``k`` closest pairs of every generated side of ``results`` together (each side's own
    ``k`` from ``metric``'s details), closest first (ties in the order of the sides, then of
    the generated images), written atomically to ``path`` as UTF-8 CSV under ``HEADER``
    (names that are not UTF-8 kept as their bytes); distances as float32's shortest digits."""
    import numpy as np

    rows = [(distance, image_path(r.source_b, r.names_b, generated), image_path(r.source_a, r.names_a, reference))
            for r in results for generated, reference, distance in r.details[metric.result_key(PAIRS)]]
    rows.sort(key=lambda row: row[0])  # stable
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((generated, reference, str(np.float32(distance))) for distance, generated, reference in rows[:k])
    with atomic_write(path) as file:
        file.write(text.getvalue().encode("utf-8", "surrogateescape"))
