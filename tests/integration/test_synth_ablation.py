"""The synthesis ablation on real rows with the real embedded model: every arm, its controls, lineage, the decision."""

import json

import pandas as pd
import pytest

from ml.cli import main
from ml.eval.ablation import ROW_FIELDS
from ml.pipeline.synth_ablation import merge_ablations, run_ablation
from ml.synth.enrichment import enrich_items
from tests.support.synth import bundled_events, sample_settings, shared_encoder, shared_generator

ARMS = ["real", "prior", "prior_llm", "random_prior", "item", "random_item", "item_pruned", "enriched"]
ENRICHED = 25  # products the real embedded model enriches into the store before the run (the enriched arm)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    events, catalog = bundled_events()
    settings = sample_settings(out / "home").with_overrides(
        {
            "eval": {"backtest": {"span_days": 14}, "bootstrap_resamples": 200},
            # three candidates per customer keep the language model's share of the run to about 40 s
            "synth": {"strategies": {"candidates": 3}},
        }
    )
    newest = events.groupby("item_id")["timestamp"].min().sort_values(ascending=False, kind="stable")
    priority = pd.Series(range(len(newest), 0, -1), index=newest.index)  # the newest products first: the cold slice
    enrich_items(
        catalog, shared_generator(), settings.with_overrides({"synth": {"enrich_max_items": ENRICHED}}), priority
    )
    doc = run_ablation(events, catalog, settings, out, ARMS, ["als", "text_knn", "fusion"], [0, 1], shared_generator())
    return out, doc


def test_rows_compare_every_arm_with_real_only_and_with_its_controls(ablation):
    out, doc = ablation
    rows = json.loads((out / "ablation.json").read_text())
    assert rows and all(set(r) == set(ROW_FIELDS) for r in rows)
    pairs = {(r["arm"], r["baseline_arm"]) for r in rows}
    assert {(a, "real") for a in ARMS[1:]} <= pairs
    assert {
        ("prior", "random_prior"),
        ("prior_llm", "prior"),
        ("prior_llm", "random_prior"),
        ("item", "random_item"),
        ("item_pruned", "item"),
        ("item_pruned", "random_item"),
    } <= pairs
    cold = [r for r in rows if r["baseline_arm"] == "content_knn"]
    assert cold and all(r["slice"] == "discover/cold_items" and r["baseline_model"] == "text_knn" for r in cold)
    assert {r["model"] for r in rows} == {"als", "fusion", "text_knn"} and all(r["seeds"] == [0, 1] for r in rows)
    # the content-kNN control is compared across arms only where its item text differs: enriched vs titles
    assert {(r["arm"], r["baseline_arm"]) for r in rows if r["model"] == "text_knn"} == {
        ("enriched", "real"),
        ("enriched", "content_knn"),
    }
    assert {r["phase"] for r in rows} == {"validation", "test", "all"}
    d = doc["decision"]
    assert d["validation_cuts"] == doc["cuts"][:1] and d["test_cuts"] == doc["cuts"][1:]
    # the primary endpoint per arm on validation only (an arm is absent where no short customer had a discovery)
    assert set(d["validation"]) <= set(ARMS[1:]) and all(r["phase"] == "validation" for r in d["validation"].values())


def test_synthetic_events_carry_lineage_and_stay_before_each_cut(ablation):
    out, doc = ablation
    synthetic = pd.read_parquet(out / "synthetic.parquet")
    assert set(synthetic["arm"]) >= {"prior", "prior_llm", "random_prior", "item"}
    for cut, rows in synthetic.groupby("cut"):
        assert (rows["timestamp"] < pd.Timestamp(cut)).all()
    llm = synthetic[synthetic["arm"] == "prior_llm"]
    assert llm["generator"].str.startswith("embedded:").all() and (llm["prompt"] == "earlier_purchase_score@1").all()
    assert synthetic.loc[synthetic["arm"].isin(["prior", "prior_llm"]), "context_only"].all()
    assert not synthetic.loc[synthetic["arm"] == "item", "context_only"].any()
    counts = {(c["cut"], c["arm"]): c["events"] for c in doc["synthetic_counts"]}
    share = doc["settings"]["strategies"]["prune_share"]
    for cut in doc["cuts"]:  # the control copies the count of the arm it mimics; pruning drops its share
        assert counts[(cut, "random_prior")] == counts[(cut, "prior")] > 0
        assert counts[(cut, "item_pruned")] == counts[(cut, "item")] - int(counts[(cut, "item")] * share)


def test_metrics_hold_every_arm_and_seed_and_real_only_controls_once(ablation):
    out, _ = ablation
    um = pd.read_parquet(out / "user_metrics.parquet")
    als = um[um["model"] == "als"].groupby(["arm", "seed"]).size()
    assert set(als.index) == {(a, s) for a in ARMS for s in (0, 1)}
    assert set(um.loc[um["model"] == "text_knn", "arm"]) == {"real", "enriched"}  # titles, titles + enrichment
    assert set(um.loc[um["model"] == "text_knn", "seed"]) == {0}
    # ALS reads no text, so the enriched arm (no events) reuses real only's fit: the same rows, seed by seed
    als_of = {a: um[(um["model"] == "als") & (um["arm"] == a)].drop(columns="arm").reset_index(drop=True) for a in ARMS}
    pd.testing.assert_frame_equal(als_of["enriched"], als_of["real"])


def test_the_enriched_arm_extends_only_enriched_products_text_and_adds_no_events(ablation):
    from ml.pipeline.synth_ablation import _arm_vectors
    from ml.synth.enrichment import stored_attributes

    out, doc = ablation
    events, catalog = bundled_events()
    settings = sample_settings(out / "home")
    accepted = stored_attributes(settings, catalog)
    assert doc["enriched_products"] == len(accepted) > 0  # most of the 25 answers pass validation
    ids = catalog["item_id"].to_numpy()
    vectors, n = _arm_vectors(["real", "enriched"], None, ids, catalog, settings, ["text_knn"])
    assert vectors["real"] is None and n == len(accepted)
    with pytest.raises(ValueError, match="reads item text"):
        _arm_vectors(["real", "enriched"], None, ids, catalog, settings, ["als"])
    with pytest.raises(ValueError, match="enrich-backfill"):
        _arm_vectors(["real", "enriched"], None, ids, catalog, sample_settings(out / "empty-home"), ["text_knn"])
    from ml.text.items import item_text_vectors

    titles = item_text_vectors(ids, catalog, encoder=shared_encoder())
    changed = ~(abs(vectors["enriched"].to_numpy() - titles) < 1e-6).all(1)
    assert set(ids[changed]) == set(accepted["item_id"])
    assert all(c["events"] == 0 for c in doc["synthetic_counts"] if c["arm"] == "enriched")


def _part(out, arms, dest):
    """A run folder holding only ``arms`` of the ablation in ``out``: what a run of those arms alone writes."""
    dest.mkdir()
    summary = json.loads((out / "ablation_summary.json").read_text())
    summary.update(arms=arms, synthetic_counts=[c for c in summary["synthetic_counts"] if c["arm"] in arms])
    (dest / "ablation_summary.json").write_text(json.dumps(summary))
    for name in ("user_metrics.parquet", "synthetic.parquet"):
        frame = pd.read_parquet(out / name)
        frame[frame["arm"].isin(arms)].to_parquet(dest / name)
    return dest


def test_runs_that_split_the_arms_merge_into_the_whole_ablation(ablation, tmp_path):
    out, doc = ablation
    settings = sample_settings(out / "home").with_overrides({"eval": {"bootstrap_resamples": 200}})
    a = _part(out, ARMS[:4], tmp_path / "a")  # real, prior, prior_llm, random_prior
    b = _part(out, ["real", *ARMS[4:]], tmp_path / "b")  # real and the item side, enriched
    merged = merge_ablations([a, b], settings, tmp_path / "merged")
    assert json.loads((tmp_path / "merged" / "ablation.json").read_text()) == json.loads(
        (out / "ablation.json").read_text()
    )  # every row, controls across the two runs included, as the single run computed it
    summary = json.loads((tmp_path / "merged" / "ablation_summary.json").read_text())
    assert summary["decision"] == json.loads((out / "ablation_summary.json").read_text())["decision"]
    assert merged["arms"] == ARMS and merged["merged_from"] == [str(a), str(b)]

    with pytest.raises(ValueError, match="each arm comes from one run"):
        merge_ablations([a, a], settings, tmp_path / "twice")
    metrics = pd.read_parquet(b / "user_metrics.parquet")
    metrics.loc[metrics.index[metrics["arm"] == "real"][0], "recall@10"] += 0.5
    metrics.to_parquet(b / "user_metrics.parquet")
    with pytest.raises(ValueError, match="real-only metrics differ"):
        merge_ablations([a, b], settings, tmp_path / "broken")
    summary = json.loads((b / "ablation_summary.json").read_text())
    (b / "ablation_summary.json").write_text(json.dumps({**summary, "seeds": [0]}))
    with pytest.raises(ValueError, match="its seeds differ"):
        merge_ablations([a, b], settings, tmp_path / "other")


def test_command_refuses_unknown_arms_before_reading_data(tmp_path, capsys):
    assert main(["synth-ablation", "--out", str(tmp_path), "--arms", "real,bogus"]) == 2
    assert "unknown arms ['bogus']" in capsys.readouterr().out
    assert main(["synth-ablation", "--out", str(tmp_path), "--arms", "prior"]) == 2
    assert main(["synth-ablation", "--out", str(tmp_path), "--arms", "real,prior@0"]) == 2
    assert "must be a positive integer" in capsys.readouterr().out


def test_command_says_to_run_the_backfill_when_the_enriched_arm_finds_an_empty_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECO_PATHS__HOME", str(tmp_path / "home"))
    args = ["synth-ablation", "--out", str(tmp_path / "out"), "--arms", "real,enriched", "--models", "text_knn"]
    assert main([*args, "--seeds", "0", "--span-days", "7", "--no-mlflow"]) == 2
    assert "fill it with `python -m ml enrich-backfill` first" in capsys.readouterr().err
    args[-1] = "als,fusion"  # no model reads item text: refused before any training
    assert main([*args, "--seeds", "0", "--span-days", "7", "--no-mlflow"]) == 2
    assert "needs a catalog and a model that reads item text" in capsys.readouterr().out


def test_the_report_writes_the_table_and_plot_and_logs_one_mlflow_run(ablation):
    import mlflow

    from ml.pipeline.ablation_command import report_ablation
    from ml.tracking.runs import log_ablation

    out, doc = ablation
    settings = sample_settings(out / "home")
    table, run_id = report_ablation(doc, out, settings, run_name="weekly synth-ablation test")
    assert (out / "ablation.md").read_text() == table and (out / "ablation.png").stat().st_size > 0
    assert table.splitlines()[0].startswith(f"# Synthesis ablation: {len(doc['cuts'])} cuts")
    run = mlflow.get_run(run_id)
    assert run.info.run_name == "weekly synth-ablation test" and run.data.tags["ablation"] == "synthesis"
    assert run.data.tags["chosen_arm"] == str(doc["decision"]["chosen_arm"])
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"ablation.json", "ablation.md", "ablation.png"} <= logged
    row = {"delta": 0.25, "ci_low": 0.125, "ci_high": 0.5}  # a share variant's name is no valid MLflow metric name
    decision = {**doc["decision"], "chosen_arm": "prior@1", "validation": {"prior@1": row}, "test": row}
    metrics = mlflow.get_run(log_ablation(settings, {**doc, "decision": decision}, [out / "ablation.md"])).data.metrics
    assert metrics["validation/prior_at_1/delta"] == 0.25 and metrics["test/prior_at_1/ci_low"] == 0.125


def test_the_weekly_step_runs_over_the_lake_and_a_failed_rerun_keeps_the_last_report(tmp_path):
    import mlflow

    from ml.data.lake import stage_partitioned
    from ml.data.prepare import INTERACTIONS
    from ml.pipeline.layout import Layout
    from ml.pipeline.steps import weekly_ablation_step

    events, catalog = bundled_events()
    settings = sample_settings(tmp_path / "home").with_overrides(
        {
            "eval": {"backtest": {"span_days": 7}, "bootstrap_resamples": 100},
            "synth": {
                "strategies": {
                    "ablation_arms": ["real", "prior", "random_prior"],
                    "ablation_models": ["als", "fusion"],
                    "ablation_seeds": [0],
                }
            },
        }
    )
    layout = Layout.of(settings, "2011-10-31")
    stage_partitioned(events, layout.lake, INTERACTIONS)
    layout.catalog.parent.mkdir(parents=True, exist_ok=True)
    catalog.to_parquet(layout.catalog)

    result = weekly_ablation_step(settings, "2011-10-31", "scheduled__2011-10-31")
    out = layout.run.weekly_ablation
    assert result["path"] == str(out) and result["nightly"] == "prior"
    assert {"ablation.json", "ablation_summary.json", "ablation.md", "ablation.png"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "ablation_summary.json").read_text())
    # the events end on 2011-10-31, so one week's span is one cut a 7-day horizon before 2011-11-01
    assert summary["arms"] == ["real", "prior", "random_prior"] and summary["cuts"] == ["2011-10-25"]
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.info.run_name == "weekly synth-ablation scheduled__2011-10-31"
    assert "ablation.md" in {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}

    before = (out / "ablation.json").read_text()
    broken = settings.with_overrides({"synth": {"strategies": {"ablation_arms": ["real", "bogus"]}}})
    with pytest.raises(ValueError, match="unknown arms"):
        weekly_ablation_step(broken, "2011-10-31", "manual__retry")
    assert (out / "ablation.json").read_text() == before  # the last complete report is still there
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no partial folder


def test_item_side_with_the_embedded_model_picks_buyers_among_the_text_candidates(tmp_path):
    """The real path of item_llm: the embedded model scores each candidate buyer's prompt (logic: tests/unit)."""
    import numpy as np

    from ml.config import StrategySettings
    from ml.data.interactions import ITEM_IDX, USER_IDX, Interactions
    from ml.synth import strategies as S
    from ml.synth.rerank import LanguageModelReranker

    day = pd.Timestamp("2011-06-01").value, 86_400 * 10**9
    bought = [(0, 0, 0), (0, 1, 3), (1, 0, 5), (2, 2, 1), (2, 0, 8), (3, 3, 9)]  # (customer, item, day)
    u, i, d = zip(*bought)
    train = Interactions.from_arrays(u, i, [day[0] + k * day[1] for k in d], n_users=4, n_items=4)
    titles = np.array(["RED HEART T-LIGHT HOLDER", "HANGING HEART DECORATION", "SET OF 3 CAKE TINS",
                       "PINK HEART CANDLE HOLDER"], dtype=object)  # fmt: skip
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.96, 0.28]], np.float32)  # item 3 nearest 0, then 1
    inputs = S.StrategyInputs(train, pd.Timestamp("2011-06-20").value, np.array([6, 6, 6, 1]), vectors, titles)
    opts = StrategySettings(cold_max_buyers=5, text_neighbours=2, buyers_per_item=2, buyer_candidates=3)
    rerank = LanguageModelReranker(shared_generator(), sample_settings(tmp_path))
    events = S.item_side(inputs, opts, rerank)
    assert (events[ITEM_IDX] == 3).all() and len(events) == 2  # two of its three candidates u0, u1, u2
    assert set(events[USER_IDX]) < {0, 1, 2}
    assert ((events[S.CONFIDENCE] > 0) & (events[S.CONFIDENCE] <= 1)).all()
