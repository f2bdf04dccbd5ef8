"""Most-popular baselines: all-time and recent popularity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml.data.interactions import ITEM_IDX, TS, USER_IDX, Interactions
from ml.models.base import HistoryCache, Recommender

NS_PER_DAY = 86_400 * 10**9


def distinct_users_per_item(events: Interactions) -> np.ndarray:
    """Number of distinct users with at least one event on each item (float64, length n_items)."""
    pairs = events.frame[[USER_IDX, ITEM_IDX]].drop_duplicates()
    return np.bincount(pairs[ITEM_IDX].to_numpy(), minlength=events.n_items).astype(np.float64)


def popularity_share(events: Interactions) -> np.ndarray:
    """Distinct users per item divided by the largest count (float64 in [0, 1]; all zeros without events).

    The fill and tie-break several models add to their own scores.
    """
    buyers = distinct_users_per_item(events)
    return buyers / buyers.max() if buyers.max() > 0 else buyers


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


class NewestPopularity(Recommender):
    """The "newest products" control: items first sold within the last ``days`` days, most bought first.

    What a shop shows as "new in": among the items whose first event in ``history`` lies within
    ``days`` days of the latest event there, rank by distinct buyers since (plus one, so every new item
    beats every older one); the older items follow by all-time popularity (a share below 1e-3). Read from
    ``history`` at scoring time, so a model fitted last night still knows yesterday's launches; ``fit``
    only learns the popularity that fills the list.
    """

    name = "newest"

    def __init__(self, days: int = 30):
        self.days = days
        self.popularity: np.ndarray | None = None  # max-normalized distinct training buyers
        self._cache = HistoryCache()

    def fit(self, train: Interactions, valid: Interactions | None = None) -> NewestPopularity:
        """Learn the all-time popularity that orders the items that are not new (``valid`` is unused)."""
        self.popularity = popularity_share(train)
        return self

    def newest_scores(self, history: Interactions) -> np.ndarray:
        """Per item: 1 + distinct buyers for items first seen in the last ``days`` days of ``history``, else 0."""
        f = history.frame
        out = np.zeros(history.n_items, np.float64)
        if not len(f):
            return out
        first = f.groupby(ITEM_IDX, sort=False)[TS].min()
        new_items = first.index[first.to_numpy() >= f[TS].max() - self.days * NS_PER_DAY].to_numpy()
        recent = f[np.isin(f[ITEM_IDX].to_numpy(), new_items)]
        buyers = recent.drop_duplicates([USER_IDX, ITEM_IDX]).groupby(ITEM_IDX).size()
        out[buyers.index.to_numpy()] = 1.0 + buyers.to_numpy()
        return out

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """The same list for every user: new items by buyers, then the rest by popularity."""
        if self.popularity is None:
            raise RuntimeError("NewestPopularity is not fitted")
        new = self._cache.get(history, self.newest_scores)
        return np.tile((new + 1e-3 * self.popularity).astype(np.float32), (len(users), 1))

    def _save(self, path: Path) -> None:
        np.save(path / "popularity.npy", self.popularity)
        (path / "params.json").write_text(json.dumps({"days": self.days}))

    @classmethod
    def _load(cls, path: Path) -> NewestPopularity:
        model = cls(**json.loads((path / "params.json").read_text()))
        model.popularity = np.load(path / "popularity.npy")
        return model
