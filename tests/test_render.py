"""Rendering: CSS inlined into the e-mail template once gives the same message as inlining
every rendered message, whatever the feed text."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

import css_inline
import jinja2
import pytest

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
        "Hello Ada, 1 paper picked for you from those paperwire received since "
        # the date never broken over two lines ("2026-11-" / "16." at 375 px; found in review)
        '<span class="date" style="white-space: nowrap;">2026-11-16</span>.'
    )


def test_every_digest_of_several_papers_says_how_many_more_in_its_subject():
    """'(+N more)' followed a top title under 60 characters only: one reader's subject said
    it, the next one's did not (found reading what readers receive). A long title is cut."""
    long = "A" + " very long title" * 12
    picks = [Pick(f"2504.0000{i}", t, "", 1.0, ["new"], {}) for i, t in enumerate([long, "B"])]
    subject = render.subject_for("digest", "2026-12-07", picks)
    assert subject.startswith("Paperwire 2026-12-07: A very long title very")
    assert subject.endswith("… (+1 more)") and len(subject) <= render.SUBJECT_CHARS + 1
    short = render.subject_for("digest", "2026-12-07", picks[::-1])
    assert short == "Paperwire 2026-12-07: B (+1 more)"
    assert "more)" not in render.subject_for("alert", "2026-12-07", picks[:1])  # one paper


def test_the_html_part_says_what_the_upvote_count_is():
    """'▲ 14' alone read as a triangle to a screen reader (the text part says '14 upvotes')."""
    one = _one_pick_context({"upvotes": 1})
    assert re.search(r"▲ 1 upvote(?!s)", render.render_email(one, "S").html)
    many = _one_pick_context({"upvotes": 14})
    assert "▲ 14 upvotes" in render.render_email(many, "S").html


def test_plain_text_part_counts_one_upvote_in_the_singular():
    # Hugging Face's Daily Papers of 2026-06-12 list 2606.12488 with one upvote: the plain
    # part read "… · 2026-06-10 · 1 upvotes"
    one = _digest_text({"authors": ["Niccolò Biondi"], "published": "2026-06-10", "upvotes": 1})
    assert "   Niccolò Biondi · 2026-06-10 · 1 upvote\n" in one
    many = _digest_text({"authors": ["Niccolò Biondi"], "published": "2026-06-10", "upvotes": 14})
    assert "   Niccolò Biondi · 2026-06-10 · 14 upvotes\n" in many


def _every_channel(pick: Pick) -> tuple[str, render.Rendered, str]:
    """One pick in Chen's digest of 2026-12-06: its subject, e-mail and Slack blocks (JSON)."""
    from paperwire.deliver.slack import digest_blocks

    ctx = render.context(
        subscriber_name="Chen",
        picks=[pick],
        links=Links("http://x", Signer("k-test-signing-key"), "chen"),
        kind="digest",
        period="2026-12-06",
    )
    subject = render.subject_for("digest", "2026-12-06", [pick])
    return (
        subject,
        render.render_email(ctx, subject),
        json.dumps(digest_blocks(ctx), ensure_ascii=False),
    )


def test_tex_in_titles_and_abstracts_reads_as_text_in_every_part():
    # arXiv's cs feed of 2025-04-11, as a field digest showed them: "\emph{DMol}", "$1.5\%$",
    # "$10$-fold", "p$<$0.001", "$\Pi$-NeSy" in the subject line

    abstract = (
        r"A new graph diffusion model for small molecule generation, \emph{DMol}, which "
        r"outperforms DiGress in terms of validity by roughly $1.5\%$ while reducing the number "
        r"of diffusion steps by at least $10$-fold (p$<$0.001, $\alpha \in (0, 2)$, "
        r"$512\times512$, $150~\mu\text{g/m}^3$, $\mathbb{F}_{2^m}$). Costs \$5 and \& more; "
        r"runs in $\tilde{O}(\sqrt{nh})$ time."
    )
    paper = {"authors": ["Peizhi Niu"], "abstract": abstract}
    pick = Pick(
        "2504.06312",
        r"$\Pi$-NeSy: XOR$-$CNF",
        "https://arxiv.org/abs/2504.06312",
        1.0,
        ["new"],
        paper,
    )
    subject, mail, slack = _every_channel(pick)
    text = " ".join(mail.text.split())
    page = " ".join(mail.html.split())
    expected = (
        "A new graph diffusion model for small molecule generation, DMol, which outperforms "
        "DiGress in terms of validity by roughly 1.5% while reducing the number of diffusion "
        "steps by at least 10-fold (p&lt;0.001, α ∈ (0, 2), 512×512, 150 μg/m^3, F_(2^m)). "
        "Costs $5 and &amp; more;"
    )
    assert subject == "Paperwire 2026-12-06: Π-NeSy: XOR-CNF"
    assert "1. Π-NeSy: XOR-CNF" in text and "1. Π-NeSy: XOR-CNF</a>" in page
    assert page.count(expected) == 1
    assert text.count(html.unescape(expected)) == 1
    assert "1. Π-NeSy: XOR-CNF>" in slack and "DMol, which" in slack
    # what cannot be written out is left as the author wrote it, whole
    assert r"$\tilde{O}(\sqrt{nh})$" in html.unescape(page)
    for part in (text, html.unescape(page), slack):
        assert r"\emph" not in part and "$1.5" not in part and "$<$" not in part


@pytest.mark.parametrize(
    ("written", "read"),
    [
        # found reading a theory reader's digest: left as TeX, or half-converted
        (r"function $\delta_s \colon R^2 \to R$ of", "function δ_s : R^2 → R of"),
        (r"uses $O\left(n \log \frac{d}{\delta}\right)$ samples", "uses O(n log d/δ) samples"),
        (r"to $\frac{\sqrt{n}}{n+1}$ in $\lVert x \rVert_\infty$", "to √n/(n+1) in ‖ x ‖_∞"),
        (r"$\left\{ x \mid x \in S \setminus T \right.$", "{ x | x ∈ S ∖ T"),
        (r"Ding and Tang \cite{Ding2020} and~\citep[Thm.~2]{a,b}.", "Ding and Tang and."),
        (
            r"see \href{https://x.org/a}{our code} or \url{https://y.org}",
            "see our code or https://y.org",
        ),
        # found reading a digest of real arXiv text: ties, control spaces, TeX quotes, text
        # symbols and an operator beside a letter came through as typed
        (r"Chain-of-Thought~(CoT) reward, Fig.~3", "Chain-of-Thought (CoT) reward, Fig. 3"),
        (r"about ~10x, at https://x.org/~ann", "about ~10x, at https://x.org/~ann"),
        (
            "a ``graph noise'' and side-information'', and",
            "a “graph noise” and side-information”, and",
        ),
        (r"Jasper\textregistered\ Formal, i.e.,\ they", "Jasper® Formal, i.e., they"),
        (r"in $O(n\log^2 n \log \Psi)$ time, $\log(x)$", "in O(n log^2 n log Ψ) time, log(x)"),
        # letters stored as TeX before ingest wrote them out, outside formulas only
        (r"Gr{\o}nneb{\ae}k's \ss\ and $\omega$", "Grønnebæk's ß and ω"),
        # a formula with a command that has no character stays whole, its \mathrm too: it was
        # written as "$\frac{a}{tr}\tilde{x}$", half TeX
        (
            r"is $\frac{a}{\mathrm{tr}}\tilde{x}$ and \textbf{b}",
            r"is $\frac{a}{\mathrm{tr}}\tilde{x}$ and b",
        ),
    ],
)
def test_more_tex_reads_as_text_and_what_cannot_is_left_whole(written, read):
    from paperwire.tex import written_out

    assert written_out(written) == read


def test_tex_unicode_gives_no_character_that_ingest_drops():
    # ingest drops bidi overrides and controls (paper.safe_chars); "\unicode{x202E}" in a
    # title or abstract put one back in every part but the subject: a right-to-left override
    # that reverses what follows it ("…\unicode{x202E}fdp.exe" reads "exe.pdf"), a C1 control

    title = r"Safe \unicode{x202E}fdp.exe and \unicode{x3B1}"
    abstract = r"A \unicode{x85}C1 control, an escape \unicode{x9B}2J and $\unicode{x2066}x$."
    pick = Pick("2504.06312", title, "https://arxiv.org/abs/2504.06312", 1.0, ["new"], {
        "authors": ["Peizhi Niu"], "abstract": abstract,
    })  # fmt: skip
    _, mail, slack = _every_channel(pick)
    for part in (mail.text, mail.html, slack):
        assert "Safe fdp.exe and α" in part
        assert not re.search("[\x80-\x9f\u202a-\u202e\u2066-\u2069]", part)
