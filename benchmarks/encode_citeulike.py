"""Encode every CiteULike-t paper once with the product's sentence encoder, for eval_product.

The texts are exactly what ``eval_product`` stores (its feed document parsed by the product,
``paper_text`` of title and abstract), encoded one by one as ``fetch`` encodes them, so the
vectors equal those the product would store; eval_product ``--vectors`` writes them into its
stores instead of encoding for over a minute on every run. Beside them, a JSON file says
which model encoded which feed; eval_product refuses vectors made from other texts.

    python -m benchmarks.encode_citeulike            # 78 s on 2 cores
    python -m benchmarks.eval_product --users 0 --vectors ~/.cache/paperwire-bench/citeulike-minilm.npy
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import eval_product as ep
from paperwire.paper import paper_text
from paperwire.rank import encoder
from paperwire.store import Store


def main() -> int:
    counts, _, vocab = ep.citeulike()
    pool = np.arange(counts.shape[0])
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "atom.db"
        ep.build_store(db, ep.feed_document(counts, vocab, pool, None), {})
        with Store(db) as store:
            rows = store.corpus()
    texts = [""] * counts.shape[0]
    for r in rows:
        texts[int(r["paper_id"].split(".")[1])] = paper_text(r["title"], r["abstract"])
    model = encoder.load()
    vectors = model.embed(texts)
    out = ep.CACHE / f"citeulike-{model.name.split('-')[0]}.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, vectors.astype(np.float16))
    # what they were made from: eval_product refuses them once the harness's texts change
    made = ep.vectors_made_from(counts, vocab, model.name)
    out.with_suffix(".json").write_text(json.dumps(made))
    print(f"{len(texts)} papers encoded by {model.name} in {time.time() - started:.0f} s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
