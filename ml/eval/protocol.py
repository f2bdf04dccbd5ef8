"""The evaluation protocol: views, held-out truths, user segments, and real-vs-synthetic comparisons.

Two views of the same held-out purchases:

* ``repeat``: every held-out item counts, already-bought ones included ("buy again");
* ``discover``: items already in the user's history are left out of both the lists and the truth.

Pure functions over interactions and metric documents; nothing here fits or loads a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ml.data.interactions import Interactions

VIEWS = {"repeat": False, "discover": True}  # view -> exclude items the user already has
SEGMENTS = ("overall", "sparse", "rest")


def view_truths(target: Interactions, history: Interactions) -> dict[str, sp.csr_matrix]:
    """Held-out truth per view: ``repeat`` = all target items; ``discover`` = those not in history."""
    truth = target.csr(binary=True)
    new = sp.csr_matrix(truth - truth.multiply(history.csr(binary=True)))
    new.eliminate_zeros()
    return {"repeat": truth, "discover": new}


def users_with_truth(truth: sp.csr_matrix) -> np.ndarray:
    """Row indices with at least one held-out item."""
    return np.flatnonzero(np.diff(truth.indptr) > 0)


def segments(
    seen: sp.csr_matrix, users: np.ndarray, sparse_max: int, bucket_edges: Sequence[int] = ()
) -> dict[str, np.ndarray]:
    """User segments over ``users`` by their number of distinct history items (binary user x item ``seen``).

    ``sparse`` (<= ``sparse_max`` items) and ``rest``; and with ``bucket_edges`` (e.g. ``[1, 2, 4, 8, 16]``)
    one segment per bucket of history length: ``history_1``, ``history_2-3``, ``history_4-7``,
    ``history_8-15``, ``history_16+`` (see :func:`bucket_names`).
    """
    return length_segments(np.diff(seen.indptr)[users], sparse_max, bucket_edges)


def length_segments(n_items: np.ndarray, sparse_max: int, bucket_edges: Sequence[int] = ()) -> dict[str, np.ndarray]:
    """:func:`segments` from each user's number of distinct history items."""
    n_items = np.asarray(n_items)
    sparse = n_items <= sparse_max
    out = {"sparse": sparse, "rest": ~sparse}
    edges = list(bucket_edges)
    for name, low, high in zip(bucket_names(edges), edges, edges[1:] + [None]):
        out[name] = (n_items >= low) & (n_items < high if high is not None else True)
    return out


def bucket_names(edges: Sequence[int]) -> list[str]:
    """Names of the buckets that start at each edge: ``[1, 2, 4]`` -> history_1, history_2-3, history_4+."""
    edges = list(edges)
    names = []
    for low, high in zip(edges, edges[1:] + [None]):
        if high is None:
            names.append(f"history_{low}+")
        elif high - low == 1:
            names.append(f"history_{low}")
        else:
            names.append(f"history_{low}-{high - 1}")
    return names


def variant_uplift(models: dict, pairs: dict[str, str], metrics: tuple[str, ...] = ("ndcg@10", "recall@10")) -> dict:
    """For each (variant, base) pair present in ``models``: the base's value, the variant's and their difference.

    Args:
        models: ``metrics.json``'s ``models`` section (``{key: {"views": {view: {segment: {metric: v}}}}}``).
        pairs: ``{variant key: base key}``, e.g. ``{"als_synth": "als"}``.
        metrics: which metrics to compare.
    Returns:
        ``{base: {view: {segment: {metric: {"real", "real_synthetic", "delta"}}}}}`` over the
        ``overall`` and ``sparse`` segments.
    """
    out = {}
    for key, base in pairs.items():
        if key not in models or base not in models:
            continue
        out[base] = {
            view: {
                seg: {
                    m: {
                        "real": models[base]["views"][view][seg][m],
                        "real_synthetic": vals[m],
                        "delta": vals[m] - models[base]["views"][view][seg][m],
                    }
                    for m in metrics
                }
                for seg, vals in result.items()
                if seg in ("overall", "sparse")
            }
            for view, result in models[key]["views"].items()
        }
    return out
