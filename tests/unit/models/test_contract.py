"""Every model passes the shared contract; plus what is particular to each model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ml.data.interactions import Interactions
from ml.models.als import ALS
from ml.models.base import Recommender
from ml.models.fusion import Fusion, NewProductSlot, normalize_scores, rrf_contribution
from ml.models.popularity import NewestPopularity, Popularity
from ml.models.rebuy import Rebuy
from ml.models.text_knn import TextKNN, neighbour_matrix
from ml.models.transitions import ItemKNN, MarkovChain
from tests.unit.models.recommender_contract import (
    COLD_USER,
    DAY_NS,
    ITEMS_PER_BLOCK,
    N_ITEMS,
    T0,
    WIDE_ITEMS,
    RecommenderContract,
    block_interactions,
    block_of_item,
)


def small_als(seed: int = 42) -> ALS:
    return ALS(factors=4, iterations=10, regularization=0.05, seed=seed, use_gpu=False, num_threads=1)


class TestPopularity(RecommenderContract):
    personalised = False

    def _get_model(self):
        return Popularity()


class TestRecentPopularity(RecommenderContract):
    personalised = False

    def _get_model(self):
        return Popularity(window_days=30)


class TestNewestPopularity(RecommenderContract):
    personalised = False

    def _get_model(self):
        return NewestPopularity(days=30)


def block_text(n_items: int) -> np.ndarray:
    """Unit text vectors: an item's block direction plus a little item-specific noise (items past the blocks: noise)."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 0.1, (n_items, 8)).astype(np.float32)
    blocks = block_of_item(np.arange(n_items))
    known = blocks < N_ITEMS // ITEMS_PER_BLOCK
    vectors[np.flatnonzero(known), blocks[known]] += 1.0
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class TestTextKNN(RecommenderContract):
    def _get_model(self):
        return TextKNN(block_text(N_ITEMS), neighbours=10)

    def _get_wide_model(self):
        return TextKNN(block_text(WIDE_ITEMS), neighbours=10)


class TestMarkovChain(RecommenderContract):
    block_share = 0.75  # the last order's transitions fill 80% of the unseen block items on this fixture

    def _get_model(self):
        return MarkovChain()


class TestItemKNN(RecommenderContract):
    def _get_model(self):
        return ItemKNN(neighbours=10)


class TestRebuy(RecommenderContract):
    block_filter_history = False  # rebuy recommends the user's own items again

    def _get_model(self):
        return Rebuy()


class TestALS(RecommenderContract):
    def _get_model(self):
        return small_als()


class TestALSTrainedFactors(RecommenderContract):
    folds_in_history = False  # the trained factors of an unknown customer are zeros

    def _get_model(self):
        return ALS(factors=4, iterations=10, use_gpu=False, num_threads=1, user_factors="trained")


class TestFusionRRF(RecommenderContract):
    def _get_model(self):
        return Fusion({"als": small_als(), "pop": Popularity()}, weights={"als": 1.0, "pop": 0.01})


class TestFusionScore(RecommenderContract):
    def _get_model(self):
        return Fusion({"als": small_als(), "rebuy": Rebuy()}, weights={"als": 1.0, "rebuy": 0.1}, method="score")


# --- Popularity ------------------------------------------------------------------------------


def events(users, items, days, n_users=4, n_items=3) -> Interactions:
    return Interactions.from_arrays(users, items, T0 + np.asarray(days) * DAY_NS, n_users=n_users, n_items=n_items)


def test_popularity_counts_distinct_users_not_events():
    # item 0: one user buying 5 times; item 1: two users once each
    data = events([0, 0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 0, 1, 1], [0] * 7)
    model = Popularity().fit(data)
    np.testing.assert_array_equal(model.popularity, [1, 2, 0])
    assert model.name == "pop"


def test_recent_popularity_counts_only_the_window_before_the_last_event():
    # item 0: three buyers 100 days before the last event; item 1: one buyer in the last 10 days
    data = events([0, 1, 2, 3], [0, 0, 0, 1], [0, 0, 0, 100])
    recent = Popularity(window_days=30).fit(data)
    assert recent.name == "pop_recent"
    ids, _ = recent.recommend(np.array([0]), data, n=3, filter_already_liked_items=False)
    assert ids[0].tolist() == [1, 0, 2]  # item 0 still beats never-bought item 2 (all-time tie-break)
    ids, _ = Popularity().fit(data).recommend(np.array([0]), data, n=3, filter_already_liked_items=False)
    assert ids[0].tolist() == [0, 1, 2]


# --- Rebuy -----------------------------------------------------------------------------------


def test_rebuy_ranks_own_frequent_items_first_then_recent_then_popular():
    # user 0 bought item 2 three times, items 0 and 1 once each (item 1 more recently);
    # item 3 is popular with other users but never bought by user 0.
    data = events([0, 0, 0, 0, 0, 1, 2, 3], [2, 2, 2, 0, 1, 3, 3, 3], [1, 2, 3, 1, 5, 0, 0, 0], n_items=5)
    model = Rebuy().fit(data)
    ids, _ = model.recommend(np.array([0]), data, n=5, filter_already_liked_items=False)
    assert ids[0].tolist() == [2, 1, 0, 3, 4]


def test_rebuy_reads_history_given_at_prediction_time():
    train = events([0, 1], [0, 1], [0, 0])
    later = train.concat(events([0, 0], [2, 2], [5, 6]))
    model = Rebuy().fit(train)
    ids, _ = model.recommend(np.array([0]), later, n=1, filter_already_liked_items=False)
    assert ids[0, 0] == 2


def test_rebuy_without_fill_ranks_only_the_users_own_items(tmp_path):
    # user 0 bought item 2 twice and item 0 once; item 1 (bought by user 1) is popular but not user 0's
    data = events([0, 0, 0, 1], [2, 2, 0, 1], [0, 1, 2, 0])
    model = Rebuy(fill=False).fit(data)
    ids, scores = model.recommend(np.array([0, 2]), data, n=3, filter_already_liked_items=False)
    assert ids.tolist() == [[2, 0, -1], [-1, -1, -1]]  # user 2 has no events: nothing to list
    # events on days 0..2: recency of item 2's last purchase (day 1) is 1/2, of item 0's (day 2) 1
    np.testing.assert_allclose(scores[0, :2], [2.0 + 0.5 * 0.5, 1.0 + 0.5 * 1.0], rtol=1e-6)
    model.save(tmp_path)
    assert Recommender.load(tmp_path).fill is False


# --- ALS -------------------------------------------------------------------------------------


def test_als_records_cpu_device_on_a_cpu_build():
    import implicit.gpu

    model = ALS(factors=4, iterations=2).fit(block_interactions())
    assert model.device == ("gpu" if implicit.gpu.HAS_CUDA else "cpu")
    assert small_als().fit(block_interactions()).device == "cpu"


def test_als_use_gpu_true_without_cuda_fails_clearly():
    import implicit.gpu

    if implicit.gpu.HAS_CUDA:
        pytest.skip("CUDA build")
    with pytest.raises(RuntimeError, match="CUDA"):
        ALS(use_gpu=True).fit(block_interactions())


def test_bm25_transform_matches_implicit_on_the_training_matrix():
    from implicit.nearest_neighbours import bm25_weight

    x = block_interactions().csr()
    model = ALS()
    fitted = model.weight(x, fit=True)
    reference = bm25_weight(x, K1=100, B=0.8).tocsr()
    np.testing.assert_allclose(fitted.toarray(), reference.toarray(), rtol=1e-5)
    np.testing.assert_allclose(model.weight(x).toarray(), reference.toarray(), rtol=1e-4)


def test_als_recalculated_factors_follow_new_history():
    data = block_interactions()
    # the cold user (no training events) later buys six block-2 items
    extra = Interactions.from_arrays(
        [COLD_USER] * 6, np.arange(20, 26), T0 + 100 * DAY_NS + np.arange(6), n_users=data.n_users, n_items=data.n_items
    )
    history = data.concat(extra)
    ids, _ = small_als().fit(data).recommend(np.array([COLD_USER]), history, n=4)
    assert np.all(block_of_item(ids) == 2)
    # with the factors learned in fit, the later events are ignored: a zero vector, only the popularity tie-break
    trained = ALS(factors=4, iterations=10, use_gpu=False, num_threads=1, user_factors="trained").fit(data)
    _, scores = trained.recommend(np.array([COLD_USER]), history, n=4)
    assert np.all(scores <= 1e-6)


def test_als_saves_factors_as_npz_not_pickle(tmp_path):
    small_als().fit(block_interactions()).save(tmp_path)
    with np.load(tmp_path / "factors.npz", allow_pickle=False) as f:
        assert f["item_factors"].shape == (30, 4)


# --- Fusion ----------------------------------------------------------------------------------


def test_rrf_contribution_is_reciprocal_rank_over_the_top_m():
    scores = np.array([[0.1, 0.9, 0.5, 0.0]], np.float32)
    out = rrf_contribution(scores, top_m=2, k=60)
    np.testing.assert_allclose(out, [[0.0, 1 / 61, 1 / 62, 0.0]])


class FixedScores(Recommender):
    """A member whose scores are given (Fusion is what is tested)."""

    name = "fixed"

    def __init__(self, scores):
        self.scores = np.asarray(scores, np.float32)

    def fit(self, train, valid=None):
        return self

    def score(self, users, history):
        return self.scores[users]

    def _save(self, path):
        np.save(path / "scores.npy", self.scores)

    @classmethod
    def _load(cls, path):
        return cls(np.load(path / "scores.npy"))


def test_fusion_ranking_unseen_leaves_the_users_purchases_out_of_each_members_ranks(tmp_path):
    history = events([0], [0], [0], n_users=1, n_items=4)  # user 0 bought item 0, the member's best
    member = FixedScores([[4.0, 3.0, 2.0, 1.0]])
    with_history = Fusion({"m": member}, members_fitted=True).score(np.array([0]), history)
    np.testing.assert_allclose(with_history, [[1 / 61, 1 / 62, 1 / 63, 1 / 64]])
    fusion = Fusion({"m": member}, members_fitted=True, rank_unseen=True)
    np.testing.assert_allclose(fusion.score(np.array([0]), history), [[0.0, 1 / 61, 1 / 62, 1 / 63]])
    fusion.save(tmp_path)
    assert Recommender.load(tmp_path).rank_unseen is True


def test_fusion_ranking_unseen_lets_a_member_topped_by_purchases_count_in_the_discover_list():
    # user 0 bought items 0-29. Member "own" ranks them first, then items 30, 31, 32; member "other" ranks 32, then 30.
    # With the purchases in the ranks: item 32 = 1/61 (other's 1st) + 1/93 (own's 33rd) = 0.027146 beats
    # item 30 = 1/62 + 1/91 = 0.027118. Ranked unseen: item 30 = 1/62 + 1/61 = 0.032522 beats 32 = 1/61 + 1/63.
    history = events([0] * 30, range(30), [0] * 30, n_users=1, n_items=33)
    own = FixedScores([[100.0 - i for i in range(30)] + [50.0, 40.0, 30.0]])
    other = FixedScores([[0.0] * 30 + [4.0, 0.0, 5.0]])
    for unseen, best in ((False, 32), (True, 30)):
        fusion = Fusion({"own": own, "other": other}, members_fitted=True, rank_unseen=unseen)
        ids, _ = fusion.recommend(np.array([0]), history, n=1, filter_already_liked_items=True)
        assert ids[0, 0] == best


def test_new_product_slot_gives_the_members_best_new_product_its_rank(tmp_path):
    # user 0 bought item 0; the fused list (one member) is items 1, 2, 3, 4. Items 3 and 4 are new; the slot's
    # member likes item 4 best, so at position 2 the list becomes 1, 4, 2, 3. User 1's member scores no new
    # product (-inf): their list (nothing bought) is untouched, 0, 1, 2, 3.
    history = events([0], [0], [0], n_users=2, n_items=5)
    fused = FixedScores([[5.0, 4.0, 3.0, 2.0, 1.0]] * 2)
    newest = FixedScores([[0.0, 0.0, 0.0, 1.0, 9.0], [0.0, 0.0, 0.0, -np.inf, -np.inf]])
    new = np.array([False, False, False, True, True])
    slot = NewProductSlot("newest", new, position=2)
    fusion = Fusion({"m": fused, "newest": newest}, weights={"m": 1.0, "newest": 0.0}, members_fitted=True, slot=slot)
    ids, _ = fusion.recommend(np.array([0, 1]), history, n=4, filter_already_liked_items=True)
    assert ids.tolist() == [[1, 4, 2, 3], [0, 1, 2, 3]]
    # a new product already ranked above the slot keeps its place
    better = NewProductSlot("newest", np.array([False, True, False, True, True]), position=4)
    liked = FixedScores([[0.0, 5.0, 0.0, 1.0, 2.0]] * 2)
    fusion = Fusion({"m": fused, "newest": liked}, weights={"m": 1.0, "newest": 0.0}, members_fitted=True, slot=better)
    ids, _ = fusion.recommend(np.array([0]), history, n=4, filter_already_liked_items=True)
    assert ids.tolist() == [[1, 2, 3, 4]]
    fusion.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert (loaded.slot.member, loaded.slot.position, loaded.slot.items.tolist()) == (
        "newest",
        4,
        better.items.tolist(),
    )
    with pytest.raises(ValueError, match="not a fusion member"):
        Fusion({"m": fused}, slot=slot)


def test_normalize_scores_per_user():
    s = np.array([[1.0, 3.0, -np.inf], [2.0, 2.0, 2.0]], np.float32)
    np.testing.assert_allclose(normalize_scores(s, "minmax"), [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    z = normalize_scores(np.array([[1.0, 3.0]], np.float32), "z")
    np.testing.assert_allclose(z, [[-1.0, 1.0]])


def test_fusion_fit_fits_members_unless_told_they_are_fitted():
    data = block_interactions()
    pop = Popularity()
    Fusion({"pop": pop}).fit(data)
    assert pop.popularity is not None
    unfitted = Popularity()
    Fusion({"pop": unfitted}, members_fitted=True).fit(data)
    assert unfitted.popularity is None


def test_fusion_fit_weights_prefers_the_member_that_predicts_validation():
    data = block_interactions()
    als, pop = small_als().fit(data), Popularity().fit(data)
    fusion = Fusion({"als": als, "pop": pop}, members_fitted=True)
    # validation truth: for each user, the unseen items of their own block
    seen = data.csr(binary=True).toarray().astype(bool)
    users = np.arange(60)
    block_mask = block_of_item(np.arange(30))[None, :] == (users // 20)[:, None]
    truth_rows = block_mask & ~seen[:60]
    truth = sp.csr_matrix(np.vstack([truth_rows, np.zeros((1, 30), bool)]).astype(np.float32))
    weights = fusion.fit_weights(users, data, truth, grid={"als": [0.0, 1.0], "pop": [0.0, 1.0]})
    assert weights == {"als": 1.0, "pop": 0.0}
    assert len(fusion.weight_search) == 3  # the all-zero combination is skipped
    assert fusion.rank_unseen is True  # the weights were chosen on the lists without the users' purchases
    fusion.fit_weights(users, data, truth, grid={"als": [1.0]}, rank_unseen=False)
    assert fusion.rank_unseen is False


def test_fusion_save_writes_each_member_in_a_subfolder(tmp_path):
    data = block_interactions()
    fusion = Fusion({"als": small_als(), "rebuy": Rebuy()}, weights={"als": 0.7, "rebuy": 0.3}).fit(data)
    fusion.save(tmp_path)
    assert (tmp_path / "members" / "als" / "factors.npz").exists()
    assert (tmp_path / "members" / "rebuy" / "model.json").exists()
    loaded = Recommender.load(tmp_path)
    assert loaded.weights == {"als": 0.7, "rebuy": 0.3}


# --- Newest products and text kNN (the cold-item controls) ------------------------------------


def test_newest_ranks_items_first_sold_recently_by_buyers_then_the_rest_by_popularity():
    # item 0: old (day 0), 3 buyers; item 1: first sold day 80, 1 buyer; item 2: first sold day 90, 2 buyers
    data = events([0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 1, 2, 2, 0], [0, 0, 0, 80, 90, 90, 95])
    model = NewestPopularity(days=30).fit(data)
    scores = model.score(np.array([0]), data)[0]
    # new items score 1 + buyers (item 2 -> 3, item 1 -> 2), every item + 1e-3 * buyers / max buyers (3)
    np.testing.assert_allclose(scores, [1e-3, 2.0 + 1e-3 / 3, 3.0 + 2e-3 / 3], rtol=1e-6)


def test_newest_reads_launches_from_the_history_it_is_given():
    data = events([0, 1], [0, 0], [0, 1])
    model = NewestPopularity(days=30).fit(data)
    later = events([0, 1, 2], [0, 0, 1], [0, 1, 100])  # item 1 launched after the model was fitted
    ids, _ = model.recommend(np.array([3]), later, n=1)
    assert ids[0, 0] == 1


def test_neighbour_matrix_keeps_the_top_k_positive_similarities_without_the_item_itself():
    vectors = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], np.float32)
    sim = neighbour_matrix(vectors, neighbours=2).toarray()
    # item 0: cos to 1 = 0.8, to 2 = 0, to 3 = -1 -> keeps item 1 only (zero and negatives dropped)
    np.testing.assert_allclose(sim[0], [0, 0.8, 0, 0], atol=1e-6)
    # item 1: to 0 = 0.8, to 2 = 0.6 -> both
    np.testing.assert_allclose(sim[1], [0.8, 0, 0.6, 0], atol=1e-6)
    assert np.all(np.diag(sim) == 0)


def test_text_knn_sums_similarities_to_the_history_plus_a_popularity_fill():
    vectors = np.array([[1, 0], [0.8, 0.6], [0, 1]], np.float32)
    data = events([0, 0, 1], [0, 2, 0], [0, 1, 2], n_users=3)
    model = TextKNN(vectors, neighbours=2).fit(data)
    scores = model.score(np.array([0, 2]), data)
    # user 0 has items 0 and 2: item 1 gets 0.8 + 0.6; fill = 1e-3 * buyers / max (item 0: 2 buyers, item 2: 1)
    np.testing.assert_allclose(scores[0], [0.0 + 1e-3, 1.4, 0.0 + 0.5e-3], atol=1e-6)
    # user 2 has no history: the popularity fill alone
    np.testing.assert_allclose(scores[1], [1e-3, 0.0, 0.5e-3], atol=1e-7)


def test_text_knn_refuses_missing_or_misaligned_text():
    with pytest.raises(ValueError, match="item text"):
        TextKNN(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="3 rows for 4 items"):
        TextKNN(np.eye(3, dtype=np.float32)).fit(events([0], [3], [0], n_items=4))


def test_als_own_window_trains_only_on_the_last_days():
    # item 0 sold on day 0 only, items 1 and 2 on day 95-100: a 10-day window never sees item 0
    data = events([0, 1, 2, 3, 1, 2], [0, 1, 2, 1, 2, 1], [0, 95, 96, 97, 99, 100])
    windowed = ALS(factors=4, iterations=5, seed=1, use_gpu=False, num_threads=1, window_days=10)
    windowed.fit(data)
    assert not windowed.model.item_factors[0].any()  # no event left for item 0: its factors stay zero
    assert windowed.model.item_factors[1].any() and windowed.model.item_factors[2].any()
    everything = ALS(factors=4, iterations=5, seed=1, use_gpu=False, num_threads=1).fit(data)
    assert everything.model.item_factors[0].any()


def test_als_orders_a_zero_vector_customer_by_popularity_not_by_item_id():
    # user 0 bought item 0 long before the 10-day window: no factors; items 2 (3 buyers) > 1 (1 buyer)
    data = events([0, 1, 2, 3, 1], [0, 2, 2, 2, 1], [0, 95, 96, 97, 99])
    model = ALS(factors=4, iterations=5, seed=1, use_gpu=False, num_threads=1, window_days=10).fit(data)
    ids, _ = model.recommend(np.array([0]), data, n=2, filter_already_liked_items=True)
    assert ids[0].tolist() == [2, 1]
