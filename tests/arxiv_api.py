"""A real HTTP server on 127.0.0.1 answering like the arXiv API (``/api/query``): ``id_list``
and ``ti:"..."`` searches over a few real papers, in arXiv's Atom. Every request is recorded."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from .conftest import SHUTDOWN_POLL

# (id, title, authors, published, abstract's first sentences, arXiv comment): real papers
PAPERS = {
    "1706.03762": (
        "Attention Is All You Need",
        ["Ashish Vaswani", "Noam Shazeer", "Niki Parmar", "Jakob Uszkoreit", "Llion Jones"],
        "2017-06-12T17:57:34Z",
        "The dominant sequence transduction models are based on complex recurrent or "
        "convolutional neural networks in an encoder-decoder configuration. We propose a new "
        "simple network architecture, the Transformer, based solely on attention mechanisms.",
        "15 pages, 5 figures",
    ),
    "1810.04805": (
        "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
        ["Jacob Devlin", "Ming-Wei Chang", "Kenton Lee", "Kristina Toutanova"],
        "2018-10-11T00:50:01Z",
        "We introduce a new language representation model called BERT, which stands for "
        "Bidirectional Encoder Representations from Transformers.",
        None,
    ),
    "1512.03385": (
        "Deep Residual Learning for Image Recognition",
        ["Kaiming He", "Xiangyu Zhang", "Shaoqing Ren", "Jian Sun"],
        "2015-12-10T19:51:55Z",
        "Deeper neural networks are more difficult to train. We present a residual learning "
        "framework to ease the training of networks that are substantially deeper than those "
        "used previously.",
        "Tech report",
    ),
    "1412.6980": (
        "Adam: A Method for Stochastic Optimization",
        ["Diederik P. Kingma", "Jimmy Ba"],
        "2014-12-22T13:54:29Z",
        "We introduce Adam, an algorithm for first-order gradient-based optimization of "
        "stochastic objective functions, based on adaptive estimates of lower-order moments.",
        "Published as a conference paper at the 3rd International Conference for Learning "
        "Representations, San Diego, 2015",
    ),
    "2106.09685": (
        "LoRA: Low-Rank Adaptation of Large Language Models",
        ["Edward J. Hu", "Yelong Shen", "Phillip Wallis", "Zeyuan Allen-Zhu", "Yuanzhi Li"],
        "2021-06-17T17:37:18Z",
        "An important paradigm of natural language processing consists of large-scale "
        "pre-training on general domain data and adaptation to particular tasks or domains.",
        "Draft V2 includes better baselines, experiments on GLUE, and more on adapter latency. "
        "Code: https://github.com/microsoft/LoRA",
    ),
}


def atom(ids: list[str]) -> bytes:
    """An arXiv API response holding these papers."""
    entries = []
    for paper_id in ids:
        title, authors, published, abstract, comment = PAPERS[paper_id]
        names = "".join(f"<author><name>{escape(a)}</name></author>" for a in authors)
        note = f"<arxiv:comment>{escape(comment)}</arxiv:comment>" if comment else ""
        entries.append(
            f"<entry><id>http://arxiv.org/abs/{paper_id}v1</id>"
            f"<updated>{published}</updated><published>{published}</published>"
            f"<title>{escape(title)}</title><summary>{escape(abstract)}</summary>{names}"
            f'{note}<link href="http://arxiv.org/abs/{paper_id}v1" rel="alternate" '
            f'type="text/html"/><link title="pdf" href="http://arxiv.org/pdf/{paper_id}v1" '
            f'rel="related" type="application/pdf"/>'
            f'<arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>'
            f'<category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/></entry>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom"><title>arXiv Query</title>'
        "<id>http://arxiv.org/api/q</id><updated>2026-12-01T00:00:00-05:00</updated>"
        f"<opensearch:totalResults>{len(ids)}</opensearch:totalResults>"
        f"{''.join(entries)}</feed>"
    ).encode()


@dataclass
class ArxivApi:
    port: int
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each request came (monotonic)
    fail: bool = False  # answer 503 (Retry-After: 0) to everything, like an overloaded arXiv

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/query"

    def searches(self) -> list[str]:
        return [q["search_query"][0] for q in self.requests if "search_query" in q]


def _search(query: str) -> list[str]:
    words = re.findall(r"\w+", query.removeprefix("ti:").lower())
    return [p for p, row in PAPERS.items() if all(w in row[0].lower() for w in words)]


@contextmanager
def arxiv_api_server() -> Iterator[ArxivApi]:
    state = ArxivApi(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            parsed = urlparse(self.path)
            query = parse_qs(parsed.query)
            state.requests.append(query)
            state.times.append(time.monotonic())
            if state.fail or parsed.path != "/api/query":
                self.send_response(503 if state.fail else 404)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if "id_list" in query:
                ids = [i for i in query["id_list"][0].split(",") if i in PAPERS]
            else:
                ids = _search(query.get("search_query", [""])[0])
            body = atom(ids)
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
