"""The tools the experiments compare, one adapter each, in the tables ``TOOLS`` (FID between two
folders), ``EVAL_TOOLS`` (FID + IS + KID in one call), ``KID_STEPS`` (KID from two feature
arrays), ``NEIGHBOUR_STEPS`` (precision/recall and density/coverage from two feature arrays),
``ADM_TOOLS`` (the ADM evaluator's suite between two ADM batches) and ``INTERVAL_RUNS`` (a plain
FID run against the same with ``--ci`` or ``fid_inf``).

An adapter is a function of the run's ``Inputs`` that does the tool's imports and patches (not
timed) and returns the call to time: a function of no arguments that returns the FID (a float,
``TOOLS``) or the values ``{"fid", "is_mean", "is_std", "kid", "kid_std"}`` (``EVAL_TOOLS``).
An adapter that cannot run with these inputs raises ``Skip`` with the reason, which becomes the
row's text. Adapters run in the experiments' worker processes only: this module imports nothing
heavy at the top, because the orchestrating process reads the tables (names, notes, which row
each tool is compared with) and must never load torch (a forked child's ``ru_maxrss`` starts
from its parent's RSS).
"""

import contextlib
import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


class Skip(Exception):
    """The tool cannot run with these inputs; the message says why (shown in the row)."""


@dataclass(frozen=True)
class Inputs:
    """What every adapter gets: the two folders, the checkpoint, and the run's settings."""

    a: str
    b: str
    weights: str
    dims: int
    batch_size: int
    device: str
    workers: int

    @classmethod
    def of_job(cls, job: dict) -> "Inputs":
        return cls(job["a"], job["b"], job["weights"], job["dims"], job["batch_size"], job["device"], job["workers"])

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def load_checkpoint(self, *args, **kwargs):
        """The checkpoint's state dict, for the tools whose loader would download it
        (``load_state_dict_from_url`` patched to this)."""
        import torch

        return torch.load(self.weights, map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class Tool:
    """One row of the FID table. ``reference``: the ganmetrics row it is compared with (same
    resize and normalisation; itself for a ganmetrics row); ``note``: how it is called, for the
    markdown; ``prepare``: the adapter; ``gpu_only``: an opt-in lossy setting, run only with
    ``--device cuda``."""

    name: str
    reference: str
    note: str
    prepare: Callable[[Inputs], Callable[[], float]]
    gpu_only: bool = False

    @property
    def ours(self) -> bool:
        return self.name.startswith("ganmetrics")


# --------------------------------------------------------------------------------------------
# FID adapters


def import_ganmetrics() -> None:
    """Import every ganmetrics module the scoring commands use (all but ``__main__`` and the
    trainer's). ganmetrics imports its modules on first use, to start fast; the other tools'
    modules import theirs at once, in the adapter. Its adapters call this, so that for every
    tool the timed call excludes the imports (about 0.6 s here)."""
    import importlib
    import pkgutil

    import ganmetrics

    for module in pkgutil.walk_packages(ganmetrics.__path__, "ganmetrics."):
        if not (module.name == "ganmetrics.__main__" or module.name.startswith("ganmetrics.train")):
            importlib.import_module(module.name)


def ganmetrics_fid(inputs: Inputs, resize: str, allow_tf32: bool = False):
    import ganmetrics

    import_ganmetrics()

    def call():
        return ganmetrics.fid(inputs.a, inputs.b, weights=inputs.weights, device=inputs.device,
                              batch_size=inputs.batch_size, workers=inputs.workers, resize=resize, dims=inputs.dims,
                              cache=False, progress=False, allow_tf32=allow_tf32).value
    return call


def pytorch_fid(inputs: Inputs):
    import pytorch_fid.inception
    from pytorch_fid.fid_score import calculate_fid_given_paths

    pytorch_fid.inception.load_state_dict_from_url = inputs.load_checkpoint

    def call():
        return calculate_fid_given_paths([inputs.a, inputs.b], inputs.batch_size, inputs.device, inputs.dims,
                                         num_workers=inputs.workers)
    return call


def clean_fid(inputs: Inputs):
    if inputs.dims != 2048:
        raise Skip("clean-fid's legacy_pytorch extractor only exposes the 2048-d pool3 features")
    import cleanfid.inception_pytorch
    import torch
    from cleanfid import fid as cleanfid_fid

    cleanfid.inception_pytorch.load_state_dict_from_url = inputs.load_checkpoint

    def call():
        return cleanfid_fid.compute_fid(inputs.a, inputs.b, mode="legacy_pytorch", num_workers=inputs.workers,
                                        batch_size=inputs.batch_size, device=torch.device(inputs.device),
                                        verbose=False)
    return call


def torch_fidelity_metrics(inputs: Inputs, input1: str, input2: str, **metrics) -> dict:
    """``torch_fidelity.calculate_metrics`` with the checkpoint and the run's settings."""
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=input1, input2=input2, feature_extractor="inception-v3-compat", feature_layer_fid=str(inputs.dims),
        feature_extractor_weights_path=inputs.weights, batch_size=inputs.batch_size, cuda=inputs.cuda, cache=False,
        verbose=False, **metrics,
    )


def torch_fidelity_fid(inputs: Inputs):
    import torch_fidelity  # noqa: F401  (imported before the timed call)

    def call():
        return torch_fidelity_metrics(inputs, inputs.a, inputs.b, fid=True)["frechet_inception_distance"]
    return call


def torchmetrics_fid(inputs: Inputs):
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Folder(torch.utils.data.Dataset):
        """torchmetrics has no folder reader: PIL in a DataLoader, as user code would."""

        def __init__(self, folder):
            self.files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg"))

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            with Image.open(self.files[i]) as image:
                return torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1).contiguous()

    def call():
        metric = FrechetInceptionDistance(feature=inputs.dims, feature_extractor_weights_path=inputs.weights,
                                          antialias=False).to(inputs.device)
        for folder, real in ((inputs.a, True), (inputs.b, False)):
            for images in DataLoader(Folder(folder), batch_size=inputs.batch_size, num_workers=inputs.workers):
                metric.update(images.to(inputs.device), real=real)
        return metric.compute().item()
    return call


_TOOL_LIST = (
    Tool("ganmetrics-tf", "ganmetrics-tf", "`ganmetrics.fid(resize='tf', cache=False)`",
         functools.partial(ganmetrics_fid, resize="tf")),
    Tool("ganmetrics-pytorch", "ganmetrics-pytorch", "`ganmetrics.fid(resize='pytorch', cache=False)`",
         functools.partial(ganmetrics_fid, resize="pytorch")),
    Tool("pytorch-fid", "ganmetrics-pytorch", "`calculate_fid_given_paths`, weights loader patched", pytorch_fid),
    Tool("clean-fid", "ganmetrics-pytorch", "`compute_fid(mode='legacy_pytorch')`, weights loader patched", clean_fid),
    Tool("torch-fidelity", "ganmetrics-tf", "`calculate_metrics(fid=True, feature_extractor_weights_path=...)`",
         torch_fidelity_fid),
    Tool("torchmetrics", "ganmetrics-tf",
         "`FrechetInceptionDistance(feature_extractor_weights_path=..., antialias=False)` + PIL DataLoader",
         torchmetrics_fid),
    # Opt-in lossy settings, run only where they mean something (--device cuda), with their FID
    # difference from the exact run printed beside them.
    Tool("ganmetrics-tf-tf32", "ganmetrics-tf",
         "`ganmetrics.fid(resize='tf', cache=False, allow_tf32=True)` (opt-in, lossy)",
         functools.partial(ganmetrics_fid, resize="tf", allow_tf32=True), gpu_only=True),
)
TOOLS: dict[str, Tool] = {tool.name: tool for tool in _TOOL_LIST}


def tool_names(cuda: bool) -> tuple[str, ...]:
    """The tools that run on this device, in the table's order (the default --tools)."""
    return tuple(name for name, tool in TOOLS.items() if cuda or not tool.gpu_only)


# --------------------------------------------------------------------------------------------
# FID + IS + KID in one call (the eval rows): the generated side is B, the reference A


@dataclass(frozen=True)
class EvalSettings:
    """The metrics' settings, shared by both tools: KID's subsets (the subset size at most the
    smaller side), IS's splits (10, or fewer with fewer generated images) and the seed."""

    kid_subsets: int
    kid_subset_size: int
    is_splits: int = 10
    seed: int = 2020


def ganmetrics_eval_results(inputs: Inputs, *options: str) -> Callable[[], dict]:
    """A call of ``ganmetrics eval A B OPTIONS --json`` in this process (the command line's own
    entry point, its JSON read from stdout), uncached, with the run's settings; it returns the
    JSON's ``results``."""
    from ganmetrics.cli import cli

    import_ganmetrics()

    args = ["eval", inputs.a, inputs.b, *options, "--weights", inputs.weights, "--device", inputs.device,
            "--batch-size", str(inputs.batch_size), "--workers", str(inputs.workers), "--dims", str(inputs.dims),
            "--resize", "tf", "--no-cache", "--quiet", "--json"]

    def call():
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            try:
                cli.main(args)
            except SystemExit as exit_:
                if exit_.code not in (0, None):
                    raise RuntimeError(f"ganmetrics eval exited {exit_.code}") from None
        return json.loads(stdout.getvalue())["results"]
    return call


def values_of(results: Callable[[], dict], keys: tuple[str, ...]) -> Callable[[], dict]:
    """The call ``results`` returning only ``keys`` of its results, as floats."""
    return lambda: {key: float(value) for key, value in results().items() if key in keys}


def ganmetrics_eval(inputs: Inputs, settings: EvalSettings):
    """``ganmetrics eval A B --metrics fid,is,kid --json`` (``ganmetrics_eval_results``)."""
    return values_of(ganmetrics_eval_results(
        inputs, "--metrics", "fid,is,kid", "--splits", str(settings.is_splits), "--kid-subsets", str(settings.kid_subsets),
        "--kid-subset-size", str(settings.kid_subset_size), "--seed", str(settings.seed)),
        ("fid", "is_mean", "is_std", "kid", "kid_std"))


def torch_fidelity_eval(inputs: Inputs, settings: EvalSettings):
    """``calculate_metrics(fid=True, isc=True, kid=True)``; input1 (the generated side, where
    torch-fidelity computes IS and draws KID's first indices) is B, input2 is A."""
    import torch_fidelity  # noqa: F401  (imported before the timed call)

    def call():
        out = torch_fidelity_metrics(inputs, inputs.b, inputs.a, fid=True, isc=True, kid=True,
                                     isc_splits=settings.is_splits, kid_subsets=settings.kid_subsets,
                                     kid_subset_size=settings.kid_subset_size, rng_seed=settings.seed)
        return {"fid": out["frechet_inception_distance"], "is_mean": out["inception_score_mean"],
                "is_std": out["inception_score_std"], "kid": out["kernel_inception_distance_mean"],
                "kid_std": out["kernel_inception_distance_std"]}
    return call


EVAL_TOOLS: dict[str, tuple[str, Callable]] = {
    "ganmetrics": ("`ganmetrics eval A B --metrics fid,is,kid --kid-subset-size K --no-cache --json`", ganmetrics_eval),
    "torch-fidelity": ("`calculate_metrics(input1=B, input2=A, fid=True, isc=True, kid=True, "
                       "feature_extractor='inception-v3-compat', feature_extractor_weights_path=..., "
                       "kid_subset_size=K)`", torch_fidelity_eval),
}
EVAL_REFERENCE = "ganmetrics"


# --------------------------------------------------------------------------------------------
# KID from two feature arrays: an adapter of (EvalSettings, device) does the imports and returns
# the function to time, (generated, reference) float32 numpy -> (mean, std)


def ganmetrics_kid(settings: EvalSettings, device: str):
    from ganmetrics.metrics.kid import kernel_inception_distance

    def kid(generated, reference):
        return kernel_inception_distance(generated, reference, settings.kid_subsets, settings.kid_subset_size,
                                         seed=settings.seed, device=device)
    return kid


def torch_fidelity_kid(settings: EvalSettings, device: str):
    import torch
    from torch_fidelity.metric_kid import kid_features_to_metric

    def kid(generated, reference):
        out = kid_features_to_metric(torch.from_numpy(generated), torch.from_numpy(reference),
                                     kid_subsets=settings.kid_subsets, kid_subset_size=settings.kid_subset_size,
                                     rng_seed=settings.seed, verbose=False)
        return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]
    return kid


KID_STEPS: dict[str, tuple[str, Callable]] = {
    "ganmetrics": ("`ganmetrics.metrics.kid.kernel_inception_distance` (float32 Gram products, float64 kernel sums, on --device)", ganmetrics_kid),
    "torch-fidelity": ("`torch_fidelity.metric_kid.kid_features_to_metric` (float32 numpy, CPU)", torch_fidelity_kid),
}


# --------------------------------------------------------------------------------------------
# Precision/recall and density/coverage from two feature arrays: an adapter of (k, device,
# batch size) does the imports and returns the function to time, (generated, reference) float32
# numpy -> two values ((precision, recall) or (density, coverage)).


def ganmetrics_pr(k: int, device: str, batch_size: int, variant: str = "exact"):
    from ganmetrics.metrics.neighbours import as_features, knn_radii
    from ganmetrics.metrics.precision_recall import precision_recall

    def pr(generated, reference):
        ref_radii, gen_radii = (knn_radii(as_features(x, device), k, variant).cpu().numpy() for x in (reference, generated))
        return precision_recall(reference, ref_radii, generated, gen_radii, variant, device)
    return pr


def torch_fidelity_pr(k: int, device: str, batch_size: int):
    import torch
    from torch_fidelity.metric_prc import prc_features_to_metric

    def pr(generated, reference):
        out = prc_features_to_metric(torch.from_numpy(generated).to(device), torch.from_numpy(reference).to(device),
                                     prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=True, verbose=False)
        return out["precision"], out["recall"]
    return pr


def ganmetrics_dc(k: int, device: str, batch_size: int):
    """As ``eval`` computes it: the reference's radii, then the generated features streamed in
    batches of ``batch_size`` (``CoverageCounts``)."""
    from ganmetrics.metrics.density_coverage import DISTANCES, CoverageCounts, density_coverage
    from ganmetrics.metrics.neighbours import as_features, knn_radii

    def dc(generated, reference):
        ref = as_features(reference, device)
        counts = CoverageCounts(ref, knn_radii(ref, k, DISTANCES), k)
        gen = as_features(generated, device)
        for start in range(0, len(gen), batch_size):
            counts.update(gen[start:start + batch_size])
        return density_coverage(*counts.result(), k)
    return dc


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (``MemAvailable`` of /proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError("no MemAvailable in /proc/meminfo")


def prdc_dc(k: int, device: str, batch_size: int):
    import contextlib

    from prdc import compute_prdc

    def dc(generated, reference):
        # prdc holds three full float32 distance matrices (real x real, fake x fake, real x fake).
        needed = 4 * (len(reference) ** 2 + len(generated) ** 2 + len(reference) * len(generated))
        if needed > available_memory():
            raise Skip(f"prdc needs {needed / 2**30:.0f} GiB for its three N x N distance matrices, more than the "
                       f"{available_memory() / 2**30:.0f} GiB available")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the counts
            out = compute_prdc(real_features=reference, fake_features=generated, nearest_k=k)
        return float(out["density"]), float(out["coverage"])
    return dc


@dataclass(frozen=True)
class NeighbourStep:
    """One k-NN step: its ``k``, the names of its two values, and its tools {name: (note, adapter)};
    the first tool is ganmetrics', the one the others are compared with."""

    k: int
    values: tuple[str, str]
    tools: dict


NEIGHBOUR_STEPS: dict[str, NeighbourStep] = {
    "pr": NeighbourStep(3, ("precision", "recall"), {
        "ganmetrics": ("`knn_radii` + `precision_recall`, exact variant (float32, blocks of 10,000, on --device)",
                       ganmetrics_pr),
        "ganmetrics-adm": ("the same, adm variant (float16 squared distances, ADM's blocks)",
                           functools.partial(ganmetrics_pr, variant="adm")),
        "torch-fidelity": ("`prc_features_to_metric(prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=True)` "
                           "(rows of 10,000 x N distances, on --device)", torch_fidelity_pr),
    }),
    "dc": NeighbourStep(5, ("density", "coverage"), {
        "ganmetrics": ("`knn_radii` of the reference, then `CoverageCounts` fed the generated features in "
                       "batches of --batch-size, as `eval` streams them (prdc's float64-accumulated distances, "
                       "blocks of 10,000, on --device)", ganmetrics_dc),
        "prdc": ("`prdc.compute_prdc(nearest_k=5)` (computes three full N x N float32 distance matrices, sklearn, CPU; "
                 "also computes its P/R)", prdc_dc),
    }),
}
# The ADM evaluator's suite between two ADM batches (.npz, arr_0 uint8 (N, H, W, 3)): the
# reference batch A, the sample batch B. Adapters of ``Inputs`` (a, b: the batches) returning a
# call that returns {"is_mean", "fid", "sfid", "precision", "recall"} (a tool that has no sFID
# leaves it out).

ADM_SPLIT_SIZE = 5000  # the ADM evaluator's IS splits


def ganmetrics_adm(inputs: Inputs):
    """``ganmetrics eval A.npz B.npz --metrics adm --json`` (``ganmetrics_eval_results``; the
    suite fixes pool3, so ``inputs.dims`` must be 2048)."""
    return values_of(ganmetrics_eval_results(inputs, "--metrics", "adm"), ("is_mean", "fid", "sfid", "precision", "recall"))


def torch_fidelity_adm(inputs: Inputs):
    """``calculate_metrics(fid=True, isc=True, prc=True)`` on pool3 for P/R (ADM's features, not
    torch-fidelity's default VGG16), IS over ceil(N / 5000) splits as ADM's split size gives;
    the batches read by a Dataset of CHW uint8 tensors (torch-fidelity reads no .npz). input1
    (the generated side, where it computes IS) is B. torch-fidelity has no sFID."""
    import numpy as np
    import torch
    import torch_fidelity  # noqa: F401  (imported before the timed call)

    class Batch(torch.utils.data.Dataset):
        def __init__(self, path):
            with np.load(path) as data:
                self.images = data["arr_0"]

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            return torch.from_numpy(self.images[i]).permute(2, 0, 1).contiguous()

    def call():
        generated, reference = Batch(inputs.b), Batch(inputs.a)
        splits = -(-len(generated) // ADM_SPLIT_SIZE)
        out = torch_fidelity_metrics(inputs, generated, reference, fid=True, isc=True, prc=True,
                                     feature_layer_prc="2048", isc_splits=splits)
        return {"is_mean": out["inception_score_mean"], "fid": out["frechet_inception_distance"],
                "precision": out["precision"], "recall": out["recall"]}
    return call


ADM_TOOLS: dict[str, tuple[str, Callable]] = {
    "ganmetrics": ("`ganmetrics eval A.npz B.npz --metrics adm --no-cache --json` (IS over splits of 5000, FID, "
                   "sFID, precision/recall with the adm variant)", ganmetrics_adm),
    "torch-fidelity": ("`calculate_metrics(input1=B, input2=A, fid=True, isc=True, prc=True, feature_layer_prc='2048', "
                       "isc_splits=ceil(N/5000), feature_extractor='inception-v3-compat', "
                       "feature_extractor_weights_path=...)`, the batches as Datasets", torch_fidelity_adm),
}
ADM_REFERENCE = "ganmetrics"
# How sure is the number: a plain FID run, and the same with a bootstrap interval or FID∞. An
# adapter of (Inputs, IntervalSettings) returns the call to time, which returns the results.


@dataclass(frozen=True)
class IntervalSettings:
    """``replicates``: B of ``--ci``; ``inf_min``: FID∞'s smallest sample (``--inf-min``)."""

    replicates: int
    inf_min: int


def plain_fid_run(inputs: Inputs, settings: IntervalSettings):
    return ganmetrics_eval_results(inputs, "--metrics", "fid")


def interval_fid_run(inputs: Inputs, settings: IntervalSettings):
    return ganmetrics_eval_results(inputs, "--metrics", "fid", "--ci", str(settings.replicates))


def fid_inf_run(inputs: Inputs, settings: IntervalSettings):
    return ganmetrics_eval_results(inputs, "--metrics", "fid,fid_inf", "--inf-min", str(settings.inf_min))


INTERVAL_RUNS: dict[str, tuple[str, Callable]] = {
    "fid": ("`ganmetrics eval A B --metrics fid`", plain_fid_run),
    "fid --ci": ("`ganmetrics eval A B --metrics fid --ci B`", interval_fid_run),
    "fid,fid_inf": ("`ganmetrics eval A B --metrics fid,fid_inf --inf-min M`", fid_inf_run),
}
INTERVAL_REFERENCE = "fid"
