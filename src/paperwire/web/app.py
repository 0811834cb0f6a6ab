"""The feedback web app: the pages every 👍 / 👎, unsubscribe and profile link lands on.

Safety rules, in the order a request meets them:

* A GET (or HEAD) never changes anything. Mail scanners fetch every link in a message, so the
  vote page only *offers* the vote, in a form that ``/static/vote.js`` submits as soon as a
  person's browser shows it (with a visible button when scripts are off).
* The signed token in the URL is the only credential: it names the subscriber, the paper and
  the action, and nothing in a form or query string can change whom a request acts for.
* POSTs from another site are refused (Origin / Sec-Fetch-Site), except that a POST with no
  browser headers at all is allowed, because that is how mail providers send the RFC 8058
  one-click unsubscribe.
* Redirects only go to paths this app builds, bodies are capped at ``MAX_BODY``, every page is
  autoescaped Jinja2, and errors are rendered pages, never tracebacks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Config, SubscriberConfig
from ..deliver.slack import block_id
from ..errors import (
    ConfigError,
    FeedbackError,
    LinkExpired,
    PaperwireError,
    StoreBusy,
    StoreError,
)
from ..links import Action, Signer, VoteClaim, signer_for
from ..paper import safe_chars, shows_something, web_url
from ..rank.core import Weights
from ..rank.scope import scope as corpus_scope
from ..rank.session import RankingSession
from ..render import atom, render_page, templates_dir
from ..store import Store, utcnow
from .pool import Saturated, WorkPool
from .profile_cache import WAIT_SECONDS as PROFILE_WAIT
from .profile_cache import ProfileCache
from .votes import VOTES, apply_vote

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # the largest form here is the interests text
# Slack's block_actions payload carries the whole message a button is in (up to 50 blocks of up
# to 3,000 characters, \u-escaped JSON, then %-encoded: 8 bytes a character of non-Latin text)
SLACK_PATH = "/slack/actions"
SLACK_MAX_BODY = 1024 * 1024
MAX_INTERESTS = 2000
# the texts a reader writes on the profile page (SubscriberConfig fields of the same names)
WRITTEN = ("interests", "not_interested")
RECENT_VOTES = 30
LABELS = {"up": "👍 More like this", "down": "👎 Less like this"}
ACTION_OF = {1: "up", -1: "down"}
OTHER: dict[str, Action] = {"up": "down", "down": "up"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "x-robots-tag": "noindex, nofollow",
}
HTTP_ERRORS = {
    400: ("Bad request", "This request could not be understood."),
    403: ("Forbidden", "This request is not allowed."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Method not allowed", "This page cannot be used that way."),
    413: ("Request too large", "The request body is larger than this server accepts."),
    503: ("Busy", "The server is busy; try again in a few seconds."),
}
WORKERS = 4  # threads doing page work (SQLite, signing, the profile model); the rest queue
MAX_PENDING = 32  # requests queued or running before new ones get 503 + Retry-After
REQUEST_DEADLINE = 10.0  # seconds a request may wait in the queue before it is dropped (503)
STORE_BUSY_RETRY = 30  # seconds a client is told to wait when the database stayed locked
SLACK_UPDATE_SECONDS = 10.0  # a vote's update of its Slack message, all of it
HEALTH_WAIT = 2.0  # /healthz waits this long for the store, then gives its last answer
RECEIVED = "paperwire.received"  # scope key: (monotonic, wall clock) when the request arrived


def tidy(text: str) -> str:
    """A text written in the profile form as it is kept: control and bidi override characters
    dropped (a hand-made request put NULs in a reader's interests), spaces inside a line
    collapsed, blank lines dropped, line breaks kept (one topic a line separates them)."""
    text = safe_chars(text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    # a line of zero-width characters only is blank too: an edit of nothing but them looked
    # empty on the page and was kept as the reader's interests
    return "\n".join(line for line in lines if shows_something(line))


class Refused(Exception):
    """A request this app turns down with a clear page (bad link, unknown paper, cross-site)."""

    def __init__(self, status: int, title: str, message: str, hint: str = ""):
        super().__init__(message)
        self.status, self.title, self.message, self.hint = status, title, message, hint


def create_app(
    get_config: Callable[[], Config],
    db_path: str | os.PathLike,
    *,
    slack_signing_secret: str | None = None,
    workers: int = WORKERS,
    max_pending: int = MAX_PENDING,
    deadline: float = REQUEST_DEADLINE,
    profile_wait: float = PROFILE_WAIT,
    session: RankingSession | None = None,
) -> Guard:
    """The ASGI app; ``get_config`` is called per request, so a reloaded config takes effect.

    The Slack signing secret comes from the config (``slack_signing_secret``, or
    ``PAPERWIRE_SLACK_SIGNING_SECRET``), else the argument; without one, ``/slack/actions``
    answers 404. Page work runs on ``workers`` threads with at
    most ``max_pending`` requests queued or running (more get 503 + Retry-After); the caller
    that runs the app calls ``close()`` on it after the server stopped. A profile page waits
    up to ``profile_wait`` seconds for terms being computed, then shows the previous ones.
    ``session``: the daemon's, so the profile pages read the corpus its digests read (one in
    memory, not two).
    """
    pool = WorkPool(workers=workers, max_pending=max_pending, deadline=deadline)
    profiles = ProfileCache(Path(db_path), wait=profile_wait, session=session)
    feedback = FeedbackApp(
        get_config,
        Path(db_path),
        slack_signing_secret,
        pool=pool,
        profiles=profiles,
    )
    app = Starlette(
        routes=[
            Route("/", feedback.index, methods=["GET"]),
            Route("/healthz", feedback.healthz, methods=["GET"]),
            Route("/v/{token}", feedback.vote_page, methods=["GET"]),
            Route("/v/{token}", feedback.vote_post, methods=["POST"]),
            Route("/unsubscribe/{token}", feedback.unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe/{token}", feedback.unsubscribe_post, methods=["POST"]),
            Route("/profile/{token}", feedback.profile_page, methods=["GET"]),
            Route("/profile/{token}", feedback.profile_post, methods=["POST"]),
            Route(SLACK_PATH, feedback.slack_actions, methods=["POST"]),
            Route("/feed/{token}.atom", feedback.atom_feed, methods=["GET"]),  # the private feed
            Mount("/static", StaticFiles(directory=templates_dir() / "web" / "static")),
        ],
        exception_handlers={
            ClientDisconnect: _client_left,
            Refused: _refused,
            Saturated: _saturated,
            StoreError: _store_failed,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )

    # Starlette answers "/v/<token>/" with a redirect to an absolute URL built from the
    # request's Host header: behind a proxy that rewrites Host, the reader's token went to
    # http://127.0.0.1:8000/... (in clear text). No path here ends in "/": a 404, like any
    # other path the app does not have.
    app.router.redirect_slashes = False

    def close(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pool_done = pool.close(timeout)
        return profiles.close(max(deadline - time.monotonic(), 0)) and pool_done

    guard = Guard(app, close=close)
    guard.pool = pool  # for tests and metrics: how many requests are queued or running
    return guard


class FeedbackApp:
    """The request handlers; each opens its own Store (one SQLite connection per request)."""

    def __init__(
        self,
        get_config: Callable[[], Config],
        db_path: Path,
        slack_secret: str | None,
        *,
        pool: WorkPool,
        profiles: ProfileCache,
    ):
        self.get_config = get_config
        self.db_path = db_path
        self._slack_secret = slack_secret
        self._pool = pool
        self._lock = threading.Lock()
        self._signer: tuple[str | None, Signer] | None = None
        self.profiles = profiles
        # Vote ordering: (subscriber, paper) -> arrival (monotonic) of the click last applied.
        self._votes_lock = threading.Lock()
        self._last_click: dict[tuple[str, str], float] = {}
        self._health: dict[str, Any] | None = None  # the last /healthz answer
        self._health_lock = threading.Lock()
        self._health_reading: threading.Event | None = None

    def __repr__(self) -> str:
        return f"FeedbackApp(db_path={os.fspath(self.db_path)!r})"

    # -- shared pieces ----------------------------------------------------------------------

    def store(self) -> Store:
        return Store(self.db_path)

    def signer(self, config: Config, store: Store) -> Signer:
        """One signer per key, so an unset PAPERWIRE_SECRET is warned about once, not per click."""
        secret = config.secret.get_secret_value() if config.secret is not None else None
        key = hashlib.sha256(secret.encode()).hexdigest() if secret is not None else None
        with self._lock:
            if self._signer is None or self._signer[0] != key:
                self._signer = (key, signer_for(config, store, checks=True))
            return self._signer[1]

    async def work(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run page work on the bounded pool; its deadline counts from now, the request read
        whole: time in the queue, not a slow phone's upload (a vote whose body took 11 s to
        arrive was answered "Busy" on an idle server and lost). Clicks are still ordered by
        their arrival (:meth:`apply_in_order`)."""
        return await self._pool.run(fn, *args)

    def apply_in_order(
        self,
        store: Store,
        config: Config,
        claim: VoteClaim,
        received: tuple[float, dt.datetime],
        *,
        via: str,
    ) -> bool:
        """Apply a click unless a newer click on the same paper by the same reader was applied.

        Clicks are ordered by when they arrived, not by when a worker got to them: two quick
        clicks (👍 then undo) may be processed in either order, and the reader meant the last.
        The store's ``voted_at`` (the arrival time) orders clicks against other processes; the
        memory here also remembers undos, which leave no row behind.
        """
        arrived, clicked_at = received
        key = (claim.subscriber_id, claim.paper_id)
        with self._votes_lock:
            newer = self._last_click.get(key, float("-inf")) > arrived
            if newer or not apply_vote(store, config, claim, via=via, clicked_at=clicked_at):
                log.info(
                    "vote %s on %s by %s: a newer click was already applied; ignored",
                    claim.action,
                    claim.paper_id,
                    claim.subscriber_id,
                )
                return False
            self._last_click[key] = arrived
            if len(self._last_click) > 10_000:
                # Older clicks than the deadline can no longer arrive at a worker (they are
                # dropped with 503), so their entries are not needed.
                horizon = time.monotonic() - 2 * self._pool.deadline
                self._last_click = {k: t for k, t in self._last_click.items() if t >= horizon}
        log.info("vote %s on %s by %s", claim.action, claim.paper_id, claim.subscriber_id)
        return True

    def slack_secret(self, config: Config) -> str | None:
        # A config that grows a slack_signing_secret setting (file or env) takes precedence.
        configured = getattr(config, "slack_signing_secret", None)
        if configured is not None:
            return (
                configured.get_secret_value()
                if hasattr(configured, "get_secret_value")
                else str(configured)
            )
        return self._slack_secret

    # -- pages ------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return HTMLResponse(render_page("index.html"))

    async def healthz(self, request: Request) -> Response:
        """Always answers, and never behind the page workers: a busy app is still alive.

        The last fetch and send are read by one thread of its own (requests that come while it
        reads share its answer); if the read is slow (a locked database), the last answer is
        given instead.
        """
        with self._health_lock:
            done = self._health_reading
            if done is None:
                done = self._health_reading = threading.Event()
                threading.Thread(
                    target=self._read_health, args=(done,), name="healthz", daemon=True
                ).start()
        await _wait_event(done, timeout=HEALTH_WAIT)
        return JSONResponse(self._health or {"status": "ok"})

    def _read_health(self, done: threading.Event) -> None:
        try:
            with self.store() as store:
                fetch, send = store.last_event("fetch"), store.last_event("send")
            self._health = {"status": "ok", "last_fetch": _event(fetch), "last_send": _event(send)}
        except Exception:  # a broken database: the app is up, the details are not
            log.exception("healthz could not read the store")
        finally:
            with self._health_lock:
                self._health_reading = None
            done.set()

    async def vote_page(self, request: Request) -> Response:
        return await self.work(self._vote_page, request.path_params["token"])

    def _vote_page(self, token: str) -> Response:
        config = self.get_config()
        with self.store() as store:
            signer = self.signer(config, store)
            claim = _read_vote(signer, token)
            sub = _subscriber(config, claim.subscriber_id)
            paper = _paper(store, claim.paper_id)
            current = store.vote(sub.id, claim.paper_id)
        if claim.action == "undo":
            state = "undo" if current is not None else "none"
        else:
            state = "recorded" if current == VOTES[claim.action] else "pending"
        shown = claim.action if claim.action != "undo" else ACTION_OF.get(current or 0, "up")

        def path(action: Action) -> str:
            return f"/v/{signer.vote_token(sub.id, claim.paper_id, action)}"

        html = render_page(
            "vote.html",
            paper=paper,
            action=claim.action,
            state=state,
            labels=LABELS,
            current_action=ACTION_OF.get(current or 0, ""),
            other_action=OTHER[shown],
            self_path=f"/v/{token}",
            change_path=path(OTHER[shown]),
            undo_path=path("undo"),
            up_path=path("up"),
            down_path=path("down"),
            profile_path=f"/profile/{signer.subscriber_token('profile', sub.id)}",
        )
        return HTMLResponse(html)

    async def vote_post(self, request: Request) -> Response:
        _check_origin(request, self.get_config())
        async with request.form(max_files=0, max_fields=10) as form:
            to_profile = form.get("return_to") == "profile"
        received = request.scope.get(RECEIVED) or (time.monotonic(), utcnow())
        return await self.work(self._vote_post, request.path_params["token"], to_profile, received)

    def _vote_post(
        self, token: str, to_profile: bool, received: tuple[float, dt.datetime]
    ) -> Response:
        config = self.get_config()
        with self.store() as store:
            signer = self.signer(config, store)
            claim = _read_vote(signer, token)
            sub = _subscriber(config, claim.subscriber_id)
            if claim.action != "undo":
                _paper(store, claim.paper_id)
            self.apply_in_order(store, config, claim, received, via="web")
        # Post/redirect/get: a reload shows the recorded vote instead of posting again.
        if to_profile:
            location = f"/profile/{signer.subscriber_token('profile', sub.id)}"
        else:
            location = f"/v/{token}"
        return RedirectResponse(location, status_code=303)

    async def unsubscribe_page(self, request: Request) -> Response:
        return await self.work(self._unsubscribe, request.path_params["token"], None)

    async def unsubscribe_post(self, request: Request) -> Response:
        # RFC 8058: mail providers POST "List-Unsubscribe=One-Click" from their servers, with
        # no Origin; any POST here unsubscribes, unless it is our own "subscribe again" button.
        _check_origin(request, self.get_config())
        async with request.form(max_files=0, max_fields=10) as form:
            resubscribe = form.get("action") == "resubscribe"
        return await self.work(self._unsubscribe, request.path_params["token"], not resubscribe)

    def _unsubscribe(self, token: str, unsubscribe: bool | None) -> Response:
        config = self.get_config()
        with self.store() as store:
            signer = self.signer(config, store)
            subscriber_id = _read_subscriber(signer, "unsubscribe", token)
            sub = _subscriber(config, subscriber_id)
            if unsubscribe is not None:
                store.set_unsubscribed(sub.id, unsubscribe, sub.email)
                log.info("%s %s", "unsubscribed" if unsubscribe else "resubscribed", sub.id)
            unsubscribed = sub.id in store.unsubscribes([(sub.id, sub.email)])
        html = render_page(
            "unsubscribe.html",
            subscriber_name=sub.name or sub.id,
            unsubscribed=unsubscribed,
            self_path=f"/unsubscribe/{token}",
            profile_path=f"/profile/{signer.subscriber_token('profile', sub.id)}",
        )
        return HTMLResponse(html)

    async def profile_page(self, request: Request) -> Response:
        saved = request.query_params.get("saved") == "1"
        every = request.query_params.get("votes") == "all"
        return await self.work(self._profile_page, request.path_params["token"], saved, every)

    def _profile_page(self, token: str, saved: bool, every: bool = False) -> Response:
        """The profile page: with ``every``, each of the reader's votes, not the latest
        ``RECENT_VOTES`` (an old 👍 still pulls papers like it in for months, and a reader
        whose interests moved on must be able to find it and take it back)."""
        config = self.get_config()
        with self.store() as store:
            signer = self.signer(config, store)
            sub = _subscriber(config, _read_subscriber(signer, "profile", token))
            override = store.interests_overrides().get(sub.id)
            avoid = store.not_interested_overrides().get(sub.id)
            votes = store.votes([sub.id])
            terms = self.profiles.terms(
                store, sub, override=(override, avoid), votes=votes, now=utcnow(),
                scope=corpus_scope(store, config),
                encoder_on=config.ranking.embeddings is not None,
            )  # fmt: skip
            shown = votes if every else votes[:RECENT_VOTES]
            papers = store.papers(v["paper_id"] for v in shown)
            unsubscribed = sub.id in store.unsubscribes([(sub.id, sub.email)])
            store_seeds = len(store.seeds([sub.id]).get(sub.id, ()))
            feed_url = atom.feed_url(store, config.base_url, signer, sub.id)
        recent = []
        for vote in shown:
            paper = papers.get(vote["paper_id"], {})
            recent.append(
                {
                    "title": paper.get("title") or vote["paper_id"],
                    "url": web_url(paper.get("url")),
                    "vote": vote["vote"],
                    "voted_at": _local_date(vote["voted_at"], sub.tz),
                    "via": vote["via"] or "web",
                    "undo_path": f"/v/{signer.vote_token(sub.id, vote['paper_id'], 'undo')}",
                }
            )
        html = render_page(
            "profile.html",
            subscriber_name=sub.name or sub.id,
            positive=terms.learned.positive if terms.learned else [],
            negative=terms.learned.negative if terms.learned else [],
            terms_current=terms.current,
            terms_known=terms.learned is not None,
            interests=override if override is not None else sub.interests,
            config_interests=sub.interests,
            not_interested=avoid if avoid is not None else sub.not_interested,
            config_not_interested=sub.not_interested,
            interests_edited=override is not None,
            not_interested_edited=avoid is not None,
            edited=override is not None or avoid is not None,
            saved=saved,
            max_interests=MAX_INTERESTS,
            seeds=len(sub.seed_papers) + store_seeds,
            likes=sum(1 for v in votes if v["vote"] > 0),
            dislikes=sum(1 for v in votes if v["vote"] < 0),
            votes=recent,
            votes_total=len(votes),
            every_vote=every,
            all_votes_path=f"/profile/{token}?votes=all",
            half_life_days=round(Weights().half_life_days),
            unsubscribed=unsubscribed,
            self_path=f"/profile/{token}",
            unsubscribe_path=f"/unsubscribe/{signer.subscriber_token('unsubscribe', sub.id)}",
            **_feed_and_filters(sub, feed_url),
        )
        return HTMLResponse(html)

    async def profile_post(self, request: Request) -> Response:
        _check_origin(request, self.get_config())
        async with request.form(max_files=0, max_fields=10) as form:
            action = form.get("action", "save")
            texts = {field: form.get(field) for field in WRITTEN}
        if action not in ("save", "reset") or not all(
            t is None or isinstance(t, str) for t in texts.values()
        ):
            raise Refused(400, "Bad request", "This form was not filled in as expected.")
        # a field the form did not send (a page from before it had one) keeps its edit
        written = {f: None if t is None else tidy(str(t)) for f, t in texts.items()}
        token = request.path_params["token"]
        saved = written if action == "save" else None
        return await self.work(self._profile_post, token, saved)

    def _profile_post(self, token: str, written: dict[str, str | None] | None) -> Response:
        """Save the reader's texts (``written``; None: reset both to the config's)."""
        config = self.get_config()
        with self.store() as store:
            sub = _subscriber(
                config, _read_subscriber(self.signer(config, store), "profile", token)
            )
            edits: dict[str, str | None] = dict.fromkeys(WRITTEN)  # None: the config's
            if written is not None:
                edits["interests"] = store.interests_overrides().get(sub.id)
                edits["not_interested"] = store.not_interested_overrides().get(sub.id)
                for field, text in written.items():
                    if text is None:
                        continue
                    # the config's own text is no edit: a later change to the config applies,
                    # and it is not held to the page's limit (the form sends it back unasked)
                    if text == tidy(getattr(sub, field)):
                        edits[field] = None
                        continue
                    if len(text) > MAX_INTERESTS:
                        what = "Interests" if field == "interests" else "Topics not wanted"
                        raise Refused(
                            400,
                            f"{what} too long",
                            f"{what} can be at most {MAX_INTERESTS} characters; "
                            f"yours have {len(text)}.",
                            "Shorten them to the topics that matter most and save again.",
                        )
                    edits[field] = text
            store.set_interests(sub.id, edits["interests"], edits["not_interested"])
        return RedirectResponse(f"/profile/{token}?saved=1", status_code=303)

    # -- Slack ------------------------------------------------------------------------------

    async def atom_feed(self, request: Request) -> Response:
        """The subscriber's private Atom feed of picks (:mod:`paperwire.render.atom`)."""
        if_none_match = request.headers.get("if-none-match", "")
        return await self.work(self._atom_feed, request.path_params["token"], if_none_match)

    def _atom_feed(self, token: str, if_none_match: str) -> Response:
        config = self.get_config()
        with self.store() as store:
            signer = self.signer(config, store)
            try:
                subscriber_id = atom.read_feed_token(store, signer, token)
            except FeedbackError as exc:
                raise _link_refused(exc) from None
            body = atom.render_feed(store, config, signer, _subscriber(config, subscriber_id))
        # a feed reader polls hourly: the same document (render_feed's links are signed at
        # fixed times) is a 304 to one that sends back its ETag. private: never in a shared cache
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
        headers = {"etag": etag, "cache-control": "private, no-cache"}
        if etag in (t.strip() for t in if_none_match.split(",")):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers=headers)

    async def slack_actions(self, request: Request) -> Response:
        """Slack's interactivity request URL: verify, record the votes, update the message."""
        config = self.get_config()
        secret = self.slack_secret(config)
        if not secret:
            raise Refused(404, "Not found", "Slack buttons are not enabled on this server.")
        body = await request.body()
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not _signed_by_slack(secret, body, timestamp, signature):
            return JSONResponse({"error": "invalid or stale Slack signature"}, status_code=401)
        try:
            payload = json.loads(parse_qs(body.decode("utf-8"))["payload"][0])
        except (UnicodeDecodeError, KeyError, IndexError, ValueError):
            return JSONResponse(
                {"error": "expected a form field 'payload' with JSON"}, status_code=400
            )
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return Response(status_code=200)
        received = request.scope.get(RECEIVED) or (time.monotonic(), utcnow())
        reply = await self.work(self._slack_votes, config, payload, received)
        response_url = payload.get("response_url")
        if reply is None or not isinstance(response_url, str):
            return Response(status_code=200)
        # Slack wants the acknowledgement within 3 s; the message update goes out after it.
        return Response(
            status_code=200, background=BackgroundTask(_post_to_slack, response_url, reply)
        )

    def _slack_votes(
        self, config: Config, payload: dict[str, Any], received: tuple[float, dt.datetime]
    ) -> dict[str, Any] | None:
        message = payload.get("message")
        if not isinstance(message, dict):
            message = {}
        blocks = message.get("blocks")
        if not isinstance(blocks, list):
            blocks = []
        recorded: dict[str, str] = {}
        problem = None
        with self.store() as store:
            signer = self.signer(config, store)
            for action in payload.get("actions") or []:
                if not isinstance(action, dict):
                    continue
                try:
                    claim = _read_vote(signer, _slack_token(action))
                    _subscriber(config, claim.subscriber_id)
                    if claim.action != "undo":
                        _paper(store, claim.paper_id)
                    self.apply_in_order(store, config, claim, received, via="slack")
                except Refused as exc:
                    problem = exc.message
                    continue
                # the block of the signed paper, as the digest named it (not the payload's word)
                recorded[block_id(claim.paper_id)] = claim.action
        if recorded:
            return {
                "replace_original": True,
                "text": message.get("text", ""),
                "blocks": [_mark_vote(block, recorded) for block in blocks],
            }
        if problem:
            return {"response_type": "ephemeral", "replace_original": False, "text": problem}
        return None


# -- tokens and lookups ---------------------------------------------------------------------


def _feed_and_filters(sub: SubscriberConfig, feed_url: str) -> dict[str, Any]:
    """What the profile page shows beside the model: the feed link, followed authors and the
    hard filters."""
    return {
        "feed_url": feed_url,
        "follow_authors": list(sub.follow_authors),
        "must_match": list(sub.must_match),
        "never_match": list(sub.never_match),
    }


def _local_date(stamp: str | None, tz: dt.tzinfo) -> str:
    """A stored UTC time as the date it was where the reader lives ("" when unknown): a vote
    at 08:30 in Tokyo on 7 December is not one of the 6th."""
    if not stamp:
        return ""
    try:
        moment = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp[:10]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(tz).date().isoformat()


def _read_vote(signer: Signer, token: str) -> VoteClaim:
    try:
        return signer.read_vote(token)
    except FeedbackError as exc:
        raise _link_refused(exc) from None


def _read_subscriber(signer: Signer, purpose: str, token: str) -> str:
    try:
        return signer.read_subscriber(purpose, token)  # type: ignore[arg-type]
    except FeedbackError as exc:
        raise _link_refused(exc) from None


def _link_refused(exc: FeedbackError) -> Refused:
    message = _sentence(str(exc))
    if isinstance(exc, LinkExpired):
        # the message says to use a newer digest's links already: the hint adds what is left
        return Refused(410, "This link has expired", message, "Nothing was changed.")
    return Refused(
        400,
        "This link does not work",
        message,
        "Open the link exactly as it appears in your digest, or use a newer digest. "
        "Nothing was changed.",
    )


def _subscriber(config: Config, subscriber_id: str) -> SubscriberConfig:
    try:
        return config.subscriber(subscriber_id)
    except ConfigError:
        # The ConfigError lists every subscriber id; a browser must not see that.
        raise Refused(
            404,
            "No such subscriber",
            "This link belongs to a subscriber who is no longer on this paperwire server.",
            "Nothing was changed.",
        ) from None


def _paper(store: Store, paper_id: str) -> dict[str, Any]:
    paper = store.paper(paper_id)
    if paper is None:
        raise Refused(404, "Unknown paper", f"Paper {paper_id} is not in this server's store.")
    # autoescaping does not stop a javascript: URL; web_url does
    links = ("url", "code_url", "project_url")
    return {**paper, **{key: web_url(paper.get(key)) for key in links}}


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _event(event: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if event is None else {"at": event["at"], **event["detail"]}


async def _wait_event(done: threading.Event, timeout: float) -> None:
    """Wait for a thread's event without blocking the event loop (or taking a pool thread)."""
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


# -- cross-site checks ----------------------------------------------------------------------


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _check_origin(request: Request, config: Config) -> None:
    """Refuse POSTs a browser sends from another site; allow ones with no browser headers.

    Pages here send ``Referrer-Policy: no-referrer``, and browsers then send ``Origin: null``
    on our own form posts, so a "null" origin is judged by ``Sec-Fetch-Site`` instead. A
    malformed ``Origin`` or ``Host`` (a bad port, a broken IPv6 literal) is the client's error:
    400, never a server error.
    """
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if origin and origin != "null":
        own = {_origin_of(config.base_url)}
        host = request.headers.get("host")
        try:
            if host:
                own.add(_origin_of(f"{request.scope.get('scheme', 'http')}://{host}"))
            theirs = _origin_of(origin)
        except ValueError:
            raise Refused(
                400, "Bad request", "The request's Origin or Host header is malformed."
            ) from None
        if theirs in own:
            return
    elif site is None or site in ("same-origin", "none"):
        return
    raise Refused(
        403,
        "Cross-site request refused",
        "This form can only be sent from paperwire's own pages.",
        "Open the link from your digest and use the buttons on that page.",
    )


# -- Slack helpers --------------------------------------------------------------------------


def _slack_token(action: dict[str, Any]) -> str:
    """The signed vote token of a Slack button: its value, else the token in its /v/ URL."""
    value = action.get("value")
    if isinstance(value, str) and "|" not in value and value.count(".") >= 2:
        return value
    url = action.get("url")
    if isinstance(url, str):
        path = urlsplit(url).path
        if path.startswith("/v/") or "/v/" in path:
            return path.rsplit("/v/", 1)[1]
    return value if isinstance(value, str) else ""


def _mark_vote(block: Any, recorded: dict[str, str]) -> Any:
    """The same block, with a ✓ on the button the person chose (buttons stay, to change it)."""
    if not isinstance(block, dict) or block.get("type") != "actions":
        return block
    chosen = recorded.get(str(block.get("block_id", "")))
    if chosen is None:
        return block
    elements = []
    for element in block.get("elements") or []:
        kind = (
            str(element.get("action_id", "")).removeprefix("vote_")
            if isinstance(element, dict)
            else ""
        )
        if kind not in LABELS:
            elements.append(element)
            continue
        marked = {k: v for k, v in element.items() if k != "style"}
        label = ("✓ " if kind == chosen else "") + LABELS[kind]
        marked["text"] = {"type": "plain_text", "text": label, "emoji": True}
        if kind == chosen:
            marked["style"] = "primary"
        elements.append(marked)
    return {**block, "elements": elements}


def _signed_by_slack(secret: str, body: bytes, timestamp: str, signature: str) -> bool:
    """Slack's signature over this request, fresh. Anything that is not, however malformed,
    is "no": slack_sdk decodes the body as UTF-8 and the timestamp with int(), so a body of
    0xff or a timestamp "²" (a digit to str.isdigit, read from latin-1 headers) raised, a 500
    with a traceback for a request anyone can send."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    try:
        return SignatureVerifier(secret).is_valid(body, timestamp, signature)
    except (UnicodeDecodeError, ValueError):
        return False


async def _post_to_slack(response_url: str, payload: dict[str, Any]) -> None:
    if urlsplit(response_url).scheme not in ("https", "http"):
        return
    try:
        # 10 s for the whole update, however slowly Slack answers (httpx's timeout is per read);
        # only the status is needed, so the answer is left unread (leaving closes the line),
        # as the webhook's is read no further than slack.MAX_ANSWER
        async with (
            asyncio.timeout(SLACK_UPDATE_SECONDS),
            httpx.AsyncClient() as client,
            client.stream("POST", response_url, json=payload) as response,
        ):
            status = response.status_code
        if status >= 400:
            log.warning("Slack refused the message update: HTTP %s", status)
    except TimeoutError:
        log.warning(
            "could not update the Slack message: no answer within %g s", SLACK_UPDATE_SECONDS
        )
    except httpx.HTTPError as exc:
        log.warning("could not update the Slack message: %s", type(exc).__name__)


# -- error pages ----------------------------------------------------------------------------


def _error_page(
    status: int,
    title: str,
    message: str,
    hint: str = "",
    headers: Mapping[str, str] | None = None,
) -> Response:
    try:
        html = render_page("error.html", status=status, title=title, message=message, hint=hint)
    except PaperwireError:
        return Response(f"{title}\n", status_code=status, media_type="text/plain", headers=headers)
    return HTMLResponse(html, status_code=status, headers=headers)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _error_page(exc.status, exc.title, exc.message, exc.hint)


async def _saturated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Saturated)
    title, message = HTTP_ERRORS[503]
    headers = {"retry-after": str(exc.retry_after)}
    return _error_page(503, title, message, "Nothing was changed.", headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title, message = HTTP_ERRORS.get(exc.status_code, ("Error", "This request failed."))
    return _error_page(exc.status_code, title, message, headers=exc.headers)


async def _client_left(request: Request, exc: Exception) -> Response:
    """A client that hung up before its body arrived: one line, no traceback (nothing is
    recorded, and nobody is left to answer)."""
    first = request.url.path.split("/")[1]
    shown = f"/{first}/…" if request.url.path.count("/") > 1 else f"/{first}"  # no token
    log.info("%s %s: the client left before its request body had arrived", request.method, shown)
    return Response(status_code=400)


async def _store_failed(request: Request, exc: Exception) -> Response:
    """The database refused (locked past its busy timeout by another process, read-only,
    full): one log line, not a traceback; a lock is temporary, so 503 with when to try again
    (a locked store was a 500 and ~65 lines of traceback; found in review)."""
    first = request.url.path.split("/")[1]
    log.error("%s /%s/…: %s", request.method, first, exc)  # no token in the log
    if isinstance(exc, StoreBusy):
        title, message = HTTP_ERRORS[503]
        headers = {"retry-after": str(STORE_BUSY_RETRY)}
        return _error_page(503, title, message, "Nothing was changed.", headers=headers)
    return _error_page(
        500,
        "Something went wrong",
        "The server could not record this.",
        "Nothing was changed; try again later.",
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this page is sent, so the server log keeps the traceback.
    return _error_page(
        500,
        "Something went wrong",
        "The server could not handle this request.",
        "Nothing you did caused this; try again in a minute.",
    )


# -- the outermost layer --------------------------------------------------------------------


class _TooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413)


class Guard:
    """Security headers on every response (error pages included), the request body limit,
    and each request's arrival time (votes are ordered by it; the queue's deadline counts from
    when the body was read)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body: int = MAX_BODY,
        close: Callable[[float], bool] | None = None,
    ):
        self.app = app
        self.max_body = max_body
        self._close = close
        self.pool: WorkPool | None = None

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the app's worker threads (after the server stopped); True if all ended."""
        return self._close(timeout) if self._close is not None else True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[RECEIVED] = (time.monotonic(), utcnow())
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", []))
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:  # pages carry signed links; keep them out of shared caches
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        limit = SLACK_MAX_BODY if scope.get("path") == SLACK_PATH else self.max_body
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            title, message = HTTP_ERRORS[413]
            await _error_page(413, title, message)(scope, receive, send_with_headers)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge  # a chunked body; answered 413 by the HTTPException handler
            return message

        await self.app(scope, limited_receive, send_with_headers)
