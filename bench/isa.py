"""Instruction-set levels: the machine as it is, and each lower level it can be held to.

On an AVX-512 (or AMX) machine, oneDNN, ATen and MKL can be held to AVX2 by three environment
variables (``ISA_CAPS``), as an AVX2-only CPU runs them. A level is named by what oneDNN
actually ran: a worker runs Inception-sized convolutions with ``ONEDNN_VERBOSE`` under the
level's settings and reads back the kernels' names (``jit:avx512_core`` -> AVX-512). A cap that
does not take effect (oneDNN still runs other kernels) is reported, and its level not run.
"""

import os
import sys
from pathlib import Path

from measure import Runner, torch_setup

ISA_CAPS = {"AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
"""The instruction-set levels below the machine's own that the bench can hold the libraries to."""


def isa_name(kernel: str) -> str:
    """The instruction set of a oneDNN kernel name ("jit:avx512_core" -> "AVX-512")."""
    name = kernel.lower()
    for marker, isa in (("amx", "AMX"), ("avx512", "AVX-512"), ("avx10", "AVX-512"), ("avx2", "AVX2"),
                        ("avx", "AVX"), ("sse41", "SSE4.1")):
        if marker in name:
            return isa
    return kernel


def work_isa(job) -> dict:
    """Which instruction sets oneDNN and ATen use in this process (under its environment's
    caps): Inception-sized 3x3 and 1x1 convolutions run once with ``ONEDNN_VERBOSE`` on, and
    the names of the kernels oneDNN ran read back from its output."""
    import ctypes
    import tempfile

    torch = torch_setup(job)
    x = torch.rand(16, 64, 35, 35)
    convolutions = [torch.nn.Conv2d(64, 96, 3, padding=1, bias=False), torch.nn.Conv2d(64, 64, 1, bias=False)]
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile() as capture:  # oneDNN prints to file descriptor 1
        sys.stdout.flush()
        libc.fflush(None)
        saved = os.dup(1)
        os.dup2(capture.fileno(), 1)
        try:
            with torch.no_grad(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                for convolution in convolutions:
                    convolution(x)
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        lines = capture.read().decode(errors="replace").splitlines()
    kernels = sorted({line.split(",")[6] for line in lines if ",exec,cpu,convolution," in line})
    detected = next((line.split("isa:", 1)[1] for line in lines if ",info,cpu,isa:" in line), None)
    isas = sorted({isa_name(kernel) for kernel in kernels})
    return {"kernels": kernels, "isa": " + ".join(isas) or "unknown", "onednn_detected": detected,
            "aten_capability": torch.backends.cpu.get_cpu_capability()}


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def isa_levels(runner: Runner, native_only: bool) -> tuple[list[dict], list[str]]:
    """The instruction-set levels to run ({"caps": env settings, "isa": ``work_isa``'s report})
    and why any other level is not run: the machine as it is, then (unless ``native_only``) each
    level of ``ISA_CAPS`` below it that the CPU has, where the cap takes effect (oneDNN then runs
    that level's kernels)."""
    native = runner.job("isa_native", work_isa, {})
    if "error" in native:
        return [{"caps": {}, "isa": {"isa": "unknown", "kernels": [], "aten_capability": "unknown"}}], [native["error"]]
    levels, skipped = [{"caps": {}, "isa": native}], []
    if native_only:
        return levels, skipped
    env = runner.env
    for name, caps in ISA_CAPS.items():
        if native["isa"] == name:
            continue
        if name.lower() not in cpu_flags():
            skipped.append(f"{name}: this CPU does not have it")
            continue
        runner.env = dict(env, **caps)
        capped = runner.job(f"isa_{name}", work_isa, {})
        runner.env = env
        if capped.get("isa") != name:
            skipped.append(f"{name}: the cap did not take effect (oneDNN ran {capped.get('isa') or capped.get('error')})")
            continue
        levels.append({"caps": caps, "isa": capped})
    return levels, skipped


def level_title(level: dict) -> str:
    """``AVX2 (held to it: `ONEDNN_MAX_CPU_ISA=AVX2`, ...)`` or ``AVX-512 (as the machine is)``."""
    caps = level["caps"]
    held = ", ".join(f"`{k}={v}`" for k, v in caps.items())
    return f"{level['isa']['isa']} " + (f"(held to it: {held})" if caps else "(as the machine is)")


def kernels_text(level: dict) -> str:
    """What oneDNN and ATen ran at the level: ``oneDNN jit:avx2, jit_1x1:avx2; ATen AVX2``."""
    isa = level["isa"]
    return f"oneDNN {', '.join(isa['kernels']) or '–'}; ATen {isa['aten_capability']}"
