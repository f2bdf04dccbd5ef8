"""A model logged to MLflow loads back through mlflow.pyfunc and recommends exactly as before."""

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.config import SplitSettings
from ml.data.dataset import build_split
from ml.models.als import ALS
from ml.models.rebuy import Rebuy


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


@pytest.mark.parametrize("model_cls", [ALS, Rebuy], ids=["als", "rebuy"])
def test_logged_model_returns_the_same_top10(tmp_path, data, model_cls):
    import mlflow

    from ml.tracking.pyfunc import log_recommender

    model = (model_cls(factors=8, iterations=5) if model_cls is ALS else model_cls()).fit(data.history_for_test())
    model.save(tmp_path / "model")
    users = np.arange(data.n_users)
    expected_ids, expected_scores = model.recommend(
        users, data.history_for_test(), n=10, filter_already_liked_items=False
    )

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlflow.create_experiment("roundtrip", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = log_recommender(
            tmp_path / "model", data, tmp_path / "scratch", registered_name=f"test-{model_cls.__name__}"
        )
    assert info.registered_model_version == 1
    assert info.signature.inputs.input_names() == [C.USER]

    loaded = mlflow.pyfunc.load_model(f"models:/test-{model_cls.__name__}/1")
    out = loaded.predict(pd.DataFrame({C.USER: list(data.user_ids) + ["never-seen"]}), params={"n": 10})
    assert set(out[C.USER]) == set(data.user_ids)  # unknown users get no rows
    got = out.sort_values([C.USER, C.RANK])
    for u in range(0, data.n_users, 7):
        rows = got[got[C.USER] == data.user_ids[u]]
        want = [data.item_ids[i] for i in expected_ids[u] if i >= 0]
        assert rows[C.ITEM].tolist() == want
        np.testing.assert_allclose(rows[C.SCORE].to_numpy(), expected_scores[u][: len(want)], rtol=1e-5)
