"""What a metric, a reducer and a derivation are, and the ``Need`` that joins them.

A metric declares what it needs of each side as ``Need``s (a feature of the extractor, reduced
by a reducer class with options); the engine builds one reducer per distinct need, feeds it
every image once and hands the metric the reduced values (``Reducer.result()``): a metric is a
pure function of those, and knows no files, sources or devices beyond where to compute. A need
may instead name a ``Derivation``: a value computed from another reduced value of the same side
(the k-NN radii of a feature bank), which the engine computes once and caches with the side.
"""

from __future__ import annotations

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

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> "Reducer":
        """The reducer whose ``state()`` was ``state``, on ``device``: what ranks and shard files
        merge (``engine/distributed.py`` needs nothing else of a reducer)."""

    def result(self) -> Any:
        """The reduced value metrics use."""


class Derivation(Protocol):
    """A value derived from another reduced value of the same side, not from images: the value
    of ``Need(feature, source)`` for the same feature (e.g. the k-NN radii of a ``FeatureBank``).
    The engine derives it once that value is there, and caches it with the side's statistics
    (``state``/``from_state``, keyed by ``kind`` and the need's options)."""

    kind: ClassVar[str]
    source: ClassVar[type]

    @classmethod
    def derive(cls, value: Any, device: torch.device | None, **options) -> Any:
        """The derived value from the source's reduced ``value``, computed on ``device``."""

    @classmethod
    def state(cls, value: Any) -> dict[str, np.ndarray]:
        """The arrays that rebuild ``value`` (``from_state``), for the cache."""

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Any:
        """The value ``state`` holds."""


@dataclass(frozen=True)
class Need:
    """A feature reduced by ``reducer`` with ``options`` ((name, value) pairs). Hashable: equal
    needs of several metrics share one reducer.

    ``reducer`` is a ``Reducer`` class, fed the images, or a ``Derivation`` class, computed from
    the side's value of ``source`` (``derived``). ``given``: needs of the reference side whose
    values a generated side's reducer is built with (``create(..., given=(value, ...))``), for
    a reducer that streams against the reference (density and coverage)."""

    feature: str
    reducer: type
    options: tuple = ()
    given: tuple["Need", ...] = ()

    @property
    def derived(self) -> bool:
        """Whether it is derived from another need's value rather than reduced from images."""
        return hasattr(self.reducer, "derive")

    @property
    def source(self) -> "Need":
        """The need a derived need is computed from."""
        return Need(self.feature, self.reducer.source)

    def build(self, dims: int, total: int | None, device, reference: Mapping["Need", Any] | None = None) -> Reducer:
        """A new reducer; ``reference``: the reference side's values, where ``given`` names some."""
        given = {"given": tuple(reference[need] for need in self.given)} if self.given else {}
        return self.reducer.create(dims, total, device, **dict(self.options), **given)

    def derive(self, value: Any, device: torch.device | None) -> Any:
        """A derived need's value from its source's ``value``."""
        return self.reducer.derive(value, device, **dict(self.options))


Reduced = Mapping[Need, Any]
"""One side's reduced values: {need: reducer.result()}."""


def option(default, help: str):
    """A metric option: a dataclass field with its ``default`` and the ``help`` of its CLI
    option (``eval --kid-subset-size`` for the field ``kid_subset_size``). A bool is a flag; a
    field that defaults to None takes the type of its annotation (``float | None``: a float)."""
    return dataclasses.field(default=default, metadata={"help": help})


def seed_option():
    """The ``seed`` option that the metrics with random draws share (one ``--seed`` for all)."""
    return option(2020, "Seed of the metrics' random draws: KID's subsets (torch-fidelity's stream), "
                        "FID∞/IS∞'s shuffles.")


class Metric:
    """Base of the metrics: a frozen dataclass whose fields are its options (``option``), named
    as the API keywords and the ``eval`` options (``dims``, ``splits``, ``kid_subsets``, ...):
    a new option is one field, picked up by the API, the CLI and the output's settings.

    ``name``: as in ``--metrics``; ``sides``: 2 compares a generated set with the reference, 1
    scores each generated set alone; ``keys``: the result keys ``compute`` returns, the first
    the one a gate on ``name`` reads; ``interval_keys``: those a bootstrap over images (``--ci``,
    ``metrics.bootstrap``) gives an interval for, by recomputing the metric on resampled reduced
    values (empty: none, e.g. where a repeated image would be its own nearest neighbour).
    """

    name: ClassVar[str]
    sides: ClassVar[int]
    keys: ClassVar[tuple[str, ...]]
    interval_keys: ClassVar[tuple[str, ...]] = ()

    def needs(self, extractor) -> list[Need]:
        """What it needs of a generated side (and of the reference, unless ``reference_needs``
        says otherwise), from ``extractor``'s features."""
        raise NotImplementedError

    def reference_needs(self, extractor) -> list[Need]:
        """What a two-sided metric needs of the reference side: by default what it needs of a
        generated one."""
        return self.needs(extractor)

    def compute(self, a: Reduced | None, b: Reduced, device: "torch.device | None" = None) -> dict:
        """Its values ({result key: float}) from the reference side ``a`` (None for one-sided
        metrics) and a generated side ``b``, each {need: value} for the needs it declared;
        ``device``: where to compute (None: the CPU). Entries beyond ``keys`` (e.g. FID∞'s
        fitted points) are details: in the JSON's ``details``, not in ``results``."""
        raise NotImplementedError

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        """Refuse, before any image is decoded, sides too small for it (None: unknown count)."""

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        """The settings it ran with, for the output (by default its options)."""
        return dataclasses.asdict(self)
