"""A recommender that learns from, and scores with, extra events besides the real ones (synthetic data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.data.interactions import Interactions
from ml.models.base import Recommender
from ml.models.registry import variant


class AugmentedHistory(Recommender):
    """Wraps any model so that fixed extra events (e.g. gated synthetic purchases) join its inputs.

    ``fit`` trains the inner model on ``train`` plus the extra events; ``score`` adds them to the
    history it is given, so a caller passes only real history and filters only real purchases.
    The extra events travel with the saved model, so a served model behaves as evaluated.

    Args:
        inner: the model to train (unfitted).
        extra: the extra events over the same user/item universe.
    """

    def __init__(self, inner: Recommender, extra: Interactions):
        self.inner = inner
        self.extra = extra
        self.name = variant(inner.name, synthetic=True)

    def fit(self, train: Interactions, valid: Interactions | None = None) -> AugmentedHistory:
        """Fit the inner model on ``train`` plus the extra events."""
        self.inner.fit(train.concat(self.extra), valid)
        return self

    def score(self, users, history: Interactions):
        """The inner model's scores given ``history`` plus the extra events.

        A history over more customers than the model was fitted on (new customers served from a basket,
        appended after the known ones) takes the extra events over its wider universe.
        """
        extra = self.extra
        if history.n_users > extra.n_users and history.n_items == extra.n_items:
            extra = Interactions(extra.frame, history.n_users, extra.n_items)
        return self.inner.score(users, history.concat(extra))

    def similar_items(self, items, n: int = 10):
        """Delegated to the inner model."""
        return self.inner.similar_items(items, n)

    @property
    def training_summary(self) -> dict:
        return {**(getattr(self.inner, "training_summary", None) or {}), "extra_events": len(self.extra)}

    @property
    def device(self):
        return getattr(self.inner, "device", None)

    def _save(self, path: Path) -> None:
        self.inner.save(path / "inner")
        self.extra.frame.to_parquet(path / "extra.parquet", index=False)
        pd.Series({"n_users": self.extra.n_users, "n_items": self.extra.n_items}).to_json(path / "extra.json")

    @classmethod
    def _load(cls, path: Path) -> AugmentedHistory:
        import json

        shape = json.loads((path / "extra.json").read_text())
        extra = Interactions(pd.read_parquet(path / "extra.parquet"), int(shape["n_users"]), int(shape["n_items"]))
        return cls(Recommender.load(path / "inner"), extra)
