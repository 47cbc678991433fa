"""Images made by a generator (a torch module or a callable), read in one pass in the main process."""

import itertools

import numpy as np
import torch

from ..errors import GanMetricsError
from .base import ImageSource
from .pixels import VALUE_RANGES, rgb_pixels


class _CallerRNG:
    """Keeps the global torch RNG (CPU, and CUDA devices already initialised) of the caller out
    of a generator's reach: generator code sees a private copy that starts from the caller's
    state and carries on across batches, and the caller's state is put back after each batch."""

    def __init__(self):
        self.devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        self.private = self._get()

    def _get(self):
        return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in self.devices]

    def _set(self, state) -> None:
        torch.set_rng_state(state[0])
        for device, cuda_state in zip(self.devices, state[1]):
            torch.cuda.set_rng_state(cuda_state, device)

    def run(self, function, *args):
        caller = self._get()
        self._set(self.private)
        try:
            return function(*args)
        finally:
            self.private = self._get()
            self._set(caller)


class GeneratorSource(ImageSource):
    """``n`` images made ``batch_size`` at a time by a generator (Python API only).

    ``generate`` is either a torch ``nn.Module``, called on latent noise z ~ N(0, I) shaped
    (batch, *latent_shape), drawn from its own CPU ``torch.Generator`` seeded ``seed`` and moved
    to the module's device and dtype (``latent_shape`` defaults to the module's ``nz``,
    ``latent_dim`` or ``z_dim``); or any other callable ``generate(batch) -> images``. Images are
    a tensor or array (batch, C, H, W) or (batch, H, W, C), C = 1 or 3: uint8, or float in
    ``value_range`` (default for floats "-1,1"), converted with ``to_uint8`` as PNG saving would.

    Runs under ``torch.no_grad`` in the module's current mode (call ``.eval()`` first for
    BatchNorm running statistics); leaves the module's mode and the caller's global RNG state as
    they were. Read in one pass in the main process.
    """

    random_access = False
    in_process = True

    def __init__(self, generate, n: int, batch_size: int = 50, value_range: str | None = None,
                 latent_shape: int | tuple[int, ...] | None = None, seed: int = 0):
        if not callable(generate):
            raise GanMetricsError(f"a generator source needs a callable or torch module, got {type(generate).__name__}")
        if n < 1 or batch_size < 1:
            raise GanMetricsError(f"a generator source needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
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

    def _batch(self, count: int, noise: torch.Generator) -> np.ndarray:
        with torch.no_grad():
            if self.latent_shape is None:
                images = self.generate(count)
            else:
                anchor = next(itertools.chain(self.generate.parameters(), self.generate.buffers()), None)
                z = torch.randn((count, *self.latent_shape), generator=noise)
                if anchor is not None:
                    z = z.to(anchor.device, anchor.dtype if anchor.is_floating_point() else None)
                images = self.generate(z)
        pixels = rgb_pixels(images, self.value_range).cpu().numpy()
        if len(pixels) != count:
            raise GanMetricsError(f"{self.describe()} made {len(pixels)} images when asked for {count}: check the generator")
        return pixels

    def iterate(self):
        rng = _CallerRNG()
        noise = torch.Generator().manual_seed(self.seed)
        index = 0
        while index < len(self):
            for image in rng.run(self._batch, min(self.batch_size, len(self) - index), noise):
                yield index, image
                index += 1
