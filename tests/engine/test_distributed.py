"""engine/distributed.py without the network: spans, the generic merge of reducer states, and
two real gloo processes exchanging, stepping in lock step and merging (bit-identical on both
ranks, equal to one process), and failing together with one rank's message."""

import multiprocessing

import numpy as np
import pytest
import torch

from ganmetrics.engine import distributed
from ganmetrics.engine.distributed import AgreedError, ShardSpec, merge_states, restorer, span
from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.density_coverage import CoverageCounts
from ganmetrics.metrics.neighbours import knn_radii
from ganmetrics.metrics.reducers import FeatureBank, GaussianStats, SplitSums

N, DIMS, SPLITS, BATCH = 37, 6, 4, 5


@pytest.mark.parametrize("count, batch_size, parts", [(37, 5, 2), (37, 5, 3), (10, 5, 3), (3, 4, 2), (100, 7, 8)])
def test_spans_tile_the_images_in_whole_batches_never_twice(count, batch_size, parts):
    spans = [span(range(count), batch_size, part, parts) for part in range(parts)]
    assert [i for part in spans for i in part] == list(range(count))  # in order, each once, no padding
    assert all(part.start % batch_size == 0 for part in spans)  # each begins a batch of the one-process run
    batches = [-(-len(part) // batch_size) for part in spans]
    assert max(batches) - min(batches) <= 1


def test_a_span_of_a_span_splits_a_shard_across_ranks():
    shard = span(range(37), 5, 1, 2)  # batches 4..7: images 20..36
    ranks = [span(shard, 5, rank, 3) for rank in range(3)]
    assert [i for part in ranks for i in part] == list(shard) and ranks[0].start == 20


def test_shard_specs_parse_or_say_what_is_wrong():
    assert ShardSpec.parse("2/8") == ShardSpec(2, 8) and str(ShardSpec(2, 8)) == "2/8"
    for text in ("8/8", "-1/4", "3", "a/b", "1/0"):
        with pytest.raises(GanMetricsError, match="--shard"):
            ShardSpec.parse(text)


def data() -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(N, DIMS)) @ rng.normal(size=(DIMS, DIMS)) + rng.normal(0, 50, DIMS)
    return x, torch.from_numpy(rng.normal(0, 3, (N, 12)))


def coverage_counts() -> CoverageCounts:
    """D/C counts against a fixed reference (the first 20 rows of ``data``, k = 3), in blocks of 4:
    a reducer built with reference values that its state leaves out."""
    reference = torch.from_numpy(data()[0][:20]).float()
    return CoverageCounts(reference, knn_radii(reference, 3, "prdc"), 3, block=4)


def reduced(positions: range, batch_size: int = BATCH) -> dict:
    """The reducers over ``positions``, fed in batches as the runner feeds them."""
    x, logits = data()
    reducers = {"gaussian": GaussianStats(DIMS), "splits": SplitSums(SPLITS, total=N, num_classes=12),
                "bank": FeatureBank(DIMS), "coverage": coverage_counts()}
    for start in range(positions.start, positions.stop, batch_size):
        index = torch.arange(start, min(start + batch_size, positions.stop))
        reducers["gaussian"].update(torch.from_numpy(x[index.numpy()]), index)
        reducers["splits"].update(logits[index], index)
        reducers["bank"].update(torch.from_numpy(x[index.numpy()]).float(), index)
        reducers["coverage"].update(torch.from_numpy(x[index.numpy()] * 1.05).float(), index)
    return reducers


def assert_same_coverage(got: tuple, expected: tuple) -> None:
    assert got[:2] == expected[:2] and np.array_equal(got[2], expected[2])


def test_merging_states_in_order_equals_one_pass_and_skips_empty_parts():
    whole = reduced(range(N))
    parts = [reduced(span(range(N), BATCH, part, 9)) for part in range(9)]  # 8 batches: one part is empty
    assert any(part["gaussian"].count == 0 for part in parts)
    for key, reducer in whole.items():
        merged = merge_states(restorer(reducer), [part[key].state() for part in parts])
        if key == "coverage":
            assert_same_coverage(merged.result(), reducer.result())
            assert 0 < merged.result()[0] and not merged.result()[2].all()  # some pairs within, some not covered
        elif key == "gaussian":
            assert merged.count == N
            assert np.linalg.norm(merged.sigma() - reducer.sigma()) <= 1e-14 * np.linalg.norm(reducer.sigma())
            assert np.allclose(merged.mu(), reducer.mu(), rtol=1e-15, atol=0)
        elif key == "splits":
            for ours, theirs in zip(merged.sums(), reducer.sums()):
                np.testing.assert_allclose(ours, theirs, rtol=1e-14)
        else:
            assert np.array_equal(merged.result(), reducer.result())


def test_outside_torch_distributed_nothing_is_exchanged():
    assert not distributed.active() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.gathered(5) == [5] and distributed.broadcast_from_main("x") == "x"
    assert list(distributed.lockstep(iter([1, 2]))) == [1, 2]
    reducers = reduced(range(N))
    assert distributed.merged(reducers)["gaussian"] is reducers["gaussian"]
    assert distributed.settle(2, "error: x", agreed=False) == (2, "error: x")
    assert torch.equal(distributed.strided_positions(torch.arange(3)), torch.arange(3))


# --- two gloo processes ---------------------------------------------------------------------------


def _items(rank: int, failing: bool):
    """Rank 0 has three items, rank 1 one (then, if ``failing``, a bad image)."""
    yield from ([0, 1, 2] if rank == 0 else [10])
    if failing and rank == 1:
        raise GanMetricsError("cannot decode image 'x.png': remove or replace the file")


def _worker(rank: int, init_method: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=2)
    results = {}
    try:
        mine = span(range(N), BATCH, rank, 2)
        merged = distributed.merged(reduced(mine))
        within, images, covered = merged["coverage"].result()
        results.update(mu=merged["gaussian"].mu(), sigma=merged["gaussian"].sigma(), bank=merged["bank"].result(),
                       **{f"splits{i}": s for i, s in enumerate(merged["splits"].sums())},
                       coverage_counts=np.array([within, images]), covered=covered)
        results["positions"] = distributed.strided_positions(torch.arange(3)).numpy()
        results["steps"] = np.array(list(distributed.lockstep(_items(rank, failing=False))))
        try:
            list(distributed.lockstep(_items(rank, failing=True)))
        except AgreedError as err:
            results["lockstep_error"] = np.array(err.line)
        # A failure outside any exchange (rank 1 here) reaches the other rank's next one.
        try:
            if rank == 1:
                raise GanMetricsError("rank 1 cannot read its source")
            distributed.gathered("rank 0 goes on")
        except AgreedError as err:
            results["settled"] = np.array(err.line)
        except GanMetricsError as err:
            results["settled"] = np.array(distributed.settle(2, f"error: {err}", agreed=False)[1])
        results["after"] = np.array(distributed.gathered(rank))  # the group still works
    finally:
        np.savez(f"{out}/rank{rank}.npz", **results)
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("gloo")
    init_method = (out / "store").as_uri()  # a FileStore: no port to pick
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(rank, init_method, str(out))) for rank in range(2)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert [process.exitcode for process in processes] == [0, 0]
    results = []
    for rank in range(2):
        with np.load(out / f"rank{rank}.npz") as stored:
            results.append({key: stored[key] for key in stored.files})
    return results


def test_two_ranks_merge_to_the_same_bits_and_to_one_pass(two_processes):
    whole = reduced(range(N))
    for key in two_processes[0]:
        if key not in ("positions", "steps"):  # per-rank by design
            assert np.array_equal(two_processes[0][key], two_processes[1][key]), key
    result = two_processes[0]
    assert np.linalg.norm(result["sigma"] - whole["gaussian"].sigma()) <= 1e-14 * np.linalg.norm(whole["gaussian"].sigma())
    assert np.array_equal(result["bank"], whole["bank"].result())  # global image order
    for i, expected in enumerate(whole["splits"].sums()):
        np.testing.assert_allclose(result[f"splits{i}"], expected, rtol=1e-14)
    assert_same_coverage((*result["coverage_counts"], result["covered"]), whole["coverage"].result())


def test_lock_step_gives_each_rank_its_items_and_stops_both_on_one_ranks_error(two_processes):
    assert list(two_processes[0]["steps"]) == [0, 1, 2] and list(two_processes[1]["steps"]) == [10]
    expected = "error: cannot decode image 'x.png': remove or replace the file"
    assert [str(rank["lockstep_error"]) for rank in two_processes] == [expected, expected]


def test_a_failure_outside_an_exchange_reaches_every_rank_and_the_group_survives(two_processes):
    assert [str(rank["settled"]) for rank in two_processes] == ["error: rank 1 cannot read its source"] * 2
    assert [list(rank["after"]) for rank in two_processes] == [[0, 1], [0, 1]]
    assert list(two_processes[0]["positions"]) == [0, 2, 4] and list(two_processes[1]["positions"]) == [1, 3, 5]


def test_commands_that_do_not_shard_refuse_to_run_under_torchrun(monkeypatch):
    from helpers import one_line_error, run_cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    message = one_line_error(run_cli("cache", "list", options=()))
    assert "`ganmetrics cache` does not run under torchrun" in message
