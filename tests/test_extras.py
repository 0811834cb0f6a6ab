"""TL;DRs, keywords, code and project links: from real Hugging Face and arXiv API documents,
through a real SQLite store, into the e-mail, Slack blocks and the web page (real uvicorn)."""

from __future__ import annotations

from pathlib import Path

import httpx

from paperwire import render
from paperwire.deliver import slack
from paperwire.links import Links, Signer
from paperwire.paper import Paper, Pick
from paperwire.sources import parse_document
from paperwire.sources.extras import code_link, project_link
from paperwire.store import Store
from paperwire.web.app import create_app

from .conftest import free_port
from .test_web import serve

FIXTURES = Path(__file__).parent / "fixtures"
WEBCHALLENGER = "2606.10423"


def hf_papers() -> list[Paper]:
    content = (FIXTURES / "hf_daily_papers_extras.json").read_bytes()
    papers, _ = parse_document(content, source="hf")
    return papers


def test_hf_daily_papers_carry_tldr_keywords_code_and_project():
    none, project, both = hf_papers()
    assert none.tldr.startswith("Large language models exhibit limited ability to correct")
    assert none.code_url is None and none.project_url is None
    assert len(none.keywords) == 8  # 14 in the feed; a digest shows a few
    assert project.code_url is None
    assert project.project_url == "https://chicychen.github.io/dense-hetero-latent-mas/"
    assert both.code_url == "https://github.com/jayoohwang1/webchallenger"
    assert both.project_url == "https://jayoohwang1.github.io/webchallenger-site/"
    assert both.tldr == (
        "WebChallenger presents a web agent framework that improves autonomous navigation "
        "through structured page representation and cognitive-inspired mechanisms, achieving "
        "high performance with open-weight models."
    )
    assert both.keywords[:2] == ["PageMem", "DOM"]


def test_arxiv_api_comments_give_project_and_code_links():
    content = (FIXTURES / "arxiv_api_atom_2026_transformer-cs.LG_m5.xml").read_bytes()
    papers, _ = parse_document(content, source="arxiv-api")
    links = {p.paper_id: (p.code_url, p.project_url) for p in papers}
    assert links["2606.13677"] == (None, "https://zhaohengyin.github.io/mana")
    assert [p for p, pair in links.items() if pair != (None, None)] == ["2606.13677"]


def test_links_in_free_text_are_repositories_and_only_http():
    comment = "Accepted at ICLR. Code: https://github.com/microsoft/LoRA."
    assert code_link(comment) == "https://github.com/microsoft/LoRA"
    assert code_link("see https://github.com/ for hosting") is None  # a host, not a repository
    assert code_link("code: javascript:alert(1)//github.com/a/b") is None
    assert project_link("Project page: https://example.org/p; code soon") == (
        "https://example.org/p"
    )


def test_store_keeps_extras_when_another_feed_says_less(store: Store):
    store.add_papers(hf_papers())
    plain = Paper(WEBCHALLENGER, "WebChallenger (v2)", "A newer abstract.", version=2)
    store.add_papers([plain])
    paper = store.paper(WEBCHALLENGER)
    assert paper["title"] == "WebChallenger (v2)"
    assert paper["code_url"] == "https://github.com/jayoohwang1/webchallenger"
    assert paper["tldr"].startswith("WebChallenger presents a web agent framework")
    assert paper["tldr_source"] == "feed"
    assert paper["keywords"][:2] == ["PageMem", "DOM"]


def _context(store: Store) -> dict:
    store.add_papers(hf_papers())
    papers = store.papers(["2606.00467", WEBCHALLENGER])
    picks = [Pick(p, papers[p]["title"], papers[p]["url"], 1.0, ["matches “agents”"], papers[p])
             for p in papers]  # fmt: skip
    links = Links("http://127.0.0.1:8000", Signer("s3cret-signing-key"), "ada")
    return render.context(
        subscriber_name="Ada", picks=picks, links=links, kind="digest", period="2026-06-12"
    )


def test_email_shows_the_tldr_and_code_and_project_beside_pdf(store: Store):
    ctx = _context(store)
    mail = render.render_email(ctx, "subject")
    pdf = mail.html.index("https://arxiv.org/pdf/2606.10423")
    code = mail.html.index("https://github.com/jayoohwang1/webchallenger")
    project = mail.html.index("https://jayoohwang1.github.io/webchallenger-site/")
    assert pdf < code < project
    assert mail.html.count("<strong>TL;DR</strong>") == 2
    assert "WebChallenger presents a web agent framework" in mail.html
    assert (
        "   Code: https://github.com/jayoohwang1/webchallenger\n"
        "   Project page: https://jayoohwang1.github.io/webchallenger-site/\n"
        "   TL;DR: WebChallenger presents a web agent framework that improves autonomous "
        "navigation through structured page representation and cognitive-inspired mechanisms, "
        "achieving high performance with open-weight models.\n"
    ) in mail.text


def test_slack_blocks_show_the_tldr_instead_of_the_abstract_and_the_links(store: Store):
    ctx = _context(store)
    [blocks] = slack.digest_blocks(ctx)
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    web = next(t for t in texts if "WebChallenger" in t)
    assert (
        " · <https://arxiv.org/pdf/2606.10423|PDF> · "
        "<https://github.com/jayoohwang1/webchallenger|Code> · "
        "<https://jayoohwang1.github.io/webchallenger-site/|Project page>\n"
    ) in web
    assert web.endswith(
        "*TL;DR* WebChallenger presents a web agent framework that improves autonomous "
        "navigation through structured page representation and cognitive-inspired mechanisms, "
        "achieving high performance with open-weight models."
    )


def test_vote_page_shows_tldr_and_links(tmp_path: Path, make_config):
    port = free_port()
    config = make_config(
        f"base_url: http://127.0.0.1:{port}\nsubscribers:\n  - id: ada\n    email: a@example.org\n",
        env={"PAPERWIRE_SECRET": "s3cret-signing-key"},
    )
    with Store(tmp_path / "pw.db") as store:
        store.add_papers(hf_papers())
    stop = serve(create_app(lambda: config, tmp_path / "pw.db"), port)
    try:
        token = Signer("s3cret-signing-key").vote_token("ada", WEBCHALLENGER, "up")
        html = httpx.get(f"http://127.0.0.1:{port}/v/{token}", timeout=10).text
    finally:
        stop()
    assert '<p class="tldr"><strong>TL;DR</strong> WebChallenger presents' in html
    assert (
        '<a class="code" href="https://github.com/jayoohwang1/webchallenger" '
        'rel="noreferrer noopener">Code</a>'
    ) in html
