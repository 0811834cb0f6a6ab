"""The web app's worker threads: a fixed number, a bounded queue, and a deadline per request.

Page work (SQLite reads, signing, ranking-model look-ups) must not run on the event loop, and
it must not run in an unbounded pool either: under a burst of clicks an unbounded pool grows
threads and memory until nothing answers. Here a request either gets a place in the queue or
is answered ``503`` with ``Retry-After`` at once, and a request that waited in the queue past
its deadline is dropped (``503``) instead of being done late; the client has likely given up,
and a vote applied after the reader's newer click would overwrite it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Saturated(Exception):
    """The queue is full (or the pool is closing): answer 503 with ``Retry-After``."""

    def __init__(self, retry_after: int, reason: str):
        super().__init__(reason)
        self.retry_after = retry_after


class WorkPool:
    """``workers`` threads taking jobs from a queue that holds at most ``max_pending`` jobs."""

    def __init__(
        self,
        *,
        workers: int = 4,
        max_pending: int = 32,
        deadline: float = 10.0,
        retry_after: int = 2,
        name: str = "web",
    ):
        self.workers, self.max_pending = workers, max_pending
        self.deadline, self.retry_after = deadline, retry_after
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0  # queued or running
        self._closed = False
        # Daemon threads, so an app nobody closes (a test's) never holds the interpreter open;
        # the daemon closes and joins them before it exits.
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker; its deadline counts from now, the time it is queued."""
        with self._lock:
            if self._closed:
                raise Saturated(self.retry_after, "the server is shutting down")
            if self._pending >= self.max_pending:
                raise Saturated(self.retry_after, "the server is busy")
            self._pending += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._jobs.put((fn, args, time.monotonic(), loop, future))
        return await future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, queued, loop, future = job
            outcome: tuple[bool, Any]
            try:
                if future.cancelled() or self._closed:
                    outcome = (False, Saturated(self.retry_after, "the server is shutting down"))
                elif time.monotonic() - queued > self.deadline:
                    # Too late to be useful, and maybe harmful (an old click over a newer one).
                    outcome = (False, Saturated(self.retry_after, "the request waited too long"))
                else:
                    outcome = (True, fn(*args))
            except BaseException as exc:  # handed to the awaiting request, which raises it
                outcome = (False, exc)
            finally:
                with self._lock:
                    self._pending -= 1
            # RuntimeError: the event loop is gone (the server stopped); nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, outcome)

    def close(self, timeout: float) -> bool:
        """Refuse new jobs, drop queued ones, and join the workers; True if all have ended."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("web workers still busy at shutdown: %s", ", ".join(alive))
        return not alive


def _settle(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
