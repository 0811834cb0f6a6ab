"""Hashed term counts: what scikit-learn's ``HashingVectorizer`` gives, without scikit-learn.

Ranking's TF-IDF columns are scikit-learn's: ``HashingVectorizer(ngram_range=(1, 2),
stop_words="english", alternate_sign=False, norm=None, dtype=float32)``, and the unit rows of
``sklearn.preprocessing.normalize``. Importing scikit-learn costs every process that ranks
~1 s (it loads SciPy's statistics), more than a whole digest of a few readers takes, so the
same analysis is written here from its parts: the same lower-casing and token pattern, the
same stop words (:mod:`.stop_words`), word pairs after stop words are dropped, and the same
signed 32-bit MurmurHash3 of each UTF-8 term (``mmh3``), its absolute value modulo the number
of columns. ``tests/test_hashing.py`` holds the two to the same bits on real and hostile text,
so the stored term counts and every score stay what they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

import mmh3
import numpy as np
import scipy.sparse as sp

from .stop_words import ENGLISH_STOP_WORDS

# Bump when the analysis changes what it gives (terms.py re-analyses stored papers then).
VERSION = 1
N_FEATURES = 2**20
WORD_PATTERN = r"(?u)\b\w\w+\b"  # words of two characters or more, as scikit-learn's default
NGRAM_RANGE = (1, 2)
# Terms whose hashed column a hasher remembers (a few MB at most).
COLUMN_CACHE = 200_000


class TermHasher:
    """Texts → sparse rows of term counts in ``n_features`` hashed columns."""

    def __init__(
        self, n_features: int = N_FEATURES, ngram_range: tuple[int, int] = NGRAM_RANGE
    ) -> None:
        self.n_features = n_features
        self.ngram_range = ngram_range
        self.word_pattern = WORD_PATTERN
        self.stop_words = ENGLISH_STOP_WORDS
        self._findall = re.compile(WORD_PATTERN).findall
        self._columns: dict[str, int] = {}

    def terms(self, text: str) -> list[str]:
        """A text's words (stop words left out), then its runs of 2, 3, … neighbouring words up
        to ``ngram_range``'s end, shortest runs first, as scikit-learn lists them."""
        words = [w for w in self._findall(text.lower()) if w not in self.stop_words]
        low, high = self.ngram_range
        out = list(words) if low == 1 else []
        for n in range(max(low, 2), min(high, len(words)) + 1):
            out += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        return out

    def column(self, term: str) -> int:
        """The term's column, remembered (up to ``COLUMN_CACHE`` terms: the phrases reasons
        look up for thousands of readers)."""
        col = self._columns.get(term)
        if col is None:
            col = self._hashed(term)
            if len(self._columns) < COLUMN_CACHE:
                self._columns[term] = col
        return col

    def _hashed(self, term: str) -> int:
        # bytes, not the str: mmh3 crashes the process on a lone surrogate (a JSON feed can
        # carry one) where encoding raises, as scikit-learn does
        h = mmh3.hash(term.encode("utf-8"), 0, True)
        # abs() cannot negate -2**31 in 32 bits: scikit-learn's rule for that one value
        if h == -(2**31):
            return (2**31 - 1 - (self.n_features - 1)) % self.n_features
        return abs(h) % self.n_features

    def columns(self, terms: Iterable[str]) -> np.ndarray:
        """Each term's column (int64)."""
        return np.fromiter(map(self.column, terms), dtype=np.int64)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """float32 counts, one row per text, columns sorted and each summed once."""
        if isinstance(texts, str):  # a text is iterable too: each letter would be a row
            raise TypeError("TermHasher.transform takes a list of texts, not one text")
        # the texts' own terms are remembered for this call only: a corpus's vocabulary would
        # fill the lasting cache (~25 MB) and leave no room for the reasons' phrases
        seen: dict[str, int] = {}
        indptr = [0]
        cols: list[int] = []
        for text in texts:
            terms = self.terms(text)
            known = list(map(seen.get, terms))  # a dict look-up per term, in C
            if None in known:
                for i, col in enumerate(known):
                    if col is None:  # new to this call, or met earlier in the same text
                        col = seen.get(terms[i])
                        if col is None:
                            col = seen[terms[i]] = self._hashed(terms[i])
                        known[i] = col
            cols += cast(list[int], known)
            indptr.append(len(cols))
        counts = sp.csr_matrix(
            (
                np.ones(len(cols), dtype=np.float32),
                np.asarray(cols, dtype=np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(texts), self.n_features),
        )
        counts.sum_duplicates()
        return counts


def unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its L2 norm (new values; the index arrays are the input's); zero
    rows stay zero.

    Bit for bit ``sklearn.preprocessing.normalize(matrix, copy=False)``: each square is taken
    in the matrix's own precision and summed left to right in float64, the root taken in
    float64, each value divided in float64 and rounded back once."""
    matrix = sp.csr_matrix(matrix)
    if not matrix.nnz:
        return matrix
    # the squares as one column per row: a CSR product with a one sums a row in order, as
    # scikit-learn's loop does (numpy's sums pair values up: other last bits)
    squares = sp.csr_matrix(
        (
            (matrix.data * matrix.data).astype(np.float64),
            np.zeros(matrix.nnz, dtype=matrix.indices.dtype),
            matrix.indptr,
        ),
        shape=(matrix.shape[0], 1),
    )
    norms = np.sqrt(squares @ np.ones(1))
    norms[norms == 0] = 1.0
    per_value = np.repeat(norms, np.diff(matrix.indptr))
    matrix.data = (matrix.data.astype(np.float64) / per_value).astype(matrix.dtype)
    return matrix
