"""``eval --nearest K FILE.csv``: memorisation's closest pairs as a CSV file for people to look
at, one row per pair: the generated image, its nearest reference image and their distance,
closest first. The metric gives image indices (its details); this module names the images."""

import csv
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import click

from ..api import EvalResult
from ..engine import distributed
from ..errors import GanMetricsError
from ..evaluation.plan import Plan
from ..metrics.base import Metric
from ..metrics.memorisation import PAIRS, Memorisation
from ..store.atomicfile import atomic_write
from .outputs import check_output

HEADER = ("generated", "reference", "distance")


@dataclass(frozen=True)
class NearestPairs:
    """``eval --nearest K FILE.csv`` as given: ``k`` pairs written to ``path`` (None: not asked)."""

    k: int | None = None
    path: Path | None = None

    def keywords(self) -> dict:
        """The metric option it sets: memorisation's ``nearest`` K, where given."""
        return {} if self.k is None else {"nearest": self.k}

    def check(self, plan: Plan, inputs: list[str], per_class: bool) -> None:
        """Refuse, before any work: ``--per-class`` beside it, a plan without exactly one
        memorisation metric, and a FILE that ``outputs.check_output`` refuses. K below 1 is
        refused where the metric is made (``Memorisation``)."""
        if self.path is None:
            return
        if per_class:
            raise GanMetricsError("--nearest lists the closest pairs of whole sets, and --per-class compares each "
                                  "class apart: drop one of them (a class's pairs: eval its two class folders)")
        self.metric(plan)
        check_output(self.path, inputs, kind="CSV files", option="--nearest", suffix=".csv")

    @staticmethod
    def metric(plan: Plan) -> Metric:
        """The plan's one memorisation metric, whose pairs FILE lists; refused in one line where
        it has none or several."""
        chosen = [metric for metric in plan.metrics if metric.name == Memorisation.name]
        if len(chosen) != 1:
            have = ", ".join(metric.label for metric in chosen) or "none"
            raise GanMetricsError(f"--nearest lists the closest pairs of one memorisation metric (requested: {have}): "
                                  "request memorisation or memorisation@ENCODER once in --metrics")
        return chosen[0]

    def write(self, results: list[EvalResult], plan: Plan) -> None:
        """FILE (``save_pairs``), where asked, on rank 0 alone under torchrun."""
        if self.path is not None and distributed.is_main():
            save_pairs(self.path, results, self.metric(plan), self.k)


def nearest_option(command):
    """Add ``--nearest K FILE.csv`` to a click command, which then receives ``nearest: NearestPairs``."""
    @click.option("--nearest", "nearest", type=(int, click.Path(dir_okay=False, path_type=Path)), default=None,
                  metavar="K FILE.csv", help="With memorisation: write the K generated images closest to a reference "
                                             "image, with it and their distance, to FILE.csv.")
    @functools.wraps(command)
    def wrapper(nearest: tuple[int, Path] | None, **kwargs):
        return command(nearest=NearestPairs(*nearest) if nearest else NearestPairs(), **kwargs)

    return wrapper


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
