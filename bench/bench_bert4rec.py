"""BERT4Rec and the causal SASRec: training throughput and time-to-quality on MovieLens-1M-shaped data.

Prints, per epoch, training throughput (sequences/s, masked tokens/s) and validation NDCG@10 /
Recall@10 (full ranking) against wall-clock seconds, on CPU and, when present, on CUDA (same
data, side by side). Then the test metrics of the best epoch, next to popularity and first-order
Markov baselines. Protocol: leave-one-out (each user's last item is the test target, the one
before it the validation target).

Data: a synthetic MovieLens-1M-shaped set by default (6,040 users, 3,400 items, ~1M events; lengths
drawn like ML-1M's, min 20, long tail; order from a Markov walk over item clusters with "series"
successors and popularity skew; no repeated items), or a real file with ``--events`` (CSV with
columns user_id,item_id,timestamp; e.g. ML-1M ratings converted to CSV).

Each model (``--models bert4rec,sasrec``, the default) is trained on each device; the side-by-side
table gives sequences/s, the best validation NDCG@10, the seconds to reach 95% of it and memory: the
process's peak resident memory above its size when the training started (``peak_rss_growth_mib``) and,
on CUDA, the peak allocated GPU memory.

``--blocks bert,gpt2:heads=1:feed_forward=64:activation=relu`` trains each transformer block side by side (only
the causal model takes ``gpt2`` and ``sasrec``): a block name, then any ``param=value`` of the network's shape. The
models here start from their class defaults (BERT's block), not from the platform's settings (``models.sasrec``
trains the second of those two).

Peak memory depends on the order of the runs: the first one in the process also pays one-time allocations
(SASRec, full size, BERT's block then GPT-2's: 911 and 79 MiB of growth; the other way round: 431 and 588).
Compare memory with the order swapped as well.

``--negatives 0,256,3000`` compares full-softmax cross-entropy (0) with sampled softmax against that many
uniform negatives per batch, side by side in one run (the SASRec+ paper's two losses).

Examples:
    python bench/bench_bert4rec.py --max-minutes 8
    python bench/bench_bert4rec.py --models sasrec --negatives 0,256 --max-epochs 10
    python bench/bench_bert4rec.py --models sasrec,bert4rec --loss materialised,chunked --max-epochs 3 --users 2000
    python bench/bench_bert4rec.py --models sasrec --blocks bert,gpt2:heads=1:feed_forward=64:activation=relu
    python bench/bench_bert4rec.py --events ml-1m.csv --max-minutes 60

Measured on the synthetic set (defaults: hidden 64, 2 layers, max_len 200, batch 128, lr 1e-3):
2 dedicated Xeon cores ~480 sequences/s (~11k masked tokens/s), ~15 s per epoch with validation;
one H200 (bf16) ~8-9k sequences/s. Validation NDCG@10 sits at popularity level (0.014) for ~25
epochs, then rises to ~0.11 within 5 epochs and ~0.12 by epoch 40; on a longer GPU run of the same
recipe 0.139 (0.179 excluding history) at epoch 150, still rising. Markov-1 scores 0.19 here: the
synthetic order is first-order, so treat its absolute levels as a throughput and convergence test.
SASRec with the chunked loss (its default), full size, 2 AMD EPYC cores: 329 sequences/s, 21 s per epoch with
validation, 95% of its best validation NDCG@10 after 364 s (``--models sasrec --max-minutes 15 --patience 20
--crop last --val-view discover``); at 2,000 users 300 sequences/s against 182 with the logits materialised.
Full size, 4 epochs each, the machine otherwise idle (``--models bert4rec,sasrec --loss materialised,chunked
--max-epochs 4 --patience 4 --crop last --devices cpu``): SASRec 298 against 170 sequences/s, peak memory 101 against
1,068 MiB, the same validation NDCG@10 after 95 s against 156 s; BERT4Rec 453 against 470 sequences/s (its default
stays materialised), 319 against 1,024 MiB (that first run of the process also holds one-time allocations).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scipy.sparse as sp  # noqa: E402

from ml.data.interactions import Interactions  # noqa: E402
from ml.data.split import leave_one_out_split  # noqa: E402
from ml.eval.metrics import ndcg_at_k, recall_at_k  # noqa: E402
from ml.eval.ranking import top_n  # noqa: E402


def synthetic_ml1m(
    n_users: int = 6040, n_items: int = 3400, n_events: int = 1_000_000, n_clusters: int = 40, seed: int = 0
) -> pd.DataFrame:
    """ML-1M-shaped sequences from a Markov walk over item clusters.

    Each step either follows the current cluster's "series" order (a few items ahead),
    picks a popular item of the same cluster, or moves to a neighbouring or preferred cluster.
    Users never repeat an item (as ratings). Lengths: 20 + lognormal, scaled to ``n_events``.

    Returns:
        DataFrame with columns user_id, item_id, timestamp.
    """
    rng = np.random.default_rng(seed)
    per = n_items // n_clusters
    n_items = per * n_clusters
    raw = rng.lognormal(0.0, 1.1, n_users)
    lengths = np.minimum(20 + np.round(raw * (n_events / n_users - 20) / raw.mean()).astype(int), n_items // 2)
    pop_cdf = np.cumsum(1.0 / np.arange(1, per + 1) ** 1.1)
    pop_cdf /= pop_cdf[-1]
    pop_order = np.argsort(rng.random((n_clusters, per)), axis=1)  # popularity rank -> position
    cluster_pop = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    trans = rng.dirichlet(np.full(n_clusters, 0.1), n_clusters) * 0.7 + 0.3 * cluster_pop / cluster_pop.sum()
    trans_cdf = np.cumsum(trans, axis=1)
    pref = rng.dirichlet(np.full(n_clusters, 0.3), n_users) * 0.8 + 0.2 * cluster_pop / cluster_pop.sum()
    pref_cdf = np.cumsum(pref, axis=1)

    def popular(clusters: np.ndarray) -> np.ndarray:
        rank = np.minimum(np.searchsorted(pop_cdf, rng.random(len(clusters))), per - 1)
        return clusters * per + pop_order[clusters, rank]

    def draw(cdf_rows: np.ndarray) -> np.ndarray:
        return np.minimum((cdf_rows < rng.random((len(cdf_rows), 1)) * cdf_rows[:, -1:]).sum(1), n_clusters - 1)

    seen = np.zeros((n_users, n_items), dtype=bool)
    out_u, out_i = [], []
    users = np.arange(n_users)
    current = popular(draw(pref_cdf))
    for t in range(lengths.max()):
        active = users[lengths > t]
        cur = current[active]
        if t > 0:
            cluster = cur // per
            move = rng.random(len(active))
            nxt = np.empty(len(active), np.int64)
            series = move < 0.2
            step = rng.geometric(0.4, series.sum())
            nxt[series] = cluster[series] * per + (cur[series] % per + step) % per
            same = (move >= 0.2) & (move < 0.65)
            nxt[same] = popular(cluster[same])
            jump = move >= 0.65
            by_user = rng.random(len(active)) < 0.5
            rows = np.where(by_user[jump, None], pref_cdf[active[jump]], trans_cdf[cluster[jump]])
            nxt[jump] = popular(draw(rows))
            for _ in range(20):  # no repeats: resample collisions, popular-in-cluster then anywhere
                clash = seen[active, nxt]
                if not clash.any():
                    break
                idx = np.flatnonzero(clash)
                nxt[idx] = popular(nxt[idx] // per) if _ < 10 else rng.integers(0, n_items, len(idx))
            cur = nxt
        current[active] = cur
        seen[active, cur] = True
        out_u.append(active)
        out_i.append(cur)
    u, i = np.concatenate(out_u), np.concatenate(out_i)
    ts = np.concatenate([np.full(len(a), t) for t, a in enumerate(out_u)])
    return pd.DataFrame({"user_id": u, "item_id": i, "timestamp": ts})


def leave_one_out(df: pd.DataFrame) -> tuple[Interactions, Interactions, Interactions]:
    """The platform's leave-one-out split (:func:`ml.data.split.leave_one_out_split`), indexed over all users, items."""
    df = df.astype({"user_id": str, "item_id": str})
    users, items = pd.Index(np.unique(df["user_id"])), pd.Index(np.unique(df["item_id"]))

    def part(frame: pd.DataFrame) -> Interactions:
        return Interactions.from_arrays(
            users.get_indexer(frame["user_id"]),
            items.get_indexer(frame["item_id"]),
            frame["timestamp"].to_numpy(np.int64),
            n_users=len(users),
            n_items=len(items),
        )

    return tuple(part(f) for f in leave_one_out_split(df))


def next_item_metrics(scores: np.ndarray, targets: np.ndarray, seen: list[np.ndarray] | None, k: int = 10) -> dict:
    """Full-ranking NDCG@k and Recall@k of one target per row (history excluded when ``seen``), by ``ml.eval``."""
    n_rows, n_items = scores.shape
    truth = sp.csr_matrix((np.ones(n_rows, np.float32), (np.arange(n_rows), targets)), shape=(n_rows, n_items))
    exclude = None
    if seen is not None:
        rows = np.repeat(np.arange(n_rows), [len(s) for s in seen])
        cols = np.concatenate(seen) if seen else np.empty(0, np.int64)
        exclude = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_items))
    recs, _ = top_n(scores, k, exclude=exclude)
    return {
        f"ndcg@{k}": float(ndcg_at_k(recs, truth, k).mean()),
        f"recall@{k}": float(recall_at_k(recs, truth, k).mean()),
    }


def baselines(train: Interactions, targets: Interactions, histories: list[np.ndarray]) -> dict[str, dict]:
    """Popularity and first-order Markov (item -> next item counts) on one target per user."""
    users = targets.frame.sort_values("user_idx")["user_idx"].to_numpy()
    truth = targets.frame.sort_values("user_idx")["item_idx"].to_numpy()
    pop = np.bincount(train.frame["item_idx"], minlength=train.n_items).astype(np.float32)
    counts = np.zeros((train.n_items, train.n_items), np.float32)
    for seq in train.sequences():
        np.add.at(counts, (seq[:-1], seq[1:]), 1.0)
    last = np.array([histories[u][-1] for u in users])
    out = {}
    for name, scores in (
        ("popularity", np.broadcast_to(pop, (len(users), train.n_items))),
        ("markov-1", counts[last] + 1e-6 * pop),
    ):
        seen = [histories[u] for u in users]
        out[name] = {"all": next_item_metrics(scores, truth, None), "unseen": next_item_metrics(scores, truth, seen)}
    return out


def print_epochs(label: str, epochs: list[dict]) -> None:
    print(f"\n[{label}] epoch  wall_s  train_s  seq/s  masked_tok/s  val_ndcg@10  val_repeat_recall@10")
    for e in epochs:
        print(
            f"[{label}] {e['epoch']:5d} {e['elapsed_seconds']:7.1f} {e['train_seconds']:8.1f}"
            f" {e['sequences_per_s']:6.0f} {e['masked_tokens_per_s']:13.0f} {e.get('val_ndcg@10', float('nan')):12.4f}"
            f" {e.get('val_repeat_recall@10', float('nan')):14.4f}"
        )


class PeakMemory:
    """Peak resident memory of this process while the block runs (psutil, polled every 20 ms), in MiB.

    ``growth_mib`` is the peak above the resident size at entry: what the block itself added, comparable
    between runs in one process (a later run starts from what earlier ones left resident).
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        import psutil

        self._process, self._interval = psutil.Process(), interval_s
        self._stop = threading.Event()
        self.base_mib = self.peak_mib = 0.0

    def _rss_mib(self) -> float:
        return self._process.memory_info().rss / 2**20

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mib = max(self.peak_mib, self._rss_mib())

    def __enter__(self) -> PeakMemory:
        self.base_mib = self.peak_mib = self._rss_mib()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._rss_mib())

    @property
    def growth_mib(self) -> float:
        return round(self.peak_mib - self.base_mib, 1)


def block_spec(text: str) -> tuple[str, dict]:
    """``--blocks`` entry ``name[:param=value...]`` as (name, network arguments); values are JSON or strings."""
    name, *params = text.split(":")
    shape = {"block": name}
    for param in params:
        key, _, value = param.partition("=")
        try:
            shape[key] = json.loads(value)
        except json.JSONDecodeError:
            shape[key] = value
    return text, shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, help="CSV with user_id,item_id,timestamp (default: synthetic)")
    parser.add_argument("--users", type=int, default=6040, help="synthetic users (scale down for a quick look)")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--max-minutes", type=float, default=8.0, help="training time cap per device")
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--mask-prob", type=float, default=0.2)
    parser.add_argument("--crop", choices=("random", "last"), default="random")
    parser.add_argument("--attention-dropout", type=float, default=0.0)
    parser.add_argument(
        "--val-view",
        choices=("repeat", "discover"),
        default="repeat",
        help="validation view early stopping follows (discover: history items excluded)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        help="'auto' (bf16-mixed on GPU, 32-true on CPU), '32-true', 'bf16-mixed', "
        "or a comma list to compare on each device, e.g. '32-true,bf16-mixed'",
    )
    parser.add_argument("--devices", default="auto", help="'cpu', 'cuda', 'cpu,cuda' or 'auto' (both if CUDA)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", default="bert4rec,sasrec", help="comma list of bert4rec, sasrec")
    parser.add_argument(
        "--negatives", default="0", help="comma list: 0 = full softmax, k = sampled softmax with k negatives"
    )
    parser.add_argument(
        "--loss",
        default="chunked",
        help="comma list: chunked (PyTorch's chunked linear cross-entropy on CPU, the default) or materialised "
        "(every position's logits at once), e.g. 'materialised,chunked' to compare them side by side",
    )
    parser.add_argument(
        "--blocks",
        default="bert",
        help="comma list of transformer blocks, each name[:param=value...], e.g. "
        "'bert,gpt2:heads=1:feed_forward=64:activation=relu' (gpt2: the causal model only)",
    )
    args = parser.parse_args()

    import pytorch_lightning as pl
    import torch

    from ml.models.bert4rec.model import Bert4Rec, SASRec

    classes = {"bert4rec": Bert4Rec, "sasrec": SASRec}

    t0 = time.perf_counter()
    if args.events:
        df = pd.read_csv(args.events, usecols=["user_id", "item_id", "timestamp"])
    else:
        df = synthetic_ml1m(n_users=args.users, n_events=int(1_000_000 * args.users / 6040), seed=args.seed)
    train, valid, test = leave_one_out(df)
    lengths = np.array([len(s) for s in train.sequences()])
    print(
        f"data: {train.n_users} users, {train.n_items} items, {len(df)} events "
        f"(train {len(train)}, median length {np.median(lengths):.0f}, mean {lengths.mean():.0f}, "
        f"users over max_len {np.mean(lengths > args.max_len):.0%}); prepared in {time.perf_counter() - t0:.1f}s"
    )
    history = train.concat(valid)
    val_hist, test_hist = train.sequences(), history.sequences()
    for name, res in baselines(train, valid, val_hist).items():
        print(f"baseline {name:10s} valid: all {res['all']}  unseen {res['unseen']}")
    for name, res in baselines(history, test, test_hist).items():
        print(f"baseline {name:10s} test:  all {res['all']}  unseen {res['unseen']}")

    if args.devices == "auto":
        devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    else:
        devices = args.devices.split(",")
    negatives = [int(k) for k in args.negatives.split(",")]
    losses = args.loss.split(",")
    if set(losses) - {"chunked", "materialised"}:
        parser.error(f"--loss takes chunked and/or materialised, got {args.loss!r}")
    blocks = [block_spec(b) for b in args.blocks.split(",")]
    runs = [
        (m, d, p, k, loss, block)
        for m in args.models.split(",")
        for d in devices
        for p in args.precision.split(",")
        for k in negatives
        for loss in losses
        for block in blocks
        if m == "sasrec" or block[1]["block"] != "gpt2"  # GPT-2's block is causal only
    ]
    results = {}
    for name, device, precision, k, loss, (block, shape) in runs:
        label = f"{name}/{device}" + ("" if len(args.precision.split(",")) == 1 else f"/{precision}")
        label += "" if len(negatives) == 1 else f"/neg{k}"
        label += "" if len(losses) == 1 else f"/{loss}"
        label += "" if len(blocks) == 1 else f"/{block}"

        class Live(pl.Callback):
            """One line per validation: epoch, validation NDCG@10, seconds since training started."""

            def __init__(self, label: str):
                self.label, self.started = label, time.perf_counter()

            def on_validation_end(self, trainer, pl_module):
                m = trainer.callback_metrics
                if "val_ndcg@10" in m:
                    print(f"  [{self.label}] epoch {trainer.current_epoch} val_ndcg@10 {float(m['val_ndcg@10']):.4f} "
                          f"at {time.perf_counter() - self.started:.0f}s", flush=True)  # fmt: skip

        model = classes[name](
            max_len=args.max_len, mask_prob=args.mask_prob, batch_size=args.batch_size, lr=args.lr,
            max_epochs=args.max_epochs, patience=args.patience, seed=args.seed, crop=args.crop,
            attention_dropout=args.attention_dropout, val_view=args.val_view,
            max_minutes=args.max_minutes, accelerator="gpu" if device == "cuda" else "cpu", callbacks=[Live(label)],
            precision=precision, negatives=k, chunked_loss=loss == "chunked", **shape,
        )  # fmt: skip
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with PeakMemory() as memory:
            model.fit(train, valid)
        summary = model.training_summary
        summary["peak_rss_growth_mib"] = memory.growth_mib
        if device == "cuda":
            summary["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        print_epochs(label, summary["epochs"])
        users = test.frame.sort_values("user_idx")["user_idx"].to_numpy()
        truth = test.frame.sort_values("user_idx")["item_idx"].to_numpy()
        scores = model.score(users, history)
        seen = [test_hist[u] for u in users]
        results[label] = {  # the summary carries seconds_to_95pct_of_best (lightning.time_to_quality)
            "test_all": next_item_metrics(scores, truth, None),
            "test_unseen": next_item_metrics(scores, truth, seen),
            **{k: v for k, v in summary.items() if k != "epochs"},
        }
        print(f"[{label}] summary: {results[label]}", flush=True)

    if len(results) > 1:
        print("\nside by side:")
        keys = ["sequences_per_s", "masked_tokens_per_s", "best_epoch", "best_val_ndcg@10", "best_elapsed_seconds",
                "seconds_to_95pct_of_best", "epochs_run", "stopped_by", "peak_rss_growth_mib", "cuda_peak_mib",
                "test_all", "test_unseen"]  # fmt: skip
        for key in keys:
            print(f"  {key:22s} " + "  ".join(f"{d}: {results[d].get(key)}" for d in results))


if __name__ == "__main__":
    main()
