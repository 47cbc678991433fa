"""Where a number comes from: the one record of everything besides the images that changes it.

The same ``Provenance`` fills the results, the JSON tail, the ``meta`` of statistics files, the
statistics cache keys and the check that a statistics file may be compared with this run.
"""

from dataclasses import dataclass

from .errors import GanMetricsError
from .version import __version__


@dataclass(frozen=True)
class Provenance:
    """``extractor``: the feature extractor's name (e.g. "inception-v3-2015-12-05");
    ``weights_sha256``/``calibrated``: its weights (calibrated: the standard file);
    ``resize``: tf, pytorch or clean; ``tf32``: convolutions and matrix products ran in TF32 on
    a GPU; ``version``: of ganmetrics."""

    extractor: str
    weights_sha256: str
    calibrated: bool
    resize: str
    tf32: bool = False
    version: str = __version__

    @classmethod
    def of_meta(cls, meta: dict, resize: str) -> "Provenance":
        """The provenance a statistics file's ``meta`` records (its extractor, weights and tf32),
        for a run with ``resize``: a run of statistics files alone without weights at hand."""
        return cls(meta.get("extractor", "unknown"), meta["weights_sha256"], bool(meta.get("calibrated", False)), resize,
                   tf32=bool(meta.get("tf32", False)))

    def meta(self, dims: int, source: str | None = None) -> dict:
        """The ``meta`` of a statistics file of ``dims``-wide features; without ``source`` (a
        description, not an input to the numbers) it is the settings part of a cache key."""
        meta = {"extractor": self.extractor, "dims": dims, "resize": self.resize, "weights_sha256": self.weights_sha256,
                "calibrated": self.calibrated, "tf32": self.tf32, "version": self.version}
        if source is not None:
            meta["source"] = source
        return meta

    @staticmethod
    def check_dims(file_dims: int, run_dims: int, where) -> None:
        """Refuse statistics of ``file_dims``-wide features in a run of ``run_dims``."""
        if file_dims != run_dims:
            raise GanMetricsError(
                f"{where} holds {file_dims}-dim statistics but this run uses --dims {run_dims}: "
                f"pass --dims {file_dims} or recompute the statistics"
            )

    def json_tail(self) -> dict:
        """The keys every JSON result ends with (CONTRACT.md)."""
        return {"weights": {"sha256": self.weights_sha256, "calibrated": self.calibrated}, "tf32": self.tf32,
                "version": self.version}

    def check(self, meta: dict | None, file_dims: int, run_dims: int, where, allow_mismatch: bool) -> None:
        """Refuse statistics of ``file_dims``-wide features with ``meta`` (None: a file of
        pytorch-fid or TTUR, accepted) made otherwise than this run: other dims always (the
        numbers cannot be compared), other resize or weights unless ``allow_mismatch``."""
        self.check_dims(file_dims, run_dims, where)
        if meta is None or allow_mismatch:
            return
        run = {"resize": self.resize, "weights_sha256": self.weights_sha256}
        differ = [f"{key} {meta.get(key)!r} vs {value!r}" for key, value in run.items() if meta.get(key) != value]
        if differ:
            raise GanMetricsError(
                f"{where} was made with other settings ({'; '.join(differ)} in this run): recompute it, "
                "or pass --allow-mismatch to compare anyway"
            )
