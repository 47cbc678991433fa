"""Memorisation checks against a brute-force replay (the full distance matrix in NumPy float64)
and against dgm-eval's own ``compute_authpct`` (golden values: ``tests/golden/README.md``); the
``memorisation`` metric through ``eval`` finds copies of reference images among generated ones
and names them in ``--nearest K FILE.csv`` and the HTML report; its bad inputs are one line,
exit 2, nothing written."""

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import cached_values, counted_decodes, cpu_extractor, features_of, one_line_error, run_cli, \
    smooth_images, write_images
from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.memorisation import NEAREST, closest_pairs, memorisation, nearest_references, reference_gaps

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "memorisation_authpct.npz"
EXACT_COPIES = {5: 3, 12: 17}  # generated row: the reference row it copies
NEAR_COPIES = {20: 41, 33: 55}

pytestmark = pytest.mark.usefixtures("one_thread")
CLI_COPIES = {1: 3, 3: 7}  # generated image: the reference image it is a copy of (through the command line)
CLI_NEAR = {5: 10}


def memorisation_sets(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference float32 (60, 32), generated float32 (40, 32)) with exact and near copies of
    reference rows among the generated ones; the inputs of the golden values."""
    rng = np.random.RandomState(seed)
    reference = rng.randn(60, 32).astype(np.float32)
    generated = rng.randn(40, 32).astype(np.float32)
    generated[[5, 12]] = reference[[3, 17]]
    generated[[20, 33]] = reference[[41, 55]] + (0.05 * rng.randn(2, 32)).astype(np.float32)
    return reference, generated


def brute_force(reference: np.ndarray, generated: np.ndarray):
    """dgm-eval's procedure replayed on full float64 distance matrices: (nearest reference
    index (M,), d1 (M,), d2 (N,), authpct, fraction with d1 < d2 of the matched reference)."""
    ref, gen = reference.astype(np.float64), generated.astype(np.float64)
    real = np.sqrt(((ref[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(real, np.inf)
    to_generated = np.sqrt(((ref[:, None, :] - gen[None, :, :]) ** 2).sum(-1))  # reference rows, as dgm-eval
    nearest, d1, d2 = to_generated.argmin(axis=0), to_generated.min(axis=0), real.min(axis=0)
    return nearest, d1, d2, 100 * np.mean(d2[nearest] < d1), np.mean(d1 < d2[nearest])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("block", [10_000, 7])
def test_memorisation_equals_a_brute_force_replay_in_any_block_size(seed, block):
    reference, generated = memorisation_sets(seed)
    result = memorisation(generated, reference, block=block)
    nearest, d1, d2, authpct, closer = brute_force(reference, generated)
    assert np.array_equal(result.nearest, nearest)
    # float32 |x|² - 2xᵀy + |y|² (torch.cdist, as dgm-eval) loses up to about sqrt(ε(|x|² + |y|²))
    # to cancellation: an exact copy is 0.003 away here, not 0.
    cancellation = np.sqrt(8 * np.finfo(np.float32).eps * np.square(reference).sum(axis=1).max())
    np.testing.assert_allclose(result.distance, d1, rtol=1e-5, atol=cancellation)
    np.testing.assert_allclose(result.gaps, d2, rtol=1e-5, atol=cancellation)
    assert result.authpct == pytest.approx(authpct, abs=1e-4) and result.closer_fraction == closer


@pytest.mark.parametrize("seed", [0, 1])
def test_authpct_equals_dgm_evals_compute_authpct(seed):
    reference, generated = memorisation_sets(seed)
    assert memorisation(generated, reference).authpct == np.load(GOLDEN)[f"authpct_seed{seed}"]


def test_exact_and_near_copies_are_the_closest_pairs_and_pull_authpct_below_100():
    reference, generated = memorisation_sets(0)
    result = memorisation(generated, reference)
    pairs = closest_pairs(result.nearest, result.distance, 6)
    copies = {**EXACT_COPIES, **NEAR_COPIES}
    assert {(g, r) for g, r, _ in pairs[:4]} == set(copies.items())
    assert {g for g, _, _ in pairs[:2]} == set(EXACT_COPIES)  # exact copies first
    assert [d for _, _, d in pairs] == sorted(d for _, _, d in pairs)
    assert all(pairs[4][2] > 10 * d for _, _, d in pairs[:4])
    assert result.authpct < 100 and result.closer_fraction >= len(copies) / len(generated)
    for g in copies:  # a copy is never authentic, and is closer than its reference's own neighbour
        assert result.distance[g] < result.gaps[result.nearest[g]]


def test_closest_pairs_stop_at_the_generated_count():
    reference, generated = memorisation_sets(1)
    nearest, distance = nearest_references(generated, reference)
    assert len(closest_pairs(nearest, distance, 1000)) == len(generated)


def test_reference_gaps_skip_each_images_own_distance_but_not_a_duplicates():
    reference = np.float32([[0, 0], [3, 4], [3, 4], [10, 0]])
    np.testing.assert_allclose(reference_gaps(reference), [5, 0, 0, np.hypot(7, 4)], atol=1e-6)
    np.testing.assert_allclose(reference_gaps(reference, block=3), [5, 0, 0, np.hypot(7, 4)], atol=1e-6)


def test_too_few_reference_or_generated_images_are_refused_in_one_line():
    reference, generated = memorisation_sets(0)
    with pytest.raises(GanMetricsError, match="at least 2 reference images .*, got 1"):
        memorisation(generated, reference[:1])
    with pytest.raises(GanMetricsError, match="at least 1 generated image"):
        memorisation(generated[:0], reference)


@pytest.fixture(scope="module")
def copied_sets(tmp_path_factory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """(reference folder, generated folder, their images): 12 reference images; 6 generated
    ones of another distribution among which two exact copies of reference images and one
    near copy (every pixel moved by up to 2 levels)."""
    root = tmp_path_factory.mktemp("memorisation")
    reference = smooth_images(12, (32, 32), seed=71)
    generated = smooth_images(6, (32, 32), seed=72, offset=0.1)
    for g, r in CLI_COPIES.items():
        generated[g] = reference[r]
    noise = np.random.default_rng(73).integers(-2, 3, reference[0].shape)
    for g, r in CLI_NEAR.items():
        generated[g] = (reference[r] + noise).clip(0, 255).astype(np.uint8)
    return write_images(root / "a", reference), write_images(root / "b", generated), reference, generated


def pairs_of(path: Path) -> list[tuple[str, str, float]]:
    with open(path, newline="") as file:
        header, *rows = csv.reader(file)
    assert header == ["generated", "reference", "distance"]
    return [(generated, reference, float(distance)) for generated, reference, distance in rows]


def test_eval_finds_the_copies_names_them_first_in_the_csv_and_equals_a_brute_force_replay(copied_sets, tmp_path):
    a, b, reference, generated = copied_sets
    result = run_cli("eval", a, b, "--metrics", "memorisation", "--nearest", 4, tmp_path / "pairs.csv", "--json",
                     "--no-cache")
    assert result.exit_code == 0, result.output
    pairs = pairs_of(tmp_path / "pairs.csv")
    copies = {**CLI_COPIES, **CLI_NEAR}
    assert {(g, r) for g, r, _ in pairs[:3]} == {(str(b / f"{g:04d}.png"), str(a / f"{r:04d}.png"))
                                                for g, r in copies.items()}
    assert {g for g, _, _ in pairs[:2]} == {str(b / f"{g:04d}.png") for g in CLI_COPIES}  # exact copies first
    assert len(pairs) == 4 and pairs[1][2] < pairs[3][2] / 10 and pairs[2][2] < pairs[3][2]
    # The replay, on the same network's pool3 features of the same images.
    extractor = cpu_extractor()
    ref, gen = (features_of(extractor, list(images), ("2048",))["2048"].numpy() for images in (reference, generated))
    nearest, d1, _, authpct, closer = brute_force(ref, gen)
    values = json.loads(result.stdout)
    results, listed = values["results"], values["details"]["memorisation_pairs"]
    assert results["authpct"] == pytest.approx(authpct, abs=1e-4) and results["authpct"] < 100
    assert results["closer_fraction"] == closer and closer >= len(copies) / len(generated)
    order = np.argsort(d1, kind="stable")[:4]
    assert [pair[:2] for pair in listed] == [[int(i), int(nearest[i])] for i in order]
    cancellation = np.sqrt(8 * np.finfo(np.float32).eps * np.square(ref).sum(axis=1).max())  # as above
    np.testing.assert_allclose([pair[2] for pair in listed], d1[order], rtol=1e-5, atol=cancellation)
    assert [np.float32(d) for _, _, d in pairs] == [np.float32(d) for _, _, d in listed]  # float32 digits


def test_the_reference_gaps_are_cached_with_the_reference(copied_sets, tmp_path, monkeypatch):
    a, b, _, generated = copied_sets
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    first = run_cli("eval", a, b, "--metrics", "memorisation", "--json")
    with counted_decodes() as decoded:
        second = run_cli("eval", a, b, "--metrics", "memorisation", "--json")
    assert first.exit_code == second.exit_code == 0 and first.stdout == second.stdout
    assert decoded[0] == len(generated)  # the reference's bank and gaps come from the cache
    (gaps,) = cached_values(tmp_path / "cache" / "stats", "reference_gaps").values()
    assert gaps["gaps"].shape == (12,) and gaps["gaps"].dtype == np.float32


def test_a_statistics_file_as_the_reference_names_its_bank_rows_by_index(copied_sets, tmp_path):
    a, b, _, _ = copied_sets
    stats = tmp_path / "ref.npz"
    assert run_cli("stats", a, "--metrics", "fid,memorisation", "-o", stats, "--no-cache").exit_code == 0
    result = run_cli("eval", stats, b, "--metrics", "memorisation", "--nearest", 2, tmp_path / "pairs.csv", "--no-cache")
    assert result.exit_code == 0, result.output
    assert {(g, r) for g, r, _ in pairs_of(tmp_path / "pairs.csv")} == {
        (str(b / f"{g:04d}.png"), f"{stats}[{r}]") for g, r in CLI_COPIES.items()}


def test_with_several_generated_sets_the_csv_holds_the_k_closest_pairs_of_them_all(copied_sets, tmp_path):
    a, b, _, _ = copied_sets
    again = tmp_path / "again"
    again.symlink_to(b, target_is_directory=True)  # the same images under another name
    result = run_cli("eval", a, b, again, "--metrics", "memorisation", "--nearest", 3, tmp_path / "pairs.csv",
                     "--no-cache", "--json")
    assert result.exit_code == 0, result.output
    # Every side's own 3 pairs merged, closest first; on equal distances in the order of the sides.
    merged = sorted(((distance, side, generated, reference) for side, row in enumerate(json.loads(result.stdout))
                     for generated, reference, distance in row["details"]["memorisation_pairs"]),
                    key=lambda pair: pair[0])[:3]
    assert [(g, r, np.float32(d)) for g, r, d in pairs_of(tmp_path / "pairs.csv")] == [
        (str((b, again)[side] / f"{generated:04d}.png"), str(a / f"{reference:04d}.png"), np.float32(distance))
        for distance, side, generated, reference in merged]
    assert {generated for _, _, generated, _ in merged} <= set(CLI_COPIES)  # copies, found in both sets


@pytest.mark.parametrize("nearest, expected", [
    (("0", "OUT/pairs.csv"), "--nearest takes a positive number of pairs, got 0"),
    (("-3", "OUT/pairs.csv"), "--nearest takes a positive number of pairs, got -3"),
    (("5", "OUT/missing/pairs.csv"), "does not exist"),
    (("5", "OUT/pairs.txt"), "CSV files end in .csv"),
    (("5", "LOCKED/pairs.csv"), "is not writable"),
])
def test_bad_nearest_requests_are_one_line_errors_and_write_nothing(copied_sets, tmp_path, monkeypatch, nearest,
                                                                    expected):
    a, b, _, _ = copied_sets
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and access(path, mode))
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    k, path = nearest[0], nearest[1].replace("OUT", str(tmp_path / "out")).replace("LOCKED", str(locked))
    (tmp_path / "out").mkdir()
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("eval", a, b, "--metrics", "memorisation", "--nearest", k, path))
    assert expected in message
    assert decoded[0] == 0 and not (tmp_path / "cache").exists()
    assert not any((tmp_path / "out").iterdir()) and not any(locked.iterdir())


@pytest.mark.parametrize("metrics, expected", [
    ("fid", "requested: none"),
    ("memorisation,memorisation@vgg16", "requested: memorisation, memorisation@vgg16"),
])
def test_nearest_lists_the_pairs_of_exactly_one_memorisation_metric(copied_sets, tmp_path, metrics, expected):
    a, b, _, _ = copied_sets
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("eval", a, b, "--metrics", metrics, "--nearest", 2, tmp_path / "pairs.csv",
                                         "--no-cache"))
    assert expected in message and decoded[0] == 0 and not (tmp_path / "pairs.csv").exists()


def test_a_reference_of_one_image_is_refused_in_one_line(copied_sets, tmp_path):
    a, b, reference, _ = copied_sets
    single = write_images(tmp_path / "single", reference[:1])
    message = one_line_error(run_cli("eval", single, b, "--metrics", "memorisation", "--no-cache"))
    assert "has 1 image" in message and "at least 2" in message


def pairs_on_page(page: Path) -> list[tuple[str, ...]]:
    """The titles of the images of each pair the report shows (generated, reference), in order."""
    blocks = re.findall(r'<div class="pair">(.*?)</div>', page.read_text(), re.S)
    return [tuple(re.findall(r'<img [^>]*title="([^"]*)"', block)) for block in blocks]


def test_the_report_shows_the_closest_pairs_with_their_images(copied_sets, tmp_path):
    a, b, _, generated = copied_sets
    page = tmp_path / "page.html"
    result = run_cli("eval", a, b, "--metrics", "memorisation", "--report", page, "--json", "--no-cache")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["details"]["memorisation_pairs"]
    assert len(listed) == min(NEAREST, len(generated))  # by default: as many as the page shows
    shown = pairs_on_page(page)
    assert shown == [(f"#{g} {g:04d}.png", f"#{r} {r:04d}.png") for g, r, _ in listed]
    copies = {**CLI_COPIES, **CLI_NEAR}
    assert set(shown[:3]) == {(f"#{g} {g:04d}.png", f"#{r} {r:04d}.png") for g, r in copies.items()}
    assert "the 6 closest of 6, closest first, distances in the features of inception" in page.read_text()


def test_nearest_is_refused_beside_per_class_which_gives_each_class_its_own_pairs(copied_sets, tmp_path):
    _, _, reference, generated = copied_sets
    for side, images in (("a", reference), ("b", generated)):  # each side's first half is cat, its second dog
        half = len(images) // 2
        write_images(tmp_path / side / "cat", images[:half])
        write_images(tmp_path / side / "dog", images[half:])
    a, b = tmp_path / "a", tmp_path / "b"
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("eval", a, b, "--metrics", "memorisation", "--per-class", "--nearest", 2,
                                         tmp_path / "pairs.csv", "--no-cache"))
    assert "--nearest" in message and "--per-class" in message and "drop one of them" in message
    assert decoded[0] == 0 and not (tmp_path / "pairs.csv").exists()
    result = run_cli("eval", a, b, "--metrics", "memorisation", "--per-class", "--json", "--no-cache")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert {"authpct/cat", "authpct/dog", "closer_fraction/cat", "closer_fraction/dog"} <= set(row["results"])
    # The exact copies, each the closest of its class, by their indices within the class.
    assert row["details"]["memorisation_pairs/cat"][0][:2] == [1, 3]  # generated 1, reference 3
    assert row["details"]["memorisation_pairs/dog"][0][:2] == [0, 1]  # generated 3, reference 7
