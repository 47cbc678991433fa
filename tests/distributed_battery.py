"""What the torchrun tests run on every rank (``tests/test_torchrun.py``), and in one process
for the values to compare with: the API, GenerativeMetrics and the CLI inside a user's own
torchrun job. Run as ``torchrun --nproc_per_node=W tests/distributed_battery.py OUT A B WEIGHTS
BATCH_SIZE [full]``: each rank joins its own gloo group (as a user's script would), runs the
battery and writes ``OUT/rank<R>.npz`` (and, with ``full``, ``OUT/cli-rank<R>.json``)."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from helpers import smooth_images

GENERATED = 24
"""Images of the generator source (its chunks: 16 and 8 at batch size 16; one at 50)."""


class ElementwiseGenerator(torch.nn.Module):
    """z (N, 48) -> (N, 3, 32, 32) in [-1, 1] by element-wise steps only, so its images do
    not depend on the batch they are made in (the point is the noise, not the network)."""

    nz = 48

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(0.7))

    def forward(self, z):
        return torch.tanh(self.gain * z.view(-1, 3, 4, 4)).repeat_interleave(8, 2).repeat_interleave(8, 3)


def tracker_images() -> np.ndarray:
    """The generated images given to GenerativeMetrics (the pixels of side B), uint8 (7, 32, 32, 3)."""
    return smooth_images(7, (32, 32), seed=2, offset=0.1)


def run_battery(a: str, b: str, weights: str, batch_size: int, full: bool) -> dict[str, np.ndarray]:
    """{name: value} of this rank (every rank of a torch.distributed job runs it; outside one,
    the one-process values): FID statistics of A, eval of fid/is/kid/vendi, the --ci 4 interval
    ends of fid, is and vendi ("interval_fid_ci_low", ...); with ``full`` also a
    generator source at generator batch sizes 16 and 50, and GenerativeMetrics given rank r
    the images r, r+W, ... of ``tracker_images()``."""
    import ganmetrics
    from ganmetrics.engine import distributed

    common = {"weights": weights, "dims": 64, "workers": 0, "batch_size": batch_size, "cache": False}
    out = {}
    stats = ganmetrics.compute_stats(a, **common)
    out.update(mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n))
    evaluated = ganmetrics.evaluate(a, b, metrics=["fid", "is", "kid", "vendi"], splits=2, kid_subsets=3,
                                    kid_subset_size=5, **common)
    out.update({key: np.float64(value) for key, value in evaluated.results.items()})
    interval = ganmetrics.evaluate(a, b, metrics=["fid", "is", "vendi"], splits=2, ci=4, **common)
    out.update({f"interval_{key}": np.float64(value) for key, value in interval.results.items() if "_ci_" in key})
    if full:
        for generator_batch in (16, 50):
            source = ganmetrics.GeneratorSource(ElementwiseGenerator(), n=GENERATED, batch_size=generator_batch, seed=3)
            generated = ganmetrics.compute_stats(source, **common)
            out.update({f"generator{generator_batch}_mu": generated.mu, f"generator{generator_batch}_sigma": generated.sigma})
        tracker = ganmetrics.GenerativeMetrics(stats, metrics=["fid", "is"], splits=2, **common)
        tracker.update(torch.from_numpy(tracker_images()[distributed.rank()::distributed.world_size()]), value_range="uint8")
        out.update({f"tracker_{key}": np.float64(value) for key, value in tracker.compute().items()})
    return out


def run_cli_stats(a: str, output: Path, weights: str, batch_size: int) -> dict:
    """``ganmetrics stats A -o OUTPUT --cache --json`` in this process: exit code, stdout, stderr."""
    from click.testing import CliRunner

    from ganmetrics.cli import cli

    result = CliRunner().invoke(cli, ["stats", a, "-o", str(output), "--cache", "--json", "--weights", weights,
                                      "--dims", "64", "--workers", "0", "--quiet", "--batch-size", str(batch_size)])
    return {"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}


def main(out: str, a: str, b: str, weights: str, batch_size: str, *flags: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")  # the user's own process group, from torchrun's environment
    try:
        rank, full = dist.get_rank(), "full" in flags
        results = run_battery(a, b, weights, int(batch_size), full)
        if full:
            written = Path(out) / "written"
            written.mkdir(exist_ok=True)
            cli_result = run_cli_stats(a, written / "a.npz", weights, int(batch_size))
            (Path(out) / f"cli-rank{rank}.json").write_text(json.dumps(cli_result))
        np.savez(Path(out) / f"rank{rank}.npz", **results)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
