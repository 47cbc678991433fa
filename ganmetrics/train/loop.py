"""Train a DCGAN with one of four objectives, scoring FID and IS as it goes.

One step is ``n_critic`` discriminator updates, each on a fresh real batch (drawn with
replacement) and a fresh fake batch, then one generator update on the last fake batch. At step 0,
every ``eval_every`` steps and at the end, the generator (in eval mode) turns a fixed set of
``eval_samples`` noise vectors into images that an evaluator scores; each evaluation appends a
line to ``RUN_DIR/metrics.jsonl``, saves a sample grid and rewrites ``RUN_DIR/checkpoint.pt``.
An interrupted run resumes from its checkpoint and repeats, bit for bit on the CPU, what an
uninterrupted run would have done.

RUN_DIR layout::

    metrics.jsonl                 one JSON object per evaluation: step, fid, is_mean, is_std,
                                  loss_d, loss_g (means since the previous one), calibrated
                                  (the evaluator's weights are the standard ones), seconds
    checkpoint.pt                 loads with torch.load(..., weights_only=True)
    samples/step_000500.png       8x8 grid of the first 64 evaluation samples
    curves.png                    losses and FID against steps
    events.out.tfevents.*         TensorBoard scalars, when tensorboard is installed
"""

import json
import os
import pickle
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..store.atomicfile import atomic_write
from ..errors import GanMetricsError
from ..engine.runtime import resolve_device
from .data import load_images
from .losses import LOSSES, LossSpec, clip_weights, gradient_penalty
from .models import IMAGE_SIZES, NZ, Discriminator, Generator
from .toydata import save_png

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

GRID_SAMPLES = 64
# Settings a resumed run must share with the checkpoint it continues.
RESUME_KEYS = ("loss", "batch_size", "image_size", "seed", "lr", "ngf", "ndf", "nz")


@dataclass
class TrainConfig:
    """Everything a run depends on. ``device``: auto, cpu, cuda or cuda:N. ``lr``: None uses the
    loss's published rate (see ``losses.LOSSES``), a float overrides it for both networks.
    ``reference``: what FID compares with; None is the training images as loaded (at
    ``image_size``), a path is any source ``GenerativeMetrics`` takes (e.g. a statistics .npz).
    ``metric_options``: keyword arguments for ``GenerativeMetrics`` (weights, dims, resize,
    splits, batch_size)."""

    data_dir: str
    out_dir: str
    loss: str = "nonsaturating"
    steps: int = 2000
    batch_size: int = 64
    image_size: int = 32
    seed: int = 0
    eval_every: int = 500
    eval_samples: int = 5000
    device: str = "auto"
    lr: float | None = None
    ngf: int = 64
    ndf: int = 64
    nz: int = NZ
    reference: str | None = None
    metric_options: dict = field(default_factory=dict)


class Evaluator(Protocol):
    """What the loop needs from a metrics tracker (``ganmetrics.tracker.GenerativeMetrics``).
    ``calibrated``: its weights are the standard ones (the scores compare with published values)."""

    calibrated: bool

    def update(self, images: torch.Tensor, value_range: str) -> None: ...
    def compute(self) -> dict: ...
    def reset(self) -> None: ...


def default_evaluator(config: TrainConfig, images: torch.Tensor) -> Evaluator:
    """FID and IS with ``config.metric_options``, against ``config.reference`` or else the
    training images, uint8 (N, C, S, S), as the generator is trained to produce them."""
    from ganmetrics.tracker import GenerativeMetrics

    reference = config.reference or images.expand(-1, 3, -1, -1).cpu()
    return GenerativeMetrics(reference, device=str(resolve_device(config.device)), **config.metric_options)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) and ask for deterministic kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS is deterministic only with it
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def critic_update(critic: nn.Module, optimizer: torch.optim.Optimizer, spec: LossSpec,
                  real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """One optimiser step of the discriminator/critic on a real batch and a detached fake batch,
    both float32 (N, C, S, S) in [-1, 1], followed by weight clipping when the loss asks for it.
    Returns the loss (penalty included), detached."""
    loss = spec.d_loss(critic(real), critic(fake))
    if spec.gp_weight:
        loss = loss + gradient_penalty(critic, real, fake, spec.gp_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if spec.clip_value:
        clip_weights(critic, spec.clip_value)
    return loss.detach()


@contextmanager
def eval_mode(module: nn.Module):
    """Run the block with ``module`` in eval mode, then give it back its previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def evaluate(generator: Generator, evaluator: Evaluator, noise: torch.Tensor, batch_size: int) -> dict:
    """Score ``generator(noise)`` with ``evaluator``; returns its ``compute()`` dict.

    The generator runs in eval mode (BatchNorm running statistics, so each sample depends on its
    own noise only). ``noise``: float32 (M, nz) on the generator's device.
    """
    with eval_mode(generator):
        evaluator.reset()
        for z in noise.split(batch_size):
            images = generator(z)
            evaluator.update(images.expand(-1, 3, -1, -1), value_range="-1,1")  # grayscale -> RGB
        return evaluator.compute()


def _rng_state() -> dict:
    # Training draws only from torch's generators; python's and numpy's are seeded but unused.
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _keep_metrics_until(path: Path, step: int | None) -> None:
    """Drop the lines of evaluations after ``step`` (None: all of them), written by a run that
    was interrupted before its next checkpoint."""
    rows = [row for row in read_metrics(path) if step is not None and row["step"] <= step]
    with atomic_write(path, "w") as file:
        file.write("".join(json.dumps(row) + "\n" for row in rows))


def _check_resumable(checkpoint: dict, config: TrainConfig, channels: int, run_dir: Path) -> None:
    saved = checkpoint["config"]
    for key in RESUME_KEYS:
        if saved[key] != getattr(config, key):
            raise GanMetricsError(
                f"{run_dir} holds a run with {key}={saved[key]!r}, not {getattr(config, key)!r}; "
                "pass the same settings to resume it, or a new --out"
            )
    if checkpoint["channels"] != channels:
        raise GanMetricsError(
            f"{run_dir} holds a run on {checkpoint['channels']}-channel images but the data has "
            f"{channels}; use the same data to resume it, or a new --out"
        )


def _describe(row: dict) -> str:
    fields = [f"fid {row['fid']:.2f}"]
    if row["is_mean"] is not None:
        fields.append(f"IS {row['is_mean']:.3f} ± {row['is_std']:.3f}")
    fields += [f"{key} {row[key]:.4f}" for key in ("loss_d", "loss_g") if row[key] is not None]
    return f"step {row['step']}: " + "  ".join(fields) + f"  ({row['seconds']:.0f} s)"


def plot_curves(rows: list[dict], path: Path) -> None:
    """Losses and FID against steps, from metrics.jsonl rows, as a PNG at ``path``."""
    try:
        from matplotlib.figure import Figure  # renders with Agg; pyplot's global state is not touched
    except ImportError:
        print("matplotlib is not installed; skipping curves.png")
        return
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_fid = fig.subplots(1, 2)
    for key in ("loss_d", "loss_g"):
        points = [(row["step"], row[key]) for row in rows if row[key] is not None]
        if points:
            ax_loss.plot(*zip(*points), marker=".", label=key)
    ax_loss.set(xlabel="step", ylabel="mean loss since previous evaluation", title="losses")
    ax_loss.legend()
    ax_fid.plot([row["step"] for row in rows], [row["fid"] for row in rows], marker=".")
    ax_fid.set(xlabel="step", ylabel="FID", title="FID")
    with atomic_write(path) as file:
        fig.savefig(file, format="png", dpi=100)


@dataclass
class Run:
    """A run in progress: its settings, data, networks and optimisers, the fixed evaluation noise,
    where it stands (``step``, training seconds of earlier sessions) and the losses summed since
    the last evaluation (0-dim float32 tensors on ``device``, so a step never waits for the
    device)."""

    config: TrainConfig
    spec: LossSpec
    device: torch.device
    images: torch.Tensor  # uint8 (N, C, S, S) on device: the training set
    generator: Generator
    critic: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    eval_noise: torch.Tensor  # float32 (eval_samples, nz) on device
    step: int = 0
    seconds_before: float = 0.0
    resumed: bool = False
    writer: "SummaryWriter | None" = None  # None when tensorboard is not installed
    evaluator: Evaluator | None = None
    loss_sums: dict = field(default_factory=dict)
    loss_counts: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out_dir)

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"


def check_config(config: TrainConfig) -> TrainConfig:
    """``config`` with its paths as strings, or a ``GanMetricsError`` naming what is wrong."""
    if config.loss not in LOSSES:
        raise GanMetricsError(f"unknown loss {config.loss!r}; use one of {', '.join(LOSSES)}")
    if config.image_size not in IMAGE_SIZES:
        raise GanMetricsError(f"image size {config.image_size} is not supported; use 32 or 64")
    for key in ("steps", "batch_size", "eval_every", "eval_samples"):
        if getattr(config, key) < 1:
            raise GanMetricsError(f"{key} must be at least 1, got {getattr(config, key)}")
    return replace(config, data_dir=os.fspath(config.data_dir), out_dir=os.fspath(config.out_dir))


def start_run(config: TrainConfig) -> Run:
    """Check ``config``, seed every generator, load the data, build the networks and their
    optimisers, and resume from ``RUN_DIR/checkpoint.pt`` where there is one."""
    config = check_config(config)
    spec = LOSSES[config.loss]
    device = resolve_device(config.device)
    seed_everything(config.seed)
    images = load_images(config.data_dir, config.image_size).to(device)
    channels = images.size(1)
    generator = Generator(config.image_size, channels, config.nz, config.ngf).to(device)
    critic = Discriminator(config.image_size, channels, config.ndf, spec.critic_norm).to(device)
    # Fixed evaluation noise from its own generator: evaluations never touch the training RNG.
    eval_noise = torch.randn(config.eval_samples, config.nz, generator=torch.Generator().manual_seed(config.seed))
    run = Run(config, spec, device, images, generator, critic,
              opt_g=spec.make_optimizer(generator.parameters(), config.lr),
              opt_d=spec.make_optimizer(critic.parameters(), config.lr), eval_noise=eval_noise.to(device))
    (run.run_dir / "samples").mkdir(parents=True, exist_ok=True)
    if run.checkpoint_path.exists():
        resume(run)
    _keep_metrics_until(run.metrics_path, run.step if run.resumed else None)
    try:
        from torch.utils.tensorboard import SummaryWriter
        run.writer = SummaryWriter(run.run_dir, purge_step=run.step)  # purge: drop scalars logged after the checkpoint
    except ImportError:
        pass
    run.loss_sums = {"loss_d": torch.zeros((), device=device), "loss_g": torch.zeros((), device=device)}
    run.loss_counts = {"loss_d": 0, "loss_g": 0}
    run.started = time.time()
    return run


def resume(run: Run) -> None:
    """Load the networks, optimisers, RNG state and position of ``run``'s checkpoint."""
    checkpoint = torch.load(run.checkpoint_path, map_location=run.device, weights_only=True)
    _check_resumable(checkpoint, run.config, run.images.size(1), run.run_dir)
    run.generator.load_state_dict(checkpoint["generator"])
    run.critic.load_state_dict(checkpoint["discriminator"])
    run.opt_g.load_state_dict(checkpoint["opt_g"])
    run.opt_d.load_state_dict(checkpoint["opt_d"])
    _set_rng_state(checkpoint["rng"])
    run.step, run.seconds_before, run.resumed = checkpoint["step"], checkpoint["seconds"], True
    print(f"resuming {run.run_dir} from step {run.step}")


def critic_step(run: Run) -> torch.Tensor:
    """``spec.n_critic`` critic updates, each on a fresh real batch (drawn with replacement) and
    a fresh fake batch. Returns the last fake batch, float32 (B, C, S, S), with its graph: the
    generator update reuses it."""
    config = run.config
    for _ in range(run.spec.n_critic):
        real = run.images[torch.randint(len(run.images), (config.batch_size,)).to(run.device)].float() / 127.5 - 1
        fake = run.generator(torch.randn(config.batch_size, config.nz, device=run.device))
        run.loss_sums["loss_d"] += critic_update(run.critic, run.opt_d, run.spec, real, fake.detach())
        run.loss_counts["loss_d"] += 1
    return fake


def generator_step(run: Run, fake: torch.Tensor) -> None:
    """One generator update on ``fake``, the critic step's last fake batch."""
    loss_g = run.spec.g_loss(run.critic(fake))
    run.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    run.opt_g.step()
    run.loss_sums["loss_g"] += loss_g.detach()
    run.loss_counts["loss_g"] += 1


def score(run: Run, evaluator_factory: Callable[[TrainConfig, torch.Tensor], Evaluator]) -> dict:
    """The metrics.jsonl row of the current step: the evaluator's scores of the fixed noise's
    images and the mean losses since the previous evaluation (whose sums it then clears)."""
    with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
        if run.evaluator is None:
            run.evaluator = evaluator_factory(run.config, run.images)
        scores = evaluate(run.generator, run.evaluator, run.eval_noise, run.config.batch_size)
    row = {"step": run.step, "fid": float(scores["fid"])}
    for key in ("is_mean", "is_std"):  # absent when the evaluator skips the Inception Score
        row[key] = float(scores[key]) if key in scores else None
    for key, total in run.loss_sums.items():
        count = run.loss_counts[key]
        row[key] = (total / count).item() if count else None
        total.zero_()
        run.loss_counts[key] = 0
    row["calibrated"] = run.evaluator.calibrated
    row["seconds"] = run.seconds_before + time.time() - run.started
    return row


def save_grid(run: Run) -> None:
    """The first ``GRID_SAMPLES`` evaluation samples as ``samples/step_NNNNNN.png``, 8 a row."""
    with torch.no_grad(), eval_mode(run.generator):
        grid = run.generator(run.eval_noise[:GRID_SAMPLES])
    from torchvision.utils import save_image  # torchvision is slow to import: only when a run saves a grid

    save_image(grid, run.run_dir / "samples" / f"step_{run.step:06d}.png", nrow=8, normalize=True, value_range=(-1, 1))


def save_checkpoint(run: Run, seconds: float) -> None:
    """Rewrite ``checkpoint.pt`` (atomically) with everything a resumed run needs to go on."""
    checkpoint = {
        "generator": run.generator.state_dict(), "discriminator": run.critic.state_dict(),
        "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
        "step": run.step, "seconds": seconds, "channels": run.images.size(1),
        "config": asdict(run.config), "rng": _rng_state(),
    }
    with atomic_write(run.checkpoint_path) as file:
        torch.save(checkpoint, file)


def evaluate_and_save(run: Run, evaluator_factory: Callable[[TrainConfig, torch.Tensor], Evaluator]) -> dict:
    """Score the current step, append its row to metrics.jsonl, save a sample grid, log to
    TensorBoard and rewrite the checkpoint; returns the row."""
    row = score(run, evaluator_factory)
    with open(run.metrics_path, "a") as f:  # before the checkpoint: a kill in between re-runs this evaluation
        f.write(json.dumps(row) + "\n")
    save_grid(run)
    if run.writer is not None:
        for key in ("fid", "is_mean", "loss_d", "loss_g"):
            if row[key] is not None:
                run.writer.add_scalar(key, row[key], run.step)
        run.writer.flush()
    save_checkpoint(run, row["seconds"])
    print(_describe(row))
    return row


def finish(run: Run) -> dict:
    """Plot ``curves.png`` from the whole metrics.jsonl; returns its last row."""
    rows = read_metrics(run.metrics_path)
    plot_curves(rows, run.run_dir / "curves.png")
    return rows[-1]


def train(config: TrainConfig,
          evaluator_factory: Callable[[TrainConfig, torch.Tensor], Evaluator] = default_evaluator) -> dict:
    """Run (or resume) the training described by ``config``; returns the last metrics.jsonl row.

    Sets torch's global determinism flags. ``evaluator_factory(config, images)`` (``images``: the
    training set, uint8 (N, C, S, S)) is called once, at the first evaluation of this session.
    """
    run = start_run(config)
    try:
        if not run.resumed:
            evaluate_and_save(run, evaluator_factory)
        while run.step < run.config.steps:
            fake = critic_step(run)
            generator_step(run, fake)
            run.step += 1
            if run.step % run.config.eval_every == 0 or run.step == run.config.steps:
                evaluate_and_save(run, evaluator_factory)
    finally:
        if run.writer is not None:
            run.writer.close()
    return finish(run)


def load_generator(checkpoint_path: str | os.PathLike, device: torch.device | str = "cpu") -> Generator:
    """The generator of a training checkpoint, in eval mode on ``device``."""
    try:
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        config = checkpoint["config"]
        generator = Generator(config["image_size"], checkpoint["channels"], config["nz"], config["ngf"])
        generator.load_state_dict(checkpoint["generator"])
    except FileNotFoundError:
        raise GanMetricsError(
            f"checkpoint {checkpoint_path} not found; pass RUN_DIR/checkpoint.pt of a training run"
        ) from None
    except (RuntimeError, KeyError, TypeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise GanMetricsError(
            f"{checkpoint_path} is not a ganmetrics training checkpoint ({type(err).__name__}); "
            "pass RUN_DIR/checkpoint.pt of a training run"
        ) from None
    return generator.to(device).eval()


@torch.no_grad()
def write_samples(generator: Generator, n: int, out_dir: str | os.PathLike, seed: int = 0,
                  batch_size: int = 64) -> list[Path]:
    """``n`` samples of an eval-mode generator as ``out_dir/00000.png`` ... (RGB or grayscale,
    uint8 = round((x + 1) * 127.5)); the noise is N(0, I) from a CPU generator seeded ``seed``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(generator.parameters()).device
    noise = torch.randn(n, generator.nz, generator=torch.Generator().manual_seed(seed))
    paths = []
    for z in noise.split(batch_size):
        images = ((generator(z.to(device)) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        for image in images.permute(0, 2, 3, 1).cpu().numpy():
            path = out_dir / f"{len(paths):05d}.png"
            save_png(image[..., 0] if image.shape[-1] == 1 else image, path)
            paths.append(path)
    return paths
