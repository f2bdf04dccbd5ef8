"""The nightly DAG runs end to end in real Airflow on the bundled data and records its run in MLflow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
AS_OF = "2010-06-30"  # an early replay day keeps the run short (about 200k events)


@pytest.fixture(scope="module")
def dag_run(airflow_db, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    # a small enrichment budget keeps the run short; interaction synthesis runs in full
    env = {
        **os.environ,
        "RECO_PATHS__HOME": str(home),
        "RECO_SYNTH__ENRICH_MAX_ITEMS": "20",
        # a 4-week backtest of the cheap models (the default replays 12 weeks with the text control too)
        "RECO_EVAL__BACKTEST__SPAN_DAYS": "28",
        "RECO_EVAL__BACKTEST__MODELS": '["pop", "rebuy", "als", "newest", "fusion"]',
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    conf = {"as_of": AS_OF, "models": ["pop", "rebuy", "als"], "register_models": True}
    proc = subprocess.run(
        [airflow, "dags", "test", "nightly_recommender", AS_OF, "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc, home


def test_dag_run_succeeds(dag_run):
    proc, home = dag_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "state=success" in proc.stdout + proc.stderr


def test_run_wrote_lake_quality_results_and_metrics(dag_run):
    _, home = dag_run
    report = json.loads((home / "lake" / "reports" / f"{AS_OF}.json").read_text())
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
    assert report["last_timestamp"] < "2010-07-01"
    assert (home / "quality" / "data_docs" / "index.html").exists()
    metrics = json.loads((home / "runs" / AS_OF / "metrics.json").read_text())
    # synthesis ran with the embedded model and passed its gate: ALS was also trained on real + synthetic data
    assert (home / "datasets" / AS_OF / "synthetic" / "synthetic_interactions.parquet").exists()
    assert set(metrics["models"]) == {"pop", "rebuy", "als", "als_synth", "fusion"}
    uplift = metrics["synthetic_uplift"]["als"]["discover"]["sparse"]["ndcg@10"]
    assert uplift["real"] == metrics["models"]["als"]["views"]["discover"]["sparse"]["ndcg@10"]
    assert uplift["real_synthetic"] == metrics["models"]["als_synth"]["views"]["discover"]["sparse"]["ndcg@10"]
    for entry in metrics["models"].values():
        for view in ("repeat", "discover"):
            for seg in ("overall", "sparse", "rest"):
                assert 0.0 <= entry["views"][view][seg]["ndcg@10"] <= 1.0
    assert (
        metrics["models"]["als"]["views"]["discover"]["overall"]["ndcg@10"]
        > metrics["models"]["pop"]["views"]["discover"]["overall"]["ndcg@10"]
    )
    summary = (home / "runs" / AS_OF / "summary.txt").read_text()
    assert summary.startswith("nightly pipeline summary") and "backtest 4 weekly cuts" in summary


def test_backtest_of_the_cheap_models_is_recorded(dag_run):
    _, home = dag_run
    doc = json.loads((home / "runs" / AS_OF / "backtest" / "backtest.json").read_text())
    assert doc["cuts"] == ["2010-06-03", "2010-06-10", "2010-06-17", "2010-06-24"]
    assert set(doc["aggregate"]) == {"pop", "rebuy", "als", "newest", "fusion"}
    assert doc["totals"]["new_customers"] > 0
    for cut in doc["cuts"]:
        assert (home / "runs" / AS_OF / "backtest" / "cuts" / cut / "recommendations.parquet").exists()


def test_mlflow_has_a_parent_run_with_a_nested_run_per_model(dag_run):
    import mlflow
    from mlflow.tracking import MlflowClient

    _, home = dag_run
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("nightly-recommender")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert {r.data.tags["model"] for r in children} == {"pop", "rebuy", "als", "als_synth", "fusion"}
    assert parents[0].data.tags["synthetic_status"] == "ok"
    metrics = json.loads((home / "runs" / AS_OF / "metrics.json").read_text())
    delta = metrics["synthetic_uplift"]["als"]["discover"]["sparse"]["ndcg@10"]["delta"]
    assert parents[0].data.metrics["uplift/als/discover/sparse/ndcg_at_10"] == pytest.approx(delta)
    assert "uplift/als/discover/sparse/ndcg_at_10_ci_low" in parents[0].data.metrics
    backtest = json.loads((home / "runs" / AS_OF / "backtest" / "backtest.json").read_text())
    als_bt = backtest["aggregate"]["als"]["discover"]["overall"]["ndcg@10"]
    assert parents[0].data.metrics["backtest/als/discover/overall/ndcg_at_10"] == pytest.approx(als_bt["mean"])
    assert parents[0].data.metrics["backtest/als/discover/overall/ndcg_at_10_ci_low"] == pytest.approx(als_bt["ci_low"])
    assert "backtest/als-pop/discover/overall/ndcg_at_10_p_value" in parents[0].data.metrics
    als = next(r for r in children if r.data.tags["model"] == "als")
    assert "discover/overall/ndcg_at_10" in als.data.metrics and "fit_seconds" in als.data.metrics
    assert als.data.params["factors"] == "64"
    assert parents[0].inputs.dataset_inputs, "the dataset is recorded as a run input"
    versions = client.search_model_versions("name='shop-recommender-als'")
    assert len(versions) == 1
