"""Where and how the network runs: the device, torch's threads, and the CUDA numerics settings."""

import contextlib
import ctypes
import functools
import os

import torch

from ..errors import GanMetricsError


def default_workers() -> int:
    """Decoding processes: one fewer than the CPUs (the main process runs the network), 1 to 8."""
    return min(8, max(1, (os.cpu_count() or 2) - 1))


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise GanMetricsError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GanMetricsError(f"--device {spec}: no CUDA GPU is available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GanMetricsError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here; pick a lower index"
            )
    elif device.type != "cpu":
        raise GanMetricsError(f"unsupported device {spec!r}: use auto, cpu, cuda or cuda:N")
    return device



@contextlib.contextmanager
def cuda_numerics(allow_tf32: bool):
    """cuDNN autotuning on, and TF32 off for convolutions and matrix products unless
    ``allow_tf32`` (TF32 rounds inputs to 10 mantissa bits and moves FID); the process's
    previous settings come back afterwards."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        precision = "tf32" if allow_tf32 else "ieee"
        settings = [(cudnn.conv, "fp32_precision", precision), (matmul, "fp32_precision", precision)]
    else:
        settings = [(cudnn, "allow_tf32", allow_tf32), (matmul, "allow_tf32", allow_tf32)]
    settings.append((cudnn, "benchmark", True))
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in settings]
    try:
        for owner, name, value in settings:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)



@contextlib.contextmanager
def intra_op_threads(count: int):
    """torch's intra-op thread count of the calling thread (OpenMP keeps one per thread) set to
    ``count`` (at least 1), the previous one restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim(0)``; elsewhere
    nothing). The forward pass on the CPU allocates and frees tens of MB per chunk on several
    threads; glibc serves such blocks from its heaps once its dynamic mmap threshold has risen,
    and the heaps fragment: without this, after each batch, the peak RSS grows with the image
    count (about a megabyte an image). Its cost is lost in a batch's time."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
