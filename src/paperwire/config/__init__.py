"""Load and validate ``subscribers.yaml`` and the ``PAPERWIRE_*`` environment.

Config is read once into frozen pydantic models. Precedence for each setting: CLI flag, then
``PAPERWIRE_*`` environment variable, then the file, then the default. The file is read one way
(YAML 1.2, :mod:`paperwire.config.yamlread`), and every mistake in it is reported at once, in file
order, each as ``subscribers.yaml:14: subscribers[2].email: ...``, never as a traceback.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import email_validator
import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.networks import validate_email

from ..errors import ConfigError
from ..redact import MASK, redact, redact_url, remember_config
from . import yamlread
from .channels import (
    CREDENTIALS_CUT,
    SmtpSettings,
    apprise_url_problem,
    credentials_cut,
    parse_smtp_url,
)
from .embeddings import BUNDLED, ENCODER, check_spec, home_path

DEFAULT_CONFIG = "subscribers.yaml"
DEFAULT_DB = "paperwire.db"
BUNDLED_PREFIX = "bundled:"
BUNDLED_FEEDS = ("sample-arxiv-cs.xml", "sample-hf-daily-papers.json")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# A digest missed while paperwire was down (or between cron runs) still goes out this long after
# its time; later, its papers wait for the next digest. One default for send, status and run.
DEFAULT_GRACE = dt.timedelta(hours=12)
# How far a digest's record may be ahead of the clock and still count as composed: further,
# the clock was ahead when it was made (a wrong RTC, a mistyped `date -s`), and read as it is,
# every slot until that moment would count as covered and its papers as already reached.
CLOCK_SLACK = dt.timedelta(minutes=10)
# A config file is untrusted input too: a 10,000-subscriber file is ~2.5 MB.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
FEED_SCHEMES = ("http", "https", "file")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED = re.compile(r"'[^'\n]*'")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?$")
MIN_SECRET = 16  # characters of PAPERWIRE_SECRET (secret:) at least
# Settings whose value is a secret: an error about them never quotes the value.
SECRET_FIELDS = {"smtp_url", "slack_webhook", "secret", "slack_signing_secret", "notify"}
# Control characters have no place in a URL, an address or a header: a CR from a .env file
# saved with Windows line endings made httpx refuse a webhook mid-send, and one in From made
# the e-mail package refuse every message. Refused at load instead (C0, DEL, C1, and the
# Unicode line and paragraph separators).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES = {
    "\r": "a carriage return (\\r, as a file or .env saved with Windows line endings leaves)",
    "\n": "a line break (\\n)",
    "\t": "a tab (\\t)",
    "\x1b": "an escape character (\\x1b)",
    "\x00": "a NUL byte",
}


def control_problem(value: str) -> str | None:
    """Why ``value`` cannot be a URL, address or header value (a control character in it,
    named, never quoted: the value may be a secret); None when it has none."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    char = found.group()
    name = _CONTROL_NAMES.get(char) or f"the control character U+{ord(char):04X}"
    return f"contains {name} at character {found.start() + 1}; remove it"


def _one_line(value: str) -> str:
    problem = control_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def http_url_problem(value: str, *, example: str, secret: bool = False) -> str | None:
    """Why ``value`` is not an http(s) URL httpx can request (a secret one is never quoted);
    None when it is one."""
    problem = control_problem(value)
    if problem:
        return problem
    shown = "the value" if secret else repr(value)
    try:
        parts = urlsplit(value)
        if credentials_cut(value, parts.netloc):
            return CREDENTIALS_CUT
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        httpx.URL(value)
    except (ValueError, httpx.InvalidURL):
        return f"{shown} is not a valid URL (expected one like {example})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"{shown} is not an http(s) URL (expected one like {example})"
    if any(c.isspace() for c in parts.netloc):  # httpx takes "exa mple.org"; no DNS does
        return f"{shown} is not a valid URL: a space in its host name"
    return None


def _http_url_field(example: str, *, secret: bool = False) -> AfterValidator:
    def check(value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        problem = http_url_problem(text, example=example, secret=secret)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _origin_only(value: str) -> str:
    """``base_url`` is where ``paperwire serve`` answers, and it answers at the root: its pages
    post to ``/v/…`` and load ``/static/…``, so under a path (a proxy's ``/paperwire/``)
    every link would be a 404, or its forms and scripts would miss the prefix."""
    parts = urlsplit(value)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"{value!r} has a path; paperwire serve answers at the root of its address, so "
            f"give it a host name or port of its own (e.g. {parts.scheme}://{parts.netloc})"
        )
    if parts.username is not None or parts.password is not None:
        # every digest's links would carry them, to every reader
        raise ValueError("a user name or password in base_url would be in every digest's links")
    return value


# a URL, address or header value: one line, no control characters
Line = Annotated[str, AfterValidator(_one_line)]


# the longest budget a setting takes; every count and size has a bound too: past it a number
# only overflows what it is handed to (SQLite's integers, the scheduler's C int: a traceback)
DAY_SECONDS = 86_400


class _Frozen(BaseModel):
    # no setting is a NaN or infinity: YAML's .nan passed every range check but one (NaN
    # compares false), and .inf made a budget endless
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# https://arxiv.org/list/cs.CL/new (or /recent, /pastweek, a month): arXiv's web page of a
# listing, which people copy from the browser; https://rss.arxiv.org/rss/cs.CL is its feed
_ARXIV_LISTING = re.compile(
    r"https?://(?:www\.|export\.)?arxiv\.org/list/(?P<category>[A-Za-z.-]+)(?:[/?#]|$)",
    re.IGNORECASE,
)


class FeedConfig(_Frozen):
    """One source of papers: a URL, a local file path, or ``bundled:NAME``."""

    url: str = Field(repr=False)  # may carry credentials
    name: Line | None = None
    kind: Literal["auto", "feed", "hf-daily"] = "auto"

    @field_validator("url")
    @classmethod
    def _readable_scheme(cls, value: str) -> str:
        problem = control_problem(value)
        if problem:  # never quoted: a feed URL may carry a password
            raise ValueError(problem)
        if not value.strip():  # read as a path: the config's own folder, "cannot read"
            raise ValueError("is empty: a URL, a file path or bundled:NAME")
        if value.startswith(BUNDLED_PREFIX):
            if value[len(BUNDLED_PREFIX) :] not in BUNDLED_FEEDS:
                raise ValueError(
                    f"{value!r} is not a bundled feed (bundled: {', '.join(BUNDLED_FEEDS)})"
                )
            return value
        scheme = urlsplit(value).scheme.lower()
        # a one-letter "scheme" is a Windows drive (C:\feeds\x.xml), a path like any other
        if len(scheme) > 1 and scheme not in FEED_SCHEMES:
            raise ValueError(
                f"{scheme}:// feeds cannot be read; use http(s)://, file://, a file path "
                "or bundled:NAME"
            )
        if scheme in ("http", "https") and not urlsplit(value).hostname:
            raise ValueError(f"{redact_url(value)!r} has no host name")
        if scheme in ("http", "https"):
            problem = http_url_problem(value, example="https://rss.arxiv.org/rss/cs.CL")
            if problem:
                raise ValueError(problem.replace(repr(value), repr(redact_url(value))))
            listing = _ARXIV_LISTING.match(value.strip())
            if listing:  # the page a browser shows; fetched, it is HTML and never a paper
                raise ValueError(
                    "arXiv's listing pages are web pages, not feeds; use "
                    f"https://rss.arxiv.org/rss/{listing['category']}"
                )
        return value

    @property
    def label(self) -> str:
        """How the feed is named in output, logs and the store: never with its credentials."""
        return self.name or redact_url(self.url)


class AlertConfig(_Frozen):
    """When a new paper is far above a subscriber's usual bar, send it at once."""

    enabled: bool = True
    # Percentile of the subscriber's own score distribution over recent papers; a paper above it
    # is an alert. The same number means the same rarity for every subscriber.
    percentile: float = Field(default=99.5, ge=50, le=100)
    max_per_day: int = Field(default=2, ge=0, le=50)
    min_history: int = Field(default=100, ge=10, le=1_000_000)


def _apprise_url(value: SecretStr) -> SecretStr:
    """A ``notify`` URL Apprise can parse (checked at load, without sending anything)."""
    problem = control_problem(value.get_secret_value()) or apprise_url_problem(
        value.get_secret_value()
    )
    if problem:
        raise ValueError(problem)
    return value


NotifyURL = Annotated[SecretStr, AfterValidator(_apprise_url)]


# pydantic's EmailStr runs email_validator's full check on every address, and its IDNA rules
# per character of the domain are most of the cost: 0.1 ms an address, 2 s of every command
# at 20,000 subscribers. A plain ASCII local part (RFC 5322's dot-atom, at most 64 characters)
# is checked here and each distinct domain once; anything else (a display name, Unicode, a
# quoted local part, a bad domain) goes to pydantic's check whole, for the same answer and the
# same error (tests/test_config.py holds the two equal).
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@functools.lru_cache(maxsize=4096)
def _normalised_domain(domain: str) -> str:
    return email_validator.validate_email(f"postmaster@{domain}", check_deliverability=False).domain


class _ControlInAddress(ValueError):
    """An address with a control character: said as such, not as "not a valid address"."""


def _email_address(value: str) -> str:
    problem = control_problem(value)
    if problem:
        raise _ControlInAddress(problem)
    local, at, domain = value.rpartition("@")
    if at and len(local) <= 64 and len(value) <= 254 and _DOT_ATOM.fullmatch(local):
        try:
            return f"{local}@{_normalised_domain(domain)}"
        except email_validator.EmailNotValidError:
            pass  # pydantic's check says why, in its words
    return validate_email(value)[1]


EmailAddress = Annotated[str, AfterValidator(_email_address)]


@functools.lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Every IANA zone name this machine knows, by its lowercase form."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _zone_like(value: str) -> str | None:
    """The zone a mistyped one most likely means: the same name in another case
    ("europe/london"), else a close spelling ("Europe/Londn"), else None."""
    zones = _zones()
    if value.lower() in zones:
        return zones[value.lower()]
    close = difflib.get_close_matches(value.lower(), list(zones), n=1, cutoff=0.85)
    return zones[close[0]] if close else None


# A From header's value: one address, bare or in brackets after a display name (quoted if it
# holds a comma). Syntax only: a lab's relay may well send as digest@lab.internal or .test,
# which email_validator refuses as undeliverable names.
_MAILBOX = r"[^@\s,;<>\"]+@[^@\s,;<>\"]+"
_FROM_ADDRESS = re.compile(
    rf'\s*(?:(?:"(?:[^"\\]|\\.)*"|[^"<>,;@]*?)\s*<{_MAILBOX}>|{_MAILBOX})\s*'
)


# characters of an interests (or not_interested) text in subscribers.yaml
MAX_INTERESTS = 10_000


class SubscriberConfig(_Frozen):
    """One reader (or a team channel) and what they care about."""

    id: str
    name: Line | None = None
    email: EmailAddress | None = None
    slack_webhook: (
        Annotated[
            SecretStr, _http_url_field("https://hooks.slack.com/services/T…/B…/…", secret=True)
        ]
        | None
    ) = None
    interests: str = ""
    # topics to see less of, written like the interests: a soft penalty, not a filter
    # (never_match is the filter)
    not_interested: str = ""
    seed_papers: tuple[str, ...] = ()
    digest_size: int = Field(default=10, ge=1, le=100)
    timezone: str = "UTC"
    digest_time: dt.time = dt.time(8, 0)
    digest_days: tuple[str, ...] = WEEKDAYS
    alerts: bool = True
    enabled: bool = True
    # a private Atom feed as a channel of its own, followed authors, hard filters,
    # and Apprise URLs (Discord, Telegram, ntfy, ...: each holds a token, so each is secret)
    feed: bool = False
    follow_authors: tuple[str, ...] = ()
    must_match: tuple[str, ...] = ()
    never_match: tuple[str, ...] = ()
    notify: tuple[NotifyURL, ...] = ()

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, value: str) -> str:
        if not _ID.fullmatch(value):  # match: "$" also matches before a last newline
            raise ValueError(
                f"{value!r} is not a valid id (letters, digits, '.', '_', '-'; at most 64)"
            )
        return value

    @field_validator("interests", "not_interested")
    @classmethod
    def _a_list_of_topics(cls, value: str) -> str:
        # each phrase is encoded and matched on its own: a pasted document (1.8 MB) made one
        # digest run take two minutes; the profile page's form takes 2,000 characters
        if len(value) > MAX_INTERESTS:
            raise ValueError(
                f"is {len(value):,} characters long; at most {MAX_INTERESTS:,}: write the "
                "topics, not a document (seed_papers and 👍 teach the rest)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        value = value.strip()  # 'Europe/Berlin ', copied with a space, as digest_time and email
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            near = _zone_like(value)
            hint = f"did you mean {near!r}?" if near else "e.g. Europe/Paris"
            raise ValueError(f"{value!r} is not a known IANA time zone, {hint}") from None
        return value

    @field_validator("digest_time", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        if isinstance(value, dt.time):
            return value
        match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise ValueError(f"{value!r} is not a time like 07:30 (24-hour clock)")
        hour, minute, second = match.groups()
        return dt.time(int(hour), int(minute), int(second or 0))

    @field_validator("digest_days", mode="before")
    @classmethod
    def _weekdays(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"weekdays": WEEKDAYS[:5], "daily": WEEKDAYS}.get(
                value.strip().lower(), [value]
            )
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of days like [mon, wed], 'weekdays' or 'daily'")
        if not value:
            raise ValueError(
                "is empty, so no digest would ever be sent: list days like [mon, wed], "
                "or write 'weekdays' or 'daily'"
            )
        days = []
        for token in value:
            word = str(token).strip().lower()
            if word in WEEKDAYS:
                days.append(word)
            elif word in DAY_NAMES:
                days.append(word[:3])
            else:
                raise ValueError(
                    f"{token!r} is not a weekday (use mon..sun, 'weekdays' or 'daily')"
                )
        return tuple(dict.fromkeys(days))

    @model_validator(mode="after")
    def _has_a_channel(self) -> SubscriberConfig:
        if self.email is None and self.slack_webhook is None and not self.feed and not self.notify:
            raise ValueError("needs an email, a slack_webhook, notify URLs or feed: true")
        return self

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class SenderConfig(_Frozen):
    """Who the digests come from; the SMTP URL usually comes from the environment."""

    from_address: Line = "Paperwire <paperwire@localhost>"
    smtp_url: SecretStr | None = None
    smtp_connections: int = Field(default=4, ge=1, le=64)
    list_id: Line = "paperwire.localhost"
    # A 4xx reply or a dropped connection is retried this many times in a run, backing off from
    # retry_backoff seconds; after that the digest stays due and is tried again by a later run
    # after a back-off (5 minutes, then 20, then hourly), and failed after six tries of an
    # outage, or three that were "maybe delivered" (deliver/channel.py TRIES, MAYBE_TRIES; see
    # README).
    retry_attempts: int = Field(default=4, ge=1, le=10)
    retry_backoff: float = Field(default=1.0, ge=0, le=60)
    # Seconds one message (an e-mail, a Slack or Apprise message) may take in all, retries and
    # waits included; one sent and not answered by then is "maybe delivered" (see README).
    timeout: float = Field(default=60.0, gt=0, le=600)
    # Seconds one send run may spend delivering, all its messages together: each message's
    # deadline is `timeout` or what is left of this, whichever is shorter, and what the run
    # did not get to stays due for the next run.
    run_budget: float = Field(default=900.0, gt=0, le=DAY_SECONDS)
    # Processes that render e-mails when a run sends many (unset: one per core, at most 4;
    # 1: render in the sending process).
    render_processes: int | None = Field(default=None, ge=1, le=64)

    @field_validator("from_address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        # the whole value, not parseaddr's guess at one: "Lab Papers papers@lab.example.org"
        # (no brackets) or "a@b.org, c@d.org" passed, and every send then failed at MAIL FROM
        # with a traceback
        problem = control_problem(value)
        if problem:
            raise ValueError(problem)
        if not _FROM_ADDRESS.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an address like digest@example.org or "
                "'Paperwire <digest@example.org>'"
            )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value:  # an empty URL means none: the outbox
            problem = control_problem(value.get_secret_value())
            if problem:
                raise ValueError(problem)
            parse_smtp_url(value.get_secret_value())  # ValueError says what is wrong
        return value

    @functools.cached_property
    def smtp(self) -> SmtpSettings | None:
        """The SMTP server to send through (None: messages go to the outbox folder)."""
        return parse_smtp_url(self.smtp_url.get_secret_value()) if self.smtp_url else None


class SummariserConfig(_Frozen):
    """One-line TL;DRs from any OpenAI-compatible chat endpoint (off by default)."""

    enabled: bool = False
    base_url: Annotated[str, _http_url_field("http://127.0.0.1:11434/v1")] = (
        "http://127.0.0.1:11434/v1"  # Ollama's; llama.cpp, vLLM and hosted APIs alike
    )
    model: str = "llama3.2"
    api_key_env: str = "PAPERWIRE_SUMMARY_API_KEY"  # the key's variable, never the key itself

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, value: str) -> str:
        # the key itself here (`api_key_env: ${OPENAI_API_KEY}`) was read as a variable's
        # name: every request went out with no key, and nothing said so
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "is the name of the environment variable that holds the key "
                "(e.g. OPENAI_API_KEY), not the key"
            )
        return value

    language: str = "English"
    daily_cap: int = Field(default=200, ge=0, le=1_000_000)
    timeout: float = Field(default=20.0, gt=0, le=300)
    run_budget: float = Field(default=120.0, gt=0, le=DAY_SECONDS)  # a send run's summarising


class RankingConfig(_Frozen):
    """Ranking beyond TF-IDF: ``embeddings`` names the model papers and interests are embedded
    with: ``minilm``, the sentence encoder bundled in the package (the default), ``wordllama``
    (``pip install 'paperwire[semantic]'``), a local folder (a sentence-transformers model
    exported to ONNX, or a model2vec model), or ``off`` for TF-IDF alone."""

    embeddings: str | None = "minilm"
    # How many of the most recently seen papers a run ranks against (their words' weights, the
    # spread a score is measured in), beside every paper a reader voted on or seeded: one run
    # holds ~7 KiB a paper, so a store years old must not all be read (60,000: about four
    # months of arXiv cs.*, cross-lists included).
    corpus_papers: int = Field(default=60_000, ge=100, le=100_000_000)

    @field_validator("embeddings", mode="before")
    @classmethod
    def _off(cls, value: object) -> object:
        # YAML reads a bare `off` / `no` / `false` as False; `none` and `null` mean off too
        if value is False or value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in ("off", "none", "false", "no", ""):
            return None
        return value

    @field_validator("embeddings")
    @classmethod
    def _usable_model(cls, value: str | None) -> str | None:
        return check_spec(value) if value is not None else None


class Config(_Frozen):
    """The whole validated configuration."""

    feeds: tuple[FeedConfig, ...] = ()
    subscribers: tuple[SubscriberConfig, ...] = ()
    sender: SenderConfig = SenderConfig()
    alerts: AlertConfig = AlertConfig()
    ranking: RankingConfig = RankingConfig()
    fetch_interval_minutes: int = Field(default=60, ge=5, le=DAY_SECONDS // 60 * 30)
    # Each feed's whole download (retries included) and parse must finish within this many
    # seconds, and decompress to at most this many megabytes; otherwise it is that feed's error.
    fetch_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Seconds one fetch run may spend downloading and parsing, all feeds together: each feed ends
    # within fetch_timeout_seconds or what is left of this; feeds not fetched by then are
    # that run's errors and are fetched the next time.
    fetch_run_budget_seconds: float = Field(default=600.0, gt=0, le=DAY_SECONDS)
    fetch_max_mb: float = Field(default=20.0, gt=0, le=1024)
    first_digest_days: int = Field(default=7, ge=1, le=90)
    outbox: str = "outbox"
    # the public address of `paperwire serve`: every link in a digest starts with it
    base_url: Annotated[
        str, _http_url_field("https://papers.example.org"), AfterValidator(_origin_only)
    ] = "http://127.0.0.1:8000"
    arxiv_api_url: Annotated[str, _http_url_field("https://export.arxiv.org/api/query")] = (
        "https://export.arxiv.org/api/query"
    )
    secret: SecretStr | None = None
    summariser: SummariserConfig = SummariserConfig()
    # Verifies Slack's button clicks (/slack/actions); without it that endpoint is off.
    slack_signing_secret: SecretStr | None = None
    source: str = Field(default=DEFAULT_CONFIG, exclude=True)

    @field_validator("secret", "slack_signing_secret")
    @classmethod
    def _no_control_characters(cls, value: SecretStr | None) -> SecretStr | None:
        # a CR from a .env file makes another key than the same secret typed in a shell: links
        # printed by one would not open in the other, and no Slack click's signature verifies
        problem = control_problem(value.get_secret_value()) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # a short key is found from one signed link by brute force, then any link is forged
        if value is not None and len(value.get_secret_value()) < MIN_SECRET:
            raise ValueError(
                f"is shorter than {MIN_SECRET} characters, so one signed link gives it away; "
                'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        seen: set[str] = set()
        for index, sub in enumerate(self.subscribers):
            if sub.id.lower() in seen:  # "Ada" is "ada" (see _check_unique_ids)
                raise _DuplicateId(index, sub.id)
            seen.add(sub.id.lower())
        return self

    def subscriber(self, subscriber_id: str) -> SubscriberConfig:
        """The subscriber with this id, or a ConfigError naming the known ids."""
        for sub in self.subscribers:
            if sub.id == subscriber_id:
                return sub
        known = ", ".join(s.id for s in self.subscribers) or "none"
        raise ConfigError(f"{self.source}: no subscriber {subscriber_id!r} (known: {known})")


class _DuplicateId(ValueError):
    def __init__(self, index: int, sub_id: str):
        super().__init__(f"duplicate subscriber id {sub_id!r}")
        self.index = index


ENV_SETTINGS = {
    "PAPERWIRE_SMTP_URL": ("sender", "smtp_url"),
    "PAPERWIRE_FROM": ("sender", "from_address"),
    "PAPERWIRE_SECRET": ("secret",),
    "PAPERWIRE_SLACK_SIGNING_SECRET": ("slack_signing_secret",),
    "PAPERWIRE_BASE_URL": ("base_url",),
    "PAPERWIRE_OUTBOX": ("outbox",),
}
EMPTY_CONFIG = (
    "nothing to do: the file has no feeds and no subscribers. "
    "`paperwire init` writes a commented subscribers.yaml to start from"
)


def bundled_path(name: str) -> Path:
    """Path of a file shipped inside the package (``paperwire/data/NAME``)."""
    path = Path(str(resources.files("paperwire") / "data" / name))
    if not path.exists():
        raise ConfigError(f"no bundled file {name!r}; bundled feeds: {', '.join(BUNDLED_FEEDS)}")
    return path


def load_config(
    path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, expand ``${VAR}`` references in, and validate a config file.

    With no path and no ``./subscribers.yaml``, the bundled example config is used so that
    ``paperwire run --once`` works on a fresh machine.
    """
    env = os.environ if env is None else env
    if path is None:
        path = Path(DEFAULT_CONFIG)
        if not path.exists():
            if (env.get("PAPERWIRE_SMTP_URL") or "").strip():
                # run from the wrong folder, the demo's three readers went out through the
                # lab's relay, with its From (found in review)
                raise ConfigError(
                    f"{DEFAULT_CONFIG}: not in this folder, and the bundled example it stands "
                    "in for is the offline demo's, but PAPERWIRE_SMTP_URL is set: run where "
                    "your subscribers.yaml is, pass --config FILE, or write one with "
                    "`paperwire init`"
                )
            path = bundled_path("example-subscribers.yaml")
    path = Path(path)
    label = path.name if path.parent == Path(".") else str(path)
    try:
        with path.open("rb") as handle:
            # read one byte past the cap, so a huge file is refused without reading all of it
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such config file (see `paperwire --help`)") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(_too_big(label))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{label}:{line}: not UTF-8 text (save the file as UTF-8)") from None
    config = parse_config(text, label=label, env=env, base_dir=path.resolve().parent)
    remember_config(config)  # from now on its secrets are masked in every log line
    return config


def _too_big(label: str) -> str:
    return (
        f"{label}: larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MB, far more than any "
        "config needs; is it the right file?"
    )


def parse_config(
    text: str,
    *,
    label: str = DEFAULT_CONFIG,
    env: Mapping[str, str],
    base_dir: Path | None = None,
) -> Config:
    """Validate config text; ``label`` names it in error messages, and a relative model folder
    (``ranking.embeddings``) is read relative to ``base_dir``, the config file's folder.

    Every mistake is collected and raised together as one :class:`ConfigError`, one
    ``label:line: field: message`` line each, in file order."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(_too_big(label))
    try:
        document = yamlread.read(text)
    except yamlread.YamlError as exc:
        raise ConfigError(f"{label}:{exc.line}: {exc.message}") from None
    if document.value is None or document.value == {}:
        raise ConfigError(f"{label}: {EMPTY_CONFIG}")
    if not isinstance(document.value, dict):
        raise ConfigError(f"{label}:1: the top level must be a mapping with feeds and subscribers")
    problems = _Problems(label, document)
    for line, loc, message in document.problems:
        problems.add(loc, message, line=line)
    data = _expand_env(document.value, env, (), problems)
    from_env: dict[tuple, str] = {}
    for var, keys in ENV_SETTINGS.items():
        if env.get(var):
            target = data
            for key in keys[:-1]:
                if not isinstance(target.get(key, {}), dict):
                    break  # the file's own mistake (e.g. `sender: x`) is reported below
                target = target.setdefault(key, {})
            else:
                target[keys[-1]] = env[var]
                from_env[keys] = var
                if keys[-1] in SECRET_FIELDS:  # never quoted anyway; a URL's part may be
                    problems.hide(keys, env[var])
    _check_unique_ids(data, problems)
    _check_unique_feed_names(data, problems)
    if base_dir is not None:
        _model_folder_beside_config(data, base_dir)
    data["source"] = label
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            ctx = error.get("ctx") or {}
            if isinstance(ctx.get("error"), _DuplicateId):
                continue  # _check_unique_ids reported it, at the second id's line
            loc = tuple(error["loc"])
            if loc in problems.locs:
                continue  # said already (an unset variable): one mistake, one line
            problems.add(loc, _explain(error, loc), env_var=from_env.get(loc))
        config = None
    if config is not None and config.summariser.enabled:
        # the key goes into a header of every request: a CR from a .env file would fail them
        variable = config.summariser.api_key_env
        key = env.get(variable, "")
        problem = control_problem(key)
        odd = next((i for i, c in enumerate(key) if not " " < c < "\x7f"), None)
        if problem is None and odd is not None:
            # httpx writes headers in ASCII: a key pasted with a curly quote or a no-break
            # space raised UnicodeEncodeError out of every send, before any digest went out
            problem = (
                f"holds U+{ord(key[odd]):04X} ({unicodedata.name(key[odd], 'unnamed')}) at "
                f"character {odd + 1}, which no HTTP header carries; paste the key again as "
                "plain text"
            )
        if problem:
            problems.add(("summariser", "api_key_env"), f"the key in ${variable} {problem}")
    problems.raise_if_any()
    assert config is not None
    return config


MAX_SHOWN_PROBLEMS = 50


class _Problems:
    """Every mistake found in one config, reported together in file order."""

    def __init__(self, label: str, document: yamlread.Document):
        self.label = label
        self.document = document
        self.found: list[tuple[int, int, str]] = []
        self.locs: set[tuple] = set()
        self.hidden: dict[tuple, set[str]] = {}

    def hide(self, loc: tuple, value: str) -> None:
        """Never quote ``value`` (what a ``${VAR}`` or a ``PAPERWIRE_*`` variable gave the
        setting at ``loc``: a key, a password, a webhook) in its error; an empty one hides
        nothing."""
        if value.strip():
            self.hidden.setdefault(loc, set()).add(value)

    def add(
        self, loc: tuple, message: str, *, line: int | None = None, env_var: str | None = None
    ) -> None:
        self.locs.add(loc)
        # the value quoted as it failed may be a secret: the environment's, or a URL's
        # credentials and keys (as in every log line)
        for value in sorted(self.hidden.get(loc, ()), key=len, reverse=True):
            # where it stands alone, not inside a word: a key "short" made "is ***er than 16
            # characters" of the message saying it is too short, and so gave itself away
            alone = rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"
            message = re.sub(alone, MASK, message.replace(repr(value), MASK))
        if "'" in message:  # the value, as quoted; an example the message gives is ours
            message = _QUOTED.sub(lambda m: redact(m.group(0)), message)
        if env_var is not None:  # the value came from the environment, not from a line
            text = f"{env_var}: {message}"
            line = 1 << 30
        else:
            line = line or self.document.line(loc)
            text = f"{self.label}:{line}: {_dotted(loc)}: {message}"
        self.found.append((line, len(self.found), text))

    def raise_if_any(self) -> None:
        if self.found:
            lines = list(dict.fromkeys(text for _, _, text in sorted(self.found)))
            # the first mistakes, then how many more: a wrong file (100,000 entries of a JSON
            # export) printed 100,002 lines
            if len(lines) > MAX_SHOWN_PROBLEMS:
                more = len(lines) - MAX_SHOWN_PROBLEMS
                lines = [*lines[:MAX_SHOWN_PROBLEMS], f"{self.label}: … and {more} more mistakes"]
            raise ConfigError("\n".join(lines))


def _model_folder_beside_config(data: dict, base_dir: Path) -> None:
    """``ranking.embeddings: models/potion`` names a folder beside the config file, as a
    relative feed path does, whichever folder the daemon was started from."""
    ranking = data.get("ranking")
    if not isinstance(ranking, dict):
        return
    spec = ranking.get("embeddings")
    named = (BUNDLED, ENCODER, "off", "none", "false", "no")
    if isinstance(spec, str) and spec.strip() and spec.strip().lower() not in named:
        try:
            folder = home_path(spec)
        except ValueError:
            return  # check_spec says why, at its line
        if not folder.is_absolute():
            ranking["embeddings"] = str(base_dir / folder)


def _check_unique_feed_names(data: dict, problems: _Problems) -> None:
    """Two feeds under one name: their lines in `fetch` and `status` read as one feed, and
    a post's bare guid, kept under its feed's name (sources/feed.py), would be one paper."""
    feeds = data.get("feeds")
    if not isinstance(feeds, list):
        return
    first: dict[str, int] = {}
    urls: dict[str, int] = {}
    for index, feed in enumerate(feeds):
        url = feed.get("url") if isinstance(feed, dict) else None
        if isinstance(url, str) and url.strip():
            # pasted twice: fetched twice a run, and counted as two feeds (never quoted: a
            # feed URL may carry a password)
            at = urls.setdefault(url.strip(), index)
            if at != index:
                problems.add(("feeds", index, "url"), f"is feeds[{at}]'s URL too: list it once")
        name = feed.get("name") if isinstance(feed, dict) else None
        if not isinstance(name, str) or not name.strip():
            continue
        at = first.setdefault(name.strip().lower(), index)
        if at != index:
            problems.add(
                ("feeds", index, "name"),
                f"{name!r} names feeds[{at}] too: give each feed a name of its own",
            )


def _check_unique_ids(data: dict, problems: _Problems) -> None:
    subscribers = data.get("subscribers")
    if not isinstance(subscribers, list):
        return
    # by lower case: "ada" and "Ada" would share an outbox file on a case-insensitive disk
    # (macOS, Windows), and no reader tells them apart in a link
    first: dict[str, tuple[int, str]] = {}
    for index, sub in enumerate(subscribers):
        sub_id = sub.get("id") if isinstance(sub, dict) else None
        if not isinstance(sub_id, str):
            continue
        at, earlier = first.setdefault(sub_id.lower(), (index, sub_id))
        if at == index:
            continue
        problems.add(
            ("subscribers", index, "id"),
            f"duplicate subscriber id {sub_id!r}"
            if earlier == sub_id
            else f"subscriber id {sub_id!r} differs from {earlier!r} only in case",
        )


def _expand_env(node: Any, env: Mapping[str, str], loc: tuple, problems: _Problems) -> Any:
    """Copy the YAML values, replacing ``${VAR}`` and ``${VAR:-default}`` in strings (what the
    environment gave is never quoted in an error: :meth:`_Problems.hide`)."""
    if isinstance(node, dict):
        return {k: _expand_env(v, env, (*loc, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, env, (*loc, i), problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def substitute(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                problems.hide(loc, env[name])
                return env[name]
            if default is not None:
                return default
            problems.add(
                loc,
                f"environment variable {name} is not set "
                f"(export it, or write ${{{name}:-default}})",
            )
            return ""

        if "${" in _ENV_REF.sub("", node):
            # "${KEY-}", "${X:=y}", "${UNCLOSED" were the text itself: a signing key of
            # "${LINK_SIGNING_KEY-}" is public
            problems.add(loc, "a ${…} reference that is not ${NAME} or ${NAME:-default}")
            return ""
        return _ENV_REF.sub(substitute, node)
    return node


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "a number"


_SHAPES = {
    "sender": "from_address, smtp_url, …",
    "alerts": "enabled, percentile, max_per_day, …",
}


def _explain(error: Mapping[str, Any], loc: tuple) -> str:
    """A pydantic error in the words the other messages use: what was found, what is expected."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    field = next((part for part in reversed(loc) if isinstance(part, str)), "")
    secret = field in SECRET_FIELDS
    value = error.get("input")
    shown = "the value" if secret else repr(value)
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        known = _known_settings(loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        # a case slip of a short key ("ID", "URL") is too far apart for difflib
        close = [k for k in known if k == str(loc[-1]).lower()] or close
        if close:
            return f"is not a known setting (did you mean {close[0]!r}?)"
        places = _places_of(str(loc[-1]), loc)
        if places:
            return f"is not a setting at this level; it is {' or '.join(places)}"
        return "is not a known setting"
    if kind == "value_error":
        if field == "email" and not isinstance(ctx.get("error"), _ControlInAddress):
            return f"{value!r} is not a valid address"
        return str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown} is not true or false"
    if kind == "greater_than_equal":
        return f"must be at least {_number(ctx['ge'])}, not {_number(value)}"
    if kind == "greater_than":
        return f"must be more than {_number(ctx['gt'])}, not {_number(value)}"
    if kind == "less_than_equal":
        return f"must be at most {_number(ctx['le'])}, not {_number(value)}"
    if kind == "less_than":
        return f"must be less than {_number(ctx['lt'])}, not {_number(value)}"
    if kind == "finite_number":
        return f"must be a finite number, not {_number(value)}"
    if kind == "literal_error":
        return f"{shown} is not one of {ctx.get('expected')}"
    if kind in ("string_type", "string_sub_type"):
        if value is None:
            return "is empty; write a value or remove the line"
        if field == "seed_papers" and _kind(value) == "a number":
            return (
                'must be text, not a number: write arXiv ids in quotes, like "2309.06180" '
                "(unquoted, YAML reads a number and drops its trailing zeros)"
            )
        return f"must be text, not {_kind(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        shape = _SHAPES.get(field) or (
            "id, email, interests, …" if loc[:1] == ("subscribers",) and len(loc) == 2 else ""
        )
        shape = shape or ("url, name" if loc[:1] == ("feeds",) and len(loc) == 2 else "")
        return f"must be a mapping of settings{f' ({shape})' if shape else ''}, not {_kind(value)}"
    if kind in ("tuple_type", "list_type"):
        if field == "seed_papers" and _kind(value) == "a number":
            return 'must be a list of arXiv ids in quotes, like ["2309.06180"], not a number'
        if isinstance(value, str) and not secret:  # one name or phrase written bare
            return f"must be a list, not text: write {_as_list(field, value)}"
        return f"must be a list, not {_kind(value)}"
    return str(error["msg"])  # a kind this config cannot produce today; pydantic's words


def _number(value: Any) -> str:
    """A bound or value as written in YAML: 3600, not 3600.0; 0.5; .nan and .inf as such."""
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return "-.inf" if value < 0 else ".inf"
        if value.is_integer():
            return str(int(value))
    return str(value)


def _known_settings(loc: tuple) -> list[str]:
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields.get(part)
        if annotation is None:
            return []
        model = {
            "feeds": FeedConfig,
            "subscribers": SubscriberConfig,
            "sender": SenderConfig,
            "alerts": AlertConfig,
            "ranking": RankingConfig,
            "summariser": SummariserConfig,
        }.get(part)
        if model is None:
            return []
    return [name for name in model.model_fields if name != "source"]


def _as_list(field: str, text: str) -> str:
    """A list setting written as bare text, as the list it was meant to be: 'KV cache,
    speculative decoding' is two phrases (as one, it is a phrase no paper has), 'LeCun, Yann'
    one name in library order."""
    parts = [p.strip() for p in text.split(";" if ";" in text else ",")]
    parts = [p for p in parts if p]
    library_order = (
        field == "follow_authors" and len(parts) == 2 and all(len(p.split()) == 1 for p in parts)
    )
    if len(parts) < 2 or library_order:
        parts = [text.strip()]
    return f"[{', '.join(repr(p) for p in parts)}]"


def _sections() -> list[tuple[tuple[str, ...], Any, str]]:
    """Each level a setting can be written at: its place, its model, and how to say it."""
    return [
        ((), Config, "a top-level setting (write it at the start of a line, outside any section)"),
        (
            ("subscribers",),
            SubscriberConfig,
            "a subscriber's setting (indent it under a reader in subscribers:)",
        ),
        (("feeds",), FeedConfig, "a feed's setting (indent it under a feed in feeds:)"),
        (("sender",), SenderConfig, "a setting of sender: (indent it under sender:)"),
        (("alerts",), AlertConfig, "a setting of alerts: (indent it under alerts:)"),
        (("ranking",), RankingConfig, "a setting of ranking: (indent it under ranking:)"),
        (
            ("summariser",),
            SummariserConfig,
            "a setting of summariser: (indent it under summariser:)",
        ),
    ]


def _places_of(name: str, loc: tuple) -> list[str]:
    """Where an unknown key written at ``loc`` is a setting: a key at the wrong level (a
    reader's digest_time at the top, smtp_url under a reader) says where it belongs."""
    here = tuple(part for part in loc[:-1] if isinstance(part, str))
    return [
        said
        for place, model, said in _sections()
        if place != here and name in model.model_fields and name != "source"
    ]


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and not part.isprintable():  # a key pasted with a no-break
            part = repr(part)  # space or a zero-width one looks like the right key otherwise
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
