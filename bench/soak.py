"""The soak of tests/test_soak.py, run longer: prints its figures as JSON.

    .venv/bin/python bench/soak.py [--events 10000] [--seconds 120]

Needs a Pub/Sub emulator (PUBSUB_EMULATOR_HOST, else Google's pstest built from Debian's Go
sources, as ./dev test installs them). Postgres is an embedded cluster of its own (it is
restarted during the run). Exits 1 if anything was lost or left unacknowledged.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.local import pubsub_emulator
from ledger.writer_status import status
from tests.conftest import expected_rows, ledger_rows
from tests.soak import Soak, expected_rejections, figures_json, rejections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("ledger").setLevel(logging.ERROR)  # the faults make the logs loud
    emulator = pubsub_emulator.start()
    try:
        soak = Soak(Path(tempfile.mkdtemp()), emulator.host, args.events, args.seconds, args.seed)
        with soak.running():
            events = soak.run()
            soak.finish()
            figures = soak.figures
            figures.drifted_rows = soak.drift()
            equal = ledger_rows(soak.db) == expected_rows(events)
            stored = soak.db.run(lambda s: {r[0] for r in s.run("SELECT id FROM oasis_events")})
            figures.lost = sum(1 for e in events if e["id"] not in stored)
            state = soak.db.run(status)["status"]
            recorded = {(source, i) for source, i, _ in rejections(soak.db) if i}
            print(figures_json(figures))
            ok = {
                "ledger equals the reference fold": equal,
                "verify clean": figures.drifted_rows == 0,
                "nothing lost": figures.lost == 0,
                "offset at the head": state["backlog"] == 0 and state["lag_seconds"] == 0,
                "each unreadable event recorded once per path": recorded
                == expected_rejections(events),
                "nothing left unacknowledged": figures.unacknowledged_left == 0,
                "every message's last answer a 2xx": all(
                    200 <= c < 300 for c in soak.final_answers.values()
                ),
            }
            for check, held in ok.items():
                print(f"{'ok  ' if held else 'FAIL'} {check}")
            return 0 if all(ok.values()) else 1
    finally:
        emulator.stop()


if __name__ == "__main__":
    raise SystemExit(main())
