"""The rolling backtest end to end on real rows: files per cut, figures recomputable from them, honest fusion."""

import json

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.cli import main
from ml.eval.metrics import ndcg_at_k
from ml.pipeline.backtest import check_models, run_backtest
from tests.support.synth import bundled_events


@pytest.fixture(scope="module")
def real_events():
    return bundled_events()


@pytest.fixture(scope="module")
def backtest(real_events, tmp_path_factory):
    from ml.config import Settings

    events, catalog = real_events
    settings = Settings().with_overrides(
        {
            "paths": {"home": str(tmp_path_factory.mktemp("home"))},  # no enrichment store: titles only
            "eval": {"bootstrap_resamples": 200, "backtest": {"span_days": 21}},
            "models": {"als": {"factors": 16, "iterations": 5}},
        }
    )
    out = tmp_path_factory.mktemp("backtest")
    doc = run_backtest(
        events,
        catalog,
        settings,
        ["pop", "rebuy", "als", "newest", "text_knn", "fusion"],
        out,
        compare=[("pop", "als")],
    )
    return doc, out


def test_writes_every_cut_with_lists_and_truth(backtest):
    doc, out = backtest
    assert doc["cuts"] == ["2011-10-11", "2011-10-18", "2011-10-25"]  # 21 days before the end (2011-11-01)
    assert doc["warmup_cuts"] == ["2011-10-04"]  # fusion's first weights come from the week before
    for cut in doc["cuts"]:
        folder = out / "cuts" / cut
        recs = pd.read_parquet(folder / "recommendations.parquet")
        assert set(recs[C.MODEL]) == {"pop", "rebuy", "als", "newest", "text_knn", "fusion"}
        truth = pd.read_parquet(folder / "ground_truth.parquet")
        assert {"repeat", "cold", "new_customer"} <= set(truth.columns)
        assert json.loads((folder / "metrics.json").read_text())["info"]["cut"] == cut


def test_fusion_weights_at_a_cut_come_from_the_previous_horizon(backtest):
    doc, _ = backtest
    assert all(c["fusion_weights"] is not None for c in doc["per_cut"])
    assert doc["timing"]["fusion"]["cuts"] == doc["cuts"]


def test_a_cut_figure_recomputes_from_the_files(backtest):
    doc, out = backtest
    cut = doc["cuts"][0]
    recs = pd.read_parquet(out / "cuts" / cut / "recommendations.parquet")
    truth = pd.read_parquet(out / "cuts" / cut / "ground_truth.parquet")
    cut_doc = json.loads((out / "cuts" / cut / "metrics.json").read_text())
    als = recs[(recs[C.MODEL] == "als") & (recs["view"] == "repeat")]
    users = np.sort(truth[C.USER].unique())
    items = pd.Index(np.sort(pd.unique(pd.concat([truth[C.ITEM], als[C.ITEM]]))))
    import scipy.sparse as sp

    u = pd.Index(users)
    t = sp.csr_matrix(
        (np.ones(len(truth)), (u.get_indexer(truth[C.USER]), items.get_indexer(truth[C.ITEM]))),
        shape=(len(users), len(items)),
    )
    lists = np.full((len(users), 10), -1)
    top = als[als[C.RANK] <= 10]
    lists[u.get_indexer(top[C.USER]), top[C.RANK].to_numpy() - 1] = items.get_indexer(top[C.ITEM])
    assert np.nanmean(ndcg_at_k(lists, t, 10)) == pytest.approx(
        cut_doc["models"]["als"]["repeat"]["overall"]["ndcg@10"]
    )


def test_aggregates_carry_intervals_for_every_slice(backtest):
    doc, _ = backtest
    cells = doc["aggregate"]["als"]["discover"]
    assert {"overall", "known", "new_customers", "cold_items", "history_16+"} <= set(cells)
    overall = cells["overall"]["ndcg@10"]
    assert overall["ci_low"] <= overall["mean"] <= overall["ci_high"]
    assert set(overall["per_cut"]) == set(doc["cuts"])


def test_popularity_never_lists_a_cold_item_and_the_text_control_does(backtest):
    doc, out = backtest
    assert doc["aggregate"]["pop"]["discover"]["cold_items"]["rows"] > 0
    shares = {
        model: [
            json.loads((out / "cuts" / cut / "metrics.json").read_text())["models"][model]["discover"]["cold_items"][
                "share_lists_with_cold@10"
            ]
            for cut in doc["cuts"]
        ]
        for model in ("pop", "text_knn")
    }
    assert max(shares["pop"]) == 0.0  # cold items have at most 5 buyers: never the most popular
    assert max(shares["text_knn"]) > 0.0


def test_new_customers_are_counted_not_dropped(backtest):
    doc, _ = backtest
    totals = doc["totals"]
    assert totals["new_customers"] > 0
    assert totals["horizon_purchases"] == (
        totals["scored_purchases"]
        + totals["purchases_in_first_orders"]
        + totals["purchases_of_unlisted_items"]
        - _overlap(doc)
    )


def _overlap(doc) -> int:
    """First-order purchases of unlisted items are counted in both (they are neither scored nor history)."""
    return sum(
        c["info"]["purchases_in_first_orders"]
        + c["info"]["purchases_of_unlisted_items"]
        + c["info"]["scored_purchases"]
        - c["info"]["horizon_purchases"]
        for c in doc["per_cut"]
    )


def test_comparisons_cluster_by_customer(backtest):
    doc, _ = backtest
    record = next(r for r in doc["comparisons"] if r["slice"] == "discover/overall")
    assert record["a"] == "pop" and record["b"] == "als"
    assert record["n_users"] == doc["aggregate"]["als"]["discover"]["overall"]["users"]
    assert record["ci_low"] <= record["delta"] <= record["ci_high"]


def test_check_models_refuses_before_any_work():
    with pytest.raises(ValueError, match="unknown models"):
        check_models(["pop", "nope"])
    with pytest.raises(ValueError, match="not among --models"):
        check_models(["pop", "als"], [("pop", "rebuy")])
    with pytest.raises(ValueError, match="fusion needs at least two"):
        check_models(["pop", "als", "bert4rec", "fusion"])  # bert4rec runs on too few cuts to be fused


def test_cli_exits_2_on_a_bad_model(tmp_path, capsys):
    assert main(["backtest", "--models", "pop,nope", "--out", str(tmp_path)]) == 2
    assert "unknown models" in capsys.readouterr().err


def test_a_slow_model_runs_on_the_last_cuts_only_and_says_which(real_events, tmp_path):
    from ml.config import Settings

    events, catalog = real_events
    settings = Settings().with_overrides(
        {
            "eval": {"bootstrap_resamples": 100, "backtest": {"span_days": 14, "slow_cuts": 1}},
            "models": {"bert4rec": {"max_epochs": 1, "hidden": 16, "item_text": "none"}},
        }
    )
    doc = run_backtest(events, catalog, settings, ["pop", "bert4rec"], tmp_path)
    assert doc["timing"]["bert4rec"]["cuts"] == [doc["cuts"][-1]] and len(doc["timing"]["pop"]["cuts"]) == 2
    compared = compare_models_on_shared_rows(tmp_path)
    assert compared["cuts"] == 1  # pop and bert4rec are compared where both ran


def compare_models_on_shared_rows(folder) -> dict:
    from ml.eval.backtest import compare_models

    rows = pd.read_parquet(folder / "user_metrics.parquet")
    records = compare_models(rows, "pop", "bert4rec", ["ndcg@10"], [1], n_resamples=100)
    return next(r for r in records if r["slice"] == "discover/overall")


def test_item_text_adds_the_stored_enrichment_unless_switched_off(tmp_path):
    from ml.config import Settings
    from ml.data.lake import write_parquet_atomic
    from ml.pipeline.backtest import item_vectors
    from ml.synth.enrichment import ATTRIBUTE_COLUMNS, cache_path

    catalog = pd.DataFrame({C.ITEM: ["a", "b"], C.TITLE: ["JUMBO BAG RED", "HEART T-LIGHT HOLDER"]})
    on = Settings().with_overrides({"paths": {"home": str(tmp_path)}, "text": {"enrichment": True}})
    off = on.with_overrides({"text": {"enrichment": False}})
    row = {C.ITEM: "a", C.TITLE: "JUMBO BAG RED", C.CATEGORY: "bags", "tags": ["tote", "red"], "status": "ok"}
    write_parquet_atomic(pd.DataFrame([row], columns=ATTRIBUTE_COLUMNS), cache_path(on))
    assert item_vectors(["pop"], ["a", "b"], catalog, on) is None  # no model reads text: nothing is encoded
    with_store, titles = (
        item_vectors(["text_knn"], ["a", "b"], catalog, on),
        item_vectors(["text_knn"], ["a", "b"], catalog, off),
    )
    from ml.text.encoder import TitleEncoder

    encoder = TitleEncoder()
    # a's text becomes "jumbo bag red | bags | tags: tote, red"; b has no enrichment and keeps its title's vector
    expected = encoder.encode(["jumbo bag red | bags | tags: tote, red", "heart t-light holder"])
    np.testing.assert_allclose(with_store.to_numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(titles.loc["a"].to_numpy(), encoder.encode(["jumbo bag red"])[0], atol=1e-5)
    np.testing.assert_allclose(titles.loc["b"].to_numpy(), with_store.loc["b"].to_numpy(), atol=1e-6)
