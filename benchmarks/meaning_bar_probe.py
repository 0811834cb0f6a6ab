"""How far a reader's interest phrase reaches in meaning: for each phrase, the stored papers
closest to it by the bundled encoder, with their cosine and z-score over all 690 papers of
arxiv-frontpage's 2025-04-11 listing (every arXiv field). See benchmarks/README.md, "A limit of
'close in meaning'".

    PYTHONPATH=. python -m benchmarks.meaning_bar_probe
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from paperwire.rank import encoder

LISTING = (
    Path(__file__).resolve().parents[2] / "shared/data/arxiv-frontpage/downloads_2025-04-11.jsonl"
)
PHRASES = [
    "speculative decoding",
    "medical imaging",
    "faster LLM inference",
    "KV cache prefetching and compression",
    "weight quantization",
    "pruning tokens in long contexts",
    "retrieval-augmented generation",
    "reinforcement learning for language model reasoning",
]


def main() -> None:
    rows = [json.loads(line) for line in LISTING.open()]
    model = encoder.load()
    vectors = model.embed([f"{r['title']}. {r['abstract']}" for r in rows])
    for phrase in PHRASES:
        sims = vectors @ model.embed([phrase])[0]
        mean, spread = sims.mean(), sims.std()
        print(
            f"\n== {phrase}: mean={mean:.3f} sd={spread:.3f} "
            f"q95={np.quantile(sims, 0.95):.3f} q99={np.quantile(sims, 0.99):.3f}"
        )
        for i in np.argsort(-sims)[:14]:
            print(f"  z={(sims[i] - mean) / spread:4.1f} cos={sims[i]:.3f} {rows[i]['title'][:85]}")


if __name__ == "__main__":
    main()
