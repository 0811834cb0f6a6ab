"""Per-paper caches filled batch by batch (each paper's analysed text, its vector): a stop
between two batches keeps what was done, and a failed write ends the writing, not the work."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import StoreError

log = logging.getLogger("paperwire")


def batch_bounds(
    n: int, size: int, stop: threading.Event | None = None
) -> Iterator[tuple[int, int]]:
    """(start, end) of each batch of ``size`` out of ``n``, until ``stop`` is set."""
    for start in range(0, n, size):
        if stop is not None and stop.is_set():
            return
        yield start, min(start + size, n)


@dataclass
class WriteGate:
    """Shared by the cache writes of one run (a paper's analysis, its twin keys): once one
    fails, none is tried, since each try on a locked database waits the busy timeout."""

    closed: bool = False


class CacheWrites:
    """The writes of one pass over ``total`` papers. The first that fails is logged, saying
    how many papers' ``what`` are not kept, and no later one is tried, nor any other write
    through the same ``gate``: each try on a locked database waits the busy timeout.
    ``strict``: the failure is raised instead."""

    def __init__(
        self, what: str, total: int, *, strict: bool = False, gate: WriteGate | None = None
    ):
        self.what, self.total, self.strict = what, total, strict
        self.gate = gate or WriteGate()

    @property
    def keeping(self) -> bool:
        return not self.gate.closed

    def write(self, store_batch: Callable[[], None], start: int) -> None:
        """Run ``store_batch`` (the batch from paper ``start`` on) unless an earlier one failed."""
        if not self.keeping:
            return
        try:
            store_batch()
        except StoreError as exc:
            if self.strict:
                raise
            self.gate.closed = True
            log.warning(
                "could not keep the %s of %d papers: %s", self.what, self.total - start, exc
            )
