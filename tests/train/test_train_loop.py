"""The training loop, its run folder and resumption, and the train/sample/toy-data commands.

The evaluator is a cheap stand-in whose "scores" are deterministic functions of the generated
images; the metric values themselves are tested with the metrics library.
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganmetrics.errors import GanMetricsError
from ganmetrics.train.commands import sample_command, toy_data_command, train_command
from ganmetrics.train.loop import TrainConfig, evaluate, load_generator, load_images, train, write_samples
from ganmetrics.train.models import Generator
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


def test_run_folder_holds_metrics_samples_curves_checkpoint_and_tensorboard(data_dir, tmp_path):
    evaluator = StandIn()
    run(config(data_dir, tmp_path), evaluator)
    assert [row["step"] for row in rows(tmp_path)] == [0, 2, 4]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_000000.png", "step_000002.png", "step_000004.png"]
    with Image.open(tmp_path / "samples" / "step_000004.png") as grid:
        assert grid.size == (8 * 34 + 2, 3 * 34 + 2)  # 20 samples: 8 per row, 2-pixel padding
    with Image.open(tmp_path / "curves.png") as curves:
        assert curves.size == (1000, 400)
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
