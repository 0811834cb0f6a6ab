"""The stored papers' texts, read from the store only where a run needs them.

A run ranks against every stored paper, but reads a paper's words from its stored analysis
(rank/terms.py) and its meaning from its stored vector (rank/embed.py): the text itself is
needed only to tell whether those are current (its hash) and to make them afresh where they
are not, and for the candidates' whole-phrase matching. Held for every paper, the texts of a
year of arXiv (200,000 papers) took ~270 MB and their rows' abstracts ~300 MB more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from ..paper import paper_text, text_hash
from ..store import Store


class StoredTexts(Sequence[str]):
    """The texts of ``paper_ids`` (what :func:`paper_text` makes of each stored paper), whose
    hashes were taken when the run's corpus was read; each text is read when asked for.

    A paper updated since (a new version's abstract) reads as it is now, beside its older
    hash: what is made from it is then stored under that hash and made again on the next
    run, which is what happens to any paper updated after a run has begun."""

    def __init__(self, store: Store, paper_ids: list[str], hashes: list[str]):
        self.store, self.ids, self.hashes = store, paper_ids, hashes

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return self.many(range(len(self))[index])
        return self.many([index])[0]

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), 500):
            yield from self.many(range(start, min(start + 500, len(self))))

    def many(self, indices: Sequence[int]) -> list[str]:
        """The texts at these positions, read 500 papers at a time (only their texts are kept:
        after an upgrade a run may analyse a whole store afresh)."""
        wanted = [self.ids[i] for i in indices]
        out: list[str] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.store.texts(chunk)
            out += [paper_text(*rows[p]) if p in rows else "" for p in chunk]
        return out


def hashes_of(texts: Sequence[str]) -> list[str]:
    """Each text's :func:`text_hash`: taken already for stored texts, else now."""
    if isinstance(texts, StoredTexts):
        return texts.hashes
    return [text_hash(t) for t in texts]


def texts_at(texts: Sequence[str], indices: Sequence[int]) -> list[str]:
    """The texts at these positions (stored ones read in batches, not one by one)."""
    if isinstance(texts, StoredTexts):
        return texts.many(indices)
    return [texts[i] for i in indices]
