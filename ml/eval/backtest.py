"""The backtest's protocol: per-user values of every cut, its slices, and their aggregation with intervals.

A backtest scores each model on many cuts (see ``ml.data.rolling``). Every evaluated (cut, user)
pair becomes one row of a *user-metrics* frame::

    cut, model, view, truth, user_id, new_customer, history_items, <metric>...

``truth`` is ``all`` (every scored horizon purchase of the view) or ``cold`` (only purchases of cold
items: candidates with at most ``cold_max_buyers`` buyers before the cut). The slices are masks over
those rows: ``overall``, ``known`` and ``new_customers``, the history-length buckets of known customers
(``history_1`` ... ``history_16+``, distinct items bought before the cut), and ``cold_items``.

Aggregates pool the rows of all cuts; since a customer appears in many cuts, intervals resample
customers (a cluster bootstrap, :func:`ml.eval.compare.mean_interval` and ``compare(clusters=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from ml.eval.compare import Comparison, compare, mean_interval
from ml.eval.protocol import bucket_names

ALL, COLD = "all", "cold"
SHORT = "short"  # known customers with few items (the synthesis ablation's primary population)
BASE_SLICES = ("overall", "known", "new_customers")
COLD_SLICE = "cold_items"


def restrict_items(truth: sp.csr_matrix, item_mask: np.ndarray) -> sp.csr_matrix:
    """``truth`` with only the columns where ``item_mask`` is True (same shape; other entries removed)."""
    keep = sp.diags(np.asarray(item_mask, dtype=np.float32))
    out = sp.csr_matrix(truth @ keep)
    out.eliminate_zeros()
    return out


def share_with_any(ids: np.ndarray, item_mask: np.ndarray, k: int) -> float:
    """Share of lists whose top ``k`` holds at least one item of ``item_mask`` (-1 slots never count)."""
    top = np.asarray(ids)[:, :k]
    if not len(top):
        return float("nan")
    hit = np.where(top >= 0, np.asarray(item_mask, bool)[np.maximum(top, 0)], False)
    return float(hit.any(axis=1).mean())


def user_slices(
    new_customer: np.ndarray, history_items: np.ndarray, bucket_edges: Sequence[int]
) -> dict[str, np.ndarray]:
    """Slice masks over evaluated users: ``overall``, ``known``, ``new_customers`` and the known customers'
    history-length buckets (``history_items`` = distinct items bought before the cut)."""
    new = np.asarray(new_customer, bool)
    n_items = np.asarray(history_items)
    masks = {"overall": np.ones(len(new), bool), "known": ~new, "new_customers": new}
    edges = list(bucket_edges)
    for name, low, high in zip(bucket_names(edges), edges, edges[1:] + [None]):
        masks[name] = ~new & (n_items >= low) & (n_items < high if high is not None else True)
    return masks


def slice_masks(rows: pd.DataFrame, bucket_edges: Sequence[int]) -> dict[str, np.ndarray]:
    """:func:`user_slices` over user-metrics ``rows`` (of ``truth == "all"``; ``cold_items`` is the ``cold`` rows)."""
    return user_slices(rows["new_customer"].to_numpy(bool), rows["history_items"].to_numpy(), bucket_edges)


def rows_by_slice(frame: pd.DataFrame, bucket_edges: Sequence[int], short_max_items: int | None = None):
    """(slice, rows) for every slice of one model and view: the ``all`` slices, then ``cold_items``.

    With ``short_max_items``, a ``short`` slice (known customers with 1..that many items) comes
    before ``cold_items``.
    """
    every = frame[frame["truth"] == ALL]
    for name, mask in slice_masks(every, bucket_edges).items():
        yield name, every[mask]
    if short_max_items is not None:
        items = every["history_items"].to_numpy()
        yield SHORT, every[~every["new_customer"].to_numpy(bool) & (items >= 1) & (items <= short_max_items)]
    yield COLD_SLICE, frame[frame["truth"] == COLD]


def compare_paired(
    paired: pd.DataFrame,
    a: str,
    b: str,
    metrics: Sequence[str],
    bucket_edges: Sequence[int],
    n_resamples: int,
    random_state: int = 0,
    *,
    views: Sequence[str] | None = None,
    short_max_items: int | None = None,
    seeds: Sequence[int] = (),
) -> list[tuple[Comparison, int]]:
    """B against A per view, slice and metric over paired user rows (``<metric>_a``, ``<metric>_b``).

    Customers are the clusters. ``views``: only these, in this order (default: every view present).
    Returns:
        ``(comparison, cuts)`` pairs, skipping empty slices.
    """
    by_view = dict(tuple(paired.groupby("view", sort=False)))
    out = []
    for view in by_view if views is None else [v for v in views if v in by_view]:
        for name, rows in rows_by_slice(by_view[view], bucket_edges, short_max_items):
            if not len(rows):
                continue
            for metric in metrics:
                record = compare(
                    rows[f"{metric}_a"],
                    rows[f"{metric}_b"],
                    a=a,
                    b=b,
                    metric=metric,
                    slice=f"{view}/{name}",
                    clusters=rows["user_id"].to_numpy(),
                    seeds=list(seeds),
                    n_resamples=n_resamples,
                    random_state=random_state,
                )
                out.append((record, int(rows["cut"].nunique())))
    return out


def aggregate(
    user_metrics: pd.DataFrame,
    metrics: Sequence[str],
    bucket_edges: Sequence[int],
    n_resamples: int,
    random_state: int = 0,
) -> dict:
    """Pooled means over all cuts with 95% cluster-bootstrap intervals, and the per-cut means.

    Returns:
        ``{model: {view: {slice: {"users": distinct customers, "rows": (cut, user) rows,
        <metric>: {"mean", "ci_low", "ci_high", "cut_mean", "cut_sd", "per_cut": {cut: mean},
        "per_cut_interval": {cut: [low, high]}}}}}}``; ``cut_mean`` / ``cut_sd`` are the mean and
        standard deviation of the per-cut means; a cut's interval is Student's t over its customers
        (each appears once in a cut), the pooled one a cluster bootstrap over customers.
    """
    out: dict = {}
    for (model, view), frame in user_metrics.groupby(["model", "view"], sort=False):
        view_doc = out.setdefault(model, {}).setdefault(view, {})
        for name, rows in rows_by_slice(frame, bucket_edges):
            cell: dict = {"users": int(rows["user_id"].nunique()), "rows": len(rows)}
            for metric in metrics:
                mean, low, high = mean_interval(rows[metric], rows["user_id"], n_resamples, random_state)
                by_cut = rows.groupby("cut")[metric]
                per_cut, sd, n = by_cut.mean(), by_cut.std(ddof=1), by_cut.size()
                half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)  # one row per customer in a cut
                cell[metric] = {
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "cut_mean": float(per_cut.mean()) if len(per_cut) else float("nan"),
                    "cut_sd": float(per_cut.std(ddof=1)) if len(per_cut) > 1 else float("nan"),
                    "per_cut": {str(c): float(v) for c, v in per_cut.items()},
                    "per_cut_interval": {
                        str(c): [float(v - h), float(v + h)] if n[c] > 1 else [float(v), float(v)]
                        for c, v, h in zip(per_cut.index, per_cut, half.fillna(0.0))
                    },
                }
            view_doc[name] = cell
    return out


def compare_models(
    user_metrics: pd.DataFrame,
    a: str,
    b: str,
    metrics: Sequence[str],
    bucket_edges: Sequence[int],
    n_resamples: int,
    random_state: int = 0,
) -> list[dict]:
    """B against A on every view, slice and metric, over the (cut, user) rows both scored.

    Customers are the clusters: each is resampled and swapped whole, whatever its number of cuts.
    Returns:
        :class:`~ml.eval.compare.Comparison` dicts (``slice`` = ``view/slice``), skipping empty slices.
    """
    key = ["cut", "view", "truth", "user_id"]
    cols = key + ["new_customer", "history_items", *metrics]
    left = user_metrics.loc[user_metrics["model"] == a, cols]
    right = user_metrics.loc[user_metrics["model"] == b, key + list(metrics)]
    paired = left.merge(right, on=key, suffixes=("_a", "_b"))
    pairs = compare_paired(paired, a, b, metrics, bucket_edges, n_resamples, random_state)
    return [{**record.to_dict(), "cuts": cuts} for record, cuts in pairs]
