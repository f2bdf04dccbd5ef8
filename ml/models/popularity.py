"""Most-popular baselines: all-time and recent popularity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml.data.interactions import ITEM_IDX, TS, USER_IDX, Interactions
from ml.models.base import Recommender

NS_PER_DAY = 86_400 * 10**9


def distinct_users_per_item(events: Interactions) -> np.ndarray:
    """Number of distinct users with at least one event on each item (float64, length n_items)."""
    pairs = events.frame[[USER_IDX, ITEM_IDX]].drop_duplicates()
    return np.bincount(pairs[ITEM_IDX].to_numpy(), minlength=events.n_items).astype(np.float64)


class Popularity(Recommender):
    """Scores every item by its number of distinct training buyers; the same list for everyone.

    Args:
        window_days: count only events in the last ``window_days`` days before the latest training
            timestamp (``ts`` in nanoseconds since epoch); None = all time. With a window, all-time
            popularity breaks ties (it adds less than one buyer).
    """

    def __init__(self, window_days: int | None = None):
        self.window_days = window_days
        self.name = "pop" if window_days is None else "pop_recent"
        self.popularity: np.ndarray | None = None  # float32 score per item

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Popularity:
        """Count distinct users per item in ``train`` (``valid`` is unused)."""
        all_time = distinct_users_per_item(train)
        if self.window_days is None:
            scores = all_time
        else:
            ts = train.frame[TS].to_numpy()
            start = ts.max() - self.window_days * NS_PER_DAY if len(ts) else 0
            recent = Interactions(train.frame[ts > start], train.n_users, train.n_items)
            scores = distinct_users_per_item(recent) + 0.5 * all_time / (all_time.max() + 1.0)
        self.popularity = scores.astype(np.float32)
        return self

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """The popularity vector repeated for each user."""
        if self.popularity is None:
            raise RuntimeError("Popularity is not fitted")
        return np.tile(self.popularity, (len(users), 1))

    def _save(self, path: Path) -> None:
        np.save(path / "popularity.npy", self.popularity)
        (path / "params.json").write_text(json.dumps({"window_days": self.window_days}))

    @classmethod
    def _load(cls, path: Path) -> Popularity:
        model = cls(**json.loads((path / "params.json").read_text()))
        model.popularity = np.load(path / "popularity.npy")
        return model
