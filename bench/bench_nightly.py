"""The nightly DAG's wall time per task on this machine, with the embedded defaults (target: <= 15 minutes).

Runs ``make run``'s command (``python -m ml.pipeline.local_run``: one ``airflow dags test`` of
``nightly_recommender`` for the as-of date, models ``models.nightly``, synthesis with the embedded
model, the backtest of the cheap models, promotion and serving), then reads each task's start and
end from the run's log and prints a table. Run it from the repository root with the Makefile's
environment, as ``make bench-nightly`` does::

    make bench-nightly                 # the full bundled history, as-of 2011-12-09
    make bench-nightly AS_OF=2010-06-30

``--log FILE`` only reads an existing run's log (``var/runs/<day>.airflow.log``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

TARGET_S = 15 * 60
LINE = re.compile(r"^(\S+Z) .*\[DAG TEST\] (starting|end task) task_id=(\w+)")


def task_times(log: Path) -> dict[str, float]:
    """Seconds per task, from a ``dags test`` log's ``starting``/``end task`` lines (tasks run one at a time)."""
    started, out = {}, {}
    for line in log.read_text(errors="replace").splitlines():
        m = LINE.match(line)
        if not m:
            continue
        at = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
        if m.group(2) == "starting":
            started[m.group(3)] = at
        elif m.group(3) in started:
            out[m.group(3)] = (at - started.pop(m.group(3))).total_seconds()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", default="2011-12-09")
    parser.add_argument("--conf", default="{}", help="DAG-run params, as for make run")
    parser.add_argument("--log", type=Path, help="read this log instead of running the DAG")
    args = parser.parse_args(argv)
    wall = None
    log = args.log
    if log is None:
        from ml.config import get_settings
        from ml.pipeline.layout import Layout

        started = time.perf_counter()
        cmd = [sys.executable, "-m", "ml.pipeline.local_run", "--as-of", args.as_of, "--conf", args.conf]
        proc = subprocess.run(cmd)
        wall = time.perf_counter() - started
        log = Layout.of(get_settings(), args.as_of).airflow_log
        if proc.returncode != 0:
            print(f"the run failed; see {log}", file=sys.stderr)
            return 1
    times = task_times(log)
    total = sum(times.values())
    print(f"\nnightly_recommender per task ({log}):")
    for task, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {task:<18}{seconds:>8.1f} s  {seconds / total:>6.1%}")
    print(f"  {'sum of tasks':<18}{total:>8.1f} s  ({total / 60:.1f} min; target {TARGET_S / 60:.0f} min)")
    if wall is not None:
        print(f"  {'wall (with start)':<18}{wall:>8.1f} s")
    print("within target" if total <= TARGET_S else "OVER the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
