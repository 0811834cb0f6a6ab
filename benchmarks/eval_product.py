"""Ranking evaluation through the product's own path: feed document → Store → votes → compose.

What a reader gets comes from ``digest.compose`` (hashed 1-2-grams over the stored text,
candidate windows, calibration, the crowd prior, MMR), so this harness drives exactly that:

1. The candidates are written as a feed document: an Atom feed (no upvotes) or a Hugging Face
   ``/api/daily_papers`` JSON list whose ``upvotes`` are how many *other* readers saved the
   paper (an evaluated reader's hidden 20 % is never counted). By default they are every
   CiteULike-t paper (25,975), as ../shared/data/README.md's protocol ranks "every paper the
   user has not rated"; ``--pool 6000`` gives issue 17's first pool instead (every evaluated
   reader's library, filled with seeded random papers up to 6,000), where half the papers
   are the evaluated readers' own libraries (benchmarks/README.md says why that mutes the
   crowd prior). A paper's text repeats each vocabulary word by its count.
2. The document is parsed by ``paperwire.sources.parse_document`` and stored with
   ``Store.add_papers``; each reader's 80 % is recorded with ``Store.record_votes`` (what
   ``paperwire feedback import`` does).
3. ``digest.compose`` with the shipped ``rank.Weights``, MMR on, ``limit=10`` gives each
   reader's digest (what ``paperwire digest --limit 10 --json`` prints), every evaluated
   reader in one call, as a deployment's run holds everyone due at that hour (``--batch N``
   splits them). Ranking uses the bundled sentence encoder, as installed (``--embeddings
   off`` for TF-IDF alone); ``--vectors`` gives the papers' vectors, made once by
   ``encode_citeulike.py`` with the product's own encoder, so that a run does not spend three
   minutes encoding 25,975 papers (the store then holds exactly what ``fetch`` would store).
4. recall@10 of the hidden 20 % over the digest, beside the arxiv-sanity-lite recipe
   (per-reader LinearSVC C=0.01 balanced on TF-IDF min_df 5, max_df 0.1, sublinear tf) on the
   same candidates.

Readers are the held-out ones (0-based line % 5 == 0 in users.dat) unless ``--tune``.

    python -m benchmarks.eval_product --users 100            # the table in benchmarks/README.md
    python -m benchmarks.eval_product --users 100 --pool 6000     # the same on issue 17's pool
    python -m benchmarks.eval_product --users 100 --tune     # tuning readers
    python -m benchmarks.eval_product --users 100 --weights popularity=0 mmr_lambda=1
    python -m benchmarks.eval_product --users 100 --count-path   # + the count-matrix table
    python -m benchmarks.eval_product --users 300 --group 0      # one of 3 groups of 100 readers
    python -m benchmarks.eval_product --users 100 --per-reader r.json   # paired comparisons
    # the crowd prior's tuning table: each group's relevance cached once, then every lift form
    python -m benchmarks.eval_product --tune --users 300 --cache-dir /tmp/crowd --group 0 1 2
    python -m benchmarks.eval_product --cache-dir /tmp/crowd --prior-table ""

Parsed CiteULike-t is cached in ``~/.cache/paperwire-bench`` (``PAPERWIRE_BENCH_CACHE``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import scipy.sparse as sp

from benchmarks import eval_ranking  # the protocol's split, metrics and the recipe
from paperwire import digests
from paperwire.config import parse_config
from paperwire.paper import paper_text, text_hash
from paperwire.rank import compose as digest
from paperwire.rank import core as rank
from paperwire.rank import embed, terms
from paperwire.rank.session import RankingSession
from paperwire.sources import parse_document
from paperwire.store import Store

DATA = eval_ranking.DATA / "citeulike-t"
SEED = eval_ranking.SEED
CACHE = Path(os.environ.get("PAPERWIRE_BENCH_CACHE", Path.home() / ".cache" / "paperwire-bench"))
NOW = dt.datetime(2026, 6, 12, 8, 0, tzinfo=dt.UTC)
# What every paper is titled (see feed_document): an English stop word, so TF-IDF, which drops
# those before it pairs words, sees no title at all.
TITLE = "The"
DIGEST = 10


# -- data -------------------------------------------------------------------------------------


def citeulike() -> tuple[sp.csr_matrix, list[np.ndarray], list[str]]:
    """CiteULike-t's counts, libraries and vocabulary, parsed once and cached."""
    cached = CACHE / "citeulike-t.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as f:
            counts = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
            starts = f["lib_starts"]
            flat = f["lib_items"]
            vocab = f["vocab"].tolist()
        libraries = [flat[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
        return counts, libraries, vocab
    counts, libraries = eval_ranking.load_citeulike(DATA)
    vocab = (DATA / "vocabulary.dat").read_text().split("\n")[: counts.shape[1]]
    CACHE.mkdir(parents=True, exist_ok=True)
    starts = np.cumsum([0] + [len(lib) for lib in libraries])
    np.savez(
        cached,
        data=counts.data,
        indices=counts.indices,
        indptr=counts.indptr,
        shape=np.array(counts.shape),
        lib_starts=starts,
        lib_items=np.concatenate(libraries),
        vocab=np.array(vocab),
    )
    return counts, libraries, vocab


def readers(libraries: list[np.ndarray], n: int, tune: bool) -> list[int]:
    """``n`` seeded readers with at least 10 papers: held-out lines (% 5 == 0) or tuning ones."""
    eligible = [u for u, lib in enumerate(libraries) if len(lib) >= 10 and (u % 5 != 0) == tune]
    if n and n < len(eligible):
        eligible = sorted(np.random.default_rng(SEED).choice(eligible, n, replace=False).tolist())
    return eligible


def pool_of(libraries: list[np.ndarray], users: list[int], size: int, n_papers: int) -> np.ndarray:
    """Every evaluated reader's library, filled with seeded random papers up to ``size``
    (0: every paper)."""
    if size <= 0 or size >= n_papers:
        return np.arange(n_papers)
    pool = np.unique(np.concatenate([libraries[u] for u in users]))
    if len(pool) < size:
        rest = np.setdiff1d(np.arange(n_papers), pool)
        extra = np.random.default_rng(SEED).choice(rest, size - len(pool), replace=False)
        pool = np.sort(np.r_[pool, extra])
    return pool


def paper_id(index: int) -> str:
    """A stable arXiv-style id for CiteULike paper ``index`` (both feed kinds need one)."""
    return f"2301.{index:05d}"


def text_of(counts: sp.csr_matrix, index: int, vocab: list[str]) -> str:
    row = counts[index]
    return " ".join(
        " ".join([vocab[j]] * int(c)) for j, c in zip(row.indices, row.data, strict=True)
    )


def feed_document(
    counts: sp.csr_matrix,
    vocab: list[str],
    pool: np.ndarray,
    upvotes: np.ndarray | None,
) -> bytes:
    """The pool as an Atom feed (no upvotes) or a Hugging Face daily_papers JSON list.

    CiteULike-t has no titles. Every paper gets the same one, ``TITLE``, which TF-IDF drops
    and the recipe never sees. A title unique to each paper
    ("CiteULike-t 123") would put its id's digits into what the sentence encoder reads, a
    third of a median paper's tokens of noise that no real title carries.
    """
    published = (NOW - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if upvotes is None:
        entries = "".join(
            f"<entry><id>http://arxiv.org/abs/{paper_id(i)}v1</id>"
            f"<title>{TITLE}</title><summary>{escape(text_of(counts, i, vocab))}</summary>"
            f"<published>{published}</published>"
            f'<link href="http://arxiv.org/abs/{paper_id(i)}v1" rel="alternate"/></entry>'
            for i in pool
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<feed xmlns="http://www.w3.org/2005/Atom"><title>CiteULike-t</title>'
            f"<updated>{published}</updated>{entries}</feed>"
        ).encode()
    items = [
        {
            "paper": {
                "id": paper_id(i),
                "title": TITLE,
                "summary": text_of(counts, i, vocab),
                "authors": [],
                "publishedAt": published,
                "upvotes": int(upvotes[i]),
            },
            "title": TITLE,
            "publishedAt": published,
        }
        for i in pool
    ]
    return json.dumps(items).encode()


def build_store(
    path: Path,
    document: bytes,
    votes: dict[int, np.ndarray],
    vectors: tuple[str, np.ndarray] | None = None,
) -> int:
    """Parse the document and store it as ``paperwire fetch`` does; record the readers' votes.
    ``vectors``: (model name, one row per CiteULike paper) stored as ``fetch`` stores them."""
    papers, warnings = parse_document(document, source="citeulike-t")
    if warnings:
        raise SystemExit(f"feed warnings: {warnings[:3]}")
    with Store(path) as store:
        store.add_papers(papers, now=NOW - dt.timedelta(hours=12))
        if vectors is not None:
            name, rows = vectors
            store.set_embeddings(
                (
                    r["paper_id"],
                    name,
                    text_hash(paper_text(r["title"], r["abstract"])),
                    embed.to_blob(rows[int(r["paper_id"].split(".")[1])]),
                )
                for r in store.corpus()
            )
        store.record_votes(
            ((f"u{u}", paper_id(i), 1) for u, items in votes.items() for i in items),
            via="import",
        )
        # fetch analyses what it stored; without this a digest's first run would (26,000
        # papers: about 6 s that a timing would charge to ranking)
        terms.refresh(store)
    return len(papers)


def vectors_made_from(counts: sp.csr_matrix, vocab: list[str], model_name: str) -> dict:
    """What encode_citeulike's vectors were made from, written beside them: the model and the
    feed whose papers it encoded (every paper, as eval_product writes them)."""
    document = feed_document(counts, vocab, np.arange(counts.shape[0]), None)
    return {"model": model_name, "feed_sha256": hashlib.sha256(document).hexdigest()}


def stored_vectors(args, counts: sp.csr_matrix, vocab: list[str]) -> tuple[str, np.ndarray] | None:
    """The precomputed vectors and the name the product stores them under, when given; refused
    when they were made from other texts or by another model (the product would trust them)."""
    if args.vectors is None or args.embeddings != embed.ENCODER:
        return None
    name = embed.load_model(embed.ENCODER).name
    beside = Path(args.vectors).with_suffix(".json")
    made = json.loads(beside.read_text()) if beside.is_file() else None
    if made != vectors_made_from(counts, vocab, name):
        raise SystemExit(
            f"{args.vectors} was not encoded from this harness's papers by {name} "
            f"({beside} says {made}): run python -m benchmarks.encode_citeulike again"
        )
    return name, np.load(args.vectors).astype(np.float32)


def config_for(users: list[int], embeddings: str | None = None):
    """One subscriber per reader, no interests text (CiteULike has none); ``embeddings`` turns
    on semantic ranking (``ranking.embeddings``)."""
    lines = [f"ranking:\n  embeddings: {embeddings or 'off'}"]
    lines += ["subscribers:"]
    for u in users:
        lines += [f"  - id: u{u}", f"    email: u{u}@example.org"]
    return parse_config("\n".join(lines) + "\n", label="eval.yaml", env={})


def product_digests(
    db: Path, users: list[int], weights: rank.Weights, batch: int, embeddings: str | None = None
) -> dict[int, list[int]]:
    """Each reader's digest from ``digest.compose``: CiteULike indices, in the order shown."""
    config = config_for(users, embeddings)
    out: dict[int, list[int]] = {}
    with Store(db) as store:
        batch = batch or len(users)
        for start in range(0, len(users), batch):
            subs = list(config.subscribers[start : start + batch])
            composed = digests.compose(
                store,
                config,
                subs,
                now=NOW,
                since=NOW - dt.timedelta(days=7),
                limit=DIGEST,
                weights=weights,
            )
            for sub in subs:
                out[int(sub.id[1:])] = [
                    int(p.paper_id.split(".")[1]) for p in composed[sub.id].picks
                ]
    return out


def ratio_interval(
    mine: dict[int, float] | None, base: dict[int, float], draws: int = 2000
) -> tuple[float, float]:
    """The 90 % bootstrap interval of mean recall / the recipe's mean recall, readers
    resampled (paired: one draw of readers for both)."""
    if not mine:
        return float("nan"), float("nan")
    users = sorted(base)
    a = np.array([mine[u] for u in users])
    b = np.array([base[u] for u in users])
    draw = np.random.default_rng(0).integers(0, len(users), (draws, len(users)))
    ratios = a[draw].mean(axis=1) / np.maximum(b[draw].mean(axis=1), 1e-12)
    low, high = np.quantile(ratios, [0.05, 0.95])
    return float(low), float(high)


def per_reader(picks: dict[int, list[int]], test: dict[int, np.ndarray]) -> dict[int, float]:
    return {u: float(np.isin(picks[u], test[u]).sum() / len(test[u])) for u in picks}


def recall(picks: dict[int, list[int]], test: dict[int, np.ndarray]) -> float:
    return float(np.mean(list(per_reader(picks, test).values())))


def recipe_digests(
    counts: sp.csr_matrix, pool: np.ndarray, users: list[int], train: dict
) -> dict[int, list[int]]:
    """The arxiv-sanity-lite recipe on the same pool: top 10 of the unrated papers."""
    x = eval_ranking.asl_features(counts[pool])
    position = {p: k for k, p in enumerate(pool)}
    positives = [np.array([position[i] for i in train[u]]) for u in users]
    scores = eval_ranking.arxiv_sanity(x, positives)
    out = {}
    for row, u in enumerate(users):
        s = scores[row].astype(np.float64)
        s[positives[row]] = -np.inf
        out[u] = pool[np.argsort(-s, kind="stable")[:DIGEST]].tolist()
    return out


def count_path(
    counts: sp.csr_matrix,
    pool: np.ndarray,
    users: list[int],
    train: dict,
    upvotes: np.ndarray,
    weights: rank.Weights,
) -> dict[str, dict[int, list[int]]]:
    """The old evaluation's path on the same pool: ``rank`` on the count matrix, no store,
    no MMR, the prior standardised over the pool (a diagnostic, not what ships)."""
    model = rank.TextModel(n_features=counts.shape[1]).fit_counts(counts[pool])
    vectors = model.weigh(counts[pool])
    position = {p: k for k, p in enumerate(pool)}
    liked = [np.array([position[i] for i in train[u]]) for u in users]
    prior = rank.popularity_prior(upvotes[pool])
    plain, boosted = eval_ranking.paperwire(vectors, liked, prior, weights)
    out = {}
    for name, scores in (("no upvotes", plain), ("upvotes", boosted)):
        picks = {}
        for row, u in enumerate(users):
            s = scores[row].astype(np.float64)
            s[liked[row]] = -np.inf
            picks[u] = pool[np.argsort(-s, kind="stable")[:DIGEST]].tolist()
        out[name] = picks
    return out


def pick(
    scores: np.ndarray,
    excluded: list[np.ndarray],
    vectors: sp.csr_matrix,
    weights: rank.Weights,
    similarity=None,
) -> list[list[int]]:
    """What compose does with a score matrix: the best 3 × 10 allowed papers, MMR down to 10.

    ``similarity`` (:func:`cosines`) gives MMR compose's float16 cosines; without it each
    pool's own are made (``rank.pool_cosines``: the same numbers), as compose does."""
    allowed = np.ones(scores.shape, dtype=bool)
    for row, cols in enumerate(excluded):
        allowed[row, cols] = False
    pools = rank.top_k(scores, DIGEST * digest.MMR_POOL, allowed)
    sizes = [DIGEST] * scores.shape[0]
    return rank.mmr_many(pools, scores, sizes, weights.mmr_lambda, similarity, vectors)


def cosines(vectors: sp.csr_matrix):
    """The candidates' cosines as compose hands them to MMR (every stored paper a candidate):
    float16 from its dense Gram up to ``digest.MAX_DENSE_SIMILARITY`` candidates; beyond,
    compose keeps none and each pool's own are made (None here does the same)."""
    if vectors.shape[0] > digest.MAX_DENSE_SIMILARITY:
        return None
    return digest.Float16Cosines(
        rank.CandidateGram(vectors, np.arange(vectors.shape[0])).candidates
    )


VARIANTS = {
    "no prior": {"popularity": 0.0},
    "no prior, MMR off": {"popularity": 0.0, "mmr_lambda": 1.0},
    "prior 1.0 ungated (79c3e51)": {"popularity": 1.0, "popularity_bar": -np.inf},
    "prior 1.0 ungated, MMR off": {"popularity": 1.0, "popularity_bar": -np.inf, "mmr_lambda": 1.0},
    "prior 0.75 ungated": {"popularity": 0.75, "popularity_bar": -np.inf},
    "prior 0.5 ungated": {"popularity": 0.5, "popularity_bar": -np.inf},
    "prior 0.35 ungated": {"popularity": 0.35, "popularity_bar": -np.inf},
    "prior 0.75, bar 0": {"popularity": 0.75, "popularity_bar": 0.0},
    "prior 0.5, bar 0": {"popularity": 0.5, "popularity_bar": 0.0},
    "prior 0.5, bar 0, MMR off": {"popularity": 0.5, "popularity_bar": 0.0, "mmr_lambda": 1.0},
    "prior 0.5, bar 0, MMR 0.7": {"popularity": 0.5, "popularity_bar": 0.0, "mmr_lambda": 0.7},
    "prior 0.5, bar 2": {"popularity": 0.5, "popularity_bar": 2.0},
    "prior 0.75, bar 2": {"popularity": 0.75, "popularity_bar": 2.0},
    "prior 0.4, bar 1": {"popularity": 0.4, "popularity_bar": 1.0},
    "prior 0.5, bar 1": {"popularity": 0.5, "popularity_bar": 1.0},
    "prior 0.6, bar 1": {"popularity": 0.6, "popularity_bar": 1.0},
    "prior 0.5, bar 1, MMR 0.7": {"popularity": 0.5, "popularity_bar": 1.0, "mmr_lambda": 0.7},
    "prior 0.5, bar 1, MMR 0.9": {"popularity": 0.5, "popularity_bar": 1.0, "mmr_lambda": 0.9},
    "prior 0.5, bar 1, MMR off": {"popularity": 0.5, "popularity_bar": 1.0, "mmr_lambda": 1.0},
    "prior 0.6, bar 1, MMR 0.7": {"popularity": 0.6, "popularity_bar": 1.0, "mmr_lambda": 0.7},
    "prior x top-30 spread 0.5": {"popularity": 0.5, "popularity_bar": 0.0, "relative": True},
    "prior x top-30 spread 1.0": {"popularity": 1.0, "popularity_bar": 0.0, "relative": True},
}


def variants(
    relevance: np.ndarray,
    upvotes: np.ndarray,
    excluded: list[np.ndarray],
    vectors: sp.csr_matrix,
    users: list[int],
    ids: np.ndarray,
    test: dict,
    base: rank.Weights,
    tag: str,
    report,
) -> None:
    """Each weight variant applied to one relevance matrix, picked the way compose picks."""
    for name, values in VARIANTS.items():
        values = dict(values)
        relative = values.pop("relative", False)
        w = replace(base, **values)
        lift = shipped_lift(relevance, upvotes, liked(upvotes, excluded), w) if w.popularity else 0
        if relative:  # the prior in units of the subscriber's own spread among their best
            top = -np.partition(-relevance, 29, axis=1)[:, :30]
            lift = lift * top.std(axis=1, keepdims=True)
        scores = relevance + lift
        picks = pick(scores, excluded, vectors, w)
        report(
            f"{tag}: {name}",
            recall({u: ids[p].tolist() for u, p in zip(users, picks, strict=True)}, test),
        )


def liked(upvotes: np.ndarray, excluded: list[np.ndarray]) -> list[np.ndarray]:
    """Each reader's liked papers' upvotes: every harness vote is a thumbs-up."""
    return [upvotes[cols] for cols in excluded]


def shipped_lift(relevance, upvotes, liked_upvotes, weights: rank.Weights) -> np.ndarray:
    """What compose adds to relevance: ``rank.crowd_lift`` of the candidates' upvotes (NaN:
    none), each reader's share from their liked papers' upvotes (``rank.crowd_affinity``).
    Every harness reader has thumbs-up, so none is ``nothing_liked`` (the prior on every
    paper), and the lift is compose's."""
    affinity = rank.crowd_affinity(liked_upvotes, rank.upvote_scale(upvotes), weights)
    return rank.crowd_lift(relevance, rank.popularity_prior(upvotes), weights, affinity)


def product_relevance(
    db: Path, users: list[int], weights: rank.Weights, batch: int, embeddings: str | None = None
):
    """Relevance (no prior) of every stored paper with the profiles compose builds, the
    papers' upvotes (NaN: none), the excluded (voted) columns, vectors and CiteULike indices."""
    config = config_for(users, embeddings)
    with Store(db) as store:
        corpus = RankingSession().corpus(store)
        ids = [r["paper_id"] for r in corpus.rows]
        bare = replace(weights, popularity=0.0)
        parts = []
        batch = batch or len(users)
        for start in range(0, len(users), batch):
            subs = list(config.subscribers[start : start + batch])
            parts.append(digest.score_matrix(store, config, subs, ids, now=NOW, weights=bare))
        upvotes = np.array(
            [np.nan if r["upvotes"] is None else r["upvotes"] for r in corpus.rows], dtype=float
        )
        index = {p: i for i, p in enumerate(ids)}
        votes = store.votes([f"u{u}" for u in users])
    excluded: dict[int, list[int]] = {u: [] for u in users}
    for v in votes:
        excluded[int(v["subscriber_id"][1:])].append(index[v["paper_id"]])
    cite = np.array([int(p.split(".")[1]) for p in ids])
    return (
        np.vstack(parts),
        upvotes,
        [np.array(excluded[u], dtype=np.int64) for u in users],
        corpus.matrix,
        cite,
    )


def count_relevance(counts, pool, users, train, weights):
    """Relevance on the count path (rank's functions over the pool's count matrix)."""
    model = rank.TextModel(n_features=counts.shape[1]).fit_counts(counts[pool])
    vectors = model.weigh(counts[pool])
    position = {p: k for k, p in enumerate(pool)}
    liked = [np.array([position[i] for i in train[u]]) for u in users]
    plain, _ = eval_ranking.paperwire(vectors, liked, np.zeros(len(pool)), weights)
    return plain.astype(np.float64), liked, vectors


# -- cheap, paired tuning of the crowd prior -------------------------------------------------
#
# A reader's relevance (the classifier: seconds per reader) does not depend on the prior, so it
# is computed once per tuning group with ``digest.score_matrix`` (compose's profiles, prior 0)
# and cached; each prior variant is then a lift on that matrix, picked with compose's top_k +
# MMR (tests/test_eval_path.py holds that path to compose's top-10s).


def reader_groups(
    libraries: list[np.ndarray], n: int, size: int, tune: bool = True
) -> list[list[int]]:
    """``n`` seeded readers dealt into groups of ``size``: each group is evaluated the way the
    issue's table is (its own pool, upvotes from everyone but its hidden 20 %)."""
    users = readers(libraries, n, tune=tune)
    order = np.random.default_rng(SEED + 1).permutation(len(users))
    return [
        sorted(users[i] for i in order[g :: len(users) // size]) for g in range(len(users) // size)
    ]


def cache_group(path: Path, counts, libraries, vocab, users: list[int], args) -> None:
    """One group's relevance (no prior), raw upvotes, excluded columns, vectors and hidden papers."""
    splits = eval_ranking.split(libraries, users, SEED)
    train = {u: splits[u][0] for u in users}
    upvotes = eval_ranking.popularity_counts(libraries, splits, counts.shape[0])
    pool = pool_of(libraries, users, args.pool, counts.shape[0])
    weights = parse_weights(args.weights)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hf.db"
        build_store(db, feed_document(counts, vocab, pool, upvotes), train)
        rel, _, excluded, vectors, ids = product_relevance(
            db, users, weights, args.batch, args.embeddings
        )
    sp.save_npz(path.with_suffix(".vectors.npz"), vectors.tocsr())
    np.savez(
        path,
        users=np.array(users),
        relevance=rel.astype(np.float32),
        upvotes=upvotes[ids],
        ids=ids,
        excluded=np.concatenate(excluded),
        excluded_starts=np.cumsum([0] + [len(e) for e in excluded]),
        test=np.concatenate([splits[u][1] for u in users]),
        test_starts=np.cumsum([0] + [len(splits[u][1]) for u in users]),
    )


def load_group(path: Path) -> dict:
    with np.load(path) as f:
        g = {k: f[k] for k in f.files}
    cut = lambda flat, starts: [flat[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]  # noqa: E731
    g["excluded"] = cut(g["excluded"], g.pop("excluded_starts"))
    g["test"] = cut(g["test"], g.pop("test_starts"))
    g["vectors"] = sp.load_npz(path.with_suffix(".vectors.npz")).tocsr()
    g["similarity"] = cosines(g["vectors"])
    return g


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std() if x.std() > 0 else np.zeros_like(x)


def _gate(relevance, bar, lift):
    blank = relevance.max(axis=1, keepdims=True) == relevance.min(axis=1, keepdims=True)
    return np.where((relevance >= bar) | blank, lift[None, :] if lift.ndim == 1 else lift, 0)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


SHIPPED = f"rank.crowd_lift (bar {rank.Weights().popularity_bar:g})"


def group_picks(g: dict, lift, weights: rank.Weights) -> list[np.ndarray]:
    """A cached group's digests (CiteULike indices) with ``lift(relevance, upvotes, each
    reader's liked papers' upvotes)`` added, picked as compose picks."""
    upvotes = g["upvotes"].astype(np.float64)
    scores = g["relevance"] + lift(g["relevance"], upvotes, liked(upvotes, g["excluded"]))
    return [
        g["ids"][p]
        for p in pick(
            scores.astype(np.float32), g["excluded"], g["vectors"], weights, g["similarity"]
        )
    ]


def prior_forms() -> dict:
    """Lift variants: name -> f(relevance, upvotes, each reader's liked papers' upvotes)
    giving what is added to relevance."""
    forms: dict = {"no prior": lambda r, u, a: np.zeros_like(r)}

    def z_log(u):
        z = _z(np.log1p(u))
        return z - z.min()

    def pct(u):  # rank-based: the share of candidates with fewer upvotes, in SDs of a uniform
        return (np.argsort(np.argsort(u, kind="stable"), kind="stable") / len(u)) * np.sqrt(12)

    def capped(u, cap):
        return np.minimum(z_log(u), cap)

    for w in (0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 3.5, 5.0):  # what compose adds: crowd_lift
        forms[f"{SHIPPED}, w {w}"] = lambda r, u, a, w=w: shipped_lift(
            r, u, a, replace(rank.Weights(), popularity=w)
        )
        forms[f"{SHIPPED}, w {w}, one share for all"] = lambda r, u, a, w=w: rank.crowd_lift(
            r, rank.popularity_prior(u), replace(rank.Weights(), popularity=w)
        )
    for w in (0.5, 0.75):
        for bar in (0.0, 2.0, 3.0):
            forms[f"z log, bar {bar:g}, w {w}"] = lambda r, u, a, w=w, b=bar: _gate(
                r, b, w * z_log(u)
            )
    for w in (0.35, 0.5, 0.75):
        forms[f"z log ungated, w {w}"] = lambda r, u, a, w=w: np.broadcast_to(w * z_log(u), r.shape)
    for w in (0.5, 0.75, 1.0):
        forms[f"rank pct, bar 1, w {w}"] = lambda r, u, a, w=w: _gate(r, 1.0, w * pct(u))
    for w in (0.5, 0.75, 1.0):
        forms[f"z log capped at 2, bar 1, w {w}"] = lambda r, u, a, w=w: _gate(
            r, 1.0, w * capped(u, 2.0)
        )
    for w in (0.05, 0.1, 0.2):
        forms[f"raw log1p, bar 1, w {w}"] = lambda r, u, a, w=w: _gate(r, 1.0, w * np.log1p(u))
    for w in (0.5, 0.75, 1.0):
        for bar, t in ((1.0, 0.5), (2.0, 0.5), (2.0, 1.0)):
            forms[f"soft gate sigmoid((r-{bar:g})/{t:g}), w {w}"] = (
                lambda r, u, a, w=w, b=bar, t=t: w * z_log(u)[None, :] * _sigmoid((r - b) / t)
            )
    for w in (0.1, 0.15, 0.2, 0.3):
        forms[f"proportional w·max(r,0)·prior, w {w}"] = lambda r, u, a, w=w: (
            w * np.maximum(r, 0) * z_log(u)[None, :]
        )
    for w in (0.5, 0.75, 1.0):
        for m in (100, 300):
            forms[f"top-{m} gate, w {w}"] = lambda r, u, a, w=w, m=m: np.where(
                r >= -np.partition(-r, m - 1, axis=1)[:, m - 1 : m], w * z_log(u)[None, :], 0
            )

    for w in (0.5, 0.75, 1.0):  # a gate that opens gradually: 0 below the bar, full t above it
        for bar, t in ((0.0, 1.0), (1.0, 1.0), (1.0, 2.0), (2.0, 2.0)):
            forms[f"ramp gate clip((r-{bar:g})/{t:g}, 0, 1), w {w}"] = (
                lambda r, u, a, w=w, b=bar, t=t: w * z_log(u)[None, :] * np.clip((r - b) / t, 0, 1)
            )

    def spread(r, m=100):  # the reader's own scale: SD of their m most relevant scores
        return (-np.partition(-r, m - 1, axis=1)[:, :m]).std(axis=1, keepdims=True)

    for w in (0.1, 0.2, 0.3, 0.5):
        forms[f"reader-scaled w·sd(top-100)·prior, bar 1, w {w}"] = lambda r, u, a, w=w: _gate(
            r, 1.0, w * spread(r) * z_log(u)[None, :]
        )
    return forms


def prior_table(paths: list[Path], weights: rank.Weights, only: str = "") -> None:
    """Each lift form on every cached group: mean recall@10 over all readers, and the paired
    difference against the shipped form (mean ± standard error over readers)."""
    groups = [load_group(p) for p in paths]
    per_reader: dict[str, np.ndarray] = {}
    forms = prior_forms()
    names = [n for n in forms if only in n or n == "no prior" or n.startswith(SHIPPED)]
    for name in names:
        values = []
        for g in groups:
            picks = group_picks(g, forms[name], weights)
            for p, t in zip(picks, g["test"], strict=True):
                values.append(np.isin(p, t).sum() / len(t))
        per_reader[name] = np.array(values)
    base = per_reader.get(f"{SHIPPED}, w {weights.popularity}")
    none = per_reader["no prior"]
    n = len(none)
    print(
        f"# {n} tuning readers in {len(groups)} groups; recall@10 (per group); paired "
        "difference vs no prior and vs the shipped form (mean ± standard error over readers)"
    )

    def paired(v, ref):
        return (
            "" if ref is None else f"{(v - ref).mean():+.4f} ± {(v - ref).std() / np.sqrt(n):.4f}"
        )

    for name, v in per_reader.items():
        by_group = " ".join(f"{x.mean():.4f}" for x in np.array_split(v, len(groups)))
        print(
            f"{name:<52} {v.mean():.4f} [{by_group}] {paired(v, none)} {paired(v, base)}",
            flush=True,
        )


def overrides(shipped, pairs: list[str], option: str):
    """``shipped`` (a weights dataclass) with the ``k=v`` pairs of ``option`` in place."""
    kinds = {f.name: f.type for f in fields(shipped)}
    values: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in kinds:
            raise SystemExit(f"{option}: unknown weight {key!r}")
        kind = kinds[key]
        values[key] = (
            value in ("1", "true") if kind in ("bool", bool)
            else int(value) if kind in ("int", int) else float(value)
        )  # fmt: skip
    return replace(shipped, **values)


def parse_weights(pairs: list[str]) -> rank.Weights:
    return overrides(rank.Weights(), pairs, "--weights")


def use_semantic_weights(pairs: list[str]) -> None:
    """Make these ``SemanticWeights`` overrides (k=v) what every run of this process uses.

    The encoder's weights are the defaults of ``EmbeddedCorpus``' methods, which compose
    does not pass, so the defaults themselves are replaced: a benchmark's lever, not an API."""
    if not pairs:
        return
    from paperwire.rank import embedded, semantic

    chosen = overrides(semantic.SemanticWeights(), pairs, "--semantic")
    corpus = embedded.EmbeddedCorpus
    corpus.vectors_of.__defaults__ = (chosen,)
    corpus.added.__defaults__ = (chosen, None)
    corpus.nearest_papers.__defaults__ = (chosen,)
    corpus.votes_nearest.__defaults__ = (chosen,)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100, help="readers to evaluate (0: all)")
    parser.add_argument("--tune", action="store_true", help="tuning readers, not held-out ones")
    parser.add_argument(
        "--pool", type=int, default=0, help="papers in the pool, at least (0: every paper)"
    )
    parser.add_argument(
        "--batch", type=int, default=0, help="subscribers per compose call (0: all in one)"
    )
    parser.add_argument("--weights", nargs="*", default=[], help="rank.Weights overrides k=v")
    parser.add_argument(
        "--semantic", nargs="*", default=[], help="semantic.SemanticWeights overrides k=v"
    )
    parser.add_argument(
        "--feeds", default="atom,hf", help="comma-separated: atom, hf (default both)"
    )
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--count-path", action="store_true", help="also the count-matrix table")
    parser.add_argument(
        "--variants", default="", help="prior/MMR variants on 'product', 'count' or both (tuning)"
    )
    parser.add_argument(
        "--embeddings",
        default="minilm",
        help="ranking.embeddings: minilm, off, wordllama, a folder",
    )
    parser.add_argument(
        "--vectors", type=Path, help="the papers' vectors from encode_citeulike.py (minilm)"
    )
    parser.add_argument(
        "--per-reader",
        type=Path,
        help="write each reader's recall@10 here (JSON): the recipe and compose rows",
    )
    parser.add_argument("--cache-dir", type=Path, help="tuning: cache groups' relevance here")
    parser.add_argument("--group-size", type=int, default=100, help="tuning readers per group")
    parser.add_argument(
        "--group", type=int, nargs="*", help="these groups of --users (tuning: cache them)"
    )
    parser.add_argument(
        "--prior-table", default=None, help="tuning: lift forms on the cached groups (filter)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.feeds.split(",")) - {"atom", "hf", "none"}
    if unknown:  # "both" once ran the Atom feed under the Hugging Face label
        parser.error(f"--feeds: {', '.join(sorted(unknown))}: not atom, hf or none")
    started = time.time()
    weights = parse_weights(args.weights)
    use_semantic_weights(args.semantic)
    if args.prior_table is not None:
        prior_table(sorted(args.cache_dir.glob("group*[0-9].npz")), weights, args.prior_table)
        return 0
    counts, libraries, vocab = citeulike()
    if args.cache_dir is not None:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        groups = reader_groups(libraries, args.users, args.group_size)
        for g in args.group if args.group is not None else range(len(groups)):
            path = args.cache_dir / f"group{g}.npz"
            if not path.exists():
                cache_group(path, counts, libraries, vocab, groups[g], args)
                print(f"group {g}: {len(groups[g])} readers ({time.time() - started:.0f}s)")
        return 0
    users = readers(libraries, args.users, args.tune)
    if args.group:  # one group of a larger sample, evaluated like the 100-reader table
        users = reader_groups(libraries, args.users, args.group_size, args.tune)[args.group[0]]
    splits = eval_ranking.split(libraries, users, SEED)
    train = {u: splits[u][0] for u in users}
    test = {u: splits[u][1] for u in users}
    upvotes = eval_ranking.popularity_counts(libraries, splits, counts.shape[0])
    pool = pool_of(libraries, users, args.pool, counts.shape[0])
    which = "tuning" if args.tune else "held-out"
    print(
        f"# CiteULike-t through digest.compose: {len(users)} {which} readers, pool {len(pool)} "
        f"papers, digest {DIGEST}; embeddings {args.embeddings}; weights {weights}"
        + (f"; encoder weights {' '.join(args.semantic)}" if args.semantic else ""),
        flush=True,
    )
    results: dict[str, float] = {}
    readers_recall: dict[str, dict[int, float]] = {}

    def report(name: str, value: float, picks: dict | None = None) -> None:
        results[name] = value
        if picks is not None:
            readers_recall[name] = per_reader(picks, test)
        print(f"{name:<52} recall@10 {value:.4f}  ({time.time() - started:.0f}s)", flush=True)

    if not args.skip_recipe:
        picks = recipe_digests(counts, pool, users, train)
        report("arxiv-sanity-lite recipe", recall(picks, test), picks)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [k for k in args.feeds.split(",") if k != "none"]:
            document = feed_document(counts, vocab, pool, upvotes if kind == "hf" else None)
            db = Path(tmp) / f"{kind}.db"
            build_store(db, document, train, stored_vectors(args, counts, vocab))
            picks = product_digests(db, users, weights, args.batch, args.embeddings)
            label = "Atom, no upvotes" if kind == "atom" else "Hugging Face JSON, upvotes"
            report(f"paperwire via compose, {label}", recall(picks, test), picks)
        if args.variants and "product" in args.variants:
            db = Path(tmp) / "hf.db"
            if not db.exists():
                build_store(db, feed_document(counts, vocab, pool, upvotes), train)
            rel, ups, excluded, vectors, ids = product_relevance(
                db, users, weights, args.batch, args.embeddings
            )
            variants(rel, ups, excluded, vectors, users, ids, test, weights, "compose", report)
    if args.variants and "count" in args.variants:
        cp = count_relevance(counts, pool, users, train, weights)
        ups = upvotes[pool].astype(float)
        variants(cp[0], ups, cp[1], cp[2], users, pool, test, weights, "count", report)
    if args.count_path:
        for name, picks in count_path(counts, pool, users, train, upvotes, weights).items():
            report(f"count-matrix path (rank only, no MMR), {name}", recall(picks, test))
    if "arxiv-sanity-lite recipe" in results:
        base = results["arxiv-sanity-lite recipe"]
        for name, value in results.items():
            if name.startswith("paperwire"):
                low, high = ratio_interval(
                    readers_recall.get(name), readers_recall["arxiv-sanity-lite recipe"]
                )
                print(
                    f"ratio {name}: {value / base:.3f}x (90 % bootstrap over readers "
                    f"{low:.2f}-{high:.2f})",
                    flush=True,
                )
    if args.per_reader is not None:
        args.per_reader.write_text(json.dumps(readers_recall))
    print(f"# total {time.time() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
