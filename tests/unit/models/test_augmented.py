"""A model trained with synthetic events: the contract, and what the extra events may and may not touch."""

import numpy as np

from ml.data.interactions import Interactions
from ml.models.als import ALS
from ml.models.augmented import AugmentedHistory
from ml.models.rebuy import Rebuy
from tests.unit.models.recommender_contract import N_ITEMS, N_USERS, WIDE_ITEMS, WIDE_USERS, RecommenderContract


def _extra(n_users: int = N_USERS, n_items: int = N_ITEMS) -> Interactions:
    # two synthetic purchases of user 0 inside their own block
    return Interactions.from_arrays([0, 0], [1, 2], n_users=n_users, n_items=n_items)


class TestAugmentedALSContract(RecommenderContract):
    def _get_model(self):
        return AugmentedHistory(ALS(factors=4, iterations=10, seed=1), _extra())

    def _get_wide_model(self):  # synthetic events live in the universe of the data they join
        return AugmentedHistory(ALS(factors=4, iterations=10, seed=1), _extra(WIDE_USERS, WIDE_ITEMS))


def test_extra_events_join_scoring_but_not_the_bought_filter():
    history = Interactions.from_arrays([0], [5], n_users=2, n_items=8)
    extra = Interactions.from_arrays([0, 0, 0], [3, 3, 3], n_users=2, n_items=8)
    model = AugmentedHistory(Rebuy(), extra).fit(history)
    ids, _ = model.recommend(np.array([0]), history, n=3, filter_already_liked_items=True)
    assert ids[0, 0] == 3  # the synthetic purchase drives the scores ...
    assert 5 not in ids[0]  # ... while only the real purchase is filtered


def test_saved_augmented_model_keeps_its_extra_events(tmp_path):
    history = Interactions.from_arrays([0, 1], [5, 6], n_users=2, n_items=8)
    model = AugmentedHistory(Rebuy(), Interactions.from_arrays([0], [3], n_users=2, n_items=8)).fit(history)
    model.save(tmp_path / "m")
    loaded = AugmentedHistory.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(np.array([0, 1]), history), model.score(np.array([0, 1]), history))
    assert len(loaded.extra) == 1


def test_a_customer_unknown_at_training_is_scored_from_a_wider_history():
    # fitted on 2 customers; a third, new one arrives with a basket of item 4 (served online)
    train = Interactions.from_arrays([0, 1], [5, 6], n_users=2, n_items=8)
    model = AugmentedHistory(Rebuy(), Interactions.from_arrays([0], [3], n_users=2, n_items=8)).fit(train)
    wider = Interactions.from_arrays([0, 1, 2], [5, 6, 4], n_users=3, n_items=8)
    scores = model.score(np.array([0, 2]), wider)
    assert (
        scores[1].argmax() == 4 and scores[1][3] < 0.01
    )  # the new customer: their basket, not user 0's extra (only the tie-break)
    assert scores[0][3] > 0  # user 0 keeps the synthetic purchase
