"""The refit for serving: what each view's saved model holds (the new-product slot of ``serve.new_product_slot``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml import columns as C
from ml.models.base import Recommender
from ml.models.fusion import Fusion
from ml.pipeline.publish import full_data, refit


def _events() -> pd.DataFrame:
    # p1 and p5 bought by 6 customers each (d bought p1, not p5), p2 by 2, p3 by 1: with at most 5 buyers,
    # p2 and p3 are the new products
    users = ["a", "b", "c", "d", "e", "f"] + ["a", "b", "c", "e", "f", "g"] + ["a", "b", "c"]
    items = ["p1"] * 6 + ["p5"] * 6 + ["p2", "p2", "p3"]
    days = pd.to_datetime(["2011-11-01"] * 6 + ["2011-11-02"] * 6 + ["2011-11-20", "2011-11-21", "2011-11-25"])
    return pd.DataFrame({C.USER: users, C.ITEM: items, C.TIMESTAMP: days, C.WEIGHT: 1.0})


def test_without_a_slot_a_plain_model_serves_both_views_from_one_folder(settings, tmp_path):
    data = full_data(_events(), None, "2011-11-30", None)
    paths = refit({"model": "pop"}, data, settings, None, tmp_path)
    assert paths == {"repeat": tmp_path / "model", "discover": tmp_path / "model"}


def test_the_slot_goes_into_the_discover_view_only_with_the_refits_new_products(settings, tmp_path):
    slotted = settings.with_overrides({"serve": {"new_product_slot": "newest", "new_product_position": 1}})
    data = full_data(_events(), None, "2011-11-30", None)
    paths = refit({"model": "pop"}, data, slotted, None, tmp_path)
    assert paths == {"repeat": tmp_path / "model", "discover": tmp_path / "discover"}
    assert type(Recommender.load(paths["repeat"])).__name__ == "Popularity"
    discover = Recommender.load(paths["discover"])
    assert isinstance(discover, Fusion) and set(discover.members) == {"pop", "newest"}
    assert discover.weights == {"pop": 1.0}  # the slot's member adds nothing to the sum
    new = dict(zip(data.item_ids, discover.slot.items))
    assert (discover.slot.member, discover.slot.position) == ("newest", 1)
    assert new == {"p1": False, "p5": False, "p2": True, "p3": True}
    # customer d bought p1 only: popularity lists p5 (6 buyers), p2 (2), p3 (1); newest scores a product first
    # sold in its window 1 + buyers, so its best new product is p2 (3, against p3's 2), which takes rank 1
    ids, _ = discover.recommend(np.array([list(data.user_ids).index("d")]), data.history, n=3)
    assert [data.item_ids[i] for i in ids[0]] == ["p2", "p5", "p3"]
