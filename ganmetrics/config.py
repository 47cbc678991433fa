"""The settings of a run as frozen, validated values (no behaviour): what the API keywords and
the CLI's shared options become."""

import dataclasses
import os
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import GanMetricsError


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
    """Settings shared by every API function and command.

    ``weights``: a path, ``random:SEED`` or None (the resolution order of the weights);
    ``device``: auto, cpu, cuda or cuda:N; ``batch_size``: images per forward pass;
    ``workers``: decoding processes (None: chosen from the CPU count; 0: decode in this
    process); ``resize``: tf, pytorch or clean; ``dims``: the FID feature layer;
    ``progress``: a progress bar on stderr; ``allow_mismatch``: compare with statistics files
    made with other resize or weights; ``cache``: True caches the reduced states of every
    source that can be fingerprinted (not generators), False none, None (default) only those
    of a folder or archive on the reference side; ``allow_tf32``: let a CUDA GPU use TF32
    (faster, moves FID; recorded as ``tf32``).
    """

    weights: str | os.PathLike | None = None
    device: str = "auto"
    batch_size: int = 50
    workers: int | None = None
    resize: str = "tf"
    dims: int = 2048
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

    @classmethod
    def from_keywords(cls, keywords: dict) -> "RunConfig":
        """A config from flat keywords: this class's fields and ``SourceOptions``' (``limit``,
        ``recursive``, ``key``, ``strict``). An unknown keyword is a GanMetricsError."""
        source_fields = {f.name for f in dataclasses.fields(SourceOptions)}
        known = {f.name for f in dataclasses.fields(cls)} - {"sources"}
        unknown = sorted(set(keywords) - known - source_fields)
        if unknown:
            raise GanMetricsError(
                f"unexpected keyword argument {unknown[0]!r}: see help(ganmetrics.RunConfig) and "
                "help(ganmetrics.SourceOptions) for the accepted options"
            )
        sources = SourceOptions(**{k: v for k, v in keywords.items() if k in source_fields})
        return cls(**{k: v for k, v in keywords.items() if k in known}, sources=sources)


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

    def settings(self) -> dict:
        """Its part of the output's ``settings`` (empty without ``--ci``)."""
        if self.replicates is None:
            return {}
        return {"ci": self.replicates, "ci_level": self.level, "ci_method": self.method, "ci_seed": self.seed}
