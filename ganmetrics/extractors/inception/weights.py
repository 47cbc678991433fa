"""Find, fetch, verify and load the FID Inception weights; build ``random:SEED`` networks.

Resolution order for the standard file ``pt_inception-2015-12-05-6726825d.pth``:

1. an explicit path (``--weights PATH``);
2. the environment variable ``GANMETRICS_WEIGHTS`` (a path);
3. the project's ``weights/`` folder (a source checkout), then the user cache
   (``$GANMETRICS_CACHE_DIR`` or ``$XDG_CACHE_HOME/ganmetrics`` or ``~/.cache/ganmetrics``);
4. a download from the canonical URL (``$GANMETRICS_WEIGHTS_URL`` overrides it) into the user
   cache, checked against the sha256 prefix in the file name.

Files are loaded with ``torch.load(weights_only=True)`` and must have exactly the keys and shapes
of the network; a file with another hash is used with a warning and marked uncalibrated. torch
is imported by the functions that load or build, not by this module: finding the file, its
identity (``weights_identity``: hashed, not loaded) and the constants here serve the command line
without it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import GanMetricsError, quoted
from ...store.hashing import sha256_of_file
from ...store.paths import cache_dir

if TYPE_CHECKING:
    import torch

    from .network import FIDInceptionV3

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILENAME
)
ENV_WEIGHTS = "GANMETRICS_WEIGHTS"
ENV_WEIGHTS_URL = "GANMETRICS_WEIGHTS_URL"
PROJECT_WEIGHTS_DIR = Path(__file__).resolve().parents[3] / "weights"
RANDOM_PREFIX = "random:"
MAX_RANDOM_SEED = 2**64 - 1  # what torch.Generator.manual_seed accepts
# BatchNorm's step counter is not part of the TF port; files that carry it are still accepted.
_IGNORED_SUFFIX = ".num_batches_tracked"


@dataclass(frozen=True)
class Weights:
    """A loaded checkpoint. ``state_dict``: float32 tensors keyed as the real file (None once
    ``released``); ``sha256``: of the file, or of the tensors for ``random:SEED``;
    ``calibrated``: True only for the real TF-ported file; ``source``: the path or the
    ``random:SEED`` spec."""

    state_dict: dict | None
    sha256: str
    calibrated: bool
    source: str

    def build_network(self, device: torch.device | str = "cpu") -> FIDInceptionV3:
        """The network in eval mode on ``device``, gradients off. On the CPU its parameters are
        the state dict's tensors, not copies. Built on the meta device, so no memory is
        allocated or initialised for parameters that are replaced anyway, and nothing is drawn
        from the global RNG (a training loop's random stream is left alone)."""
        import torch

        from .network import FIDInceptionV3

        if self.state_dict is None:
            raise ValueError(f"the weights {self.source} were released: load them again to build another network")
        with torch.device("meta"):
            network = FIDInceptionV3()
        network.load_state_dict(self.state_dict, assign=True)
        return network.eval().requires_grad_(False).to(device)

    def released(self) -> Weights:
        """The same weights' identity without the tensors (for whoever keeps only a network built from them)."""
        return replace(self, state_dict=None)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of the real file and its shape."""
    import torch

    from .network import FIDInceptionV3

    with torch.device("meta"):
        network = FIDInceptionV3()
    return {
        key: tuple(value.shape)
        for key, value in network.state_dict().items()
        if not key.endswith(_IGNORED_SUFFIX)
    }


def find_weights_file(explicit: str | os.PathLike | None = None) -> Path | None:
    """The first weights file of the resolution order that exists, without downloading."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise GanMetricsError(f"weights file {quoted(path)} does not exist: pass an existing file to --weights")
        return path
    if os.environ.get(ENV_WEIGHTS):
        path = Path(os.environ[ENV_WEIGHTS])
        if not path.is_file():
            raise GanMetricsError(
                f"{ENV_WEIGHTS}={quoted(path)} does not exist: point it at the weights file or unset it"
            )
        return path
    for folder in (PROJECT_WEIGHTS_DIR, cache_dir()):
        if (folder / WEIGHTS_FILENAME).is_file():
            return folder / WEIGHTS_FILENAME
    return None


def fetch_weights(progress: bool = True) -> Path:
    """Download the standard file into the user cache (sha256-checked, atomic) and return it."""
    from ...store.download import download_file  # http.client, ssl, tqdm: only where a file is fetched

    url = os.environ.get(ENV_WEIGHTS_URL, WEIGHTS_URL)
    dest = cache_dir() / WEIGHTS_FILENAME
    try:
        return download_file(url, dest, sha256_prefix=WEIGHTS_SHA256_PREFIX, progress=progress)
    except GanMetricsError as err:
        raise GanMetricsError(
            f"{err}; supply the weights file instead: --weights PATH, {ENV_WEIGHTS}=PATH, "
            f"or `ganmetrics weights install FILE` (copies it to {dest.parent})"
        ) from None


def resolve_weights_file(explicit: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The weights file by the resolution order, downloading it as the last resort."""
    return find_weights_file(explicit) or fetch_weights(progress)


def read_state_dict(path: Path) -> dict:
    """Load and validate a checkpoint file: exactly the network's keys and shapes, float32."""
    import torch

    try:
        with warnings.catch_warnings():  # torch's own (multi-line) warnings stay out of the one-line output
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad or foreign file
        text = str(err).strip()
        detail = f"{type(err).__name__}: {quoted(text.splitlines()[0][:160])}" if text else type(err).__name__
        raise GanMetricsError(
            f"cannot read weights file {quoted(path)} ({detail}): it must be a PyTorch "
            f"state dict like {WEIGHTS_FILENAME}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise GanMetricsError(f"weights file {quoted(path)} holds no state dict: use {WEIGHTS_FILENAME}")
    state = {k: v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIX)}
    shapes = expected_shapes()
    missing = sorted(set(shapes) - set(state))
    extra = sorted(set(state) - set(shapes))
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise GanMetricsError(
            f"weights file {quoted(path)} is not the FID Inception checkpoint ({detail}): use {WEIGHTS_FILENAME}"
        )
    for key, shape in shapes.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            raise GanMetricsError(
                f"weights file {quoted(path)}: {key} has shape {tuple(getattr(value, 'shape', ()))}, "
                f"expected {shape}: use {WEIGHTS_FILENAME}"
            )
        # amax and amin are NaN where any value is, and infinite where one is: two passes
        # that make no (N,) mask (the whole file: 0.07 s down to 0.02 s, a 2-core AVX2 EPYC).
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value.amax())
                                                                    & torch.isfinite(value.amin())):
            raise GanMetricsError(
                f"weights file {quoted(path)}: {key} holds NaN or infinity (a damaged file?): use {WEIGHTS_FILENAME}"
            )
    return {k: v.float() for k, v in state.items()}


def file_identity(path: str | os.PathLike) -> tuple[str, bool]:
    """(sha256 hex, calibrated) of a weights file, from its bytes alone (calibrated: the
    standard file's hash); its keys and shapes are not checked."""
    digest = sha256_of_file(path)
    return digest, digest.startswith(WEIGHTS_SHA256_PREFIX)


def read_verified(path: Path) -> tuple[dict, str, bool]:
    """(``read_state_dict(path)``, sha256 hex, calibrated): the file hashed on a thread while it
    is loaded (hashlib and file reads release the GIL)."""
    with ThreadPoolExecutor(1, thread_name_prefix="ganmetrics-hash") as pool:
        identity = pool.submit(file_identity, path)
        state = read_state_dict(path)
        return (state, *identity.result())


def verify_weights_file(path: Path) -> tuple[str, bool]:
    """Validate keys and shapes; return (sha256 hex, calibrated)."""
    return read_verified(path)[1:]


def random_seed_of(spec: str | os.PathLike | None) -> int | None:
    """The SEED of a ``random:SEED`` spec, None for any other spec. A malformed or out-of-range
    SEED is refused: cheap, so checked before the inputs, where loading waits for a network."""
    if spec is None or not str(spec).startswith(RANDOM_PREFIX):
        return None
    seed_text = str(spec)[len(RANDOM_PREFIX):]
    if not re.fullmatch(r"[0-9]+", seed_text) or int(seed_text) > MAX_RANDOM_SEED:
        raise GanMetricsError(
            f"bad weights spec {spec!r}: use random:SEED with a whole number SEED from 0 to {MAX_RANDOM_SEED} "
            "(2**64 - 1), e.g. random:0"
        )
    return int(seed_text)


def load_weights(spec: str | os.PathLike | None = None, progress: bool = True) -> Weights:
    """Weights from a spec: None (resolution order), a path, or ``random:SEED``."""
    seed = random_seed_of(spec)
    if seed is not None:
        return random_weights(seed)
    path = resolve_weights_file(spec, progress)
    state, digest, calibrated = read_verified(path)
    if not calibrated:
        warnings.warn(
            f"weights file {quoted(path)} has sha256 {digest[:12]}…, not the standard {WEIGHTS_SHA256_PREFIX}…: "
            "results are marked uncalibrated and are not comparable with published values",
            stacklevel=2,
        )
    return Weights(state, digest, calibrated, str(path))


def weights_identity(spec: str | os.PathLike | None = None) -> tuple[str, bool] | None:
    """(sha256 hex, calibrated) of the weights ``load_weights(spec)`` would load, where they are
    at hand; None where the run would have to download them. Never downloads, and builds no
    network for a file: ``random:SEED`` is built (torch imported, seconds; once per process and
    seed, as ``load_weights`` then reuses it); a file (``--weights PATH``, ``GANMETRICS_WEIGHTS``,
    the ``weights/`` folder or the user cache: ``find_weights_file``) is hashed, not loaded (no
    torch; its keys and shapes are checked where it is loaded). A missing ``--weights`` or
    ``GANMETRICS_WEIGHTS`` path is refused as ``find_weights_file`` refuses it."""
    seed = random_seed_of(spec)
    if seed is not None:
        weights = random_weights(seed)
        return weights.sha256, weights.calibrated
    path = find_weights_file(spec)
    return None if path is None else file_identity(path)


def _tensor_digest(state: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def random_state_dict(seed: int) -> dict:
    """A deterministic random checkpoint with the real file's keys and shapes.

    Convolutions get He-normal weights; every batch norm's running statistics are then set from
    the activations of a fixed batch of smooth random images, computed in float64, so each layer
    sees zero-mean unit-variance inputs: activations stay O(1) through all 94 layers and distinct
    images keep distinct features (a purely random deep ReLU net collapses them together). The
    fc layer is scaled so the 1008 softmax probabilities are far from uniform, and has a random
    bias so code that wrongly keeps it is caught. Deterministic across machines up to float64
    rounding of the calibration pass.
    """
    import torch

    from .network import FIDInceptionV3

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # its throwaway initialisation leaves the global stream alone
        network = FIDInceptionV3().double()
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            std = (2.0 / fan_in) ** 0.5
            module.weight.data = torch.randn(module.weight.shape, generator=generator, dtype=torch.float64) * std
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()
            module.momentum = None  # running stats = plain average of the calibration batch
            module.reset_running_stats()
    # Random images from smooth to white noise (noise drawn at 4..299 px and upsampled), so every
    # kind of input, a blurry 32 px sample or a noisy photo, lands in the calibrated range.
    probe = torch.cat([
        torch.nn.functional.interpolate(
            torch.rand((2, 3, size, size), generator=generator, dtype=torch.float64) * 2 - 1,
            size=(299, 299), mode="bilinear", align_corners=False)
        for size in (4, 16, 64, 299)
    ])
    network.train()
    with torch.no_grad():
        pool3 = network(probe, {"2048"})["2048"]
    scale = 3.0 / (pool3.std(dim=0).mean().item() * 2048 ** 0.5)
    network.fc.weight.data = torch.randn(network.fc.weight.shape, generator=generator, dtype=torch.float64) * scale
    network.fc.bias.data = torch.randn(network.fc.bias.shape, generator=generator, dtype=torch.float64)
    return {
        key: value.float()
        for key, value in network.state_dict().items()
        if not key.endswith(_IGNORED_SUFFIX)
    }


@functools.lru_cache(maxsize=4)
def random_weights(seed: int) -> Weights:
    """``random:SEED`` as loaded Weights (uncalibrated); built once per process and seed."""
    state = random_state_dict(seed)
    return Weights(state, _tensor_digest(state), False, f"{RANDOM_PREFIX}{seed}")
