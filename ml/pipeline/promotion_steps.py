"""The nightly DAG's last steps: decide -> refit -> smoke-check -> register and move the alias -> recommend.

Each step is what one Airflow task calls. Nothing moves the alias before the refit model has passed
its smoke check: ``register_step`` runs only after ``smoke_check_step`` succeeded, and both skip
when the decision holds (a failed gate, a dry run). Every output lives under
``runs/<day>/promotion/`` and ``runs/<day>/served/`` (replaced on a rerun), the batch lists under
``serving/date=<day>/``; a retried task reuses the version its pipeline run registered.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data import lake
from ml.data.dataset import SplitData
from ml.data.prepare import read_lake_catalog, read_lake_interactions
from ml.models import registry
from ml.pipeline.layout import Layout, RunFolder
from ml.pipeline.promotion import (
    choose_challenger,
    comparison_table,
    decide,
    model_config,
    report_markdown,
    same_config,
)

log = logging.getLogger(__name__)
SERVED = "served"  # the nested MLflow run (and run-folder entry) of the refit, served model


def _synthetic_frame(synthetic: dict | None) -> pd.DataFrame | None:
    path = (synthetic or {}).get("path")
    return pd.read_parquet(path) if path and (synthetic or {}).get("passed") else None


def _uses_synthetic(config: dict | None) -> bool:
    keys = [config["model"], *(config.get("members") or [])] if config else []
    return any(registry.is_synthetic(k) for k in keys)


def decide_step(
    settings: Settings,
    as_of,
    evaluated: list[str],
    gates: dict,
    synthetic: dict | None = None,
    parent_run_id: str | None = None,
) -> dict:
    """Choose the challenger on validation, compare it with the champion's configuration on today's test data, decide.

    Args:
        evaluated: the models the run evaluated (candidates).
        gates: the data gates' results (``gate_step``'s ``{name: {"success": ...}}``).
        synthetic: the synthetic gate's outcome (``{"passed", "path"}``).
    Returns:
        The decision document (also ``runs/<day>/promotion/decision.json`` and ``report.md``).
    """
    from ml.tracking import registry as model_registry
    from ml.tracking import runs

    layout = Layout.of(settings, as_of)
    run = layout.run
    view = settings.promotion.view
    challenger, scores = choose_challenger(run, evaluated, view)
    challenger_config = model_config(challenger, settings, run)
    champion = model_registry.champion(settings)
    champion_config = model_registry.config_of(champion) if champion else None
    gate_results = {f"data:{name}": bool(r.get("success")) for name, r in gates.items()}
    if _uses_synthetic(challenger_config):
        gate_results["synthetic"] = bool((synthetic or {}).get("passed"))
    table, notes = [], []
    if champion_config:
        rows = pd.read_parquet(run.user_metrics)
        label = f"champion v{champion.version}"
        twin = next((k for k in evaluated if same_config(model_config(k, settings, run), champion_config)), None)
        try:
            if twin is not None:
                champion_rows = rows[rows["model"] == twin]
                notes.append(f"the champion's configuration is today's {twin}: compared on its scores")
            else:
                from ml.pipeline.publish import evaluate_config

                champion_rows = evaluate_config(
                    champion_config,
                    SplitData.load(layout.dataset),
                    settings,
                    RunFolder(run.root / "champion"),
                    read_lake_catalog(layout.lake),
                    _synthetic_frame(synthetic),
                )
                notes.append("the champion's configuration was fitted again on today's split with its settings")
            table = comparison_table(champion_rows, rows[rows["model"] == challenger], settings, label, challenger)
        except (ValueError, KeyError) as exc:  # e.g. it needs synthetic data that failed its gate today
            gate_results["champion_comparable"] = False
            notes.append(f"the champion's configuration could not be evaluated today: {exc}")
    decision = decide(
        settings,
        challenger,
        challenger_config,
        scores,
        gate_results,
        champion and int(champion.version),
        champion_config,
        table,
    )
    decision.reasons = notes + decision.reasons
    doc = {"as_of": layout.as_of, **decision.to_dict()}
    folder = run.root / "promotion"
    lake.write_json_atomic(doc, folder / "decision.json")
    report = folder / "report.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(report_markdown(decision))
    if parent_run_id:
        primary = decision.primary or {}
        metrics = {f"promotion/{k}": primary[k] for k in ("delta", "ci_low", "ci_high", "p_value") if k in primary}
        runs.log_to_run(
            settings,
            parent_run_id,
            metrics=metrics,
            artifacts=[folder / "decision.json", report],
            tags={
                "promotion_action": decision.action,
                "promotion_challenger": challenger,
                "promotion_reasons": " | ".join(decision.reasons)[:4000],
            },
        )
    return doc


def refit_step(
    settings: Settings,
    as_of,
    decision: dict,
    parent_run_id: str | None,
    pipeline_key: str,
    run_tags: dict | None = None,
    synthetic_gate: dict | None = None,
) -> dict:
    """Refit the decided configuration on every event up to ``as_of`` and log it as the pyfunc model (not registered).

    A configuration with a synthetic variant refits with the synthetic interactions that passed today's gate
    (``synthetic_gate``, the gate's outcome); without them the refit fails and nothing is registered.

    Returns:
        ``{"skipped": True, "reason"}`` when the decision holds or is a dry run; else ``{"model_uri",
        "run_id", "config", "users", "items", "refit_seconds", "new_product_slot"}`` (``off`` or
        ``<model>@<rank>``).
    """
    import time

    from ml.pipeline.publish import full_data, refit
    from ml.tracking import runs
    from ml.tracking.pyfunc import log_recommender

    if not decision["moves_alias"]:
        return {"skipped": True, "reason": "; ".join(decision["reasons"])}
    layout = Layout.of(settings, as_of)
    config = decision["serve"]
    started = time.perf_counter()
    events = read_lake_interactions(layout.lake, as_of)
    catalog = read_lake_catalog(layout.lake)
    data = full_data(events, catalog, as_of, config.get("window_days"))
    synthetic = _synthetic_frame(synthetic_gate) if _uses_synthetic(config) else None
    folder = layout.run.root / SERVED
    paths = refit(config, data, settings, catalog, folder / "models", synthetic)
    refit_s = round(time.perf_counter() - started, 2)
    slot = settings.serve.new_product_slot
    slot = slot if slot == "off" else f"{slot}@{settings.serve.new_product_position}"  # the discover lists' slot
    result = {
        "config": config,
        "users": int(data.n_users),
        "items": int(data.n_items),
        "refit_seconds": refit_s,
        "new_product_slot": slot,
    }
    if parent_run_id is None:
        return {**result, "model_uri": None, "run_id": None, "paths": {v: str(p) for v, p in paths.items()}}
    import mlflow

    run_id = runs.model_run(settings, parent_run_id, pipeline_key, SERVED, run_tags)
    runs.configure(settings)
    with mlflow.start_run(run_id=run_id):
        info = log_recommender(paths, data.user_ids, data.item_ids, data.history, catalog, folder / "pyfunc")
    runs.log_to_run(
        settings,
        run_id,
        params={"served_model": config["model"], "served_as_of": layout.as_of, "new_product_slot": slot},
        metrics={"refit_seconds": refit_s, "served_users": data.n_users, "served_items": data.n_items},
    )
    return {**result, "model_uri": info.model_uri, "run_id": run_id}


def smoke_check_step(settings: Settings, as_of, refitted: dict) -> dict:
    """Load the logged refit model through MLflow and check its lists (see :func:`ml.pipeline.publish.smoke_check`).

    Raises:
        SmokeCheckError: the model is not fit to serve; the task fails and nothing is registered.
    """
    import mlflow

    from ml.pipeline.publish import full_data, smoke_check
    from ml.tracking import runs

    if refitted.get("skipped"):
        return {"skipped": True, "reason": refitted["reason"]}
    layout = Layout.of(settings, as_of)
    runs.configure(settings)
    model = mlflow.pyfunc.load_model(refitted["model_uri"])
    events = read_lake_interactions(layout.lake, as_of)
    catalog = read_lake_catalog(layout.lake)
    data = full_data(events, catalog, as_of, refitted["config"].get("window_days"))
    result = smoke_check(model, data, settings.serve.top_k)
    if refitted.get("run_id"):
        runs.log_to_run(
            settings, refitted["run_id"], metrics={"smoke_seconds": result["seconds"]}, tags={"smoke_check": "passed"}
        )
    return {"passed": True, **result}


def register_step(
    settings: Settings, as_of, decision: dict, refitted: dict, smoke: dict, pipeline_key: str, parent_run_id: str | None
) -> dict:
    """Register the smoke-checked refit model and point the champion alias at it.

    Returns:
        ``{"moved": bool, "version", "event" | "reason"}``.
    """
    from ml.tracking import registry as model_registry
    from ml.tracking import runs

    current = model_registry.champion(settings)
    if refitted.get("skipped") or smoke.get("skipped") or not smoke.get("passed"):
        reason = refitted.get("reason") or smoke.get("reason") or "the smoke check did not pass"
        return {"moved": False, "version": int(current.version) if current else None, "reason": reason}
    layout = Layout.of(settings, as_of)
    config = refitted["config"]
    primary = decision.get("primary") or {}
    tags = {
        model_registry.CONFIG_TAG: json.dumps(config),
        "model": config["model"],
        "as_of": layout.as_of,
        "decision": decision["action"],
        "reasons": " | ".join(decision["reasons"]),
        "challenger": decision["challenger"],
        **{f"primary_{k}": primary[k] for k in ("delta", "ci_low", "ci_high", "p_value", "n_users") if k in primary},
    }
    version = model_registry.register(settings, refitted["model_uri"], pipeline_key, tags, refitted.get("run_id"))
    why = f"{decision['action']} on {layout.as_of}: " + " | ".join(decision["reasons"])
    event = model_registry.move_champion(settings, version.version, why=why, by=f"pipeline {pipeline_key}")
    if parent_run_id:
        runs.log_to_run(settings, parent_run_id, tags={"served_version": str(version.version)})
    return {"moved": True, "version": int(version.version), "event": event}


def recommend_step(settings: Settings, as_of, registered: dict | None = None) -> dict:
    """The champion's batch lists for every active customer, both views, under ``serving/date=<day>/``.

    Runs whether or not the alias moved tonight (the champion in production serves); without any
    champion there is nothing to serve and it says so.

    Returns:
        ``{"path", "version", "customers", "rows"}`` or ``{"written": False, "reason"}``.
    """
    import mlflow

    from ml.serve.batch import active_customers, batch_recommendations, write_batch
    from ml.tracking import registry as model_registry
    from ml.tracking import runs

    champion = model_registry.champion(settings)
    if champion is None:
        return {"written": False, "reason": "no champion registered yet"}
    layout = Layout.of(settings, as_of)
    runs.configure(settings)
    model = mlflow.pyfunc.load_model(model_registry.champion_uri(settings))
    events = read_lake_interactions(layout.lake, as_of)
    users = active_customers(events[C.USER], events[C.TIMESTAMP], as_of, settings.serve.active_days)
    frame = batch_recommendations(model, users, settings.serve.top_k)
    path = write_batch(frame, settings.paths.serving, as_of, int(champion.version), champion.run_id)
    return {"path": str(path), "version": int(champion.version), "customers": len(users), "rows": len(frame)}
