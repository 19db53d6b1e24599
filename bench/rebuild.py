"""Online rebuild against the rebuild it replaced, and one task's rebuild, in one run.

    .venv/bin/python bench/rebuild.py [--events 1000000] [--vtids 10000]

Loads a realistic log (bench/sweep_throughput.py's LOAD) into a throw-away schema, sweeps it,
then measures:
  * the online rebuild (`ledger.rebuild.rebuild`): the log folded into a temporary shadow, the
    difference applied in one transaction;
  * the previous rebuild: empty the rows the writer made, rewind the offset, sweep the whole
    log again (readers see the ledger empty meanwhile), as `rebuild` did before;
  * `rebuild --vtid` of one task on the same log (`ledger.rebuild.rebuild_one`), 20 times.
For each: seconds, and the peak RSS of this process (the log never passes through it).
Uses DATABASE_URL, else the local server at 127.0.0.1:5432/test, else an embedded Postgres.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sweep_throughput import Schema, server_url  # noqa: E402

from ledger import projection_offsets, rebuild  # noqa: E402
from ledger.db import Session  # noqa: E402
from ledger.sweep import sweep_until_caught_up  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def old_rebuild(schema: Schema) -> None:
    def reset(s: Session) -> None:
        with s.transaction():
            s.run("DELETE FROM vtid_ledger WHERE fold_founding IS NOT NULL")
            projection_offsets.reset(s)

    schema.db.run(reset)
    sweep_until_caught_up(schema.db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--vtids", type=int, default=10_000)
    args = parser.parse_args()
    schema = Schema(server_url(), 50_000)
    try:
        schema.load(args.events, args.vtids)
        sweep_until_caught_up(schema.db)
        started = time.perf_counter()
        done = rebuild.rebuild(schema.db)
        online = time.perf_counter() - started
        rss_online = peak_rss_mb()
        started = time.perf_counter()
        old_rebuild(schema)
        previous = time.perf_counter() - started
        times = []
        for i in range(20):
            vtid = f"VTID-{(i * 7919) % args.vtids:05d}"
            started = time.perf_counter()
            rebuild.rebuild_one(schema.db, vtid)
            times.append(time.perf_counter() - started)
    finally:
        schema.drop()
    print(f"{args.events:,} events over {args.vtids:,} VTIDs")
    print(f"online rebuild      {online:7.1f} s  ({done.events / online:,.0f} events/s), "
          f"rows changed {done.updated + done.inserted + done.deleted}, "
          f"peak RSS of this process {rss_online:.0f} MB")  # fmt: skip
    print(f"previous rebuild    {previous:7.1f} s  (ledger empty meanwhile)")
    print(f"ratio online/previous {online / previous:5.2f}x")
    print(f"rebuild --vtid      p50 {statistics.median(times) * 1000:6.1f} ms, "
          f"max {max(times) * 1000:6.1f} ms over 20 tasks")  # fmt: skip


if __name__ == "__main__":
    main()
