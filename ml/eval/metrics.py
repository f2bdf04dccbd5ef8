"""Full-ranking top-k metrics as pure, vectorized functions with an explicit ``k``.

Common inputs:
    recs: int array ``(n_users, >= k)`` of recommended item ids, best first; -1 marks an empty slot.
        An item must not repeat within a row (``top_n`` guarantees it).
    truth: binary CSR ``(n_users, n_items)``; row ``i`` holds the held-out (relevant) items of the
        user of ``recs[i]``.
    k: cut-off; only ``recs[:, :k]`` is read.

Per-user metrics return a float64 array of length ``n_users``. A user with empty truth has no
defined value and gets NaN: callers should exclude such users before averaging (``mean_over_users``
skips NaN, and :func:`ml.eval.evaluate.evaluate` drops them and reports how many users remain).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _prepare(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """Validate shapes; return ``recs[:, :k]`` as int64 and a clean copy of ``truth`` (no explicit
    zeros, no duplicates, sorted indices)."""
    recs = np.asarray(recs)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if recs.ndim != 2 or recs.shape[1] < k:
        raise ValueError(f"recs must be 2-D with at least k={k} columns, got shape {recs.shape}")
    truth = sp.csr_matrix(truth, copy=True)
    if truth.shape[0] != recs.shape[0]:
        raise ValueError(f"truth has {truth.shape[0]} rows, recs {recs.shape[0]}")
    truth.sum_duplicates()  # also sorts indices within rows
    truth.eliminate_zeros()
    return recs[:, :k].astype(np.int64), truth


def _hits(recs: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Hit matrix for prepared inputs: (row, item) pairs become ``row * n_items + item`` keys that are
    binary-searched in the (sorted) keys of ``truth`` -- all users at once."""
    n_items = np.int64(truth.shape[1])
    if truth.nnz == 0:
        return np.zeros(recs.shape, dtype=bool)
    truth_keys = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr)) * n_items
    truth_keys += truth.indices.astype(np.int64)
    rec_keys = np.arange(recs.shape[0], dtype=np.int64)[:, None] * n_items + recs
    pos = np.minimum(np.searchsorted(truth_keys, rec_keys), len(truth_keys) - 1)
    return (recs >= 0) & (recs < n_items) & (truth_keys[pos] == rec_keys)


def _hits_and_relevant(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    recs, truth = _prepare(recs, truth, k)
    return _hits(recs, truth), np.diff(truth.indptr).astype(np.float64)


def hits_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """Boolean ``(n_users, k)``: ``hits[u, j]`` is True when ``recs[u, j]`` is in row ``u`` of ``truth``."""
    return _hits_and_relevant(recs, truth, k)[0]


def _nan_where_empty(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    values[n_rel == 0] = np.nan
    return values


def recall_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """Recall@k = |top-k ∩ truth| / |truth| per user (not capped at k; NaN for empty truth)."""
    hits, n_rel = _hits_and_relevant(recs, truth, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_empty(hits.sum(axis=1) / n_rel, n_rel)


def ndcg_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """NDCG@k with binary relevance per user.

    DCG@k = sum over positions j = 1..k of hit_j / log2(j + 1);
    IDCG@k = sum over j = 1..min(|truth|, k) of 1 / log2(j + 1); NDCG@k = DCG@k / IDCG@k
    (NaN for empty truth).
    """
    hits, n_rel = _hits_and_relevant(recs, truth, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_rel, k).astype(np.int64)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_empty(dcg / ideal, n_rel)


def hit_rate_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """HR@k = 1 when at least one of the top-k items is in truth, else 0 (NaN for empty truth)."""
    hits, n_rel = _hits_and_relevant(recs, truth, k)
    return _nan_where_empty(hits.any(axis=1), n_rel)


def mrr_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """MRR@k = 1 / (1-based position of the first hit within the top k), 0 without a hit (NaN for empty truth)."""
    hits, n_rel = _hits_and_relevant(recs, truth, k)
    first = hits.argmax(axis=1)
    rr = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)
    return _nan_where_empty(rr, n_rel)


def map_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """AP@k per user (its mean over users is MAP@k).

    AP@k = (1 / min(|truth|, k)) * sum over positions j = 1..k of P@j * hit_j, where
    P@j = (hits among the first j) / j (NaN for empty truth).
    """
    hits, n_rel = _hits_and_relevant(recs, truth, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_empty((precision * hits).sum(axis=1) / np.minimum(n_rel, k), n_rel)


def catalog_coverage(recs: np.ndarray, k: int, n_items: int) -> float:
    """Coverage@k = number of distinct items in any user's top k (ignoring -1) / ``n_items``."""
    top = np.asarray(recs)[:, :k]
    return float(len(np.unique(top[top >= 0])) / n_items) if n_items else float("nan")


def novelty_at_k(recs: np.ndarray, item_popularity: np.ndarray, k: int) -> np.ndarray:
    """Novelty@k per user: mean self-information of the user's (non-empty) top-k items, in bits.

    For item i with popularity count c_i (e.g. distinct training buyers), its popularity share is
    p_i = (c_i + 1) / (sum_j c_j + n_items) (add-one smoothing so unseen items stay finite), and its
    self-information is -log2 p_i. Users whose top k is all empty get NaN.
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    info = -np.log2((pop + 1.0) / (pop.sum() + len(pop)))
    top = np.asarray(recs)[:, :k].astype(np.int64)
    valid = top >= 0
    bits = np.where(valid, info[np.where(valid, top, 0)], 0.0)
    counts = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, bits.sum(axis=1) / counts, np.nan)


def mean_over_users(values: np.ndarray) -> float:
    """Mean of a per-user metric over users with a defined value (NaN entries skipped); NaN if none."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else float("nan")
