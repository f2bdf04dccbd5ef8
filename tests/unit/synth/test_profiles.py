"""User profiles: hand-computed interests, price band, buyer type, basket size and recency."""

from __future__ import annotations

import pandas as pd
import pytest

from ml import columns as C
from ml.synth.profiles import PROFILE_COLUMNS, build_profiles

CUT = pd.Timestamp("2011-08-01")


def test_profiles_from_a_hand_made_history():
    train = pd.DataFrame(
        {
            C.USER: ["g", "g", "g", "h", "h"],
            C.ITEM: ["card", "wrap", "card2", "mug", "candle"],
            C.TIMESTAMP: pd.to_datetime(
                ["2011-07-01 10:00", "2011-07-01 10:00", "2011-07-21 12:00", "2011-06-01 09:00", "2011-06-01 09:00"]
            ),
        }
    )
    catalog = pd.DataFrame(
        {
            C.ITEM: ["card", "wrap", "card2", "mug", "candle"],
            C.TITLE: [
                "BIRTHDAY CARD DOGS",
                "GIFT WRAP VINTAGE",
                "CHRISTMAS CARD ROBIN",
                "ENAMEL MUG RED",
                "PILLAR CANDLE IVORY",
            ],
            C.PRICE: [0.4, 0.4, 0.5, 2.5, 4.0],
        }
    )
    items = pd.DataFrame(
        {
            C.ITEM: ["card2"],
            C.TITLE: ["CHRISTMAS CARD ROBIN"],
            C.CATEGORY: ["christmas"],
            "tags": [["card"]],
            C.DESCRIPTION: ["A christmas card."],
            "status": ["ok"],
            "prompt_version": ["v"],
            "generator": ["g"],
        }
    )
    p = build_profiles(train, catalog, items, CUT).set_index(C.USER)
    assert list(p.reset_index().columns) == PROFILE_COLUMNS
    g, h = p.loc["g"], p.loc["h"]
    assert (g.n_orders, g.n_items, g.mean_basket_size) == (2, 3, 1.5)
    assert g.recency_days == pytest.approx((CUT - pd.Timestamp("2011-07-21 12:00")).total_seconds() / 86400, abs=0.1)
    assert g.buyer_type == "gift" and h.buyer_type == "home"
    assert g.price_band == "low" and h.price_band == "high"
    assert "christmas" in g.top_categories and "stationery and cards" in g.top_categories
    assert g.top_keywords[0] == "card"
    assert "gift buyer" in g.profile
