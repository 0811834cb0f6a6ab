"""The optional summariser against a real local HTTP server speaking the OpenAI chat API
(/v1/chat/completions), through a real send run: stored once, capped, never in the way."""

from __future__ import annotations

import datetime as dt
import json
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from paperwire import pipeline
from paperwire.paper import Paper
from paperwire.store import Store

from .conftest import HttpServer, Route

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
PATH = "/v1/chat/completions"
PAPERS = [
    Paper("2611.00001", "KV cache quantization for long context LLM inference",
          "We quantize the key value cache to 2 bits and keep long context accuracy.",
          url="https://arxiv.org/abs/2611.00001"),
    Paper("2611.00002", "Compressing the KV cache of transformer inference",
          "Low-bit quantization and eviction shrink the KV cache of large language models.",
          url="https://arxiv.org/abs/2611.00002"),
    Paper("2611.00003", "Speculative decoding for faster LLM inference",
          "A small draft model proposes tokens that the large model verifies in parallel.",
          url="https://arxiv.org/abs/2611.00003", tldr="Draft, then verify: 2x faster decoding."),
]  # fmt: skip


def completion(text: str) -> bytes:
    return json.dumps(
        {"id": "c1", "object": "chat.completion", "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                      "finish_reason": "stop"}]}
    ).encode()  # fmt: skip


def config_text(port: int, **summariser) -> str:
    settings = {"enabled": True, "base_url": f"http://127.0.0.1:{port}/v1", "model": "qwen2.5:3b",
                "language": "French", "api_key_env": "SUMMARY_KEY", **summariser}  # fmt: skip
    return (
        f"summariser: {json.dumps(settings)}\n"
        "secret: s3cret-signing-key\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "KV cache quantization, LLM inference"\n    digest_size: 3\n'
    )


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "pw.db") as opened:
        opened.add_papers(PAPERS, now=NOW - dt.timedelta(hours=2))
        yield opened


def requests_to(server: HttpServer) -> list[dict]:
    return [json.loads(body) for method, p, _, body in server.requests if p == PATH]


def test_picks_without_a_tldr_get_one_once_in_the_configured_language(
    store: Store, http_server: HttpServer, make_config, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("SUMMARY_KEY", "sk-local-123")
    http_server.routes[PATH] = Route(completion("TL;DR: Le cache KV tient en 2 bits."))
    config = make_config(config_text(http_server.port))
    pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    sent = requests_to(http_server)
    assert len(sent) == 2  # the third pick came with a TL;DR from its feed
    assert {r["model"] for r in sent} == {"qwen2.5:3b"}
    assert "Answer in French" in sent[0]["messages"][0]["content"]
    assert sent[0]["messages"][1]["content"].startswith("Title: ")
    headers = [h for _, p, h, _ in http_server.requests if p == PATH]
    assert headers[0]["Authorization"] == "Bearer sk-local-123"
    assert store.paper("2611.00001")["tldr"] == "Le cache KV tient en 2 bits."
    assert store.paper("2611.00001")["tldr_source"] == "llm"
    assert store.paper("2611.00003")["tldr_source"] == "feed"
    [eml] = (tmp_path / "outbox").glob("*.eml")
    text = message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",))
    assert text.get_content().count("TL;DR: Le cache KV tient en 2 bits.") == 2
    # stored: the next digest with these papers asks nothing again
    pipeline.send_due(store, config, now=NOW + dt.timedelta(days=1), outbox=tmp_path / "outbox")
    assert len(requests_to(http_server)) == 2


def test_errors_and_timeouts_leave_the_abstract_and_the_digest_goes_out(
    store: Store, http_server: HttpServer, make_config, tmp_path: Path
):
    http_server.routes[PATH] = [
        Route(b"overloaded", status=500),
        Route(completion("late"), delay=2),
    ]
    config = make_config(config_text(http_server.port, timeout=0.5))
    report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert [line.status for line in report.lines] == ["sent"]
    assert len(requests_to(http_server)) == 2
    assert store.paper("2611.00001")["tldr"] is None
    assert store.paper("2611.00002")["tldr"] is None
    [eml] = (tmp_path / "outbox").glob("*.eml")
    body = message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",))
    assert "We quantize the key value cache to 2 bits" in body.get_content()


def test_the_daily_cap_counts_every_request(
    store: Store, http_server: HttpServer, make_config, tmp_path: Path
):
    http_server.routes[PATH] = Route(completion("One line."))
    config = make_config(config_text(http_server.port, daily_cap=1))
    pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert len(requests_to(http_server)) == 1
    assert store.summary_requests_since(NOW.replace(hour=0)) == 1


def test_off_by_default(store: Store, http_server: HttpServer, make_config, tmp_path: Path):
    config = make_config(
        config_text(http_server.port).replace('"enabled": true', '"enabled": false')
    )
    assert not config.summariser.enabled
    pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert http_server.requests == []


# -- issue 26: a slow or dripping endpoint never holds a digest past the budget ------------

# what these tests time is the summaries' deadline, not loading the sentence encoder
NO_ENCODER = "ranking: {embeddings: off}\n"


@pytest.mark.timeout(30)
def test_a_dripping_endpoint_ends_at_the_timeout_and_the_digest_goes_out(
    store: Store, make_config, tmp_path: Path
):
    """One byte every 0.3 s passes every per-read timeout: the timeout is around the whole
    answer, and the run's budget around every request."""
    from . import hostile
    from .conftest import free_port

    state = hostile.Hostile(port=free_port(), drip_every=0.3)
    with hostile.serving(state):
        text = config_text(state.port, timeout=1, run_budget=1.5)
        config = make_config(
            NO_ENCODER + text.replace(f"127.0.0.1:{state.port}/v1", f"127.0.0.1:{state.port}/drip")
        )
        began = time.monotonic()
        report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        took = time.monotonic() - began
        asked = [path for path, _ in state.posts]
    assert [line.status for line in report.lines] == ["sent"]
    assert took < 2.5, took
    assert asked == ["/drip/chat/completions"] * 2  # both at once, not one after the other
    assert store.paper("2611.00001")["tldr"] is None
    outcomes = {
        json.loads(e["detail"])["outcome"]
        for e in store.db["events"].rows_where("kind = 'summary'")
    }
    assert outcomes == {"no answer within 1 s"}


def test_summaries_are_asked_at_once_so_a_slow_endpoint_costs_one_timeout(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """Four picks, an endpoint answering after 3 s, timeout 1: the digest waits ~1 s, not 4."""
    papers = [
        Paper(f"2611.0010{i}", f"KV cache quantization method {i}", "We quantize the KV cache.")
        for i in range(4)
    ]
    http_server.routes[PATH] = Route(completion("late"), delay=3)
    config = make_config(
        NO_ENCODER
        + config_text(http_server.port, timeout=1).replace("digest_size: 3", "digest_size: 4")
    )
    with Store(tmp_path / "many.db") as many:
        many.add_papers(papers, now=NOW - dt.timedelta(hours=2))
        began = time.monotonic()
        report = pipeline.send_due(many, config, now=NOW, outbox=tmp_path / "outbox")
        took = time.monotonic() - began
    assert [line.status for line in report.lines] == ["sent"]
    assert len(requests_to(http_server)) == 4
    assert http_server.max_in_flight == 4
    assert took < 2.5, took


@pytest.mark.timeout(30)
def test_a_huge_answer_is_read_no_further_than_a_small_cap(
    store: Store, make_config, tmp_path: Path
):
    """An endpoint (a proxy's page, a wrong base_url) answering 100 MB to each of the two
    requests was read whole into memory, 200 MB for two TL;DRs of 120 tokens: an answer is read
    up to summarise.MAX_ANSWER, and one longer is no completion."""
    from . import hostile
    from .conftest import free_port

    state = hostile.Hostile(port=free_port(), huge_mb=100)
    with hostile.serving(state):
        text = config_text(state.port)
        config = make_config(
            NO_ENCODER
            + text.replace(f"127.0.0.1:{state.port}/v1", f"127.0.0.1:{state.port}/huge/200")
        )
        report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        time.sleep(0.2)  # the server's last write fails once the client has hung up
    assert [line.status for line in report.lines] == ["sent"]
    assert [path for path, _ in state.posts] == ["/huge/200/chat/completions"] * 2
    assert store.paper("2611.00001")["tldr"] is None
    outcomes = {
        json.loads(e["detail"])["outcome"]
        for e in store.db["events"].rows_where("kind = 'summary'")
    }
    assert outcomes == {"an answer longer than 1 MB"}
    # what the kernel's socket buffers took, at most; the two answers are 200 MB
    assert state.huge_sent < 64 << 20, state.huge_sent


def test_an_answer_nested_past_what_json_reads_is_no_tldr_and_the_digest_goes_out(
    store: Store, http_server: HttpServer, make_config, tmp_path: Path
):
    """`[[[[…` a thousand deep: json.loads raised RecursionError, which nothing caught, out of
    `send` before any digest went out, on every run (the request was never counted against
    the cap either). Found in review."""
    http_server.routes[PATH] = [Route(b"[" * 200_000), Route(completion("Ein TL;DR."))]
    config = make_config(config_text(http_server.port))
    report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert [line.status for line in report.lines] == ["sent"]
    assert store.summary_requests_since(NOW - dt.timedelta(days=1)) == 2  # both counted
    tldrs = {store.paper(p)["tldr"] for p in ("2611.00001", "2611.00002")}
    assert tldrs == {None, "Ein TL;DR."}


def test_a_key_no_http_header_carries_is_a_config_error(make_config):
    """A key pasted with a curly quote or a no-break space: httpx raised UnicodeEncodeError out
    of every send, before any digest went out (found in review)."""
    from paperwire.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_config(config_text(1), env={"SUMMARY_KEY": "sk-abc\u00a0def\u201d"})
    message = str(caught.value)
    assert (
        "summariser.api_key_env: the key in $SUMMARY_KEY holds U+00A0 (NO-BREAK SPACE)" in message
    )
    assert "character 7" in message and "sk-abc" not in message


def test_a_base_url_with_a_query_keeps_it_and_the_path_is_joined_before_it(
    store: Store, http_server: HttpServer, make_config, tmp_path: Path
):
    """Azure's deployments take "?api-version=…": the path was joined after the query."""
    wanted = "/openai/deployments/d1/chat/completions?api-version=2024-02-01"
    http_server.routes[wanted] = Route(completion("Kurz."))
    base = f"http://127.0.0.1:{http_server.port}/openai/deployments/d1?api-version=2024-02-01"
    config = make_config(config_text(http_server.port, base_url=base))
    pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    asked = {p for _, p, _, _ in http_server.requests}
    assert asked == {wanted}
    assert store.paper("2611.00001")["tldr"] == "Kurz."


def test_a_tldr_of_invisible_characters_is_none():
    from paperwire.sources.extras import one_line

    for invisible in ("\u200b\u200b\u200b", "\ufeff", "\u00ad\u034f", " \u2060 "):
        assert one_line(invisible) is None, repr(invisible)
    assert one_line("\u200bA real one.") == "\u200bA real one."
