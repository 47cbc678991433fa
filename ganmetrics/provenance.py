"""Where a number comes from: the one record of everything besides the images that changes it.

Each encoder of a run has an ``EncoderProvenance`` (its model, weights and the options that
change its features); a run's ``Provenance`` holds them with the numerics (TF32) and the
ganmetrics version. The same records fill the results, the JSON tail, the ``meta`` of
statistics files, the cache keys and the check that a statistics file may be compared with
this run.
"""

from dataclasses import dataclass
from typing import Any

from .errors import GanMetricsError
from .version import __version__


@dataclass(frozen=True)
class EncoderProvenance:
    """One encoder's part: ``encoder``, its registry name; ``extractor``, the model the numbers
    come from (e.g. "inception-v3-2015-12-05"); ``weights_sha256``/``calibrated``, its weights
    (calibrated: the standard file); ``options``, the (name, value) pairs of the options that
    change its features (the Inception's ``resize``)."""

    encoder: str
    extractor: str
    weights_sha256: str
    calibrated: bool
    options: tuple[tuple[str, Any], ...] = ()

    def meta(self, tf32: bool, version: str = __version__) -> dict:
        """The settings part of a statistics file's ``meta`` and of a cache key: the encoder,
        its model, options (flat, by name), weights, ``tf32`` and the ganmetrics version."""
        return {"encoder": self.encoder, "extractor": self.extractor, **dict(self.options),
                "weights_sha256": self.weights_sha256, "calibrated": self.calibrated, "tf32": tf32, "version": version}

    @classmethod
    def of_meta(cls, encoder: str, meta: dict, options: tuple[str, ...]) -> "EncoderProvenance":
        """The provenance a statistics file's ``meta`` records for ``encoder``, whose feature-changing
        option names are ``options``: for a run of statistics files alone, without weights at hand."""
        return cls(encoder, meta.get("extractor", "unknown"), meta["weights_sha256"], bool(meta.get("calibrated", False)),
                   tuple((name, meta.get(name)) for name in options))

    def weights_json(self) -> dict:
        return {"sha256": self.weights_sha256, "calibrated": self.calibrated}

    def check(self, meta: dict | None, where, allow_mismatch: bool) -> None:
        """Refuse statistics whose ``meta`` (None: a file of pytorch-fid or TTUR, accepted) was made
        with other options or weights than this encoder's, unless ``allow_mismatch``."""
        if meta is None or allow_mismatch:
            return
        run = {**dict(self.options), "weights_sha256": self.weights_sha256}
        differ = [f"{key} {meta.get(key)!r} vs {value!r}" for key, value in run.items() if meta.get(key) != value]
        if differ:
            raise GanMetricsError(
                f"{where} was made with other settings ({'; '.join(differ)} in this run): recompute it, "
                "or pass --allow-mismatch to compare anyway"
            )


@dataclass(frozen=True)
class Provenance:
    """A run's encoders (in the order the run met them: the first is the one the JSON's
    ``weights`` names), whether the network ran with TF32 on a GPU, and the ganmetrics version."""

    encoders: tuple[EncoderProvenance, ...]
    tf32: bool = False
    version: str = __version__

    def of(self, encoder: str) -> EncoderProvenance:
        return next(p for p in self.encoders if p.encoder == encoder)

    @property
    def calibrated(self) -> bool:
        """Whether every encoder's weights are the standard files."""
        return all(p.calibrated for p in self.encoders)

    def uncalibrated(self) -> list[str]:
        """The encoders whose weights are not the standard files."""
        return [p.encoder for p in self.encoders if not p.calibrated]

    def json_tail(self, default_encoder: str) -> dict:
        """The keys every JSON result ends with (CONTRACT.md): ``weights`` of the first encoder,
        ``tf32``, ``version``; where the run used an encoder besides ``default_encoder``, also
        ``encoders``: {name: {"extractor", "options", "weights"}} of every encoder."""
        tail = {"weights": self.encoders[0].weights_json(), "tf32": self.tf32, "version": self.version}
        if any(p.encoder != default_encoder for p in self.encoders):
            tail["encoders"] = {p.encoder: {"extractor": p.extractor, "options": dict(p.options),
                                            "weights": p.weights_json()} for p in self.encoders}
        return tail
