"""Loss-based pruning of synthetic events (LLMRec's denoising, done once after a fit instead of per batch).

A *teacher* model (ALS by default) is trained on the real window plus the synthetic events; the share
of synthetic events it fits worst -- the lowest predicted preference for a purchase, which is the
highest loss under ALS's squared error ``(1 - x_u . y_i)^2`` (below 1) and under BPR's
``-log sigmoid(s_pos - s_neg)`` alike -- is dropped, on the premise that what the shop's own
co-purchase structure cannot absorb is more likely noise than signal. Real events are never pruned.
Whether it helps is what the ablation's ``*_pruned`` arms measure against their unpruned arm.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.data.interactions import ITEM_IDX, USER_IDX, Interactions
from ml.models import registry
from ml.models.augmented import AugmentedHistory
from ml.models.base import Recommender
from ml.synth.events import as_interactions

USER_BLOCK = 2048  # users scored at once (bounds memory to USER_BLOCK x n_items floats)


def als_teacher(settings: Settings) -> Callable[[], Recommender]:
    """The pruned arms' teacher: makes an unfitted ALS configured as ``models.als``."""
    return lambda: registry.make_model("als", settings.models)


def teacher_scores(events: pd.DataFrame, train: Interactions, teacher: Recommender) -> np.ndarray:
    """Each synthetic event's predicted preference under ``teacher`` fitted on ``train`` plus ``events``.

    Args:
        events: synthetic events over ``train``'s universe (``user_idx``, ``item_idx``, ``ts``, ``weight``,
            ``context_only``).
        train: the real training window.
        teacher: an unfitted model (ALS: its score is ``x_u . y_i``).
    Returns:
        The score of each row of ``events``, in its order.
    """
    model = AugmentedHistory(teacher, as_interactions(events, train.n_users, train.n_items)).fit(train)
    users = events[USER_IDX].to_numpy()
    items = events[ITEM_IDX].to_numpy()
    unique = np.unique(users)
    predicted = np.empty(len(events), np.float64)
    for start in range(0, len(unique), USER_BLOCK):
        block = unique[start : start + USER_BLOCK]
        scores = np.asarray(model.score(block, train))
        rows = np.isin(users, block)
        predicted[rows] = scores[np.searchsorted(block, users[rows]), items[rows]]
    return predicted


def loss_pruned(
    events: pd.DataFrame, train: Interactions, share: float, teacher: Callable[[], Recommender]
) -> pd.DataFrame:
    """``events`` without the ``share`` of rows the teacher scores lowest (among equal scores, later rows go first).

    Args:
        events: synthetic events (as :func:`teacher_scores`).
        train: the real training window.
        share: in [0, 1): the fraction dropped, rounded down to whole rows.
        teacher: makes the unfitted teacher model.
    Raises:
        ValueError: a share outside [0, 1).
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the pruned share must lie in [0, 1), got {share}")
    drop = int(len(events) * share)
    if drop == 0:
        return events.copy()
    scores = teacher_scores(events, train, teacher())
    order = np.lexsort((np.arange(len(events)), -scores))  # best fitted first, earlier row first among ties
    keep = np.sort(order[: len(events) - drop])
    return events.iloc[keep].reset_index(drop=True)
