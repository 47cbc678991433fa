"""``--per-class``: every requested metric on each class of the sides, and ``intra_fid``.

A side's classes (``class_sides``): the class subfolders of a folder (``sources.class_folders``,
the ImageFolder layout: sorted names, a class's images every image under its folder), or the
classes of per-class statistics (``ganmetrics stats FOLDER --per-class``). A class of a folder is
a source of its own, its subfolder: its own fingerprint, so the statistics cache keeps each
class's values apart and reuses them (for a run on that subfolder alone too), and each image is
decoded once a run. Every side must have the same classes.

A run opens and checks one ``OpenedRun`` a class (class c of the reference against class c of
each generated side) before it reduces any, then reduces and computes them in class order
through the one compute loop. Results: each result key K of a whole-set run as ``K/<class>``
(``fid/cat``, ``kid_std/cat``, ``fid@clip-vitb32/cat``, ``fid_ci_low/cat``); ``intra_fid``
(Miyato & Koyama 2018), the mean of the classes' ``fid`` (``intra_fid@ENCODER`` of
``fid@ENCODER``), with ``--ci`` its interval from the mean of the classes' FIDs on each
bootstrap replicate, whose images are numbered across the classes (``intervals.py``); settings
once (one that differs between classes as ``K/<class>``). No whole-set result: a run without
``--per-class`` gives those.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SourceOptions
from ..errors import GanMetricsError, quoted
from ..engine.readahead import ReadAhead
from ..metrics.base import Metric
from ..provenance import Provenance
from ..sources import class_folders, is_hidden, is_image_name
from ..sources.base import report_skipped
from ..store.statsfile import Statistics, is_statistics_file, read_statistics, statistics_classes
from .intervals import intervals_of
from .plan import Plan
from .run import Evaluated, OpenedRun, check_counts, checked_provenance, evaluate_run, open_run
from .sides import Side


def class_key(key: str, name: str) -> str:
    """The result key of ``key`` (a whole-set run's) for class ``name``: ``fid/cat``."""
    return f"{key}/{name}"


def intra_keys(metrics: list[Metric]) -> dict[str, str]:
    """{intra key: the result key whose per-class values it is the mean of}: ``intra_fid`` of
    ``fid``, ``intra_fid@ENCODER`` of ``fid@ENCODER``."""
    return {f"intra_{metric.result_key(key)}": metric.result_key(key)
            for metric in metrics if metric.name == "fid" for key in metric.keys}


@dataclass(frozen=True)
class ClassSides:
    """A side's classes: ``label``, the side as given; ``classes``, {class name: (its spec, what
    to call it where its spec does not say)}, in class order."""

    label: str
    classes: dict[str, tuple[Any, str | None]]


def _holds_images(folder: Path, recursive: bool) -> bool:
    """Whether ``folder`` (or, ``recursive``, a folder under it that is not hidden) holds an
    image file; the walk stops at the first."""
    for _, subfolders, files in os.walk(folder):
        if any(is_image_name(name) for name in files):
            return True
        subfolders[:] = [name for name in subfolders if not is_hidden(name)] if recursive else []
    return False


def _checked_class_folders(root: Path, options: SourceOptions) -> list[Path]:
    """The class folders of ``root``, refusing a folder without any, an image in no class and a
    class without images; its other files are skipped as a folder's are (refused ``strict``)."""
    folders = class_folders(root)
    loose = sorted(entry.name for entry in os.scandir(root) if entry.is_file() and not is_hidden(entry.name))
    images = [name for name in loose if is_image_name(name)]
    if not folders:
        held = f" ({len(images)} images lie in it directly)" if images else ""
        raise GanMetricsError(f"--per-class: {quoted(root)} has no class subfolders{held}: put each class's images in "
                              "a subfolder named after the class (the ImageFolder layout), or drop --per-class")
    if images:
        raise GanMetricsError(f"--per-class: {quoted(root / images[0])} is in no class ({len(images)} images lie in "
                              f"{quoted(root)} itself): move each into its class's subfolder")
    report_skipped([name for name in loose if not is_image_name(name)], str(root), options.strict)
    for folder in folders:
        if not _holds_images(folder, options.recursive):
            raise GanMetricsError(f"--per-class: the class {quoted(folder.name)} ({quoted(folder)}) holds no images: "
                                  "add its images, or remove its folder")
    return folders


def _per_class_statistics(spec) -> Statistics | None:
    """``spec`` as statistics (a ``Statistics``, or a statistics file read): None where it is
    none; refused where it holds the statistics of one set."""
    is_file = isinstance(spec, (str, os.PathLike)) and is_statistics_file(spec)
    if not isinstance(spec, Statistics) and not is_file:
        return None
    stats = read_statistics(spec) if is_file else spec
    if not stats.classes:
        where = spec if is_file else "the given statistics"
        raise GanMetricsError(f"--per-class: {quoted(where)} holds the statistics of one set of images, not per "
                              "class: write them with `ganmetrics stats FOLDER --per-class`")
    return stats


def class_sides(spec, options: SourceOptions) -> ClassSides:
    """The classes of the side ``spec``: a folder of class subfolders (checked as
    ``_checked_class_folders`` says), or per-class statistics (a ``Statistics`` or a file)."""
    stats = _per_class_statistics(spec)
    if stats is not None:
        where = "the given statistics" if isinstance(spec, Statistics) else str(spec)
        return ClassSides(where, {name: (part, f"{where}, class {name}") for name, part in stats.classes.items()})
    is_path = isinstance(spec, (str, os.PathLike))
    if is_path and Path(spec).is_dir():
        return ClassSides(str(spec), {folder.name: (folder, None) for folder in _checked_class_folders(Path(spec), options)})
    what = quoted(spec) if is_path else f"a {type(spec).__name__}"
    raise GanMetricsError(f"--per-class compares the classes of folders whose images lie in one subfolder a class (or of "
                          f"per-class statistics: `ganmetrics stats FOLDER --per-class`), and {what} is neither: "
                          "pass such a folder, or drop --per-class")


def class_names(spec, options: SourceOptions) -> list[str]:
    """The classes of the side ``spec`` (``class_sides``'), of a statistics file from its meta alone."""
    if isinstance(spec, (str, os.PathLike)) and is_statistics_file(spec):
        names = statistics_classes(spec)
        if names:
            return names
    return list(class_sides(spec, options).classes)


def check_same_classes(reference: ClassSides, other: ClassSides) -> None:
    """Refuse sides whose classes differ, naming the classes each lacks."""
    lacks = [(side, [name for name in having.classes if name not in side.classes])
             for side, having in ((other, reference), (reference, other))]
    if any(names for _, names in lacks):
        which = "; ".join(f"{quoted(side.label)} lacks {', '.join(map(quoted, names))}" for side, names in lacks if names)
        raise GanMetricsError(f"--per-class: the classes of {quoted(reference.label)} and {quoted(other.label)} differ "
                              f"({which}): give every side the same class subfolders")


def _numbered(runs: dict[str, OpenedRun]) -> dict[str, OpenedRun]:
    """``runs`` (one a class, in class order) with each side's images numbered on from the same
    side's classes before it, for the bootstrap's weights."""
    numbered, offset_a, offsets = {}, 0, (0,) * len(next(iter(runs.values())).others)
    for name, run in runs.items():
        numbered[name] = replace(run, offset_a=offset_a, offsets=offsets)
        offset_a += (run.a.n or 0) if run.a else 0
        offsets = tuple(offset + (side.n or 0) for offset, side in zip(offsets, run.others))
    return numbered


def _opened_runs(plan: Plan, a, others: list) -> tuple[ClassSides | None, list[ClassSides], dict[str, OpenedRun]]:
    """(the reference's classes, None where no metric needs it; each generated side's; the
    opened and counted run of each class)."""
    sides_b = [class_sides(other, plan.config.sources) for other in others]
    side_a = class_sides(a, plan.config.sources) if plan.needs("a") else None
    first = side_a or sides_b[0]
    for side in sides_b:
        check_same_classes(first, side)
    runs = {}
    for name in first.classes:
        spec_a, label_a = side_a.classes[name] if side_a else (None, None)
        specs = [side.classes[name] for side in sides_b]
        runs[name] = open_run(plan, spec_a, [spec for spec, _ in specs], label_a, [label for _, label in specs])
    runs = _numbered(runs)
    for run in runs.values():
        check_counts(plan, run)
    return side_a, sides_b, runs


def _settings(evaluated: dict[str, Evaluated]) -> dict:
    """The classes' settings: once where every class has the same, else ``K/<class>`` each."""
    settings = {}
    for key, value in next(iter(evaluated.values())).settings.items():
        each = {name: e.settings[key] for name, e in evaluated.items()}
        settings.update({key: value} if all(v == value for v in each.values()) else
                        {class_key(key, name): v for name, v in each.items()})
    return settings


def _total(counts: list[int | None]) -> int | None:
    return None if any(n is None for n in counts) else sum(counts)


def _combined(plan: Plan, labels: tuple[str | None, str], evaluated: dict[str, Evaluated],
              provenance: Provenance) -> Evaluated:
    """One generated side's ``Evaluated`` of the classes' (``evaluated``: {class: its}, in order)."""
    values = {class_key(key, name): value for name, e in evaluated.items() for key, value in e.values.items()}
    for intra, key in intra_keys(plan.metrics).items():
        values[intra] = float(np.mean([e.values[key] for e in evaluated.values()]))
        if key in next(iter(evaluated.values())).draws:
            draws = np.mean([e.draws[key] for e in evaluated.values()], axis=0)
            values.update(intervals_of({intra: draws}, values, plan.interval))
    details = {class_key(key, name): value for name, e in evaluated.items() for key, value in e.details.items()}
    counts = {name: {"n_a": e.side_a and e.side_a.n, "n_b": e.side_b.n} for name, e in evaluated.items()}
    side_a = None if labels[0] is None else Side(labels[0], _total([count["n_a"] for count in counts.values()]), {})
    side_b = Side(labels[1], _total([count["n_b"] for count in counts.values()]), {})
    return Evaluated(side_a, side_b, values, _settings(evaluated), details, provenance, classes=counts)


def evaluate_classes(plan: Plan, a, others: list) -> Iterator[Evaluated]:
    """``Evaluated`` for each of ``others`` against the reference ``a``, class by class (the
    module says how); every side of every class is opened and checked before any is reduced."""
    side_a, sides_b, runs = _opened_runs(plan, a, others)
    provenance, device = checked_provenance(plan, list(runs.values()))
    per_class: dict[str, list[Evaluated]] = {}
    with ReadAhead([source for run in runs.values() for source in run.reads(plan)]) as read_ahead:
        for name, run in runs.items():  # the reduced values are dropped once computed: memory of one class
            per_class[name] = [replace(e, side_a=e.side_a and replace(e.side_a, reduced={}),
                                       side_b=replace(e.side_b, reduced={}))
                               for e in evaluate_run(plan, run, provenance, device, read_ahead)]
    for index, side in enumerate(sides_b):
        yield _combined(plan, (side_a and side_a.label, side.label),
                        {name: evaluated[index] for name, evaluated in per_class.items()}, provenance)
