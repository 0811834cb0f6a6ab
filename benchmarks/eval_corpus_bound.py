"""``ranking.corpus_papers`` on CiteULike-t: the same readers and candidates ranked against a
bounded corpus (the recent papers and every voted one) and against the whole store, paired.

Every paper a candidate cannot show it (the window then holds the whole store), so a seeded
30 % of the papers are stamped "recent" (first seen 12 h before the run), the rest 200 days
earlier, and one ``compose`` call per corpus ranks each reader's window of the last day: the
same candidates, only the background (IDF, whitening, score spread) differs. Recall@10 is over
each tuning reader's hidden papers that are recent; a 90 % bootstrap over readers, paired.

    python -m benchmarks.eval_corpus_bound --users 600 [--stamp-seed 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks import eval_product as ep
from benchmarks import eval_ranking
from paperwire import digests
from paperwire.config import parse_config
from paperwire.rank.scope import scope as corpus_scope
from paperwire.rank.session import RankingSession
from paperwire.store import Store, iso

NOW = ep.NOW
SINCE = NOW - dt.timedelta(days=1)
OLD = iso(NOW - dt.timedelta(days=200))
RECENT_STAMP = iso(NOW - dt.timedelta(hours=12))
VECTORS = Path.home() / ".cache" / "paperwire-bench" / "citeulike-minilm.npy"


def config(users, corpus_papers: int):
    lines = [f"ranking:\n  embeddings: minilm\n  corpus_papers: {corpus_papers}", "subscribers:"]
    for u in users:
        lines += [f"  - id: u{u}", f"    email: u{u}@example.org"]
    return parse_config("\n".join(lines) + "\n", label="bound.yaml", env={})


def copy_db(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(dst) + suffix).unlink(missing_ok=True)
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


def run(db: Path, users, n: int, log) -> tuple[dict[int, list[int]], dict]:
    cfg = config(users, n)
    info: dict = {"corpus_papers": n}
    t0 = time.time()
    with Store(db) as store:
        session = RankingSession()
        info["corpus_since"] = store.corpus_since(n)
        sc = corpus_scope(store, cfg, SINCE)  # what iter_compose computes (earliest = since)
        info["scope_since"] = sc.since
        corpus = session.corpus(store, sc)  # the same Corpus.build compose then reuses
        info["corpus_size"] = len(corpus.ids)
        info["corpus_ids"] = corpus.ids
        t1 = time.time()
        composed = digests.compose(
            store,
            cfg,
            list(cfg.subscribers),
            now=NOW,
            since=SINCE,
            limit=ep.DIGEST,
            session=session,
        )
        info["seconds_corpus"] = round(t1 - t0, 1)
        info["seconds_compose"] = round(time.time() - t1, 1)
        info["candidates_mean"] = float(np.mean([d.candidates for d in composed.values()]))
    picks = {
        int(sub.id[1:]): [int(p.paper_id.split(".")[1]) for p in composed[sub.id].picks]
        for sub in cfg.subscribers
    }
    log(
        f"  N={n}: corpus_since={info['corpus_since']} scope.since={info['scope_since']} "
        f"corpus={info['corpus_size']} corpus {info['seconds_corpus']}s compose "
        f"{info['seconds_compose']}s candidates/reader {info['candidates_mean']:.0f}"
    )
    return picks, info


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=600)
    p.add_argument("--recent-share", type=float, default=0.3)
    p.add_argument("--extra-n", type=int, nargs="*", default=[], help="more corpus_papers values")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "bound")
    p.add_argument("--stamp-seed", type=int, default=12345, help="which papers are recent")
    args = p.parse_args()
    started = time.time()
    out = args.out / (
        f"u{args.users}" + (f"-s{args.stamp_seed}" if args.stamp_seed != 12345 else "")
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "log.txt").write_text("")

    def log(s):
        s = f"[{time.time() - started:6.0f}s] {s}"
        print(s, flush=True)
        with (out / "log.txt").open("a") as f:
            f.write(s + "\n")

    counts, libraries, vocab = ep.citeulike()
    n_papers = counts.shape[0]
    users = ep.readers(libraries, args.users, tune=True)
    splits = eval_ranking.split(libraries, users, ep.SEED)
    train = {u: splits[u][0] for u in users}
    test = {u: splits[u][1] for u in users}
    vectors = ep.stored_vectors(
        SimpleNamespace(vectors=VECTORS, embeddings="minilm"), counts, vocab
    )  # refuses vectors whose .json does not match
    log(f"{len(users)} tuning readers, {n_papers} papers, vectors {vectors[0]} {vectors[1].shape}")

    base = out / "base.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(base) + suffix).unlink(missing_ok=True)
    document = ep.feed_document(counts, vocab, np.arange(n_papers), None)
    ep.build_store(base, document, train, vectors)
    log("store built")

    rng = np.random.default_rng(args.stamp_seed)
    recent = np.sort(rng.choice(n_papers, int(round(args.recent_share * n_papers)), replace=False))
    is_recent = np.zeros(n_papers, bool)
    is_recent[recent] = True
    con = sqlite3.connect(base)
    stamps = {r[0] for r in con.execute("select distinct first_seen from papers")}
    assert stamps == {RECENT_STAMP}, stamps
    con.executemany(
        "update papers set first_seen = ? where paper_id = ?",
        [(OLD, ep.paper_id(i)) for i in np.flatnonzero(~is_recent)],
    )
    con.commit()
    got = dict(
        con.execute("select first_seen, count(*) from papers group by first_seen").fetchall()
    )
    voted = {int(r[0].split(".")[1]) for r in con.execute("select distinct paper_id from votes")}
    seeds = con.execute("select count(*) from seeds").fetchone()[0]
    con.close()
    n_recent = int(is_recent.sum())
    voted_old = sum(1 for i in voted if not is_recent[i])
    log(
        f"stamps {got}; recent {n_recent}; voted papers {len(voted)} ({voted_old} old); "
        f"seeds rows {seeds}; expected bounded corpus {n_recent + voted_old}"
    )

    runs = {"bounded": n_recent, "whole": 10_000_000}
    for n in args.extra_n:
        runs[f"N={n}"] = n
    picks, infos = {}, {}
    for name, n in runs.items():
        db = out / f"{name}.db"
        copy_db(base, db)
        log(f"run {name}")
        picks[name], infos[name] = run(db, users, n, log)
        ids = infos[name].pop("corpus_ids")
        idx = np.array([int(x.split(".")[1]) for x in ids])
        infos[name]["corpus_recent"] = int(is_recent[idx].sum())
        infos[name]["corpus_old"] = int((~is_recent[idx]).sum())
        infos[name]["corpus_old_voted"] = int(
            sum(1 for i in idx if not is_recent[i] and i in voted)
        )
        log(
            f"  corpus: {infos[name]['corpus_recent']} recent + {infos[name]['corpus_old']} old "
            f"({infos[name]['corpus_old_voted']} of them voted)"
        )
        non_recent_picks = sum(1 for u in users for i in picks[name][u] if not is_recent[i])
        infos[name]["non_recent_picks"] = non_recent_picks
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)

    hidden = {u: np.intersect1d(test[u], recent) for u in users}
    kept = [u for u in users if len(hidden[u])]
    rec = {
        name: np.array([np.isin(picks[name][u], hidden[u]).sum() / len(hidden[u]) for u in kept])
        for name in runs
    }
    result = {
        "users": len(users),
        "kept": len(kept),
        "recent": n_recent,
        "store": n_papers,
        "voted": len(voted),
        "runs": infos,
        "compare": {},
    }
    log(
        f"readers {len(users)}, kept {len(kept)} (≥1 recent hidden paper); hidden recent per "
        f"reader mean {np.mean([len(hidden[u]) for u in kept]):.2f}"
    )
    draw = np.random.default_rng(0).integers(0, len(kept), (2000, len(kept)))
    for name in runs:
        log(f"  {name:<10} mean recall@10 {rec[name].mean():.4f}")
    for name in [r for r in runs if r != "whole"]:
        d = rec[name] - rec["whole"]
        lo, hi = np.quantile(d[draw].mean(axis=1), [0.05, 0.95])
        better, worse = int((d > 0).sum()), int((d < 0).sum())
        equal = len(d) - better - worse
        ov = [
            len(set(picks[name][u]) & set(picks["whole"][u]))
            / max(len(picks[name][u]), len(picks["whole"][u]), 1)
            for u in kept
        ]
        ov_all = [
            len(set(picks[name][u]) & set(picks["whole"][u]))
            / max(len(picks[name][u]), len(picks["whole"][u]), 1)
            for u in users
        ]
        identical = sum(1 for u in users if picks[name][u] == picks["whole"][u])
        c = {
            "recall": float(rec[name].mean()),
            "recall_whole": float(rec["whole"].mean()),
            "diff": float(d.mean()),
            "ci90": [float(lo), float(hi)],
            "better": better,
            "worse": worse,
            "equal": equal,
            "overlap_kept": float(np.mean(ov)),
            "overlap_all": float(np.mean(ov_all)),
            "identical_lists_all": identical,
        }
        result["compare"][name] = c
        log(
            f"  {name} - whole: {d.mean():+.4f} (90% bootstrap {lo:+.4f} .. {hi:+.4f}); "
            f"better {better} worse {worse} equal {equal}; top-10 overlap {np.mean(ov):.3f} "
            f"(all readers {np.mean(ov_all):.3f}); identical lists {identical}/{len(users)}"
        )
    per = {name: {str(u): float(v) for u, v in zip(kept, rec[name], strict=True)} for name in runs}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    (out / "per_reader.json").write_text(json.dumps(per))
    (out / "picks.json").write_text(
        json.dumps({n: {str(u): v for u, v in p.items()} for n, p in picks.items()})
    )
    # base.db kept (re-stamped store)
    log("done")


if __name__ == "__main__":
    main()
