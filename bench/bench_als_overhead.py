"""ALS fit wall time through ``ml.models.als.ALS`` vs ``implicit`` called directly, side by side.

Both fit the same BM25-weighted matrix with the same parameters and threads (BLAS limited to one
thread, implicit's own pool at its default). The wrapper's time includes building the CSR from
``Interactions`` and the BM25 weighting; the direct time starts from the weighted matrix.

    python bench/bench_als_overhead.py [--interactions PATH.parquet] [--repeats 2]

``PATH.parquet`` holds an Interactions frame (user_idx, item_idx, ts, weight). Prints figures only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def random_interactions(n_users: int, n_items: int, nnz: int, seed: int = 0):
    """About ``nnz`` distinct (user, item) pairs, power-law-ish: popular items and heavy users dominate."""
    from ml.data.interactions import Interactions

    rng = np.random.default_rng(seed)
    draws = 3 * nnz
    users = np.minimum((rng.pareto(1.5, draws) * n_users / 10).astype(np.int64), n_users - 1)
    items = np.minimum((rng.pareto(1.2, draws) * n_items / 20).astype(np.int64), n_items - 1)
    keys = np.unique(rng.permutation(n_users)[users] * n_items + rng.permutation(n_items)[items])
    keys = rng.choice(keys, min(nnz, len(keys)), replace=False)
    return Interactions.from_arrays(
        keys // n_items, keys % n_items, np.arange(len(keys)), n_users=n_users, n_items=n_items
    )


def load_interactions(path: str):
    from ml.data.interactions import Interactions

    frame = pd.read_parquet(path)
    return Interactions.from_arrays(
        frame["user_idx"],
        frame["item_idx"],
        frame.get("ts"),
        frame.get("weight"),
        n_users=int(frame["user_idx"].max()) + 1,
        n_items=int(frame["item_idx"].max()) + 1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", help="parquet of an Interactions frame (default: random)")
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=4_000)
    parser.add_argument("--nnz", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import implicit.als
    from threadpoolctl import threadpool_limits

    from ml.models.als import ALS

    data = (
        load_interactions(args.interactions)
        if args.interactions
        else random_interactions(args.users, args.items, args.nnz)
    )
    params = dict(factors=64, regularization=0.05, iterations=20, alpha=2.0)
    wrapper = ALS(**params, seed=42, use_gpu=False)
    t = time.perf_counter()
    weighted = wrapper.weight(data.csr(), fit=True)
    weight_s = time.perf_counter() - t
    print(
        f"matrix: {weighted.shape[0]} users x {weighted.shape[1]} items, {weighted.nnz} nnz "
        f"(weighting {weight_s:.3f} s)"
    )

    wrapper_s, direct_s = [], []
    for _ in range(args.repeats):  # alternate so drift hits both equally
        t = time.perf_counter()
        ALS(**params, seed=42, use_gpu=False).fit(data)
        wrapper_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        with threadpool_limits(1, "blas"):
            model = implicit.als.AlternatingLeastSquares(**params, random_state=42, use_gpu=False)
            model.fit(weighted, show_progress=False)
        direct_s.append(time.perf_counter() - t)

    w, d = min(wrapper_s), min(direct_s)
    print(f"{'':10s} {'best s':>8s}  all runs")
    print(f"{'wrapper':10s} {w:8.3f}  {', '.join(f'{x:.3f}' for x in wrapper_s)}")
    print(f"{'implicit':10s} {d:8.3f}  {', '.join(f'{x:.3f}' for x in direct_s)}")
    print(f"overhead: {100 * (w / d - 1):+.1f}% (target <= +10%)")


if __name__ == "__main__":
    main()
