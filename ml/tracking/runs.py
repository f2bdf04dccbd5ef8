"""MLflow tracking: one parent run per pipeline run, a nested run per model, models as pyfunc.

All runs of one pipeline run share the tag ``pipeline_key`` (the Airflow DAG-run id, or a benchmark
id), so a retried task finds and reuses its runs instead of duplicating them; a new DAG run for the
same date is a new execution and gets runs of its own.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from ml.config import Settings
from ml.tracking.names import flat_params, group_metrics, metric_name, numeric_leaves

PIPELINE_KEY = "pipeline_key"
MODEL_TAG = "model"
# where a run came from in Airflow; the plugin's "MLflow run" link finds a task's run by them
AIRFLOW_DAG_TAG, AIRFLOW_RUN_TAG, AIRFLOW_TASK_TAG = "airflow_dag_id", "airflow_run_id", "airflow_task_id"
# MLflow's UI opens an experiment of this kind on its training runs and charts (not the GenAI traces view)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
DESCRIPTION_TAG = "mlflow.note.content"  # a run's description in the UI


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store and make sure the experiment exists.

    A new experiment's artifacts go under ``<home>/mlflow/artifacts`` (local store) so nothing is
    written to the current working directory.

    Returns:
        The experiment id.
    """
    settings.paths.mlflow.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    exp = mlflow.get_experiment_by_name(settings.tracking.experiment)
    if exp is not None:
        mlflow.set_experiment(settings.tracking.experiment)
        if any(exp.tags.get(k) != v for k, v in EXPERIMENT_KIND.items()):
            mlflow.set_experiment_tags(EXPERIMENT_KIND)
        return exp.experiment_id
    location = None
    if not settings.tracking.tracking_uri:
        location = (settings.paths.mlflow / "artifacts").resolve().as_uri()
    exp_id = mlflow.create_experiment(settings.tracking.experiment, artifact_location=location, tags=EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def _find(settings: Settings, key: str, model: str | None) -> str | None:
    exp_id = configure(settings)
    query = f"tags.{PIPELINE_KEY} = '{key}'"
    query += f" and tags.{MODEL_TAG} = '{model}'" if model else " and tags.mlflow.parentRunId IS NULL"
    runs = MlflowClient().search_runs(
        [exp_id], filter_string=query, max_results=50, order_by=["attributes.start_time DESC"]
    )
    if model is None:
        runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return runs[0].info.run_id if runs else None


def start_parent_run(settings: Settings, key: str, params: dict, tags: dict | None = None) -> str:
    """Create (or reuse, for the same ``key``) the parent run of a pipeline run and log its params.

    Returns:
        The parent run id.
    """
    run_id = _find(settings, key, None)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"pipeline {key}") as run:
        mlflow.set_tags({PIPELINE_KEY: key, **(tags or {})})
        mlflow.log_params(flat_params(params))
        return run.info.run_id


def model_run(settings: Settings, parent_run_id: str, key: str, model: str, tags: dict | None = None) -> str:
    """The nested run of ``model`` under the parent (created on first use, reused on reruns).

    Args:
        tags: extra tags set on creation (e.g. the Airflow task that trains it, ``AIRFLOW_TASK_TAG``).
    """
    run_id = _find(settings, key, model)
    if run_id:
        return run_id
    parent_tags = MlflowClient().get_run(parent_run_id).data.tags
    inherited = {k: parent_tags[k] for k in (AIRFLOW_DAG_TAG, AIRFLOW_RUN_TAG) if k in parent_tags}
    with mlflow.start_run(run_id=parent_run_id):
        with mlflow.start_run(run_name=model, nested=True) as child:
            mlflow.set_tags({PIPELINE_KEY: key, MODEL_TAG: model, **inherited, **(tags or {})})
            return child.info.run_id


def log_to_run(
    settings: Settings,
    run_id: str,
    params: dict | None = None,
    metrics: dict | None = None,
    artifacts: list[Path] | None = None,
    tags: dict | None = None,
) -> None:
    """Log params, numeric metrics, files and tags to an existing run."""
    configure(settings)
    with mlflow.start_run(run_id=run_id):
        if params:
            mlflow.log_params(flat_params(params))
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        for path in artifacts or []:
            mlflow.log_artifact(str(path))
        if tags:
            mlflow.set_tags(tags)


def log_dataset(settings: Settings, run_id: str, data, name: str) -> None:
    """Record the split as an MLflow dataset input (name, digest, source folder, counts)."""
    configure(settings)
    with mlflow.start_run(run_id=run_id):
        sample = data.train.head(1000).assign(timestamp=lambda f: f["timestamp"].astype("int64"))
        ds = mlflow.data.from_pandas(sample, source=str(data.info.get("path", "")), name=name, digest=data.digest())
        mlflow.log_input(ds, context="training")
        mlflow.log_params({f"data.{k}": v for k, v in data.info.items() if not isinstance(v, (dict, list))})


def model_metrics(entry: dict) -> dict[str, float]:
    """One model's metrics.json entry flattened to MLflow names: ``<view>/<segment>/ndcg_at_10``."""
    out = {}
    for view, result in entry["views"].items():
        out.update({f"{view}/{k}": v for k, v in group_metrics(result).items()})
    for key in ("fit_seconds", "refit_seconds"):
        if entry.get(key) is not None:
            out[key] = entry[key]
    return out


def lightning_logger(settings: Settings, run_id: str):
    """A Lightning ``MLFlowLogger`` writing a model's training curves into its nested run."""
    from pytorch_lightning.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name=settings.tracking.experiment, tracking_uri=settings.mlflow_uri, run_id=run_id)


def log_fit(settings: Settings, run_id: str, result: dict, params: dict) -> None:
    """Record one fitted model in its run: parameters, fit time, training summary and validation scores.

    Args:
        result: what fitting returned (``fit_seconds``, ``summary``, ``valid`` per view).
        params: the model's parameters (settings section, seed, training data).
    """
    metrics = {
        "fit_seconds": result["fit_seconds"],
        **numeric_leaves(result["summary"]),
        **numeric_leaves(result["valid"], "valid/"),
    }
    log_to_run(
        settings, run_id, params=params, metrics=metrics, tags={"device": str(result["summary"].get("device", "cpu"))}
    )


def log_search(settings: Settings, name: str, trials: list[dict], best: dict, artifacts: list[Path] = ()) -> str:
    """Record a hyper-parameter search: a parent run with the best trial, one nested run per trial.

    Args:
        name: what was searched (e.g. ``tune als``): the parent run's name.
        trials: ``{"number", "params", "value", "metrics"}`` per trial.
        best: the chosen trial (same keys).
        artifacts: files to attach to the parent (e.g. the search document).
    Returns:
        The parent run id.
    """
    configure(settings)
    with mlflow.start_run(run_name=name) as parent:
        mlflow.set_tags({"search": name, "trials": str(len(trials))})
        mlflow.log_params(flat_params({"best": best["params"]}))
        mlflow.log_metrics({"best_value": float(best["value"]), **{f"best/{k}": v for k, v in best["metrics"].items()}})
        for path in artifacts:
            mlflow.log_artifact(str(path))
        for trial in trials:
            with mlflow.start_run(run_name=f"trial {trial['number']}", nested=True):
                mlflow.log_params(flat_params(trial["params"]))
                mlflow.log_metrics({"value": float(trial["value"]), **trial["metrics"]})
        return parent.info.run_id


def log_ablation(settings: Settings, doc: dict, artifacts: list[Path], run_name: str | None = None) -> str:
    """Record a synthesis ablation as one run: its settings, the primary endpoint per arm and phase, the files.

    Returns:
        The run id.
    """
    configure(settings)
    d = doc["decision"]
    metrics = {metric_name(f"validation/{arm}/delta"): row["delta"] for arm, row in d["validation"].items()}
    if d.get("test"):
        chosen = d["chosen_arm"]
        metrics.update({metric_name(f"test/{chosen}/{k}"): d["test"][k] for k in ("delta", "ci_low", "ci_high")})
    with mlflow.start_run(run_name=run_name or f"synth-ablation {doc['cuts'][0]}..{doc['cuts'][-1]}") as run:
        mlflow.set_tags({"ablation": "synthesis", "chosen_arm": str(d["chosen_arm"])})
        mlflow.log_params(flat_params({"arms": doc["arms"], "models": doc["models"], "seeds": doc["seeds"]}))
        mlflow.log_params(flat_params({"strategies": doc["settings"]["strategies"]}))
        if metrics:
            mlflow.log_metrics(metrics)
        for path in artifacts:
            mlflow.log_artifact(str(path))
        return run.info.run_id
