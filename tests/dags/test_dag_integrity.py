"""The DAG folder imports cleanly and the nightly DAG is wired as designed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "nightly_recommender"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags[DAG_ID]


def test_dag_folder_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dag_ids


def test_nightly_schedule_without_catchup(dag):
    assert dag.schedule == "0 2 * * *" and dag.timetable.expression == "0 2 * * *"
    assert dag.catchup is False and dag.max_active_runs == 1


def test_every_task_retries_and_has_a_docstring(dag):
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.doc_md or task.doc, task.task_id


def test_pipeline_order(dag):
    order = ["ingest", "clean", "gate", "build_dataset", "start_tracking"]
    for upstream, downstream in zip(order, order[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for train in ("train_baselines", "train_als", "train_bert4rec"):
        task = dag.get_task(train)
        assert "start_tracking" in task.upstream_task_ids and "fuse" in task.downstream_task_ids
    assert "evaluate" in dag.get_task("fuse").downstream_task_ids
    assert "synthesize" in dag.get_task("build_dataset").downstream_task_ids
    for train in ("train_als", "train_bert4rec"):
        assert "gate_synthetic" in dag.get_task(train).upstream_task_ids
    # nothing moves the alias before the refit model passed its smoke check
    publish = ["evaluate", "decide", "refit", "smoke_check", "register", "recommend", "summary"]
    for upstream, downstream in zip(publish, publish[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)
    assert {"gate", "gate_synthetic"} <= dag.get_task("decide").upstream_task_ids
    assert "smoke_check" in dag.get_task("register").upstream_task_ids
    backtest = dag.get_task("backtest")  # beside training: it fits its own models per cut
    assert {"build_dataset", "start_tracking"} <= backtest.upstream_task_ids
    assert backtest.downstream_task_ids == {"summary"}


def test_assets_clean_interactions_and_champion_feed_a_downstream_dag(dagbag, dag):
    assert [a.name for a in dag.get_task("clean").outlets] == ["shop_clean_interactions"]
    assert [a.name for a in dag.get_task("recommend").outlets] == ["shop_recommender_champion"]
    export = dagbag.dags["export_recommendations"]
    assert "shop_recommender_champion" in str(export.timetable.asset_condition)


def test_the_weekly_dag_backtests_every_model_on_its_own_schedule(dagbag):
    weekly = dagbag.dags["weekly_evaluation"]
    assert weekly.schedule == "0 5 * * 0" and weekly.catchup is False
    assert [t.task_id for t in weekly.tasks] == ["backtest_all_models", "synthesis_ablation"]
    assert weekly.get_task("backtest_all_models").pool == "gpu"
    assert weekly.get_task("synthesis_ablation").upstream_task_ids == {"backtest_all_models"}


GPU_TASKS = {
    "nightly_recommender": {"synthesize", "train_bert4rec"},
    "weekly_evaluation": {"backtest_all_models", "synthesis_ablation"},
}


def test_gpu_work_runs_in_the_gpu_pool_and_by_default_in_the_default_queue(dagbag):
    for dag_id, gpu_tasks in GPU_TASKS.items():
        for task in dagbag.dags[dag_id].tasks:
            assert task.pool == ("gpu" if task.task_id in gpu_tasks else "default_pool"), task.task_id
            assert task.queue == "default", task.task_id


def test_the_gpu_queue_comes_from_the_environment_when_the_dag_is_parsed():
    code = (
        "import json, sys; from airflow.dag_processing.dagbag import DagBag; bag = DagBag(dag_folder=sys.argv[1]); "
        "print(json.dumps({d: {t.task_id: t.queue for t in bag.dags[d].tasks} for d in sys.argv[2:]}))"
    )
    env = {**os.environ, "RECO_ORCHESTRATION__GPU_QUEUE": "gpu"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags"), *GPU_TASKS],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    queues = json.loads(out.stdout.strip().splitlines()[-1])
    for dag_id, gpu_tasks in GPU_TASKS.items():
        assert {t for t, q in queues[dag_id].items() if q == "gpu"} == gpu_tasks
        assert {q for t, q in queues[dag_id].items() if t not in gpu_tasks} <= {"default"}


def test_trigger_form_has_typed_params(dag):
    params = dag.params
    for name in (
        "as_of",
        "models",
        "test_days",
        "validation_days",
        "bert_max_epochs",
        "bert_max_minutes",
        "bert_item_text",
        "seed",
        "synthesis",
        "synth_backend",
        "synth_strategy",
        "synth_max_per_user",
        "backtest",
        "top_k",
        "new_product_slot",
        "promotion_margin",
        "dry_run",
    ):
        assert name in params
    models = params.get_param("models")
    assert models.schema["items"]["enum"] == [
        *("pop", "pop_recent", "rebuy", "als", "bert4rec", "sasrec"),
        *("newest", "text_knn", "markov", "item_knn"),  # the controls
    ]
    assert models.value == ["pop", "pop_recent", "rebuy", "als", "text_knn"]  # models.nightly: BERT4Rec when chosen
    strategy = params.get_param("synth_strategy")
    assert strategy.value == "prior" and "random_prior" not in strategy.schema["enum"]  # a control is no strategy
    from ml.pipeline.airflow_params import PARAM_SETTINGS

    read_by_tasks = {"as_of", "models", "synthesis", "backtest"}  # the rest override settings
    assert set(params) - read_by_tasks == set(PARAM_SETTINGS)
    assert params.get_param("test_days").schema["type"] == "integer"
    sections = {name: params.get_param(name).schema.get("section") for name in params}
    assert set(sections.values()) == {"Data", "Models", "Synthesis", "Promotion and serving"}
    assert sections["dry_run"] == "Promotion and serving" and sections["synthesis"] == "Synthesis"
    slot = params.get_param("new_product_slot")
    assert slot.value == "off" and slot.schema["enum"] == ["off", "newest", "text_knn"]


@pytest.mark.parametrize("dag_file", ["nightly_recommender.py", "weekly_evaluation.py", "export_recommendations.py"])
def test_dag_file_imports_nothing_heavy_at_top_level(dag_file):
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = [m for m in ('torch', 'pandas', 'mlflow', 'great_expectations', 'implicit') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags" / dag_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""
