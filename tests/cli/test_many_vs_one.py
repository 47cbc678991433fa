"""Many-vs-one: `ganmetrics fid REF FAKE1 FAKE2 ...` computes the reference once, gives the same
values as separate runs, prints a table (or a JSON list) and gates each fake."""

import json
import zipfile

import pytest

from helpers import counted_decodes, run_cli, smooth_images, write_images

N = 8


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    close = write_images(root / "close", smooth_images(N, (32, 32), seed=22, offset=0.05))
    with zipfile.ZipFile(root / "far.zip", "w") as archive:
        for path in sorted(write_images(root / "far", smooth_images(N, (32, 32), seed=23, offset=0.3)).iterdir()):
            archive.write(path, path.name)
    return {"ref": write_images(root / "ref", smooth_images(N, (32, 32), seed=21)),
            "close": close, "far": root / "far", "far.zip": root / "far.zip"}


def run_uncached(*args):
    """(result, images decoded) of `ganmetrics ARGS` with the fast options, uncached."""
    with counted_decodes() as decoded:
        result = run_cli(*args, "--no-cache")
    return result, decoded[0]


@pytest.fixture(scope="module")
def separate(sets) -> dict:
    """`fid ref close` and `fid ref far` as separate runs, by fake."""
    rows = {}
    for fake in ("close", "far"):
        result, _ = run_uncached("fid", sets["ref"], sets[fake], "--json")
        assert result.exit_code == 0, result.output
        rows[fake] = json.loads(result.stdout)
    return rows


def test_many_vs_one_equals_separate_runs_and_reads_the_reference_once(sets, separate):
    gate = min(separate["close"]["value"], separate["far"]["value"]) / 2  # both fakes cross it
    result, decoded = run_uncached("fid", sets["ref"], sets["close"], sets["far.zip"], "--json", "--fail-above", gate)
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.stderr.splitlines() if "--fail-above" in line]
    assert str(sets["close"]) in line and str(sets["far.zip"]) in line
    assert decoded == 3 * N  # the reference once, then each fake
    rows = json.loads(result.stdout)
    assert [row["source_b"] for row in rows] == [str(sets["close"]), str(sets["far.zip"])]
    for row, fake in zip(rows, ("close", "far")):
        assert row["value"] == separate[fake]["value"]  # a zip of the same images: bit-identical
        assert {k: v for k, v in row.items() if k != "source_b"} == \
            {k: v for k, v in separate[fake].items() if k != "source_b"}
    assert separate["close"]["value"] < separate["far"]["value"]


def test_table_for_humans_and_gating_applies_to_each_fake(sets, separate):
    close, far = separate["close"]["value"], separate["far"]["value"]
    result, _ = run_uncached("fid", sets["ref"], sets["close"], sets["far"], "--fail-above", (close + far) / 2)
    assert result.exit_code == 1
    header, *rows, footer = result.stdout.splitlines()
    assert header.split() == ["SOURCE_B", "FID", "n_b"]
    assert [row.split() for row in rows] == [[str(sets["close"]), f"{close:.6f}", str(N)],
                                             [str(sets["far"]), f"{far:.6f}", str(N)]]
    assert len({len(line) for line in (header, *rows)}) == 1  # aligned columns
    assert footer.startswith(f"against {sets['ref']} (n_a={N}, dims=64, resize=tf)")
    (line,) = [line for line in result.stderr.splitlines() if "--fail-above" in line]
    assert str(sets["far"]) in line and str(sets["close"]) not in line and f"{far:.4f}" in line
