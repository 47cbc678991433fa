"""The settings of a run as frozen, validated values (no behaviour): what the API keywords and
the CLI's shared options become."""

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import GanMetricsError
from .extractors.registry import DEFAULT_ENCODER, ENCODERS


@dataclass(frozen=True)
class SourceOptions:
    """How sources are opened. ``recursive``: search subfolders; ``key``: the array of an
    ``.npz``; ``limit``: only the first N images of each source; ``strict``: refuse non-image
    files in folders and archives instead of skipping them."""

    recursive: bool = True
    key: str | None = None
    limit: int | None = None
    strict: bool = False

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise GanMetricsError(f"--limit must be at least 1, got {self.limit}")


@dataclass(frozen=True)
class RunConfig:
    """The facts of a run shared by every API function and command; each encoder's own settings
    are given by encoder name.

    ``weights``: {encoder: a path or ``random:SEED``} (a bare spec: the default encoder's; an
    encoder not named resolves its own, see ``extractors/weights.py``); ``encoders``: {encoder:
    {option: value}}, e.g. {"inception": {"resize": "clean", "dims": 64}}; ``device``: auto,
    cpu, cuda or cuda:N; ``batch_size``: images per forward pass; ``workers``: decoding
    processes (None: chosen from the CPU count; 0: decode in this process); ``progress``: a
    progress bar on stderr; ``allow_mismatch``: compare with statistics files made with other
    encoder options or weights; ``cache``: True caches the reduced values of every source that
    can be fingerprinted (not generators), False none, None (default) only those of a folder or
    archive on the reference side; ``allow_tf32``: let a CUDA GPU use TF32 (faster, moves the
    features; recorded as ``tf32``).
    """

    weights: Mapping[str, str | os.PathLike] | str | os.PathLike | None = None
    device: str = "auto"
    batch_size: int = 50
    workers: int | None = None
    encoders: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    progress: bool = False
    allow_mismatch: bool = False
    cache: bool | None = None
    allow_tf32: bool = False
    sources: SourceOptions = field(default_factory=SourceOptions)

    def __post_init__(self):
        if self.batch_size < 1:
            raise GanMetricsError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise GanMetricsError(f"--workers must be 0 or more, got {self.workers}")
        if not isinstance(self.weights, Mapping):
            object.__setattr__(self, "weights", {} if self.weights is None else {DEFAULT_ENCODER: self.weights})

    @classmethod
    def from_keywords(cls, keywords: dict) -> "RunConfig":
        """A config from flat keywords: this class's fields, ``SourceOptions``' (``limit``,
        ``recursive``, ``key``, ``strict``) and the default encoder's options (the Inception's
        ``resize`` and ``dims``), which join ``encoders``. An unknown keyword is a GanMetricsError."""
        source_fields = {f.name for f in dataclasses.fields(SourceOptions)}
        known = {f.name for f in dataclasses.fields(cls)} - {"sources"}
        default_options = {f.name for f in dataclasses.fields(ENCODERS[DEFAULT_ENCODER].Options)}
        unknown = sorted(set(keywords) - known - source_fields - default_options)
        if unknown:
            raise GanMetricsError(
                f"unexpected keyword argument {unknown[0]!r}: see help(ganmetrics.RunConfig) and "
                "help(ganmetrics.SourceOptions) for the accepted options"
            )
        sources = SourceOptions(**{k: v for k, v in keywords.items() if k in source_fields})
        encoders = {name: dict(options) for name, options in keywords.get("encoders", {}).items()}
        aliased = {k: v for k, v in keywords.items() if k in default_options}
        if aliased:
            encoders[DEFAULT_ENCODER] = {**encoders.get(DEFAULT_ENCODER, {}), **aliased}
        given = {k: v for k, v in keywords.items() if k in known and k != "encoders"}
        return cls(**given, encoders=encoders, sources=sources)


@dataclass(frozen=True)
class IntervalOptions:
    """Bootstrap confidence intervals over images (``--ci``, ``--ci-level``, ``--ci-method``,
    ``--ci-seed``; the API's ``ci``, ``ci_level``, ``ci_method``, ``ci_seed``). ``replicates``:
    B resampled copies of each side (None: no interval); ``level``: the interval's coverage,
    strictly between 0 and 1; ``method``: "basic" (the B values' quantiles reflected about the
    value: first-order corrected for the metric's bias, an interval for its value on the
    distributions themselves) or "percentile" (the quantiles themselves); ``seed``: keys the
    images' weights (``metrics.bootstrap.poisson_weights``), 0 to 2**64 - 1."""

    replicates: int | None = None
    level: float = 0.95
    method: str = "basic"
    seed: int = 0

    METHODS: ClassVar[tuple[str, ...]] = ("basic", "percentile")
    KEYWORDS: ClassVar[dict[str, str]] = {"ci": "replicates", "ci_level": "level", "ci_method": "method",
                                          "ci_seed": "seed"}
    """API keyword -> field."""

    def __post_init__(self):
        if self.replicates is not None and (isinstance(self.replicates, bool) or self.replicates < 2):
            raise GanMetricsError(f"--ci must be at least 2 bootstrap replicates (100 or more for a 95% interval), "
                                  f"got {self.replicates}")
        if not 0 < self.level < 1:
            raise GanMetricsError(f"--ci-level must lie strictly between 0 and 1 (e.g. 0.95 for a 95% interval), "
                                  f"got {self.level}")
        if self.method not in self.METHODS:
            raise GanMetricsError(f"--ci-method {self.method!r} is unknown: use one of {', '.join(self.METHODS)}")
        if not 0 <= self.seed < 2 ** 64:
            raise GanMetricsError(f"--ci-seed must lie in 0..2**64-1, got {self.seed}")

    @classmethod
    def pop_keywords(cls, keywords: dict) -> "IntervalOptions":
        """The options named ``ci``, ``ci_level``, ``ci_method`` and ``ci_seed`` in
        ``keywords``, removed from it."""
        return cls(**{field: keywords.pop(name) for name, field in cls.KEYWORDS.items() if name in keywords})

    def keywords(self) -> dict:
        """The API keywords (``ci``, ``ci_level``, ``ci_method``, ``ci_seed``) that give these options."""
        return {name: getattr(self, field) for name, field in self.KEYWORDS.items()}

    def settings(self) -> dict:
        """Its part of the output's ``settings`` (empty without ``--ci``)."""
        if self.replicates is None:
            return {}
        return {"ci": self.replicates, "ci_level": self.level, "ci_method": self.method, "ci_seed": self.seed}
