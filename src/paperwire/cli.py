"""The ``paperwire`` command: thin wrappers that parse options, open the store, call one library
function and print a summary. Errors become one line on stderr and exit status 1."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from . import __version__, pipeline
from . import status as status_mod
from .config import DEFAULT_CONFIG, DEFAULT_DB, DEFAULT_GRACE, Config, bundled_path, load_config
from .deadline import wall_clock
from .errors import PaperwireError, StoreError
from .links import signer_for
from .paper import arxiv_id
from .rank.scope import MAX_WINDOW_DAYS
from .redact import install_log_redaction, printable
from .store import Store, utcnow
from .tex import readable
from .web import votes


def echo(message: str = "", **kwargs) -> None:
    """click.echo of printable text: everything the commands print goes through here."""
    click.echo(printable(str(message)), **kwargs)


class Context:
    """What every command needs: the config and store paths, opened lazily."""

    def __init__(self, config_path: str | None, db_path: str):
        self.config_path = config_path
        self.db_path = db_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def base_dir(self) -> Path:
        """Relative feed paths are read relative to the config file."""
        return Path(self.config_path).resolve().parent if self.config_path else Path.cwd()

    def store(self) -> Store:
        return Store(self.db_path)


pass_ctx = click.make_pass_decorator(Context)


class PaperwireGroup(click.Group):
    """Turns PaperwireError into one line per mistake and exit 1; other exceptions stay loud."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PaperwireError as exc:
            # a config with several mistakes reports them all, one "Error: file:line: ..." each
            for line in str(exc).splitlines():
                echo(f"Error: {line}", err=True)
            ctx.exit(1)


@click.group(cls=PaperwireGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="PAPERWIRE_CONFIG",
    type=click.Path(dir_okay=False),
    help="subscribers.yaml to use [env PAPERWIRE_CONFIG; default ./subscribers.yaml, else the "
    "bundled example]",
)
@click.option(
    "--db",
    "db_path",
    envvar="PAPERWIRE_DB",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file [env PAPERWIRE_DB]",
)
@click.option("-v", "--verbose", count=True, help="More log lines (-v info, -vv debug).")
@click.version_option(__version__, prog_name="paperwire")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, db_path: str, verbose: int) -> None:
    """Personalised research-paper digests from arXiv and Hugging Face Daily Papers.

    \b
    Quick start (offline, bundled sample feeds, messages land in ./outbox):
        paperwire run --once
    \b
    Your own setup:
        paperwire init        # writes a commented ./subscribers.yaml
        paperwire status      # who gets what, when; what failed
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # no secret in any log line, ours or httpx's, plain or --log-json
    ctx.obj = Context(config_path, db_path)


@cli.command()
@pass_ctx
def fetch(obj: Context) -> None:
    """Fetch every configured feed and store new papers.

    Prints per feed how many papers were new, already known, or the error. One broken feed
    never stops the others; the exit status is 1 only if every feed failed (the seed papers'
    arXiv API look-up is no feed).

    \b
    Example:
        paperwire fetch
    """
    config = obj.config
    with (
        obj.store() as store,
        _progress("Fetching", len(config.feeds)) as advance,
        _reported_here(),
    ):
        report = pipeline.fetch_all(
            store, config, base_dir=obj.base_dir, progress=lambda feed: advance(feed.label)
        )
    if _print_fetch(report):
        raise click.ClickException(_every_feed_failed(report))


def _every_feed_failed(report: pipeline.FetchReport) -> str:
    return f"every feed failed ({report.errors} of {len(report.feeds)}); nothing was fetched"


def _print_fetch(report: pipeline.FetchReport, *, summary: bool = True) -> bool:
    """One line per feed and one for the seed papers' look-up if one ran, then (with
    ``summary``, unless every feed failed) a summary; True when every feed failed (the seed
    look-up is no feed: it neither counts as one nor saves a run whose feeds all failed)."""
    for feed in [*report.feeds, *([report.seeds] if report.seeds else [])]:
        if feed.error:
            # SourceError messages start with the feed's name; the line already does
            echo(f"{feed.label}: error: {feed.error.removeprefix(f'feed {feed.label}: ')}")
        elif feed.not_modified:
            echo(f"{feed.label}: not modified since the last fetch")
        else:
            echo(f"{feed.label}: {feed.new} new, {feed.known} already known")
        for warning in feed.warnings:
            echo(f"  warning: {warning}")
    every_feed_failed = bool(report.feeds) and report.errors == len(report.feeds)
    if summary and not every_feed_failed:
        _print_fetch_summary(report)
    return every_feed_failed


def _print_fetch_summary(report: pipeline.FetchReport) -> None:
    failed, total = report.errors, len(report.feeds)
    if failed and failed == total:
        echo(_every_feed_failed(report).capitalize() + ".")
    elif failed:
        stored = f"{report.new} new papers stored" if report.new else "Nothing new"
        echo(f"{stored}; {failed} of {total} feeds failed (see above).")
    elif report.new == 0:
        echo("Nothing new in any feed since the last fetch.")  # not "today": cron may run hourly
    else:
        echo(f"{report.new} new papers stored.")


class _PrintedByTheCommand(logging.Filter):
    """Drops the pipeline's per-feed log lines that the command prints itself (with -v they
    stay: the log is then the detailed view)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.split(".")[0] == "paperwire"
            and isinstance(record.msg, str)
            and record.msg.startswith(("fetch %s", "fetch: %s"))
        )


@contextlib.contextmanager
def _reported_here():
    """While a command prints its own report, the same news is not logged a second time."""
    handlers = logging.getLogger().handlers
    quiet = logging.getLogger().level >= logging.WARNING
    drop = _PrintedByTheCommand()
    for handler in handlers if quiet else []:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)


@cli.command(name="digest")
@click.option("--subscriber", "subscriber_id", help="Only this subscriber.")
@click.option(
    "--limit", type=click.IntRange(1, 500), help="Papers per digest (default: digest_size)."
)
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), help="Candidates first seen since this day (UTC)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_ctx
def digest_cmd(
    obj: Context,
    subscriber_id: str | None,
    limit: int | None,
    since: dt.datetime | None,
    as_json: bool,
) -> None:
    """Preview the ranked digest without sending or marking anything.

    \b
    Examples:
        paperwire digest --subscriber ada --limit 5
        paperwire digest --json > all-digests.json
    """
    config = obj.config
    subs = [config.subscriber(subscriber_id)] if subscriber_id else list(config.subscribers)
    since_utc = since.replace(tzinfo=dt.UTC) if since else None
    with obj.store() as store:
        # SciPy is imported only by the commands that rank
        from .digests import iter_compose

        stream = iter_compose(store, config, subs, now=utcnow(), since=since_utc, limit=limit)
        if as_json and subscriber_id:
            picks = [p.as_json() for p in next(stream).picks]
            echo(json.dumps(picks, indent=2, ensure_ascii=False))
            return
        if as_json:  # streamed, one subscriber a line: memory stays flat at 100,000 readers
            _echo_json_digests(stream)
            return
        digests = {d.subscriber.id: d for d in stream}
    with obj.store() as store:
        last_sent = {sid: store.last_delivery(sid) for sid in digests}
    for sid, composed in digests.items():
        echo(
            f"== {sid}: {len(composed.picks)} of {composed.candidates} candidates "
            f"since {composed.since.date().isoformat()}"
        )
        if not composed.picks:
            echo(_why_nothing(sid, composed, last_sent[sid], since_utc is not None))
        # In the order the reader gets them. No score here: diversity (MMR) may put a paper
        # below one that scored less, and the numbers would contradict the order (--json has them).
        for number, pick in enumerate(composed.picks, 1):
            # the title as the e-mail shows it: "$t$-designs" is "t-designs" (--json keeps
            # the feed's text)
            echo(f"{number:3}. {readable(pick.title)}  ({pick.paper_id})")
            echo(f"      why: {'; '.join(pick.reasons)}")


# digests written at a time by ``digest --json``: an echo asks the terminal whether it is one
# and writes, each a system call after which the thread waits for the GIL behind the scoring
# threads (at 20,000 readers, 20,000 echoes took 6 s of the caller's thread)
_JSON_BATCH = 128


def _echo_json_digests(digests) -> None:
    """``{"id": [picks...], ...}`` written as the digests are composed, one subscriber a line
    (the compact encoder: ``indent`` forces json's pure-Python one, ~0.8 ms a digest)."""
    lines = ["{"]
    for i, composed in enumerate(digests):
        picks = json.dumps([p.as_json() for p in composed.picks], ensure_ascii=False)
        lines.append(f"{',' if i else ''}\n{json.dumps(composed.subscriber.id)}: {picks}")
        if len(lines) >= _JSON_BATCH:
            echo("".join(lines), nl=False)
            lines = []
    echo("".join(lines) + "\n}")


def _why_nothing(sid: str, composed, last: dict | None, explicit_since: bool) -> str:
    """Why a preview is empty, and how to see papers anyway."""
    earlier = (composed.since - dt.timedelta(days=7)).date().isoformat()
    again = f"paperwire digest --subscriber {sid} --since {earlier}"
    if composed.new:  # new papers there were, but none for this reader: say why
        return f"   {composed.why_empty()}"
    if explicit_since:
        return f"   no papers first seen since {composed.since.date().isoformat()}; try an earlier --since"
    if last is not None:
        return (
            f"   nothing new since the last digest ({last['period']}, {last['state']}): a digest "
            f"offers only papers first seen after the one before it. To preview earlier papers: "
            f"{again}"
        )
    return f"   no papers stored yet in the window; run `paperwire fetch`, or preview older ones: {again}"


# The least --grace-hours: a digest goes out some seconds after its time (the daemon checks
# every 30 s, a send may wait for another, cron starts a `send` within its minute), so under a
# few minutes no run ever finds a slot due after a reader's first digest; 0 was taken, and
# the daemon logged each day's digest as missed on the tick just after its time.
MIN_GRACE_HOURS = 0.1


def _at_least_min_grace(ctx: click.Context, param: click.Parameter, hours: float) -> float:
    if hours > 168:
        raise click.BadParameter(f"{hours:g} h: at most 168 (a week)", ctx=ctx, param=param)
    if not hours >= MIN_GRACE_HOURS:  # NaN too (FloatRange let it through to a traceback)
        raise click.BadParameter(
            f"{hours:g} h: must be at least {MIN_GRACE_HOURS:g} (6 minutes). A digest goes out "
            "some seconds after its time (the daemon checks every 30 s, cron starts within the "
            "minute), so with less no digest after a reader's first would ever be due; "
            f"{MIN_GRACE_HOURS:g} sends each digest on time and skips the ones missed",
            ctx=ctx,
            param=param,
        )
    return hours


def _tick_within_grace(tick: float, grace_hours: float) -> None:
    """The daemon's first check after a digest's time comes up to ``tick`` seconds later, and
    a send in progress holds it up further: with checks as far apart as the grace period, a
    digest whose time fell just after one check was past its grace at the next, and skipped."""
    grace_seconds = grace_hours * 3600
    if tick > grace_seconds / 2:
        raise click.BadParameter(
            f"{tick:g} s is more than half of --grace-hours {grace_hours:g} "
            f"({grace_seconds:g} s): a digest whose time falls just after one check would be "
            f"past its grace period at the next and skipped; use --tick {grace_seconds / 2:g} or "
            "less, or a longer --grace-hours",
            param_hint="'--tick'",
        )


# one option for run, send and status: a slot missed by more than this is not due any more
_grace_hours = click.option(
    "--grace-hours",
    default=DEFAULT_GRACE.total_seconds() / 3600,
    show_default=True,
    type=float,
    callback=_at_least_min_grace,
    help="A digest missed (the daemon or cron was down) still goes out this long after its "
    f"time: {MIN_GRACE_HOURS:g} to 168.",
)


@cli.command()
@click.option("--subscriber", "subscriber_id", help="Only this subscriber.")
@_grace_hours
@pass_ctx
def send(obj: Context, subscriber_id: str | None, grace_hours: float) -> None:
    """Render and deliver every digest that is due.

    Running it twice never sends the same digest twice: a ledger in the database records each
    digest before it goes out. Without PAPERWIRE_SMTP_URL, e-mails are written to ./outbox.

    \b
    Example:
        PAPERWIRE_SMTP_URL=smtp://user:pass@mail.example.org:587 paperwire send
    """
    config = obj.config
    total = 1 if subscriber_id else len(config.subscribers)
    with obj.store() as store, _progress("Sending", total) as advance:
        report = pipeline.send_due(
            store,
            config,
            now=utcnow(),
            subscriber_id=subscriber_id,
            grace=dt.timedelta(hours=grace_hours),
            outbox=_outbox(obj),
            first_reach=pipeline.FIRST_DIGEST_REACH,
            progress=lambda line: advance(line.subscriber_id),
        )
    if _print_send(report):
        sys.exit(1)


@contextlib.contextmanager
def _progress(label: str, total: int):
    """A rich progress bar on an interactive terminal; silent otherwise (cron, CI, pipes)."""
    if not sys.stderr.isatty() or total < 2:
        yield lambda item: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda item: bar.update(task, advance=1, description=f"{label} {item}")


def _outbox(obj: Context) -> Path:
    outbox = Path(obj.config.outbox)
    return outbox if outbox.is_absolute() else Path.cwd() / outbox


# hosts of a base_url that only this machine reaches: a run that sends to them says what
# answers the links
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _print_send(report: pipeline.SendReport, note: str | None = None) -> bool:
    """One line per reader, the ``note``, then the counts (the last line, which scripts read);
    True when a delivery failed or is to retry."""
    for line in report.lines:
        kind = "alert " if line.kind == "alert" else ""  # a digest's line is the plain one
        echo(
            f"{line.subscriber_id}: {kind}{line.status}{': ' + line.detail if line.detail else ''}"
        )
    if note:
        echo(note)
    echo(
        f"{report.count('sent')} sent, {report.count('failed')} failed, "
        f"{report.count('retry')} to retry, {report.count('nothing-new')} with nothing new."
    )
    return bool(report.count("failed") or report.count("retry"))


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, required=True)
@pass_ctx
def feedback(obj: Context, args: tuple[str, ...]) -> None:
    """Record a vote (up or down), or import many from a CSV file.

    PAPER is a stored paper's id; an arXiv id may be written any way arXiv writes it
    (2504.04514, arXiv:2504.04514v2, https://arxiv.org/abs/2504.04514v2). A paper that is not
    stored is refused, here and in an import, and nothing is recorded.

    \b
    Examples:
        paperwire feedback ada 2504.04514 up
        paperwire feedback ada https://arxiv.org/abs/2504.04514v2 down
        paperwire feedback import votes.csv    # columns: subscriber,paper_id,vote
    """
    config = obj.config
    if args[0] == "import" and len(args) == 2:
        with obj.store() as store:
            count, repeated = votes.import_votes(store, config, Path(args[1]))
        again = (
            f" ({repeated} later row{'s' if repeated != 1 else ''} for a reader and paper already "
            "in the file: the last row is the vote)"
            if repeated
            else ""
        )
        echo(f"Imported {count} votes from {args[1]}{again}.")
        return
    vote = votes.vote_value(args[2]) if len(args) == 3 else None
    if vote is None:
        raise click.UsageError("expected SUBSCRIBER PAPER up|down, or import FILE.csv")
    sub = config.subscriber(args[0])
    with obj.store() as store:
        paper_id = votes.record_vote(store, sub, args[1], vote)
    echo(f"Recorded 👍 for {paper_id}." if vote > 0 else f"Recorded 👎 for {paper_id}.")


@cli.command()
@click.option("--once", is_flag=True, help="One cycle (fetch, alerts, due digests) and exit.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Web app interface.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Web app TCP port.",
)
@click.option("--no-web", is_flag=True, help="Do not serve the feedback web app.")
@click.option(
    "--tick",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.2, 3600),
    help="Seconds between checks for due digests.",
)
@_grace_hours
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@pass_ctx
def run(
    obj: Context,
    once: bool,
    host: str,
    port: int,
    no_web: bool,
    tick: float,
    grace_hours: float,
    log_json: bool,
) -> None:
    """Run paperwire: the daemon, or one cycle with --once.

    The daemon fetches every fetch_interval_minutes, sends instant alerts after each fetch,
    sends each subscriber's digest at their digest_time in their timezone, and serves the
    feedback web app. SIGTERM or Ctrl-C stops it cleanly; SIGHUP (or editing the config file)
    reloads the config.

    One cycle sends what is due even when every feed failed, then exits 1, as it does when a
    delivery failed.

    \b
    Examples:
        paperwire run --once                 # offline demo on the bundled sample feed
        paperwire run --port 8000 --log-json # the daemon
    """
    if once:
        config = obj.config  # a broken config says so before a database is made for it
        with obj.store() as store, _reported_here():
            fetched, report = pipeline.run_once(
                store,
                config,
                now=utcnow,
                base_dir=obj.base_dir,
                grace=dt.timedelta(hours=grace_hours),
                outbox=_outbox(obj),
                first_reach=pipeline.FIRST_DIGEST_REACH,
            )
        # every feed failed: what is due is still sent (with the papers already stored),
        # then the run fails, as `fetch` would
        every_feed_failed = _print_fetch(fetched)
        base_url = obj.config.base_url
        links = None
        if report.count("sent") and urlsplit(base_url).hostname in _LOOPBACK:
            # the demo's readers click 👍 in an e-mail and meet a refused connection
            links = (
                f"The 👍 / 👎 and unsubscribe links in them go to {base_url}: `paperwire "
                "serve` answers them (the daemon, `paperwire run`, serves them itself)."
            )
        send_failed = _print_send(report, links)
        if every_feed_failed:
            raise click.ClickException(_every_feed_failed(fetched))
        if send_failed:
            sys.exit(1)
        return
    _tick_within_grace(tick, grace_hours)
    from .daemon import ConfigHolder, Daemon, JsonFormatter

    outbox = _outbox(obj)  # a broken config is one line, before the port is bound
    # bound before anything starts: a port in use is one line and exit 1, as for `serve`, not a
    # daemon running on without its web app (every vote and unsubscribe link dead)
    listening = None if no_web else _listen(host, port)
    root = logging.getLogger()
    if log_json:
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("paperwire").setLevel(min(root.level, logging.INFO))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    holder = ConfigHolder(obj.config_path)
    daemon = Daemon(
        holder,
        obj.db_path,
        base_dir=obj.base_dir,
        outbox=outbox,
        web=None if no_web else (host, port),
        listening=listening,
        tick_seconds=tick,
        grace=dt.timedelta(hours=grace_hours),
    )
    sys.exit(daemon.run())


@cli.command(short_help="Serve the feedback web app: votes, unsubscribe, profile pages.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="TCP port to listen on.",
)
@pass_ctx
def serve(obj: Context, host: str, port: int) -> None:
    """Serve the feedback web app: votes, unsubscribe, profile pages.

    The links in every digest point at PAPERWIRE_BASE_URL (base_url); put this server, or a
    proxy in front of it, at that address. With -v it logs one line per request.

    \b
    Example:
        PAPERWIRE_BASE_URL=https://papers.example.org paperwire serve --port 8000
    """
    import signal
    import threading

    import uvicorn

    from .daemon import ConfigHolder
    from .web.app import create_app

    # fail early, with a one-line error, on a broken config; then each request reads the file
    # again once it changed (or at SIGHUP), as the daemon does: a reader added since the start
    # is unsubscribed by the link in their first digest, and a removed one's links are 404
    holder = ConfigHolder(obj.config_path)
    listening = _listen(host, port)
    if not Path(obj.db_path).exists():
        # a wrong --db answers every link "unknown paper" (and, without PAPERWIRE_SECRET,
        # signs with a key no digest was signed with) and looks healthy: say so. Not refused:
        # a serve started before the first send (two services, one store) is how it begins.
        echo(
            f"Warning: no database at {os.fspath(obj.db_path)} yet; serve answers the links "
            "of digests sent from it, so give it the --db (or PAPERWIRE_DB) that send uses",
            err=True,
        )
    else:
        # a key other than the sends' refuses every link sent: said now, not at the first click
        # (a database locked or read-only now is the requests' to report)
        with contextlib.suppress(StoreError), Store(obj.db_path) as store:
            signer_for(holder.current(), store, checks=True)
    app = create_app(holder.current, obj.db_path)
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=holder.reload).start())
    verbose = logging.getLogger().level <= logging.INFO
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="info" if verbose else "warning",
            access_log=verbose,
            server_header=False,
        )
    )
    shown_host = f"[{host}]" if ":" in host else host
    echo(f"Serving the feedback app on http://{shown_host}:{port} (Ctrl-C stops it)")
    server.run(sockets=[listening])


def _listen(host: str, port: int):
    """A bound, listening socket, or one line saying why there is none."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise click.ClickException(f"cannot listen on {host}: no such host or interface") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is already in use (another paperwire serve or run?); "
                "stop it or choose another with --port"
            ) from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


@cli.command(short_help="Show each subscriber's last and next digest, and any failure.")
@click.option("--subscriber", "subscriber_id", help="Only this subscriber.")
@_grace_hours
@pass_ctx
def status(obj: Context, subscriber_id: str | None, grace_hours: float) -> None:
    """Show each subscriber's last and next digest, and any failure.

    One line per subscriber: the last digest and its worst state over the reader's channels
    (with the answer of the channel that failed), whether the latest was missed (its time
    passed more than --grace-hours ago with none sent), whether one is due now, the next one (in
    the subscriber's own time zone; for a reader disabled or unsubscribed, that they are), and
    seed papers that could not be found. Under it, one
    line per channel: its last delivery, then every one still pending or failed, with its
    reason ("maybe delivered" ones say when they are sent again). Then every feed whose last
    fetch failed, its credentials masked. With --subscriber, also the reader's private feed
    URL (as `feed show` prints it).

    \b
    Examples:
        paperwire status
        paperwire status --subscriber ada
    """
    config = obj.config
    subs = [config.subscriber(subscriber_id)] if subscriber_id else None
    with obj.store() as store:
        report = status_mod.status(
            store,
            config,
            now=utcnow(),
            subscribers=subs,
            grace=dt.timedelta(hours=grace_hours),
            all_seed_misses=subscriber_id is not None,
            feed_urls=subscriber_id is not None,  # asked for one reader: their private feed
        )
    echo(f"{report.papers} papers stored in {os.fspath(obj.db_path)}")
    if report.ranked is not None:
        count, since = report.ranked
        echo(
            f"digests rank against {count} of them: those first seen after {since} UTC "
            f"(ranking.corpus_papers: {config.ranking.corpus_papers}) and every paper a "
            f"reader voted on or seeded, and each digest's own window (up to {MAX_WINDOW_DAYS} "
            "days) besides"
        )
    for sub in report.subscribers:
        parts = [sub.id]
        if sub.last_period is not None:
            error = f": {sub.last_error}" if sub.last_error else ""
            parts.append(f"last digest {sub.last_period} ({sub.last_state}{error})")
        else:
            parts.append("no digest yet")
        if sub.disabled:  # as send words it
            parts.append("disabled (enabled: false in the config): no digests")
        elif sub.unsubscribed:
            parts.append("unsubscribed: no more digests")
        else:
            if sub.missed:
                parts.append(
                    f"missed {sub.missed} (skipped: no paperwire ran within {grace_hours:g} h "
                    "of its time, --grace-hours; its papers go in the next)"
                )
            if sub.due:
                parts.append(f"due now ({sub.due})")
            if sub.next_slot:
                parts.append(f"next {sub.next_slot.isoformat(timespec='minutes')}")
        if sub.seeds_missing_count:
            parts.append(f"seed papers not found: {_seeds_not_found(sub)}")
        echo(" · ".join(parts))
        for channel in sub.channels:
            if not channel.deliveries:  # added since the reader's last digest
                echo(f"  {channel.channel}: no digest yet")
            for delivery in channel.deliveries:
                echo(f"  {channel.channel}: {_delivery_line(delivery)}")
        if sub.feed_url is not None:
            echo(f"  feed URL: {sub.feed_url}")
    for feed in report.failed_feeds:
        echo(f"feed {feed.label}: last fetch failed ({feed.when} UTC): {feed.error}")


def _seeds_not_found(sub: status_mod.SubscriberStatus) -> str:
    """The seeds not in use that the status names, how many more there are, and how many of
    the reader's seeds are in use."""
    text = ", ".join(sub.seeds_missing)
    more = sub.seeds_missing_count - len(sub.seeds_missing)
    if more:
        text += f" and {more} more (`paperwire status --subscriber {sub.id}` lists them)"
    return f"{text} ({sub.seeds - sub.seeds_missing_count} of {sub.seeds} in use)"


def _delivery_line(delivery: status_mod.Delivery) -> str:
    """One ledger row for `status`: what, its state, and when it went out or why it did not."""
    text = f"{delivery.kind} {delivery.period} {delivery.state}"
    if delivery.sent_at:
        return f"{text} {delivery.sent_at} UTC"
    return f"{text}: {delivery.error}" if delivery.error else text


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
@click.pass_context
def init(ctx: click.Context, force: bool) -> None:
    """Write a commented subscribers.yaml to start from.

    It names the bundled sample feeds and three example readers, so `paperwire run --once`
    works at once; every other setting is in it too, commented out with its default and what
    it does. Writes ./subscribers.yaml, or the file given with --config.

    \b
    Example:
        paperwire init && paperwire run --once
    """
    target = Path(ctx.obj.config_path or DEFAULT_CONFIG)
    if target.exists() and not force:
        raise click.ClickException(
            f"{target} already exists; edit it, or add --force to replace it"
        )
    try:
        target.write_text(bundled_path("example-subscribers.yaml").read_text("utf-8"), "utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror}") from None
    echo(
        f"Wrote {target}: the bundled sample feeds and three example readers. Edit the feeds "
        "and subscribers, then run `paperwire run --once`."
    )


# -- seeds from the reader's library ------------------------------------------------------


@cli.group()
def seeds() -> None:
    """Seed papers: what a reader already likes, from their own library.

    \b
    Example:
        paperwire seeds import ada ~/zotero-export.bib
    """


@seeds.command(name="import")
@click.argument("subscriber_id", metavar="SUBSCRIBER")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def seeds_import(obj: Context, subscriber_id: str, path: Path) -> None:
    """Import a BibTeX, CSL JSON or RIS library (or a list of arXiv ids, URLs, DOIs) as seeds.

    Entries without an arXiv id are matched to a stored paper with the same title, else looked
    up by title on the arXiv API (one request every 3 seconds, each within
    fetch_timeout_seconds, answers cached; after 3 failures in a row the rest are not looked
    up). Seeds shape the profile and never appear in a digest; `paperwire status` lists the
    entries not matched.

    \b
    Examples:
        paperwire seeds import ada ~/zotero-export.bib
        paperwire seeds import ada reading-list.txt
    """
    sub = obj.config.subscriber(subscriber_id)
    with obj.store() as store:
        report, entries = pipeline.import_library(store, obj.config, sub.id, path)
    for entry, why in report.unmatched:
        echo(f"{entry.where}: not matched: {entry.label}: {why}")
    # an id the API did not return is no match, though kept: a paper announced today can be
    # missing from the API for hours, and `paperwire fetch` asks again
    unknown = set(report.not_on_arxiv)
    for entry, paper_id in report.matched:
        if paper_id in unknown:
            echo(
                f"{entry.where}: not found: arXiv has no paper {paper_id} (kept as a seed; "
                "`paperwire fetch` looks again)"
            )
    if report.fetch_error:
        echo(f"warning: {report.fetch_error} (the next `paperwire fetch` retries)")
    removed = (
        f"; {report.removed_seeds} no longer in {path.name}, removed"
        if report.removed_seeds
        else ""
    )
    found = sum(1 for _, paper_id in report.matched if paper_id not in unknown)
    not_found = len(report.matched) - found
    echo(
        f"{found} of {entries} entries matched to arXiv papers; "
        f"{report.new_seeds} new seeds for {sub.id}{removed}; "
        f"{len(report.unmatched)} not matched"
        + (f"; {not_found} not found on arXiv." if not_found else ".")
    )


@seeds.command(name="list")
@click.argument("subscriber_id", metavar="SUBSCRIBER")
@pass_ctx
def seeds_list(obj: Context, subscriber_id: str) -> None:
    """List a reader's imported seed papers: id, the file they came from, title.

    \b
    Example:
        paperwire seeds list ada
    """
    sub = obj.config.subscriber(subscriber_id)
    with obj.store() as store:
        rows = store.seed_rows(sub.id)
        papers = store.papers(r["paper_id"] for r in rows)
    for row in rows:
        title = (papers.get(row["paper_id"]) or {}).get("title") or "(not fetched yet)"
        echo(f"{row['paper_id']}  {row['origin']}  {' '.join(str(title).split())}")
    echo(f"{len(rows)} imported seed papers for {sub.id}.")


@seeds.command(name="remove")
@click.argument("subscriber_id", metavar="SUBSCRIBER")
@click.argument("paper_ids", metavar="[ID]...", nargs=-1)
@click.option("--origin", metavar="FILE", help="Every seed an import of this file name gave.")
@click.option("--all", "everything", is_flag=True, help="Every imported seed of the reader.")
@pass_ctx
def seeds_remove(
    obj: Context,
    subscriber_id: str,
    paper_ids: tuple[str, ...],
    origin: str | None,
    everything: bool,
) -> None:
    """Remove imported seed papers: by id, every one a file gave (--origin), or all (--all).

    Seeds named in subscribers.yaml (seed_papers) stay: edit the file for those.

    \b
    Examples:
        paperwire seeds remove ada 1706.03762
        paperwire seeds remove ada --origin zotero-export.bib
        paperwire seeds remove ada --all
    """
    if sum([bool(paper_ids), origin is not None, everything]) != 1:
        raise click.UsageError("give the ids to remove, or --origin FILE, or --all")
    sub = obj.config.subscriber(subscriber_id)
    ids = [arxiv_id(p) or p.strip() for p in paper_ids]
    with obj.store() as store:
        removed = store.remove_seeds(sub.id, origin=origin, paper_ids=ids)
    echo(f"{removed} imported seed papers removed for {sub.id}.")


@cli.group()
def feed() -> None:
    """Each reader's private Atom feed of their picks.

    Its URL is the same in every digest and on the profile page.

    \b
    Example:
        paperwire feed rotate ada
    """


@feed.command(name="show")
@click.argument("subscriber_id", metavar="SUBSCRIBER")
@pass_ctx
def feed_show(obj: Context, subscriber_id: str) -> None:
    """Print a reader's private feed URL, without changing it (`feed rotate` gives a new one).

    The URL is the key to the feed: give it to that reader only. `status --subscriber` shows
    it too.

    \b
    Example:
        paperwire feed show fay
    """
    from .render.atom import subscriber_feed_url

    sub = obj.config.subscriber(subscriber_id)
    with obj.store() as store:
        echo(f"{sub.id}: {subscriber_feed_url(store, obj.config, sub.id)}")


@feed.command(name="rotate")
@click.argument("subscriber_id", metavar="SUBSCRIBER")
@pass_ctx
def feed_rotate(obj: Context, subscriber_id: str) -> None:
    """Give a reader a new feed URL; the old one stops working (a leaked URL is revoked).

    \b
    Example:
        paperwire feed rotate ada
    """
    from .render.atom import rotate_feed

    sub = obj.config.subscriber(subscriber_id)
    with obj.store() as store:
        url = rotate_feed(store, obj.config, sub.id)
    echo(f"{sub.id}: the old feed URL no longer works; the new one is {url}")


# -- the one explicit download of embedding weights ----------------------------------------


@cli.group()
def model() -> None:
    """Embedding models for semantic ranking; `model pull` fetches one.

    \b
    Examples:
        paperwire model pull BAAI/bge-small-en-v1.5
        paperwire model pull minishlab/potion-base-8M
    """


@model.command(name="pull")
@click.argument("name")
@click.option(
    "--to",
    "folder",
    type=click.Path(path_type=Path),
    help="Where to put it [default: models/NAME].",
)
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit.")
@click.option("--force", is_flag=True, help="Replace the folder if it exists.")
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds without a byte before giving up.",
)
@click.option(
    "--deadline",
    default=1800.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds the whole pull may take, however the server answers.",
)
@click.option(
    "--onnx",
    "onnx_file",
    metavar="PATH",
    help="The ONNX file of a sentence-transformers repository to pull, e.g. "
    "onnx/model_qint8_avx512.onnx [default: onnx/model.onnx].",
)
@pass_ctx
def model_pull(
    obj: Context,
    name: str,
    folder,
    revision: str,
    force: bool,
    timeout: float,
    deadline: float,
    onnx_file: str | None,
):
    """Download a model from the Hugging Face Hub ($HF_ENDPOINT; $HF_TOKEN if set) into
    models/NAME beside subscribers.yaml: a sentence-transformers model's ONNX export, run as
    the bundled encoder is, or a model2vec model. Nothing else ever downloads weights.

    \b
    Examples:
        paperwire model pull BAAI/bge-small-en-v1.5
        paperwire model pull minishlab/potion-base-8M
    """
    from .rank import model_pull as mp

    target = folder or mp.default_folder(obj.base_dir, name.strip())
    # --timeout is per read: a server sending a byte every few seconds never trips it. The
    # deadline interrupts the pull wherever it waits; its clean-up leaves nothing behind.
    late = mp.PullError(
        f"model pull: {name.strip()}: not finished within {deadline:g} s (--deadline); "
        "nothing was kept, run it again"
    )
    # the deadline covers the pull only: the progress line's clean-up comes after it is off
    with (
        mp.terminal_progress(sys.stderr.isatty()) as progress,
        _stopped_by_sigterm(name.strip()),
        wall_clock(deadline, lambda: late),
    ):
        got = mp.pull(
            name,
            target,
            revision=revision,
            force=force,
            read_timeout=timeout,
            progress=progress,
            onnx=onnx_file,
        )
    sizes = ", ".join(f"{file} {size / 1e6:.1f} MB" for file, size in got.files)
    commit = f", commit {got.commit[:12]}" if got.commit else ""
    echo(f"Pulled {got.repo} ({got.revision}{commit}) into {target}: {sizes}.")
    echo("Check its licence on its Hub page. To rank with it, put in subscribers.yaml:")
    echo(mp.config_line(target, obj.base_dir))


@contextlib.contextmanager
def _stopped_by_sigterm(name: str):
    """A SIGTERM (``kill``, ``timeout``, a service stopped) ends a pull as Ctrl-C does, through
    its clean-up: by default it killed the process where it stood, and the half-downloaded
    scratch folder stayed beside the target for good."""
    import signal

    from .rank.model_pull import PullError

    def stop(signum: int, frame: object) -> None:
        raise PullError(f"model pull: {name}: stopped (SIGTERM); nothing was kept")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    cli(prog_name="paperwire")
