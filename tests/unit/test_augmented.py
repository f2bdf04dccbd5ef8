"""A model trained with synthetic events: the contract, and what the extra events may and may not touch."""

import json

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.config import SplitSettings, get_settings
from ml.data.dataset import build_split
from ml.data.interactions import Interactions
from ml.models.augmented import AugmentedHistory
from ml.models.als import ALS
from ml.models.rebuy import Rebuy
from ml.pipeline import training as T
from tests.unit.recommender_contract import N_ITEMS, N_USERS, RecommenderContract


def _extra() -> Interactions:
    # two synthetic purchases of user 0 inside their own block
    return Interactions.from_arrays([0, 0], [1, 2], n_users=N_USERS, n_items=N_ITEMS)


class TestAugmentedALSContract(RecommenderContract):
    def _get_model(self):
        return AugmentedHistory(ALS(factors=4, iterations=10, seed=1), _extra())


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


def _split():
    rng = np.random.default_rng(5)
    n = 2500
    users = rng.integers(0, 50, n)
    events = pd.DataFrame({
        C.USER: users.astype(str), C.ITEM: ((users % 5) * 8 + rng.integers(0, 8, n)).astype(str),
        C.TIMESTAMP: pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 90 * 24, n), unit="h"),
        C.WEIGHT: np.ones(n, np.float32),
    })
    return build_split(events, SplitSettings(test_days=20, validation_days=10, window_days=None))


def test_synth_variant_is_trained_on_extra_rows_and_variants_are_chosen_on_validation(tmp_path):
    data = _split()
    settings = get_settings()
    cut = pd.Timestamp(data.info["validation_start"]) - pd.Timedelta(days=1)
    synthetic = pd.DataFrame({C.USER: data.user_ids[:4], C.ITEM: data.item_ids[:4], C.TIMESTAMP: cut})
    T.fit_model("als", data, settings, tmp_path)
    result = T.fit_model("als_synth", data, settings, tmp_path, synthetic=synthetic)
    assert result["summary"]["extra_events"] == 4 and set(result["valid"]) == {"repeat", "discover"}
    chosen, decisions = T.choose_variants(tmp_path, ["als", "als_synth"])
    scores = decisions["als"]["valid_ndcg@10"]
    assert chosen == [max(scores, key=lambda k: (scores[k], k == "als"))]
    doc = T.evaluate_models(["als", "als_synth"], data, settings, tmp_path)
    uplift = doc["synthetic_uplift"]["als"]["discover"]["overall"]["ndcg@10"]
    assert uplift["delta"] == uplift["real_synthetic"] - uplift["real"]
    assert "als" in T.uplift_table(doc)
    assert json.loads((tmp_path / "metrics.json").read_text())["synthetic_uplift"]


def test_synthetic_rows_after_the_training_cut_are_refused(tmp_path):
    data = _split()
    late = pd.DataFrame({C.USER: data.user_ids[:1], C.ITEM: data.item_ids[:1], C.TIMESTAMP: pd.Timestamp(data.info["test_start"])})
    with pytest.raises(ValueError, match="training cut"):
        T.fit_model("als_synth", data, get_settings(), tmp_path, synthetic=late)
