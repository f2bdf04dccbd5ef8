"""``make run`` and ``make replay``: the nightly DAG, end to end, in Airflow (``airflow dags test``), then a summary.

Usage::

    python -m ml.pipeline.local_run --as-of 2011-12-09 [--conf '{"models": ["als"]}']
    python -m ml.pipeline.local_run --from 2011-11-01 --to 2011-11-07 [--conf ...]   # one run per day, in order
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from ml.config import get_settings
from ml.pipeline.layout import Layout

DAG_ID = "nightly_recommender"


def airflow(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``airflow`` CLI of this virtual environment."""
    exe = Path(sys.executable).with_name("airflow")
    return subprocess.run([str(exe), *args], check=check, text=True, capture_output=True)


def ensure_pool() -> None:
    """The ``gpu`` pool BERT4Rec runs in (one slot: one GPU)."""
    airflow("pools", "set", "gpu", "1", "Slots of GPU workers (BERT4Rec, generator fine-tuning)")


def run_state(as_of: str) -> str:
    """State of the latest DAG run (what ``dags test`` just ran)."""
    out = airflow("dags", "list-runs", DAG_ID, "-o", "json").stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("[{") or ln == "[]"), "[]")
    runs = [r for r in json.loads(line) if r.get("logical_date", "").startswith(as_of)]
    runs.sort(key=lambda r: r.get("run_after") or "", reverse=True)
    return runs[0]["state"] if runs else "missing"


def main(argv: list[str] | None = None) -> int:
    """Run the DAG for ``--as-of`` (or each day from ``--from`` to ``--to``) and print each summary.

    Exits non-zero at the first run that did not succeed (later days are not run: each night builds on the last).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--as-of", default="2011-12-09")
    parser.add_argument("--from", dest="start", help="replay: the first day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="end", help="replay: the last day, included")
    parser.add_argument("--conf", default="{}", help="JSON DAG-run params (the trigger form's fields)")
    args = parser.parse_args(argv)
    if bool(args.start) != bool(args.end):
        parser.error("--from and --to go together")
    days = (
        [d.strftime("%Y-%m-%d") for d in pd.date_range(args.start, args.end, freq="D")] if args.start else [args.as_of]
    )
    if not days:
        parser.error(f"--from {args.start} is after --to {args.end}")
    ensure_pool()
    for day in days:
        if run_day(day, json.loads(args.conf)) != 0:
            return 1
    return 0


def run_day(as_of: str, params: dict) -> int:
    """One ``airflow dags test`` run of the DAG for ``as_of``; prints its state and summary."""
    conf = {"as_of": as_of, **params}
    started = time.perf_counter()
    layout = Layout.of(get_settings(), as_of)
    log_path = layout.airflow_log
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"running DAG {DAG_ID} for {as_of} (log: {log_path}) ...", flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [
                str(Path(sys.executable).with_name("airflow")),
                "dags",
                "test",
                DAG_ID,
                as_of,
                "-c",
                json.dumps(conf),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    state = run_state(as_of)
    print(f"DAG run state: {state} ({time.perf_counter() - started:.0f} s)")
    summary = layout.run.summary
    if proc.returncode != 0 or state != "success":
        print(f"the run failed; see {log_path}", file=sys.stderr)
        return 1
    print(summary.read_text() if summary.exists() else "(no summary written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
