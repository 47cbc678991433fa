"""Density and coverage (Naeem et al. 2020) of an encoder's embedding (the Inception's pool3 by
default), as ``prdc.compute_prdc``.

With the reference set's k-NN radii r_i (``neighbours.knn_radii``), over N reference features
x_i and M generated features y_j:
density = (1 / k) · (1 / M) Σ_j #{i : ‖y_j − x_i‖ < r_i}, coverage = (1 / N) #{i : min_j ‖x_i − y_j‖ < r_i}.
Inside means **strictly** closer than the radius (``<``), as prdc. So features that coincide
are not inside each other's balls: sets of one repeated feature (every radius 0) give density
and coverage 0, not 1 (prdc issue #7); the paper's definition, kept for parity. Distances are
prdc's own (``neighbours.prdc_distances``: float64 sums rounded to float32, as scikit-learn),
in its orientation (reference rows), so the same features give prdc's counts.

Once the reference's features and radii are known (cached with the reference), the generated
side streams: its features are compared with the reference block by block and leave only a
count and the reference's covered flags (``CoverageCounts``), so a generated side keeps no
feature bank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, Reducer, option
from .neighbours import BLOCK, as_features, radii_need, require_more_than_k, sweep

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor

DISTANCES = "prdc"
"""How density and coverage measure distances (``neighbours.DISTANCES``): as prdc."""


class CoverageCounts(Reducer):
    """Streaming state of density and coverage of a generated set against a fixed reference
    (``given``: its float32 (N, D) features and (N,) k-NN radii): how many (reference ball,
    generated feature) pairs are within the radius, how many generated features were seen, and
    which reference features have a generated one within their radius.

    Generated features wait until ``block`` of them have come (then each is compared with every
    reference feature once, in blocks of ``block`` x ``block``, and dropped), so that the
    reference's float64 copy is made once per ``block`` images, not per batch. Memory: the
    reference's features on the device (4·N·D bytes, shared with its feature bank on the CPU),
    one flag per reference feature, fewer than ``block`` waiting features plus one batch (82 MB at
    D = 2048) and one block of distances (``neighbours``): nothing grows with the generated images."""

    kind: ClassVar[str] = "coverage_counts"
    state_fields = ("within", "images", "covered")

    @classmethod
    def create(cls, dims: int, total: int | None, device: torch.device | str, k: int,
               given: tuple[np.ndarray, np.ndarray]) -> "CoverageCounts":
        reference, radii = given
        return cls(as_features(reference, device), as_features(radii, device), k)

    def __init__(self, reference: torch.Tensor, radii: torch.Tensor, k: int, block: int = BLOCK):
        import torch

        self.reference, self.radii, self.k, self.block = reference, radii, k, block
        self.within = torch.zeros((), dtype=torch.int64, device=reference.device)
        self.covered = torch.zeros(len(reference), dtype=torch.bool, device=reference.device)
        self.images = 0
        self.waiting: list[torch.Tensor] = []

    def update(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        """Add generated float features (B, D) (the counts do not depend on ``positions``);
        no synchronisation with a GPU."""
        import torch

        self.waiting.append(features.detach().to(self.reference.device, torch.float32))
        self.images += len(features)
        if sum(map(len, self.waiting)) >= self.block:
            self._count_waiting()

    def _count_waiting(self) -> None:
        import torch

        if not self.waiting:
            return
        generated = torch.cat(self.waiting)
        self.waiting = []

        def count(r: slice, c: slice, block_distances: torch.Tensor) -> None:
            inside = block_distances < self.radii[r, None]  # reference rows, generated columns, as prdc
            self.within += inside.sum()
            self.covered[r] |= inside.any(dim=1)

        sweep(self.reference, generated, DISTANCES, self.block, count)

    def merge(self, other: "CoverageCounts") -> "CoverageCounts":
        """Fold ``other`` (other generated images, the same reference) into this one; return self."""
        other._count_waiting()
        self.within += other.within.to(self.within.device)
        self.covered |= other.covered.to(self.covered.device)
        self.images += other.images
        return self

    def state(self) -> dict[str, np.ndarray]:
        """{"within" int64 (), "images" int64 (), "covered" bool (N,)} (the reference not included)."""
        self._count_waiting()
        return {"within": np.int64(self.within), "images": np.int64(self.images), "covered": self.covered.cpu().numpy()}

    def restored(self, state: dict) -> "CoverageCounts":
        """A reducer with this one's reference and radii holding ``state`` (the counts of other
        generated images, e.g. another rank's): what ``from_state`` is to the other reducers."""
        import torch

        counts = CoverageCounts(self.reference, self.radii, self.k, self.block)
        counts.within += int(state["within"])
        counts.images = int(state["images"])
        counts.covered |= torch.as_tensor(state["covered"]).to(counts.covered.device)
        return counts

    def result(self) -> tuple[int, int, np.ndarray]:
        """(pairs within a radius, generated images, covered flags bool (N,))."""
        state = self.state()
        return int(state["within"]), int(state["images"]), state["covered"]


def density_coverage(within: int, images: int, covered: np.ndarray, k: int) -> tuple[float, float]:
    """(density, coverage) from ``CoverageCounts.result()``, in prdc's float64 order of operations."""
    if images < 1:
        raise GanMetricsError("density and coverage need at least one generated image")
    return (1.0 / k) * (within / images), float(np.mean(covered))


@dataclass(frozen=True)
class DensityCoverage(Metric):
    """Density and coverage of embeddings with the reference's k-NN balls of ``dc_k`` (5). The
    reference needs more than ``dc_k`` images; a generated side streams (``CoverageCounts``)."""

    name = "dc"
    sides = 2
    keys = ("density", "coverage")
    dc_k: int = option(5, "D/C: neighbours that set each reference feature's ball (k of the k-NN radius).")

    def __post_init__(self):
        if self.dc_k < 1:
            raise GanMetricsError(f"--dc-k must be at least 1, got {self.dc_k}")

    def reference_needs(self, extractor: FeatureExtractor) -> list[Need]:
        radii = radii_need(extractor.name, extractor.default_feature(self), self.dc_k, DISTANCES)
        return [radii.source, radii]

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        feature = extractor.default_feature(self)
        return [Need(extractor.name, feature, CoverageCounts, (("k", self.dc_k),),
                     given=tuple(self.reference_needs(extractor)))]

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        require_more_than_k(self.dc_k, "--dc-k", "D/C", {"reference": n_a})

    def compute(self, a: Reduced, b: Reduced, device: torch.device | None = None) -> dict[str, float]:
        (counts,) = b.values()
        density, coverage = density_coverage(*counts, self.dc_k)
        return {"density": density, "coverage": coverage}
