"""One model's recommendations -> every metric, overall and per user segment.

Metric names (keys of each group; also the keys of ``metrics.json``), for each ``k`` in ``ks``:

    ndcg@k, recall@k, hr@k, mrr@k, map@k   mean over the group's evaluated users (see ml.eval.metrics)
    coverage@k                              distinct items in the group's top k / n_items
    novelty@k                               mean self-information in bits (only with item_popularity)
    users                                   number of evaluated users in the group (non-empty truth)

(MLflow rejects ``@`` in metric names: ``ml.tracking.names`` maps them.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import scipy.sparse as sp

from ml.eval import metrics as m

OVERALL = "overall"
RANKING_METRICS = {
    "ndcg": m.ndcg_at_k,
    "recall": m.recall_at_k,
    "hr": m.hit_rate_at_k,
    "mrr": m.mrr_at_k,
    "map": m.map_at_k,
}


def evaluate(
    model_recs: np.ndarray,
    truth: sp.csr_matrix,
    users: np.ndarray,
    segments: Mapping[str, np.ndarray] | None = None,
    ks: Iterable[int] = (10, 20),
    item_popularity: np.ndarray | None = None,
    n_items: int | None = None,
) -> dict[str, dict[str, float | int]]:
    """Metrics of one model's top lists, overall and for each user segment.

    Args:
        model_recs: ``(len(users), >= max(ks))`` item ids, best first, -1 = empty slot; row ``i`` is
            the list of ``users[i]``.
        truth: binary CSR over the whole user universe, row ``u`` = held-out items of user ``u``
            (e.g. ``test.csr(binary=True)``); rows ``truth[users]`` are used.
        users: user indices evaluated, aligned with ``model_recs``.
        segments: name -> boolean mask over ``users`` (e.g. ``{"sparse": m, "rest": ~m}``).
        ks: cut-offs.
        item_popularity: per-item popularity counts for ``novelty@k`` (omitted when None).
        n_items: catalog size for ``coverage@k`` (default ``truth.shape[1]``).
    Returns:
        ``{"overall": {name: value}, <segment>: {name: value}, ...}``, names as in the module doc.
        Users whose truth is empty are dropped first (they have no defined metric value).
    """
    users = np.asarray(users, dtype=np.int64)
    model_recs = np.asarray(model_recs)
    ks = sorted(set(int(k) for k in ks))
    if model_recs.shape[0] != len(users):
        raise ValueError(f"model_recs has {model_recs.shape[0]} rows for {len(users)} users")
    if model_recs.ndim != 2 or model_recs.shape[1] < ks[-1]:
        raise ValueError(f"model_recs needs at least {ks[-1]} columns, got shape {model_recs.shape}")
    n_items = truth.shape[1] if n_items is None else n_items
    user_truth = sp.csr_matrix(truth)[users]
    user_truth.eliminate_zeros()
    has_truth = np.diff(user_truth.indptr) > 0

    groups = {OVERALL: np.ones(len(users), dtype=bool)}
    for name, mask in (segments or {}).items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(users),):
            raise ValueError(f"segment {name!r} mask has shape {mask.shape}, expected ({len(users)},)")
        groups[name] = mask

    result: dict[str, dict[str, float]] = {}
    for name, mask in groups.items():
        rows = np.flatnonzero(mask & has_truth)
        recs, group_truth = model_recs[rows], user_truth[rows]
        values: dict[str, float] = {}
        for k in ks:
            for metric, fn in RANKING_METRICS.items():
                values[f"{metric}@{k}"] = m.mean_over_users(fn(recs, group_truth, k)) if len(rows) else float("nan")
            values[f"coverage@{k}"] = m.catalog_coverage(recs, k, n_items)
            if item_popularity is not None:
                values[f"novelty@{k}"] = m.mean_over_users(m.novelty_at_k(recs, item_popularity, k))
        values["users"] = len(rows)
        result[name] = values
    return result


def per_user(model_recs: np.ndarray, truth: sp.csr_matrix, users: np.ndarray, name: str) -> np.ndarray:
    """One ranking metric (``ndcg@10``, ``recall@20``, ...) per evaluated user, aligned with ``users``.

    Users with empty truth get NaN (as in :mod:`ml.eval.metrics`); :func:`ml.eval.compare.compare` drops them.
    """
    metric, _, k = name.partition("@")
    if metric not in RANKING_METRICS or not k.isdigit():
        raise ValueError(f"unknown ranking metric {name!r} (one of {', '.join(RANKING_METRICS)} at a k, e.g. ndcg@10)")
    user_truth = sp.csr_matrix(truth)[np.asarray(users, dtype=np.int64)]
    return RANKING_METRICS[metric](np.asarray(model_recs), user_truth, int(k))
