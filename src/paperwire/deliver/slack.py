"""Slack: a digest as Block Kit, posted to an incoming webhook, within Slack's limits.

Limits (api.slack.com/reference/block-kit): 50 blocks per message, 3000 characters per section
text, 150 per header, 75 per button label. A long digest is split across messages; long text is
trimmed at a word boundary. 408, 429 and 5xx answers are retried (after ``Retry-After`` when
given, in seconds or as an HTTP date; a wait longer than the message's deadline ends the run's
tries at once, and a later run waits for it); other 4xx are permanent (a revoked webhook does
not start working by retrying). A 3xx is permanent too and never followed: Slack's webhooks do
not redirect, so a redirect is a wrong URL (followed, a 301 became a GET of some page, "sent"
with nothing posted). Each message, retries and waits included, must end within its
deadline (``sender.timeout``); one sent and not answered by then, or whose line dropped after
it was sent, is "maybe delivered", never re-posted at once.

At most :data:`MAX_ANSWER` bytes of an answer are read, whatever its length (a 2 GB answer
was read whole, 4.45 GB of memory): the status and the first bytes decide. Slack (and
Mattermost) answer ``ok``; a 200 with another body counts as sent, since Slack-compatible
receivers such as Rocket.Chat or Zulip answer JSON, with a warning: a proxy's login page
answers 200 too, and then nothing arrived.
"""

from __future__ import annotations

import asyncio
import bisect
import email.utils
import hashlib
import logging
import re
import ssl
import time
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from ..deadline import Budget
from ..errors import DeliveryError
from ..redact import printable, redact
from ..render import format_authors, shorten

log = logging.getLogger("paperwire")

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_RETRY_AFTER = 60.0
MAX_BLOCK_ID = 255
MAX_ANSWER = 64 * 1024  # bytes of an answer read at most; Slack's is "ok"


def block_id(paper_id: str) -> str:
    """The id of a paper's buttons block: ``p:<paper id>``, or a digest of a longer id (a
    feed's id may have 500 characters; cut short, two would share an id, which Slack refuses
    and the vote handler would mark both). The vote handler finds the block by it."""
    whole = f"p:{paper_id}"
    if len(whole) <= MAX_BLOCK_ID:
        return whole
    return "p#" + hashlib.sha256(paper_id.encode()).hexdigest()


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    """``<url|label>``, or the label alone when there is no URL (a feed's was not http)."""
    if not url:
        return escape(label)
    # '|' would end the label of a <url|label> link early; the URL is already web_url's (no
    # '<', '>', '|' or space), and Slack wants its '&' escaped too
    return f"<{escape(url)}|{escape(label).replace('|', '¦')}>"


def _extra_links(paper: dict[str, Any]) -> str:
    """The PDF, code and project-page links a paper has, as mrkdwn after its meta line."""
    pairs = (("pdf_url", "PDF"), ("code_url", "Code"), ("project_url", "Project page"))
    return "".join(f" · {_link(paper[k], label)}" for k, label in pairs if paper.get(k))


def _section(paper: dict[str, Any], meta: str, numbered: bool = True) -> str:
    """A paper's mrkdwn: its linked title, authors and links, why it is there, and its TL;DR
    or the start of its abstract, within ``MAX_SECTION`` characters. Each part is cut short as
    text, before it is escaped: the whole message cut short after could end inside the
    title's link, its bold or an entity (a feed's title of 900 '&', each '&amp;'), and lose
    the rest (found in review). The longest part gives way first."""
    parts = {
        # an alert's one paper is not numbered, as in its e-mail
        "title": f"{paper['number']}. {paper['title']}" if numbered else paper["title"],
        "meta": meta,
        "why": "; ".join(paper["reasons"]),
        "summary": paper.get("tldr") or shorten(paper["abstract"], 300),
    }
    lead = "*TL;DR* " if paper.get("tldr") else ""
    url, links = paper["url"], _extra_links(paper)  # PDF, code, project page

    def written() -> str:
        lines = [f"*{_link(url, parts['title'])}*"]
        byline = f"{escape(parts['meta'])}{links}"
        if byline:  # a post with no authors and no links: no empty line
            lines.append(byline)
        lines += [f"_Why: {escape(parts['why'])}_", f"{lead}{escape(parts['summary'])}"]
        return "\n".join(lines)

    text = written()
    while len(text) > MAX_SECTION:
        longest = max(parts, key=lambda name: len(escape(parts[name])))
        # the PDF, code and project links (2,000 characters each at most: sources.MAX_URL),
        # then the title's own, go before a part is cut shorter than they are
        if links and len(links) >= len(escape(parts[longest])):
            links = ""
        elif url and len(escape(url)) >= len(escape(parts[longest])):
            url = ""  # the title without its link
        else:
            parts[longest] = _cut(parts[longest], len(text) - MAX_SECTION)
        text = written()
    return text


def _cut(raw: str, over: int) -> str:
    """``raw`` written ``over`` characters shorter once escaped, with an ellipsis: at a word
    boundary where one is near, else where it must (a title of one long word, or in a script
    without spaces); empty when nothing of it fits."""
    room = len(escape(raw)) - over - 1  # less one for the ellipsis
    keep = bisect.bisect_right(list(accumulate(len(escape(c)) for c in raw)), room)
    cut = shorten(raw, keep)
    if len(cut) - 1 < keep // 2:  # the last space was far back
        cut = raw[:keep] + "…"
    return cut if keep > 0 and len(cut) < len(raw) else ""


def digest_blocks(ctx: dict[str, Any]) -> list[list[dict]]:
    """Block Kit for a rendered digest context, as one or more messages' block lists."""
    if ctx["kind"] == "alert":
        header = "A paper well above your usual bar"
    else:
        header = f"Your papers for {ctx['period']}"
    head = [
        {"type": "header", "text": {"type": "plain_text", "text": shorten(header, MAX_HEADER - 1)}},
    ]
    paper_blocks: list[list[dict]] = []
    for paper in ctx["papers"]:
        meta = format_authors(paper["authors"])
        if paper.get("upvotes"):
            meta += f" · ▲ {paper['upvotes']}"
        text = _section(paper, meta, numbered=ctx["kind"] != "alert")
        buttons = []
        for action, label, style in (
            ("up", "👍 More like this", "primary"),
            ("down", "👎 Less like this", None),
        ):
            button: dict[str, Any] = {
                "type": "button",
                "text": {"type": "plain_text", "text": label, "emoji": True},
                "url": paper[f"{action}_url"],
                "action_id": f"vote_{action}",
                # the signed vote token: with interactivity on, /slack/actions reads it from here
                "value": paper[f"{action}_url"].rsplit("/", 1)[-1][:2000],
            }
            if style:
                button["style"] = style
            buttons.append(button)
        paper_blocks.append(
            [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {
                    "type": "actions",
                    "block_id": block_id(paper["paper_id"]),
                    "elements": buttons,
                },
            ]
        )
    footer = [
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{_link(ctx['profile_url'], 'What paperwire has learned')} · "
                    f"{_link(ctx['feed_url'], 'Your picks as an Atom feed')} · "
                    f"{_link(ctx['unsubscribe_url'], 'Unsubscribe')}",
                }
            ],
        }
    ]
    messages: list[list[dict]] = []
    current: list[dict] = list(head)
    for blocks in paper_blocks:
        if len(current) + len(blocks) > MAX_BLOCKS - len(footer):
            messages.append(current)
            current = []
        current.extend(blocks)
    current.extend(footer)
    messages.append(current)
    return messages


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _waiter(backoff: float) -> Callable[[RetryCallState], float]:
    """The e-mail sender's back-off, unless Slack said how long to wait (then that, capped)."""
    exponential = wait_exponential(multiplier=backoff, min=backoff, max=30 * backoff)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER)
        return exponential(state)

    return wait


async def post(
    client: httpx.AsyncClient,
    webhook_url: str,
    payload: dict[str, Any],
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    deadline: float = 60.0,
    budget: Budget | None = None,
    reader: str = "",
) -> None:
    """POST one message to an incoming webhook within ``deadline`` seconds in all (and what is
    left of the run's ``budget``); raises DeliveryError (permanent for 4xx but 408 and 429;
    ``maybe_delivered`` when the deadline passed after the message was sent; with
    ``retry_after`` when Slack said how long to wait).

    Transport errors, 429 and 5xx are retried with tenacity, as e-mail is."""
    sent = False  # this attempt's body went out: a timeout from now on may hide a delivery
    answered: int | None = None  # this attempt's status, once its headers came

    async def trace(event: str, info: dict) -> None:
        nonlocal sent
        if event == "http11.send_request_body.complete":
            sent = True

    async def attempt() -> None:
        nonlocal sent, answered
        sent, answered = False, None
        try:
            # no per-read timeout: the deadline around the whole message is the timeout; no
            # redirects (whatever the client's default); the answer read up to MAX_ANSWER, raw
            # (not inflated: a small gzip answer could inflate to gigabytes)
            async with client.stream(
                "POST",
                webhook_url,
                json=payload,
                headers={"Accept-Encoding": "identity"},
                timeout=httpx.Timeout(None),
                follow_redirects=False,
                extensions={"trace": trace},
            ) as response:
                status, headers = response.status_code, response.headers
                answered = status
                body = await _read_at_most(response, MAX_ANSWER)
        except httpx.TransportError as exc:
            if sent:
                # the message went out whole and the line dropped before the answer (a proxy
                # timing out upstream, a server restarting): it may have been posted, and
                # posting it again at once could post it twice (e-mail's rule, email.py)
                raise DeliveryError(
                    "Slack webhook: the line dropped after the message was sent, before any "
                    f"answer ({type(exc).__name__}); it may have arrived",
                    maybe_delivered=True,
                ) from None
            problem = f"{type(exc).__name__}{_tls_problem(exc)}"
            raise _Retryable(f"Slack webhook unreachable: {problem}") from None
        if status == 200:
            if body.strip() != b"ok":
                log.warning(
                    "Slack webhook%s answered HTTP 200 with %r, not Slack's 'ok'; counted as "
                    "sent (if that is a proxy's or login page, nothing arrived: check the URL)",
                    f" of {reader}" if reader else "",  # whose webhook to check
                    _said(body, 100),
                )
            return
        if 300 <= status < 400:
            raise DeliveryError(
                f"Slack webhook answered HTTP {status} ({_redirect_target(webhook_url, headers)})"
                ": webhooks are not redirected; check the URL",
                permanent=True,
            )
        if status in (408, 429) or status >= 500:
            wait = retry_after(headers.get("Retry-After"))
            problem = f"Slack webhook kept answering HTTP {status}"
            if wait is not None and wait > scope_left():
                # asked to wait past this message's deadline: a later run waits instead
                raise DeliveryError(
                    f"Slack webhook answered HTTP {status} and asked to wait {wait:g} s",
                    retry_after=wait,
                )
            raise _Retryable(problem, wait)
        raise DeliveryError(
            f"Slack webhook refused the message: HTTP {status} {_said(body, 200)}",
            permanent=True,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_Retryable),
        stop=stop_after_attempt(attempts),
        wait=_waiter(backoff),
        reraise=True,
    )
    deadline, limit = (budget or Budget()).deadline(deadline, "sender.timeout")
    loop = asyncio.get_running_loop()
    ends = loop.time() + deadline

    def scope_left() -> float:
        return ends - loop.time()

    try:
        async with asyncio.timeout(deadline) as scope:
            async for state in retrying:
                with state:
                    await attempt()
    except _Retryable as exc:
        raise DeliveryError(str(exc), retry_after=exc.retry_after) from None
    except TimeoutError:
        if not scope.expired():
            raise
        if answered == 200:
            # Slack said 200 and its body dripped past the deadline: posted. As "maybe
            # delivered" it was posted again by a later run, a second copy in the channel
            log.warning(
                "Slack webhook%s answered HTTP 200 and its body did not end within %.3g s; "
                "counted as sent",
                f" of {reader}" if reader else "",
                deadline,
            )
            return
        if sent:
            raise DeliveryError(
                f"Slack webhook: no answer within {deadline:.3g} s ({limit}) after the "
                "message was sent; it may have arrived",
                maybe_delivered=True,
            ) from None
        raise DeliveryError(
            f"Slack webhook: the message could not be sent within {deadline:.3g} s ({limit})"
        ) from None


def _tls_problem(exc: BaseException) -> str:
    """': TLS failed: <OpenSSL's reason>' when TLS is why a connection failed (an untrusted or
    expired certificate, a server not speaking TLS), else ''. Only OpenSSL's words: no URL."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            reason = _SSL_NOISE.sub("", str(seen)).strip() or type(seen).__name__
            return f": TLS failed: {reason}"
        seen = seen.__cause__ or seen.__context__
    return ""


# "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ... (_ssl.c:1006)" -> its words
_SSL_NOISE = re.compile(r"^\[SSL(?:: \w+)?\]\s*|\s*\(_ssl\.c:\d+\)$")


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The first ``limit`` bytes of an answer, as sent (no content decoding); the rest is never
    read: leaving the stream closes the connection. A line that drops within the answer ends
    it there: its status came, and decides (a 200 that read as 'the line dropped ... it may
    have arrived' was posted again, a second copy in the channel)."""
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= limit:
                break
    except httpx.TransportError:
        pass
    return bytes(body[:limit])


def _said(body: bytes, width: int) -> str:
    """An answer's body as one short printable line, any URL in it redacted."""
    text = " ".join(printable(body.decode("utf-8", "replace")).split())
    return shorten(redact(text), width)


def _redirect_target(webhook_url: str, headers: httpx.Headers) -> str:
    """Where a redirect points, resolved against the webhook and redacted (a relative
    Location would keep the webhook's secret path)."""
    location = headers.get("Location")
    if not location:
        return "a redirect with no Location"
    try:
        target = str(httpx.URL(webhook_url).join(location.strip()))
    except (httpx.InvalidURL, ValueError):
        return "a redirect to a Location that is no URL"
    # Only where it goes, never its path or query: a login page's redirect carries the
    # webhook itself (https://sso.example.com/login?return_to=https%3A%2F%2Fhooks...), which
    # no mask of the raw URL finds; the host is what a reader of the error needs
    parts = httpx.URL(target)
    origin = f"{parts.scheme}://{parts.host}" + (f":{parts.port}" if parts.port else "")
    return f"a redirect to {shorten(redact(printable(origin)), 200)}"


async def send_digest(
    client: httpx.AsyncClient,
    webhook_url: str,
    ctx: dict[str, Any],
    fallback: str,
    *,
    start: int = 0,
    on_part: Callable[[int], None] | None = None,
    attempts: int = 4,
    backoff: float = 1.0,
    deadline: float = 60.0,
    budget: Budget | None = None,
    reader: str = "",
) -> int:
    """Post a digest (split as needed), from message ``start`` on (those before it were
    accepted by an earlier run); ``on_part(n)`` after each accepted message, n counted from
    the first; each message within ``deadline`` seconds. Returns the number of messages the
    digest has."""
    messages = digest_blocks(ctx)
    for number, blocks in enumerate(messages[start:], start + 1):
        # the notification's text is mrkdwn too: a title's "<!channel>" would notify everyone
        payload = {"text": escape(shorten(fallback, 300)), "blocks": blocks}
        await post(
            client,
            webhook_url,
            payload,
            attempts=attempts,
            backoff=backoff,
            deadline=deadline,
            budget=budget,
            reader=reader,
        )
        if on_part is not None:
            on_part(number)
    return len(messages)
