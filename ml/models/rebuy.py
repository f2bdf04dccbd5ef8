"""'Buy again': rank a user's own past purchases by how often (then how recently) they were bought."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ml.data.interactions import ITEM_IDX, TS, USER_IDX, Interactions
from ml.models.base import HistoryCache, Recommender
from ml.models.popularity import popularity_share

RECENCY_WEIGHT = 0.5  # < 1: recency only orders items bought equally often
POPULARITY_WEIGHT = 1e-3  # tiny: popularity only fills and tie-breaks the list


def _aggregate(history: Interactions) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per (user, item): number of events, and recency of the last one scaled to [0, 1)."""
    f = history.frame
    grouped = f.groupby([USER_IDX, ITEM_IDX], sort=False)[TS].agg(["size", "max"]).reset_index()
    users, items = grouped[USER_IDX].to_numpy(), grouped[ITEM_IDX].to_numpy()
    last = grouped["max"].to_numpy(np.float64)
    lo, hi = (last.min(), last.max()) if len(last) else (0.0, 0.0)
    recency = (last - lo) / (hi - lo + 1.0)
    shape = (history.n_users, history.n_items)
    counts = sp.csr_matrix((grouped["size"].to_numpy(np.float64), (users, items)), shape=shape)
    recent = sp.csr_matrix((recency, (users, items)), shape=shape)
    return counts, recent


class Rebuy(Recommender):
    """Score = own purchase count + 0.5 * recency of the last purchase + 1e-3 * popularity share.

    Items a user bought rank by how many times they bought them (events in ``history``), ties by the
    more recent last purchase; every other item scores below 1e-3 by global popularity (distinct
    training buyers / the maximum), so lists are always full. Scores are float32, so orderings that
    need more than ~6 significant digits are approximate. With ``filter_already_liked_items=True``
    the model degenerates to popularity: use it with repeats allowed.

    Args:
        fill: False: items the user never bought score -inf (no popularity fill; short lists), so that a
            fusion member built on it adds nothing for a user without events of their own.
    """

    name = "rebuy"

    def __init__(self, fill: bool = True) -> None:
        self.fill = fill
        self.popularity: np.ndarray | None = None  # float64, max-normalized to [0, 1]
        self._cache = HistoryCache()

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Rebuy:
        """Learn the global popularity used to fill lists (``valid`` is unused)."""
        self.popularity = popularity_share(train)
        return self

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Dense ``(len(users), n_items)`` float32 scores from the users' own events in ``history``."""
        if self.popularity is None:
            raise RuntimeError("Rebuy is not fitted")
        counts, recent = self._cache.get(history, _aggregate)
        users = np.asarray(users, dtype=np.int64)
        fill = POPULARITY_WEIGHT * self.popularity if self.fill else np.full(len(self.popularity), -np.inf)
        scores = np.tile(fill, (len(users), 1))
        if not self.fill:
            scores[np.nonzero(counts[users])] = 0.0
        own = (counts[users] + RECENCY_WEIGHT * recent[users]).tocoo()
        scores[own.row, own.col] += own.data
        return scores.astype(np.float32)

    def _save(self, path: Path) -> None:
        np.save(path / "popularity.npy", self.popularity)
        (path / "rebuy.json").write_text(json.dumps({"fill": self.fill}))

    @classmethod
    def _load(cls, path: Path) -> Rebuy:
        params = path / "rebuy.json"  # absent in models saved before it existed: they filled
        model = cls(**(json.loads(params.read_text()) if params.exists() else {}))
        model.popularity = np.load(path / "popularity.npy")
        return model
