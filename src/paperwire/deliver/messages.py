"""E-mails ready for the wire: each delivery rendered, built and flattened to bytes, in worker
processes when a run is large enough to pay for them.

Rendering is pure Python (Jinja, link signing, the email package: ~3.8 ms a digest), so threads
cannot overlap it with sending; processes can. The sending event loop then only moves bytes,
and a run of thousands of digests uses every core (benchmarks/scale/README.md, delivery).
Messages come back in order and a bounded number at a time, so memory stays flat.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from email.message import EmailMessage

from .. import render
from ..links import Links, Signer
from ..paper import Pick
from ..redact import redact
from . import email as email_mod

log = logging.getLogger("paperwire")

# Below this many messages, starting worker processes (~0.5 s each, mostly imports) costs more
# than it saves: 200 digests render in ~0.8 s on one core.
POOL_MIN_MESSAGES = 200
BATCH = 16  # messages a task: amortises the inter-process hand-off (~0.1 ms a task)


@dataclass(frozen=True)
class MailRun:
    """What every message of one run shares."""

    base_url: str
    from_address: str
    list_id: str
    date: float  # the Date header, as a POSIX timestamp
    signer: Signer = field(repr=False)

    @property
    def mail_from(self) -> str:
        """The envelope sender: the bare address of ``from_address``."""
        return email_mod.bare_address(self.from_address)


@dataclass(frozen=True)
class MailJob:
    """One e-mail to render: a digest or an alert for one subscriber, keyed by its ledger id."""

    key: int
    subscriber_id: str
    name: str
    recipient: str
    kind: str
    period: str  # the date the digest names (Job.dated), or an alert's paper
    message_id: str
    picks: list[Pick]
    since: dt.datetime | None = None


def build(job: MailJob, run: MailRun) -> tuple[EmailMessage, render.Rendered]:
    """Render one job and build its message (links signed for this subscriber only)."""
    ctx, links = context(job, run)
    rendered = render.render_email(ctx, render.subject_for(job.kind, job.period, job.picks))
    return message(job, run, rendered, links), rendered


def context(job: MailJob, run: MailRun) -> tuple[dict, Links]:
    """What the templates see for one job, and its signed links."""
    links = Links(run.base_url, run.signer, job.subscriber_id)
    ctx = render.context(
        subscriber_name=job.name,
        picks=job.picks,
        links=links,
        kind=job.kind,
        period=job.period,
        since=job.since,
    )
    return ctx, links


def message(job: MailJob, run: MailRun, rendered: render.Rendered, links: Links) -> EmailMessage:
    """The rendered parts as one e-mail with its headers."""
    return email_mod.build_message(
        rendered,
        sender=run.from_address,
        recipient=job.recipient,
        message_id=job.message_id,
        list_id=run.list_id,
        unsubscribe_url=links.unsubscribe,
        date=run.date,
    )


def outgoing(job: MailJob, run: MailRun) -> email_mod.Outgoing:
    """One job as the exact bytes to send; one that cannot be built (a bug, a value the config
    checks missed) carries its one-line reason instead, and only that digest fails."""
    try:
        msg, _ = build(job, run)
        message = email_mod.flatten(msg)
        # an international domain: the same message in ASCII too, for a relay without SMTPUTF8
        ascii = None if message.isascii() else email_mod.ascii_form(msg)
    except Exception as exc:  # one reader's e-mail, never the run
        text = " ".join(redact(str(exc)).split())
        problem = (
            f"email: cannot build the message: {type(exc).__name__}: {render.shorten(text, 200)}"
        )
        return email_mod.Outgoing(job.key, b"", run.mail_from, job.recipient, problem=problem)
    return email_mod.Outgoing(job.key, message, run.mail_from, job.recipient, ascii_message=ascii)


def render_all(
    jobs: Sequence[MailJob], run: MailRun, *, processes: int | None = None
) -> Generator[email_mod.Outgoing, None, None]:
    """Every job as an :class:`~paperwire.deliver.email.Outgoing`, in order, lazily.

    ``processes``: worker processes to render in (None: one per core, at most 4; 1: in this
    process). Runs under :data:`POOL_MIN_MESSAGES` render here. Closing the iterator (a
    stopped send) cancels what is queued; a worker that dies hands its share back to this
    process."""
    workers = _default_workers() if processes is None else processes
    if workers > 1 and len(jobs) >= POOL_MIN_MESSAGES:
        try:
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=workers,
                # spawn: the daemon has threads, which fork would copy mid-flight
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(run,),
            )
        except (OSError, ImportError, NotImplementedError) as exc:  # no semaphores here
            log.warning("rendering in this process: cannot start worker processes (%s)", exc)
        else:
            log.info("rendering %d e-mails in %d processes", len(jobs), workers)
            yield from _pooled(pool, jobs, run, workers)
            return
    for job in jobs:
        yield outgoing(job, run)


def _default_workers() -> int:
    """One per core this process may use, at most 4: past that the one sending process, not
    rendering, is the limit (~1.3 ms of its CPU a message, benchmarks/scale/README.md)."""
    try:
        cores = len(os.sched_getaffinity(0))  # respects cpusets (containers, taskset)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, 4)


def _pooled(
    pool: concurrent.futures.ProcessPoolExecutor,
    jobs: Sequence[MailJob],
    run: MailRun,
    workers: int,
) -> Iterator[email_mod.Outgoing]:
    done = 0  # jobs yielded so far, in order
    queued: deque[concurrent.futures.Future] = deque()
    try:
        for start in range(0, len(jobs), BATCH):
            queued.append(pool.submit(_render_batch, jobs[start : start + BATCH]))
            while len(queued) > 2 * workers or (queued and start + BATCH >= len(jobs)):
                for item in _result(pool, queued.popleft()):  # every worker busy meanwhile
                    yield item
                    done += 1
    except BrokenProcessPool as exc:
        # a worker was killed (the OOM killer, an operator): the run goes on, more slowly
        _kill_survivors(pool)
        log.warning("rendering %d e-mails in this process: %s", len(jobs) - done, exc)
        for job in jobs[done:]:
            yield outgoing(job, run)
    finally:
        if getattr(pool, "_broken", False):
            _kill_survivors(pool)
        pool.shutdown(wait=True, cancel_futures=True)


# How often the sender looks for a worker that died without the pool noticing.
DEATH_POLL_SECONDS = 1.0


def _result(pool: concurrent.futures.ProcessPoolExecutor, future: concurrent.futures.Future):
    """The task's result. A worker killed while it was sending a result leaves the pool's
    reader waiting for the rest of that message, forever, and the pool never says it broke
    (a CI run hung so): a worker found dead on two polls running, with the result still
    missing, is a broken pool here."""
    deaths = 0
    while True:
        try:
            return future.result(timeout=DEATH_POLL_SECONDS)
        except concurrent.futures.TimeoutError:
            processes = list((getattr(pool, "_processes", None) or {}).values())
            dead = [p.exitcode for p in processes if p.exitcode is not None]
            deaths = deaths + 1 if dead else 0
            if deaths >= 2:  # the pool had a poll to notice by itself
                raise BrokenProcessPool(
                    f"a worker process died (exit code {dead[0]}) and the pool did not notice"
                ) from None


def _kill_survivors(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """SIGKILL the workers of a broken pool. The pool SIGTERMs and joins them itself, but they
    ignore SIGTERM (see :func:`_start_worker`): without this it would wait forever. Then close
    this process's end of the results pipe: a pool left reading half a message from a killed
    worker reads an end of file once every writer is gone, and can shut down."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):  # already gone, or already closed
            process.kill()
    results = getattr(pool, "_result_queue", None)
    with contextlib.suppress(OSError, AttributeError):
        results._writer.close()  # type: ignore[union-attr]


_worker_run: MailRun | None = None


def _start_worker(run: MailRun) -> None:
    global _worker_run  # one run per worker process, set once by the pool
    _worker_run = run
    # The sending process owns the pool's life: Ctrl-C in a terminal and systemd's SIGTERM reach
    # the whole process group, and a worker dying of them would only break the pool mid-run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A pool's workers outlive a parent killed with SIGKILL (they wait on a queue nobody will
    # write to): leave as soon as the parent is gone.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def _render_batch(jobs: Sequence[MailJob]) -> list[email_mod.Outgoing]:
    assert _worker_run is not None, "the pool's initializer sets the run"
    return [outgoing(job, _worker_run) for job in jobs]
