"""Time of the nightly backtest: 12 weekly cuts of the cheap models on the bundled data, as the DAG runs it.

Cleans the bundled Online Retail data in memory, then backtests popularity, re-buy, ALS and their
fusion over the last 12 weeks (``eval.backtest`` defaults; the warm-up cut for fusion's weights
included) and prints the wall time of each phase and each model's fit and predict seconds.

    python bench/bench_backtest.py [--models pop,rebuy,als,fusion] [--span-days 84]

Prints figures only (target: 12 cuts of pop, rebuy, ALS and fusion in <= 120 s on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="pop,rebuy,als,fusion")
    parser.add_argument("--span-days", type=int, default=84)
    args = parser.parse_args()

    from ml.config import get_settings
    from ml.data.prepare import SourceSpec, prepare_events
    from ml.pipeline.backtest import run_backtest

    settings = get_settings().with_overrides({"eval": {"backtest": {"span_days": args.span_days}}})
    started = time.perf_counter()
    cleaned = prepare_events(SourceSpec.bundled(settings), settings)
    clean_s = time.perf_counter() - started
    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        doc = run_backtest(cleaned.interactions, cleaned.catalog, settings, models, out)
        backtest_s = time.perf_counter() - started
    print(f"cleaning (not part of the backtest): {clean_s:.1f} s")
    print(f"backtest: {len(doc['cuts'])} cuts + {len(doc['warmup_cuts'])} warm-up, {backtest_s:.1f} s wall")
    for model, t in doc["timing"].items():
        print(f"  {model:<10} fit {t['fit_seconds']:>6.1f} s  predict+metrics {t['predict_seconds']:>6.1f} s")
    spent = sum(t["fit_seconds"] + t["predict_seconds"] for t in doc["timing"].values())
    print(f"  cut building, fusion weights, intervals, files: {backtest_s - spent:.1f} s")
    print(f"target <= 120 s: {'met' if backtest_s <= 120 else 'NOT met'}")


if __name__ == "__main__":
    main()
