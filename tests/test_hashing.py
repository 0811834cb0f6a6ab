"""The term hasher is scikit-learn's HashingVectorizer and normalize, bit for bit, without
importing scikit-learn (rank/hashing.py): the stored term counts and every TF-IDF score
depend on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import feedparser
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer
from sklearn.preprocessing import normalize

from paperwire.rank import hashing
from paperwire.rank.stop_words import ENGLISH_STOP_WORDS as OURS

from .conftest import FIXTURES, fetch_here

BUNDLED = Path(hashing.__file__).parent.parent / "data"

# Text a feed may send: accents, ligatures, scripts without spaces, combining marks, digits
# glued to words, TeX, control characters, a lone surrogate (JSON can carry one), emoji.
HOSTILE = [
    "",
    "   ",
    "a",
    "the of and into",
    "Ünïcödé ÀÉÎ straße İstanbul ǅungla ﬁne-tuning",
    "日本語のテキスト 中文 한국어 عربى",
    "e\u0301te\u0301 combining marks",
    "line\u2028sep\u2029para\x00nul\x1b[31m",
    "KV-cache 4-bit int8 GPT-4o o1 3D-aware 2x_faster",
    r"$\mathcal{O}(n^2)$ \emph{attention} \cite{vaswani2017}",
    "ab \ud800cd ef",
    "🙂 emoji 🙂🙂 x",
    "word " * 3000,
]


def real_texts() -> list[str]:
    """Titles and abstracts of every feed the tests and the demo read."""
    texts = []
    for path in [*FIXTURES.glob("*.xml"), *BUNDLED.glob("*.xml")]:
        texts += [
            f"{e.get('title', '')}\n\n{e.get('summary', '')}"
            for e in feedparser.parse(path).entries
        ]
    for path in [*FIXTURES.glob("hf_daily_papers*.json"), *BUNDLED.glob("*.json")]:
        for item in json.loads(path.read_text()):
            paper = item.get("paper", item)
            texts.append(f"{paper.get('title', '')}\n\n{paper.get('summary', '')}")
    assert len(texts) > 400
    return texts


def sklearn_vectorizer(ngram_range: tuple[int, int] = (1, 2)) -> HashingVectorizer:
    """What ranking used before rank/hashing.py."""
    return HashingVectorizer(
        n_features=hashing.N_FEATURES,
        ngram_range=ngram_range,
        stop_words="english",
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )


def assert_same_matrix(ours: sp.csr_matrix, theirs: sp.csr_matrix) -> None:
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    assert ours.has_sorted_indices
    assert np.array_equal(ours.indptr, theirs.indptr)
    assert np.array_equal(ours.indices, theirs.indices)
    assert np.array_equal(ours.data, theirs.data)  # exact, not close


def test_the_stop_words_are_scikit_learns():
    assert OURS == ENGLISH_STOP_WORDS


def test_counts_are_scikit_learns_on_every_feed_the_tests_read_and_on_hostile_text():
    texts = real_texts() + HOSTILE
    hasher = hashing.TermHasher()
    assert_same_matrix(hasher.transform(texts), sklearn_vectorizer().transform(texts))
    # a corpus's terms are not kept: the lasting cache is for the phrases reasons look up
    assert hasher._columns == {}
    hasher.columns(["kv cache", "speculative decoding"])
    assert set(hasher._columns) == {"kv cache", "speculative decoding"}
    assert_same_matrix(hasher.transform(texts), sklearn_vectorizer().transform(texts))


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (1, 3), (2, 2), (2, 3)])
def test_terms_are_scikit_learns_analysis_for_any_run_of_words(ngram_range):
    hasher = hashing.TermHasher(ngram_range=ngram_range)
    analyse = sklearn_vectorizer(ngram_range).build_analyzer()
    texts = real_texts()[:60] + HOSTILE
    assert [hasher.terms(t) for t in texts] == [analyse(t) for t in texts]


def test_a_column_forgotten_for_want_of_room_is_the_same_column(monkeypatch):
    texts = real_texts()[:40]
    remembered = hashing.TermHasher().transform(texts)
    monkeypatch.setattr(hashing, "COLUMN_CACHE", 0)
    forgetful = hashing.TermHasher()
    assert_same_matrix(forgetful.transform(texts), remembered)
    assert forgetful._columns == {}


def test_a_lone_surrogate_in_a_term_is_an_error_not_a_crash():
    # \w never matches a surrogate, so no term holds one; a caller that passes one gets
    # scikit-learn's error (mmh3 given the str itself would kill the process)
    with pytest.raises(UnicodeEncodeError):
        hashing.TermHasher().column("ab\ud800cd")


def test_one_text_instead_of_a_list_is_refused():
    with pytest.raises(TypeError, match="list of texts"):
        hashing.TermHasher().transform("a whole abstract")  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_rows_are_scikit_learns_normalize(dtype):
    rng = np.random.default_rng(7)
    matrix = sp.random(300, 5000, density=0.01, format="csr", dtype=dtype, random_state=3)
    matrix.data = (rng.random(matrix.nnz) * 20 - 5).astype(dtype)
    matrix.data[:50] = 0  # explicit zeros, and (below) whole rows of nothing
    lil = matrix.tolil()
    lil[[4, 100]] = 0
    matrix = lil.tocsr()
    before = matrix.copy()
    ours = hashing.unit_rows(matrix)
    assert np.array_equal(ours.data, normalize(before.copy(), copy=False).data)
    assert ours.dtype == dtype
    assert np.array_equal(matrix.data, before.data)  # the input's values are left alone
    norms = sp.linalg.norm(ours, axis=1)
    assert np.allclose(norms[norms > 0], 1.0) and norms[4] == norms[100] == 0
    assert hashing.unit_rows(sp.csr_matrix((0, 5), dtype=dtype)).shape == (0, 5)


def test_tf_idf_rows_are_what_scikit_learn_gave():
    from paperwire.rank.core import TextModel

    texts = real_texts()
    model = TextModel().fit(texts)
    counts = sklearn_vectorizer().transform(texts)
    weighted = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    weighted.data = (1 + np.log(weighted.data)) * model.idf[weighted.indices]
    weighted.eliminate_zeros()
    assert_same_matrix(model.transform(texts), normalize(weighted, copy=False))


def test_a_digest_run_never_imports_scikit_learn(tmp_path: Path):
    """Importing it costs a ranking process ~1 s; the default model needs none of it."""
    fetch_here(tmp_path)
    probe = (
        "import sys\n"
        "from paperwire import cli\n"
        "sys.argv = ['paperwire', 'digest', '--json', '--limit', '2']\n"
        "try:\n"
        "    cli.main()\n"
        "finally:\n"
        "    print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"ada", "grace", "rag-team"}
    assert result.stderr.strip().splitlines()[-1] == "[]"
