"""Slack: a digest as Block Kit, posted to an incoming webhook, within Slack's limits.

Limits (api.slack.com/reference/block-kit): 50 blocks per message, 3000 characters per section
text, 150 per header, 75 per button label. A long digest is split across messages; long text is
trimmed at a word boundary. 429 answers are retried after ``Retry-After``; other 4xx are
permanent (a revoked webhook does not start working by retrying).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from ..errors import DeliveryError
from ..render import format_authors, shorten

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_RETRY_AFTER = 60.0


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    # '|' would end the label of a <url|label> link early
    return f"<{url}|{escape(label).replace('|', '¦')}>"


def _extra_links(paper: dict[str, Any]) -> str:
    """The PDF, code and project-page links a paper has, as mrkdwn after its meta line."""
    pairs = (("pdf_url", "PDF"), ("code_url", "Code"), ("project_url", "Project page"))
    return "".join(f" · {_link(paper[k], label)}" for k, label in pairs if paper.get(k))


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
        why = "; ".join(paper["reasons"])
        links = _extra_links(paper)  # issue 16: PDF, code, project page; a TL;DR over the abstract
        summary = f"*TL;DR* {escape(paper['tldr'])}" if paper.get("tldr") else ""
        text = (
            f"*{_link(paper['url'], str(paper['number']) + '. ' + paper['title'])}*\n"
            f"{escape(meta)}{links}\n_Why: {escape(why)}_\n"
            f"{summary or escape(shorten(paper['abstract'], 300))}"
        )
        if len(text) > MAX_SECTION:
            text = shorten(text, MAX_SECTION - 1)
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
                    "block_id": f"p:{paper['paper_id']}"[:255],
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
                    f"{_link(ctx['unsubscribe_url'], 'Unsubscribe')}",
                }
            ],
        }
    ]
    messages: list[list[dict]] = []
    current = list(head)
    for blocks in paper_blocks:
        if len(current) + len(blocks) > MAX_BLOCKS - len(footer):
            messages.append(current)
            current = []
        current.extend(blocks)
    current.extend(footer)
    messages.append(current)
    return messages


def post(
    client: httpx.Client, webhook_url: str, payload: dict[str, Any], *, attempts: int = 4
) -> None:
    """POST one message to an incoming webhook; raises DeliveryError (permanent for 4xx)."""
    for attempt in range(1, attempts + 1):
        try:
            response = client.post(webhook_url, json=payload)
        except httpx.TransportError as exc:
            if attempt == attempts:
                raise DeliveryError(f"Slack webhook unreachable: {type(exc).__name__}") from None
            time.sleep(min(2**attempt, 30))
            continue
        if response.status_code == 200:
            return
        if response.status_code == 429 or response.status_code >= 500:
            if attempt == attempts:
                break
            wait = response.headers.get("Retry-After", "")
            time.sleep(min(float(wait) if wait.isdigit() else 2**attempt, MAX_RETRY_AFTER))
            continue
        raise DeliveryError(
            f"Slack webhook refused the message: HTTP {response.status_code} "
            f"{shorten(response.text, 200)}",
            permanent=True,
        )
    raise DeliveryError(f"Slack webhook kept answering HTTP {response.status_code}")


def send_digest(client: httpx.Client, webhook_url: str, ctx: dict[str, Any], fallback: str) -> int:
    """Post a digest (split as needed); returns the number of messages posted."""
    messages = digest_blocks(ctx)
    for blocks in messages:
        post(client, webhook_url, {"text": shorten(fallback, 300), "blocks": blocks})
    return len(messages)
