"""The ranking evaluation (benchmarks/eval_product.py) must measure what ``digest`` ships.

Its headline digests come from ``digest.compose``; its tuning variants re-pick from the
relevance ``digest.score_matrix`` gives plus ``rank.crowd_lift``. If those ever part (a new
step in compose, a changed prior), the tuned numbers would describe another product: this
test catches it on a small store built the way the harness builds its own.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks import eval_product
from paperwire.rank import core as rank


def small_citeulike(n_papers: int = 160, n_topics: int = 8, seed: int = 7):
    """Bags of words with topics (so profiles have something to find), and readers' libraries."""
    rng = np.random.default_rng(seed)
    vocab = [f"term{j}" for j in range(400)]
    topic_words = [np.arange(t * 50, (t + 1) * 50) for t in range(n_topics)]
    topic = rng.integers(0, n_topics, n_papers)
    rows, cols, vals = [], [], []
    for i in range(n_papers):
        words = np.r_[rng.choice(topic_words[topic[i]], 12), rng.choice(400, 6)]
        for j, c in zip(*np.unique(words, return_counts=True), strict=True):
            rows.append(i)
            cols.append(j)
            vals.append(float(c))
    counts = sp.csr_matrix((vals, (rows, cols)), shape=(n_papers, len(vocab)), dtype=np.float32)
    libraries = [np.flatnonzero(topic == t)[:14] for t in range(n_topics)]
    return counts, libraries, vocab


def assert_ships(harness: dict[int, list[int]], composed: dict[int, list[int]]) -> None:
    """compose's digest is the harness's top 10 in the same order, less the picks compose could
    give no reason for (issue 27: a paper nothing of the reader's explains is left out), then
    the next explained picks in MMR's order standing in for them, never more than 10. Most
    picks are kept: 73-96 % of these synthetic bags of words (fewest with the TF-IDF classifier
    path), all 300 picks of 30 CiteULike-t readers (benchmarks/README.md, "Reasons a reader
    recognises")."""
    assert set(harness) == set(composed)
    for u, picks in harness.items():
        kept = [p for p in picks if p in set(composed[u])]
        assert composed[u][: len(kept)] == kept, u
        assert not set(composed[u][len(kept) :]) & set(picks), u  # stand-ins: past the top 10
        assert len(picks) == 10 and len(composed[u]) <= 10
    assert sum(len(p) for p in composed.values()) >= 0.7 * 10 * len(harness)


def test_harness_variant_path_gives_compose_top10(tmp_path: Path) -> None:
    counts, libraries, vocab = small_citeulike()
    users = list(range(len(libraries)))
    splits = eval_product.eval_ranking.split(libraries, users, eval_product.SEED)
    train = {u: splits[u][0] for u in users}
    upvotes = eval_product.eval_ranking.popularity_counts(libraries, splits, counts.shape[0])
    upvotes += np.random.default_rng(3).integers(0, 40, counts.shape[0])  # a spread of upvotes
    pool = np.arange(counts.shape[0])
    db = tmp_path / "eval.db"
    eval_product.build_store(db, eval_product.feed_document(counts, vocab, pool, upvotes), train)
    # Rocchio profiles: both paths build profiles with the same function, so the classifier
    # (seconds per reader) would only slow the test; what can part is what happens after.
    weights = replace(rank.Weights(), classifier_min_likes=10**9)

    composed = eval_product.product_digests(db, users, weights, batch=4)
    relevance, upvotes, excluded, vectors, ids = eval_product.product_relevance(
        db, users, weights, batch=4
    )
    liked = eval_product.liked(upvotes, excluded)
    assert len(set(rank.crowd_affinity(liked, rank.upvote_scale(upvotes), weights))) > 1
    scores = relevance + eval_product.shipped_lift(relevance, upvotes, liked, weights)
    picked = eval_product.pick(scores, excluded, vectors, weights)

    assert_ships({u: ids[p].tolist() for u, p in zip(users, picked, strict=True)}, composed)


def test_cached_tuning_groups_give_compose_top10(tmp_path: Path) -> None:
    """The prior table's groups (relevance cached once, the shipped lift added afterwards) pick
    what compose picks for the same readers, pool and upvotes. Without the nearest-papers
    vote: compose adds it after the lift, and a float32 sum in another order may swap two
    picks of equal merit (the table compares lifts, each with the same relevance)."""
    counts, libraries, vocab = small_citeulike()
    users = list(range(len(libraries)))
    # readers outside the group: their saves are the evaluated readers' upvotes (0 to ~20)
    crowd = np.random.default_rng(5)
    libraries += [np.sort(crowd.choice(counts.shape[0], 40, replace=False)) for _ in range(60)]
    args = SimpleNamespace(
        pool=counts.shape[0],
        weights=["classifier_min_likes=1000000000", "nearest=0"],
        batch=4,
        embeddings=None,
    )
    path = tmp_path / "group0.npz"
    eval_product.cache_group(path, counts, libraries, vocab, users, args)
    group = eval_product.load_group(path)
    weights = eval_product.parse_weights(args.weights)
    shipped = eval_product.prior_forms()[f"{eval_product.SHIPPED}, w {weights.popularity}"]
    picked = eval_product.group_picks(group, shipped, weights)

    # the same store built again, the digests from compose itself
    splits = eval_product.eval_ranking.split(libraries, users, eval_product.SEED)
    upvotes = eval_product.eval_ranking.popularity_counts(libraries, splits, counts.shape[0])
    assert np.ptp(group["upvotes"]) > 0  # the lift has something to order
    db = tmp_path / "eval.db"
    pool = np.arange(counts.shape[0])
    train = {u: splits[u][0] for u in users}
    eval_product.build_store(db, eval_product.feed_document(counts, vocab, pool, upvotes), train)
    composed = eval_product.product_digests(db, users, weights, batch=4)

    assert_ships({u: p.tolist() for u, p in zip(group["users"], picked, strict=True)}, composed)


def test_headline_run_ranks_every_paper_and_reports_each_reader(tmp_path: Path, monkeypatch):
    """By default the candidates are every paper (the data README's protocol); --pool 6000
    gives issue 17's first pool; --per-reader writes the recall@10 behind each printed mean."""
    counts, libraries, vocab = small_citeulike(n_papers=240)
    assert len(eval_product.pool_of(libraries, [0], 0, 240)) == 240
    first = eval_product.pool_of(libraries, [0], 100, 240)
    assert len(first) == 100 and set(libraries[0]) <= set(first.tolist())

    monkeypatch.setattr(eval_product, "citeulike", lambda: (counts, libraries, vocab))
    sizes: list[int] = []
    pool_of = eval_product.pool_of
    monkeypatch.setattr(
        eval_product,
        "pool_of",
        lambda libs, users, size, n: sizes.append(size) or pool_of(libs, users, size, n),
    )
    seen: list[int] = []
    build = eval_product.build_store
    monkeypatch.setattr(
        eval_product,
        "build_store",
        lambda db, document, votes, vectors=None: (
            seen.append(build(db, document, votes, vectors)) or seen[-1]
        ),
    )
    out = tmp_path / "readers.json"
    argv = [
        "--users",
        "0",
        "--weights",
        "classifier_min_likes=1000000000",
        "--embeddings",
        "off",
        "--per-reader",
        str(out),
    ]
    assert eval_product.main(argv) == 0
    assert sizes == [0]  # "every paper", whatever the corpus
    assert seen == [240, 240]  # the Atom and the Hugging Face store each hold every paper
    argv_first = ["--users", "0", "--pool", "100", "--feeds", "atom", "--skip-recipe"]
    assert eval_product.main(argv_first + argv[2:6]) == 0
    assert seen[-1] == 100

    import json

    readers = json.loads(out.read_text())
    held_out = [u for u, lib in enumerate(libraries) if len(lib) >= 10 and u % 5 == 0]
    assert set(readers) == {
        "arxiv-sanity-lite recipe",
        "paperwire via compose, Atom, no upvotes",
        "paperwire via compose, Hugging Face JSON, upvotes",
    }
    for per in readers.values():
        assert sorted(int(u) for u in per) == held_out
        assert all(0.0 <= r <= 1.0 for r in per.values())


def test_semantic_rows_turn_on_the_configured_embeddings() -> None:
    config = eval_product.config_for([1, 2], embeddings="wordllama")
    assert config.ranking.embeddings == "wordllama"
    assert [s.id for s in config.subscribers] == ["u1", "u2"]
    assert eval_product.config_for([1]).ranking.embeddings is None


def test_content_screen_ships_compose_top10(tmp_path: Path, monkeypatch) -> None:
    """benchmarks/eval_content.py's "classifier" row (the TF-IDF classifier refitted per reader
    on the stored vectors, no upvotes) picks what compose picks from an Atom feed with the
    classifier on and the encoder off: its variants are measured against that path (without
    the nearest-papers vote, which its rows leave out)."""
    from benchmarks import eval_content

    counts, libraries, vocab = small_citeulike()
    # three readers: each one's profile is a classifier fitted three times (compose, the
    # shipped row, the variant), ~1 s a fit on a loaded 2-core machine; all eight took 30 s
    users = [0, 1, 2]
    splits = eval_product.eval_ranking.split(libraries, users, eval_product.SEED)
    train = {u: splits[u][0] for u in users}
    db = tmp_path / "atom.db"
    pool = np.arange(counts.shape[0])
    eval_product.build_store(db, eval_product.feed_document(counts, vocab, pool, None), train)
    classifier = rank.Weights(classifier_max_subscribers=10**6, nearest=0.0)
    composed = eval_product.product_digests(db, users, classifier, batch=len(users))

    monkeypatch.setattr(eval_product, "CACHE", tmp_path / "cache")
    vectors, cite = eval_content.product_vectors(counts, vocab)
    again, _ = eval_content.product_vectors(counts, vocab)  # the cached copy
    assert (again != vectors).nnz == 0
    row_of = np.empty(len(cite), dtype=np.int64)
    row_of[cite] = np.arange(len(cite))
    liked = [row_of[train[u]] for u in users]
    eval_content.prepare(vectors, ["C=1"], lsa_dims=0)
    tasks = [eval_content.reader_task((i, rows)) for i, rows in enumerate(liked)]
    shipped = np.vstack([out["shipped"] for _, out in tasks])
    picked = eval_content.digests("shipped", shipped, liked)

    assert_ships({u: cite[p].tolist() for u, p in zip(users, picked, strict=True)}, composed)
    # a variant is a different ranking, not the shipped one under another name
    other = np.vstack([out["C=1"] for _, out in tasks])
    assert not np.allclose(other, shipped)
    # a mistyped variant stops the run before any worker starts (a worker's error would hang it)
    with pytest.raises(SystemExit, match="unknown variant.*'rocchio'"):
        eval_content.main(["--variants", "C=1,rocchio"])


def test_semantic_overrides_reach_every_run_and_unknown_names_are_refused():
    from paperwire.rank import embedded, semantic

    corpus = embedded.EmbeddedCorpus
    methods = (corpus.vectors_of, corpus.added, corpus.nearest_papers, corpus.votes_nearest)
    kept = [method.__defaults__ for method in methods]
    try:
        eval_product.use_semantic_weights(["neighbours=3", "weight=3.0", "centred=0"])
        chosen = corpus.added.__defaults__[0]
        # every method that reads the weights: one left out kept the shipped ones for part of
        # a run (and, in this process, for the tests after this one)
        for method in (corpus.vectors_of, corpus.nearest_papers, corpus.votes_nearest):
            assert method.__defaults__ == (chosen,)
        assert (chosen.neighbours, chosen.weight, chosen.centred) == (3, 3.0, False)
        assert chosen.shrinkage == semantic.SemanticWeights().shrinkage  # the rest as shipped
        with pytest.raises(SystemExit, match="unknown weight 'nieghbours'"):
            eval_product.use_semantic_weights(["nieghbours=3"])
    finally:
        for method, defaults in zip(methods, kept, strict=True):
            method.__defaults__ = defaults
    for method in methods:
        assert method.__defaults__[0] == semantic.SemanticWeights()


def test_compare_readers_pairs_the_same_readers_and_says_which_way(tmp_path, capsys):
    from benchmarks import compare_readers

    rng = np.random.default_rng(3)
    readers = [str(u) for u in range(1, 301)]
    before = {r: float(v) for r, v in zip(readers, rng.random(300) / 4, strict=True)}
    after = {r: v + (0.02 if int(r) % 3 else 0.0) for r, v in before.items()}  # 200 gain
    after["9999"] = 1.0  # a reader only one run scored is left out of the pairing
    got = compare_readers.paired(before, after)
    assert (got.better, got.worse) == (200, 0)
    assert 0 < got.low < 0.02 * 2 / 3 < got.high < 0.02
    assert got.after - got.before == pytest.approx(0.02 * 200 / 300)
    name = "paperwire via compose, Atom, no upvotes"
    recipe = {r: 0.1 for r in readers}
    for path, runs in (("b.json", {name: before, compare_readers.RECIPE: recipe}),
                       ("a.json", {name: after})):  # fmt: skip
        (tmp_path / path).write_text(json.dumps(runs))
    compare_readers.main([str(tmp_path / "b.json"), str(tmp_path / "a.json")])
    line = capsys.readouterr().out
    assert line.startswith(f"{name}: ") and "200 readers better, 0 worse" in line
    assert f"ratio {got.before / 0.1:.3f}x -> {got.after / 0.1:.3f}x" in line
    with pytest.raises(SystemExit, match="share no reader"):
        compare_readers.paired({"1": 0.1}, {"2": 0.1})
