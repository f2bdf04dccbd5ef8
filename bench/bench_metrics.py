"""Scoring-to-metrics throughput: top_n over dense scores + every metric, as the evaluation runs it.

10,000 users x 50,000 items by default; random float32 scores stand in for a model and are made in
user batches of 2048 (generation time is reported apart); each batch is ranked with ``top_n``
(excluding ~20 history items per user), then ``evaluate`` computes every metric at k = 10 and 20.

    python bench/bench_metrics.py [--users 10000] [--items 50000]

Prints figures only (target: <= 10 s on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp


def random_binary(n_rows: int, n_cols: int, per_row: int, rng: np.random.Generator) -> sp.csr_matrix:
    rows = np.repeat(np.arange(n_rows), per_row)
    cols = rng.integers(0, n_cols, n_rows * per_row)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_cols))
    m.data[:] = 1.0
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2048)
    args = parser.parse_args()

    from ml.eval.evaluate import evaluate
    from ml.eval.ranking import top_n

    rng = np.random.default_rng(0)
    history = random_binary(args.users, args.items, 20, rng)
    truth = random_binary(args.users, args.items, 5, rng)
    popularity = np.asarray(history.sum(axis=0)).ravel()
    users = np.arange(args.users)

    gen_s = rank_s = 0.0
    ids = []
    for start in range(0, args.users, args.batch):
        batch = users[start : start + args.batch]
        t = time.perf_counter()
        scores = rng.random((len(batch), args.items), dtype=np.float32)
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        ids.append(top_n(scores, 20, exclude=history[batch])[0])
        rank_s += time.perf_counter() - t
    recs = np.concatenate(ids)
    t = time.perf_counter()
    segments = {"sparse": users % 3 == 0, "rest": users % 3 != 0}
    result = evaluate(recs, truth, users, segments, ks=(10, 20), item_popularity=popularity)
    metrics_s = time.perf_counter() - t

    total = rank_s + metrics_s
    print(f"{args.users} users x {args.items} items, batches of {args.batch}")
    print(f"random scores (not counted): {gen_s:.2f} s")
    print(f"top_n:   {rank_s:.2f} s")
    print(f"metrics: {metrics_s:.2f} s  ({len(result)} groups x {len(result['overall'])} values)")
    print(f"total:   {total:.2f} s  = {args.users / total:,.0f} users/s (target <= 10 s)")
    print(f"overall ndcg@10 of random scores: {result['overall']['ndcg@10']:.5f}")


if __name__ == "__main__":
    main()
