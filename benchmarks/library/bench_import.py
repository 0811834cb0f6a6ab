"""Seeds import at library size (issue 26): ``paperwire seeds import`` of an N-entry BibTeX file.

The library is written the way Zotero and arXiv export one: 45 % of the entries carry an
``eprint``, 45 % arXiv's own ``journal = {arXiv preprint arXiv:…}``, 5 % only a title that is
already stored (matched from the store, no request) and 5 % a DOI that is not arXiv's (not
matched, no request); every title has braces and a TeX accent. The arXiv API is unreachable (a
closed port on 127.0.0.1), so the metadata of the 95 % not stored cannot be fetched: one
failed request, then the seeds are kept for the next ``paperwire fetch``. What is timed is
paperwire's own work (reading the file, matching, writing the seeds) through the real command.

    python benchmarks/library/bench_import.py 10000 100000
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from paperwire.cli import cli
from paperwire.paper import Paper
from paperwire.store import Store


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_library(path: Path, n: int) -> list[Paper]:
    """The library file, and the papers its stored-title entries name."""
    stored = []
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            aid = f"{2001 + (i // 99_999) % 99:04d}.{i % 99_999 + 1:05d}"
            title = f'On the {{Theory}} of Sch{{\\"o}}dinger items, part {i}'
            kind = i % 20
            if kind < 9:
                extra = f"  eprint = {{{aid}}},\n  archivePrefix = {{arXiv}},\n"
            elif kind < 18:
                extra = f"  journal = {{arXiv preprint arXiv:{aid}}},\n"
            elif kind == 18:
                extra = "  booktitle = {Proceedings},\n"
                stored.append(Paper(aid, f"On the Theory of Schödinger items, part {i}", "."))
            else:
                extra = f"  doi = {{10.1000/journal.{i}}},\n"
            out.write(
                f"@article{{key{i},\n  title = {{{title}}},\n"
                f"  author = {{Doe, Jane and Roe, Richard}},\n  year = {{2023}},\n{extra}}}\n\n"
            )
    return stored


def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stored = write_library(folder / "library.bib", n)
        with Store(folder / "pw.db") as store:
            store.add_papers(stored)
        (folder / "subscribers.yaml").write_text(
            f"arxiv_api_url: http://127.0.0.1:{closed_port()}/api/query\n"
            "fetch_timeout_seconds: 5\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        )
        args = ["--config", str(folder / "subscribers.yaml"), "--db", str(folder / "pw.db")]
        began = time.perf_counter()
        result = CliRunner().invoke(
            cli, [*args, "seeds", "import", "ada", str(folder / "library.bib")]
        )
        took = time.perf_counter() - began
        assert result.exit_code == 0, result.output
        summary = result.output.splitlines()[-1]
        with Store(folder / "pw.db") as store:
            seeds = len(store.seeds(["ada"]).get("ada", []))
        print(f"{n:>7} entries: {took:6.1f} s  ({seeds} seeds) {summary}", flush=True)


if __name__ == "__main__":
    for size in [int(a) for a in sys.argv[1:]] or [10_000, 100_000]:
        run(size)
