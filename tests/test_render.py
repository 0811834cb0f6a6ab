"""Rendering: CSS inlined into the e-mail template once gives the same message as inlining
every rendered message, whatever the feed text."""

from __future__ import annotations

import datetime as dt
import html
import re

import css_inline
import jinja2

from paperwire import render
from paperwire.links import Links, Signer
from paperwire.paper import Pick


def test_template_inlined_once_equals_inlining_each_message():
    paper = {
        "authors": ["A & B", "<i>C</i>"],
        "abstract": 'x < y & "quotes" {{ not jinja }}',
        "published": "2025-01-01",
        "upvotes": 3,
        "pdf_url": "https://arxiv.org/pdf/2401.00001",
    }
    picks = [
        Pick(
            "2401.00001",
            "A <b>bold</b> & title",
            "https://arxiv.org/abs/2401.00001",
            1.0,
            ["matches “x”"],
            paper,
        ),
        Pick("2401.00002", "Second", "https://arxiv.org/abs/2401.00002", 0.5, ["new"], paper),
    ]
    ctx = render.context(
        subscriber_name="Ada",
        picks=picks,
        links=Links("http://x", Signer("k-test-signing-key"), "ada"),
        kind="digest",
        period="2026-11-23",
        since=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
    )
    ours = render.render_email(ctx, "Subject").html

    plain = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(render.templates_dir())),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    plain.filters.update(shorten=render.shorten, authors=render.format_authors)
    rendered = plain.get_template("email/digest.html").render(subject="Subject", **ctx)
    reference = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False).inline(
        rendered
    )

    def norm(markup: str) -> str:
        # the per-message inliner re-serialises entities (&#34; becomes "): compare decoded
        return re.sub(r"\s+", " ", html.unescape(markup)).strip()

    assert norm(ours) == norm(reference)
    assert 'class="title" href="https://arxiv.org/abs/2401.00001" style="' in ours
    assert "A &lt;b&gt;bold&lt;/b&gt; &amp; title" in ours  # still escaped, of course
    assert "<b>bold" not in ours and "<i>C" not in ours


def test_plain_abstract_is_the_template_filters_computed_once():
    env = jinja2.Environment()
    env.filters["shorten"] = render.shorten
    chain = env.from_string("{{ text|shorten|wordwrap(72)|indent(3) }}")
    long = "Sparse attention " * 40 + "with a_very_long_unbreakable_identifier_" * 3
    for text in (long, "short", "", "two\n\nparagraphs " * 30, None):
        assert render.plain_abstract(text) == chain.render(text=text)
    assert render.plain_abstract(long).count("\n   ") >= 5  # wrapped and indented


def _one_pick_context(paper: dict) -> dict:
    """A digest of one pick (SPIRe) for Ada, of papers received since 2026-11-16."""
    pick = Pick("2504.06419", "SPIRe", "https://arxiv.org/abs/2504.06419", 1.0, ["new"], paper)
    return render.context(
        subscriber_name="Ada",
        picks=[pick],
        links=Links("http://x", Signer("k-test-signing-key"), "ada"),
        kind="digest",
        period="2026-11-23",
        since=dt.datetime(2026, 11, 16, tzinfo=dt.UTC),
    )


def _digest_text(paper: dict) -> str:
    ctx = _one_pick_context(paper)
    return render.render_email(ctx, "Subject").text


def test_plain_text_part_says_what_the_picks_came_from_and_leaves_no_blank_looking_lines():
    text = _digest_text(
        {
            "authors": ["Sanjit Neelam", "Daniel Heinlein"],
            "published": "2025-04-11T04:00:00+00:00",
            "pdf_url": "https://arxiv.org/pdf/2504.06419",
            "abstract": "Speculative decoding.",
        }
    )
    assert text.splitlines()[:9] == [
        "Your papers for 2026-11-23, Ada: 1 picked for you from those paperwire received "
        "since 2026-11-16.",
        "",
        "1. SPIRe",
        "   Sanjit Neelam, Daniel Heinlein · 2025-04-11",
        "   https://arxiv.org/abs/2504.06419",
        "   PDF: https://arxiv.org/pdf/2504.06419",
        "   Why: new",
        "",
        "   Speculative decoding.",
    ]
    bare = _digest_text({})  # no authors, no date, no PDF: no line of spaces in their place
    assert [line for line in bare.splitlines() if line and not line.strip()] == []
    assert "1. SPIRe\n   https://arxiv.org/abs/2504.06419\n   Why: new\n" in bare


def test_html_part_says_what_the_picks_came_from():
    ctx = _one_pick_context({})
    lede = re.search(r'<p class="lede"[^>]*>(.*?)</p>', render.render_email(ctx, "S").html)
    assert lede is not None
    assert lede.group(1) == (
        "Hello Ada, 1 paper picked for you from those paperwire received since 2026-11-16."
    )


def test_plain_text_part_counts_one_upvote_in_the_singular():
    # Hugging Face's Daily Papers of 2026-06-12 list 2606.12488 with one upvote: the plain
    # part read "… · 2026-06-10 · 1 upvotes"
    one = _digest_text({"authors": ["Niccolò Biondi"], "published": "2026-06-10", "upvotes": 1})
    assert "   Niccolò Biondi · 2026-06-10 · 1 upvote\n" in one
    many = _digest_text({"authors": ["Niccolò Biondi"], "published": "2026-06-10", "upvotes": 14})
    assert "   Niccolò Biondi · 2026-06-10 · 14 upvotes\n" in many
