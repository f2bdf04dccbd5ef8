"""The synthesis ablation's comparisons: every arm against real only and against its controls.

Input: a user-metrics frame as the backtest writes it (``ml.eval.backtest``) with two more columns,
``arm`` and ``seed``. Per (arm, model, cut, view, truth, user) the seeds' values are averaged first;
then each arm is compared with its baseline arm on the same model over the (cut, user) rows both
scored, customers as clusters (paired cluster bootstrap, permutation p-value).

Slices: those of the backtest (``overall``, ``known``, ``new_customers``, the history buckets,
``cold_items``) plus ``short`` -- known customers with 1..``short_max_items`` distinct items before
the cut, the primary endpoint's population.

One row per arm x baseline arm x model x slice x metric (see :data:`ROW_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml.eval.backtest import compare_paired

ROW_FIELDS = (
    "arm",
    "baseline_arm",
    "model",
    "baseline_model",
    "phase",
    "slice",
    "metric",
    "baseline",
    "value",
    "delta",
    "relative",
    "ci_low",
    "ci_high",
    "p_value",
    "n_users",
    "seeds",
    "cuts",
)
KEY = ["cut", "view", "truth", "user_id"]


def seed_means(user_metrics: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (arm, model, cut, view, truth, user): each metric averaged over the seeds run."""
    keys = ["arm", "model", *KEY, "new_customer", "history_items"]
    return user_metrics.groupby(keys, sort=False, as_index=False)[list(metrics)].mean()


def compare_arms(
    means: pd.DataFrame,
    arm: str,
    baseline_arm: str,
    model: str,
    metrics: Sequence[str],
    bucket_edges: Sequence[int],
    short_max_items: int,
    seeds: Sequence[int],
    *,
    baseline_model: str | None = None,
    cuts: Sequence[str] | None = None,
    phase: str = "all",
    views: Sequence[str] = ("discover", "repeat"),
    n_resamples: int = 2000,
    random_state: int = 0,
) -> list[dict]:
    """``arm``'s ``model`` against ``baseline_arm``'s ``baseline_model`` (default: the same model).

    Args:
        means: :func:`seed_means` output.
        cuts: only these cuts (a phase of the backtest); None = all.
    Returns:
        Rows with :data:`ROW_FIELDS` (slice = ``view/slice``); empty slices are skipped.
    """
    baseline_model = baseline_model or model
    sel = means if cuts is None else means[means["cut"].isin(list(cuts))]
    left = sel[(sel["arm"] == baseline_arm) & (sel["model"] == baseline_model)]
    right = sel[(sel["arm"] == arm) & (sel["model"] == model)]
    paired = left.merge(right[KEY + list(metrics)], on=KEY, suffixes=("_a", "_b"))
    pairs = compare_paired(
        paired,
        f"{baseline_arm}/{baseline_model}",
        f"{arm}/{model}",
        metrics,
        bucket_edges,
        n_resamples,
        random_state,
        views=views,
        short_max_items=short_max_items,
        seeds=seeds,
    )
    return [
        {
            "arm": arm,
            "baseline_arm": baseline_arm,
            "model": model,
            "baseline_model": baseline_model,
            "phase": phase,
            "slice": c.slice,
            "metric": c.metric,
            "baseline": c.a_value,
            "value": c.b_value,
            "delta": c.delta,
            "relative": c.relative,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "p_value": c.p_value,
            "n_users": c.n_users,
            "seeds": list(seeds),
            "cuts": cuts,
        }
        for c, cuts in pairs
    ]


def primary(rows: list[dict], model: str, metric: str, slice: str) -> dict[str, dict]:
    """The primary endpoint's rows by arm (against real only): ``{arm: row}``."""
    return {
        r["arm"]: r
        for r in rows
        if r["baseline_arm"] == "real" and r["model"] == model and r["metric"] == metric and r["slice"] == slice
    }


def choose_arm(rows: list[dict], model: str, metric: str, slice: str, order: list[str] | None = None) -> str | None:
    """The arm with the largest primary-endpoint delta over real only, when that delta is above zero (else None).

    Args:
        order: the arms from simplest to most elaborate; of arms with equal deltas the earliest wins (a pruned
            arm that changed nothing for these customers ties with its unpruned arm, which is then kept).
            Default: by name.
    """
    by_arm = primary(rows, model, metric, slice)
    rank = {a: i for i, a in enumerate(order or sorted(by_arm))}
    best = max(by_arm.values(), key=lambda r: (r["delta"], -rank.get(r["arm"], len(rank))), default=None)
    return best["arm"] if best is not None and best["delta"] > 0 and np.isfinite(best["delta"]) else None
