"""Cold start: `import main` in a fresh interpreter against a bare `import functions_framework`,
interleaved so both see the same machine state. Goal: at most 1.5x.

    .venv/bin/python bench/cold_start.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def once(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    bare, ours = [], []
    for _ in range(args.runs):
        bare.append(once("import functions_framework"))
        ours.append(once("import main"))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"import functions_framework  {b * 1000:7.1f} ms (median of {args.runs})")
    print(f"import main                 {o * 1000:7.1f} ms")
    print(f"ratio                       {o / b:7.2f}x   (goal <= 1.5x)")


if __name__ == "__main__":
    main()
