"""Decoding a run's next source ahead: a comparison reads its sides one after the other, and
the next side's decoding workers start while the network is in the previous side's last batches
(``runner.reduce_source``), so the cores do not wait at the change of side for worker processes
to start and decode a first batch (docs/speed.md). Only where the run reads the next source for sure (one the cache cannot serve),
and never under torch.distributed, whose ranks must start their loaders at the same step.
Torch is not imported here: a run between statistics files makes a ``ReadAhead`` and starts nothing.
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..sources import ImageSource


class ReadAhead:
    """The sources a run reads in turn, in order, and the batch iterator started ahead for the
    next one. Used as a context manager: a loader started ahead and never taken (the run
    stopped before reaching its source) is dropped on exit, and its workers with it."""

    def __init__(self, sources: Sequence[ImageSource]):
        self.sources = list(sources)
        self._started: tuple[ImageSource, Any, Iterator] | None = None

    def after(self, source: ImageSource) -> ImageSource | None:
        """The source read after ``source`` (the same object), or None."""
        for index, candidate in enumerate(self.sources[:-1]):
            if candidate is source:
                return self.sources[index + 1]
        return None

    def start(self, source: ImageSource, arguments: Any, batches: Callable[[], Iterator]) -> None:
        """Start ``source``'s batches (``batches()``: an iterator whose workers start decoding
        at once), read with ``arguments`` (what ``take`` compares)."""
        self.close()
        self._started = (source, arguments, batches())

    def take(self, source: ImageSource, arguments: Any) -> Iterator | None:
        """The iterator started ahead for ``source`` (the same object) with equal ``arguments``,
        or None; any other one started is dropped."""
        started, self._started = self._started, None
        if started is not None and started[0] is source and started[1] == arguments:
            return started[2]
        return None

    def close(self) -> None:
        """Drop the iterator started ahead, if any (a DataLoader's shuts its workers down)."""
        self._started = None

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
