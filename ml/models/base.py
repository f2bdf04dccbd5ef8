"""The one recommender contract every model satisfies (after ``implicit``'s RecommenderBase)."""

from __future__ import annotations

import json
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.data.interactions import Interactions


class Recommender(ABC):
    """fit / recommend / similar_items / save / load over integer user and item indices.

    ``recommend`` is batched: ``users`` is an array of user indices and the result is a pair of
    ``(len(users), n)`` arrays ``(item_ids, scores)``, best first. ``history`` holds every event
    that is known at prediction time (for a temporal split: train and validation); models that use
    sequences or repeat purchases read it, the others only use it to filter already-bought items.
    Where a model has fewer than ``n`` candidates the remaining ids are -1 with score -inf.
    """

    name: str = "base"
    batch_users: int = 2048  # users scored at once in recommend(); bounds memory to batch x n_items

    @abstractmethod
    def fit(self, train: Interactions, valid: Interactions | None = None) -> Recommender:
        """Learn from ``train``; ``valid`` (held-out next events) may drive early stopping.

        Returns:
            self
        """

    @abstractmethod
    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Dense ``(len(users), n_items)`` float32 scores; higher is better."""

    def recommend(
        self, users: np.ndarray, history: Interactions, n: int = 10, filter_already_liked_items: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for each user.

        Args:
            users: user indices.
            history: events known at prediction time.
            n: list length.
            filter_already_liked_items: exclude items in the user's history ("discover" view).
        Returns:
            (item_ids, scores), both shaped ``(len(users), n)``.
        """
        from ml.eval.ranking import top_n  # local import: eval depends on nothing in models

        users = np.asarray(users, dtype=np.int64)
        seen = None
        if filter_already_liked_items:  # built once per history: batch serving calls this per chunk of customers
            seen = self.__dict__.setdefault("_seen_cache", HistoryCache()).get(history, _binary_csr)
        ids, scores = [], []
        for start in range(0, len(users), self.batch_users):
            batch = users[start : start + self.batch_users]
            exclude = seen[batch] if seen is not None else None
            batch_ids, batch_scores = top_n(self.score(batch, history), n, exclude=exclude)
            ids.append(batch_ids)
            scores.append(batch_scores)
        if not ids:
            return np.empty((0, n), np.int64), np.empty((0, n), np.float32)
        return np.concatenate(ids), np.concatenate(scores)

    def similar_items(self, items: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items most similar to each of ``items`` (excluding itself); models may not support it."""
        raise NotImplementedError(f"{self.name} has no item similarity")

    def save(self, path: str | Path) -> None:
        """Write the fitted model into the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.json").write_text(json.dumps({"class": f"{type(self).__module__}.{type(self).__name__}"}))
        self._save(path)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a model written by :meth:`save` (any subclass, found from ``model.json``)."""
        import importlib

        path = Path(path)
        qualname = json.loads((path / "model.json").read_text())["class"]
        module, _, name = qualname.rpartition(".")
        model_cls = getattr(importlib.import_module(module), name)
        return model_cls._load(path)

    @abstractmethod
    def _save(self, path: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load(cls, path: Path) -> Recommender: ...


def _binary_csr(history: Interactions) -> sp.csr_matrix:
    return history.csr(binary=True)


class HistoryCache:
    """Remembers one value derived from the last ``history`` seen (by identity, via a weak reference).

    ``recommend`` calls ``score`` once per user batch with the same ``history``; this keeps models from
    re-aggregating all events for every batch. ``Interactions`` is immutable, so identity is enough.
    """

    def __init__(self) -> None:
        self._ref: weakref.ref | None = None
        self._value: Any = None

    def get(self, history: Interactions, build: Callable[[Interactions], Any]) -> Any:
        """Return ``build(history)``, computed once per distinct ``history`` object."""
        if self._ref is None or self._ref() is not history:
            self._value = build(history)
            self._ref = weakref.ref(history)
        return self._value
