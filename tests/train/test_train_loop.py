"""The training loop, its run folder and resumption, and the train/sample/toy-data commands.

The evaluator is a cheap stand-in whose "scores" are deterministic functions of the generated
images; the metric values themselves are tested with the metrics library.
"""

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from helpers import one_line_error, run_cli
from ganmetrics.errors import GanMetricsError
from ganmetrics.train.commands import sample_command, toy_data_command, train_command
from ganmetrics.train.loop import TrainConfig, evaluate, load_generator, load_images, train, write_samples
from ganmetrics.train.models import Discriminator, Generator, InfoHead
from ganmetrics.train.toydata import write_toy_dataset

ROW_KEYS = {"step", "fid", "is_mean", "is_std", "loss_d", "loss_g", "calibrated", "seconds"}


pytestmark = pytest.mark.usefixtures("one_thread", "restore_determinism_flags")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), 48, image_size=32, seed=0)[0].parent


class StandIn:
    """Records what it is given; "fid" is the mean pixel, "is_mean"/"is_std" the std and mean |x|."""

    def __init__(self, fail_at_compute: int | None = None, calibrated: bool = False):
        self.fail_at_compute = fail_at_compute
        self.calibrated = calibrated
        self.computes = 0
        self.shapes = []

    def reset(self):
        self.batches = []

    def update(self, images, value_range):
        assert value_range == "-1,1"
        self.shapes.append(tuple(images.shape))
        self.batches.append(images.detach().cpu().double())

    def compute(self):
        self.computes += 1
        if self.computes == self.fail_at_compute:
            raise KeyboardInterrupt  # what a kill looks like from inside the loop
        x = torch.cat(self.batches)
        return {"fid": x.mean().item(), "is_mean": x.std().item(), "is_std": x.abs().mean().item(), "n": len(x)}


def config(data_dir, out_dir, **overrides) -> TrainConfig:
    settings = dict(data_dir=data_dir, out_dir=out_dir, loss="nonsaturating", steps=4, batch_size=8,
                    image_size=32, seed=0, eval_every=2, eval_samples=20, device="cpu", ngf=8, ndf=8)
    return TrainConfig(**{**settings, **overrides})


def run(cfg: TrainConfig, evaluator=None) -> dict:
    evaluator = evaluator or StandIn()
    return train(cfg, lambda config, images: evaluator)


def rows(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def without_seconds(rows_: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows_]


def load_checkpoint(out_dir) -> dict:
    return torch.load(out_dir / "checkpoint.pt", weights_only=True)


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wgan", "wgan-gp"])
def test_each_loss_trains_without_nan(data_dir, tmp_path, loss):
    last = run(config(data_dir, tmp_path, loss=loss, steps=3))
    history = rows(tmp_path)
    assert [row["step"] for row in history] == [0, 2, 3]
    assert last == history[-1]
    assert history[0]["loss_d"] is None and history[0]["loss_g"] is None  # nothing trained yet at step 0
    for row in history[1:]:
        assert set(row) == ROW_KEYS
        assert all(np.isfinite(row[key]) for key in ROW_KEYS)
    checkpoint = load_checkpoint(tmp_path)
    for name in ("generator", "discriminator"):
        assert all(torch.isfinite(t).all() for t in checkpoint[name].values())
    # Training moved the generator away from its initialisation (the same seed builds the same one).
    torch.manual_seed(0)
    initial = Generator(32, 3, ngf=8).state_dict()
    assert not torch.equal(checkpoint["generator"]["main.0.weight"], initial["main.0.weight"])
    if loss == "wgan":
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        params = [t for key, t in checkpoint["discriminator"].items() if not key.endswith(buffers)]
        assert max(t.abs().max().item() for t in params) <= 0.01


def test_run_folder_holds_metrics_samples_curves_report_checkpoint_and_tensorboard(data_dir, tmp_path):
    evaluator = StandIn()
    run(config(data_dir, tmp_path), evaluator)
    assert [row["step"] for row in rows(tmp_path)] == [0, 2, 4]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_000000.png", "step_000002.png", "step_000004.png"]
    with Image.open(tmp_path / "samples" / "step_000004.png") as grid:
        assert grid.size == (8 * 34 + 2, 3 * 34 + 2)  # 20 samples: 8 per row, 2-pixel padding
    with Image.open(tmp_path / "curves.png") as curves:
        assert curves.size == (1000, 400)
    report = (tmp_path / "report.html").read_text()  # every evaluation's values and sheet, the settings
    assert all(f'data-key="fid" data-value="{row["fid"]!r}"' in report for row in rows(tmp_path))
    assert report.count('title="step ') == 3 and "<dt>eval_samples</dt><dd>20</dd>" in report
    assert list(tmp_path.glob("events.out.tfevents.*"))
    assert not list(tmp_path.glob("*.tmp"))
    # Every evaluation sees eval_samples RGB images in batches of batch_size.
    assert evaluator.shapes == [(8, 3, 32, 32), (8, 3, 32, 32), (4, 3, 32, 32)] * 3


def test_checkpoint_loads_with_weights_only(data_dir, tmp_path):
    run(config(data_dir, tmp_path, loss="wgan-gp", steps=2))
    checkpoint = load_checkpoint(tmp_path)
    assert set(checkpoint) == {"generator", "discriminator", "opt_g", "opt_d", "step", "seconds", "channels",
                               "config", "rng"}
    assert checkpoint["step"] == 2 and checkpoint["channels"] == 3
    assert checkpoint["config"]["loss"] == "wgan-gp" and checkpoint["config"]["data_dir"] == str(data_dir)
    assert isinstance(checkpoint["rng"]["torch"], torch.Tensor)
    assert checkpoint["opt_d"]["param_groups"][0]["betas"] == (0.0, 0.9)
    generator = load_generator(tmp_path / "checkpoint.pt")
    assert not generator.training
    assert_same_state(generator.state_dict(), checkpoint["generator"])


def test_seeded_run_repeats_bit_for_bit(data_dir, tmp_path):
    for name in ("a", "b"):
        run(config(data_dir, tmp_path / name, loss="wgan-gp", steps=4))
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert_same_state(a["generator"], b["generator"])
    assert_same_state(a["discriminator"], b["discriminator"])
    assert without_seconds(rows(tmp_path / "a")) == without_seconds(rows(tmp_path / "b"))

    run(config(data_dir, tmp_path / "c", loss="wgan-gp", steps=4, seed=1))
    c = load_checkpoint(tmp_path / "c")
    assert not torch.equal(a["generator"]["main.0.weight"], c["generator"]["main.0.weight"])


def test_resume_after_a_kill_matches_an_uninterrupted_run(data_dir, tmp_path):
    run(config(data_dir, tmp_path / "straight", steps=8))
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run(config(data_dir, killed, steps=8), StandIn(fail_at_compute=4))  # dies evaluating step 6
    assert load_checkpoint(killed)["step"] == 4
    # A kill between writing an evaluation's line and its checkpoint leaves a line past the checkpoint.
    with open(killed / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**rows(killed)[-1], "step": 6}) + "\n")

    run(config(data_dir, killed, steps=8))
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(killed)
    for name in ("generator", "discriminator"):
        assert_same_state(straight[name], resumed[name])
    assert straight["opt_g"]["state"][0]["exp_avg"].equal(resumed["opt_g"]["state"][0]["exp_avg"])
    assert [row["step"] for row in rows(killed)] == [0, 2, 4, 6, 8]
    assert without_seconds(rows(killed)) == without_seconds(rows(tmp_path / "straight"))


def test_a_finished_run_extends_to_more_steps(data_dir, tmp_path):
    run(config(data_dir, tmp_path / "straight", loss="wgan", steps=4))
    run(config(data_dir, tmp_path / "extended", loss="wgan", steps=2))
    run(config(data_dir, tmp_path / "extended", loss="wgan", steps=4))
    assert_same_state(load_checkpoint(tmp_path / "straight")["generator"],
                      load_checkpoint(tmp_path / "extended")["generator"])
    assert without_seconds(rows(tmp_path / "extended")) == without_seconds(rows(tmp_path / "straight"))


def test_resume_refuses_other_settings(data_dir, tmp_path):
    run(config(data_dir, tmp_path, steps=2))
    with pytest.raises(GanMetricsError, match="loss='nonsaturating', not 'minimax'"):
        run(config(data_dir, tmp_path, steps=4, loss="minimax"))


class RandomDrawingStandIn(StandIn):
    def compute(self):
        torch.rand(1000)  # an evaluator that uses the global RNG must not shift training's stream
        return super().compute()


def test_evaluation_leaves_training_untouched(data_dir, tmp_path):
    run(config(data_dir, tmp_path / "plain", steps=4, eval_every=4))
    run(config(data_dir, tmp_path / "drawing", steps=4, eval_every=1), RandomDrawingStandIn())
    assert_same_state(load_checkpoint(tmp_path / "plain")["generator"],
                      load_checkpoint(tmp_path / "drawing")["generator"])

    generator = Generator(32, 3, ngf=8).train()
    evaluator = StandIn()
    evaluator.reset()
    scores = evaluate(generator, evaluator, torch.randn(10, 100), batch_size=4)
    assert generator.training
    assert scores["n"] == 10
    assert evaluator.shapes == [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]


def test_grayscale_data_trains_a_one_channel_generator(tmp_path):
    data = tmp_path / "gray"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8), mode="L").save(data / f"{i}.jpg")
    images = load_images(data, 32)
    assert images.shape == (12, 1, 32, 32) and images.dtype == torch.uint8
    evaluator = StandIn()
    run(config(data, tmp_path / "run", steps=2), evaluator)
    assert load_checkpoint(tmp_path / "run")["channels"] == 1
    assert set(evaluator.shapes) == {(8, 3, 32, 32), (4, 3, 32, 32)}  # expanded to RGB for the metrics
    paths = write_samples(load_generator(tmp_path / "run" / "checkpoint.pt"), 3, tmp_path / "samples")
    with Image.open(paths[0]) as image:
        assert image.mode == "L" and image.size == (32, 32)


def test_bad_data_folders_are_refused(tmp_path):
    with pytest.raises(GanMetricsError, match="does not exist"):
        run(config(tmp_path / "missing", tmp_path / "run"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(GanMetricsError, match="no PNG/JPG images"):
        run(config(tmp_path / "empty", tmp_path / "run"))
    result = CliRunner().invoke(train_command, [str(tmp_path / "missing"), "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, GanMetricsError)


@pytest.mark.parametrize("calibrated", [True, False])
def test_train_command_on_a_finished_run_reads_the_calibration_from_its_last_row(data_dir, tmp_path, calibrated):
    run(config(data_dir, tmp_path / "run", steps=2), StandIn(calibrated=calibrated))
    assert [row["calibrated"] for row in rows(tmp_path / "run")] == [calibrated, calibrated]
    # The same settings as config(): the run is finished, so no evaluator is built.
    result = CliRunner().invoke(train_command, [str(data_dir), "--out", str(tmp_path / "run"), "--steps", "2",
                                                "--batch-size", "8", "--ngf", "8", "--ndf", "8", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "scoring with" not in result.output
    assert ("UNCALIBRATED" in result.output) is not calibrated


def test_sample_writes_n_pngs_of_the_generator(data_dir, tmp_path):
    run(config(data_dir, tmp_path / "run", steps=2))
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    result = CliRunner().invoke(sample_command, [str(checkpoint), "-n", "10", "-o", str(tmp_path / "out"),
                                                 "--seed", "3", "--batch-size", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    paths = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in paths] == [f"{i:05d}.png" for i in range(10)]
    written = []
    for path in paths:
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (32, 32)
            written.append(np.asarray(image))
    generator = load_generator(checkpoint)
    with torch.no_grad():
        expected = generator(torch.randn(10, 100, generator=torch.Generator().manual_seed(3)))
    expected = ((expected + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(np.stack(written).astype(float) - expected).max() <= 1  # batch size may move a rounding


def test_sample_refuses_bad_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    for path in (garbage, tmp_path / "missing.pt", tmp_path):
        result = CliRunner().invoke(sample_command, [str(path), "-n", "2", "-o", str(tmp_path / "out")])
        assert isinstance(result.exception, GanMetricsError), path
    torch.save({"generator": {}}, tmp_path / "other.pt")
    with pytest.raises(GanMetricsError, match="not a ganmetrics training checkpoint"):
        load_generator(tmp_path / "other.pt")


def test_toy_data_command_writes_the_images(tmp_path):
    result = CliRunner().invoke(toy_data_command, [str(tmp_path / "toy"), "-n", "3", "--image-size", "64"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    with Image.open(tmp_path / "toy" / "00002.png") as image:
        assert image.size == (64, 64)


# --- conditional GAN --------------------------------------------------------------------------

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def labelled_dir(tmp_path_factory):
    """24 toy images in three class folders, 8 each (image i of class i % 3)."""
    return write_toy_dataset(tmp_path_factory.mktemp("labelled"), 24, image_size=32, seed=0, classes=3)[0].parent.parent


class RecordingFactory:
    """An evaluator factory that records each (config, images) it is called with and gives each
    call its own ``StandIn``."""

    def __init__(self):
        self.calls, self.evaluators = [], []

    def __call__(self, config, images):
        self.calls.append((config, images.cpu()))
        self.evaluators.append(StandIn())
        return self.evaluators[-1]


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wgan", "wgan-gp"])
def test_each_loss_trains_a_conditional_gan_without_nan(labelled_dir, tmp_path, loss):
    last = run(config(labelled_dir, tmp_path, loss=loss, steps=3, conditional=True))
    history = rows(tmp_path)
    assert [row["step"] for row in history] == [0, 2, 3] and last == history[-1]
    for row in history[1:]:
        assert set(row) == ROW_KEYS | {"class_fid", "intra_fid"}
        assert list(row["class_fid"]) == CLASSES
        assert row["intra_fid"] == pytest.approx(sum(row["class_fid"].values()) / 3, rel=1e-12)
        assert all(np.isfinite(row[key]) for key in ("fid", "intra_fid", "loss_d", "loss_g"))
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["classes"] == CLASSES and checkpoint["config"]["conditional"] is True
    assert checkpoint["discriminator"]["main.0.weight"].shape[1] == 3 + 3  # RGB and one plane a class
    assert checkpoint["generator"]["main.0.weight"].shape[0] == 100 + 3  # z and the one-hot
    for name in ("generator", "discriminator"):
        assert all(torch.isfinite(t).all() for t in checkpoint[name].values())


def test_each_class_is_scored_against_its_own_images(labelled_dir, tmp_path):
    factory = RecordingFactory()
    cfg = config(labelled_dir, tmp_path, steps=2, eval_samples=20, conditional=True, reference="stats.npz",
                 metric_options={"dims": 64, "inception_score": True})
    train(cfg, factory)
    (_, everything), *per_class = factory.calls
    assert torch.equal(everything, load_images(labelled_dir, 32))
    for (class_config, images), name in zip(per_class, CLASSES):
        assert torch.equal(images, load_images(labelled_dir / name, 32))
        assert class_config.reference is None  # the class's own images, whatever the overall reference
        assert class_config.metric_options == {"dims": 64, "inception_score": False}
    # Evaluation sample i is of class i % 3: 7, 7 and 6 of the 20; the overall evaluator sees all 20.
    overall, *classes = factory.evaluators
    assert [sum(shape[0] for shape in e.shapes) for e in classes] == [7 * 2, 7 * 2, 6 * 2]  # two evaluations
    assert sum(shape[0] for shape in overall.shapes) == 20 * 2
    with Image.open(tmp_path / "samples" / "step_000002.png") as grid:
        assert grid.size == (6 * 34 + 2, 4 * 34 + 2)  # 20 samples, 6 a row: two of each class, one a column
    # Replay the last evaluation of each class from the checkpoint: "fid" is the mean pixel of its samples.
    generator = load_generator(tmp_path / "checkpoint.pt")
    noise = torch.randn(20, 100, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20) % 3
    last = rows(tmp_path)[-1]
    with torch.no_grad():
        for label, name in enumerate(CLASSES):
            images = generator(noise[labels == label], torch.eye(3)[labels[labels == label]])
            assert last["class_fid"][name] == pytest.approx(images.double().mean().item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["conditional", "infogan"])
def test_a_conditional_or_infogan_run_resumes_bit_for_bit(data_dir, labelled_dir, tmp_path, kind):
    data, settings = {"conditional": (labelled_dir, {"conditional": True}),
                      "infogan": (data_dir, {"infogan": "3,2"})}[kind]
    run(config(data, tmp_path / "straight", steps=4, **settings))
    killed = tmp_path / "killed"
    computes_per_evaluation = 4 if kind == "conditional" else 1  # the overall evaluator, then one a class
    with pytest.raises(KeyboardInterrupt):
        run(config(data, killed, steps=4, **settings), StandIn(fail_at_compute=2 * computes_per_evaluation + 1))
    assert load_checkpoint(killed)["step"] == 2
    run(config(data, killed, steps=4, **settings))
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(killed)
    for name in ("generator", "discriminator", *(("q_head",) if kind == "infogan" else ())):
        assert_same_state(straight[name], resumed[name])
    assert without_seconds(rows(killed)) == without_seconds(rows(tmp_path / "straight"))


def test_resume_refuses_other_classes(labelled_dir, tmp_path):
    run(config(labelled_dir, tmp_path / "run", steps=2, conditional=True))
    other = write_toy_dataset(tmp_path / "other", 8, classes=2)[0].parent.parent
    with pytest.raises(GanMetricsError, match="classes circle, square, triangle but the data has circle, square"):
        run(config(other, tmp_path / "run", steps=4, conditional=True))
    with pytest.raises(GanMetricsError, match="conditional=True, not False"):
        run(config(labelled_dir, tmp_path / "run", steps=4))


def test_train_command_says_once_that_a_conditional_run_s_weights_are_uncalibrated(labelled_dir, tmp_path,
                                                                                    monkeypatch):
    import ganmetrics.train.commands as commands

    factory = RecordingFactory()
    monkeypatch.setattr(commands, "default_evaluator", factory)
    result = CliRunner().invoke(train_command, [str(labelled_dir), "--out", str(tmp_path / "run"), "--conditional",
                                                "--steps", "1", "--batch-size", "8", "--ngf", "8", "--ndf", "8",
                                                "--eval-samples", "6", "--device", "cpu", "--weights", "random:0"])
    assert result.exit_code == 0, result.output
    assert len(factory.calls) == 4  # the whole set's evaluator, then one a class
    assert result.output.count("scoring with weights random:0 [UNCALIBRATED") == 1
    assert result.output.splitlines()[-1].endswith(f"[UNCALIBRATED weights: FID and IS values are not comparable "
                                                   f"with published ones]; run in {tmp_path / 'run'}")


def test_sample_writes_one_class_or_every_class(labelled_dir, tmp_path):
    run(config(labelled_dir, tmp_path / "run", steps=2, conditional=True))
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    generator = load_generator(checkpoint)
    noise = torch.randn(5, 100, generator=torch.Generator().manual_seed(3))

    def expected(labels):
        with torch.no_grad():
            images = generator(noise[:len(labels)], torch.eye(3)[labels])
        return ((images + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()

    def written(folder):
        images = []
        for path in sorted(folder.iterdir()):
            with Image.open(path) as image:
                images.append(np.asarray(image, dtype=float))
        return np.stack(images)

    common = ["--seed", "3", "--device", "cpu"]
    result = run_cli("sample", checkpoint, "-o", tmp_path / "two", "--class", "2", "-n", "5", *common, options=())
    assert result.exit_code == 0, result.output
    assert np.abs(written(tmp_path / "two") - expected([2] * 5)).max() <= 1
    result = run_cli("sample", checkpoint, "-o", tmp_path / "each", "--per-class", "4", *common, options=())
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == CLASSES  # the training set's class folders
    for label, name in enumerate(CLASSES):
        assert np.abs(written(tmp_path / "each" / name) - expected([label] * 4)).max() <= 1
    result = run_cli("sample", checkpoint, "-o", tmp_path / "mixed", "-n", "5", *common, options=())
    assert result.exit_code == 0, result.output
    assert np.abs(written(tmp_path / "mixed") - expected([0, 1, 2, 0, 1])).max() <= 1  # the classes in turn


def test_bad_conditional_input_is_one_line_and_writes_nothing(data_dir, labelled_dir, tmp_path):
    (tmp_path / "labelled").mkdir()
    for name in ("cats", "dogs"):
        (tmp_path / "labelled" / name).mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "labelled" / "cats" / "0.png")
    run(config(data_dir, tmp_path / "plain", steps=1, eval_every=1))
    run(config(labelled_dir, tmp_path / "cond", steps=1, eval_every=1, conditional=True))
    out = tmp_path / "out"
    cases = [
        (("train", data_dir, "--out", out, "--conditional"), "one subfolder of images per class"),
        (("train", tmp_path / "labelled", "--out", out, "--conditional"), "class 'dogs' .* holds no PNG/JPG images"),
        (("train", labelled_dir, "--out", out, "--conditional", "--eval-samples", "5"), "--eval-samples 6 or more"),
        (("sample", tmp_path / "cond" / "checkpoint.pt", "-o", out, "--class", "3", "-n", "2"),
         r"--class 3 is out of range: .* has 3 classes \(0 circle, 1 square, 2 triangle\)"),
        (("sample", tmp_path / "cond" / "checkpoint.pt", "-o", out, "--class", "-1", "-n", "2"), "out of range"),
        (("sample", tmp_path / "plain" / "checkpoint.pt", "-o", out, "--class", "0", "-n", "2"),
         "--class needs a conditional checkpoint"),
        (("sample", tmp_path / "plain" / "checkpoint.pt", "-o", out, "--per-class", "2"),
         "--per-class needs a conditional checkpoint"),
        (("sample", tmp_path / "cond" / "checkpoint.pt", "-o", out, "--per-class", "2", "--class", "1"),
         "exclude each other"),
        (("sample", tmp_path / "cond" / "checkpoint.pt", "-o", out), "pass either -n NUM or --per-class NUM"),
        (("toy-data", out, "-n", "4", "--classes", "7"), "use 2 to 6"),
    ]
    for args, message in cases:
        line = one_line_error(run_cli(*args, options=("--device", "cpu") if args[0] != "toy-data" else ()))
        assert re.search(message, line), (args, line)
        assert not out.exists(), args


# --- InfoGAN ----------------------------------------------------------------------------------

def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_infogan_writes_a_traversal_sheet_per_code_to_the_run_folder_and_tensorboard(data_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator
    from torchvision.utils import make_grid

    run(config(data_dir, tmp_path, steps=2, infogan="3,2"))
    names = ["", "_categorical", "_continuous0", "_continuous1"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == sorted(
        f"step_{step:06d}{name}.png" for step in (0, 2) for name in names)
    # Replay the last sheets from the checkpoint: rows vary one code, columns share the first 8 noise vectors.
    generator = load_generator(tmp_path / "checkpoint.pt")
    noise = torch.randn(20, 100, generator=torch.Generator().manual_seed(0))[:8]
    rows_of = {"_categorical": 3, "_continuous0": 9, "_continuous1": 9}
    for name, n_rows in rows_of.items():
        sheet = read_png(tmp_path / "samples" / f"step_000002{name}.png")
        assert sheet.shape == (n_rows * 34 + 2, 8 * 34 + 2, 3)
        values = torch.linspace(-1, 1, 9)
        if name == "_categorical":
            code = torch.cat([torch.eye(3).repeat_interleave(8, 0), torch.zeros(24, 2)], 1)
        else:
            j = int(name[-1])
            continuous = torch.zeros(72, 2)
            continuous[:, j] = values.repeat_interleave(8)
            code = torch.cat([torch.eye(3)[torch.arange(72) % 8 % 3], continuous], 1)
        with torch.no_grad():
            grid = make_grid(generator(noise.repeat(n_rows, 1), code), nrow=8, normalize=True, value_range=(-1, 1))
        expected = (grid * 255 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()
        assert np.abs(sheet.astype(int) - expected).max() <= 1
    events = EventAccumulator(str(tmp_path), size_guidance={IMAGES: 0})
    events.Reload()
    assert set(events.Tags()["images"]) == {"samples", "traversal/categorical", "traversal/continuous0",
                                            "traversal/continuous1"}
    assert [event.step for event in events.Images("traversal/categorical")] == [0, 2]
    assert {"fid", "is_mean", "info_accuracy", "loss_d", "loss_g"} <= set(events.Tags()["scalars"])


def test_infogan_s_categorical_code_becomes_readable_through_q(data_dir, tmp_path):
    # Four categories (chance 0.25), at lr 1e-3: the accuracy rose from 0.28, 0.23, 0.32 at step 0
    # to 0.83, 0.85, 0.73 at step 100 for seeds 0, 1, 2.
    cfg = config(data_dir, tmp_path, steps=100, batch_size=32, eval_every=100, eval_samples=200, lr=1e-3,
                 infogan="4,1")
    run(cfg)
    first, last = rows(tmp_path)
    assert [first["step"], last["step"]] == [0, 100]
    sd = (0.25 * 0.75 / 200) ** 0.5  # of the accuracy of 200 guesses at chance
    assert abs(first["info_accuracy"] - 0.25) < 3 * sd
    assert last["info_accuracy"] > 0.25 + 5 * sd
    # Replay the last accuracy from the checkpoint's networks, in eval mode, on the fixed evaluation codes.
    checkpoint = load_checkpoint(tmp_path)
    generator = load_generator(tmp_path / "checkpoint.pt")
    critic = Discriminator(32, 3, ndf=8)
    critic.load_state_dict(checkpoint["discriminator"])
    q_head = InfoHead(critic.trunk_width, 4, 1)
    q_head.load_state_dict(checkpoint["q_head"])
    rng = torch.Generator().manual_seed(0)
    noise = torch.randn(200, 100, generator=rng)
    category, continuous = torch.randint(4, (200,), generator=rng), torch.rand(200, 1, generator=rng) * 2 - 1
    with torch.no_grad():
        images = generator(noise, torch.cat([torch.eye(4)[category], continuous], 1))
        logits, _ = q_head.eval()(critic.eval().trunk(images))
    assert last["info_accuracy"] == pytest.approx((logits.argmax(1) == category).double().mean().item(), abs=1e-12)


def test_sample_draws_infogan_codes_after_the_noise(data_dir, tmp_path):
    run(config(data_dir, tmp_path / "run", steps=1, eval_every=1, infogan="3,1"))
    result = run_cli("sample", tmp_path / "run" / "checkpoint.pt", "-n", "4", "-o", tmp_path / "out", "--seed", "5",
                     "--device", "cpu", options=())
    assert result.exit_code == 0, result.output
    rng = torch.Generator().manual_seed(5)
    noise = torch.randn(4, 100, generator=rng)
    category, continuous = torch.randint(3, (4,), generator=rng), torch.rand(4, 1, generator=rng) * 2 - 1
    with torch.no_grad():
        images = load_generator(tmp_path / "run" / "checkpoint.pt")(noise, torch.cat([torch.eye(3)[category], continuous], 1))
    expected = ((images + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    written = np.stack([read_png(tmp_path / "out" / f"{i:05d}.png") for i in range(4)]).astype(float)
    assert np.abs(written - expected).max() <= 1


@pytest.mark.parametrize("args, message", [
    (("--infogan", "10"), "--infogan '10' is not CATEGORIES,CONTINUOUS"),
    (("--infogan", "10,x"), "is not CATEGORIES,CONTINUOUS"),
    (("--infogan", "1,2"), "at least 2 categories"),
    (("--infogan", "10,2", "--conditional"), "--infogan and --conditional do not combine"),
])
def test_bad_infogan_input_is_one_line_and_writes_nothing(data_dir, tmp_path, args, message):
    line = one_line_error(run_cli("train", data_dir, "--out", tmp_path / "out", *args, "--device", "cpu", options=()))
    assert message in line
    assert not (tmp_path / "out").exists()
