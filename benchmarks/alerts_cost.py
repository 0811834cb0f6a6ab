"""What instant alerts cost after a fetch, for every reader of a large deployment.

The 20,000-reader store of ``eval_crowd`` (real CiteULike-t libraries as votes, the minilm
vectors), copied, its 25,975 papers' first sightings spread as a month of feeds brings them:
2,000 in the last day (the fresh papers alerts look at), the rest over the 29 days before (the
history each reader's bar is set over). ``find_alerts`` for the first ``--readers`` readers,
in a fresh process, its own peak memory read from /proc. Build the store first with
``python -m benchmarks.eval_crowd --subscribers 20000 --vectors …``; compare another checkout
with ``PYTHONPATH=.:/path/to/other/src python -m benchmarks.alerts_cost``. ``--out FILE``
writes every alert (reader, paper, score, bar, reasons) to compare two checkouts' alerts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from paperwire.store import iso

OUT = Path(__file__).resolve().parent / "out"
CROWD = OUT / "crowd-20000"
NOW = dt.datetime.fromisoformat("2026-06-12T08:00:00+00:00")

RUN = """
import datetime as dt, json, sys, time
from paperwire.config import load_config
from paperwire.rank.alerts import find_alerts
from paperwire.store import Store
config = load_config(sys.argv[1])
store = Store(sys.argv[2])
readers = config.subscribers[: int(sys.argv[3])]
start, cpu = time.perf_counter(), time.process_time()
alerts = find_alerts(store, config, readers, now=dt.datetime.fromisoformat(sys.argv[4]))
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(json.dumps({"readers": len(readers), "alerts": len(alerts), "wall_s": round(wall, 1),
                  "cpu_s": round(cpu, 1), "peak_rss_mib": int(peak) // 1024}))
if sys.argv[5]:
    json.dump([(a.subscriber.id, a.pick.paper_id, a.pick.score, a.bar,
                [(r.kind, r.text, r.numbers) for r in a.pick.reasons]) for a in alerts],
              open(sys.argv[5], "w"))
"""


def month_of_feeds(source: Path, path: Path) -> None:
    """A copy of ``source`` whose papers were first seen over the month before ``NOW``, in
    place only once it is whole (an interrupted copy is never taken for a finished one)."""
    partial = path.with_suffix(".partial")
    shutil.copyfile(source, partial)
    with sqlite3.connect(partial) as db:
        rows = [r[0] for r in db.execute("select rowid from papers order by rowid")]
        seen = [
            (NOW - (dt.timedelta(hours=12) if k < 2000 else dt.timedelta(days=1 + k % 29, hours=3)))
            for k in range(len(rows))
        ]
        db.executemany(
            "update papers set first_seen = ? where rowid = ?",
            [(iso(t), rowid) for t, rowid in zip(seen, rows, strict=True)],
        )
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20000)
    parser.add_argument("--out", default="", help="write the alerts here (JSON)")
    args = parser.parse_args(argv)
    if not (CROWD / "atom.db").exists():
        raise SystemExit(f"no {CROWD / 'atom.db'}: run benchmarks.eval_crowd first")
    store = OUT / "alerts-month.db"
    if not store.exists() or store.stat().st_mtime < (CROWD / "atom.db").stat().st_mtime:
        month_of_feeds(CROWD / "atom.db", store)
    config = CROWD / "subscribers.yaml"
    cmd = [sys.executable, "-c", RUN, str(config), str(store), str(args.readers)]
    subprocess.run([*cmd, NOW.isoformat(), args.out], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
