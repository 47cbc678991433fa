"""What a feature extractor is: named features of uint8 images, computed on one device.

The engine asks an extractor for the union of the features the requested metrics need and runs
every image through it once. An extractor owns its weights, its resize and its normalisation.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

import numpy as np
import torch

from ..provenance import Provenance


class FeatureExtractor(Protocol):
    """``name``: recorded in the provenance; ``features``: {feature name: width};
    ``device``: where it computes; ``provenance``: what its numbers depend on."""

    name: str
    features: Mapping[str, int]
    device: torch.device
    provenance: Provenance

    def provenance_without_network(self, tf32: bool = False) -> Provenance | None:
        """The provenance of a run that builds no network, ``tf32`` recording how its statistics
        were made: the weights identified without loading them, or None where they cannot be
        (they would have to be downloaded)."""

    def default_feature(self, metric: str) -> str:
        """The feature a metric uses unless told otherwise (e.g. "2048" for FID, "logits_unbiased" for IS)."""

    host_transform: Callable[[np.ndarray], np.ndarray]
    """Per image, in the decoding worker: uint8 (H, W, 3) -> what ``__call__`` takes (an
    identity, or a resize that must run on the host). Picklable: it travels to the workers."""

    def prepare(self) -> None:
        """Build the model on the device before any forward thread starts."""

    def __call__(self, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """Same-sized images from ``host_transform``, stacked (N, H, W, 3) on ``device`` ->
        {feature: float32 (N, features[feature])} for each wanted feature."""

    def plan(self, pixels: torch.Tensor, wanted: Collection[str],
             sizes: Sequence[int] | None = None) -> tuple[list[Callable[[], dict]], Callable]:
        """``self(pixels, wanted)`` as (parts, join): functions of no arguments that each compute
        some of the images' features and may run on different threads at once, and ``join``,
        which takes their results in order to what ``self(pixels, wanted)`` returns (one part
        and ``lambda outs: outs[0]`` where the work does not split). ``sizes``: the images of
        each part, in order (positive, summing to N), where the work splits; None: the
        extractor's own split."""
