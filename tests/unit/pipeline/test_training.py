"""Training steps shared by the DAG and the benchmark: synthetic variants, the variant choice, fusion's input."""

import json

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.config import SplitSettings, get_settings
from ml.data.dataset import build_split
from ml.pipeline import training as T
from ml.pipeline.evaluation import evaluate_models
from ml.pipeline.layout import RunFolder
from ml.pipeline.report import uplift_table


def _split():
    rng = np.random.default_rng(5)
    n = 2500
    users = rng.integers(0, 50, n)
    events = pd.DataFrame(
        {
            C.USER: users.astype(str),
            C.ITEM: ((users % 5) * 8 + rng.integers(0, 8, n)).astype(str),
            C.TIMESTAMP: pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 90 * 24, n), unit="h"),
            C.WEIGHT: np.ones(n, np.float32),
        }
    )
    return build_split(events, SplitSettings(test_days=20, validation_days=10, window_days=None))


def _record(run: RunFolder, key: str, repeat: float, discover: float) -> None:
    path = run.fit_record(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"valid": {"repeat": {"ndcg@10": repeat}, "discover": {"ndcg@10": discover}}}))


def test_the_variant_with_the_better_mean_validation_ndcg_is_chosen_and_real_wins_ties(tmp_path):
    run = RunFolder(tmp_path)
    _record(run, "als", 0.30, 0.10)  # mean 0.20
    _record(run, "als_synth", 0.28, 0.14)  # mean 0.21: synthetic wins
    _record(run, "bert4rec", 0.20, 0.10)  # mean 0.15
    _record(run, "bert4rec_synth", 0.10, 0.20)  # mean 0.15: a tie, real stays
    _record(run, "rebuy", 0.40, 0.05)
    chosen, decisions = T.choose_variants(run, ["rebuy", "als", "als_synth", "bert4rec", "bert4rec_synth"])
    assert chosen == ["rebuy", "als_synth", "bert4rec"]
    assert decisions["als"]["valid_ndcg@10"] == pytest.approx({"als": 0.20, "als_synth": 0.21})


def test_synthetic_variant_trains_on_the_extra_rows_and_is_reported_beside_its_base(tmp_path):
    data = _split()
    settings = get_settings()
    run = RunFolder(tmp_path)
    cut = data.training_cut - pd.Timedelta(days=1)
    synthetic = pd.DataFrame({C.USER: data.user_ids[:4], C.ITEM: data.item_ids[:4], C.TIMESTAMP: cut})
    T.fit_model("als", data, settings, run)
    result = T.fit_model("als_synth", data, settings, run, synthetic=synthetic)
    assert result["summary"]["extra_events"] == 4 and set(result["valid"]) == {"repeat", "discover"}
    doc = evaluate_models(["als", "als_synth"], data, settings, run, compare=[("als", "als_synth")])
    assert set(doc["synthetic_uplift"]) == {"als"}
    assert set(doc["synthetic_uplift"]["als"]["discover"]) == {"overall", "sparse"}
    cell = doc["synthetic_uplift"]["als"]["discover"]["overall"]["ndcg@10"]
    assert cell["ci_low"] <= cell["delta"] <= cell["ci_high"] and 0 < cell["p_value"] <= 1
    # the uplift is the same paired comparison that --compare asks for
    record = next(r for r in doc["comparisons"] if r["slice"] == "discover/overall" and r["metric"] == "ndcg@10")
    assert (record["delta"], record["ci_low"], record["p_value"]) == (cell["delta"], cell["ci_low"], cell["p_value"])
    slices = {r["slice"] for r in doc["comparisons"]}
    assert {"repeat/overall", "discover/overall"} <= slices and all(r["n_users"] > 0 for r in doc["comparisons"])
    assert "discover/sparse" not in slices  # this split has no sparse user: no record, rather than an error
    assert "als" in uplift_table(doc) and "[" in uplift_table(doc)
    assert json.loads(run.metrics.read_text())["synthetic_uplift"]["als"]


def test_synthetic_rows_after_the_training_cut_are_refused(tmp_path):
    data = _split()
    late = pd.DataFrame({C.USER: data.user_ids[:1], C.ITEM: data.item_ids[:1], C.TIMESTAMP: data.training_cut})
    with pytest.raises(ValueError, match="training cut"):
        T.fit_model("als_synth", data, get_settings(), RunFolder(tmp_path), synthetic=late)


def test_a_variant_needs_its_synthetic_rows(tmp_path):
    with pytest.raises(ValueError, match="needs synthetic"):
        T.fit_model("als_synth", _split(), get_settings(), RunFolder(tmp_path))


def test_only_models_that_read_text_get_vectors_and_only_from_real_titles(settings):
    from ml.data.dataset import SplitData

    ids = np.array(["1193", "661", "914"])
    empty = pd.DataFrame(columns=["user_id", "item_id", "timestamp", "weight"])
    data = SplitData(empty, empty, empty, user_ids=np.array(["u"]), item_ids=ids)
    untitled = pd.DataFrame({"item_id": ids, "title": ids})  # what build_catalog lists for items never titled
    assert T.item_text_for("bert4rec", settings, data, untitled) is None
    titled = pd.DataFrame(
        {"item_id": ids, "title": ["ONE FLEW OVER THE CUCKOO'S NEST", "JAMES AND THE GIANT PEACH", "MY FAIR LADY"]}
    )
    assert T.item_text_for("bert4rec", settings, data, titled).shape == (3, 384)
    assert T.item_text_for("als", settings, data, titled) is None  # ALS reads no text
    off = settings.with_overrides({"models": {"bert4rec": {"item_text": "none"}}})
    assert T.item_text_for("bert4rec", off, data, titled) is None


def test_sequence_models_read_the_stored_enrichment_as_the_backtest_does(settings):
    from ml.data.dataset import SplitData
    from ml.data.lake import write_parquet_atomic
    from ml.synth.enrichment import ATTRIBUTE_COLUMNS, cache_path
    from ml.text.encoder import TitleEncoder

    ids = np.array(["a", "b"])
    empty = pd.DataFrame(columns=["user_id", "item_id", "timestamp", "weight"])
    data = SplitData(empty, empty, empty, user_ids=np.array(["u"]), item_ids=ids)
    catalog = pd.DataFrame({C.ITEM: ids, C.TITLE: ["JUMBO BAG RED", "HEART T-LIGHT HOLDER"]})
    on = settings.with_overrides({"text": {"enrichment": True}})
    # the store alone: no night's items_enriched.parquet exists (as on a night whose synthesis failed)
    row = {C.ITEM: "a", C.TITLE: "JUMBO BAG RED", C.CATEGORY: "bags", "tags": ["tote", "red"], "status": "ok"}
    write_parquet_atomic(pd.DataFrame([row], columns=ATTRIBUTE_COLUMNS), cache_path(on))
    encoder = TitleEncoder()
    expected = encoder.encode(["jumbo bag red | bags | tags: tote, red", "heart t-light holder"])
    np.testing.assert_allclose(T.item_text_for("bert4rec", on, data, catalog), expected, atol=1e-5)
    off = on.with_overrides({"text": {"enrichment": False}})
    np.testing.assert_allclose(
        T.item_text_for("bert4rec", off, data, catalog)[0], encoder.encode(["jumbo bag red"])[0], atol=1e-5
    )
