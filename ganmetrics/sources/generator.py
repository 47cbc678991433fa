"""Images made by a generator (a torch module or a callable), read in one pass in the main process.

Image i is a function of the seed and i alone (a module's noise is drawn per image index), so a
shard or a rank can make its own images and the set is the same for any number of ranks.
"""

import itertools

import numpy as np
import torch

from ..errors import GanMetricsError
from .base import ImageSource
from .pixels import VALUE_RANGES, rgb_pixels


class GeneratorSource(ImageSource):
    """``n`` images made ``batch_size`` at a time by a generator (Python API only).

    ``generate`` is either a torch ``nn.Module``, called on latent noise z ~ N(0, I) shaped
    (batch, *latent_shape) and moved to the module's device and dtype (``latent_shape``
    defaults to the module's ``nz``, ``latent_dim`` or ``z_dim``); or any other callable
    ``generate(batch) -> images``. Images are a tensor or array (batch, C, H, W) or
    (batch, H, W, C), C = 1 or 3: uint8, or float in ``value_range`` (default for floats
    "-1,1"), converted with ``to_uint8`` as PNG saving would.

    Seeding, so that image i is the same however the set is split (ranks, shards): a module's
    noise for image i is drawn from its own CPU ``torch.Generator`` seeded from (``seed``, i),
    so image i does not depend on ``batch_size`` either (up to the module's own batch-size
    invariance); a callable is called once per chunk of ``batch_size`` images (chunk c: images
    c·batch_size to (c+1)·batch_size), with torch's global RNG seeded from (``seed``, c) for
    the call, so its images depend on ``batch_size`` but not on how the set is split.

    Runs under ``torch.no_grad`` in the module's current mode (call ``.eval()`` first for
    BatchNorm running statistics); leaves the module's mode and the caller's global RNG state
    (CPU, and CUDA devices already initialised) as they were. Read in one pass in the main
    process.
    """

    random_access = False
    in_process = True

    def __init__(self, generate, n: int, batch_size: int = 50, value_range: str | None = None,
                 latent_shape: int | tuple[int, ...] | None = None, seed: int = 0):
        if not callable(generate):
            raise GanMetricsError(f"a generator source needs a callable or torch module, got {type(generate).__name__}")
        if n < 1 or batch_size < 1:
            raise GanMetricsError(f"a generator source needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if not 0 <= seed < 2**63:
            raise GanMetricsError(f"a generator source needs a seed from 0 to 2**63 - 1, got {seed}")
        if value_range is not None and value_range not in VALUE_RANGES:
            raise GanMetricsError(f"value_range {value_range!r} is unknown: use one of {', '.join(VALUE_RANGES)}")
        self.generate, self.batch_size, self.value_range, self.seed = generate, batch_size, value_range, seed
        self.names = [str(i) for i in range(n)]
        self.latent_shape = None
        if isinstance(generate, torch.nn.Module):
            if latent_shape is None:
                latent_shape = next((getattr(generate, a) for a in ("nz", "latent_dim", "z_dim") if hasattr(generate, a)), None)
            if latent_shape is None:
                raise GanMetricsError(
                    f"cannot tell the latent size of {type(generate).__name__}: pass latent_shape=, e.g. (100,)"
                )
            self.latent_shape = (latent_shape,) if isinstance(latent_shape, int) else tuple(latent_shape)

    def describe(self) -> str:
        name = getattr(self.generate, "__qualname__", type(self.generate).__name__)
        return f"generator {name}"

    def _chunk(self, chunk: int) -> np.ndarray:
        """Images of chunk ``chunk`` (indices chunk·batch_size onwards), uint8 (count, H, W, 3)."""
        first = chunk * self.batch_size
        count = min(self.batch_size, len(self) - first)
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():  # the caller's RNG state comes back
            torch.random.default_generator.manual_seed(_mixed_seed(self.seed, chunk))
            for device in devices:
                torch.cuda.default_generators[device].manual_seed(_mixed_seed(self.seed, chunk))
            if self.latent_shape is None:
                images = self.generate(count)
            else:
                z = torch.stack([torch.randn(self.latent_shape, generator=torch.Generator().manual_seed(
                    _mixed_seed(self.seed, first + i, stream=1))) for i in range(count)])
                anchor = next(itertools.chain(self.generate.parameters(), self.generate.buffers()), None)
                if anchor is not None:
                    z = z.to(anchor.device, anchor.dtype if anchor.is_floating_point() else None)
                images = self.generate(z)
            pixels = rgb_pixels(images, self.value_range).cpu().numpy()
        if len(pixels) != count:
            raise GanMetricsError(f"{self.describe()} made {len(pixels)} images when asked for {count}: check the generator")
        return pixels

    def iterate(self, start: int = 0, stop: int | None = None):
        """Images ``start`` to ``stop``, made chunk by chunk (the chunks they fall in, whole)."""
        stop = len(self) if stop is None else min(stop, len(self))
        for chunk in range(start // self.batch_size, -(-stop // self.batch_size)):
            first = chunk * self.batch_size
            for index, image in enumerate(self._chunk(chunk), first):
                if start <= index < stop:
                    yield index, image


def _mixed_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed for item ``index`` of ``stream`` under ``seed``: NumPy's SeedSequence hash,
    so neighbouring indices and seeds give unrelated streams."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))
