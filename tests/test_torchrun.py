"""torchrun on the CPU (gloo), end to end: 2 and 3 ranks give the one-process statistics (to
1e-12) and values, the same bits on every rank, with uneven shares and a rank with no images
(the Vendi score and its interval the same bits as one process);
a generator source gives the same statistics for 1 and 2 ranks and two generator batch sizes;
GenerativeMetrics and the API work in a user's own process group; only rank 0 prints and
writes; a bad image on rank 1 stops both ranks with the same one-line error, exit 2.

Each rank builds the network, so the runs are few and tiny: three launches for the module
(``distributed_battery.py`` on 2 and 3 ranks; the CLI on 2 processes started as torchrun
starts them), 32-px images, --dims 64, batch size 4. With 15 images in A and 7 in B: on 2
ranks A splits 8 + 7 and B 4 + 3; on 3 ranks A 4 + 4 + 7 and B 0 + 4 + 3 (rank 0 has none)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from distributed_battery import run_battery, run_cli_stats, tracker_images
from helpers import smooth_images, write_images
from ganmetrics.engine.distributed import COLLECTIVE_TIMEOUT

pytestmark = pytest.mark.slow

BATCH = 4
TESTS = Path(__file__).parent
LAUNCH_TIMEOUT_S = 300


def environment(cache: Path, **extra) -> dict:
    """This checkout importable, one thread a process, a private statistics cache."""
    paths = [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1",
            "GANMETRICS_CACHE_DIR": str(cache), **extra}


def torchrun(ranks: int, out: Path, data: dict, weights: Path, *flags: str) -> list[dict]:
    """``distributed_battery.py`` under torchrun (``--standalone``: a free port of its own) on
    ``ranks`` ranks; every rank's results, in rank order."""
    out.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               str(TESTS / "distributed_battery.py"), str(out), str(data["a"]), str(data["b"]), str(weights),
               str(BATCH), *flags]
    done = subprocess.run(command, env=environment(out / "cache"), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    results = []
    for rank in range(ranks):
        with np.load(out / f"rank{rank}.npz") as stored:
            results.append({key: stored[key] for key in stored.files})
    return results


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("torchrun")
    a = write_images(root / "a", smooth_images(15, (32, 32), seed=1))
    b = write_images(root / "b", tracker_images())
    corrupt = write_images(root / "corrupt", smooth_images(15, (32, 32), seed=1))
    (corrupt / "0009.png").write_bytes(b"not a png")  # image 9: rank 1's share on 2 ranks (8 to 14)
    return {"root": root, "a": a, "b": b, "corrupt": corrupt}


@pytest.fixture(scope="module")
def one_process(data, weights_file, tmp_path_factory, one_thread) -> dict:
    """The battery and the CLI's `stats --cache` in this process, with no process group, on
    one thread as each rank (the IS logits, a matrix product, round by the thread count)."""
    out = tmp_path_factory.mktemp("one-process")
    (out / "written").mkdir()
    results = run_battery(str(data["a"]), str(data["b"]), str(weights_file), BATCH, full=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANMETRICS_CACHE_DIR", str(out / "cache"))
        cli = run_cli_stats(str(data["a"]), out / "written" / "a.npz", str(weights_file), BATCH)
    assert cli["exit_code"] == 0, cli
    return {"results": results, "out": out}


@pytest.fixture(scope="module")
def two_ranks(data, weights_file) -> list[dict]:
    """Every rank's results; its CLI outputs are in data["root"] / "two-ranks"."""
    return torchrun(2, data["root"] / "two-ranks", data, weights_file, "full")


@pytest.fixture(scope="module")
def three_ranks(data, weights_file) -> list[dict]:
    return torchrun(3, data["root"] / "three-ranks", data, weights_file)


def relative(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize("ranks", ["two_ranks", "three_ranks"])
def test_fid_statistics_equal_one_process_to_1e12_and_are_the_same_bits_on_every_rank(ranks, request, one_process):
    results = request.getfixturevalue(ranks)
    expected = one_process["results"]
    for rank in results:
        assert np.array_equal(rank["mu"], results[0]["mu"]) and np.array_equal(rank["sigma"], results[0]["sigma"])
        assert int(rank["n"]) == int(expected["n"]) == 15
    assert relative(results[0]["mu"], expected["mu"]) <= 1e-12
    assert relative(results[0]["sigma"], expected["sigma"]) <= 1e-12


@pytest.mark.parametrize("ranks", ["two_ranks", "three_ranks"])
def test_is_and_kid_equal_one_process_and_fid_to_its_conditioning(ranks, request, one_process):
    results = request.getfixturevalue(ranks)
    expected = one_process["results"]
    for rank in results:
        for key in ("fid", "is_mean", "is_std", "kid", "kid_std"):
            assert rank[key] == results[0][key], key
    for key in ("is_mean", "is_std", "kid", "kid_std"):
        assert results[0][key] == pytest.approx(expected[key], rel=1e-12), key
    # 15 and 7 images of 64 dims: singular covariances, whose trace square root turns 1e-16
    # differences of the statistics into ~1e-9 of FID (the statistics are checked above).
    assert results[0]["fid"] == pytest.approx(expected["fid"], rel=1e-6)


@pytest.mark.parametrize("ranks", ["two_ranks", "three_ranks"])
def test_the_bootstrap_interval_does_not_depend_on_the_rank_count(ranks, request, one_process):
    """Each image's Poisson weights are keyed by its global position, and the feature banks are
    gathered in image order: every replicate resamples the same images whatever the rank count.
    FID's ends mirror the quantiles about FID itself (basic interval), so they carry its ~1e-9
    conditioning (see above); IS's to 1e-12."""
    results = request.getfixturevalue(ranks)
    expected = one_process["results"]
    keys = [key for key in expected if key.startswith("interval_") and "vendi" not in key]
    assert sorted(keys) == [f"interval_{name}_ci_{end}" for name in ("fid", "is_mean") for end in ("high", "low")]
    for rank in results:
        for key in keys:
            assert rank[key] == results[0][key], key
    for key in keys:
        assert results[0][key] == pytest.approx(expected[key], rel=1e-6 if "fid" in key else 1e-12), key
    assert expected["interval_fid_ci_low"] < expected["interval_fid_ci_high"]


@pytest.mark.parametrize("ranks", ["two_ranks", "three_ranks"])
def test_vendi_and_its_interval_are_the_same_bits_as_in_one_process(ranks, request, one_process):
    """Its reducer's state is exact (an integer sum over images) and the spectrum is solved on
    one thread: the score is the same bits for any rank count; the interval's replicates are
    computed from the feature bank gathered in image order."""
    results = request.getfixturevalue(ranks)
    expected = one_process["results"]
    for key in ("vendi", "interval_vendi_ci_low", "interval_vendi_ci_high"):
        assert [rank[key] for rank in results] == [expected[key]] * len(results), key
    assert 1 < expected["vendi"] < 7  # 7 generated images


def test_a_generator_source_gives_the_same_statistics_for_1_and_2_ranks_and_any_generator_batch(two_ranks, one_process):
    expected = one_process["results"]
    for name in ("generator16", "generator50"):
        for key in ("mu", "sigma"):
            assert relative(expected[f"{name}_{key}"], expected[f"generator16_{key}"]) <= 1e-12
            for rank in two_ranks:
                assert relative(rank[f"{name}_{key}"], expected[f"generator16_{key}"]) <= 1e-12
    assert relative(expected["generator16_mu"], expected["mu"]) > 1e-3  # not the folder's statistics


def test_generative_metrics_in_a_users_process_group_merges_every_ranks_images(two_ranks, one_process):
    expected = one_process["results"]
    for rank in two_ranks:
        assert int(rank["tracker_n"]) == len(tracker_images())
        for key in ("tracker_fid", "tracker_is_mean", "tracker_is_std"):
            assert rank[key] == two_ranks[0][key]
    # Rank r's i-th image is image i*2 + r: the one-process order, so IS splits match too. The
    # ranks pass other batches through the network (images 0, 2, 4, 6 together, not 0 to 6), and
    # the float32 matrix product of the 1008 logits may round by batch size (seen on an AMD EPYC
    # with AVX-512: 1.3e-5 of 24, 5e-7 relative; pool features bit-identical): the IS of each
    # split (about 1.9) to ~1e-6, so the mean and the spread of the two to 1e-5.
    for key in ("tracker_is_mean", "tracker_is_std"):
        assert two_ranks[0][key] == pytest.approx(expected[key], abs=1e-5)
    assert two_ranks[0]["tracker_fid"] == pytest.approx(expected["tracker_fid"], rel=1e-6)


def test_only_rank_0_prints_and_writes_and_leaves_what_one_process_leaves(two_ranks, one_process, data):
    out = data["root"] / "two-ranks"
    cli = [json.loads((out / f"cli-rank{rank}.json").read_text()) for rank in range(2)]
    assert [result["exit_code"] for result in cli] == [0, 0]
    assert len(cli[0]["stdout"].splitlines()) == 1 and json.loads(cli[0]["stdout"])["n"] == 15
    assert cli[1]["stdout"] == "" and cli[1]["stderr"] == ""  # warnings too are rank 0's
    alone = one_process["out"]
    for folder in ("written", "cache"):
        listing = sorted(str(p.relative_to(out / folder)) for p in (out / folder).rglob("*"))
        assert listing == sorted(str(p.relative_to(alone / folder)) for p in (alone / folder).rglob("*")), folder
    assert len(list((out / "cache").rglob("*.npz"))) == 1
    with np.load(out / "written" / "a.npz") as ranked, np.load(alone / "written" / "a.npz") as single:
        assert relative(ranked["sigma"], single["sigma"]) <= 1e-12 and int(ranked["n"]) == 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_bad_image_on_rank_1_stops_every_rank_with_the_same_line_and_exit_2(data, weights_file, tmp_path):
    port, output = free_port(), tmp_path / "c.npz"
    command = [sys.executable, "-m", "ganmetrics", "stats", str(data["corrupt"]), "-o", str(output), "--weights",
               str(weights_file), "--dims", "64", "--workers", "0", "--batch-size", str(BATCH), "--quiet"]
    started = time.monotonic()
    # The variables torchrun sets: each process is on its own here, so each exit code is its own.
    ranks = [subprocess.Popen(command, env=environment(tmp_path / "cache", RANK=str(rank), LOCAL_RANK=str(rank),
                                                       WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                                       MASTER_PORT=str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    try:
        finished = [process.communicate(timeout=LAUNCH_TIMEOUT_S) for process in ranks]
    finally:
        for process in ranks:
            process.kill()
    elapsed = time.monotonic() - started
    assert [process.returncode for process in ranks] == [2, 2], finished
    errors = [[line for line in stderr.splitlines() if "error" in line] for _, stderr in finished]
    assert errors[0] == errors[1] and len(errors[0]) == 1, finished
    assert errors[0][0].startswith("ganmetrics: error: cannot decode image") and "0009.png" in errors[0][0]
    assert "Traceback" not in finished[0][1] + finished[1][1]
    assert not output.exists() and not any(tmp_path.glob(".c.npz*"))
    # Start-up included, on a loaded 2-core machine: far below the collective timeout a hang would take.
    assert elapsed < 60 < COLLECTIVE_TIMEOUT.total_seconds() / 10
