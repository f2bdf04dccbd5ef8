"""Item text: texts from catalog + accepted enrichment, and their MiniLM vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.text.items import item_text_vectors, item_texts

CATALOG = pd.DataFrame({
    "item_id": ["85123A", "22423", "84879", "22720"],
    "title": ["WHITE HANGING HEART T-LIGHT HOLDER", "REGENCY CAKESTAND 3 TIER", "ASSORTED COLOUR BIRD ORNAMENT",
              "SET OF 3 CAKE TINS PANTRY DESIGN"],
})  # fmt: skip
ENRICHED = pd.DataFrame({
    "item_id": ["85123A", "22423"],
    "category": ["candles & lights", "kitchen"],
    "tags": [["heart", "candle"], ["cake"]],
    "status": ["ok", "category_contradicts_title"],
})  # fmt: skip


def test_texts_follow_the_vocabulary_and_add_only_accepted_enrichment():
    texts = item_texts(["22423", "85123A", "missing"], CATALOG, ENRICHED)
    assert texts == [
        "regency cakestand 3 tier",  # its enrichment was rejected
        "white hanging heart t-light holder | candles & lights | tags: heart, candle",
        "",
    ]


def test_vectors_are_unit_length_and_place_related_titles_closer():
    vectors = item_text_vectors(["22423", "22720", "84879", "unknown"], CATALOG)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    assert not vectors[3].any()  # no title, no vector
    cake_stand, cake_tins, bird = vectors[:3]
    assert cake_stand @ cake_tins > cake_stand @ bird
