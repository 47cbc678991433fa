"""The training-loop API: FID and IS of generated batches against fixed reference statistics.

In the style of torchmetrics: ``update(batch)`` on the training device, ``compute()``,
``reset()`` (clears the generated side only). The reference statistics are computed (or read)
once at construction.
"""

import torch

from .api import Options, resolve_statistics
from .errors import GanMetricsError
from .metrics import frechet_distance, inception_score_from_sums
from .reducers import GaussianStats, InceptionScoreAccumulator

VALUE_RANGES = ("uint8", "0,1", "-1,1")


def to_uint8(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """(N, 3, H, W) images in ``value_range`` -> uint8 (N, 3, H, W), rounding to nearest and
    clipping, as saving them to PNG would."""
    if value_range == "uint8":
        if images.dtype != torch.uint8:
            raise GanMetricsError(f"value_range='uint8' needs a uint8 tensor, got {images.dtype}")
        return images
    if value_range not in VALUE_RANGES:
        raise GanMetricsError(f"value_range {value_range!r} is unknown: use one of {', '.join(VALUE_RANGES)}")
    if not images.is_floating_point():
        raise GanMetricsError(f"value_range={value_range!r} needs a float tensor, got {images.dtype}")
    low = -1.0 if value_range == "-1,1" else 0.0
    scaled = (images.float() - low) * (255.0 / (1.0 - low))
    return scaled.round().clamp(0, 255).to(torch.uint8)


class GenerativeMetrics:
    """FID (and IS) of generated images against ``reference``: a folder, archive, array,
    statistics ``.npz`` or ``Statistics``. Keywords are the shared options (``weights``,
    ``device``, ``dims``, ``resize``, ``batch_size``, ...) plus ``splits`` for the IS.

    Memory is constant: generated images are reduced as they arrive, IS splits are assigned
    round-robin (the number of images is not known in advance).
    """

    def __init__(self, reference, *, splits: int = 10, **options):
        self.options = Options(**options)
        self.extractor = self.options.extractor()
        self.reference = resolve_statistics(reference, self.extractor, self.options)
        self.splits = splits
        self.reset()

    def reset(self) -> None:
        """Forget the generated images; the reference statistics stay."""
        self.generated = GaussianStats(self.extractor.dims)
        self.scores = InceptionScoreAccumulator(self.splits, total=None)

    def update(self, images: torch.Tensor, value_range: str = "-1,1") -> None:
        """Add generated images (N, 3, H, W) on any device, in ``value_range``: "uint8",
        "0,1" or "-1,1". Does not touch gradients, model modes or RNG state."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise GanMetricsError(f"images must be shaped (N, 3, H, W), got {tuple(images.shape)}")
        with torch.no_grad():
            pixels = to_uint8(images.detach(), value_range).permute(0, 2, 3, 1).cpu().numpy()
        for start in range(0, len(pixels), self.extractor.batch_size):
            out = self.extractor.forward_images(list(pixels[start:start + self.extractor.batch_size]), logits=True)
            self.generated.update(out.features)
            self.scores.update(out.logits)

    def compute(self) -> dict:
        """{"fid", "is_mean", "is_std", "n"} of the images given since the last reset."""
        if self.generated.count < 2:
            raise GanMetricsError(f"FID needs at least 2 generated images, got {self.generated.count}")
        fid = frechet_distance(self.reference.mu, self.reference.sigma, self.generated.mu(), self.generated.sigma())
        is_mean, is_std = inception_score_from_sums(*self.scores.sums())
        return {"fid": fid, "is_mean": is_mean, "is_std": is_std, "n": self.generated.count}
