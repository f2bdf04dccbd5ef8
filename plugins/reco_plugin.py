"""The recommender's Airflow plugin: from every task to the MLflow run it wrote and to the Data Docs.

* Extra links on every task (TaskFlow ones included: the api-server adds global links to each serialized
  task): **MLflow run** opens the run the task logged (tags ``airflow_dag_id``, ``airflow_run_id``,
  ``airflow_task_id``), else the parent run of the DAG run, else the experiment; **Data Docs** opens the
  Great Expectations Data Docs.
* Two entries in the UI's navigation (``external_views``): the MLflow UI and the Data Docs.

The URLs follow ``make up`` (``ml.pipeline.local_services``): ``tracking.ui_url`` or
``http://127.0.0.1:<RECO_UI_MLFLOW_PORT>``, and ``http://127.0.0.1:<RECO_UI_DOCS_PORT>/index.html``.
Importing this module stays light: MLflow is imported only when a link is asked for.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

log = logging.getLogger(__name__)

MAX_RUNS = 200  # runs a lookup reads (a DAG run logs a parent and a nested run per model)
# MLflow 3.17's UI opens in its GenAI view unless told otherwise: land on the training runs
TRAINING_VIEW = "?workflowType=machine_learning"


def mlflow_ui_url() -> str:
    """The MLflow UI that links open (``tracking.ui_url``, else the local UI of ``make up``)."""
    try:
        from ml.config import get_settings
        from ml.pipeline.local_services import mlflow_ui_url as configured

        return configured(get_settings())
    except Exception:  # a bad settings file must not keep Airflow from loading its plugins
        log.exception("reading the MLflow UI URL from the settings")
        return f"http://127.0.0.1:{os.environ.get('RECO_UI_MLFLOW_PORT', '5000')}"


def data_docs_url() -> str:
    """The Great Expectations Data Docs' front page (the static server of ``make up``)."""
    return f"http://127.0.0.1:{os.environ.get('RECO_UI_DOCS_PORT', '8081')}/index.html"


def _literal(value: str) -> str | None:
    """``value`` quoted for an MLflow search filter (None when it holds both kinds of quote)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def mlflow_run_url(dag_id: str, run_id: str, task_id: str, settings=None) -> str:
    """The MLflow UI page of what task ``task_id`` of DAG run ``run_id`` logged.

    The newest run tagged with this DAG run and task (a task that trained several models logged one nested
    run each: the last one); else the DAG run's parent run (tagged with the DAG run, without
    ``mlflow.parentRunId``); else the experiment's page. A run tagged with another DAG id is never taken
    (run ids are unique per DAG only). Pages open in the UI's model-training view.

    Returns:
        The URL, or ``""`` when the store or the experiment does not exist (the UI then greys the link out).
    """
    from mlflow.tracking import MlflowClient

    from ml.config import get_settings
    from ml.pipeline.local_services import mlflow_ui_url as configured

    settings = settings or get_settings()
    uri = settings.mlflow_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return ""  # nothing was tracked yet; never create an empty store from a link
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(settings.tracking.experiment)
    if experiment is None:
        return ""
    base = f"{configured(settings)}/#/experiments/{experiment.experiment_id}"
    run, task = _literal(run_id), _literal(task_id)
    if run is None:
        return base + TRAINING_VIEW

    def search(where: str, order: str) -> list:
        found = client.search_runs(
            [experiment.experiment_id], where, max_results=MAX_RUNS, order_by=[f"attributes.start_time {order}"]
        )
        return [r for r in found if r.data.tags.get("airflow_dag_id", dag_id) == dag_id]

    if task is not None:
        own = search(f"tags.airflow_run_id = {run} AND tags.airflow_task_id = {task}", "DESC")
        if own:
            return f"{base}/runs/{own[0].info.run_id}{TRAINING_VIEW}"
    parents = [r for r in search(f"tags.airflow_run_id = {run}", "ASC") if "mlflow.parentRunId" not in r.data.tags]
    if parents:
        return f"{base}/runs/{parents[0].info.run_id}{TRAINING_VIEW}"
    return base + TRAINING_VIEW


class MlflowRunLink(BaseOperatorLink):
    """Every task's link to the MLflow run it logged (or its DAG run's parent run, or the experiment)."""

    name = "MLflow run"

    def get_link(self, operator, *, ti_key) -> str:
        try:
            return mlflow_run_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id)
        except Exception:  # a link must never break the task page
            log.exception("looking up the MLflow run of %s", ti_key)
            return ""


class DataDocsLink(BaseOperatorLink):
    """Every task's link to the Great Expectations Data Docs."""

    name = "Data Docs"

    def get_link(self, operator, *, ti_key) -> str:
        return data_docs_url()


class RecoPlugin(AirflowPlugin):
    """Links from tasks to MLflow and the Data Docs, and both UIs in Airflow's navigation."""

    name = "reco"
    global_operator_extra_links = [MlflowRunLink(), DataDocsLink()]
    # no url_route: plain links in the navigation that open the UIs themselves (not embedded in a frame)
    external_views = [
        {"name": "MLflow", "href": mlflow_ui_url(), "destination": "nav", "category": "Recommender"},
        {"name": "Data Docs", "href": data_docs_url(), "destination": "nav", "category": "Recommender"},
    ]
