"""Sharding in one place: torch.distributed ranks (``torchrun``) and batch-scheduler shards.

The same rules for both:

- **Spans.** A run's images are cut into whole batches of ``--batch-size`` and each part (a
  rank, or a ``--shard K/N``) gets a contiguous block of them (``span``): never padded with
  duplicates, at most one batch more than another part, possibly none. So every image goes
  through the network in the same batch as in a one-process run, and its features are the same.
- **Lock step.** Ranks take their batches in lock step, one ``exchange`` a step (``lockstep``):
  a rank with fewer batches keeps joining until every rank is done, and a rank's bad image
  stops every rank at that step with the same message (no hang, no collective timeout).
- **Merge in rank order.** Reducers (anything with ``state()``, ``from_state()`` (or ``restored()``) and ``merge()``)
  are gathered and merged in rank order 0..W-1 on every rank (``merged``; shard files in shard
  order, ``merge_states``, by ``evaluation/shards.py``): every rank holds the same bits, and a
  feature bank is in global image order before any seeded subset is drawn from it.
- **Rank 0 writes** (statistics files, the cache) and prints; a failure's one line is printed
  by every rank, so each node's log says why it stopped (``settle``).

Every collective here is an ``exchange`` on a gloo group (the default group when it has gloo;
else one made once beside it, e.g. beside a user's NCCL group): a small header from every rank
(status, payload size), then each non-empty payload broadcast from its rank. So any exchange can
carry a rank's error, and a rank that fails elsewhere joins the others' next exchange with it
(``settle``). What travels is small: a header a batch, and at the end each rank's reducer
states (8·D² bytes for a Gaussian, 4·D bytes an image for a feature bank).

Outside torch.distributed (or with one rank) nothing here communicates: one rank, rank 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import GanMetricsError, describe_error

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

COLLECTIVE_TIMEOUT = timedelta(minutes=30)
"""How long a rank waits in one collective of a group ganmetrics makes (the CLI's, or the gloo
group beside a user's NCCL group) before torch.distributed gives up: only a rank that hangs
(not one that fails: that is an exchange) makes the others wait this long."""

_OK, _DONE, _FAILED = 0, 1, 2
_control_group_beside: list = []
"""[(the default group, the gloo group made beside it)] once one is made."""


class AgreedError(GanMetricsError):
    """A failure that every rank knows of (it came through an exchange, or the ranks can no
    longer talk): every rank raises it with the same ``line`` and exit ``code``; ``str()`` is
    the original message."""

    def __init__(self, message: str, line: str, code: int):
        super().__init__(message)
        self.line, self.code = line, code


def _dist():
    import torch.distributed as dist

    return dist


def active() -> bool:
    """Whether this process is one of several torch.distributed ranks (never before torch is
    imported: no process group exists then, and asking must not import it)."""
    if "torch.distributed" not in sys.modules:
        return False
    dist = _dist()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside torch.distributed)."""
    return _dist().get_rank() if active() else 0


def world_size() -> int:
    """The number of ranks (1 outside torch.distributed)."""
    return _dist().get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one that prints results, writes statistics files and the cache."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or a scheduler setting its variables) started this process as one of
    several: ``WORLD_SIZE`` > 1 and ``RANK`` set."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and "RANK" in os.environ


def init_from_environment() -> bool:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``, ``LOCAL_RANK``) unless a group exists; returns whether it made one. With a
    CUDA GPU, ``torch.cuda.set_device(LOCAL_RANK)`` first and NCCL for CUDA tensors beside gloo
    for CPU ones (the exchanges here are on gloo); without one, gloo."""
    import torch

    dist = _dist()
    if not launched_by_torchrun():
        return False
    if not dist.is_available():
        raise GanMetricsError("torchrun started this run, but this PyTorch has no torch.distributed: "
                              "install a build with it, or run one process")
    if dist.is_initialized():
        return False
    backend = "gloo"
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise GanMetricsError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) "
                                  "here: start at most that many processes per node (--nproc_per_node)")
        torch.cuda.set_device(local_rank)  # before the first collective: NCCL binds to it
        backend = "cpu:gloo,cuda:nccl"
    try:
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    except (RuntimeError, ValueError) as err:
        raise GanMetricsError(f"cannot join the torchrun process group ({describe_error(err)}): check MASTER_ADDR, "
                              "MASTER_PORT and that every node runs the same command") from None
    return True


def shutdown() -> None:
    """Leave the process group (the CLI's, at the end of its run)."""
    dist = _dist()
    if dist.is_initialized():
        dist.destroy_process_group()
    _control_group_beside.clear()


def _control_group():
    """The gloo group the exchanges use: the default group when it has gloo, else one made
    (by every rank, at its first exchange) beside it."""
    dist = _dist()
    if "gloo" in str(dist.get_backend()):
        return None
    if not _control_group_beside or _control_group_beside[0][0] is not dist.group.WORLD:
        _control_group_beside[:] = [(dist.group.WORLD, dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT))]
    return _control_group_beside[0][1]


def _collective_failed(err: BaseException) -> AgreedError:
    message = (f"another rank stopped before the run ended (torch.distributed: {describe_error(err)}): see that rank's "
               "output for the cause")
    return AgreedError(message, f"error: {message}", 2)


def exchange(payload: Any = None, *, failure: tuple[int, str] | None = None) -> list:
    """Every rank's ``payload`` (any picklable value; None sends nothing), in rank order, as an
    unpickled copy on every rank (this rank's own too, so every rank holds the same bits).
    ``failure``: (exit code, one-line message) of a failure on this rank. When any rank sends
    a failure, every rank raises ``AgreedError`` with the first one in rank order. Every rank
    must call it (or ``lockstep``'s steps) the same number of times, in the same order."""
    return [value for _, value in _exchange(_FAILED if failure is not None else _OK,
                                            failure if failure is not None else payload)]


def _exchange(status: int, payload: Any) -> list[tuple[int, Any]]:
    """(status, payload) of every rank: a header (status, size) from each, all-gathered, then
    each non-empty payload broadcast from its rank."""
    import torch

    if not active():
        if status == _FAILED:
            raise _agreed(payload)
        return [(status, payload)]
    dist = _dist()
    group = _control_group()
    data = b"" if payload is None else pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        headers = [torch.zeros(2, dtype=torch.int64) for _ in range(world_size())]
        dist.all_gather(headers, torch.tensor([status, len(data)], dtype=torch.int64), group=group)
        values = []
        for source, (source_status, size) in enumerate(header.tolist() for header in headers):
            if size == 0:
                values.append((source_status, None))
                continue
            own = source == rank()
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8) if own else torch.empty(size, dtype=torch.uint8)
            dist.broadcast(buffer, src=source, group=group)
            values.append((source_status, pickle.loads(buffer.numpy())))
    except RuntimeError as err:  # a rank died (its connection closed) or timed out
        raise _collective_failed(err) from None
    failures = [value for status_of_rank, value in values if status_of_rank == _FAILED]
    if failures:
        raise _agreed(failures[0])
    return values


def _agreed(failure: tuple[int, str]) -> AgreedError:
    code, line = failure
    return AgreedError(line.removeprefix("error: "), line, code)


def lockstep(items: Iterable[T]) -> Iterator[T]:
    """This rank's ``items`` (its batches), one exchange per step across the ranks (a header
    of 16 bytes from each): a rank with fewer items keeps stepping until every rank is done,
    and a ``GanMetricsError`` raised by this rank's iterator (a bad image) stops every rank at
    that step with the same message."""
    if not active():
        yield from items
        return
    iterator, finished = iter(items), False
    while True:
        item, failure = None, None
        if not finished:
            try:
                item = next(iterator)
            except StopIteration:
                finished = True
            except AgreedError:
                raise
            except GanMetricsError as err:
                failure = (2, f"error: {err}")
        if failure is not None:
            _exchange(_FAILED, failure)  # raises AgreedError on every rank
        steps = _exchange(_DONE if finished else _OK, None)
        if all(status == _DONE for status, _ in steps):
            return
        if not finished:
            yield item


def gathered(value: T) -> list[T]:
    """Every rank's ``value`` in rank order (``[value]`` outside torch.distributed)."""
    return exchange(value)


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (e.g. a cache hit decided on rank 0)."""
    return exchange(value if is_main() else None)[0]


def restorer(reducer) -> Callable[[Mapping], Any]:
    """What rebuilds a reducer like ``reducer`` from a ``state()`` dict: its ``restored`` where it
    has one (a reducer configured by more than its state, e.g. built with reference values that
    its state leaves out), else its class's ``from_state``."""
    return getattr(reducer, "restored", None) or type(reducer).from_state


def merge_states(restore: Callable[[Mapping], Any], states: Sequence[Mapping]) -> Any:
    """One reducer from ``states`` (``state()`` dicts of parts of one set: ranks or shards), each
    rebuilt by ``restore`` (``restorer``), merged in the given order: the same bits wherever it runs."""
    merged = restore(states[0])
    for state in states[1:]:
        merged.merge(restore(state))
    return merged


def merged(reducers: Mapping[Any, Any]) -> dict:
    """{key: every rank's reducer of that key merged in rank order}, the same on every rank
    (new reducers, on the CPU; ``reducers`` are left as they were). Every rank must pass the
    same keys in the same order. Outside torch.distributed: ``reducers`` unchanged."""
    if not active():
        return dict(reducers)
    every_rank = gathered([reducer.state() for reducer in reducers.values()])
    return {key: merge_states(restorer(reducer), [states[i] for states in every_rank])
            for i, (key, reducer) in enumerate(reducers.items())}


def span(positions: range, batch_size: int, part: int, parts: int) -> range:
    """Part ``part`` of ``parts`` of ``positions``: a contiguous block of whole batches (batch k
    holds ``positions[k*batch_size:(k+1)*batch_size]``), blocks as even as whole batches allow
    (``numpy.array_split`` of the batches); possibly empty."""
    batches = -(-len(positions) // batch_size)
    first, last = part * batches // parts, (part + 1) * batches // parts
    return positions[first * batch_size:last * batch_size]


def rank_span(source, positions: range, batch_size: int) -> range:
    """This rank's part of ``positions`` of ``source`` (an ``ImageSource``; all of them outside
    torch.distributed), after checking that every rank sees the same images in it (the same
    count and names: a folder listed on two nodes of a cluster may differ)."""
    if active():
        seen = gathered((len(source), names_digest(source)))
        for other, (count, digest) in enumerate(seen):
            if digest != seen[0][1]:
                raise GanMetricsError(
                    f"rank {other} sees other images in {source.describe()} than rank 0 ({count} vs {seen[0][0]} "
                    "images, or other names): every rank must read the same files (put them on a filesystem "
                    "every node sees)"
                )
    return span(positions, batch_size, rank(), world_size())


def names_digest(source) -> str:
    """sha256 of an ``ImageSource``'s image names in order: which images, cheaply (no ``stat``)."""
    return hashlib.sha256("\n".join(source.names).encode("utf-8", "surrogateescape")).hexdigest()


def shard_info(source, spec: "ShardSpec", batch_size: int) -> dict:
    """The ``shard`` meta of part ``spec`` of ``source`` (``store/shardfile.py``), its images
    ``start`` to ``stop`` being ``span(..., spec.index, spec.count)``."""
    images = span(range(len(source)), batch_size, spec.index, spec.count)
    return {"index": spec.index, "count": spec.count, "start": images.start, "stop": images.stop,
            "total": len(source), "batch_size": batch_size, "names_sha256": names_digest(source)}


def strided_positions(local: torch.Tensor) -> torch.Tensor:
    """Global positions of this rank's images numbered ``local`` (int64) in its own order, for
    sets whose size no rank knows in advance (``GenerativeMetrics``): rank r's i-th image is
    image i·W + r (StyleGAN3's order), so positions never collide and need no communication."""
    return local * world_size() + rank()


def settle(code: int, line: str | None, agreed: bool) -> tuple[int, str | None]:
    """The outcome every rank of a command ends with: its own when that ``agreed`` already (it
    came through an exchange), else the first failure in rank order after one last exchange of
    every rank's (exit ``code``, one-line ``line``). Outside torch.distributed: unchanged."""
    if not active() or agreed:
        return code, line
    try:
        exchange(failure=(code, line or "") if code else None)
    except AgreedError as err:
        return err.code, err.line
    return code, line


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    """``--shard K/N``: part ``index`` (0-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "ShardSpec":
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise GanMetricsError(f"--shard {text!r} is not K/N: pass e.g. --shard 0/8 (K from 0 to N-1)") from None
        if count < 1 or not 0 <= index < count:
            raise GanMetricsError(f"--shard {text}: K must be 0 to N-1 and N at least 1, e.g. --shard 0/{max(count, 1)}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
