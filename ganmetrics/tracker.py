"""The training-loop API: FID and IS of generated batches against fixed reference statistics.

In the style of torchmetrics: ``update(batch)`` on the training device, ``compute()``,
``reset()`` (clears the generated side only). The reference statistics are computed (or read,
or taken from the statistics cache) once at construction.
"""

import numpy as np
import torch

from .api import Options, resolve_statistics
from .errors import GanMetricsError
from .extract import ImageBatch
from .metrics import frechet_distance, inception_score_from_sums
from .preprocess import clean_resize
from .reducers import GaussianStats, InceptionScoreAccumulator
from .sources import rgb_pixels


class GenerativeMetrics:
    """FID (and IS) of generated images against ``reference``: a folder, archive, array,
    statistics ``.npz`` or ``Statistics``. Keywords are the shared options (``weights``,
    ``device``, ``dims``, ``resize``, ``batch_size``, ``cache``, ...), plus ``splits`` for the IS
    and ``inception_score=False`` to compute FID only (the network then runs only as deep as
    ``dims`` needs).

    Memory is constant: generated images are reduced as they arrive. IS splits are assigned
    round-robin (the number of images is not known in advance), so the IS differs slightly from
    ``ganmetrics is`` on the same images; the FID is the same. Nothing here changes the caller's
    models, their train/eval mode, gradients or the global RNG state.
    """

    def __init__(self, reference, *, splits: int = 10, inception_score: bool = True, **options):
        if splits < 1:
            raise GanMetricsError(f"splits must be at least 1, got {splits}")
        self.options = Options.from_keywords(options)
        self.splits = splits
        self.inception_score = inception_score
        # Reading a reference source draws a DataLoader seed from the global RNG: keep it private.
        with torch.random.fork_rng(devices=[]):
            self.extractor = self.options.extractor()
            self.reference = resolve_statistics(reference, self.extractor, self.options, reference=True)
        self.reset()

    def reset(self) -> None:
        """Forget the generated images; the reference statistics stay."""
        device = self.extractor.device
        self.generated = GaussianStats(self.extractor.dims, device=device)
        self.scores = InceptionScoreAccumulator(self.splits, total=None, device=device) if self.inception_score else None

    def update(self, images: torch.Tensor, value_range: str | None = None) -> None:
        """Add generated images, a tensor on any device (or an array): (N, 3, H, W), (N, 1, H, W)
        or channels last; uint8, or float in ``value_range`` "0,1" or "-1,1" (floats default to
        "-1,1"). Converted to uint8 as saving them to PNG would (round, clip)."""
        pixels = rgb_pixels(images, value_range)  # on the caller's device: no round trip through the host
        if self.extractor.resize == "clean":  # PIL's resize, on the CPU
            pixels = torch.from_numpy(np.stack([clean_resize(image) for image in pixels.cpu().numpy()]))
        step = self.extractor.batch_size
        for start in range(0, len(pixels), step):
            out = self.extractor.forward_batch(ImageBatch.of_pixels(pixels[start:start + step]),
                                               logits=self.scores is not None)
            self.generated.update(out.features)
            if self.scores is not None:
                self.scores.update(out.logits)

    def compute(self) -> dict:
        """{"fid", "n"} and, unless ``inception_score=False``, {"is_mean", "is_std"} of the images
        given since the last reset."""
        if self.generated.count < 2:
            raise GanMetricsError(f"FID needs at least 2 generated images, got {self.generated.count}")
        fid = frechet_distance(self.reference.mu, self.reference.sigma, self.generated.mu(), self.generated.sigma(),
                               self.extractor.device)
        result = {"fid": fid, "n": self.generated.count}
        if self.scores is not None:
            result["is_mean"], result["is_std"] = inception_score_from_sums(*self.scores.sums())
        return result
