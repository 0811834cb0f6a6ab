"""Load and validate ``subscribers.yaml`` and the ``PAPERWIRE_*`` environment.

Config is read once into frozen pydantic models. Precedence for each setting: CLI flag, then
``PAPERWIRE_*`` environment variable, then the file, then the default. Errors name the file,
the line and the field (``subscribers.yaml:14: subscribers[2].email: ...``), never a traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from .errors import ConfigError

DEFAULT_CONFIG = "subscribers.yaml"
DEFAULT_DB = "paperwire.db"
BUNDLED_PREFIX = "bundled:"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeedConfig(_Frozen):
    """One source of papers: a URL, a local file path, or ``bundled:NAME``."""

    url: str
    name: str | None = None
    kind: Literal["auto", "feed", "hf-daily"] = "auto"

    @property
    def label(self) -> str:
        return self.name or self.url


class AlertConfig(_Frozen):
    """When a new paper is far above a subscriber's usual bar, send it at once."""

    enabled: bool = True
    # Percentile of the subscriber's own score distribution over recent papers; a paper above it
    # is an alert. The same number means the same rarity for every subscriber.
    percentile: float = Field(default=99.5, ge=50, le=100)
    max_per_day: int = Field(default=2, ge=0, le=50)
    min_history: int = Field(default=100, ge=10)


class SubscriberConfig(_Frozen):
    """One reader (or a team channel) and what they care about."""

    id: str
    name: str | None = None
    email: EmailStr | None = None
    slack_webhook: SecretStr | None = None
    interests: str = ""
    seed_papers: tuple[str, ...] = ()
    digest_size: int = Field(default=10, ge=1, le=100)
    timezone: str = "UTC"
    digest_time: dt.time = dt.time(8, 0)
    digest_days: tuple[str, ...] = WEEKDAYS
    alerts: bool = True
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                f"{value!r} is not a valid id (letters, digits, '.', '_', '-'; at most 64)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a known IANA time zone, e.g. Europe/Paris"
            ) from None
        return value

    @field_validator("digest_time", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 07:30 as sexagesimal 450
            value = f"{value // 60:02d}:{value % 60:02d}"
        if isinstance(value, str):
            try:
                return dt.time.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not a time like 07:30 (24-hour clock)") from None
        return value

    @field_validator("digest_days", mode="before")
    @classmethod
    def _weekdays(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"weekdays": WEEKDAYS[:5], "daily": WEEKDAYS}.get(value, [value])
        days = [str(d).strip().lower()[:3] for d in value]
        bad = [d for d in days if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a weekday (use mon..sun, 'weekdays' or 'daily')")
        return tuple(days)

    @model_validator(mode="after")
    def _has_a_channel(self) -> SubscriberConfig:
        if self.email is None and self.slack_webhook is None:
            raise ValueError("needs an email or a slack_webhook (or both)")
        return self

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class SenderConfig(_Frozen):
    """Who the digests come from; the SMTP URL usually comes from the environment."""

    from_address: str = "Paperwire <paperwire@localhost>"
    smtp_url: SecretStr | None = None
    smtp_connections: int = Field(default=4, ge=1, le=64)
    list_id: str = "paperwire.localhost"
    # A 4xx reply or a dropped connection is retried this many times, backing off from
    # retry_backoff seconds; after that the digest stays due for the next run.
    retry_attempts: int = Field(default=4, ge=1, le=10)
    retry_backoff: float = Field(default=1.0, ge=0, le=60)
    # Processes that render e-mails when a run sends many (unset: one per core, at most 4;
    # 1: render in the sending process).
    render_processes: int | None = Field(default=None, ge=1, le=64)


class RankingConfig(_Frozen):
    """Ranking beyond TF-IDF: ``embeddings`` names a static embedding model (``wordllama``,
    from ``pip install 'paperwire[semantic]'``, or a local model2vec folder); off by default."""

    embeddings: str | None = None

    @field_validator("embeddings")
    @classmethod
    def _usable_model(cls, value: str | None) -> str | None:
        from .embed import check_spec  # numpy only; the extra itself is imported when ranking

        return check_spec(value) if value is not None else None


class Config(_Frozen):
    """The whole validated configuration."""

    feeds: tuple[FeedConfig, ...] = ()
    subscribers: tuple[SubscriberConfig, ...] = ()
    sender: SenderConfig = SenderConfig()
    alerts: AlertConfig = AlertConfig()
    ranking: RankingConfig = RankingConfig()
    fetch_interval_minutes: int = Field(default=60, ge=5)
    first_digest_days: int = Field(default=7, ge=1, le=90)
    outbox: str = "outbox"
    base_url: str = "http://127.0.0.1:8000"
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    secret: SecretStr | None = None
    source: str = Field(default=DEFAULT_CONFIG, exclude=True)

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        seen: set[str] = set()
        for index, sub in enumerate(self.subscribers):
            if sub.id in seen:
                raise _DuplicateId(index, sub.id)
            seen.add(sub.id)
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
    "PAPERWIRE_BASE_URL": ("base_url",),
    "PAPERWIRE_OUTBOX": ("outbox",),
}


def bundled_path(name: str) -> Path:
    """Path of a file shipped inside the package (``paperwire/data/NAME``)."""
    path = Path(str(resources.files("paperwire") / "data" / name))
    if not path.exists():
        raise ConfigError(f"no bundled file {name!r}; bundled feeds: sample-daily-papers.xml")
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
            path = bundled_path("example-subscribers.yaml")
    path = Path(path)
    label = path.name if path.parent == Path(".") else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such config file (see `paperwire --help`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read: {exc}") from None
    return parse_config(text, label=label, env=env)


def parse_config(text: str, *, label: str = DEFAULT_CONFIG, env: Mapping[str, str]) -> Config:
    """Validate config text; ``label`` names it in error messages.

    A valid file is read with libyaml (C, ~10× faster: a 10,000-subscriber file takes under a
    second instead of several). Anything that does not validate on that path is read again
    with ruamel's round-trip loader, the authority: YAML 1.2 semantics and the line numbers
    that errors report."""
    try:
        fast = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError:
        fast = None
    if isinstance(fast, Mapping):
        try:
            return _validated(fast, label, env, tree=None)
        except (ConfigError, ValidationError):
            pass  # report it (or accept it, if YAML 1.1 quirks caused it) from the precise path
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{label}:{line}: invalid YAML: {exc.problem or exc.context}") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, Mapping):
        raise ConfigError(f"{label}:1: the top level must be a mapping with feeds and subscribers")
    try:
        return _validated(tree, label, env, tree=tree)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a known setting"
        elif "email" in loc and error["type"] == "value_error":
            message = f"{error['input']!r} is not a valid address"
        ctx = error.get("ctx") or {}
        if isinstance(ctx.get("error"), _DuplicateId):
            loc = ("subscribers", ctx["error"].index, "id")
        raise ConfigError(f"{label}:{_line_of(tree, loc)}: {_dotted(loc)}: {message}") from None


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _validated(node: Mapping, label: str, env: Mapping[str, str], tree: Any) -> Config:
    """Expand ``${VAR}``, apply PAPERWIRE_* overrides, validate. ``tree`` (the round-trip
    document) gives error lines; without it a missing variable is reported as line 0 and the
    caller retries with it."""
    data = _expand_env(node, env, label, (), tree)
    for var, keys in ENV_SETTINGS.items():
        if env.get(var):
            target = data
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = env[var]
    data["source"] = label
    return Config.model_validate(data)


def _expand_env(node: Any, env: Mapping[str, str], label: str, loc: tuple, root: Any) -> Any:
    """Copy the YAML tree into plain Python, replacing ``${VAR}`` and ``${VAR:-default}``."""
    if isinstance(node, Mapping):
        return {k: _expand_env(v, env, label, (*loc, k), root) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, env, label, (*loc, i), root) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{label}:{_line_of(root, loc)}: {_dotted(loc)}: environment variable "
                f"{name} is not set (export it, or write ${{{name}:-default}})"
            )

        return _ENV_REF.sub(substitute, node)
    return node


def _line_of(tree: Any, loc: tuple) -> int:
    """1-based line of the deepest part of ``loc`` that exists in the YAML tree."""
    line = 0
    node = tree
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, Mapping) and part in node:
                line = lc.key(part)[0] if lc else line
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line = lc.item(part)[0] if lc else line
                node = node[part]
            else:
                line = lc.line if lc else line
                break
        except (AttributeError, KeyError, TypeError):
            break
    return line + 1


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
