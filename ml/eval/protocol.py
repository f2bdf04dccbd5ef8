"""The evaluation protocol: views, held-out truths, user segments, and real-vs-synthetic comparisons.

Two views of the same held-out purchases:

* ``repeat``: every held-out item counts, already-bought ones included ("buy again");
* ``discover``: items already in the user's history are left out of both the lists and the truth.

Pure functions over interactions and metric documents; nothing here fits or loads a model.
"""

from __future__ import annotations

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


def segments(seen: sp.csr_matrix, users: np.ndarray, sparse_max: int) -> dict[str, np.ndarray]:
    """User segments over ``users``: ``sparse`` (<= ``sparse_max`` distinct history items, from the
    binary user x item history ``seen``) and ``rest``."""
    n_items = np.diff(seen.indptr)[users]
    sparse = n_items <= sparse_max
    return {"sparse": sparse, "rest": ~sparse}


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
