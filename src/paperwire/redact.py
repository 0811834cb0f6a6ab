"""Keep secrets out of everything paperwire prints, logs or stores.

Secrets hide in URLs: a password in ``https://user:pass@host/feed``, a token in ``?api_key=``,
the path of a Slack webhook (``hooks.slack.com/services/T.../B.../XXXX`` *is* the credential).
:func:`redact_url` masks them in one URL, :func:`redact` in any text, and
:class:`RedactingFilter` in every log record, ours and third parties' (httpx logs each request
URL at INFO; uvicorn's access log has request paths, which carry signed tokens: those of the
web app's /v/, /unsubscribe/, /profile/ and /feed/ are masked, with or without a host).

Messages are also redacted where they are built (feed labels, fetch errors); the log filter is
the net under that, for text we do not build ourselves.

Untrusted text (a feed's titles, a server's error body, an exception's message) can also carry
terminal escape sequences and control characters: :func:`printable` removes them from what the
CLI prints, and the same filter removes them from every log line (and folds line breaks in a
record's arguments, so no value can forge a log line of its own).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"

# Query parameters whose value is a credential (matched on the name, case-insensitively).
_SECRET_PARAM = re.compile(
    r"(?:^|[_-])(?:key|apikey|token|secret|password|passwd|pwd|pass|auth|sig|signature|"
    r"credential|credentials|session|sid)$|^(?:access|api|client|private)[_-]?\w*$",
    re.IGNORECASE,
)
# A URL inside free text: a scheme, then anything up to whitespace or a quote/bracket.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
# Path segments after which everything is a webhook's secret (Mattermost, Discord, ...); on
# Slack's hook host, /services/ (hooks.slack.com/services/T.../B.../XXXX).
_WEBHOOK_PATH = re.compile(r"(/(?:hooks|webhooks?)/)[^?#]*", re.IGNORECASE)
_SLACK_PATH = re.compile(r"(/services/)[^?#]*", re.IGNORECASE)
# A long random-looking path segment (a bearer token in a path, a signed vote link).
_TOKEN_SEGMENT = re.compile(
    r"(?<=/)(?=[A-Za-z0-9_.~=-]*\d)(?=[A-Za-z0-9_.~=-]*[A-Za-z])[A-Za-z0-9_.~=-]{24,}"
)
# A path of the web app whose last segment is a signed token (web/app.py's routes), standing
# alone (uvicorn's access log: "GET /v/<token> HTTP/1.1"), not inside a URL, where the token
# rule above applies and a feed's own /feed/atom stays readable. A feed token never expires.
# A token already left out ("/v/…", the web app's own log lines) stays as its ellipsis.
_SIGNED_PATH = re.compile(
    r"(?<![^\s\"'(=])(/(?:v|unsubscribe|profile|feed)/)(?!…)[^\s/?#\"'<>)]+?(\.atom)?"
    r"(?=[\s/?#\"'<>)]|$)"
)
# A signed token of links.py by its shape, wherever it stands: itsdangerous's base64 JSON
# ("eyJ…", or ".eJ…" compressed), a dot, its timestamp and signature. The path rule above
# misses a path written otherwise than the routes match it ("/%76/<token>", "/v%2f<token>",
# "//v/<token>" or "/prefix/v/<token>" from a proxy), which uvicorn's access log shows as
# sent (found in review).
# Not bounded on the left: "%2f" ends in a letter.
_SIGNED_TOKEN = re.compile(r"(?:eyJ|\.eJ)[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]{4,}){1,2}")

# Terminal escape sequences (CSI colours and screen clears, OSC titles and hyperlinks, the
# rest) and other control characters, which a feed, a library file or a config value can carry:
# printed, they would rewrite the user's terminal. Newlines and tabs stay.
_TERMINAL_CODES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?"
    r"|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]"
)


# every escape sequence above starts with one of these: a text with none (nearly all) is
# printable as it is, found by one scan for a character, not the alternation's (55 MB of
# ``digest --json`` at 20,000 readers: 0.25 s against 0.6)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (newlines, tabs kept)."""
    if _CONTROL.search(text) is None:
        return text
    return _TERMINAL_CODES.sub("", text)


# Literal secrets from the configuration (webhook URLs, passwords), masked wherever they appear.
_known: set[str] = set()
MIN_LITERAL = 6  # shorter "secrets" would mask ordinary words; URL rules still cover them


def remember(*secrets: str | None) -> None:
    """Mask these exact strings from now on (configured webhook URLs, passwords, keys)."""
    for secret in secrets:
        if secret and len(secret) >= MIN_LITERAL:
            # and as a URL's query or path carries it (a redirect's "return_to=" holds the
            # webhook percent-encoded), with either case of hex digit
            encoded = quote(secret, safe="")
            _known.update(
                {
                    secret,
                    quote(secret),
                    encoded,
                    re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded),
                }
            )


def remember_config(config: Any) -> None:
    """Mask the secrets of a loaded config: feed credentials, webhooks and notification URLs,
    the SMTP password, the signing keys."""
    for feed in config.feeds:
        remember(*secrets_in_url(feed.url))
    for sub in config.subscribers:
        if sub.slack_webhook is not None:
            # The path and query are the credential; the host stays readable in the logs.
            webhook = urlsplit(sub.slack_webhook.get_secret_value())
            remember(webhook.path.lstrip("/"), webhook.query, *secrets_in_url(webhook.geturl()))
        for url in sub.notify:  # an Apprise URL carries its token in the path or the "host"
            notify = urlsplit(url.get_secret_value())
            token_host = "." not in notify.netloc and ":" not in notify.netloc  # tgram://TOKEN/
            remember(notify.netloc if token_host else None, notify.path.lstrip("/"), notify.query)
            remember(*secrets_in_url(notify.geturl()))
    if config.sender.smtp_url is not None:
        remember(*secrets_in_url(config.sender.smtp_url.get_secret_value()))
    for key in (config.secret, config.slack_signing_secret):
        if key is not None:
            remember(key.get_secret_value())


def secrets_in_url(url: str) -> list[str]:
    """The credential parts of one URL: userinfo, secret query values, webhook paths."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if parts.password:
        found.append(parts.password)
    for name, _, value in (p.partition("=") for p in parts.query.split("&")):
        if value and _SECRET_PARAM.search(name):
            found.append(value)
    webhook = _webhook_rule(parts.hostname).search(parts.path)
    if webhook:
        found.append(parts.path[webhook.end(1) :])
    return found


def _webhook_rule(hostname: str | None) -> re.Pattern[str]:
    return _SLACK_PATH if (hostname or "").endswith("slack.com") else _WEBHOOK_PATH


def redact_url(url: str) -> str:
    """``url`` with its userinfo, secret query values and webhook path masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # unparseable: show nothing rather than a secret
    if not parts.scheme or not parts.netloc:
        return url  # a file path, ``bundled:NAME``: nothing to hide
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    path = _webhook_rule(parts.hostname).sub(lambda m: m.group(1) + MASK, parts.path)
    path = _TOKEN_SEGMENT.sub(MASK, path)
    query = "&".join(
        f"{name}={MASK}" if value and _SECRET_PARAM.search(name) else f"{name}{eq}{value}"
        for name, eq, value in (p.partition("=") for p in parts.query.split("&"))
    )
    if not parts.query:
        query = ""
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with every URL in it redacted and every remembered secret masked."""
    if not text:
        return text
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    text = _SIGNED_PATH.sub(lambda m: f"{m.group(1)}{MASK}{m.group(2) or ''}", text)
    return _SIGNED_TOKEN.sub(MASK, text) if "eyJ" in text or ".eJ" in text else text


def _scrub(value: object) -> object:
    # Numbers keep their type for %d / %f; anything else (str, httpx.URL, exceptions) is text,
    # on one line: a value is never a log line of its own.
    if value is None or isinstance(value, bool | int | float):
        return value
    return " ".join(redact(printable(str(value))).splitlines())


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and traceback before any handler formats it, and
    removes escape sequences and control characters from them.

    The arguments are scrubbed one by one rather than merged into the message, because some
    formatters read them (uvicorn's access log unpacks ``record.args``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(printable(record.msg))
        else:
            record.msg = _scrub(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _scrub(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_scrub(value) for value in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(printable(record.exc_text))
        if record.stack_info:
            record.stack_info = redact(printable(record.stack_info))
        return True


THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "apscheduler",
)


def install_log_redaction(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Put one RedactingFilter on the root logger's handlers and on the third-party loggers.

    Handler filters see every record that propagates to them; logger filters cover loggers
    that keep their own handlers (uvicorn's). Calling it twice adds nothing."""
    targets: list[logging.Filterer] = list(
        logging.getLogger().handlers if handlers is None else handlers
    )
    targets += [logging.getLogger(name) for name in THIRD_PARTY_LOGGERS]
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())
