"""Write arXiv RSS documents (the 2024+ rss.arxiv.org format, and the older RDF format) from the
real items in ../shared/data/arxiv-frontpage/downloads_2025-04-11.jsonl.

arXiv publishes no archive of its raw RSS output, so fixtures are rebuilt in the documented
format (arxiv.org/help/rss_specifications) from real titles, abstracts and authors. The items'
``announce_type`` was not kept upstream: ids from the announcement month are ``new`` (every
seventh a ``cross``), older ids are ``replace`` (every third a ``replace-cross``), as on a real day.

    python scripts/arxiv_rss.py tests/fixtures      # regenerates the test fixtures
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv-frontpage"
DAY = "Fri, 11 Apr 2025 00:00:00 -0400"


def load_items(path: Path = DATA / "downloads_2025-04-11.jsonl") -> list[dict]:
    items = [json.loads(line) for line in path.open(encoding="utf-8")]
    for index, item in enumerate(items):
        aid = item["url"].rsplit("/", 1)[1]
        fresh = aid.startswith("2504.")
        if fresh:
            kind, version = ("cross" if index % 7 == 3 else "new"), 1
        else:
            kind, version = ("replace-cross" if index % 3 == 0 else "replace"), 2
        item.update(arxiv_id=aid, announce_type=kind, version=version)
    return items


def rss(items: list[dict], category: str = "cs") -> str:
    """An rss.arxiv.org RSS 2.0 document."""
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'version="2.0">\n  <channel>\n'
        f"    <title>{category} updates on arXiv.org</title>\n"
        f"    <link>http://rss.arxiv.org/rss/{category}</link>\n"
        f"    <description>{category} updates on the arXiv.org e-print archive.</description>\n"
        f'    <atom:link href="https://rss.arxiv.org/rss/{category}" rel="self" type="application/rss+xml"/>\n'
        "    <docs>http://www.rssboard.org/rss-specification</docs>\n"
        "    <language>en-us</language>\n"
        f"    <lastBuildDate>{DAY}</lastBuildDate>\n"
        "    <managingEditor>rss-help@arxiv.org</managingEditor>\n"
        f"    <pubDate>{DAY}</pubDate>\n"
        "    <skipDays>\n      <day>Saturday</day>\n      <day>Sunday</day>\n    </skipDays>\n"
    ]
    for item in items:
        aid, version, kind = item["arxiv_id"], item["version"], item["announce_type"]
        out.append(
            "    <item>\n"
            f"      <title>{escape(item['title'])}</title>\n"
            f"      <link>https://arxiv.org/abs/{aid}</link>\n"
            f"      <description>arXiv:{aid}v{version} Announce Type: {kind} \n"
            f"Abstract: {escape(item['abstract'])}</description>\n"
            f'      <guid isPermaLink="false">oai:arXiv.org:{aid}v{version}</guid>\n'
            f"      <category>{category}</category>\n"
            f"      <pubDate>{DAY}</pubDate>\n"
            f"      <arxiv:announce_type>{kind}</arxiv:announce_type>\n"
            "      <dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>\n"
            f"      <dc:creator>{escape(', '.join(item['authors']))}</dc:creator>\n"
            "    </item>\n"
        )
    out.append("  </channel>\n</rss>\n")
    return "".join(out)


def rdf(items: list[dict], category: str = "cs") -> str:
    """The RSS 1.0 (RDF) format arXiv served until 2024."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rdf:RDF xmlns="http://purl.org/rss/1.0/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:syn="http://purl.org/rss/1.0/modules/syndication/" '
        'xmlns:admin="http://webns.net/mvcb/" xmlns:taxo="http://purl.org/rss/1.0/modules/taxonomy/">\n'
        f'<channel rdf:about="http://arxiv.org/rss/{category}">\n'
        f"<title>{category} updates on arXiv.org</title>\n<link>http://arxiv.org/</link>\n"
        "<description>Computer Science updates on the arXiv.org e-print archive</description>\n"
        "<dc:language>en-us</dc:language>\n<dc:date>2025-04-11T20:30:00-05:00</dc:date>\n"
        "<items>\n <rdf:Seq>\n"
    ]
    out += [f' <rdf:li rdf:resource="http://arxiv.org/abs/{i["arxiv_id"]}" />\n' for i in items]
    out.append(" </rdf:Seq>\n</items>\n</channel>\n")
    for item in items:
        aid, version = item["arxiv_id"], item["version"]
        suffix = " UPDATED" if version > 1 else ""
        creators = ", ".join(
            f'<a href="http://arxiv.org/find/cs/1/au:+{escape(a.split()[-1])}/0/1/0/all/0/1">{escape(a)}</a>'
            for a in item["authors"]
        )
        out.append(
            f'<item rdf:about="http://arxiv.org/abs/{aid}">\n'
            f"<title>{escape(item['title'])}. (arXiv:{aid}v{version} [{category}.LG]{suffix})</title>\n"
            f"<link>http://arxiv.org/abs/{aid}</link>\n"
            f'<description rdf:parseType="Literal">{escape("<p>" + escape(item["abstract"]) + "</p>")}</description>\n'
            f"<dc:creator>{escape(creators)}</dc:creator>\n"
            "</item>\n"
        )
    out.append("</rdf:RDF>\n")
    return "".join(out)


def main(target: str) -> None:
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    items = load_items()
    older = [i for i in items if not i["arxiv_id"].startswith("2504.")][:10]
    (folder / "arxiv_rss_cs.xml").write_text(rss(items[:50] + older), encoding="utf-8")
    # The next listing cross-lists items 30..49 again (as cs.LG) and adds 20 more.
    lg = [dict(i, announce_type="cross") for i in items[30:50]] + items[60:80]
    (folder / "arxiv_rss_cs_LG.xml").write_text(rss(lg, "cs.LG"), encoding="utf-8")
    # A later day: items 0..9 replaced by v3.
    replaced = [dict(i, announce_type="replace", version=3) for i in items[:10]]
    (folder / "arxiv_rss_cs_replaced.xml").write_text(rss(replaced), encoding="utf-8")
    (folder / "arxiv_rdf_legacy.xml").write_text(rdf(items[100:110]), encoding="utf-8")
    print(f"fixtures written to {folder}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
