"""What a metric and a reducer are, and the ``Need`` that joins them.

A metric declares what it needs of each side as ``Need``s (a feature of the extractor, reduced
by a reducer class with options); the engine builds one reducer per distinct need, feeds it
every image once and hands the metric the reduced values (``Reducer.result()``): a metric is a
pure function of those, and knows no files, sources or devices beyond where to compute.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch


class Reducer(Protocol):
    """Mergeable reduced state of a feature. ``kind`` names it in files and cache keys."""

    kind: ClassVar[str]

    @classmethod
    def create(cls, dims: int, total: int | None, device: "torch.device | str", **options) -> "Reducer":
        """An empty reducer of ``dims``-wide features of a source of ``total`` images (None: open-ended)."""

    def update(self, x: "torch.Tensor", positions: "torch.Tensor") -> None:
        """Add float features (N, dims) of the images at global ``positions``, int64 (N,)."""

    def merge(self, other: "Reducer") -> "Reducer":
        """Fold ``other`` (other images of the same set) into this one, in place; return self."""

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild it exactly (``from_state``): for files and ranks."""

    def result(self) -> Any:
        """The reduced value metrics use."""


@dataclass(frozen=True)
class Need:
    """A feature reduced by ``reducer`` with ``options`` ((name, value) pairs). Hashable: equal
    needs of several metrics share one reducer."""

    feature: str
    reducer: type
    options: tuple = ()

    def build(self, dims: int, total: int | None, device) -> Reducer:
        return self.reducer.create(dims, total, device, **dict(self.options))


Reduced = Mapping[Need, Any]
"""One side's reduced values: {need: reducer.result()}."""


def option(default, help: str):
    """A metric option: a dataclass field with its ``default`` and the ``help`` of its CLI
    option (``eval --kid-subset-size`` for the field ``kid_subset_size``). A bool is a flag; a
    field that defaults to None takes the type of its annotation (``float | None``: a float)."""
    return dataclasses.field(default=default, metadata={"help": help})


class Metric:
    """Base of the metrics: a frozen dataclass whose fields are its options (``option``), named
    as the API keywords and the ``eval`` options (``dims``, ``splits``, ``kid_subsets``, ...):
    a new option is one field, picked up by the API, the CLI and the output's settings.

    ``name``: as in ``--metrics``; ``sides``: 2 compares a generated set with the reference, 1
    scores each generated set alone; ``keys``: the result keys ``compute`` returns, the first
    the one a gate on ``name`` reads.
    """

    name: ClassVar[str]
    sides: ClassVar[int]
    keys: ClassVar[tuple[str, ...]]

    def needs(self, extractor) -> list[Need]:
        """What it needs of each side it uses, from ``extractor``'s features."""
        raise NotImplementedError

    def compute(self, a: Reduced | None, b: Reduced, device: "torch.device | None" = None) -> dict[str, float]:
        """Its values ({result key: value}) from the reference side ``a`` (None for one-sided
        metrics) and a generated side ``b``; ``device``: where to compute (None: the CPU)."""
        raise NotImplementedError

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        """Refuse, before any image is decoded, sides too small for it (None: unknown count)."""

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        """The settings it ran with, for the output (by default its options)."""
        return dataclasses.asdict(self)
