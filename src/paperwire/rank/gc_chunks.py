"""Cyclic garbage collection kept to what one chunk of readers makes, while a run ranks many.

A run of 20,000 readers keeps ~350,000 objects alive (the store's rows, the key phrases and
texts its reasons cache, the chunks in flight), and each of CPython's full collections walks
them all: one every ~1.7 s at 0.19 s each, 5.4 s of a 50 s run, on the thread the run waits
on, and they found 60 objects of garbage in all (benchmarks/README.md, "Garbage collection").
Frozen (``gc.freeze``) as each chunk is handed over, what is older than the chunk is left out
of collection until the run ends; what the chunk makes is collected as ever.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def old_objects_frozen(chunks: Iterable[T]) -> Iterator[T]:
    """``chunks`` as they come, with every object made before each one frozen while the
    caller works on it; all of them unfrozen (collectable again) when the chunks end, fail or
    are dropped. Freezing is the process's, not this run's: a run beside it (the daemon's
    fetch and send) is only collected later, never wrongly, and either run's end unfreezes
    both. A run dropped unfinished is closed at once by its reference count, as every caller
    here drops it; one dropped inside a reference cycle would be frozen with it and left
    unclosed, the process frozen until another run of many chunks ends."""
    try:
        for chunk in chunks:
            gc.freeze()
            yield chunk
            del chunk  # the caller's copy is all that keeps it while the next one comes
    finally:
        gc.unfreeze()
