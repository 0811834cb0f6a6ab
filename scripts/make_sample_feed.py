"""Build the bundled offline sample feed from ../shared/data/daily-papers-seeds.jsonl.

The seeds are real Hugging Face Daily Papers listings (title, abstract, date, upvotes) without
arXiv ids, so each item's guid is a stable ``urn:paperwire:sample:`` id derived from its title.

    python scripts/make_sample_feed.py ../shared/data/daily-papers-seeds.jsonl \
        src/paperwire/data/sample-daily-papers.xml
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import sys
from xml.sax.saxutils import escape


def main(source: str, target: str) -> None:
    seen: dict[str, dict] = {}
    with open(source, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            key = " ".join(record["title"].lower().split())
            old = seen.get(key)
            if old is None or (record.get("upvotes") or 0) > (old.get("upvotes") or 0):
                seen[key] = record
    items = []
    for record in seen.values():
        guid = "urn:paperwire:sample:" + hashlib.sha1(record["title"].encode()).hexdigest()[:12]
        try:
            when = dt.datetime.strptime(record["published"], "%b %d, %Y").replace(tzinfo=dt.UTC)
        except (KeyError, ValueError):
            when = None
        by = record.get("org") or ""  # the listings give an organisation or only a head count
        items.append(
            "  <item>\n"
            f"    <title>{escape(record['title'])}</title>\n"
            f'    <guid isPermaLink="false">{guid}</guid>\n'
            f"    <link>https://huggingface.co/papers?q={escape(record['title'][:80].replace(' ', '+'))}</link>\n"
            f"    <description>{escape(record['abstract'])}</description>\n"
            + (f"    <dc:creator>{escape(by)}</dc:creator>\n" if by else "")
            + (f"    <pubDate>{email.utils.format_datetime(when)}</pubDate>\n" if when else "")
            + "  </item>\n"
        )
    with open(target, "w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
            "  <title>Paperwire sample: Hugging Face Daily Papers on efficient LLM inference</title>\n"
            "  <link>https://huggingface.co/papers</link>\n"
            "  <description>Real Daily Papers listings (KV cache, quantization, RAG, inference "
            "efficiency), bundled for the offline demo.</description>\n"
            + "".join(items)
            + "</channel>\n</rss>\n"
        )
    print(f"{len(items)} papers written to {target}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
