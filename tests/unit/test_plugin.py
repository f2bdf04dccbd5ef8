"""The Airflow plugin loads (cheaply), reaches the DAG's TaskFlow tasks, and links a task to the MLflow run it wrote.

MLflow is real: a SQLite store under a temporary home, with a parent run and nested runs tagged as the
pipeline tags them (``airflow_dag_id``, ``airflow_run_id``, ``airflow_task_id``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "reco_plugin.py"
DAG_ID = "nightly_recommender"
RUN_ID = "manual__2011-12-09T02:00:00+00:00"
VIEW = "?workflowType=machine_learning"  # the UI's model-training view (not its GenAI one)


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("reco_plugin_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store(settings, monkeypatch):
    """An experiment with two DAG runs: parent + nested per-model runs, and another DAG's run with the same id."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("RECO_PATHS__HOME", str(settings.paths.home))
    monkeypatch.setenv("RECO_TRACKING__UI_URL", "http://mlflow.test:5000/")
    settings.paths.mlflow.mkdir(parents=True)
    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    exp = client.create_experiment(settings.tracking.experiment)

    clock = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))  # distinct start times, in creation order

    def run(tags: dict, parent=None):
        tags = {**tags, **({"mlflow.parentRunId": parent} if parent else {})}
        created = client.create_run(exp, start_time=next(clock), tags=tags)
        client.set_terminated(created.info.run_id)
        return created.info.run_id

    common = {"airflow_dag_id": DAG_ID, "airflow_run_id": RUN_ID}
    # as the pipeline tags them: the parent carries the task that opened it, each nested run its training task
    ids = {"parent": run({**common, "airflow_task_id": "start_tracking"})}
    ids["als"] = run({**common, "airflow_task_id": "train_als"}, ids["parent"])
    ids["pop"] = run({**common, "airflow_task_id": "train_baselines"}, ids["parent"])
    ids["rebuy"] = run({**common, "airflow_task_id": "train_baselines"}, ids["parent"])
    ids["other_parent"] = run({"airflow_dag_id": DAG_ID, "airflow_run_id": "manual__other"})
    ids["other_dag"] = run({"airflow_dag_id": "another_dag", "airflow_run_id": RUN_ID, "airflow_task_id": "train_x"})
    return exp, ids


def key(task_id: str, run_id: str = RUN_ID, dag_id: str = DAG_ID):
    from airflow.models.taskinstancekey import TaskInstanceKey

    return TaskInstanceKey(dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=1, map_index=-1)


def test_plugin_is_an_airflow_plugin_with_both_links_and_views(plugin):
    from airflow.plugins_manager import AirflowPlugin

    assert issubclass(plugin.RecoPlugin, AirflowPlugin)
    assert [link.name for link in plugin.RecoPlugin.global_operator_extra_links] == ["MLflow run", "Data Docs"]
    views = {v["name"]: v for v in plugin.RecoPlugin.external_views}
    assert set(views) == {"MLflow", "Data Docs"}
    assert all(v["destination"] == "nav" and v["href"].startswith("http://127.0.0.1:") for v in views.values())
    assert views["Data Docs"]["href"].endswith("/index.html")


def test_airflow_loads_the_plugin_from_the_plugins_folder():
    from airflow import plugins_manager

    names = {link.name for link in plugins_manager.get_global_operator_extra_links()}
    assert {"MLflow run", "Data Docs"} <= names


def test_global_links_reach_the_dags_taskflow_tasks(monkeypatch):
    """The api-server asks the serialized task for its links: TaskFlow tasks get the global ones too."""
    monkeypatch.syspath_prepend(str(ROOT / "dags"))  # as Airflow does for the DAG folder's shared modules
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[DAG_ID]
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    for task_id in ("train_als", "gate"):
        assert {"MLflow run", "Data Docs"} <= set(serialized.get_task(task_id).extra_links)


def test_importing_the_plugin_does_not_import_mlflow():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('p', {str(PLUGIN)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_link_opens_the_nested_run_the_task_wrote(plugin, store):
    exp, ids = store
    assert plugin.MlflowRunLink().get_link(None, ti_key=key("train_als")) == (
        f"http://mlflow.test:5000/#/experiments/{exp}/runs/{ids['als']}?workflowType=machine_learning"
    )
    # a task that trained several models: its newest run
    assert plugin.MlflowRunLink().get_link(None, ti_key=key("train_baselines")).endswith(f"/runs/{ids['rebuy']}{VIEW}")


def test_a_task_without_its_own_run_links_to_the_dag_runs_parent(plugin, store):
    exp, ids = store
    assert plugin.MlflowRunLink().get_link(None, ti_key=key("ingest")).endswith(f"/runs/{ids['parent']}{VIEW}")
    # another DAG's run with the same run id is never taken
    assert plugin.MlflowRunLink().get_link(None, ti_key=key("train_x")).endswith(f"/runs/{ids['parent']}{VIEW}")


def test_nothing_matching_links_to_the_experiment(plugin, store):
    exp, _ = store
    url = plugin.MlflowRunLink().get_link(None, ti_key=key("ingest", run_id="manual__never"))
    assert url == f"http://mlflow.test:5000/#/experiments/{exp}{VIEW}"
    quotes = plugin.MlflowRunLink().get_link(None, ti_key=key("ingest", run_id='it\'s "odd"'))
    assert quotes == f"http://mlflow.test:5000/#/experiments/{exp}{VIEW}"


def test_no_store_yet_greys_the_link_out_and_creates_nothing(plugin, settings, monkeypatch):
    monkeypatch.setenv("RECO_PATHS__HOME", str(settings.paths.home))
    assert plugin.MlflowRunLink().get_link(None, ti_key=key("train_als")) == ""
    assert not settings.paths.mlflow.exists()


def test_a_failing_lookup_never_raises(plugin, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("store unreachable")

    monkeypatch.setattr(plugin, "mlflow_run_url", broken)
    assert plugin.MlflowRunLink().get_link(None, ti_key=key("train_als")) == ""


def test_data_docs_link_follows_the_docs_port(plugin, monkeypatch):
    assert plugin.DataDocsLink().get_link(None, ti_key=key("gate")) == "http://127.0.0.1:8081/index.html"
    monkeypatch.setenv("RECO_UI_DOCS_PORT", "18081")
    assert plugin.DataDocsLink().get_link(None, ti_key=key("gate")) == "http://127.0.0.1:18081/index.html"
