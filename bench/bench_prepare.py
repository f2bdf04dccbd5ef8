"""Time and peak memory of preparing the full bundled Online Retail data (target: <= 15 s, <= 2 GB).

Runs ``python -m ml data prepare --source online-retail`` in a child process (so its peak RSS is its
own) a few times and prints wall time, the child's peak resident memory and the row counts.

    .venv/bin/python bench/bench_prepare.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S, TARGET_GB = 15.0, 2.0


def run_once(out: Path) -> tuple[float, float]:
    """One prepare run; returns (wall seconds, peak RSS in GB of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ml", "data", "prepare", "--source", "online-retail", "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ},
    )
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak_kb, before) / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_once(Path(tmp) / "lake") for _ in range(args.repeat)]  # reruns also time the replace path
        report = json.loads((Path(tmp) / "lake" / "report.json").read_text())
    walls = [w for w, _ in results]
    peak = max(p for _, p in results)
    print(
        f"prepare full bundled data: rows_in={report['rows_in']:,} kept={report['rows_kept']:,} "
        f"quarantined={report['rows_quarantined']:,}"
    )
    print(f"wall seconds (first run, then reruns over an existing lake): {', '.join(f'{w:.1f}' for w in walls)}")
    print(f"best {min(walls):.1f} s / target {TARGET_S:.0f} s   peak RSS {peak:.2f} GB / target {TARGET_GB:.0f} GB")
    print(
        "in-process stage timings (last run): clean+publish "
        f"{report.get('clean_s')} s of {report.get('elapsed_s')} s total inside prepare()"
    )


if __name__ == "__main__":
    main()
