"""What `paperwire run` holds over a year-old store: a digest run's corpus, then a profile
page, in one process; the profile cache on the digests' ranking session (as the daemon has it
since e825764) or on a session of its own (as before).

    python -m benchmarks.scale.bench_year          # builds the store first, if needed
    python -m benchmarks.scale.bench_year_daemon shared
    python -m benchmarks.scale.bench_year_daemon own
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from pathlib import Path

from benchmarks.scale.bench_year import NOW, OUT
from paperwire.config import load_config
from paperwire.rank import compose, terms
from paperwire.rank import core as rank
from paperwire.rank.scope import scope as corpus_scope
from paperwire.rank.session import RankingSession
from paperwire.store import Store
from paperwire.web.profile_cache import ProfileCache


def memory() -> str:
    """This process's resident memory now and at its peak (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        found = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    now, peak = (int(found[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))
    return f"RSS {now:.0f} MiB, peak {peak:.0f} MiB"


def main() -> int:
    shared = (sys.argv[1:] or ["shared"])[0] == "shared"
    folder = OUT / f"year-365x550-{terms.analyser(rank.TextModel())}"
    db = Path("/tmp/bench-year-daemon.db")
    shutil.copyfile(folder / "store.db", db)  # a digest writes caches
    config = load_config(folder / "subscribers.yaml")
    with Store(db) as store:
        session = RankingSession()
        began = time.perf_counter()
        digests = list(
            compose.iter_compose(
                store, config, now=NOW, since=NOW - dt.timedelta(days=1), limit=10, session=session
            )
        )
        print(f"{len(digests)} digests in {time.perf_counter() - began:.1f} s; {memory()}")
        pages = ProfileCache(db, wait=120, session=session if shared else None)
        reader = config.subscribers[0]
        began = time.perf_counter()
        learned = pages.terms(
            store,
            reader,
            override=(None, None),
            votes=store.votes([reader.id]),
            now=NOW,
            scope=corpus_scope(store, config),
        )
        pages.close(5)
        print(
            f"profile page ({'shared' if shared else 'own'} corpus) ready={learned.current} in "
            f"{time.perf_counter() - began:.1f} s; {memory()}"
        )
    db.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
