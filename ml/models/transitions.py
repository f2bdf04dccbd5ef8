"""Two simple, strong baselines a sequence model must beat: item-to-item transitions and co-purchase kNN.

* :class:`MarkovChain` ("markov"): a first-order item-transition model. From every customer's training
  events in time order it counts how often item ``b`` follows item ``a`` (consecutive events, ``a != b``),
  row-normalised to ``P(b | a)``; a customer is scored by the transitions out of their last order.
* :class:`ItemKNN` ("item_knn"): co-purchase item-kNN. Cosine similarity of items over the binary
  customer x item matrix, each item keeping its ``neighbours`` most similar others; a customer's score
  for an item is the sum of its similarities to the customer's distinct history items.

Both fill and tie-break lists with popularity (x 1e-3) so every list is full, and both score a customer
from whatever history they are given, new customers included.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ml.data.interactions import ITEM_IDX, TS, USER_IDX, Interactions
from ml.models.base import HistoryCache, Recommender
from ml.models.popularity import popularity_share
from ml.models.text_knn import top_neighbours

POPULARITY_WEIGHT = 1e-3  # popularity only fills and tie-breaks (transition probabilities and cosines reach 1)


def transition_counts(events: Interactions) -> sp.csr_matrix:
    """``(n_items, n_items)`` counts of item ``b`` directly following item ``a`` in a customer's events.

    Events are ordered by time (then item index, so ties order the same way every time); each pair of
    consecutive events of one customer with different items counts once.
    """
    f = events.frame.sort_values([USER_IDX, TS, ITEM_IDX], kind="stable")
    u, i = f[USER_IDX].to_numpy(), f[ITEM_IDX].to_numpy()
    pair = (u[1:] == u[:-1]) & (i[1:] != i[:-1])
    n = events.n_items
    counts = sp.csr_matrix((np.ones(int(pair.sum()), np.float64), (i[:-1][pair], i[1:][pair])), shape=(n, n))
    counts.sum_duplicates()
    return counts


def _last_orders(history: Interactions) -> sp.csr_matrix:
    """Per customer, a row that spreads weight 1 evenly over the items of their last order (latest timestamp)."""
    f = history.frame
    if not len(f):
        return sp.csr_matrix((history.n_users, history.n_items), dtype=np.float64)
    latest = f.groupby(USER_IDX)[TS].transform("max").to_numpy()
    last = f[f[TS].to_numpy() == latest].drop_duplicates([USER_IDX, ITEM_IDX])
    users, items = last[USER_IDX].to_numpy(), last[ITEM_IDX].to_numpy()
    size = np.bincount(users, minlength=history.n_users)
    weights = 1.0 / size[users]
    return sp.csr_matrix((weights, (users, items)), shape=(history.n_users, history.n_items))


class MarkovChain(Recommender):
    """First-order item transitions: score(b) = mean over the last order's items a of P(b | a), + popularity fill.

    Args:
        smoothing: added to every row's total before normalising (0: plain maximum likelihood).
    """

    name = "markov"

    def __init__(self, smoothing: float = 0.0):
        self.smoothing = smoothing
        self.transitions: sp.csr_matrix | None = None
        self.popularity: np.ndarray | None = None
        self._cache = HistoryCache()

    def fit(self, train: Interactions, valid: Interactions | None = None) -> MarkovChain:
        """Count the training transitions and the popularity fill (``valid`` is unused)."""
        counts = transition_counts(train)
        totals = np.asarray(counts.sum(axis=1)).ravel() + self.smoothing
        inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
        self.transitions = sp.csr_matrix(sp.diags(inverse) @ counts, dtype=np.float32)
        self.popularity = popularity_share(train)
        return self

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Dense ``(len(users), n_items)`` float32 scores from each customer's last order in ``history``."""
        if self.transitions is None:
            raise RuntimeError("MarkovChain is not fitted")
        last = self._cache.get(history, _last_orders)
        users = np.asarray(users, dtype=np.int64)
        scores = np.asarray((last[users] @ self.transitions).todense(), np.float64)
        scores += POPULARITY_WEIGHT * self.popularity
        return scores.astype(np.float32)

    def _save(self, path: Path) -> None:
        sp.save_npz(path / "transitions.npz", self.transitions)
        np.save(path / "popularity.npy", self.popularity)
        (path / "params.json").write_text(json.dumps({"smoothing": self.smoothing}))

    @classmethod
    def _load(cls, path: Path) -> MarkovChain:
        model = cls(**json.loads((path / "params.json").read_text()))
        model.transitions = sp.load_npz(path / "transitions.npz").tocsr()
        model.popularity = np.load(path / "popularity.npy")
        return model


def cosine_neighbours(binary: sp.csr_matrix, neighbours: int, block: int = 2048) -> sp.csr_matrix:
    """Item x item cosine similarity over a binary customer x item matrix, ``neighbours`` kept per item.

    An item is not its own neighbour; items without buyers have none. Computed ``block`` items at a time.
    """
    items = binary.T.tocsr().astype(np.float64)
    norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.csr_matrix(sp.diags(inverse) @ items)
    return top_neighbours(lambda a, b: (unit[a:b] @ unit.T).toarray(), unit.shape[0], neighbours, block)


class ItemKNN(Recommender):
    """Co-purchase item-kNN: score(i) = sum over the customer's distinct history items j of cos(i, j), + popularity.

    Args:
        neighbours: most similar items kept per item.
    """

    name = "item_knn"

    def __init__(self, neighbours: int = 100):
        self.neighbours = neighbours
        self.similar: sp.csr_matrix | None = None
        self.popularity: np.ndarray | None = None
        self._cache = HistoryCache()

    def fit(self, train: Interactions, valid: Interactions | None = None) -> ItemKNN:
        """Build the neighbour matrix from the training co-purchases (``valid`` is unused)."""
        self.similar = cosine_neighbours(train.csr(binary=True), self.neighbours)
        self.popularity = popularity_share(train)
        return self

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Dense ``(len(users), n_items)`` float32 scores from each customer's distinct history items."""
        if self.similar is None:
            raise RuntimeError("ItemKNN is not fitted")
        seen = self._cache.get(history, lambda h: h.csr(binary=True).astype(np.float32))
        users = np.asarray(users, dtype=np.int64)
        # neighbour lists are not symmetric: item i scores from the history items that list i
        scores = np.asarray((seen[users] @ self.similar).todense(), np.float64)
        scores += POPULARITY_WEIGHT * self.popularity
        return scores.astype(np.float32)

    def _save(self, path: Path) -> None:
        sp.save_npz(path / "similar.npz", self.similar)
        np.save(path / "popularity.npy", self.popularity)
        (path / "params.json").write_text(json.dumps({"neighbours": self.neighbours}))

    @classmethod
    def _load(cls, path: Path) -> ItemKNN:
        model = cls(**json.loads((path / "params.json").read_text()))
        model.similar = sp.load_npz(path / "similar.npz").tocsr()
        model.popularity = np.load(path / "popularity.npy")
        return model
