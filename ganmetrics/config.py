"""The settings of a run as frozen, validated values (no behaviour): what the API keywords and
the CLI's shared options become."""

import dataclasses
import os
from dataclasses import dataclass, field

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
