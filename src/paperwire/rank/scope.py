"""Which stored papers a run ranks against (``ranking.corpus_papers``): cheap to import, so a
fetch or a web request can ask without loading the ranking's libraries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..config import Config
from ..paper import seed_ids
from ..store import Store, iso

# A digest's window reaches back this far at most: a reader back after months gets the last
# month's best; and one whose every digest fails (a dead address) does not widen every run's
# corpus (ranking.corpus_papers) to their last digest, months back, for everyone due with them.
MAX_WINDOW_DAYS = 31


@dataclass(frozen=True)
class Scope:
    """Which stored papers a run's corpus holds: every one (``since`` None), or those first
    seen after ``since``, every paper a reader voted on or imported as a seed, and ``keep``
    (the config's seed papers, stored as first seen when they were published)."""

    since: str | None = None
    keep: frozenset[str] = frozenset()


EVERY_PAPER = Scope()


def scope(store: Store, config: Config, earliest: dt.datetime | None = None) -> Scope:
    """The corpus ``config.ranking.corpus_papers`` asks for, holding every paper first seen
    after ``earliest`` too (a digest's candidates are always in its corpus)."""
    since = store.corpus_since(config.ranking.corpus_papers)
    if since is None:
        return EVERY_PAPER
    if earliest is not None:
        since = min(since, iso(earliest))
    seeds = seed_ids(p for sub in config.subscribers for p in sub.seed_papers)
    return Scope(since, frozenset(seeds))
