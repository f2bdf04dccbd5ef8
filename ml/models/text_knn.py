"""Content kNN on item text vectors: the control that can recommend a product nobody has bought yet."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ml.data.interactions import Interactions
from ml.models.base import HistoryCache, Recommender
from ml.models.popularity import popularity_share

POPULARITY_WEIGHT = 1e-3  # popularity only fills and tie-breaks the list (similarities are cosines, up to 1 each)


def top_neighbours(similarities: Callable[[int, int], np.ndarray], n: int, neighbours: int, block: int = 1024):
    """Sparse ``n x n`` item similarities keeping, per row, its ``neighbours`` largest positive entries.

    Args:
        similarities: ``(start, stop) -> dense (stop - start, n)`` similarities of those rows to every item.
        n: number of items.
        neighbours: kept per row; an item is never its own neighbour, non-positive similarities are dropped.
        block: rows computed at once (bounds memory to ``block x n``).
    """
    k = min(neighbours, max(n - 1, 0))
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        sims = np.asarray(similarities(start, stop))  # a fresh block: float32 for text vectors
        idx = np.arange(start, stop)
        sims[idx - start, idx] = -np.inf  # an item is not its own neighbour
        if k == 0:
            continue
        top = np.argpartition(sims, n - k, axis=1)[:, n - k :]
        top_vals = np.take_along_axis(sims, top, axis=1)
        keep = top_vals > 0
        rows.append(np.repeat(idx, k)[keep.ravel()])
        cols.append(top.ravel()[keep.ravel()])
        vals.append(top_vals.ravel()[keep.ravel()])
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def neighbour_matrix(vectors: np.ndarray, neighbours: int, block: int = 1024) -> sp.csr_matrix:
    """Sparse item x item cosine similarities, each row keeping its ``neighbours`` most similar other items.

    Args:
        vectors: ``(n_items, dim)`` unit-length text vectors; an all-zero row (no text) has no neighbours.
        neighbours: kept per row (negative similarities are dropped).
        block: rows computed at once (bounds memory to ``block x n_items``).
    """
    return top_neighbours(lambda a, b: vectors[a:b] @ vectors.T, len(vectors), neighbours, block)


class TextKNN(Recommender):
    """Score of item i for a user = sum over the user's distinct history items j of cos(text_i, text_j).

    Only each history item's ``neighbours`` most similar items contribute (an item-kNN over text
    rather than over co-purchases), so a product launched yesterday is recommended beside what its
    title resembles. Popularity (max-normalized distinct training buyers, times 1e-3) fills the list
    and is all a user without history gets.

    Args:
        item_text: ``(n_items, dim)`` unit-length vectors in item-index order (``ml.text.items``).
        neighbours: most similar items kept per item.
    """

    name = "text_knn"

    def __init__(self, item_text: np.ndarray, neighbours: int = 50):
        if item_text is None or not np.asarray(item_text).any():
            raise ValueError("text_knn needs item text vectors (a catalog with titles)")
        self.item_text = np.asarray(item_text, np.float32)
        self.neighbours = neighbours
        self.similar: sp.csr_matrix | None = None
        self.popularity: np.ndarray | None = None
        self._cache = HistoryCache()

    def fit(self, train: Interactions, valid: Interactions | None = None) -> TextKNN:
        """Build the neighbour matrix and the popularity fill (``valid`` is unused)."""
        if len(self.item_text) != train.n_items:
            raise ValueError(f"item_text has {len(self.item_text)} rows for {train.n_items} items")
        self.similar = neighbour_matrix(self.item_text, self.neighbours)
        self.popularity = popularity_share(train)
        return self

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """``(len(users), n_items)`` float32: summed similarities to the users' history items, plus the fill."""
        if self.similar is None:
            raise RuntimeError("TextKNN is not fitted")
        seen = self._cache.get(history, lambda h: h.csr(binary=True))
        users = np.asarray(users, dtype=np.int64)
        scores = (seen[users] @ self.similar).toarray()
        scores += POPULARITY_WEIGHT * self.popularity
        return scores.astype(np.float32)

    def similar_items(self, items: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The most text-similar items (from the kept neighbours; -1 / -inf beyond them)."""
        from ml.eval.ranking import top_n  # eval depends on nothing in models

        dense = self.similar[np.asarray(items, dtype=np.int64)].toarray()
        dense[dense == 0] = -np.inf
        return top_n(dense, n)

    def _save(self, path: Path) -> None:
        np.save(path / "item_text.npy", self.item_text)
        np.save(path / "popularity.npy", self.popularity)
        (path / "params.json").write_text(json.dumps({"neighbours": self.neighbours}))

    @classmethod
    def _load(cls, path: Path) -> TextKNN:
        model = cls(np.load(path / "item_text.npy"), **json.loads((path / "params.json").read_text()))
        model.similar = neighbour_matrix(model.item_text, model.neighbours)
        model.popularity = np.load(path / "popularity.npy")
        return model
