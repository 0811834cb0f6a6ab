"""Every outbound call ends on time: one wall-clock deadline around the whole call.

httpx's, aiosmtplib's and Apprise's timeouts are per operation: a server that answers one byte
every few seconds, or accepts a request and answers minutes later, never trips them. So each
outbound call (a feed, the arXiv API, the summariser, Slack, Apprise, SMTP) runs under a
deadline that covers all of it — connecting, sending, every read, retries and their waits —
and never past what is left of its run's :class:`Budget`.

Calls made with asyncio are cancelled at their deadline (``asyncio.timeout``). A blocking call
that cannot be cancelled (Apprise's ``requests``) runs in a thread of its own, and the caller
stops waiting for it at the deadline (:func:`blocking_call`): the thread is left to end with
its socket.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Budget:
    """What is left of a run's time (``seconds=None``: no limit of its own)."""

    def __init__(
        self, seconds: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ):
        self._clock = clock
        self._end = None if seconds is None else clock() + seconds

    def left(self) -> float:
        """Seconds left (``inf`` without a limit), never below zero."""
        return math.inf if self._end is None else max(0.0, self._end - self._clock())

    def cap(self, seconds: float) -> float:
        """A call's own deadline, cut to what is left of the run."""
        return min(seconds, self.left())

    @property
    def spent(self) -> bool:
        return self.left() <= 0


def blocking_call(fn: Callable[[], T], seconds: float, *, name: str) -> T:
    """``fn()`` in a daemon thread, waited for at most ``seconds``.

    Returns what it returns or raises what it raises; raises TimeoutError when it did not end
    in time (it may still be running, and may still do what it was asked to)."""
    outcome: list = []
    finished = threading.Event()

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller, raised there
            outcome.append((False, exc))
        finally:
            finished.set()

    threading.Thread(target=work, name=name, daemon=True).start()
    if not finished.wait(max(seconds, 0.0)):
        raise TimeoutError(f"{name}: no answer within {seconds:g} s")
    ok, value = outcome[0]
    if ok:
        return value
    raise value
