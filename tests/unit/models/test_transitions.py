"""The transition and co-purchase baselines, computed by hand on tiny sequences."""

import numpy as np
import pytest

from ml.data.interactions import Interactions
from ml.models.popularity import popularity_share
from ml.models.transitions import POPULARITY_WEIGHT, ItemKNN, MarkovChain, cosine_neighbours, transition_counts


def _events():
    # customer 0: i0, i1, i1 (a repeat: no self-transition), i2; customer 1: i1, i0
    return Interactions.from_arrays([0, 0, 0, 0, 1, 1], [0, 1, 1, 2, 1, 0], [0, 1, 2, 3, 0, 1], n_users=3, n_items=4)


def test_transitions_count_consecutive_distinct_items_per_customer():
    counts = transition_counts(_events()).toarray()
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 2] = expected[1, 0] = 1  # 0->1, 1->2 (customer 0); 1->0 (customer 1)
    np.testing.assert_array_equal(counts, expected)


def test_markov_scores_the_transitions_out_of_the_last_order():
    train = _events()
    model = MarkovChain().fit(train)
    fill = POPULARITY_WEIGHT * popularity_share(train)
    # customer 2 last bought i1 alone: P(i0 | i1) = P(i2 | i1) = 1/2
    history = Interactions.from_arrays([2], [1], [5], n_users=3, n_items=4)
    np.testing.assert_allclose(model.score(np.array([2]), history)[0], np.array([0.5, 0, 0.5, 0]) + fill, rtol=1e-6)
    # a last order of two items (same time) averages their rows: i0 -> i1 (1), i1 -> i0, i2 (1/2 each)
    basket = Interactions.from_arrays([2, 2, 2], [3, 0, 1], [1, 5, 5], n_users=3, n_items=4)
    np.testing.assert_allclose(model.score(np.array([2]), basket)[0], np.array([0.25, 0.5, 0.25, 0]) + fill, rtol=1e-6)


def test_item_cosine_keeps_the_nearest_neighbours():
    # customers {i0, i1}, {i0, i1}, {i1, i2}: cos(i0, i1) = 2 / (sqrt 2 * sqrt 3), cos(i1, i2) = 1 / sqrt 3
    seen = Interactions.from_arrays([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 1, 2], n_users=3, n_items=3).csr(binary=True)
    sims = cosine_neighbours(seen, neighbours=2).toarray()
    c01, c12 = 2 / np.sqrt(6), 1 / np.sqrt(3)
    np.testing.assert_allclose(sims, [[0, c01, 0], [c01, 0, c12], [0, c12, 0]], rtol=1e-6)
    nearest = cosine_neighbours(seen, neighbours=1).toarray()  # i1 keeps only i0
    np.testing.assert_allclose(nearest[1], [c01, 0, 0], rtol=1e-6)


def test_item_knn_sums_similarities_to_the_history():
    train = Interactions.from_arrays([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 1, 2], n_users=4, n_items=3)
    model = ItemKNN(neighbours=2).fit(train)
    history = Interactions.from_arrays([3, 3], [0, 2], n_users=4, n_items=3)  # a new customer: i0 and i2
    scores = model.score(np.array([3]), history)[0]
    fill = POPULARITY_WEIGHT * popularity_share(train)
    assert scores[1] == pytest.approx(2 / np.sqrt(6) + 1 / np.sqrt(3) + fill[1], rel=1e-6)


def test_both_save_and_load(tmp_path):
    train = _events()
    for model in (MarkovChain(smoothing=1.0).fit(train), ItemKNN(neighbours=2).fit(train)):
        model.save(tmp_path / model.name)
        loaded = type(model).load(tmp_path / model.name)
        np.testing.assert_array_equal(loaded.score(np.arange(3), train), model.score(np.arange(3), train))
