"""Rank stage: each subscriber's profile, every candidate's score, the digest's picks and why.

- ``core``: text models, weights, profiles, the crowd prior, MMR and key phrases (pure functions)
- ``terms``: each stored paper's text analysed once (the ``paper_terms`` table)
- ``compose``: a digest for each subscriber from the store: candidates, scores, picks, reasons
- ``semantic``, ``embed``: optional embedding profiles beside TF-IDF, and the static model
- ``filters``, ``authors``: ``must_match`` / ``never_match`` phrases and followed authors
- ``alerts``: instant alerts after a fetch
- ``model_pull``: ``paperwire model pull``, the one command that downloads weights
"""
