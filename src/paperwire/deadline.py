"""Every outbound call ends on time: one wall-clock deadline around the whole call.

httpx's, aiosmtplib's and Apprise's timeouts are per operation: a server that answers one byte
every few seconds, or accepts a request and answers minutes later, never trips them. So each
outbound call (a feed, the arXiv API, the summariser, Slack, Apprise, SMTP) runs under a
deadline that covers all of it — connecting, sending, every read, retries and their waits —
and never past what is left of its run's :class:`Budget` (a fetch run's, a send run's, the
summaries'): N stuck calls cost the budget, not N × their timeout.

Calls made with asyncio are cancelled at their deadline (``asyncio.timeout``). A blocking call
that cannot be cancelled (Apprise's ``requests``) runs in a daemon thread of its own, and the
caller stops waiting for it at the deadline (:func:`blocking_call`): the thread is left to end
with its socket, never joined, so it holds up neither the run nor the process's exit. At most
:data:`MAX_ABANDONED` such threads live at once, and at most one per key (one per channel): a
call whose previous one is still running is not made (:class:`StillRunning`), so a late answer
can never cross a second send of the same message; the caller learns the late outcome through
``on_late``. :func:`wall_clock` bounds a synchronous command (``model pull``) in the main
thread, where a signal can interrupt a blocked read.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Budget:
    """What is left of a run's time (``seconds=None``: no limit of its own)."""

    def __init__(
        self,
        seconds: float | None = None,
        *,
        setting: str = "run_budget",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.seconds = seconds
        self.setting = setting  # the setting it comes from, named when it runs out
        self._clock = clock
        self._end = None if seconds is None else clock() + seconds

    def left(self) -> float:
        """Seconds left (``inf`` without a limit), never below zero."""
        return math.inf if self._end is None else max(0.0, self._end - self._clock())

    def cap(self, seconds: float) -> float:
        """A call's own deadline, cut to what is left of the run."""
        return min(seconds, self.left())

    def deadline(self, seconds: float, setting: str) -> tuple[float, str]:
        """A call's deadline (its own ``seconds``, cut to what is left of the run) and the
        setting that set it, for the error that says it passed: ``setting`` or the budget's."""
        left = self.left()
        return (seconds, setting) if seconds <= left else (left, self.setting)

    @property
    def spent(self) -> bool:
        return self.left() <= 0


# Threads left running past their deadline, by key; each removes itself when its call ends.
MAX_ABANDONED = 8
_abandoned: dict[str, threading.Thread] = {}
_abandoned_lock = threading.Lock()


class StillRunning(Exception):
    """The call was not made: an earlier one with its key is still running past its deadline
    (``same_key``), or :data:`MAX_ABANDONED` calls are."""

    def __init__(self, message: str, *, same_key: bool):
        super().__init__(message)
        self.same_key = same_key


def running_late() -> int:
    """How many calls were given up on and have not ended yet."""
    with _abandoned_lock:
        return len(_abandoned)


def still_running(key: str) -> bool:
    """Whether a call with this key was given up on and has not ended yet."""
    with _abandoned_lock:
        return key in _abandoned


def blocking_call(
    fn: Callable[[], T],
    seconds: float,
    *,
    name: str,
    key: str | None = None,
    on_late: Callable[[bool, object], None] | None = None,
) -> T:
    """``fn()`` in a daemon thread, waited for at most ``seconds``.

    Returns what it returns or raises what it raises; raises TimeoutError when it did not end
    in time (it may still be running, and may still do what it was asked to). Then, when it
    ends, ``on_late(ok, value_or_exception)`` runs in its thread, before the call counts as
    ended for :func:`still_running`. With a ``key``, raises StillRunning instead of calling
    when an earlier call with that key is still running, or too many calls are."""
    outcome: list = []
    finished = threading.Event()
    state = {"abandoned": False}
    label = key or name

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller, raised there
            outcome.append((False, exc))
        with _abandoned_lock:
            finished.set()
            late = state["abandoned"]
        if not late:
            return
        try:
            if on_late is not None:
                on_late(*outcome[0])
        finally:
            with _abandoned_lock:
                _abandoned.pop(label, None)

    thread = threading.Thread(target=work, name=name, daemon=True)
    with _abandoned_lock:
        if key is not None and key in _abandoned:
            raise StillRunning(f"{name}: the previous call is still running", same_key=True)
        if len(_abandoned) >= MAX_ABANDONED:
            raise StillRunning(
                f"{name}: {len(_abandoned)} earlier calls are still running", same_key=False
            )
        thread.start()
    if not finished.wait(max(seconds, 0.0)):
        with _abandoned_lock:
            if not finished.is_set():  # else it ended just now: its outcome is the answer
                state["abandoned"] = True
                _abandoned[label] = thread
        if state["abandoned"]:
            raise TimeoutError(f"{name}: no answer within {seconds:g} s")
    ok, value = outcome[0]
    if ok:
        return value
    raise value


@contextlib.contextmanager
def wall_clock(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise ``error()`` in this (the main) thread once ``seconds`` have passed in the block,
    whatever it is blocked in: a SIGALRM interrupts a blocking read, and what the handler
    raises leaves through the code around it (so ``finally`` blocks clean up). An alarm set
    before (a test runner's) is put back, less the time spent here.

    Where there is no SIGALRM (Windows) or off the main thread, the block runs unbounded."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    ended = threading.Event()

    def ring(signum: int, frame: object) -> None:
        # an alarm handled once the block has ended (delivered just before the timer was
        # cancelled, run a few bytecodes later) ends nothing: the block's work is done
        if not ended.is_set():
            raise error()

    began = time.monotonic()
    previous = signal.signal(signal.SIGALRM, ring)
    earlier, interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        ended.set()  # before anything else: the timer is off before any clean-up runs
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if earlier:  # someone else's alarm: what is left of it
            left = max(earlier - (time.monotonic() - began), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, interval)
