"""Item text for BERT4Rec: texts from catalog + accepted enrichment, MiniLM vectors, the text-augmented network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ml.data.interactions import Interactions
from ml.models.base import Recommender
from ml.models.bert4rec.model import Bert4Rec
from ml.models.bert4rec.network import Bert4RecNetwork
from ml.models.item_text import item_text_vectors, item_texts

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


def test_network_adds_projected_text_to_input_and_output_item_vectors():
    net = Bert4RecNetwork(n_items=4, hidden=8, layers=1, heads=2, max_len=5, text_dim=3)
    text = np.eye(4, 3, dtype=np.float32)
    net.set_item_text(text)
    table = net.item_table()
    expected = net.item_emb.weight[1:5] + net.text_proj(torch.from_numpy(text))
    torch.testing.assert_close(table[1:5], expected)
    torch.testing.assert_close(table[0], torch.zeros(8))  # padding stays zero
    with pytest.raises(ValueError, match="expected item text of shape"):
        net.set_item_text(np.zeros((3, 3)))


def test_text_augmented_model_trains_saves_and_loads_with_identical_scores(tmp_path):
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 6)
    items = rng.integers(0, 12, len(users))
    train = Interactions.from_arrays(users, items, np.tile(np.arange(6), 30), n_users=30, n_items=12)
    text = rng.normal(size=(12, 16)).astype(np.float32)
    model = Bert4Rec(hidden=16, layers=1, heads=2, max_len=8, max_epochs=2, num_threads=1, accelerator="cpu",
                     item_text=text, precision="32-true").fit(train)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.text_dim == 16
    users_all = np.arange(30)
    np.testing.assert_array_equal(model.score(users_all, train), loaded.score(users_all, train))


def test_a_catalog_without_titles_gives_no_item_text(settings):
    from ml.data.dataset import SplitData
    from ml.pipeline.training import item_text_for

    ids = np.array(["1193", "661", "914"])
    empty = pd.DataFrame(columns=["user_id", "item_id", "timestamp", "weight"])
    data = SplitData(empty, empty, empty, user_ids=np.array(["u"]), item_ids=ids)
    untitled = pd.DataFrame({"item_id": ids, "title": ids})  # what build_catalog lists for items never titled
    assert item_texts(ids, untitled) == ["", "", ""]
    assert item_text_for("bert4rec", settings, data, untitled) is None
    assert item_text_for("als", settings, data, CATALOG) is None
    titled = pd.DataFrame({"item_id": ids, "title": ["ONE FLEW OVER THE CUCKOO'S NEST", "JAMES AND THE GIANT PEACH", "MY FAIR LADY"]})
    assert item_text_for("bert4rec", settings, data, titled).shape == (3, 384)
