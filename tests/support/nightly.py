"""One night of the pipeline called step by step, as the DAG's tasks call them (no scheduler)."""

from __future__ import annotations

from ml.pipeline import promotion_steps as ps
from ml.pipeline import steps


def prepare_night(settings, as_of: str, models: list[str], key: str) -> dict:
    """Ingest, clean, gate, split, track, train, fuse and evaluate ``models`` for ``as_of`` (synthesis off)."""
    steps.ingest_step(settings, as_of)
    steps.clean_step(settings, as_of)
    gated = steps.gate_step(settings, as_of)
    dataset = steps.build_dataset_step(settings, as_of)
    parent = steps.start_tracking_step(settings, as_of, key, dataset, {}, {"airflow_run_id": key})
    trained = []
    for task in ("baselines", "als"):
        trained += [r["model"] for r in steps.train_task_step(settings, as_of, task, models, parent, key, {})]
    fused = steps.fuse_step(settings, as_of, trained, parent, key)
    evaluated = trained + ([fused["model"]] if fused.get("model") else [])
    steps.evaluate_step(settings, as_of, evaluated, parent, key)
    return {"gated": gated, "parent": parent, "evaluated": evaluated, "key": key}


def publish_night(settings, as_of: str, night: dict, gated: dict | None = None) -> dict:
    """Decide, refit, smoke-check, register and recommend, as the DAG's last tasks do."""
    decision = ps.decide_step(settings, as_of, night["evaluated"], gated or night["gated"], {}, night["parent"])
    refitted = ps.refit_step(settings, as_of, decision, night["parent"], night["key"], synthetic_gate={})
    smoke = ps.smoke_check_step(settings, as_of, refitted)
    registered = ps.register_step(settings, as_of, decision, refitted, smoke, night["key"], night["parent"])
    served = ps.recommend_step(settings, as_of, registered)
    return {"decision": decision, "refitted": refitted, "smoke": smoke, "registered": registered, "served": served}
