"""BERT4Rec passes the shared recommender contract."""

from __future__ import annotations

from ml.models.bert4rec.model import Bert4Rec
from tests.unit.models.recommender_contract import RecommenderContract


class TestBert4Rec(RecommenderContract):
    def _get_model(self) -> Bert4Rec:
        # tiny and CPU-only so that the contract's dozen fits stay fast; patience is large because
        # the block fixture has no order and few users, so validation NDCG is noisy
        return Bert4Rec(
            hidden=32, layers=1, heads=2, max_len=16, batch_size=16, lr=5e-3, warmup_steps=5,
            max_epochs=40, patience=40, seed=3, accelerator="cpu", num_threads=1,
        )  # fmt: skip
