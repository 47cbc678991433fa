"""The FID Inception-v3 as a feature extractor: the taps "64", "192", "768", "2048" (pool3),
"logits_unbiased" and "spatial" (sFID's) of one forward pass, with the named resize of ``preprocess.py``.

On the CPU the network runs in oneDNN's blocked layout (``onednn.py``) with its stem two images
at a time: the same numbers, faster. Resizing (``tf``, ``pytorch``) runs on the compute device;
``clean`` runs in the decoding workers (``host_transform``).
"""

import functools
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import GanMetricsError
from ...provenance import Provenance
from .network import FEATURE_DIMS, FEATURES, FIDInceptionV3
from .onednn import use_blocked_layout
from .preprocess import RESIZE_MODES, clean_resize, to_network_input
from .weights import Weights

NAME = "inception-v3-2015-12-05"
CPU_STEM_BATCH = 2
"""Images the network's stem runs at once on the CPU (see ``FIDInceptionV3.stem_batch``)."""


def _unchanged(image: np.ndarray) -> np.ndarray:
    return image


@dataclass
class InceptionExtractor:
    """The network with its ``weights`` on ``device``. ``resize``: tf, pytorch or clean;
    ``allow_tf32``: let a CUDA device compute convolutions and matrix products in TF32 (faster
    on Ampere and later; moves FID). The network is built on first use: FID between two
    statistics files needs none."""

    weights: Weights
    device: torch.device
    resize: str = "tf"
    allow_tf32: bool = False

    name = NAME
    features = FEATURES

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise GanMetricsError(f"--resize {self.resize!r} is unknown: use one of {', '.join(RESIZE_MODES)}")

    @property
    def provenance(self) -> Provenance:
        return Provenance(NAME, self.weights.sha256, self.weights.calibrated, self.resize,
                          tf32=self.allow_tf32 and self.device.type == "cuda")

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
        return clean_resize if self.resize == "clean" else _unchanged

    @functools.cached_property
    def network(self) -> FIDInceptionV3:
        network = self.weights.build_network(self.device)
        if self.device.type == "cpu":
            use_blocked_layout(network)  # the same numbers with fewer reorders (see onednn.py)
            network.stem_batch = CPU_STEM_BATCH  # the same numbers, from the caches
        return network

    def prepare(self) -> None:
        self.network.eval()

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """``pixels``: uint8 (N, H, W, 3), or float32 (N, 299, 299, 3) after ``clean``, on
        ``device`` -> {feature: float32 (N, width)}."""
        # Contiguous NCHW as the reference tools feed it: a channels-last batch makes the
        # convolutions pick other kernels, whose rounding moves features by ~1e-5.
        x = pixels.permute(0, 3, 1, 2).contiguous()
        return self.network(to_network_input(x, self.resize), wanted)
