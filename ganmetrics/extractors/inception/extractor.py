"""The FID Inception-v3 as a feature extractor: the taps "64", "192", "768", "2048" (pool3),
"logits_unbiased" and "spatial" (sFID's) of one forward pass, with the named resize of ``preprocess.py``.

Creating one costs nothing and imports no torch: its weights and device are resolved, and its
network built, on first need, so FID between two statistics files builds no network: its
weights are then only identified, where they are at hand (``provenance_without_network``: a file
hashed). The network is built once per process for each weights file and device (``_NETWORKS``):
its layout probe is not repeated by later extractors, e.g. repeated API calls.

On the CPU the network runs in oneDNN's blocked layout (``onednn.py``), ``CPU_CHUNK`` images at
a time with its stem two images at a time: the same numbers, faster, and in less memory.
Resizing (``tf``, ``pytorch``) runs on the compute device, per chunk on the CPU; ``clean`` runs
in the decoding workers (``host_transform``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from ...errors import GanMetricsError
from ...provenance import Provenance
from ...sources.base import unchanged
from .spec import FEATURE_DIMS, FEATURES, NAME, RESIZE_MODES

if TYPE_CHECKING:
    import torch

    from .network import FIDInceptionV3
    from .weights import Weights

CPU_STEM_BATCH = 2
"""Images the network's stem runs at once on the CPU (see ``FIDInceptionV3.stem_batch``)."""

CPU_CHUNK = 10
"""Images resized and run through the network at once on the CPU. Larger chunks are hardly
faster there, while the activations in flight grow with them (BENCHMARKS.md, issue 15); each
image's features are the same whatever the chunk (``tests/extractors/test_onednn.py`` pins it
bit for bit)."""

_NETWORKS: dict[tuple[str, str], FIDInceptionV3] = {}
"""Built networks by (weights sha256, device): built and probed once per process."""
_NETWORKS_KEPT = 2
_BUILDING = threading.Lock()


def _resolved(value, kind):
    """``value``, or what it returns when it is a function of no arguments (a deferred resolution)."""
    return value if isinstance(value, kind) else value()


class InceptionExtractor:
    """The network with its ``weights`` on ``device``. ``weights``: ``Weights``, or a function
    of no arguments that returns them; ``device``: a ``torch.device``, or a function of no
    arguments that returns one (each called once, on first need). ``resize``: tf, pytorch or
    clean; ``allow_tf32``: let a CUDA device compute convolutions and matrix products in TF32
    (faster on Ampere and later; moves FID). ``identify``: with deferred ``weights``, a function
    of no arguments that returns their (sha256, calibrated) without loading them, or None where
    it cannot (``weights.weights_identity``); without it, deferred weights are not identified."""

    name = NAME
    features = FEATURES
    cpu_chunk = CPU_CHUNK

    def __init__(self, weights: Weights | Callable[[], Weights], device: torch.device | Callable[[], torch.device],
                 resize: str = "tf", allow_tf32: bool = False,
                 identify: Callable[[], tuple[str, bool] | None] | None = None):
        if resize not in RESIZE_MODES:
            raise GanMetricsError(f"--resize {resize!r} is unknown: use one of {', '.join(RESIZE_MODES)}")
        self._weights, self._device, self._identify = weights, device, identify
        self.resize, self.allow_tf32 = resize, allow_tf32

    @functools.cached_property
    def weights(self) -> Weights:
        """The weights, resolved on first use. Once the network is built they keep only their
        identity (``Weights.released``): the network holds the tensors."""
        from .weights import Weights

        return _resolved(self._weights, Weights)

    @functools.cached_property
    def device(self) -> torch.device:
        import torch

        return _resolved(self._device, torch.device)

    @functools.cached_property
    def provenance(self) -> Provenance:
        return Provenance(NAME, self.weights.sha256, self.weights.calibrated, self.resize,
                          tf32=self.allow_tf32 and self.device.type == "cuda")

    def provenance_without_network(self, tf32: bool = False) -> Provenance | None:
        """The provenance of a run that builds no network (statistics files only), ``tf32``
        recording how the statistics were made: this extractor's weights identified without
        loading them (``identify``; weights already resolved: theirs), or None where nothing
        identifies them (they would have to be downloaded). Resolves no device."""
        if "weights" in self.__dict__ or not callable(self._weights):
            identity = self.weights.sha256, self.weights.calibrated
        else:
            identity = self._identify() if self._identify is not None else None
        return None if identity is None else Provenance(NAME, *identity, self.resize, tf32=tf32)

    @staticmethod
    def default_feature(metric: str) -> str:
        return "logits_unbiased" if metric == "is" else "2048"

    @staticmethod
    def feature_of_dims(dims: int) -> str:
        """The FID tap of ``--dims``: "64", "192", "768" or "2048"."""
        if dims not in FEATURE_DIMS:
            raise GanMetricsError(f"--dims {dims} is not a feature layer: use one of {', '.join(map(str, FEATURE_DIMS))}")
        return str(dims)

    @property
    def host_transform(self):
        """What the decoding workers apply to each uint8 (H, W, 3) image: for ``clean``
        clean-fid's resize (float32 (299, 299, 3) in [0, 255]), else nothing. A small picklable
        function: it travels to the worker processes without the network."""
        if self.resize == "clean":
            from .preprocess import clean_resize

            return clean_resize
        return unchanged

    @functools.cached_property
    def network(self) -> FIDInceptionV3:
        network = _network(self.weights, self.device)
        self.weights = self.weights.released()  # the network holds the tensors it needs
        return network

    def prepare(self) -> None:
        """Build the network before any forward thread starts."""
        self.network  # noqa: B018

    def __call__(self, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """``pixels``: uint8 (N, H, W, 3), or float32 (N, 299, 299, 3) after ``clean``, on
        ``device`` -> {feature: float32 (N, width)}."""
        parts, join = self.plan(pixels, wanted)
        return join([part() for part in parts])

    def plan(self, pixels: torch.Tensor, wanted: Collection[str],
             sizes: Sequence[int] | None = None) -> tuple[list[Callable[[], dict]], Callable]:
        """``self(pixels, wanted)`` as (parts, join): functions of no arguments, one per chunk
        of ``cpu_chunk`` images on the CPU (or of each of ``sizes`` images; one chunk in all
        elsewhere), each returning its chunk's features, which may run on different threads at
        once; and ``join``, which takes their results in order to what ``self(pixels, wanted)``
        returns. Each image's features are the same bits in any chunk."""
        import torch

        from .preprocess import to_network_input

        network = self.network

        def features(part: torch.Tensor, taps: Collection[str]) -> Callable[[], dict]:
            def run() -> dict[str, torch.Tensor]:
                with torch.inference_mode():
                    # Contiguous NCHW as the reference tools feed it: a channels-last batch makes
                    # the convolutions pick other kernels, whose rounding moves features by ~1e-5.
                    return network(to_network_input(part.permute(0, 3, 1, 2).contiguous(), self.resize), taps)
            return run

        if self.device.type != "cpu":
            chunks = (pixels,)
        elif sizes:
            chunks = pixels.split(list(sizes))
        else:
            chunks = pixels.split(self.cpu_chunk)
        if len(chunks) == 1:
            return [features(pixels, wanted)], lambda outs: outs[0]
        # The logits are one matrix product, whose rounding depends on its number of rows:
        # computed once for all the chunks in ``join``, as the network computes them for one batch.
        per_chunk = set(wanted) - {"logits_unbiased"} | ({"2048"} if "logits_unbiased" in wanted else set())

        @torch.inference_mode()
        def join(outs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            out = {feature: torch.cat([o[feature] for o in outs]) for feature in per_chunk}
            if "logits_unbiased" in wanted:
                out["logits_unbiased"] = network.logits(out["2048"])
            return {feature: out[feature] for feature in wanted}

        return [features(chunk, per_chunk) for chunk in chunks], join


def _network(weights: Weights, device: torch.device) -> FIDInceptionV3:
    """The network of ``weights`` on ``device``, built once per process (the last
    ``_NETWORKS_KEPT`` kept). On the CPU in oneDNN's blocked layout where this machine computes
    it bit for bit (``onednn.use_blocked_layout``), its stem ``CPU_STEM_BATCH`` images at a time."""
    key = (weights.sha256, str(device))
    with _BUILDING:
        if key not in _NETWORKS:
            from .onednn import use_blocked_layout

            network = weights.build_network(device)
            if device.type == "cpu":
                use_blocked_layout(network)  # the same numbers with fewer reorders (see onednn.py)
                network.stem_batch = CPU_STEM_BATCH  # the same numbers, from the caches
            while len(_NETWORKS) >= _NETWORKS_KEPT:
                del _NETWORKS[next(iter(_NETWORKS))]
            _NETWORKS[key] = network
        return _NETWORKS[key]

