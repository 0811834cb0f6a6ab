"""The ``paperwire`` command: thin wrappers that parse options, open the store, call one library
function and print a summary. Errors become one line on stderr and exit status 1."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

import click

from . import __version__, pipeline, schedule
from .config import DEFAULT_DB, Config, load_config
from .errors import ConfigError, PaperwireError
from .store import Store, utcnow


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
    """Turns PaperwireError into a one-line error; other exceptions stay loud in tests."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PaperwireError as exc:
            raise click.ClickException(str(exc)) from None


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
    Quick start (offline, bundled sample feed, messages land in ./outbox):
        paperwire run --once
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(config_path, db_path)


@cli.command()
@pass_ctx
def fetch(obj: Context) -> None:
    """Fetch every configured feed and store new papers.

    Prints per feed how many papers were new, already known, or the error. One broken feed
    never stops the others; the exit status is 1 only if every feed failed.

    \b
    Example:
        paperwire fetch
    """
    config = obj.config
    with obj.store() as store, _progress("Fetching", len(config.feeds)) as advance:
        report = pipeline.fetch_all(
            store, config, base_dir=obj.base_dir, progress=lambda feed: advance(feed.label)
        )
    _print_fetch(report)
    if report.feeds and report.errors == len(report.feeds):
        raise click.ClickException("every feed failed; see the errors above")


def _print_fetch(report: pipeline.FetchReport) -> None:
    for feed in report.feeds:
        if feed.error:
            click.echo(f"{feed.label}: error: {feed.error}")
        elif feed.not_modified:
            click.echo(f"{feed.label}: not modified since the last fetch")
        else:
            click.echo(f"{feed.label}: {feed.new} new, {feed.known} already known")
        for warning in feed.warnings:
            click.echo(f"  warning: {warning}")
    if report.new == 0:
        click.echo("Nothing new today in any feed.")
    else:
        click.echo(f"{report.new} new papers stored.")


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
        from . import digest  # scikit-learn is imported only by the commands that rank

        digests = digest.compose(store, config, subs, now=utcnow(), since=since_utc, limit=limit)
    if as_json:
        if subscriber_id:
            picks = [p.as_json() for p in digests[subscriber_id].picks]
            click.echo(json.dumps(picks, indent=2, ensure_ascii=False))
            return
        # one subscriber at a time: 20,000 digests as one string would cost hundreds of MB
        click.echo("{")
        for i, (sid, d) in enumerate(digests.items()):
            picks = json.dumps([p.as_json() for p in d.picks], indent=2, ensure_ascii=False)
            comma = "," if i < len(digests) - 1 else ""
            click.echo(f"  {json.dumps(sid)}: {picks.replace(chr(10), chr(10) + '  ')}{comma}")
        click.echo("}")
        return
    for sid, composed in digests.items():
        click.echo(
            f"== {sid}: {len(composed.picks)} of {composed.candidates} candidates "
            f"since {composed.since.date().isoformat()}"
        )
        if not composed.picks:
            click.echo("   nothing new; no digest would be sent")
        # In the order the reader gets them. No score here: diversity (MMR) may put a paper
        # below one that scored less, and the numbers would contradict the order (--json has them).
        for number, pick in enumerate(composed.picks, 1):
            click.echo(f"{number:3}. {pick.title}  ({pick.paper_id})")
            click.echo(f"      why: {'; '.join(pick.reasons)}")


@cli.command()
@click.option("--subscriber", "subscriber_id", help="Only this subscriber.")
@pass_ctx
def send(obj: Context, subscriber_id: str | None) -> None:
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
            outbox=_outbox(obj),
            progress=lambda line: advance(line.subscriber_id),
        )
    _print_send(report)


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


def _print_send(report: pipeline.SendReport) -> None:
    for line in report.lines:
        click.echo(
            f"{line.subscriber_id}: {line.status}{': ' + line.detail if line.detail else ''}"
        )
    click.echo(
        f"{report.count('sent')} sent, {report.count('failed')} failed, "
        f"{report.count('retry')} to retry, {report.count('nothing-new')} with nothing new."
    )
    if report.count("failed") or report.count("retry"):
        sys.exit(1)


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, required=True)
@pass_ctx
def feedback(obj: Context, args: tuple[str, ...]) -> None:
    """Record a vote, or import many from a CSV file.

    \b
    Examples:
        paperwire feedback ada 2401.12345 up
        paperwire feedback import votes.csv    # columns: subscriber,paper_id,vote
    """
    config = obj.config
    if args[0] == "import" and len(args) == 2:
        votes = _read_votes_csv(Path(args[1]), config)
        with obj.store() as store:
            count = store.record_votes(votes, via="import")
        click.echo(f"Imported {count} votes from {args[1]}.")
        return
    if len(args) != 3 or args[2] not in ("up", "down"):
        raise click.UsageError("expected SUBSCRIBER PAPER_ID up|down, or import FILE.csv")
    sub = config.subscriber(args[0])
    with obj.store() as store:
        if store.paper(args[1]) is None:
            raise click.ClickException(f"unknown paper {args[1]!r}: fetch it first")
        store.record_vote(sub.id, args[1], 1 if args[2] == "up" else -1, via="cli")
    click.echo(f"Recorded 👍 for {args[1]}." if args[2] == "up" else f"Recorded 👎 for {args[1]}.")


def _read_votes_csv(path: Path, config: Config) -> list[tuple[str, str, int]]:
    known = {s.id for s in config.subscribers}
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    votes = []
    with handle:
        reader = csv.DictReader(handle)
        missing = {"subscriber", "paper_id", "vote"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"{path}:1: missing column(s): {', '.join(sorted(missing))}")
        for row in reader:
            line = reader.line_num
            if row["subscriber"] not in known:
                raise ConfigError(
                    f"{path}:{line}: subscriber: unknown subscriber {row['subscriber']!r}"
                )
            vote = (row["vote"] or "").strip().lower()
            if vote not in ("up", "down"):
                raise ConfigError(f"{path}:{line}: vote: {row['vote']!r} is not 'up' or 'down'")
            if not (row["paper_id"] or "").strip():
                raise ConfigError(f"{path}:{line}: paper_id: is empty")
            votes.append((row["subscriber"], row["paper_id"].strip(), 1 if vote == "up" else -1))
    return votes


@cli.command()
@click.option("--once", is_flag=True, help="One cycle (fetch, alerts, due digests) and exit.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Web app interface.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-web", is_flag=True, help="Do not serve the feedback web app.")
@click.option(
    "--tick",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.2, 3600),
    help="Seconds between checks for due digests.",
)
@click.option(
    "--grace-hours",
    default=12.0,
    show_default=True,
    type=click.FloatRange(0, 168),
    help="A digest missed while the daemon was down still goes out this long after its time.",
)
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

    \b
    Examples:
        paperwire run --once                 # offline demo on the bundled sample feed
        paperwire run --port 8000 --log-json # the daemon
    """
    if once:
        with obj.store() as store:
            fetched = pipeline.fetch_all(store, obj.config, base_dir=obj.base_dir)
            _print_fetch(fetched)
            alerts = pipeline.send_alerts(store, obj.config, now=utcnow(), outbox=_outbox(obj))
            report = pipeline.send_due(store, obj.config, now=utcnow(), outbox=_outbox(obj))
        report.lines[:0] = alerts.lines
        _print_send(report)
        return
    from .daemon import ConfigHolder, Daemon, JsonFormatter

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
        outbox=_outbox(obj),
        web=None if no_web else (host, port),
        tick_seconds=tick,
        grace=dt.timedelta(hours=grace_hours),
    )
    sys.exit(daemon.run())


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@pass_ctx
def serve(obj: Context, host: str, port: int) -> None:
    """Serve the feedback web app (thumbs links, unsubscribe, profile pages).

    \b
    Example:
        PAPERWIRE_BASE_URL=https://papers.example.org paperwire serve --port 8000
    """
    import uvicorn

    from .web import create_app

    config = obj.config  # fail early, with a one-line error, on a broken config
    app = create_app(lambda: config, obj.db_path)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


@cli.command()
@click.option("--subscriber", "subscriber_id", help="Only this subscriber.")
@pass_ctx
def status(obj: Context, subscriber_id: str | None) -> None:
    """Show, per subscriber, the last digest sent, what is due, and any failure."""
    config = obj.config
    subs = [config.subscriber(subscriber_id)] if subscriber_id else list(config.subscribers)
    now = utcnow()
    with obj.store() as store:
        gone = store.unsubscribed()
        click.echo(f"{store.count_papers()} papers stored in {os.fspath(obj.db_path)}")
        for sub in subs:
            last = store.last_delivery(sub.id)
            slot = schedule.latest_slot(sub, now)
            nxt = schedule.next_slot(sub, now)
            parts = [sub.id]
            if sub.id in gone:
                parts.append("unsubscribed")
            if last:
                parts.append(
                    f"last digest {last['period']} ({last['state']}"
                    f"{': ' + last['error'] if last['error'] else ''})"
                )
            else:
                parts.append("no digest yet")
            if slot and not store.delivery(
                sub.id, "digest", schedule.period(slot), "email" if sub.email else "slack"
            ):
                parts.append(f"due now ({schedule.period(slot)})")
            parts.append(f"next {nxt.isoformat(timespec='minutes')}")
            click.echo(" · ".join(parts))


def main() -> None:
    cli(prog_name="paperwire")
