"""Contract every Recommender passes (after implicit's tests/recommender_base_test.py).

A model's test class inherits ``RecommenderContract`` and supplies only ``_get_model()``; class flags
switch off the checks a model cannot meet by design (e.g. popularity is not personalised).

The fixture: 3 blocks of 20 users x 10 items; every user bought 6 of their block's 10 items (some
twice), nothing outside the block. User 60 has no events at all (a cold user).

The *wide* fixture is what a nightly cut gives a model: the same training events over a universe
with one more customer (61, unknown at training, whose first order of three block-0 items is in the
history it is scored from) and two more items (30, 31: listed, never bought in training).
"""

from __future__ import annotations

import numpy as np
import pytest

from ml.data.interactions import Interactions
from ml.models.base import Recommender

N_BLOCKS, USERS_PER_BLOCK, ITEMS_PER_BLOCK, SEEN_PER_USER = 3, 20, 10, 6
N_USERS = N_BLOCKS * USERS_PER_BLOCK + 1  # + one cold user
N_ITEMS = N_BLOCKS * ITEMS_PER_BLOCK
COLD_USER = N_USERS - 1
NEW_USER, WIDE_USERS, WIDE_ITEMS = N_USERS, N_USERS + 1, N_ITEMS + 2
NEW_USER_ORDER = np.array([0, 3, 7])  # block-0 items of the new customer's first order
DAY_NS = 86_400 * 10**9
T0 = 1_300_000_000 * 10**9  # 2011-03-13, in nanoseconds since epoch


def block_of_user(u: np.ndarray) -> np.ndarray:
    return np.asarray(u) // USERS_PER_BLOCK


def block_of_item(i: np.ndarray) -> np.ndarray:
    return np.asarray(i) // ITEMS_PER_BLOCK


def block_interactions(seed: int = 0) -> Interactions:
    """The block-structured fixture described in the module docstring."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(N_BLOCKS * USERS_PER_BLOCK):
        start = block_of_user(u) * ITEMS_PER_BLOCK
        chosen = start + rng.choice(ITEMS_PER_BLOCK, SEEN_PER_USER, replace=False)
        repeats = chosen[: rng.integers(0, 3)]  # up to two items bought twice
        for i in np.concatenate([chosen, repeats]):
            users.append(u)
            items.append(i)
    ts = T0 + rng.integers(0, 90, len(users)) * DAY_NS
    return Interactions.from_arrays(users, items, ts, n_users=N_USERS, n_items=N_ITEMS)


def wide_interactions() -> tuple[Interactions, Interactions]:
    """(training events, history) of the wide fixture described in the module docstring."""
    base = block_interactions()
    train = Interactions(base.frame, WIDE_USERS, WIDE_ITEMS)
    order = Interactions.from_arrays(
        np.full(len(NEW_USER_ORDER), NEW_USER),
        NEW_USER_ORDER,
        np.full(len(NEW_USER_ORDER), T0 + 100 * DAY_NS),
        n_users=WIDE_USERS,
        n_items=WIDE_ITEMS,
    )
    return train, train.concat(order)


class RecommenderContract:
    """Mixin of contract tests; subclasses implement ``_get_model``."""

    personalised = True  # recommends the user's block first (False for popularity)
    block_filter_history = True  # the block check filters history (False: rebuy, which repeats it)
    deterministic = True
    folds_in_history = True  # scores a customer unknown at training from the history it is given
    # share of a list that must fall in the user's block; a first-order chain reads only the last order,
    # whose transitions cover part of the block (the rest of its list is the popularity fill)
    block_share = 0.95

    def _get_model(self) -> Recommender:
        raise NotImplementedError

    def _get_wide_model(self) -> Recommender:
        """The model for the wide fixture (only models sized by their inputs, e.g. item text, override it)."""
        return self._get_model()

    @pytest.fixture
    def data(self) -> Interactions:
        return block_interactions()

    @pytest.fixture
    def fitted(self, data) -> Recommender:
        return self._get_model().fit(data)

    @pytest.fixture
    def users(self) -> np.ndarray:
        return np.arange(N_USERS)

    def test_fit_returns_self(self, data):
        model = self._get_model()
        assert model.fit(data) is model

    def test_score_is_dense_float32_per_user_and_item(self, fitted, data):
        scores = fitted.score(np.array([0, 25, COLD_USER]), data)
        assert scores.shape == (3, N_ITEMS)
        assert scores.dtype == np.float32

    def test_recommend_returns_n_columns_best_first(self, fitted, data, users):
        ids, scores = fitted.recommend(users, data, n=5)
        assert ids.shape == scores.shape == (N_USERS, 5)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        assert np.all(np.diff(scores, axis=1) <= 0)

    def test_filter_already_liked_items_removes_history(self, fitted, data, users):
        ids, _ = fitted.recommend(users, data, n=10, filter_already_liked_items=True)
        seen = data.csr(binary=True)
        valid = ids >= 0
        rows = np.broadcast_to(users[:, None], ids.shape)
        assert not np.asarray(seen[rows[valid], ids[valid]]).any()

    def test_lists_have_no_duplicates(self, fitted, data, users):
        ids, _ = fitted.recommend(users, data, n=N_ITEMS, filter_already_liked_items=False)
        for row in ids:
            row = row[row >= 0]
            assert len(np.unique(row)) == len(row)

    def test_n_larger_than_catalog_pads_with_minus_one(self, fitted, data, users):
        n = N_ITEMS + 5
        ids, scores = fitted.recommend(users, data, n=n, filter_already_liked_items=True)
        assert ids.shape == (N_USERS, n)
        assert np.all(ids[:, N_ITEMS:] == -1) and np.all(scores[:, N_ITEMS:] == -np.inf)
        n_seen = np.diff(data.csr(binary=True).indptr)
        n_valid = (ids >= 0).sum(axis=1)
        assert np.all(n_valid <= N_ITEMS - n_seen)
        # -1 only after the last real item
        assert np.all(np.diff((ids < 0).astype(int), axis=1) >= 0)

    def test_cold_user_gets_a_full_list(self, fitted, data):
        ids, _ = fitted.recommend(np.array([COLD_USER]), data, n=5)
        assert np.all(ids >= 0)

    def test_save_load_roundtrip_gives_identical_recommendations(self, fitted, data, users, tmp_path):
        fitted.save(tmp_path / "model")
        loaded = Recommender.load(tmp_path / "model")
        assert type(loaded) is type(fitted)
        before = fitted.recommend(users, data, n=10)
        after = loaded.recommend(users, data, n=10)
        np.testing.assert_array_equal(before[0], after[0])
        np.testing.assert_allclose(before[1], after[1], rtol=1e-5, atol=1e-6)  # scores near zero: float32 rounding

    def test_same_seed_same_recommendations(self, data, users):
        if not self.deterministic:
            pytest.skip("model is not deterministic")
        first = self._get_model().fit(data).recommend(users, data, n=10)
        second = self._get_model().fit(data).recommend(users, data, n=10)
        np.testing.assert_array_equal(first[0], second[0])

    def test_recovers_block_structure(self, fitted, data):
        if not self.personalised:
            pytest.skip("model is not personalised")
        users = np.arange(N_BLOCKS * USERS_PER_BLOCK)
        n = ITEMS_PER_BLOCK - SEEN_PER_USER if self.block_filter_history else SEEN_PER_USER
        ids, _ = fitted.recommend(users, data, n=n, filter_already_liked_items=self.block_filter_history)
        in_block = block_of_item(ids) == block_of_user(users)[:, None]
        assert np.all(ids >= 0)
        assert in_block.mean() >= self.block_share, f"only {in_block.mean():.0%} of recommendations in the user's block"
        assert (in_block[:, 0]).mean() >= 0.95, "the top item is not in the user's block"

    def test_similar_items_come_from_the_same_block(self, fitted):
        items = np.arange(N_ITEMS)
        try:
            ids, scores = fitted.similar_items(items, n=3)
        except NotImplementedError:
            pytest.skip("model has no item similarity")
        assert ids.shape == scores.shape == (N_ITEMS, 3)
        assert not np.any(ids == items[:, None])
        assert (block_of_item(ids) == block_of_item(items)[:, None]).mean() >= 0.9

    def test_ranks_a_universe_wider_than_its_training_items(self):
        train, history = wide_interactions()
        model = self._get_wide_model().fit(train)
        users = np.array([0, 25, COLD_USER, NEW_USER])
        scores = model.score(users, history)
        assert scores.shape == (len(users), WIDE_ITEMS) and scores.dtype == np.float32
        assert not np.isnan(scores).any()
        ids, _ = model.recommend(users, history, n=WIDE_ITEMS, filter_already_liked_items=False)
        assert set(ids[0]) == set(range(WIDE_ITEMS)), "every known item, bought in training or not, is ranked"

    def test_serves_a_customer_unknown_at_training_from_the_history_given(self):
        train, history = wide_interactions()
        model = self._get_wide_model().fit(train)
        ids, _ = model.recommend(
            np.array([NEW_USER]), history, n=3, filter_already_liked_items=self.block_filter_history
        )
        assert np.all((ids >= 0) & (ids < WIDE_ITEMS))
        if self.block_filter_history:
            assert not np.isin(ids, NEW_USER_ORDER).any(), "the first order counts as already bought"
        if self.personalised and self.folds_in_history:
            assert (block_of_item(ids) == 0).mean() >= 2 / 3, f"{ids} ignore the first order (block 0)"
