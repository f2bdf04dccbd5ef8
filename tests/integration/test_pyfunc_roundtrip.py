"""The served model: a logged pyfunc recommends exactly as the models it wraps, and covers unknown customers.

Two halves: a tiny hand-computed history served through ``RecommenderModel`` itself (every expected
list and score worked out below), and a real MLflow round trip (log, register, load) whose known-customer
lists must equal the wrapped model's own ``recommend``.

The tiny history (user: items, at ts 0..6 in this order)::

    u0: i0 (ts 0), i1 (1)      u1: i0 (2), i2 (3)      u2: i0 (4), i1 (5), i3 (6)

Distinct buyers: i0 3, i1 2, i2 1, i3 1, so popularity shares 1, 2/3, 1/3, 1/3. Rebuy scores a
user's own item ``count + 0.5 * (last ts - 0) / (6 - 0 + 1) + 1e-3 * share`` and any other item
``1e-3 * share``; Popularity scores distinct buyers (3, 2, 1, 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.config import SplitSettings
from ml.data.dataset import build_split
from ml.data.interactions import Interactions
from ml.eval.protocol import VIEWS
from ml.models.als import ALS
from ml.models.augmented import AugmentedHistory
from ml.models.fusion import NewProductSlot
from ml.models.popularity import NewestPopularity, Popularity
from ml.models.rebuy import Rebuy
from ml.pipeline.publish import with_slot
from ml.tracking.pyfunc import (
    ITEMS,
    SOURCE,
    SOURCE_FALLBACK,
    SOURCE_MODEL,
    RecommenderModel,
    log_recommender,
    stage_artifacts,
)

USERS = np.array(["u0", "u1", "u2"])
ITEM_IDS = np.array(["i0", "i1", "i2", "i3"])
CATALOG = pd.DataFrame({C.ITEM: ["i0", "i1", "i2", "x9"], C.TITLE: ["Mug", "Teapot", "Tray", "Not sold"]})
SHARE = np.array([1.0, 2 / 3, 1 / 3, 1 / 3])


def tiny_history() -> Interactions:
    return Interactions.from_arrays([0, 0, 1, 1, 2, 2, 2], [0, 1, 0, 2, 0, 1, 3], np.arange(7), n_users=3, n_items=4)


def rebuy_own(count: int, last_ts: int, item: int) -> float:
    return count + 0.5 * last_ts / 7 + 1e-3 * SHARE[item]


def serve(tmp_path, repeat, discover, catalog=CATALOG) -> RecommenderModel:
    """Fit, save and stage the two views' models on the tiny history; load them as the served model."""
    history = tiny_history()
    repeat.fit(history).save(tmp_path / "repeat")
    discover.fit(history).save(tmp_path / "discover")
    folders = {"repeat": tmp_path / "repeat", "discover": tmp_path / "discover"}
    return RecommenderModel.from_artifacts(stage_artifacts(folders, USERS, ITEM_IDS, history, catalog, tmp_path / "s"))


def lists(out: pd.DataFrame) -> dict[str, list[str]]:
    return {u: rows[C.ITEM].tolist() for u, rows in out.groupby(C.USER, sort=False)}


@pytest.fixture
def served(tmp_path) -> RecommenderModel:
    return serve(tmp_path, Rebuy(), Popularity())


def test_known_customer_gets_the_views_model_with_titles(served):
    out = served.predict(None, pd.DataFrame({C.USER: ["u2"]}), params={"n": 4, "view": "repeat"})
    assert out.columns.tolist() == [C.USER, C.RANK, C.ITEM, C.TITLE, C.SCORE, SOURCE]
    assert out[C.ITEM].tolist() == ["i3", "i1", "i0", "i2"]  # own items by last purchase, then the fill
    assert out[C.RANK].tolist() == [1, 2, 3, 4]
    assert out[C.TITLE].tolist() == ["", "Teapot", "Mug", "Tray"]  # i3 is not in the catalog
    want = [rebuy_own(1, 6, 3), rebuy_own(1, 5, 1), rebuy_own(1, 4, 0), 1e-3 * SHARE[2]]
    np.testing.assert_allclose(out[C.SCORE], want, rtol=1e-6)
    assert set(out[SOURCE]) == {SOURCE_MODEL}

    out = served.predict(None, pd.DataFrame({C.USER: ["u0"]}), params={"n": 4})  # discover: Popularity
    assert out[C.ITEM].tolist() == ["i2", "i3"]  # i0, i1 already bought; the two empty slots dropped
    np.testing.assert_allclose(out[C.SCORE], [1.0, 1.0])


def test_known_customers_basket_joins_their_history(served):
    frame = pd.DataFrame({C.USER: ["u0"], ITEMS: [["i3"]]})
    out = served.predict(None, frame, params={"n": 4, "view": "discover"})
    assert out[C.ITEM].tolist() == ["i2"]  # i3 is in the basket now, so only i2 is new to u0
    out = served.predict(None, frame, params={"n": 2, "view": "repeat"})
    assert out[C.ITEM].tolist() == ["i3", "i1"]  # the basket is the latest purchase (ts 6)
    np.testing.assert_allclose(out[C.SCORE], [rebuy_own(1, 6, 3), rebuy_own(1, 1, 1)], rtol=1e-6)


def test_unknown_customer_with_items_is_served_by_the_model(served):
    frame = pd.DataFrame({C.USER: ["new"], ITEMS: [["i2", "not-an-item"]]})  # unknown ids are ignored
    out = served.predict(None, frame, params={"n": 3, "view": "repeat"})
    assert out[C.ITEM].tolist() == ["i2", "i0", "i1"]  # their own i2 first, then by popularity
    np.testing.assert_allclose(out[C.SCORE], [rebuy_own(1, 6, 2), 1e-3, 1e-3 * 2 / 3], rtol=1e-6)
    assert set(out[SOURCE]) == {SOURCE_MODEL}
    out = served.predict(None, frame, params={"n": 3, "view": "discover"})
    assert out[C.ITEM].tolist() == ["i0", "i1", "i3"]  # i2 counts as bought
    np.testing.assert_allclose(out[C.SCORE], [3.0, 2.0, 1.0])


def test_unknown_customer_without_usable_items_gets_the_popularity_fallback(served):
    frame = pd.DataFrame({C.USER: ["ghost", "u1", "stranger"], ITEMS: [None, None, ["nope"]]})
    out = served.predict(None, frame, params={"n": 2, "view": "repeat"})
    assert out[C.USER].tolist() == ["ghost", "ghost", "u1", "u1", "stranger", "stranger"]  # input order
    assert lists(out) == {"ghost": ["i0", "i1"], "u1": ["i2", "i0"], "stranger": ["i0", "i1"]}
    fallback = out[out[C.USER] != "u1"]
    assert set(fallback[SOURCE]) == {SOURCE_FALLBACK}
    np.testing.assert_allclose(fallback[C.SCORE], [1.0, 2 / 3] * 2, rtol=1e-6)
    # no "items" column at all
    out = served.predict(None, pd.DataFrame({C.USER: ["ghost"]}), params={"n": 10})
    assert out[C.ITEM].tolist() == ["i0", "i1", "i2", "i3"] and set(out[SOURCE]) == {SOURCE_FALLBACK}


def test_a_synthetic_variant_serves_a_new_customer_from_their_items(tmp_path):
    extra = Interactions.from_arrays([0], [3], n_users=3, n_items=4)  # fixed extra events over the 3 known users
    served = serve(tmp_path, Rebuy(), AugmentedHistory(Popularity(), extra))
    frame = pd.DataFrame({C.USER: ["new", "u0"], ITEMS: [["i2"], None]})
    out = served.predict(None, frame, params={"n": 3, "view": "discover"})
    new = out[out[C.USER] == "new"]
    # popularity with the extra purchase of i3 (buyers: i0 3, i1 2, i3 1 + 1 extra), without the given i2
    assert new[C.ITEM].iloc[0] == "i0" and set(new[C.ITEM]) == {"i0", "i1", "i3"}  # i1 and i3 tie
    assert set(new[SOURCE]) == {SOURCE_MODEL}
    assert set(out.loc[out[C.USER] == "u0", SOURCE]) == {SOURCE_MODEL}


def test_a_new_product_slot_reaches_the_served_discover_lists(tmp_path):
    # only i3 counts as new; popularity's discover list for a new customer with i0 is i1 (2 buyers), i2, i3
    # (1 each, by id). With the slot at rank 1, i3 goes first, scored just above i1's min-max 0.5.
    history = tiny_history()
    slot = NewProductSlot("newest", np.array([False, False, False, True]), position=1)
    discover = with_slot(Popularity().fit(history), slot, NewestPopularity().fit(history))
    served = serve(tmp_path, Rebuy(), discover)
    frame = pd.DataFrame({C.USER: ["new", "u1"], ITEMS: [["i0"], None]})
    got = served.predict(None, frame, params={"n": 3, "view": "discover"})
    assert lists(got) == {"new": ["i3", "i1", "i2"], "u1": ["i3", "i1"]}
    scores = got.loc[got[C.USER] == "new", C.SCORE].to_numpy()
    assert scores[0] > scores[1] == 0.5 and scores[2] == 0.0
    repeat = served.predict(None, frame.iloc[1:], params={"n": 2, "view": "repeat"})
    assert repeat[C.ITEM].tolist() == ["i2", "i0"]  # the repeat view has no slot


def test_bad_requests_are_clear_errors(served):
    with pytest.raises(ValueError, match="view must be one of \\['discover', 'repeat'\\]"):
        served.predict(None, pd.DataFrame({C.USER: ["u0"]}), params={"view": "buy-again"})
    with pytest.raises(ValueError, match="must be a list of item ids"):
        served.predict(None, pd.DataFrame({C.USER: ["u0"], ITEMS: ["i1,i2"]}), params={})
    assert served.predict(None, pd.DataFrame({C.USER: []}), params={}).empty


def test_a_folder_serving_both_views_is_staged_once(tmp_path):
    Rebuy().fit(tiny_history()).save(tmp_path / "m")
    art = stage_artifacts(
        {"repeat": tmp_path / "m", "discover": tmp_path / "m"}, USERS, ITEM_IDS, tiny_history(), None, tmp_path / "s"
    )
    assert [p.name for p in (tmp_path / "s" / "models").iterdir()] == ["model_0"]
    assert set(RecommenderModel.from_artifacts(art).titles) == {""}  # no catalog: empty titles
    with pytest.raises(ValueError, match="exactly the views"):
        stage_artifacts({"repeat": tmp_path / "m"}, USERS, ITEM_IDS, tiny_history(), None, tmp_path / "t")


# -- the real MLflow round trip ----------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 3000
    users = rng.integers(0, 60, n)
    items = (users % 6) * 10 + rng.integers(0, 12, n)  # block structure: users of a block share items
    events = pd.DataFrame(
        {
            C.USER: users.astype(str),
            C.ITEM: items.astype(str),
            C.TIMESTAMP: pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 90 * 24, n), unit="h"),
            C.WEIGHT: np.ones(n, np.float32),
        }
    )
    return build_split(events, SplitSettings(test_days=20, validation_days=10, window_days=None))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.create_experiment("roundtrip", artifact_location=(root / "artifacts").as_uri())


@pytest.mark.parametrize("model_cls", [ALS, Rebuy], ids=["als", "rebuy"])
def test_logged_model_recommends_as_the_model_and_covers_new_customers(tmp_path, data, store, model_cls):
    import mlflow

    history = data.history_for_test()
    model = (model_cls(factors=8, iterations=5) if model_cls is ALS else model_cls()).fit(history)
    model.save(tmp_path / "model")
    with mlflow.start_run(experiment_id=store):
        info = log_recommender(
            dict.fromkeys(VIEWS, tmp_path / "model"),
            data.user_ids,
            data.item_ids,
            history,
            None,
            tmp_path / "scratch",
            registered_name=f"t-{model_cls.__name__}",
        )
    assert info.registered_model_version == 1
    assert info.signature.inputs.input_names() == [C.USER, ITEMS]
    loaded = mlflow.pyfunc.load_model(f"models:/t-{model_cls.__name__}/1")

    users = np.arange(0, data.n_users, 7)
    for view, exclude in (("repeat", False), ("discover", True)):
        ids, scores = model.recommend(users, history, n=10, filter_already_liked_items=exclude)
        out = loaded.predict(pd.DataFrame({C.USER: data.user_ids[users]}), params={"n": 10, "view": view})
        assert set(out[SOURCE]) == {SOURCE_MODEL}
        for row, u in enumerate(users):
            got = out[out[C.USER] == data.user_ids[u]]
            want = [data.item_ids[i] for i in ids[row] if i >= 0]
            assert got[C.ITEM].tolist() == want
            np.testing.assert_allclose(got[C.SCORE], scores[row][: len(want)], rtol=1e-5)

    # an unknown customer with a basket: the model's list for a fresh user holding those items
    basket = [data.item_ids[0], data.item_ids[1]]
    fresh = data.n_users
    wider = Interactions(history.frame, fresh + 1, data.n_items).concat(
        Interactions.from_arrays(
            [fresh, fresh], [0, 1], [history.frame["ts"].max()] * 2, n_users=fresh + 1, n_items=data.n_items
        )
    )
    ids, _ = model.recommend(np.array([fresh]), wider, n=5, filter_already_liked_items=True)
    frame = pd.DataFrame({C.USER: ["walk-in", "anonymous"], ITEMS: [basket, None]})
    out = loaded.predict(frame, params={"n": 5, "view": "discover"})
    walk_in, anonymous = out[out[C.USER] == "walk-in"], out[out[C.USER] == "anonymous"]
    assert walk_in[C.ITEM].tolist() == [data.item_ids[i] for i in ids[0]]
    assert set(walk_in[SOURCE]) == {SOURCE_MODEL}
    buyers = history.frame.drop_duplicates(["user_idx", "item_idx"]).groupby("item_idx").size()
    ranked = buyers.reset_index(name="buyers").sort_values(["buyers", "item_idx"], ascending=[False, True])
    assert ranked["buyers"].iloc[2] > ranked["buyers"].iloc[3]  # no tie at the cut of 3 (ties cut arbitrarily)
    out = loaded.predict(frame.iloc[1:], params={"n": 3, "view": "discover"})
    assert out[C.ITEM].tolist() == [data.item_ids[i] for i in ranked["item_idx"][:3]]
    np.testing.assert_allclose(out[C.SCORE], ranked["buyers"][:3] / ranked["buyers"].max(), rtol=1e-6)
    assert set(out[SOURCE]) == {SOURCE_FALLBACK} and set(anonymous[SOURCE]) == {SOURCE_FALLBACK}
    assert len(anonymous) == 5


def test_two_models_one_per_view_with_a_catalog(tmp_path, data, store):
    import mlflow

    history = data.history_for_test()
    Rebuy().fit(history).save(tmp_path / "rebuy")
    Popularity().fit(history).save(tmp_path / "pop")
    catalog = pd.DataFrame({C.ITEM: data.item_ids, C.TITLE: [f"title {i}" for i in data.item_ids]})
    with mlflow.start_run(experiment_id=store):
        info = log_recommender(
            {"repeat": tmp_path / "rebuy", "discover": tmp_path / "pop"},
            data.user_ids,
            data.item_ids,
            history,
            catalog,
            tmp_path / "scratch",
            tags={"purpose": "test"},
        )
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    user = data.user_ids[:1]
    repeat = loaded.predict(pd.DataFrame({C.USER: user}), params={"n": 3, "view": "repeat"})
    discover = loaded.predict(pd.DataFrame({C.USER: user}), params={"n": 3})
    own = set(history.frame.loc[history.frame["user_idx"] == 0, "item_idx"])
    assert {data.item_ids[i] for i in own} >= set(repeat[C.ITEM][: min(3, len(own))])  # Rebuy: own items first
    assert not {data.item_ids[i] for i in own} & set(discover[C.ITEM])  # Popularity, bought items left out
    assert (repeat[C.TITLE] == "title " + repeat[C.ITEM]).all()
