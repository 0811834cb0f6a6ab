"""More channels: Discord, Telegram, Teams, Matrix, Mattermost, ntfy and the rest through Apprise.

A subscriber's ``notify: ["discord://...", "tgram://..."]`` lists Apprise URLs. Each is its own
ledger channel (``notify:<scheme>:<hash of the URL>``: the URL holds a token, so the ledger and
``status`` name it by scheme and hash only), so a digest goes exactly once to each. The digest is
written as Markdown for services that render it and as plain text with bare URLs for the others,
and split between papers into messages that fit the service's length limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from ..deadline import Budget, StillRunning, blocking_call
from ..errors import DeliveryError
from ..render import format_authors, shorten

PREFIX = "notify:"
# Apprise's plugins end a refused request's warning with the HTTP status ("…, error=500.")
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b")
# a message is not started with less than this (or its own deadline) left of the run's budget:
# it would end as "maybe delivered" at the budget's end; the next run sends it instead
MIN_LEFT = 1.0


class _CallCapture(logging.Handler):
    """The warnings Apprise logs for one call. ``apprise.LogCapture`` adds its handler to the
    process-wide ``apprise`` logger, so a capture saw every other thread's warnings too (an
    abandoned call's among them): another call's "error=404" read as this one's refusal. This
    keeps only the records logged in the calling thread, or in a worker Apprise ran the call
    on (it copies the caller's context there: :data:`_CURRENT`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.text = io.StringIO()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread or _CURRENT.get() is self:
            self.text.write(self.format(record) + "\n")


_CURRENT: contextvars.ContextVar[_CallCapture | None] = contextvars.ContextVar(
    "paperwire_apprise_capture", default=None
)


@contextlib.contextmanager
def _captured() -> Iterator[_CallCapture]:
    """Capture the warnings the ``apprise`` logger gets for this call, for the block."""
    logger = logging.getLogger("apprise")
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    handler = _CallCapture()
    token = _CURRENT.set(handler)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        _CURRENT.reset(token)


def channel_id(url: str) -> str:
    """The ledger channel of an Apprise URL: its scheme and a hash, never its token."""
    scheme = urlsplit(url).scheme or "url"
    return f"{PREFIX}{scheme}:{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def url_for(channel: str, urls: list[str]) -> str | None:
    """The configured URL a ledger channel stands for (None if the config no longer has it)."""
    return next((u for u in urls if channel_id(u) == channel), None)


def _supports(plugin: Any, fmt: Any) -> bool:
    formats = plugin.notify_format
    return fmt in formats if isinstance(formats, tuple | list | set) else fmt == formats


def paper_blocks(ctx: dict[str, Any], markdown: bool) -> list[str]:
    """One block of text per paper, in Markdown or in plain text with bare URLs."""
    blocks = []
    for paper in ctx["papers"]:
        links = [("PDF", paper.get("pdf_url")), ("Code", paper.get("code_url")),
                 ("Project page", paper.get("project_url"))]  # fmt: skip
        links = [(label, url) for label, url in links if url]
        title = f"{paper['number']}. {paper['title']}"
        why = "Why: " + "; ".join(paper["reasons"])
        summary = paper.get("tldr") or shorten(paper.get("abstract"), 280)
        if markdown:
            lines = [f"**{_md_link(title, paper['url'])}**"]
            meta = _md(format_authors(paper["authors"]))
            lines.append(" · ".join([meta, *(_md_link(label, url) for label, url in links)]))
            lines.append(("**TL;DR** " if paper.get("tldr") else "") + _md(summary))
            lines.append(f"_{_md(why)}_")
            lines.append(
                f"[👍 More like this]({paper['up_url']}) · [👎 Less like this]({paper['down_url']})"
            )
        else:
            lines = [title, format_authors(paper["authors"])]
            if paper["url"]:
                lines.append(paper["url"])
            lines += [f"{label}: {url}" for label, url in links]
            lines.append(("TL;DR: " if paper.get("tldr") else "") + summary)
            lines.append(why)
            lines.append(f"👍 More like this: {paper['up_url']}")
            lines.append(f"👎 Less like this: {paper['down_url']}")
        blocks.append("\n".join(lines))
    return blocks


def split_messages(blocks: list[str], footer: str, limit: int) -> list[str]:
    """Join blocks into as few messages as fit ``limit`` characters, splitting between papers;
    a single block longer than the limit is cut (a service refuses a longer message)."""
    messages: list[str] = []
    current = ""
    for block in [*blocks, footer]:
        block = block if len(block) <= limit else shorten(block, limit - 1)
        joined = f"{current}\n\n{block}" if current else block
        if len(joined) <= limit:
            current = joined
        else:
            messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages


def send_digest(
    url: str,
    ctx: dict[str, Any],
    subject: str,
    *,
    start: int = 0,
    on_part: Callable[[int], None] | None = None,
    deadline: float = 60.0,
    budget: Budget | None = None,
    key: str | None = None,
    on_late: Callable[[int, int], None] | None = None,
) -> int:
    """Send a digest to one Apprise URL, split as its service needs, from message ``start`` on
    (those before it were accepted by an earlier run); ``on_part(n)`` after each accepted
    message, n counted from the first; each message within ``deadline`` seconds and what is left
    of the run's ``budget``. Returns the number of messages the digest has.

    Apprise's requests cannot be cancelled: a message not answered in time is left to its
    daemon thread (:func:`~paperwire.deadline.blocking_call`, under ``key``: one per delivery),
    ``on_late(n, total)`` runs there if it is accepted after all, and while it runs no other
    try of the same delivery starts.

    Raises DeliveryError: permanent for a URL Apprise does not understand, an HTTP 4xx
    refusal (but 408 and 429) or a redirect (3xx, not followed); ``maybe_delivered`` for a
    message not answered within its deadline (it may have arrived); ``untried`` for a message
    not sent because an earlier try is still waiting for its answer, or too many are;
    ``out_of_time`` for one not sent because less than :data:`MIN_LEFT` seconds of the run's
    ``budget`` were left; otherwise none (the digest stays due and a later run resumes at the
    first message not accepted)."""
    import apprise

    scheme = urlsplit(url).scheme or "?"
    # Apprise sends from a shared thread pool of its own when a service has a deadline (its
    # default is 60 s) or runs in parallel; the interpreter joins those threads at exit, so an
    # endpoint dripping its answer kept `send` and the daemon from ever exiting. Without either,
    # it sends in the calling thread: blocking_call's daemon thread, which holds up nothing.
    # No redirects (requests follows them by default): a 301 or 302 turned the POST into a GET
    # of the Location, answered 200, "sent" with nothing delivered (a 307 re-posted the message
    # wherever it pointed). A redirect fails instead (:func:`_redirected`), as Slack's does.
    # A URL's own ``redirect=yes`` (Apprise's per-URL switch) still follows them.
    asset = apprise.AppriseAsset(async_mode=False, service_timeout=0, http_redirects=False)
    plugin = apprise.Apprise.instantiate(url, asset=asset)
    if plugin is None:
        raise DeliveryError(
            f"notify {scheme}://…: not a URL Apprise understands (see its wiki for the forms)",
            permanent=True,
        )
    # Apprise's own read timeout (4 s, per read) would end a slow answer as a plain failure,
    # retried on every run; the deadline around each message decides instead, and a slow
    # answer is "maybe delivered". Connecting stays Apprise's: a refused connection is a failure.
    plugin.socket_read_timeout = deadline + 1
    plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, deadline)
    markdown = _supports(plugin, apprise.NotifyFormat.MARKDOWN)
    body_format = apprise.NotifyFormat.MARKDOWN if markdown else apprise.NotifyFormat.TEXT
    footer = (
        f"[What paperwire has learned about you]({ctx['profile_url']}) · "
        f"[Your picks as an Atom feed]({ctx['feed_url']}) · "
        f"[Unsubscribe]({ctx['unsubscribe_url']})"
        if markdown
        else f"What paperwire has learned about you: {ctx['profile_url']}\n"
        f"Your picks as an Atom feed: {ctx['feed_url']}\n"
        f"Unsubscribe: {ctx['unsubscribe_url']}"
    )
    title = shorten(subject, plugin.title_maxlen) if plugin.title_maxlen else ""
    # a service without titles gets the subject as the first line of the first message
    blocks = paper_blocks(ctx, markdown)
    if not title:
        blocks[0] = f"{'**' + _md(subject) + '**' if markdown else subject}\n\n{blocks[0]}"
    messages = split_messages(blocks, footer, plugin.body_maxlen)
    sender = apprise.Apprise(asset=asset)
    sender.add(plugin)
    for number, body in enumerate(messages[start:], start + 1):

        def notify(body: str = body) -> tuple[bool, str]:
            with _captured() as captured:
                ok = sender.notify(body=body, title=title, body_format=body_format)
            return bool(ok), captured.text.getvalue()

        which = f"notify {scheme}://…: message {number} of {len(messages)}"
        if (
            budget is not None
            and budget.seconds is not None
            and budget.left() < min(MIN_LEFT, deadline)
        ):
            # the run's time is (about) spent: not this message, nor the ones after it
            raise DeliveryError(
                f"{which}: not sent, the run's budget ({budget.setting}) is spent",
                out_of_time=True,
            )

        def late(ok: bool, answer: object, number: int = number) -> None:
            if ok and isinstance(answer, tuple) and answer[0] and on_late is not None:
                on_late(number, len(messages))

        seconds, limit = (budget or Budget()).deadline(deadline, "sender.timeout")
        try:  # Apprise's requests cannot be cancelled: it is waited for, up to the deadline
            ok, said = blocking_call(
                notify, seconds, name=f"notify {scheme}", key=key, on_late=late
            )
        except StillRunning as exc:  # the call was not made: not a try
            raise DeliveryError(
                f"{which}: not sent, an earlier try is still waiting for an answer"
                if exc.same_key
                else f"{which}: not sent, too many earlier messages still wait for answers",
                untried=True,
            ) from None
        except TimeoutError:
            raise DeliveryError(
                f"{which}: no answer within {seconds:.3g} s ({limit}); it may have arrived",
                maybe_delivered=True,
            ) from None
        if not ok:
            status = _redirected(said)
            if status is not None:
                raise DeliveryError(
                    f"{which} failed: the service answered HTTP {status}, a redirect; not "
                    "followed (a followed redirect can turn the message into a GET that "
                    "delivers nothing): check the URL",
                    permanent=True,
                )
            detail = _redact(said.strip().splitlines(), url)
            raise DeliveryError(f"{which} failed: {detail}", permanent=_refused(said))
        if on_part is not None:
            on_part(number)
    return len(messages)


def _refused(said: str) -> bool:
    """Whether Apprise's warning reports an HTTP 4xx refusal, which retrying does not cure
    (408 and 429 do: the service was slow or busy)."""
    codes = [int(code) for code in _HTTP_STATUS.findall(said)]
    return bool(codes) and 400 <= codes[-1] < 500 and codes[-1] not in (408, 429)


def _redirected(said: str) -> int | None:
    """The HTTP status when Apprise's warning reports a redirect (3xx), which is not
    followed: the URL is wrong, and retrying does not cure it."""
    codes = [int(code) for code in _HTTP_STATUS.findall(said)]
    return codes[-1] if codes and 300 <= codes[-1] < 400 else None


def _md(text: str) -> str:
    """Escape the characters Markdown would read as formatting or link syntax."""
    for char in "\\`*_[]<>":
        text = text.replace(char, "\\" + char)
    return text


# what would end a Markdown link's target early, or open another link, in an http(s) URL
_MD_TARGET = str.maketrans({"(": "%28", ")": "%29", "[": "%5B", "]": "%5D", " ": "%20"})


def _md_link(label: str, url: str) -> str:
    """``[label](url)``, or the label alone when there is no URL."""
    return f"[{_md(label)}]({url.translate(_MD_TARGET)})" if url else _md(label)


def _redact(lines: list[str], url: str) -> str:
    """Apprise's last warning, without any part of the URL that may hold a token."""
    text = shorten(lines[-1] if lines else "no reason given", 200)
    parts = urlsplit(url)
    secrets = [
        url,
        parts.netloc,
        parts.path,
        parts.query,
        parts.password or "",
        parts.username or "",
    ]
    secrets += [p for p in parts.path.split("/") if len(p) >= 6]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text
