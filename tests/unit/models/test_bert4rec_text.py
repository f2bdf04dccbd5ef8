"""BERT4Rec with item text: the text-augmented network and its round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.data.interactions import Interactions
from ml.models.base import Recommender
from ml.models.bert4rec.model import Bert4Rec
from ml.models.bert4rec.network import Bert4RecNetwork


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
    model = Bert4Rec(
        hidden=16,
        layers=1,
        heads=2,
        max_len=8,
        max_epochs=2,
        num_threads=1,
        accelerator="cpu",
        item_text=text,
        precision="32-true",
    ).fit(train)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.text_dim == 16
    users_all = np.arange(30)
    np.testing.assert_array_equal(model.score(users_all, train), loaded.score(users_all, train))
