"""Rank stage: each subscriber's profile, every candidate's score, the digest's picks and why.

- ``core``: the TF-IDF model, weights, profiles, the crowd prior and MMR (pure functions)
- ``phrases``: an interests text's topics and the papers that contain one whole
- ``paper_phrases``: the phrases of a paper a reason may name, and which raised a score
- ``terms``: each stored paper's text analysed once (the ``paper_terms`` table)
- ``batches``: such per-paper caches written batch by batch (terms', embed's vectors)
- ``session``: ``RankingSession``, what ranking keeps between runs (model, corpora), owned by
  its caller
- ``corpus``: the stored corpus as TF-IDF vectors, and a run's interest phrases
- ``compose``: digests in four stages: candidates → score → diversify → explain
- ``evidence``: what the reasons rest on (key phrases, the reader's paper a pick resembles)
- ``reasons``: reasons as data (render/reasons.py words them)
- ``semantic``, ``embedded``, ``embed``, ``encoder``: embedding scores beside TF-IDF (the math;
  the corpus under one model and its caches; vectors stored per paper; the bundled encoder)
- ``filters``, ``authors``: ``must_match`` / ``never_match`` phrases and followed authors
- ``alerts``: instant alerts after a fetch
- ``topics``: which key phrases are topics, not boilerplate
- ``model_pull``: ``paperwire model pull``, the one command that downloads weights
"""
