"""The synthetic-events frame that every strategy returns and pruning reads: its columns and conversions.

One row per synthetic event over a cut's user/item universe: ``user_idx``, ``item_idx``, ``ts`` (ns),
``weight`` (the training weight), ``context_only`` (history only, never a training target) and
``confidence`` in (0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.data.interactions import CONTEXT, ITEM_IDX, TS, USER_IDX, Interactions, W

CONFIDENCE = "confidence"
EVENT_COLUMNS = [USER_IDX, ITEM_IDX, TS, W, CONTEXT, CONFIDENCE]


def empty_events() -> pd.DataFrame:
    """A synthetic-events frame with no rows."""
    return pd.DataFrame(
        {
            USER_IDX: np.empty(0, np.int32),
            ITEM_IDX: np.empty(0, np.int32),
            TS: np.empty(0, np.int64),
            W: np.empty(0, np.float32),
            CONTEXT: np.empty(0, bool),
            CONFIDENCE: np.empty(0, np.float32),
        }
    )


def as_interactions(events: pd.DataFrame, n_users: int, n_items: int) -> Interactions:
    """Synthetic events as :class:`Interactions` (with the ``context_only`` column) over a universe."""
    return Interactions(events[[USER_IDX, ITEM_IDX, TS, W, CONTEXT]].reset_index(drop=True), n_users, n_items)
