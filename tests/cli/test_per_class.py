"""`eval --per-class` and `stats --per-class`: every metric on each class of folders in the
ImageFolder layout, equal to runs on the class folders themselves, `intra_fid` the mean of the
classes' FIDs (with `--ci`, of their FIDs on each bootstrap replicate, whose weights draw each
image of a side once across the classes), per-class statistics files that give the folder run's
numbers, and one-line errors before any work."""

import json

import numpy as np
import pytest

from helpers import counted_decodes, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.api import EvalResult
from ganmetrics.cli.render import echo_classes
from ganmetrics.evaluation import classes as classes_module
from ganmetrics.evaluation import intervals, run
from ganmetrics.evaluation.intervals import interval_of, intervals_of
from ganmetrics.metrics.resampling import GENERATED, REFERENCE, poisson_weights
from ganmetrics.provenance import Provenance
from ganmetrics.store.statsfile import Statistics, save_statistics

pytestmark = pytest.mark.filterwarnings("ignore:only . images for 64-dim features")  # few images a class: expected
CLASSES = {"cat": 8, "dog": 9, "owl": 10}
N = sum(CLASSES.values())
KID = ("--kid-subsets", "3", "--kid-subset-size", "9", "--kid-shrink")  # cat has 8 images: shrunk to 8 there


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(real, fake): folders with one subfolder of 32x32 PNGs a class, fake's shifted."""
    root = tmp_path_factory.mktemp("per-class")
    for side, shift in (("real", 0.0), ("fake", 0.2)):
        for k, (name, n) in enumerate(CLASSES.items()):
            write_images(root / side / name, smooth_images(n, (32, 32), seed=60 + 10 * k + (side == "fake"),
                                                           offset=shift + 0.1 * k))
    return root / "real", root / "fake"


@pytest.fixture(scope="module")
def options(weights_file):
    return "--weights", str(weights_file), "--dims", "64", "--quiet", "--workers", "0"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A statistics cache of this module's own, empty at its start."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("per-class-cache")
        patch.setenv("GANMETRICS_CACHE_DIR", str(folder))
        yield folder / "stats"


def run_json(*args, options):
    result = run_cli(*args, "--json", options=options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def per_class_run(folders, options, cache_dir):
    """`eval real fake --per-class --metrics fid,kid` into an empty cache, and the images it decoded."""
    real, fake = folders
    with counted_decodes() as decoded:
        row = run_json("eval", real, fake, "--per-class", "--metrics", "fid,kid", *KID, options=options)
    return row, decoded[0]


def test_each_class_gives_what_a_run_on_its_folders_gives_and_intra_fid_is_the_mean_of_their_fids(
        folders, options, per_class_run):
    real, fake = folders
    row, decoded = per_class_run
    assert decoded == 2 * N  # every image once
    assert (row["n_a"], row["n_b"]) == (N, N)
    assert row["classes"] == {name: {"n_a": n, "n_b": n} for name, n in CLASSES.items()}
    assert list(row["results"]) == [f"{key}/{name}" for name in CLASSES for key in ("fid", "kid", "kid_std")] + \
        ["intra_fid"]
    fids = []
    for name, n in CLASSES.items():
        with counted_decodes() as decoded:
            alone = run_json("eval", real / name, fake / name, "--metrics", "fid,kid", *KID, options=options)
        assert decoded[0] == n  # the reference class's statistics: from the cache the per-class run filled
        assert {key: row["results"][f"{key}/{name}"] for key in alone["results"]} == alone["results"]
        assert alone["settings"]["kid_subset_size"] == row["settings"].get("kid_subset_size/" + name)
        fids.append(alone["results"]["fid"])
    assert row["results"]["intra_fid"] == pytest.approx(np.mean(fids), rel=1e-12, abs=0)
    # Settings once, but the one that differs between classes (KID's shrunk subset size) per class.
    assert row["settings"]["resize"] == "tf" and row["settings"]["kid_subsets"] == 3
    assert [row["settings"][f"kid_subset_size/{name}"] for name in CLASSES] == [8, 9, 9]
    assert "kid_subset_size" not in row["settings"]


@pytest.fixture(scope="module")
def statistics_file(folders, options, tmp_path_factory):
    """`stats real --per-class --features --metrics fid,kid`: its path and what it printed."""
    path = tmp_path_factory.mktemp("per-class-stats") / "ref.npz"
    written = run_json("stats", folders[0], "--per-class", "--features", "--metrics", "fid,kid", "-o", path,
                       options=options)
    return path, written


def test_per_class_statistics_round_trip_through_a_file_and_give_the_folder_run(folders, options, per_class_run,
                                                                                 statistics_file):
    row, _ = per_class_run
    path, written = statistics_file
    assert written["classes"] == CLASSES and written["n"] == N
    info = run_json("stats", "--info", path, options=())
    assert (info["classes"], info["dims"], info["features"]) == (CLASSES, 64, True)
    arrays = np.load(path)
    assert json.loads(str(arrays["meta"]))["classes"] == list(CLASSES)
    assert {name.split("/")[0] for name in arrays.files if name != "meta"} == set(CLASSES)  # nothing of the whole set
    with counted_decodes() as decoded:
        from_file = run_json("eval", path, folders[1], "--per-class", "--metrics", "fid,kid", *KID, options=options)
    assert decoded[0] == N  # the generated side alone
    assert from_file["results"] == row["results"]
    assert (from_file["classes"], from_file["settings"]) == (row["classes"], row["settings"])


@pytest.fixture(scope="module")
def interval_run(folders, options):
    """`eval real fake --per-class --metrics fid --ci 20`, recording the bootstrap values that each
    interval is made of (in order: each class's, then intra_fid's) and the image numbers each
    side's weights were drawn for ({stream: [positions]})."""
    made_of, positions = [], {REFERENCE: set(), GENERATED: set()}

    def recording_intervals_of(draws, values, interval):
        made_of.append({key: np.array(draw) for key, draw in draws.items()})
        return intervals_of(draws, values, interval)

    def recording_weights(seed, stream, replicates, at):
        positions[stream].add(tuple(int(p) for p in at))
        return poisson_weights(seed, stream, replicates, at)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "intervals_of", recording_intervals_of)
        patch.setattr(classes_module, "intervals_of", recording_intervals_of)
        patch.setattr(intervals, "poisson_weights", recording_weights)
        row = run_json("eval", *folders, "--per-class", "--metrics", "fid", "--ci", "20", options=options)
    return row, made_of, positions


def test_the_intra_fid_interval_is_made_of_the_mean_of_the_classes_fids_on_each_replicate(interval_run):
    row, made_of, positions = interval_run
    results = row["results"]
    *each_class, intra = made_of
    assert [list(draws) for draws in each_class] == [["fid"]] * len(CLASSES) and list(intra) == ["intra_fid"]
    assert np.array_equal(intra["intra_fid"], np.mean([draws["fid"] for draws in each_class], axis=0))
    assert (results["intra_fid_ci_low"], results["intra_fid_ci_high"]) == \
        interval_of(intra["intra_fid"], results["intra_fid"], 0.95, "basic")
    for draws, name in zip(each_class, CLASSES):
        assert (results[f"fid_ci_low/{name}"], results[f"fid_ci_high/{name}"]) == \
            interval_of(draws["fid"], results[f"fid/{name}"], 0.95, "basic")
    assert results[f"fid_ci_low/cat"] < results["fid/cat"] < results["fid_ci_high/cat"]
    # Each side's images are numbered across the classes: every image has a weight of its own.
    ends = np.cumsum([0, *CLASSES.values()])
    numbered = sorted(tuple(range(start, stop)) for start, stop in zip(ends[:-1], ends[1:]))
    assert sorted(positions[REFERENCE]) == numbered and sorted(positions[GENERATED]) == numbered
    assert row["settings"]["ci"] == 20 and row["settings"]["ci_reference_resampled"] is True


def test_a_per_class_file_with_features_gives_the_folder_runs_intervals(folders, options, statistics_file,
                                                                       interval_run):
    row, _, _ = interval_run
    from_file = run_json("eval", statistics_file[0], folders[1], "--per-class", "--metrics", "fid", "--ci", "20",
                         options=options)
    assert from_file["results"] == row["results"]
    assert from_file["settings"]["ci_reference_resampled"] is True


def test_gates_read_the_classes_and_intra_fid(folders, options, per_class_run):
    row, _ = per_class_run
    results = row["results"]
    below = results["intra_fid"] * 0.99
    gated = run_cli("eval", *folders, "--per-class", "--metrics", "fid", "--fail-above",
                    f"intra_fid={below},fid/owl={results['fid/owl'] * 2}", options=options)
    assert one_line_error(gated, code=1) == \
        f"ganmetrics: threshold crossed: {folders[1]}: intra_fid {results['intra_fid']:.4f} > {below:g}"
    assert "\nowl " in gated.stdout and "\nintra_fid: " in gated.stdout  # the table printed before the gate


def test_the_text_output_is_a_row_a_class_then_intra_fid(capsys):
    result = EvalResult("real", "fake", 3, 4, {"fid/a": 1.5, "kid/a": 0.25, "fid/b": 2.5, "kid/b": 0.5, "intra_fid": 2.0},
                        {"dims": 64}, Provenance(()), classes={"a": {"n_a": 1, "n_b": 2}, "b": {"n_a": 2, "n_b": 2}})
    echo_classes([result])
    assert capsys.readouterr().out.splitlines() == [
        "CLASS  n_a  n_b       fid       kid",
        "a        1    2  1.500000  0.250000",
        "b        2    2  2.500000  0.500000",
        "intra_fid: 2.000000",
        "against real (n_a=3, n_b=4; dims=64)",
    ]


def _layout(root, classes: dict, loose: int):
    """A folder with ``classes`` ({name: image count}) as subfolders and ``loose`` images beside them."""
    root.mkdir()
    for name, count in classes.items():
        write_images(root / name, smooth_images(count, (16, 16), seed=count))
    write_images(root, smooth_images(loose, (16, 16), seed=1))
    return root


@pytest.mark.parametrize("fake, message", [
    ({"cat": 2, "owl": 2, "emu": 2, "yak": 2}, "the classes of {real} and {fake} differ ({fake} lacks dog; {real} lacks "
                                               "emu, yak): give every side the same class subfolders"),
    ({"cat": 2, "dog": 0, "owl": 2}, "the class dog ({fake}/dog) holds no images: add its images, or remove its folder"),
    ({}, "{fake} has no class subfolders (3 images lie in it directly): put each class's images in a subfolder"),
    ({"cat": 2, "dog": 2, "owl": 2, "loose": 3}, "{fake}/0000.png is in no class (3 images lie in {fake} itself)"),
])
def test_sides_that_are_not_alike_class_folders_are_one_line_errors_before_any_work(folders, options, tmp_path,
                                                                                    monkeypatch, fake, message):
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    fake = dict(fake)
    side = _layout(tmp_path / "fake", fake, fake.pop("loose", 0 if fake else 3))
    with counted_decodes() as decoded:
        result = run_cli("eval", folders[0], side, "--per-class", "--metrics", "fid", options=options)
    assert message.format(real=folders[0], fake=side) in one_line_error(result)
    assert decoded[0] == 0 and result.stdout == "" and not (tmp_path / "cache").exists()


def test_other_per_class_requests_are_one_line_errors_and_write_nothing(folders, options, statistics_file, tmp_path):
    real, fake = folders
    whole = tmp_path / "whole.npz"
    save_statistics(whole, Statistics(np.zeros(64), np.eye(64), 10, None))
    flat = write_images(tmp_path / "flat", smooth_images(3, (16, 16), seed=2))
    out = tmp_path / "out.npz"
    cases = [
        (("eval", statistics_file[0], fake, "--metrics", "fid"),
         f"{statistics_file[0]} holds per-class statistics (cat, dog, owl), none of the whole set: add --per-class"),
        (("stats", flat, "--per-class", "-o", out), f"--per-class: {flat} has no class subfolders (3 images lie in it "
                                                    "directly)"),
        (("stats", real, "--per-class", "--shard", "0/2", "-o", out), "--per-class and --shard do not go together"),
        (("stats", real, "--per-class", "--format", "adm", "-o", out), "--per-class and --format adm do not go together"),
        (("eval", real, fake, "--per-class", "--plot", tmp_path / "p.png"), "--plot draws results of whole sets"),
        (("eval", real, fake, "--per-class", "--metrics", "fid", "--fail-above", "fid=30"),
         "--fail-above fid=...: 'fid' is not a requested result; use one of fid/cat, fid/dog, fid/owl, intra_fid"),
        (("eval", real, fake, "--per-class", "--metrics", "fid", "--fail-above-ci", "fid/emu=3", "--ci", "5"),
         "'fid/emu' is not a requested result; use one of fid/cat, fid/dog, fid/owl, intra_fid"),
        (("eval", real, fake, "--per-class", "--metrics", "kid", "--kid-subset-size", "9"),
         "KID needs at least --kid-subset-size 9 images on each side, got 8"),
        (("eval", whole, fake, "--per-class"),
         f"--per-class: {whole} holds the statistics of one set of images, not per class: write them with `ganmetrics "
         "stats FOLDER --per-class`"),
    ]
    for args, message in cases:
        with counted_decodes() as decoded:
            result = run_cli(*args, options=options)
        assert message in one_line_error(result), args
        assert decoded[0] == 0 and result.stdout == "" and not out.exists() and not (tmp_path / "p.png").exists()
