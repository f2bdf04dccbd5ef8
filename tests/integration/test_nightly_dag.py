"""The nightly DAG runs end to end in real Airflow on two replayed nights: a first champion, then a promotion.

Both nights are the shared tiny-slice run (``conftest.nightly_runs``).
"""

import json
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _home(nightly_runs):
    for proc in nightly_runs.procs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return nightly_runs.home


def _client(nightly_runs):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(nightly_runs.mlflow_uri())
    return MlflowClient()


def test_both_nights_succeed(nightly_runs):
    _home(nightly_runs)
    assert len(nightly_runs.procs) == 2
    assert all("state=success" in p.stdout + p.stderr for p in nightly_runs.procs)


def test_night_one_wrote_lake_quality_results_metrics_and_backtest(nightly_runs):
    home, day = _home(nightly_runs), nightly_runs.days[0]
    report = json.loads((home / "lake" / "reports" / f"{day}.json").read_text())
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
    assert report["last_timestamp"] < "2010-06-24"
    assert (home / "quality" / "data_docs" / "index.html").exists()
    metrics = json.loads((home / "runs" / day / "metrics.json").read_text())
    assert set(metrics["models"]) == {"pop", "rebuy"}  # one fusion member: no fusion
    doc = json.loads((home / "runs" / day / "backtest" / "backtest.json").read_text())
    assert doc["cuts"] == ["2010-05-27", "2010-06-03", "2010-06-10", "2010-06-17"]
    assert set(doc["aggregate"]) == {"pop", "rebuy", "als", "newest", "fusion"}
    assert doc["totals"]["new_customers"] > 0
    summary = (home / "runs" / day / "summary.txt").read_text()
    assert "promotion: first_champion" in summary and "champion alias moved to version 1" in summary


def test_night_two_trained_on_synthetic_data_and_promoted_with_an_interval(nightly_runs):
    home, day = _home(nightly_runs), nightly_runs.days[1]
    metrics = json.loads((home / "runs" / day / "metrics.json").read_text())
    assert (home / "datasets" / day / "synthetic" / "synthetic_interactions.parquet").exists()
    assert set(metrics["models"]) == {"pop", "rebuy", "als", "als_synth", "fusion"}
    uplift = metrics["synthetic_uplift"]["als"]["discover"]["sparse"]["ndcg@10"]
    assert uplift["real"] == metrics["models"]["als"]["views"]["discover"]["sparse"]["ndcg@10"]
    decision = json.loads((home / "runs" / day / "promotion" / "decision.json").read_text())
    assert decision["action"] == "promote" and decision["champion_version"] == 1
    assert decision["champion_config"]["model"] == "pop" and decision["challenger"] in ("als", "als_synth", "fusion")
    primary = decision["primary"]
    assert primary["ci_low"] > 0 and primary["delta"] >= primary["ci_low"]
    assert "interval is above zero" in decision["reasons"][-1]
    report = (home / "runs" / day / "promotion" / "report.md").read_text()
    assert "| discover | overall | ndcg@10 |" in report


def test_the_registry_holds_one_served_model_with_its_alias_history(nightly_runs):
    _home(nightly_runs)
    client = _client(nightly_runs)
    versions = client.search_model_versions("name='shop-recommender'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert [m.name for m in client.search_registered_models()] == ["shop-recommender"]
    champion = client.get_model_version_by_alias("shop-recommender", "champion")
    assert int(champion.version) == 2 and champion.tags["decision"] == "promote"
    assert json.loads(champion.tags["config"])["model"] != "pop"
    first = client.get_model_version("shop-recommender", "1")
    assert first.tags["decision"] == "first_champion" and first.tags["as_of"] == nightly_runs.days[0]


def test_batch_lists_exist_for_each_nights_champion_version(nightly_runs):
    home = _home(nightly_runs)
    for day, version in zip(nightly_runs.days, (1, 2)):
        lists = pd.read_parquet(home / "serving" / f"date={day}" / "recommendations.parquet")
        assert set(lists["model_version"]) == {version} and set(lists["view"]) == {"repeat", "discover"}
        assert lists.groupby(["user_id", "view"]).size().max() == 10
        assert set(lists["source"]) == {"model"}


def test_mlflow_runs_carry_airflow_tags_a_description_and_the_experiment_kind(nightly_runs):
    _home(nightly_runs)
    client = _client(nightly_runs)
    exp = client.get_experiment_by_name("nightly-recommender")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    night_two = next(r for r in parents if r.data.tags.get("promotion_action") == "promote")
    assert night_two.data.tags["airflow_dag_id"] == "nightly_recommender"
    assert night_two.data.tags["mlflow.note.content"].startswith("```\nnightly pipeline summary")
    assert night_two.data.tags["synthetic_status"] == "ok" and "promotion/delta" in night_two.data.metrics
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == night_two.info.run_id]
    by_model = {r.data.tags["model"]: r for r in children}
    assert set(by_model) == {"pop", "rebuy", "als", "als_synth", "fusion", "served"}
    assert by_model["als"].data.tags["airflow_task_id"] == "train_als"
    assert by_model["als"].data.tags["airflow_run_id"] == night_two.data.tags["airflow_run_id"]
    assert "discover/overall/ndcg_at_10" in by_model["als"].data.metrics
    assert by_model["served"].data.tags["smoke_check"] == "passed"
    assert by_model["served"].data.tags["airflow_task_id"] == "refit"


def test_rollback_from_the_command_line_restores_the_first_version(nightly_runs):
    _home(nightly_runs)
    env = {**nightly_runs.env}
    run = [sys.executable, "-m", "ml", "promote"]
    moved = subprocess.run([*run, "--rollback", "--why", "test rollback"], env=env, capture_output=True, text=True)
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["version"] == 1
    shown = subprocess.run(run, env=env, capture_output=True, text=True)
    assert "shop-recommender@champion = version 1" in shown.stdout and "rollback: test rollback" in shown.stdout
    refused = subprocess.run([*run, "--force", "2"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "say why" in refused.stderr
    forced = subprocess.run([*run, "--force", "2", "--why", "restore"], env=env, capture_output=True, text=True)
    assert json.loads(forced.stdout)["forced"] is True
