"""The training-loop API: any registered metrics of generated batches against a fixed reference.

In the style of torchmetrics: ``update(batch)`` on the training device, ``compute()``,
``reset()`` (clears the generated side only). The reference side is reduced (or read, or taken
from the statistics cache) once at construction, by the same plan, engine, metrics and compute
loop as ``ganmetrics eval``.
"""

import numpy as np
import torch

from .api import DEFAULT_METRICS, plan_of
from .config import RunConfig
from .engine import distributed
from .engine.loader import ImageBatch
from .engine.runner import forward_batch, plan_tasks
from .errors import GanMetricsError
from .evaluation.cache import with_derived
from .evaluation.compute import results
from .evaluation.sides import network_provenance, reduce_reference
from .evaluation.statistics import encoder_metas
from .extractors.registry import DEFAULT_ENCODER
from .metrics.fid import FID
from .provenance import Provenance
from .sources import rgb_pixels
from .sources.base import unchanged
from .store.statsfile import Statistics


class GenerativeMetrics:
    """``metrics`` (default fid and is; ``inception_score=False``: fid only; any ``NAME`` or
    ``NAME@ENCODER``) of generated images against ``reference``: a folder, archive, array,
    statistics ``.npz`` or ``Statistics``. Keywords are ``config`` or the shared options
    (``weights``, ``device``, ``dims``, ``resize``, ``encoders``, ``batch_size``, ``cache``, ...)
    and the metrics' options (``splits``, ``kid_subset_size``, ...).

    Streaming metrics keep constant memory (FID, IS, density/coverage); KID and precision/recall
    keep every generated feature (4 D bytes an image). IS's ``splits`` are assigned round-robin
    (the number of images is not known in advance), so the IS differs slightly from
    ``ganmetrics is`` on the same images (with ``is_split_size``: contiguous runs, as
    ``ganmetrics is``); the FID is the same. Inside a torch.distributed job (the caller's
    process group) every rank builds it (the reference side is then read in shards), updates
    with its own images and calls ``compute()``: rank r's i-th image is image i·W + r of the
    whole set. Nothing here changes the caller's models, their train/eval mode, gradients or the
    global RNG state. The networks run only as deep as the metrics' features need.
    """

    def __init__(self, reference, *, metrics=None, inception_score: bool = True, config: RunConfig | None = None,
                 **options):
        if metrics is None:
            metrics = DEFAULT_METRICS if inception_score else ("fid",)
        # Reading a reference source draws a DataLoader seed from the global RNG: keep it private.
        with torch.random.fork_rng(devices=[]):
            self.plan = plan_of(metrics, config, options)
            self.needs = self.plan.needs("b")
            needs_a = self.plan.needs("a")
            self.reference_side = reduce_reference(reference, self.plan, needs_a) if needs_a else None
        self.tasks, self.transforms = plan_tasks(self.plan.encoders, [need.source for need in self.needs])
        self.reset()

    @property
    def provenance(self) -> Provenance:
        """Where the numbers come from: every encoder's model, options and weights."""
        return network_provenance(self.plan)

    @property
    def calibrated(self) -> bool:
        """Whether every encoder's weights are the standard files (the numbers comparable with published ones)."""
        return self.provenance.calibrated

    @property
    def reference(self) -> Statistics | None:
        """The reference side's Gaussian statistics of the default encoder's FID features, None
        where no metric needs them (another feature's Gaussian, e.g. sFID's, is not FID
        statistics)."""
        side, encoder = self.reference_side, self.plan.encoders.get(DEFAULT_ENCODER)
        if side is None or encoder is None:
            return None
        (need,) = FID().needs(encoder)
        value = side.reduced.get(need)
        if value is None:
            return None
        return Statistics(value.mu, value.sigma, value.n, encoder_metas(self.plan, self.provenance, side.label)[encoder.name])

    def reset(self) -> None:
        """Forget the generated images; the reference stays."""
        reference = self.reference_side.reduced if self.reference_side else None
        encoders = self.plan.encoders
        self.reducers = {need: need.build(encoders[need.encoder].features[need.feature], None,
                                          encoders[need.encoder].device, reference)
                         for need in dict.fromkeys(need.source for need in self.needs)}
        self.count = 0

    def _views(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """The batch's view for each host transform: the pixels themselves, or (a transform
        that runs on the host, e.g. clean-fid's resize) what it makes of each image on the CPU."""
        return [pixels if transform is unchanged else torch.from_numpy(np.stack([transform(image)
                                                                                  for image in pixels.cpu().numpy()]))
                for transform in self.transforms]

    def update(self, images: torch.Tensor, value_range: str | None = None) -> None:
        """Add generated images, a tensor on any device (or an array): (N, 3, H, W), (N, 1, H, W)
        or channels last; uint8, or float in ``value_range`` "0,1" or "-1,1" (floats default to
        "-1,1"). Converted to uint8 as saving them to PNG would (round, clip)."""
        pixels = rgb_pixels(images, value_range)  # on the caller's device: no round trip through the host
        step = self.plan.config.batch_size
        device = next(iter(self.plan.encoders.values())).device
        for start in range(0, len(pixels), step):
            chunk = pixels[start:start + step]
            out = forward_batch(self.tasks, ImageBatch.of_pixels(*self._views(chunk)))
            positions = distributed.strided_positions(torch.arange(self.count, self.count + len(chunk), device=device))
            for need, reducer in self.reducers.items():
                reducer.update(out[need.encoder][need.feature], positions)
            self.count += len(chunk)

    def compute(self) -> dict:
        """{"n", and each metric's values ("fid", "is_mean", "is_std", "kid", ...)} of the images
        given since the last reset: numbers only, as ``eval``'s results (not a metric's details,
        such as FID∞'s fitted points). Under torch.distributed: of every rank's images (call it
        on every rank; each gets the same values)."""
        count = sum(distributed.gathered(self.count))
        if count < 2:
            raise GanMetricsError(f"the metrics need at least 2 generated images, got {count}")
        n_reference = self.reference_side.n if self.reference_side else None
        for metric in self.plan.metrics:
            metric.check_counts(n_reference if metric.sides == 2 else None, count)
        merged = {need: reducer.result() for need, reducer in distributed.merged(self.reducers).items()}
        generated = with_derived(merged, self.needs, self.plan)
        reference = self.reference_side.reduced if self.reference_side else None
        device = next(iter(self.plan.encoders.values())).device
        values, _, _ = results(self.plan, reference, generated, device)
        return {"n": count, **values}
