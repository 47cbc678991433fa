"""Reading a run's next source ahead: the next side's decoding starts during the last batches of
the side before, its loader is the one that side then reads, and the values do not change."""

import gc
import weakref

import numpy as np
import pytest

import ganmetrics
from helpers import cpu_extractor, encoders_of, smooth_images, write_images
from ganmetrics.config import RunConfig
from ganmetrics.engine import runner
from ganmetrics.engine.readahead import ReadAhead
from ganmetrics.evaluation import run
from ganmetrics.evaluation.plan import make_plan
from ganmetrics.evaluation.run import OpenedRun
from ganmetrics.evaluation.sides import OpenedSide
from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.reducers import GaussianStats
from ganmetrics.sources import open_source


class Batches:
    """A stand-in batch iterator that can be watched being dropped."""

    def __iter__(self):
        return iter(())


def test_a_read_ahead_hands_its_iterator_only_to_the_same_source_read_the_same_way():
    first, second, third = (open_source(np.zeros((2, 4, 4, 3), np.uint8)) for _ in range(3))
    ahead = ReadAhead([first, second, third])
    assert ahead.after(first) is second and ahead.after(second) is third and ahead.after(third) is None
    assert ahead.after(open_source(np.zeros((2, 4, 4, 3), np.uint8))) is None  # by identity, not by value
    batches = Batches()
    ahead.start(second, ("t", 5, range(2)), lambda: batches)
    assert ahead.take(third, ("t", 5, range(2))) is None  # another source: dropped
    assert ahead.take(second, ("t", 5, range(2))) is None
    ahead.start(second, ("t", 5, range(2)), lambda: batches)
    assert ahead.take(second, ("t", 6, range(2))) is None  # read otherwise: dropped
    ahead.start(second, ("t", 5, range(2)), lambda: batches)
    assert ahead.take(second, ("t", 5, range(0, 2))) is batches
    assert ahead.take(second, ("t", 5, range(2))) is None  # taken once


def test_a_loader_started_ahead_and_never_read_is_dropped_when_the_run_ends():
    source = open_source(np.zeros((2, 4, 4, 3), np.uint8))
    batches = Batches()
    dropped = weakref.ref(batches)
    with ReadAhead([source]) as ahead:
        ahead.start(source, (), lambda: batches)
        del batches
        assert dropped() is not None
    gc.collect()
    assert dropped() is None  # a DataLoader iterator shuts its workers down when dropped


def test_the_sources_read_in_turn_are_the_reference_then_those_the_cache_cannot_serve():
    a, b, c = (open_source(np.zeros((2, 4, 4, 3), np.uint8)) for _ in range(3))
    stats_only = OpenedSide("s.npz", 2)
    sides = [OpenedSide("b", 2, source=b), stats_only, OpenedSide("c", 2, source=c)]
    plan, cached = make_plan(["fid"], {}, RunConfig()), make_plan(["fid"], {}, RunConfig(cache=True))
    with_a, without_a = OpenedRun(OpenedSide("a", 2, source=a), sides, {}, {}, False), OpenedRun(None, sides, {}, {}, False)
    assert with_a.reads(plan) == [a, b, c]
    assert without_a.reads(plan) == [b, c]
    assert with_a.reads(cached) == [a]


def test_the_next_source_decodes_while_the_last_batches_of_the_one_before_run(tmp_path, monkeypatch):
    first = open_source(write_images(tmp_path / "a", smooth_images(9, (32, 32), seed=1)))
    second = open_source(write_images(tmp_path / "b", smooth_images(7, (32, 32), seed=2)))
    encoders, need, config = encoders_of(cpu_extractor()), Need("inception", "64", GaussianStats), RunConfig(batch_size=3,
                                                                                                           workers=2)
    alone = {source.describe(): runner.reduce_source(source, encoders, [need], config)[need].result()
             for source in (first, second)}

    events = []
    make_loader = runner.make_loader
    monkeypatch.setattr(runner, "make_loader", lambda source, *args, **kw: (
        events.append(("loader", source.describe())), make_loader(source, *args, **kw))[1])
    forward = runner.forward_batches

    def forward_batches(tasks, batches):
        for batch, out in forward(tasks, batches):
            events.append(("reduced", batch.start))
            yield batch, out

    monkeypatch.setattr(runner, "forward_batches", forward_batches)
    with ReadAhead([first, second]) as ahead:
        together = {source.describe(): runner.reduce_source(source, encoders, [need], config, read_ahead=ahead)[need]
                    .result() for source in (first, second)}
    # The second source's loader starts once the first's last batch is read, before that batch
    # is reduced (forward_batches reads one batch ahead), and the second source reads it: no
    # other loader is made.
    loaders = [event for event in events if event[0] == "loader"]
    assert loaders == [("loader", first.describe()), ("loader", second.describe())]
    assert events.index(loaders[1]) < events.index(("reduced", 6))
    assert [event for event in events if event[0] == "reduced"] == [("reduced", start) for start in (0, 3, 6, 0, 3, 6)]
    for name, gaussian in alone.items():  # the same bits
        assert np.array_equal(together[name].mu, gaussian.mu) and np.array_equal(together[name].sigma, gaussian.sigma)


def test_a_comparison_read_ahead_gives_the_same_fid_and_reports_a_bad_image_of_the_next_side(tmp_path, monkeypatch):
    a = write_images(tmp_path / "a", smooth_images(8, (32, 32), seed=1))
    b = write_images(tmp_path / "b", smooth_images(8, (32, 32), seed=2, offset=0.2))
    options = dict(weights="random:0", dims=64, batch_size=3, workers=2, device="cpu", cache=False)
    read_ahead = ganmetrics.fid(a, b, **options).value
    monkeypatch.setattr(run.OpenedRun, "reads", lambda *args: [])  # every side read on its own
    assert ganmetrics.fid(a, b, **options).value == read_ahead
    monkeypatch.undo()
    (b / "0007.png").write_bytes(b"not a png")
    with pytest.raises(GanMetricsError, match="0007.png"):
        ganmetrics.fid(a, b, **options)
