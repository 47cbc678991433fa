"""Find, fetch, verify and load an encoder's weights; build ``random:SEED`` weights.

Every encoder resolves its weights the same way (``FeatureExtractor.weights_file`` says which
file is standard):

1. an explicit path (``--weights [ENCODER=]PATH``);
2. the encoder's environment variable (``GANMETRICS_WEIGHTS`` for the Inception), a path;
3. the project's ``weights/`` folder (a source checkout), then the user cache
   (``$GANMETRICS_CACHE_DIR`` or ``$XDG_CACHE_HOME/ganmetrics`` or ``~/.cache/ganmetrics``);
4. a download from the file's URL (its ``env_url`` variable overrides it) into the user cache,
   checked against the file's sha256 (or the prefix its name carries).

``random:SEED`` instead builds the encoder's deterministic random weights with the real file's
keys and shapes (``FeatureExtractor.random_state_dict``): results are marked uncalibrated.
Every function takes the encoder's class (a ``base.FeatureExtractor`` subclass). Files are read
by the encoder (``FeatureExtractor.read_state_dict``: by default
``torch.load(weights_only=True)``, never arbitrary objects) and must have exactly its keys and
shapes, in finite numbers; a file with another hash is used with a warning and marked
uncalibrated. torch is imported by the functions that load or build, not by this module:
finding a file and its identity (hashed, not loaded) serve the command line without it.
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
from ..errors import GanMetricsError, describe_error, quoted
from ..store.hashing import sha256_of_file
from ..store.paths import cache_dir

PROJECT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
RANDOM_PREFIX = "random:"
MAX_RANDOM_SEED = 2**64 - 1  # what torch.Generator.manual_seed accepts


@dataclass(frozen=True)
class WeightsFile:
    """An encoder's standard weights file. ``sha256``: its hex digest, or the prefix its name
    carries (the Inception's ``6726825d``); ``env``: the environment variable that names a file
    to use instead; ``env_url``: the one that overrides ``url`` (a mirror, or a test server)."""

    filename: str
    sha256: str
    url: str
    env: str
    env_url: str


@dataclass(frozen=True)
class Weights:
    """A loaded checkpoint. ``state_dict``: float tensors keyed as the real file (None once
    ``released``); ``sha256``: of the file, or of the tensors for ``random:SEED``;
    ``calibrated``: True only for the standard file; ``source``: the path or the
    ``random:SEED`` spec."""

    state_dict: dict | None
    sha256: str
    calibrated: bool
    source: str

    def released(self) -> Weights:
        """The same weights' identity without the tensors (for whoever keeps only a network built from them)."""
        return replace(self, state_dict=None)


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


def _standard(encoder: type) -> WeightsFile:
    """The encoder's standard file, or the error for an encoder that has none."""
    if encoder.weights_file is None:
        raise GanMetricsError(f"the encoder {encoder.name} has no standard weights file: pass --weights "
                              f"{encoder.name}=FILE or {encoder.name}=random:SEED")
    return encoder.weights_file


def find_weights_file(encoder: type, explicit: str | os.PathLike | None = None) -> Path | None:
    """The first weights file of the resolution order that exists, without downloading."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise GanMetricsError(f"weights file {quoted(path)} does not exist: pass an existing file to --weights")
        return path
    standard = _standard(encoder)
    if os.environ.get(standard.env):
        path = Path(os.environ[standard.env])
        if not path.is_file():
            raise GanMetricsError(f"{standard.env}={quoted(path)} does not exist: point it at the weights file or unset it")
        return path
    for folder in (PROJECT_WEIGHTS_DIR, cache_dir()):
        if (folder / standard.filename).is_file():
            return folder / standard.filename
    return None


def fetch_weights(encoder: type, progress: bool = True) -> Path:
    """Download the encoder's standard file into the user cache (sha256-checked, atomic) and return it."""
    from ..store.download import download_file  # http.client, ssl, tqdm: only where a file is fetched

    standard = _standard(encoder)
    url = os.environ.get(standard.env_url, standard.url)
    dest = cache_dir() / standard.filename
    try:
        return download_file(url, dest, sha256_prefix=standard.sha256, progress=progress)
    except GanMetricsError as err:
        raise GanMetricsError(
            f"{err}; supply the weights file instead: --weights {encoder.name}=PATH, {standard.env}=PATH, "
            f"or `ganmetrics weights install FILE --encoder {encoder.name}` (copies it to {dest.parent})"
        ) from None


def resolve_weights_file(encoder: type, explicit: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The weights file by the resolution order, downloading it as the last resort."""
    return find_weights_file(encoder, explicit) or fetch_weights(encoder, progress)


def file_identity(encoder: type, path: str | os.PathLike) -> tuple[str, bool]:
    """(sha256 hex, calibrated) of a weights file, from its bytes alone (calibrated: the
    standard file's hash); its keys and shapes are not checked."""
    digest = sha256_of_file(path)
    standard = encoder.weights_file
    return digest, standard is not None and digest.startswith(standard.sha256)


def check_state_dict(encoder: type, state, path: Path) -> dict:
    """``state`` (what a weights file held) as the encoder's float state dict, refused in one
    line unless it has exactly the encoder's keys and shapes in finite numbers."""
    import torch

    standard = encoder.weights_file.filename if encoder.weights_file else f"the {encoder.name} weights"
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise GanMetricsError(f"weights file {quoted(path)} holds no state dict: use {standard}")
    state = {k: v for k, v in state.items() if not k.endswith(encoder.ignored_key_suffixes)}
    shapes = encoder.expected_shapes()
    missing, extra = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise GanMetricsError(f"weights file {quoted(path)} is not the {encoder.name} checkpoint ({detail}): use {standard}")
    for key, shape in shapes.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            raise GanMetricsError(f"weights file {quoted(path)}: {key} has shape {tuple(getattr(value, 'shape', ()))}, "
                                  f"expected {shape}: use {standard}")
        # amax and amin are NaN where any value is, and infinite where one is: two passes, no (N,) mask.
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value.amax())
                                                                    & torch.isfinite(value.amin())):
            raise GanMetricsError(f"weights file {quoted(path)}: {key} holds NaN or infinity (a damaged file?): "
                                  f"use {standard}")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def torch_load(path: Path, what: str):
    """``torch.load(path, weights_only=True)`` on the CPU, any failure one line naming ``what`` the file should be."""
    import torch

    try:
        with warnings.catch_warnings():  # torch's own (multi-line) warnings stay out of the one-line output
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad or foreign file
        raise GanMetricsError(f"cannot read weights file {quoted(path)} ({describe_error(err)}): it must be {what}") from None


def read_verified(encoder: type, path: Path) -> tuple[dict, str, bool]:
    """(``encoder.read_state_dict(path)``, sha256 hex, calibrated): the file hashed on a thread
    while it is loaded (hashlib and file reads release the GIL)."""
    with ThreadPoolExecutor(1, thread_name_prefix="ganmetrics-hash") as pool:
        identity = pool.submit(file_identity, encoder, path)
        state = encoder.read_state_dict(path)
        return (state, *identity.result())


def verify_weights_file(encoder: type, path: Path) -> tuple[str, bool]:
    """Validate a file's keys and shapes for ``encoder``; return (sha256 hex, calibrated)."""
    return read_verified(encoder, path)[1:]


def load_weights(encoder: type, spec: str | os.PathLike | None = None,
                 progress: bool = True) -> Weights:
    """``encoder``'s weights from a spec: None (the resolution order), a path, or ``random:SEED``."""
    seed = random_seed_of(spec)
    if seed is not None:
        return random_weights(encoder, seed)
    path = resolve_weights_file(encoder, spec, progress)
    state, digest, calibrated = read_verified(encoder, path)
    if not calibrated and encoder.weights_file is not None:
        warnings.warn(
            f"weights file {quoted(path)} has sha256 {digest[:12]}…, not the standard {encoder.weights_file.sha256[:12]}…: "
            "results are marked uncalibrated and are not comparable with published values",
            stacklevel=2,
        )
    return Weights(state, digest, calibrated, str(path))


def weights_identity(encoder: type, spec: str | os.PathLike | None = None) -> tuple[str, bool] | None:
    """(sha256 hex, calibrated) of the weights ``load_weights(encoder, spec)`` would load, where
    they are at hand; None where the run would have to download them. Never downloads, and
    builds no network for a file: ``random:SEED`` is built (torch imported; once per process and
    seed, as ``load_weights`` then reuses it); a file is hashed, not loaded (no torch; its keys
    and shapes are checked where it is loaded). A missing ``--weights`` or environment path is
    refused as ``find_weights_file`` refuses it."""
    seed = random_seed_of(spec)
    if seed is not None:
        weights = random_weights(encoder, seed)
        return weights.sha256, weights.calibrated
    if spec is None and encoder.weights_file is None:
        return None
    path = find_weights_file(encoder, spec)
    return None if path is None else file_identity(encoder, path)


def tensor_digest(state: dict) -> str:
    """sha256 of a state dict's keys and tensor bytes, in sorted key order: ``random:SEED``'s identity."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def random_weights(encoder: type, seed: int) -> Weights:
    """``random:SEED`` of ``encoder`` as loaded Weights (uncalibrated); built once per process and seed."""
    state = encoder.random_state_dict(seed)
    return Weights(state, tensor_digest(state), False, f"{RANDOM_PREFIX}{seed}")
