"""Train a DCGAN with one of four objectives, scoring FID and IS as it goes; optionally a
class-conditional GAN (Mirza & Osindero, 2014) or an InfoGAN (Chen et al., 2016).

One step is ``n_critic`` discriminator updates, each on a fresh real batch (drawn with
replacement) and a fresh fake batch, then one generator update on the last fake batch. A
conditional run generates each fake batch with the classes of its real batch and shows the
discriminator both with their one-hots; an InfoGAN run draws its codes from the prior for each
fake batch and adds the information loss to the discriminator's (with Q) and the generator's
objectives. At step 0, every ``eval_every`` steps and at the end, the generator (in eval mode)
turns a fixed set of ``eval_samples`` noise vectors (and codes: a conditional run's classes in
turn) into images that an evaluator scores; each evaluation appends a line to
``RUN_DIR/metrics.jsonl``, saves sample sheets and rewrites ``RUN_DIR/checkpoint.pt``. An
interrupted run resumes from its checkpoint and repeats, bit for bit on the CPU, what an
uninterrupted run would have done.

RUN_DIR layout::

    metrics.jsonl                 one JSON object per evaluation: step, fid, is_mean, is_std,
                                  loss_d, loss_g (means since the previous one), calibrated
                                  (the evaluator's weights are the standard ones), seconds;
                                  conditional runs add class_fid ({class: FID against that
                                  class's training images}) and intra_fid (their mean, Miyato &
                                  Koyama, 2018), InfoGAN runs info_accuracy (Q's accuracy on
                                  the evaluation samples' categorical code)
    checkpoint.pt                 loads with torch.load(..., weights_only=True)
    samples/step_000500.png       grid of the first 64 evaluation samples, 8 a row (conditional:
                                  a multiple of the classes a row, one class a column)
    samples/step_000500_categorical.png, _continuous0.png, ...
                                  InfoGAN: a traversal sheet per code (codes.InfoCodes.traversals)
    curves.png                    losses and FID against steps
    report.html                   the run's page: the curves, every evaluation's metrics, the
                                  sample sheet of each evaluation, settings and versions
                                  (ganmetrics.report.training)
    events.out.tfevents.*         TensorBoard scalars and sample sheets, when tensorboard is installed
"""

import functools
import json
import os
import pickle
import random
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..store.atomicfile import atomic_write
from ..errors import GanMetricsError
from ..engine.runtime import resolve_device
from .codes import InfoCodes, code_dims, one_hot
from .data import load_images, load_labelled_images
from .losses import LOSSES, LossSpec, clip_weights, gradient_penalty, information_loss
from .models import IMAGE_SIZES, NZ, Discriminator, Generator, InfoHead
from .toydata import save_png
from ..report.page import require_tools
from ..report.plot import figure_class, figure_png
from ..report.training import write_training_report

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

GRID_SAMPLES = 64
TRAVERSAL_COLUMNS = 8  # noise vectors across a traversal sheet
# Settings a resumed run must share with the checkpoint it continues.
RESUME_KEYS = ("loss", "batch_size", "image_size", "seed", "lr", "ngf", "ndf", "nz", "conditional", "infogan")


@dataclass
class TrainConfig:
    """Everything a run depends on. ``device``: auto, cpu, cuda or cuda:N. ``lr``: None uses the
    loss's published rate (see ``losses.LOSSES``), a float overrides it for both networks.
    ``reference``: what FID compares with; None is the training images as loaded (at
    ``image_size``), a path is any source ``GenerativeMetrics`` takes (e.g. a statistics .npz).
    ``metric_options``: keyword arguments for ``GenerativeMetrics`` (weights, encoders,
    splits, batch_size). ``conditional``: a class-conditional GAN on the class subfolders of
    ``data_dir`` (``data.load_labelled_images``), scored also per class against each class's
    training images, whatever ``reference`` is. ``infogan``: "CATEGORIES,CONTINUOUS", InfoGAN's
    codes (``codes.InfoCodes``); not with ``conditional``."""

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
    conditional: bool = False
    infogan: str | None = None


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


def critic_update(critic: Discriminator, optimizer: torch.optim.Optimizer, spec: LossSpec,
                  real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None = None,
                  q_head: InfoHead | None = None, codes: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """One optimiser step of the discriminator/critic on a real batch and a detached fake batch,
    both float32 (N, C, S, S) in [-1, 1], followed by weight clipping of the critic when the loss
    asks for it. ``condition``: float32 (N, K), the one-hot classes of both batches (a
    conditional critic). ``q_head``/``codes``: InfoGAN's Q (its parameters in ``optimizer``) and
    the fake batch's codes, whose information loss is added. Returns the loss (penalty and
    information loss included), detached."""
    real_scores = critic(real, condition)
    fake_features = critic.trunk(fake, condition)
    loss = spec.d_loss(real_scores, critic.head(fake_features))
    if spec.gp_weight:
        loss = loss + gradient_penalty(functools.partial(critic, condition=condition), real, fake, spec.gp_weight)
    if q_head is not None:
        loss = loss + information_loss(*q_head(fake_features), *codes)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if spec.clip_value:
        clip_weights(critic, spec.clip_value)
    return loss.detach()


@contextmanager
def eval_mode(*modules: nn.Module):
    """Run the block with ``modules`` in eval mode, then give each back its previous mode."""
    with ExitStack() as stack:
        for module in modules:
            stack.callback(module.train, module.training)
            module.eval()
        yield


def in_batches(batch_size: int, *tensors: torch.Tensor | None):
    """The same ``batch_size`` rows of each of ``tensors`` at a time (a None stays None)."""
    for start in range(0, len(tensors[0]), batch_size):
        yield [None if t is None else t[start:start + batch_size] for t in tensors]


@torch.no_grad()
def evaluate(generator: Generator, evaluator: Evaluator, noise: torch.Tensor, batch_size: int,
             code: torch.Tensor | None = None) -> dict:
    """Score ``generator(noise, code)`` with ``evaluator``; returns its ``compute()`` dict.

    The generator runs in eval mode (BatchNorm running statistics, so each sample depends on its
    own noise only). ``noise``: float32 (M, nz), ``code``: float32 (M, code_dims) or None, on
    the generator's device.
    """
    with eval_mode(generator):
        evaluator.reset()
        for z, c in in_batches(batch_size, noise, code):
            images = generator(z, c)
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


def _check_resumable(checkpoint: dict, config: TrainConfig, channels: int, classes: list[str], run_dir: Path) -> None:
    saved = checkpoint["config"]
    for key in RESUME_KEYS:
        value = saved.get(key, getattr(TrainConfig, key))  # a checkpoint older than the setting ran with its default
        if value != getattr(config, key):
            raise GanMetricsError(
                f"{run_dir} holds a run with {key}={value!r}, not {getattr(config, key)!r}; "
                "pass the same settings to resume it, or a new --out"
            )
    if checkpoint["channels"] != channels:
        raise GanMetricsError(
            f"{run_dir} holds a run on {checkpoint['channels']}-channel images but the data has "
            f"{channels}; use the same data to resume it, or a new --out"
        )
    saved_classes = checkpoint.get("classes", [])
    if saved_classes != classes:
        raise GanMetricsError(
            f"{run_dir} holds a run on the classes {', '.join(saved_classes)} but the data has "
            f"{', '.join(classes)}; use the same data to resume it, or a new --out"
        )


def _describe(row: dict) -> str:
    fields = [f"fid {row['fid']:.2f}"]
    if "intra_fid" in row:
        fields.append(f"intra-FID {row['intra_fid']:.2f}")
    if row["is_mean"] is not None:
        fields.append(f"IS {row['is_mean']:.3f} ± {row['is_std']:.3f}")
    if "info_accuracy" in row:
        fields.append(f"Q accuracy {row['info_accuracy']:.3f}")
    fields += [f"{key} {row[key]:.4f}" for key in ("loss_d", "loss_g") if row[key] is not None]
    return f"step {row['step']}: " + "  ".join(fields) + f"  ({row['seconds']:.0f} s)"


def curves_figure(rows: list[dict]):
    """Losses and FID against steps, from metrics.jsonl rows: a matplotlib Figure (no pyplot:
    its global state is not touched)."""
    Figure = figure_class("curves.png")
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_fid = fig.subplots(1, 2)
    for key in ("loss_d", "loss_g"):
        points = [(row["step"], row[key]) for row in rows if row[key] is not None]
        if points:
            ax_loss.plot(*zip(*points), marker=".", label=key)
    ax_loss.set(xlabel="step", ylabel="mean loss since previous evaluation", title="losses")
    ax_loss.legend()
    steps = [row["step"] for row in rows]
    ax_fid.plot(steps, [row["fid"] for row in rows], marker=".", label="fid")
    if "intra_fid" in rows[-1]:
        ax_fid.plot(steps, [row["intra_fid"] for row in rows], marker=".", label="intra_fid (mean of the classes')")
        ax_fid.legend()
    ax_fid.set(xlabel="step", ylabel="FID", title="FID")
    return fig


EvaluatorFactory = Callable[[TrainConfig, torch.Tensor], Evaluator]


@dataclass
class Run:
    """A run in progress: its settings, data, networks and optimisers, the fixed evaluation
    inputs, where it stands (``step``, training seconds of earlier sessions), its evaluators
    (built at the first evaluation of a session) and the losses summed since the last
    evaluation (0-dim float32 tensors on ``device``, so a step never waits for the device)."""

    config: TrainConfig
    spec: LossSpec
    device: torch.device
    images: torch.Tensor  # uint8 (N, C, S, S) on device: the training set
    labels: torch.Tensor | None  # int64 (N,) on device: their classes (conditional runs)
    classes: list[str]  # the class names in index order ([] unless conditional)
    info: InfoCodes | None
    generator: Generator
    critic: Discriminator
    q_head: InfoHead | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer  # the critic's parameters, and Q's
    eval_noise: torch.Tensor  # float32 (eval_samples, nz) on device
    eval_code: torch.Tensor | None  # float32 (eval_samples, code_dims) on device
    eval_labels: torch.Tensor | None  # int64 (eval_samples,): their class (conditional) or category (InfoGAN)
    step: int = 0
    seconds_before: float = 0.0
    resumed: bool = False
    writer: "SummaryWriter | None" = None  # None when tensorboard is not installed
    evaluator: Evaluator | None = None
    class_evaluators: list[Evaluator] = field(default_factory=list)
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
    if config.infogan is not None and config.conditional:
        raise GanMetricsError("--infogan and --conditional do not combine: InfoGAN learns its codes without "
                              "labels; use one of them")
    return replace(config, data_dir=os.fspath(config.data_dir), out_dir=os.fspath(config.out_dir))


def load_training_set(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """(images uint8 (N, C, S, S), their classes int64 (N,) or None, the class names or []);
    a conditional run refuses fewer than 2 evaluation samples per class."""
    if not config.conditional:
        return load_images(config.data_dir, config.image_size), None, []
    images, labels, classes = load_labelled_images(config.data_dir, config.image_size)
    if config.eval_samples < 2 * len(classes):
        raise GanMetricsError(f"--eval-samples {config.eval_samples} leaves fewer than 2 samples for some of the "
                              f"{len(classes)} classes; pass --eval-samples {2 * len(classes)} or more")
    return images, labels, classes


def evaluation_inputs(config: TrainConfig, classes: list[str],
                      info: InfoCodes | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The fixed evaluation inputs (noise, code, labels) of ``Run``, on the CPU, drawn from their
    own generator seeded ``config.seed`` so that evaluations never touch the training RNG: a
    conditional run's samples take the classes in turn (sample i: class i % K), an InfoGAN run's
    codes come from the prior, drawn after the noise."""
    rng = torch.Generator().manual_seed(config.seed)
    noise = torch.randn(config.eval_samples, config.nz, generator=rng)
    if classes:
        labels = torch.arange(config.eval_samples) % len(classes)
        return noise, one_hot(labels, len(classes)), labels
    if info is not None:
        category, continuous = info.draw(config.eval_samples, generator=rng)
        return noise, info.vector(category, continuous), category
    return noise, None, None


def start_run(config: TrainConfig) -> Run:
    """Check ``config``, seed every generator, load the data, build the networks and their
    optimisers, and resume from ``RUN_DIR/checkpoint.pt`` where there is one."""
    config = check_config(config)
    spec = LOSSES[config.loss]
    info = InfoCodes.parse(config.infogan) if config.infogan else None
    device = resolve_device(config.device)
    seed_everything(config.seed)
    images, labels, classes = load_training_set(config)
    channels = images.size(1)
    generator = Generator(config.image_size, channels, config.nz, config.ngf, code_dims(classes, info)).to(device)
    critic = Discriminator(config.image_size, channels, config.ndf, spec.critic_norm, len(classes)).to(device)
    q_head = InfoHead(critic.trunk_width, info.categories, info.continuous).to(device) if info else None
    critic_params = [*critic.parameters(), *(q_head.parameters() if q_head else ())]
    noise, code, eval_labels = (None if t is None else t.to(device) for t in evaluation_inputs(config, classes, info))
    run = Run(config=config, spec=spec, device=device, images=images.to(device),
              labels=None if labels is None else labels.to(device), classes=classes, info=info,
              generator=generator, critic=critic, q_head=q_head,
              opt_g=spec.make_optimizer(generator.parameters(), config.lr),
              opt_d=spec.make_optimizer(critic_params, config.lr),
              eval_noise=noise, eval_code=code, eval_labels=eval_labels)
    (run.run_dir / "samples").mkdir(parents=True, exist_ok=True)
    if run.checkpoint_path.exists():
        resume(run)
    _keep_metrics_until(run.metrics_path, run.step if run.resumed else None)
    try:
        from torch.utils.tensorboard import SummaryWriter
        run.writer = SummaryWriter(run.run_dir, purge_step=run.step)  # purge: drop what was logged after the checkpoint
    except ImportError:
        pass
    run.loss_sums = {"loss_d": torch.zeros((), device=device), "loss_g": torch.zeros((), device=device)}
    run.loss_counts = {"loss_d": 0, "loss_g": 0}
    run.started = time.time()
    return run


def resume(run: Run) -> None:
    """Load the networks, optimisers, RNG state and position of ``run``'s checkpoint."""
    checkpoint = torch.load(run.checkpoint_path, map_location=run.device, weights_only=True)
    _check_resumable(checkpoint, run.config, run.images.size(1), run.classes, run.run_dir)
    run.generator.load_state_dict(checkpoint["generator"])
    run.critic.load_state_dict(checkpoint["discriminator"])
    if run.q_head is not None:
        run.q_head.load_state_dict(checkpoint["q_head"])
    run.opt_g.load_state_dict(checkpoint["opt_g"])
    run.opt_d.load_state_dict(checkpoint["opt_d"])
    _set_rng_state(checkpoint["rng"])
    run.step, run.seconds_before, run.resumed = checkpoint["step"], checkpoint["seconds"], True
    print(f"resuming {run.run_dir} from step {run.step}")


@dataclass
class FakeBatch:
    """A generated batch, with its graph, and what it was generated from besides noise."""

    images: torch.Tensor  # float32 (B, C, S, S) in [-1, 1]
    condition: torch.Tensor | None  # float32 (B, K): the one-hot classes (conditional runs)
    codes: tuple[torch.Tensor, torch.Tensor] | None  # InfoGAN's (category int64 (B,), continuous float32 (B, c))


def generate_fake(run: Run, index: torch.Tensor) -> FakeBatch:
    """A fake batch beside the real batch of training images ``index``, int64 (B,): of the same
    classes in a conditional run, with codes drawn from the prior in an InfoGAN run."""
    z = torch.randn(len(index), run.config.nz, device=run.device)
    code = condition = codes = None
    if run.labels is not None:
        code = condition = one_hot(run.labels[index], len(run.classes))
    elif run.info is not None:
        codes = run.info.draw(len(index), device=run.device)
        code = run.info.vector(*codes)
    return FakeBatch(run.generator(z, code), condition, codes)


def critic_step(run: Run) -> FakeBatch:
    """``spec.n_critic`` critic updates, each on a fresh real batch (drawn with replacement) and
    a fresh fake batch. Returns the last fake batch, with its graph: the generator update reuses it."""
    for _ in range(run.spec.n_critic):
        index = torch.randint(len(run.images), (run.config.batch_size,)).to(run.device)
        real = run.images[index].float() / 127.5 - 1
        fake = generate_fake(run, index)
        run.loss_sums["loss_d"] += critic_update(run.critic, run.opt_d, run.spec, real, fake.images.detach(),
                                                 fake.condition, run.q_head, fake.codes)
        run.loss_counts["loss_d"] += 1
    return fake


def generator_step(run: Run, fake: FakeBatch) -> None:
    """One generator update on ``fake``, the critic step's last fake batch (InfoGAN: the
    information loss of its codes added)."""
    features = run.critic.trunk(fake.images, fake.condition)
    loss_g = run.spec.g_loss(run.critic.head(features))
    if run.q_head is not None:
        loss_g = loss_g + information_loss(*run.q_head(features), *fake.codes)
    run.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    run.opt_g.step()
    run.loss_sums["loss_g"] += loss_g.detach()
    run.loss_counts["loss_g"] += 1


def class_config(config: TrainConfig) -> TrainConfig:
    """The settings of a class's evaluator: FID only, against the class's training images."""
    return replace(config, reference=None, metric_options={**config.metric_options, "inception_score": False})


def score_classes(run: Run) -> dict:
    """{"class_fid": {class name: FID of the evaluation samples of that class against its
    training images}, "intra_fid": their mean} (Miyato & Koyama, 2018)."""
    class_fid = {}
    for label, (name, evaluator) in enumerate(zip(run.classes, run.class_evaluators)):
        mine = run.eval_labels == label
        scores = evaluate(run.generator, evaluator, run.eval_noise[mine], run.config.batch_size, run.eval_code[mine])
        class_fid[name] = float(scores["fid"])
    return {"class_fid": class_fid, "intra_fid": sum(class_fid.values()) / len(class_fid)}


@torch.no_grad()
def info_accuracy(run: Run) -> float:
    """The fraction of the evaluation samples whose categorical code Q recovers (argmax of its
    logits), with every network in eval mode; chance is 1 / categories."""
    hits = 0
    with eval_mode(run.generator, run.critic, run.q_head):
        for z, code, category in in_batches(run.config.batch_size, run.eval_noise, run.eval_code, run.eval_labels):
            logits, _ = run.q_head(run.critic.trunk(run.generator(z, code)))
            hits += (logits.argmax(dim=1) == category).sum().item()
    return hits / len(run.eval_noise)


def score(run: Run, evaluator_factory: EvaluatorFactory) -> dict:
    """The metrics.jsonl row of the current step: the evaluators' scores of the fixed evaluation
    inputs' images and the mean losses since the previous evaluation (whose sums it then clears)."""
    with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
        if run.evaluator is None:
            run.evaluator = evaluator_factory(run.config, run.images)
            run.class_evaluators = [evaluator_factory(class_config(run.config), run.images[run.labels == label])
                                    for label in range(len(run.classes))]
        scores = evaluate(run.generator, run.evaluator, run.eval_noise, run.config.batch_size, run.eval_code)
        row = {"step": run.step, "fid": float(scores["fid"])}
        for key in ("is_mean", "is_std"):  # absent when the evaluator skips the Inception Score
            row[key] = float(scores[key]) if key in scores else None
        if run.classes:
            row.update(score_classes(run))
    if run.info is not None:
        row["info_accuracy"] = info_accuracy(run)
    for key, total in run.loss_sums.items():
        count = run.loss_counts[key]
        row[key] = (total / count).item() if count else None
        total.zero_()
        run.loss_counts[key] = 0
    row["calibrated"] = run.evaluator.calibrated
    row["seconds"] = run.seconds_before + time.time() - run.started
    return row


def sheet_path(run_dir: Path, step: int, suffix: str = "") -> Path:
    """The sample sheet of evaluation ``step`` (``suffix``: an InfoGAN traversal's "_<code>")."""
    return run_dir / "samples" / f"step_{step:06d}{suffix}.png"


@torch.no_grad()
def save_sheets(run: Run) -> None:
    """The first ``GRID_SAMPLES`` evaluation samples as ``samples/step_NNNNNN.png`` (8 a row; a
    conditional run's, a multiple of its classes a row, so that each column holds one class)
    and, for InfoGAN, a traversal sheet per code as ``samples/step_NNNNNN_<code>.png`` (rows:
    the code's values; columns: the first ``TRAVERSAL_COLUMNS`` evaluation noise vectors); each
    also to TensorBoard ("samples", "traversal/<code>")."""
    from torchvision.utils import make_grid, save_image  # slow to import: only when a run saves sheets

    columns = len(run.classes) * max(1, 8 // len(run.classes)) if run.classes else 8
    code = None if run.eval_code is None else run.eval_code[:GRID_SAMPLES]
    sheets = [("samples", "", run.eval_noise[:GRID_SAMPLES], code, columns)]
    if run.info is not None:
        noise = run.eval_noise[:TRAVERSAL_COLUMNS]
        for name, traversal in run.info.traversals(len(noise)).items():
            rows = len(traversal) // len(noise)
            sheets.append((f"traversal/{name}", f"_{name}", noise.repeat(rows, 1), traversal.to(run.device), len(noise)))
    with eval_mode(run.generator):
        for tag, suffix, noise, code, columns in sheets:
            grid = make_grid(run.generator(noise, code), nrow=columns, normalize=True, value_range=(-1, 1))
            save_image(grid, sheet_path(run.run_dir, run.step, suffix))
            if run.writer is not None:
                run.writer.add_image(tag, grid, run.step)


def log_scalars(run: Run, row: dict) -> None:
    """The row's scores and losses as TensorBoard scalars (each class's FID as "class_fid/<name>")."""
    for key in ("fid", "intra_fid", "is_mean", "info_accuracy", "loss_d", "loss_g"):
        if row.get(key) is not None:
            run.writer.add_scalar(key, row[key], run.step)
    for name, value in row.get("class_fid", {}).items():
        run.writer.add_scalar(f"class_fid/{name}", value, run.step)
    run.writer.flush()


def save_checkpoint(run: Run, seconds: float) -> None:
    """Rewrite ``checkpoint.pt`` (atomically) with everything a resumed run needs to go on."""
    checkpoint = {
        "generator": run.generator.state_dict(), "discriminator": run.critic.state_dict(),
        "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
        "step": run.step, "seconds": seconds, "channels": run.images.size(1),
        "config": asdict(run.config), "rng": _rng_state(),
    }
    if run.classes:
        checkpoint["classes"] = run.classes
    if run.q_head is not None:
        checkpoint["q_head"] = run.q_head.state_dict()
    with atomic_write(run.checkpoint_path) as file:
        torch.save(checkpoint, file)


def evaluate_and_save(run: Run, evaluator_factory: EvaluatorFactory) -> dict:
    """Score the current step, append its row to metrics.jsonl, save the sample sheets, log to
    TensorBoard and rewrite the checkpoint; returns the row."""
    row = score(run, evaluator_factory)
    with open(run.metrics_path, "a") as f:  # before the checkpoint: a kill in between re-runs this evaluation
        f.write(json.dumps(row) + "\n")
    save_sheets(run)
    if run.writer is not None:
        log_scalars(run, row)
    save_checkpoint(run, row["seconds"])
    print(_describe(row))
    return row


def finish(run: Run) -> dict:
    """Plot ``curves.png`` and write ``report.html`` from the whole metrics.jsonl (without the
    plot extra, say so and skip both); returns its last row."""
    rows = read_metrics(run.metrics_path)
    try:
        require_tools("writing curves.png and report.html")
    except GanMetricsError as err:
        print(f"{err}; skipping them")
        return rows[-1]
    curves = figure_png(curves_figure(rows))
    with atomic_write(run.run_dir / "curves.png") as file:
        file.write(curves)
    sheets = {row["step"]: sheet_path(run.run_dir, row["step"]) for row in rows}
    write_training_report(run.run_dir / "report.html", rows, curves, sheets, asdict(run.config))
    return rows[-1]


def train(config: TrainConfig, evaluator_factory: EvaluatorFactory = default_evaluator) -> dict:
    """Run (or resume) the training described by ``config``; returns the last metrics.jsonl row.

    Sets torch's global determinism flags. ``evaluator_factory(config, images)`` (``images``:
    uint8 (N, C, S, S)) is called at the first evaluation of this session for the training set
    and, in a conditional run, for each class's training images (with ``class_config(config)``).
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


@dataclass
class TrainedGenerator:
    """A training checkpoint's generator, in eval mode, and what its code is."""

    generator: Generator
    classes: list[str]  # a conditional run's class names, in index order; [] otherwise
    info: InfoCodes | None  # an InfoGAN run's codes

    def draw_code(self, n: int, rng: torch.Generator, label: int | None = None) -> torch.Tensor | None:
        """The code of ``n`` samples, float32 (n, code_dims) on the CPU (None: a plain GAN's
        generator takes none): a conditional run's one-hots of class ``label`` (None: the classes
        in turn, sample i of class i % K); an InfoGAN run's codes from the prior, drawn from ``rng``."""
        if self.classes:
            labels = torch.arange(n) % len(self.classes) if label is None else torch.full((n,), label)
            return one_hot(labels, len(self.classes))
        if self.info is not None:
            return self.info.vector(*self.info.draw(n, generator=rng))
        return None


def load_trained_generator(checkpoint_path: str | os.PathLike, device: torch.device | str = "cpu") -> TrainedGenerator:
    """The generator of a training checkpoint, in eval mode on ``device``, with its classes and codes."""
    try:
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        config, classes = checkpoint["config"], checkpoint.get("classes", [])
        info = InfoCodes.parse(config["infogan"]) if config.get("infogan") else None
        generator = Generator(config["image_size"], checkpoint["channels"], config["nz"], config["ngf"],
                              code_dims(classes, info))
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
    return TrainedGenerator(generator.to(device).eval(), classes, info)


def load_generator(checkpoint_path: str | os.PathLike, device: torch.device | str = "cpu") -> Generator:
    """The generator of a training checkpoint, in eval mode on ``device``."""
    return load_trained_generator(checkpoint_path, device).generator


@torch.no_grad()
def write_samples(generator: Generator, n: int, out_dir: str | os.PathLike, seed: int = 0, batch_size: int = 64,
                  draw_code: Callable[[int, torch.Generator], torch.Tensor | None] | None = None) -> list[Path]:
    """``n`` samples of an eval-mode generator as ``out_dir/00000.png`` ... (RGB or grayscale,
    uint8 = round((x + 1) * 127.5)); the noise is N(0, I) from a CPU generator ``rng`` seeded
    ``seed``, and the code (a generator that takes one) ``draw_code(n, rng)``, drawn after the
    noise (``TrainedGenerator.draw_code``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, generator.nz, generator=rng)
    code = draw_code(n, rng) if draw_code else None
    paths = []
    for z, c in in_batches(batch_size, noise, code):
        images = generator(z.to(device), None if c is None else c.to(device))
        images = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        for image in images.permute(0, 2, 3, 1).cpu().numpy():
            path = out_dir / f"{len(paths):05d}.png"
            save_png(image[..., 0] if image.shape[-1] == 1 else image, path)
            paths.append(path)
    return paths
