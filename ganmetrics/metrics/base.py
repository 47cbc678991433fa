"""What a metric, a reducer and a derivation are, and the ``Need`` that joins them.

A metric declares what it needs of each side as ``Need``s (a feature of one encoder, reduced by
a reducer class with options); the engine builds one reducer per distinct need, feeds it every
image once and hands the metric the reduced values (``Reducer.result()``): a metric is a pure
function of those, and knows no files, sources or devices beyond where to compute. A need may
instead name a derivation (a reducer class with ``derive``): a value computed from another
reduced value of the same side (the k-NN radii of a feature bank), computed once and cached
with the side.

Reducers declare their state once (``state_fields``: what merges across batches, ranks and
shard files; ``value_fields``: how ``result()`` is stored in statistics files and the cache,
empty where it never is) and register themselves by ``kind``: files, ranks and the cache rebuild
any of them through ``REDUCERS``. Each also says the fewest images it needs and how a
bootstrap resamples it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor

REDUCERS: dict[str, type[Reducer]] = {}
"""Every reducer and derivation class by ``kind`` (filled as they are defined)."""


class Reducer:
    """Base of the reducers: mergeable reduced state of one feature of a side's images, and of
    the derivations (computed from another reduced value instead of from images)."""

    kind: ClassVar[str]
    state_fields: ClassVar[tuple[str, ...]] = ()
    """The arrays of ``state()``: everything that rebuilds it exactly (``from_state``)."""
    value_fields: ClassVar[tuple[str, ...]] = ()
    """The arrays ``value_arrays`` turns ``result()`` into for a file (empty: never stored)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            REDUCERS[cls.kind] = cls

    @classmethod
    def create(cls, dims: int, total: int | None, device: torch.device | str, **options) -> Reducer:
        """An empty reducer of ``dims``-wide features of a source of ``total`` images (None: open-ended)."""
        raise NotImplementedError

    def update(self, x: torch.Tensor, positions: torch.Tensor) -> None:
        """Add float features (N, dims) of the images at global ``positions``, int64 (N,)."""
        raise NotImplementedError

    def merge(self, other: Reducer) -> Reducer:
        """Fold ``other`` (other images of the same set) into this one, in place; return self."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """{field: array} for each of ``state_fields``."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], device: torch.device | str = "cpu") -> Reducer:
        """The reducer whose ``state()`` was ``state``, on ``device``."""
        raise NotImplementedError

    def result(self) -> Any:
        """The reduced value metrics use."""
        raise NotImplementedError

    @classmethod
    def value_arrays(cls, value: Any) -> dict[str, np.ndarray]:
        """{field: array} of a ``result()`` for each of ``value_fields``."""
        raise NotImplementedError

    @classmethod
    def value_of(cls, arrays: Mapping[str, np.ndarray]) -> Any:
        """The value ``value_arrays`` turned into ``arrays``."""
        raise NotImplementedError

    def covers(self, positions: range) -> bool:
        """Whether this state is of exactly the images at ``positions`` (a shard file's check), as
        far as it records which images it holds (by default it does not: True)."""
        return True

    @classmethod
    def fewest(cls, options: Mapping[str, Any], names: str) -> tuple[int, str]:
        """(the fewest images a side needs, what needs them: for the message) for a need of
        these ``options`` of the metrics ``names``."""
        return 2, names.upper()

    @classmethod
    def resampling(cls, need: Need, stream: int, replicates: int, seed: int) -> Need | None:
        """The need whose value gives this need's value on every bootstrap replicate (None: no
        bootstrap; ``intervals.py``): ``stream``, ``replicates`` and ``seed`` key the weights."""
        return None

    @classmethod
    def prepare_resampling(cls, value: Any, device: torch.device | None) -> Any:
        """What ``resampled`` takes as ``source``, made once from the ``resampling`` need's value
        (e.g. moved to ``device``): by default the value itself."""
        return value

    @classmethod
    def resampled(cls, need: Need, source: Any, replicate: int, weights: Callable[[int], np.ndarray],
                  device: torch.device | None) -> Any:
        """This need's value on bootstrap ``replicate`` from ``source``, the value of its
        ``resampling`` need; ``weights(count)``: the replicate's int64 (count,) image weights."""
        raise NotImplementedError


@dataclass(frozen=True)
class Need:
    """A feature of ``encoder`` (its registry name) reduced by ``reducer`` with ``options``
    ((name, value) pairs). Hashable: equal needs of several metrics share one reducer.

    ``reducer`` is a reducer class, fed the images, or a derivation (a class with ``derive`` and
    ``source``), computed from the side's value of ``source``. ``given``: needs of the reference
    side whose values a generated side's reducer is built with (``create(..., given=(value, ...))``),
    for a reducer that streams against the reference (density and coverage)."""

    encoder: str
    feature: str
    reducer: type
    options: tuple = ()
    given: tuple[Need, ...] = ()

    @property
    def derived(self) -> bool:
        """Whether it is derived from another need's value rather than reduced from images."""
        return hasattr(self.reducer, "derive")

    @property
    def source(self) -> Need:
        """The need a derived need is computed from (itself for the others)."""
        return Need(self.encoder, self.feature, self.reducer.source) if self.derived else self

    def build(self, dims: int, total: int | None, device, reference: Mapping[Need, Any] | None = None) -> Reducer:
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


@dataclass(frozen=True)
class Metric:
    """Base of the metrics: a frozen dataclass whose fields are its options (``option``), named
    as the API keywords and the ``eval`` options (``splits``, ``kid_subsets``, ...): a new
    option is one field, picked up by the API, the CLI and the output's settings.

    ``name``: as in ``--metrics``; ``sides``: 2 compares a generated set with the reference, 1
    scores each generated set alone; ``keys``: the result keys ``compute`` returns, the first
    the one a gate on ``name`` reads; ``interval_keys``: those a bootstrap over images (``--ci``)
    gives an interval for, by recomputing the metric on resampled reduced values (empty: none,
    e.g. where a repeated image would be its own nearest neighbour); ``role``: the kind of
    feature it takes of its encoder (``extractors.base.ROLES``); ``default_encoder``: the
    encoder of ``NAME`` (``NAME@ENCODER`` names another).

    ``encoder`` is not an option: the encoder this metric runs on (None: ``default_encoder``).
    On another encoder than its default its result and settings keys carry ``@ENCODER``.
    """

    name: ClassVar[str]
    sides: ClassVar[int]
    keys: ClassVar[tuple[str, ...]]
    interval_keys: ClassVar[tuple[str, ...]] = ()
    role: ClassVar[str] = "embedding"
    default_encoder: ClassVar[str] = "inception"
    encoder: str | None = dataclasses.field(default=None, kw_only=True, metadata={"binding": True})

    @property
    def encoder_name(self) -> str:
        return self.encoder or self.default_encoder

    @property
    def label(self) -> str:
        """How ``--metrics`` names it: ``name``, or ``name@encoder`` off its default encoder."""
        return self.result_key(self.name)

    def result_key(self, key: str) -> str:
        """A key of its results or settings as the output names it (``@encoder`` off its default)."""
        return key if self.encoder_name == self.default_encoder else f"{key}@{self.encoder_name}"

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        """What it needs of a generated side (and of the reference, unless ``reference_needs``
        says otherwise), from its encoder ``extractor``'s features."""
        raise NotImplementedError

    def reference_needs(self, extractor: FeatureExtractor) -> list[Need]:
        """What a two-sided metric needs of the reference side: by default what it needs of a
        generated one."""
        return self.needs(extractor)

    def compute(self, a: Reduced | None, b: Reduced, device: torch.device | None = None) -> dict:
        """Its values ({result key: float}) from the reference side ``a`` (None for one-sided
        metrics) and a generated side ``b``, each {need: value} for the needs it declared;
        ``device``: where to compute (None: the CPU). Entries beyond ``keys`` (e.g. FID∞'s
        fitted points) are details: in the JSON's ``details``, not in ``results``."""
        raise NotImplementedError

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        """Refuse, before any image is decoded, sides too small for it (None: unknown count)."""

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        """The settings it ran with, for the output (by default its options)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("binding")}


def options_of(metric_class: type[Metric]) -> list[dataclasses.Field]:
    """A metric class's option fields (not its ``encoder`` binding)."""
    return [f for f in dataclasses.fields(metric_class) if not f.metadata.get("binding")]
