"""Top-n selection over dense score matrices (the one ranking routine models and metrics share); lists as frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import columns as C

CHUNK_ELEMENTS = 1 << 22  # rows are ranked in chunks of ~4M scores to bound temporary memory


def top_n(scores: np.ndarray, n: int, exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n`` items of each row, best first, vectorized over rows.

    Args:
        scores: ``(n_rows, n_items)`` scores, higher is better. NaN counts as -inf. Never modified
            (masking happens on a float32 copy of a chunk of rows).
        n: list length (may exceed ``n_items``).
        exclude: optional binary CSR ``(n_rows, n_items)``; its nonzeros are set to -inf before ranking
            (e.g. items the user already has).
    Returns:
        ``(ids, top_scores)``: int64 and float32 arrays shaped ``(n_rows, n)``. Slots beyond the
        row's finite (> -inf) scores hold id -1 and score -inf. Equal scores are ordered by item id
        (which of several items tied at the cut-off gets in is arbitrary but deterministic).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {scores.shape}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if exclude is not None:
        if exclude.shape[0] != scores.shape[0]:
            raise ValueError(f"exclude has {exclude.shape[0]} rows, scores {scores.shape[0]}")
        exclude = sp.csr_matrix(exclude)
    n_rows, n_items = scores.shape
    step = max(1, CHUNK_ELEMENTS // max(n_items, 1))
    ids = np.empty((n_rows, n), np.int64)
    vals = np.empty((n_rows, n), np.float32)
    for start in range(0, n_rows, step):  # a handful of chunks, each fully vectorized
        stop = min(start + step, n_rows)
        chunk_exclude = exclude[start:stop] if exclude is not None else None
        ids[start:stop], vals[start:stop] = _top_n_chunk(scores[start:stop], n, chunk_exclude)
    return ids, vals


def _top_n_chunk(scores: np.ndarray, n: int, exclude: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
    n_rows, n_items = scores.shape
    has_nan = np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any()
    if exclude is not None or has_nan or scores.dtype != np.float32:
        scores = np.array(scores, dtype=np.float32, copy=True)
        if has_nan:
            scores[np.isnan(scores)] = -np.inf
        if exclude is not None:
            rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
            scores[rows, exclude.indices] = -np.inf

    k = min(n, n_items)
    if k == 0:
        ids = np.empty((n_rows, 0), np.int64)
    elif k < n_items:
        ids = np.argpartition(scores, n_items - k, axis=1)[:, n_items - k :]
    else:
        ids = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    vals = np.take_along_axis(scores, ids, axis=1)
    order = np.lexsort((ids, -vals), axis=1)  # by score descending, then item id
    ids = np.take_along_axis(ids, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    empty = ~(vals > -np.inf)
    ids[empty] = -1
    vals[empty] = -np.inf
    if n > k:
        ids = np.pad(ids, ((0, 0), (0, n - k)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - k)), constant_values=-np.inf)
    return ids, vals


def recommendations_frame(
    user_ids: np.ndarray, ids: np.ndarray, scores: np.ndarray, item_ids: np.ndarray
) -> pd.DataFrame:
    """Turn ``(users, n)`` id/score arrays into a long frame; empty (-1) slots are dropped."""
    n = ids.shape[1] if ids.ndim == 2 else 0
    frame = pd.DataFrame(
        {
            C.USER: np.repeat(np.asarray(user_ids, dtype=object), n),
            C.RANK: np.tile(np.arange(1, n + 1, dtype=np.int64), len(user_ids)),
            "_idx": ids.reshape(-1),
            C.SCORE: scores.reshape(-1).astype(np.float32),
        }
    )
    frame = frame[frame["_idx"] >= 0]
    frame[C.ITEM] = np.asarray(item_ids, dtype=object)[frame["_idx"].to_numpy()]
    return frame[[C.USER, C.RANK, C.ITEM, C.SCORE]].reset_index(drop=True)
