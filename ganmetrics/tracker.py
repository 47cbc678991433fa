"""The training-loop API: any registered metrics of generated batches against a fixed reference.

In the style of torchmetrics: ``update(batch)`` on the training device, ``compute()``,
``reset()`` (clears the generated side only). The reference side is reduced (or read, or taken
from the statistics cache) once at construction, by the same engine and Metric objects as
``ganmetrics eval``.
"""

import numpy as np
import torch

from .api import DEFAULT_METRICS, split_options
from .engine import distributed
from .engine.loader import ImageBatch
from .engine.runner import forward_batch
from .engine.sides import image_needs, needs_of, open_extractor, reduce_reference, with_derived
from .errors import GanMetricsError
from .metrics.fid import FID
from .metrics.registry import build_metrics
from .store.statsfile import Statistics
from .sources import rgb_pixels


class GenerativeMetrics:
    """``metrics`` (default fid and is; ``inception_score=False``: fid only) of generated images
    against ``reference``: a folder, archive, array, statistics ``.npz`` or ``Statistics``.
    Keywords are the shared options (``weights``, ``device``, ``dims``, ``resize``,
    ``batch_size``, ``cache``, ...) and the metrics' options (``splits``, ``kid_subset_size``, ...).

    Streaming metrics keep constant memory (FID, IS, density/coverage); KID and precision/recall
    keep every generated feature (8 KiB an image). IS's ``splits`` are assigned round-robin (the
    number of images is not known in advance), so the IS differs slightly from ``ganmetrics is``
    on the same images (with ``is_split_size``: contiguous runs, as ``ganmetrics is``); the FID
    is the same. Inside a torch.distributed job (the caller's process
    group) every rank builds it (the reference side is then read in shards), updates with its own
    images and calls ``compute()``: rank r's i-th image is image i·W + r of the whole set.
    Nothing here changes the caller's models, their train/eval mode, gradients or the
    global RNG state. The network runs only as deep as the metrics' features need.
    """

    def __init__(self, reference, *, metrics=None, inception_score: bool = True, **options):
        if metrics is None:
            metrics = DEFAULT_METRICS if inception_score else ("fid",)
        self.config, metric_options = split_options(options)
        self.dims = metric_options["dims"]  # FID's tap
        self.metrics = build_metrics(metrics, metric_options)
        # Reading a reference source draws a DataLoader seed from the global RNG: keep it private.
        with torch.random.fork_rng(devices=[]):
            self.extractor = open_extractor(self.config)
            self.needs = needs_of(self.metrics, self.extractor, "b")
            needs_a = needs_of(self.metrics, self.extractor, "a")
            self.reference_side = None
            if needs_a:
                self.reference_side = reduce_reference(reference, self.extractor, needs_a, self.metrics, self.config)
        self.reset()

    @property
    def reference(self) -> Statistics | None:
        """The reference side's Gaussian statistics of FID's tap (``dims``), None where no
        metric needs them (another feature's Gaussian, e.g. sFID's, is not FID statistics)."""
        side = self.reference_side
        need = FID(self.dims).need(self.extractor)
        value = side.reduced.get(need) if side else None
        if value is None:
            return None
        meta = getattr(value, "meta", None) or self.extractor.provenance.meta(len(value.mu), side.label)
        return Statistics(value.mu, value.sigma, value.n, meta)

    @property
    def calibrated(self) -> bool:
        """True when every encoder's weights are the standard files (numbers comparable with published ones)."""
        return self.extractor.provenance.calibrated

    def reset(self) -> None:
        """Forget the generated images; the reference stays."""
        features = self.extractor.features
        reference = self.reference_side.reduced if self.reference_side else None
        self.reducers = {need: need.build(features[need.feature], None, self.extractor.device, reference)
                         for need in image_needs(self.needs)}
        self.count = 0

    def update(self, images: torch.Tensor, value_range: str | None = None) -> None:
        """Add generated images, a tensor on any device (or an array): (N, 3, H, W), (N, 1, H, W)
        or channels last; uint8, or float in ``value_range`` "0,1" or "-1,1" (floats default to
        "-1,1"). Converted to uint8 as saving them to PNG would (round, clip)."""
        pixels = rgb_pixels(images, value_range)  # on the caller's device: no round trip through the host
        transform = self.extractor.host_transform
        if self.config.resize == "clean":  # PIL's resize, on the CPU
            pixels = torch.from_numpy(np.stack([transform(image) for image in pixels.cpu().numpy()]))
        wanted = {need.feature for need in self.needs}
        step = self.config.batch_size
        for start in range(0, len(pixels), step):
            chunk = pixels[start:start + step]
            out = forward_batch(self.extractor, ImageBatch.of_pixels(chunk), wanted)
            positions = distributed.strided_positions(torch.arange(self.count, self.count + len(chunk),
                                                                   device=self.extractor.device))
            for need, reducer in self.reducers.items():
                reducer.update(out[need.feature], positions)
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
        for metric in self.metrics:
            metric.check_counts(n_reference if metric.sides == 2 else None, count)
        merged = {need: reducer.result() for need, reducer in distributed.merged(self.reducers).items()}
        generated = with_derived(merged, self.needs, self.extractor.device)
        result = {"n": count}
        for metric in self.metrics:  # each sees the needs it declared, as in `ganmetrics eval`
            reference = ({need: self.reference_side.reduced[need] for need in metric.reference_needs(self.extractor)}
                         if metric.sides == 2 else None)
            own = {need: generated[need] for need in metric.needs(self.extractor)}
            values = metric.compute(reference, own, self.extractor.device)
            result.update({key: values[key] for key in metric.keys})  # numbers only, as `eval`'s results
        return result
