"""Optional TL;DRs written by a language model, for picked papers whose feed gave none.

Any OpenAI-compatible chat endpoint works (a local Ollama, llama.cpp or vLLM server, or a hosted
one): ``summariser:`` in the config names its base URL, model, the environment variable holding
the key and the language of the summary. It is off by default and bounded in cost: only papers
that made someone's digest are summarised, each once (the TL;DR is stored), at most
``daily_cap`` requests a UTC day (failed ones count), and a send run spends at most
``run_budget`` seconds on it: up to :data:`CONCURRENCY` requests at once, each ending within
``timeout`` seconds (all of it, however slowly the endpoint answers) and never past the run's
budget. It never blocks or fails a digest: a timeout, an error or an empty answer leaves the
paper with its abstract.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Mapping

import httpx

from ..config import SummariserConfig
from ..deadline import Budget
from ..paper import Pick
from ..sources.extras import one_line
from ..store import Store

log = logging.getLogger("paperwire")

SOURCE = "llm"
CONCURRENCY = 4  # requests at once: a local model serves a few in parallel, a hosted one more
# bytes of an answer read at most: a completion of 120 tokens is a few kB; a proxy's page or a
# wrong base_url may answer without end, and the answer was read whole into memory
MAX_ANSWER = 1024 * 1024
PROMPT = (
    "You write one-sentence TL;DRs of research papers for busy researchers. Answer in {language} "
    "with one plain sentence of at most 30 words: what the paper does and what it finds. "
    "No preamble, no Markdown."
)


def summarise_picks(
    store: Store,
    settings: SummariserConfig,
    picks: Iterable[Pick],
    *,
    now: dt.datetime,
    env: Mapping[str, str] | None = None,
) -> int:
    """Write a TL;DR for each pick without one, within the cap and budget; returns how many.

    Each new TL;DR is stored and set on the pick's paper, so the digest being composed shows it.
    """
    if not settings.enabled:
        return 0
    wanted: dict[str, list[Pick]] = {}
    for pick in picks:
        if not pick.paper.get("tldr"):
            wanted.setdefault(pick.paper_id, []).append(pick)
    if not wanted:
        return 0
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    left = settings.daily_cap - store.summary_requests_since(day)
    if left <= 0:
        log.info("summariser: daily cap of %d reached; abstracts stay", settings.daily_cap)
        return 0
    env = os.environ if env is None else env
    key = env.get(settings.api_key_env, "")
    asked = dict(list(wanted.items())[:left])
    return asyncio.run(_summarise(store, settings, key, asked, now, Budget(settings.run_budget)))


async def _summarise(
    store: Store,
    settings: SummariserConfig,
    key: str,
    wanted: dict[str, list[Pick]],
    now: dt.datetime,
    budget: Budget,
) -> int:
    gate = asyncio.Semaphore(CONCURRENCY)
    written = 0

    async def one(client: httpx.AsyncClient, paper_id: str, same: list[Pick]) -> None:
        nonlocal written
        async with gate:
            if budget.spent:
                return  # not asked: it does not count against the cap
            paper = same[0].paper
            tldr, outcome = await _ask(
                client, settings, key, paper.get("title"), paper.get("abstract"), budget
            )
        # the store is written from this one thread (the loop's), one request at a time
        store.record_summary_request(paper_id, outcome, now)
        if tldr is None:
            log.warning("summariser: %s: %s; the abstract stays", paper_id, outcome)
            return
        store.set_tldr(paper_id, tldr, source=SOURCE)
        for pick in same:
            pick.paper["tldr"] = tldr
            pick.paper["tldr_source"] = SOURCE
        written += 1

    async with httpx.AsyncClient(timeout=httpx.Timeout(None)) as client:
        await asyncio.gather(*(one(client, pid, same) for pid, same in wanted.items()))
    if budget.spent:
        log.info("summariser: run_budget of %g s spent; abstracts stay", settings.run_budget)
    return written


async def _ask(
    client: httpx.AsyncClient,
    settings: SummariserConfig,
    key: str,
    title: str | None,
    abstract: str | None,
    budget: Budget,
) -> tuple[str | None, str]:
    """One chat completion within ``timeout`` (and what is left of the run's budget): (the
    TL;DR, "ok") or (None, why not). Never raises."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    payload = {
        "model": settings.model,
        "messages": [
            {"role": "system", "content": PROMPT.format(language=settings.language)},
            {"role": "user", "content": f"Title: {title or ''}\n\nAbstract: {abstract or ''}"},
        ],
        "temperature": 0.2,
        "max_tokens": 120,
    }
    # the path joined, the query kept: Azure's "…/deployments/d1?api-version=…" put
    # "/chat/completions" inside its query
    base = httpx.URL(settings.base_url)
    url = base.copy_with(path=base.path.rstrip("/") + "/chat/completions")
    deadline = budget.cap(settings.timeout)
    try:
        async with (
            asyncio.timeout(deadline),  # the whole answer, not each read of it
            client.stream("POST", url, json=payload, headers=headers) as response,
        ):
            status = response.status_code
            body = bytearray()
            if status == 200:
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        break  # the rest is never read: leaving the stream closes the line
    except TimeoutError:
        return None, f"no answer within {deadline:.3g} s"
    except httpx.HTTPError as exc:
        return None, f"cannot reach the endpoint ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 (a TL;DR never fails a digest, whatever broke)
        log.debug("summariser request failed", exc_info=True)
        return None, f"the request failed ({type(exc).__name__})"
    if status != 200:
        return None, f"HTTP {status}"
    if len(body) > MAX_ANSWER:
        return None, f"an answer longer than {MAX_ANSWER // (1024 * 1024)} MB"
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        # RecursionError: "[[[[…" a thousand deep, which json.loads does not survive
        return None, "not an OpenAI-style chat completion"
    text = one_line(content.removeprefix("TL;DR:").strip() if isinstance(content, str) else None)
    return (text, "ok") if text else (None, "empty answer")
