"""The nightly pipeline's steps: each one is what one Airflow task calls, and nothing more.

Steps take settings and small values (dates, paths, run ids) and return small JSON-able dicts, so
tasks pass paths through XCom, never data. Each step reads its inputs from the day's
:class:`~ml.pipeline.layout.Layout`, calls the stage's own code (``ml.data``, ``ml.quality``,
``ml.synth``, ``ml.pipeline.training`` / ``evaluation``) and records it through ``ml.tracking``.
Every output is keyed by the as-of date, so rerunning a step for the same date replaces it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ml.config import Settings
from ml.data import lake
from ml.data.dataset import SplitData
from ml.data.prepare import SourceSpec, clean_and_publish, ingest, read_lake_interactions, split_lake
from ml.models import registry
from ml.pipeline.layout import Layout

log = logging.getLogger(__name__)
FRESHNESS_DAYS = 7  # the newest interaction may be at most this old on the as-of date
ROW_COUNT_TOLERANCE = 0.5  # a night's row count may differ from the previous night's by at most this share


def _previous_count(layout: Layout, kind: str, key: str) -> int | None:
    path = layout.previous(kind)
    return json.loads(path.read_text())[key] if path else None


def ingest_step(settings: Settings, as_of) -> dict:
    """Read the configured source up to ``as_of``, gate the raw rows, and stage them as Parquet.

    Returns:
        ``{"raw_path", "rows", "rows_after_as_of", "source"}``.
    """
    from ml.quality.gates import row_count_bounds, run_gate

    layout = Layout.of(settings, as_of)
    spec = SourceSpec.from_settings(settings)
    raw, shop_catalog, rows_after = ingest(spec, pd.Timestamp(as_of))
    bounds = row_count_bounds(_previous_count(layout, "ingest", "rows"), ROW_COUNT_TOLERANCE)
    params = {"as_of": pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1), **bounds}
    run_gate("raw_events", raw, settings, params, run_name=f"{layout.as_of}-raw")
    lake.write_parquet_atomic(raw, layout.raw)
    if shop_catalog is not None:
        lake.write_parquet_atomic(shop_catalog, layout.shop_catalog)
    result = {"raw_path": str(layout.raw), "rows": len(raw), "rows_after_as_of": rows_after, "source": spec.describe()}
    lake.write_json_atomic(result, layout.ingest_record)
    return result


def clean_step(settings: Settings, as_of) -> dict:
    """Clean the day's staged raw rows into the lake (interactions, catalog, quarantine) and keep the report.

    Returns:
        The cleaning report's counts.
    """
    layout = Layout.of(settings, as_of)
    raw = pd.read_parquet(layout.raw)
    shop = pd.read_parquet(layout.shop_catalog) if layout.shop_catalog.exists() else None
    meta = json.loads(layout.ingest_record.read_text())
    spec = SourceSpec.from_settings(settings)
    report = clean_and_publish(raw, shop, spec, layout.lake, settings, pd.Timestamp(as_of), meta["rows_after_as_of"])
    lake.write_json_atomic(report, layout.clean_report)
    keys = ("rows_in", "rows_kept", "rows_quarantined", "quarantine_by_reason", "users", "items")
    return {k: report[k] for k in keys}


def gate_step(settings: Settings, as_of) -> dict:
    """Gate the cleaned interactions (row count vs the previous run, freshness) and the catalog.

    Raises:
        GateFailedError: naming each failed expectation; the run stops here.
    """
    from ml.quality.gates import row_count_bounds, run_gate

    layout = Layout.of(settings, as_of)
    day = pd.Timestamp(as_of).normalize()
    bounds = row_count_bounds(_previous_count(layout, "clean", "rows_kept"), ROW_COUNT_TOLERANCE)
    params = {"fresh_after": day - pd.Timedelta(days=FRESHNESS_DAYS), **bounds}
    interactions = read_lake_interactions(layout.lake, as_of)
    results = {"interactions": run_gate("interactions", interactions, settings, params, run_name=layout.as_of)}
    results["catalog"] = run_gate("catalog", pd.read_parquet(layout.catalog), settings, run_name=layout.as_of)
    return {
        name: {"success": r.success, "result": str(r.result_path), "docs": str(r.docs_path)}
        for name, r in results.items()
    }


def build_dataset_step(settings: Settings, as_of) -> dict:
    """Build the leak-free temporal split for ``as_of`` and save it under ``datasets/<as_of>``.

    Returns:
        ``{"path", "digest", **counts}``.
    """
    layout = Layout.of(settings, as_of)
    data = split_lake(layout.lake, settings, as_of)
    data.info["path"] = str(layout.dataset)
    data.save(layout.dataset)
    return {"path": str(layout.dataset), "digest": data.digest(), **{k: v for k, v in data.info.items() if k != "path"}}


def start_tracking_step(
    settings: Settings, as_of, key: str, dataset: dict, run_params: dict | None = None, tags: dict | None = None
) -> str:
    """Open (or, on a task retry, reuse) the MLflow parent run of pipeline run ``key``; log settings and the dataset.

    Args:
        key: identifies the pipeline run (the Airflow DAG-run id); each key gets one parent run.
    """
    from ml.tracking import runs

    layout = Layout.of(settings, as_of)
    params = {"settings": settings.model_dump(mode="json"), "run_params": run_params or {}}
    run_id = runs.start_parent_run(settings, key, params, tags)
    runs.log_dataset(settings, run_id, SplitData.load(layout.dataset), name=f"interactions-{layout.as_of}")
    counts = {
        f"data/{k}": dataset[k]
        for k in ("users", "items", "train_events", "valid_events", "test_events")
        if k in dataset
    }
    report = layout.lake_report
    runs.log_to_run(settings, run_id, metrics=counts, artifacts=[report] if report.exists() else [])
    return run_id


def synthesize_step(settings: Settings, as_of, enabled: bool = True) -> dict:
    """Synthesize training data for sparse users (and enrich items) from the day's real split.

    A generator that cannot be reached does not fail the run: the result says ``unavailable`` and
    why, the pipeline continues on real data only and the MLflow run is tagged accordingly.

    Returns:
        ``{"status": "ok" | "disabled" | "unavailable", "path", "reason", "report"}``.
    """
    if not enabled:
        return {"status": "disabled", "path": None, "reason": "synthesis switched off for this run", "report": {}}
    from ml.synth.llm.errors import GeneratorError
    from ml.synth.pipeline import synthesize

    layout = Layout.of(settings, as_of)
    data = SplitData.load(layout.dataset)
    catalog = pd.read_parquet(layout.catalog)
    try:
        result = synthesize(data, catalog, settings)
    except GeneratorError as exc:  # unreachable server, missing model: continue on real data, loudly
        log.error("synthesis unavailable, continuing on real data only: %s", exc)
        lake.write_json_atomic({"status": "unavailable", "reason": str(exc)}, layout.synthetic_status)
        return {"status": "unavailable", "path": None, "reason": str(exc), "report": {}}
    result.save(layout.synthetic)
    lake.write_json_atomic({"status": "ok"}, layout.synthetic_status)
    inter = result.report["interactions"]
    summary = {k: inter.get(k) for k in ("generated", "accepted", "validity_rate", "acceptance_rate", "accepted_per_s")}
    summary["strategy"] = result.report.get("strategy")
    return {
        "status": "ok",
        "path": str(layout.synthetic),
        "reason": None,
        "report": {**summary, "distribution": result.report.get("distribution")},
    }


def gate_synthetic_step(settings: Settings, as_of, synth: dict, parent_run_id: str | None = None) -> dict:
    """Gate the synthetic interactions; a failure keeps them out of training and says why.

    The outcome is recorded on the MLflow parent run: tag ``synthetic_status`` (ok, disabled,
    unavailable, gate_failed), the synthesis report, and its KL divergences as metrics.

    Returns:
        ``{"passed": bool, "path": synthetic interactions file or None, "failures": [...]}``.
    """
    outcome = _gate_synthetic(settings, as_of, synth)
    if parent_run_id:
        from ml.synth.pipeline import FILES
        from ml.tracking import runs
        from ml.tracking.names import numeric_leaves

        status = "ok" if outcome["passed"] else ("gate_failed" if synth["status"] == "ok" else synth["status"])
        report = Path(synth["path"]) / FILES["report"] if synth.get("path") else None
        dist = outcome.get("distribution") or synth.get("report", {}).get("distribution") or {}
        headline = {k: v for k, v in synth.get("report", {}).items() if k != "distribution"}
        metrics = numeric_leaves({**dist, **headline}, "synthetic/")
        runs.log_to_run(
            settings,
            parent_run_id,
            metrics=metrics,
            artifacts=[report] if report and report.exists() else [],
            tags={
                "synthetic_status": status,
                "synthetic_strategy": str(synth.get("report", {}).get("strategy") or "none"),
                "synthetic_failures": "; ".join(outcome["failures"])[:4000],
            },
        )
    return outcome


def _gate_synthetic(settings: Settings, as_of, synth: dict) -> dict:
    from ml.errors import GateFailedError
    from ml.synth.pipeline import FILES, SynthResult
    from ml.synth.quality import gate_synthetic

    if synth["status"] != "ok":
        return {"passed": False, "path": None, "failures": [f"synthesis {synth['status']}: {synth['reason']}"]}
    layout = Layout.of(settings, as_of)
    folder = layout.synthetic
    result = SynthResult(
        interactions=pd.read_parquet(folder / FILES["interactions"]),
        rejected=pd.DataFrame(),
        items=pd.read_parquet(folder / FILES["items"]),
        report={},
    )
    try:
        report = gate_synthetic(
            result,
            SplitData.load(layout.dataset),
            pd.read_parquet(layout.catalog),
            settings,
            run_name=f"{layout.as_of}-synthetic",
        )
    except GateFailedError as exc:
        log.error("synthetic data kept out of training: %s", exc)
        return {"passed": False, "path": None, "failures": exc.failures}
    return {
        "passed": True,
        "path": str(folder / FILES["interactions"]),
        "failures": [],
        "distribution": report["distribution"],
    }


def train_step(
    settings: Settings,
    as_of,
    key: str,
    parent_run_id: str | None = None,
    pipeline_key: str = "",
    synthetic_path: str | None = None,
    run_tags: dict | None = None,
) -> dict:
    """Fit one model (both phases) and record it in its nested MLflow run.

    Args:
        key: a base model name, or its synthetic variant to train on real + the gated synthetic
            data at ``synthetic_path``.
    Returns:
        ``{"model", "fit_seconds", "valid", "run_id", ...}``.
    """
    from ml.pipeline.training import fit_model, item_text_for
    from ml.tracking import runs

    layout = Layout.of(settings, as_of)
    data = SplitData.load(layout.dataset)
    synthetic = pd.read_parquet(synthetic_path) if synthetic_path else None
    item_text = None
    if registry.spec(key).uses_item_text:
        item_text = item_text_for(key, settings, data, pd.read_parquet(layout.catalog))
    run_id = runs.model_run(settings, parent_run_id, pipeline_key, key, run_tags) if parent_run_id else None
    logger = runs.lightning_logger(settings, run_id) if run_id and registry.spec(key).logs_curves else None
    result = fit_model(key, data, settings, layout.run, logger=logger, synthetic=synthetic, item_text=item_text)
    if run_id:
        params = {
            **registry.model_params(key, settings.models),
            "training_data": "real+synthetic" if synthetic is not None else "real",
        }
        runs.log_fit(settings, run_id, result, params)
    return {**result, "run_id": run_id}


def train_task_step(
    settings: Settings,
    as_of,
    task: str,
    selected: list[str],
    parent_run_id: str | None,
    pipeline_key: str,
    synthetic: dict,
    run_tags: dict | None = None,
) -> list[dict]:
    """Train the selected models of one DAG task, each also on real + synthetic data where its spec says so.

    Args:
        task: the registry's task name (``baselines``, ``als``, ``bert4rec``).
        selected: the base models the run trains.
        synthetic: the synthetic gate's outcome; its variants train only when it passed.
    Returns:
        One result per trained model or variant (empty when none of the task's models is selected).
    """
    from ml.data.catalog import has_titles

    results = []
    titled = has_titles(pd.read_parquet(Layout.of(settings, as_of).catalog))
    for name in registry.runnable(registry.models_of_task(task, selected), titled):
        results.append(train_step(settings, as_of, name, parent_run_id, pipeline_key, run_tags=run_tags))
        if registry.spec(name).synthetic_variant and synthetic.get("passed"):
            variant = registry.variant(name, True)
            results.append(
                train_step(settings, as_of, variant, parent_run_id, pipeline_key, synthetic["path"], run_tags)
            )
    return results


def fuse_step(
    settings: Settings,
    as_of,
    trained: list[str],
    parent_run_id: str | None = None,
    pipeline_key: str = "",
    run_tags: dict | None = None,
) -> dict:
    """Fit fusion weights on validation (per view) over the trained members (none with fewer than two).

    Where a model was trained both on real and on real + synthetic data, the variant with the
    better validation NDCG@10 joins the fusion: synthetic data reaches the served model only when
    it helped on validation.
    """
    from ml.pipeline.training import choose_variants, fit_fusion
    from ml.tracking import runs

    layout = Layout.of(settings, as_of)
    chosen, decisions = choose_variants(layout.run, registry.fusion_members(trained))
    if len(chosen) < 2:
        reason = f"fusion needs two trained members, got {chosen or 'none'}"
        log.info("no fusion tonight: %s", reason)
        return {"model": None, "members": chosen, "variants": decisions, "skipped": reason}
    result = fit_fusion(chosen, SplitData.load(layout.dataset), layout.run, settings.models.fusion)
    lake.write_json_atomic(decisions, layout.run.variants_record())
    if parent_run_id:
        run_id = runs.model_run(settings, parent_run_id, pipeline_key, registry.FUSION, run_tags)
        params = {
            "model": registry.FUSION,
            "members": chosen,
            **{f"weights.{v}": w for v, w in result["weights"].items()},
        }
        uses_synthetic = any(registry.is_synthetic(k) for k in chosen)
        runs.log_to_run(
            settings,
            run_id,
            params=params,
            metrics={"fit_seconds": result["fit_seconds"]},
            tags={"uses_synthetic": str(uses_synthetic).lower()},
        )
    return {
        "model": registry.FUSION,
        "members": chosen,
        "variants": decisions,
        "weights": result["weights"],
        "fit_seconds": result["fit_seconds"],
    }


def backtest_step(
    settings: Settings,
    as_of,
    parent_run_id: str | None = None,
    models: list[str] | None = None,
    out: Path | None = None,
) -> dict:
    """Backtest the cheap models (``eval.backtest.models``) over the rolling cuts before ``as_of``; log to MLflow.

    Args:
        models: what to backtest instead (the weekly DAG: ``eval.backtest.weekly_models``).
        out: the output folder (default ``runs/<as_of>/backtest``).

    Reads the lake's interactions and catalog up to ``as_of`` and writes ``runs/<as_of>/backtest/``
    (replaced on a rerun). The parent run gets every aggregate (``backtest/<model>/<view>/<slice>/ndcg_at_10``
    with ``_ci_low`` / ``_ci_high``), the comparisons' deltas with their intervals and p-values, and the
    document and plot as artifacts.

    Returns:
        ``{"path", "cuts", "totals", "models": {model: {"<view>/<slice>/<metric>": [mean, low, high]}}}``.
    """
    from ml.data.catalog import has_titles
    from ml.data.prepare import read_lake_catalog
    from ml.eval.plots import plot_backtest
    from ml.pipeline.backtest import run_backtest
    from ml.tracking import runs
    from ml.tracking.names import metric_name

    layout = Layout.of(settings, as_of)
    cfg = settings.eval.backtest
    catalog = read_lake_catalog(layout.lake)
    models = registry.runnable(list(models or cfg.models), has_titles(catalog))
    compare = [(a, b) for a, b in cfg.compare if a in models and b in models]
    out = out or layout.run.backtest
    with lake.replaced_dir(out) as work:
        doc = run_backtest(read_lake_interactions(layout.lake, as_of), catalog, settings, models, work, compare)
        plot_backtest(doc, work / "backtest.png")
    plot = out / "backtest.png"
    headline = ("overall", "known", "new_customers", "cold_items")
    summary = {
        model: {
            f"{view}/{slice_}/ndcg@10": [round(cells[slice_]["ndcg@10"][k], 4) for k in ("mean", "ci_low", "ci_high")]
            for view, cells in views.items()
            for slice_ in headline
        }
        for model, views in doc["aggregate"].items()
    }
    if parent_run_id:
        metrics = {}
        for model, views in doc["aggregate"].items():
            for view, cells in views.items():
                for slice_, cell in cells.items():
                    for m in doc["metrics"]:
                        base = metric_name(f"backtest/{model}/{view}/{slice_}/{m}")  # history_16+ -> 16plus
                        metrics.update({base: cell[m]["mean"], f"{base}_ci_low": cell[m]["ci_low"]})
                        metrics[f"{base}_ci_high"] = cell[m]["ci_high"]
        for r in doc["comparisons"]:
            base = metric_name(f"backtest/{r['b']}-{r['a']}/{r['slice']}/{r['metric']}")
            metrics.update({base: r["delta"], f"{base}_ci_low": r["ci_low"], f"{base}_ci_high": r["ci_high"]})
            metrics[f"{base}_p_value"] = r["p_value"]
        metrics.update({f"backtest/{k}": v for k, v in doc["totals"].items()})
        finite = {k: v for k, v in metrics.items() if v is not None and v == v}  # NaN: an empty slice
        runs.log_to_run(settings, parent_run_id, metrics=finite, artifacts=[out / "backtest.json", plot])
    return {"path": str(out), "cuts": doc["cuts"], "totals": doc["totals"], "models": summary}


def weekly_backtest_step(settings: Settings, as_of, key: str) -> dict:
    """The weekly DAG's backtest of every model (``eval.backtest.weekly_models``), in an MLflow run of its own.

    Args:
        key: the Airflow DAG-run id (a retry reuses its MLflow run).
    """
    from ml.tracking import runs

    models = list(settings.eval.backtest.weekly_models)
    params = {"backtest": settings.eval.backtest.model_dump(mode="json"), "as_of": str(as_of)}
    run_id = runs.start_parent_run(settings, f"weekly {key}", params, tags={"weekly_backtest": "true"})
    return backtest_step(settings, as_of, run_id, models=models, out=Layout.of(settings, as_of).run.weekly_backtest)


def weekly_ablation_step(settings: Settings, as_of, key: str) -> dict:
    """The weekly DAG's synthesis ablation (``synth.strategies.ablation_*``) on the lake up to ``as_of``.

    Writes ``runs/<as_of>/synth_ablation_weekly/`` (replaced whole when a rerun succeeds; a failed one leaves
    the last complete folder) and logs the table and plot to an MLflow run of its own. The nightly strategy
    stays ``synth.strategies.nightly``: the returned decision says whether the ablation still chooses it.

    Args:
        key: the Airflow DAG-run id (names the MLflow run).
    Returns:
        ``{"path", "chosen_arm", "nightly", "test", "goal_met_on_test", "mlflow_run_id", "elapsed_seconds"}``.
    """
    from ml.data.prepare import read_lake_catalog
    from ml.pipeline.ablation_command import log_report, write_report
    from ml.pipeline.synth_ablation import run_ablation

    layout = Layout.of(settings, as_of)
    out = layout.run.weekly_ablation
    with lake.replaced_dir(out) as work:
        doc = run_ablation(read_lake_interactions(layout.lake, as_of), read_lake_catalog(layout.lake), settings, work)
        write_report(doc, work)
    run_id = log_report(doc, out, settings, run_name=f"weekly synth-ablation {key}")
    decision = doc["decision"]
    return {
        "path": str(out),
        "chosen_arm": decision["chosen_arm"],
        "nightly": settings.synth.strategies.nightly,
        "test": decision["test"],
        "goal_met_on_test": decision["goal_met_on_test"],
        "mlflow_run_id": run_id,
        "elapsed_seconds": doc["elapsed_seconds"],
    }


def evaluate_step(
    settings: Settings,
    as_of,
    models: list[str],
    parent_run_id: str | None = None,
    pipeline_key: str = "",
) -> dict:
    """Evaluate every final model on the test period; log its metrics and plots to MLflow.

    Nothing is registered here: the one served model is the decided configuration, refit and
    registered by ``ml.pipeline.promotion_steps``.

    Returns:
        ``{"metrics_path", "models": {name: {"<view>/ndcg@10": ..., "<view>/recall@10": ...}}, "synthetic_uplift"}``.
    """
    from ml.eval.plots import plot_history_buckets, plot_metric_curves
    from ml.pipeline.evaluation import evaluate_models
    from ml.tracking import runs
    from ml.tracking.names import metric_name, numeric_leaves

    layout = Layout.of(settings, as_of)
    data = SplitData.load(layout.dataset)
    run = layout.run
    doc = evaluate_models(models, data, settings, run)
    plots = [plot_metric_curves(doc, run.plot), plot_history_buckets(doc, run.buckets_plot)]
    if parent_run_id:
        for key, entry in doc["models"].items():
            run_id = runs.model_run(settings, parent_run_id, pipeline_key, key)
            runs.log_to_run(settings, run_id, metrics=runs.model_metrics(entry))
        uplift = {  # the delta under the metric's own name, its interval and p-value beside it
            f"{name}/{view}/{seg}/{metric_name(m)}{suffix}": d[field]
            for name, views in doc["synthetic_uplift"].items()
            for view, segs in views.items()
            for seg, ms in segs.items()
            for m, d in ms.items()
            for suffix, field in (
                ("", "delta"),
                ("_ci_low", "ci_low"),
                ("_ci_high", "ci_high"),
                ("_p_value", "p_value"),
            )
        }
        runs.log_to_run(
            settings, parent_run_id, metrics=numeric_leaves(uplift, "uplift/"), artifacts=[run.metrics, *plots]
        )
    summary = {
        key: {
            f"{view}/{m}": round(e["views"][view]["overall"][m], 4)
            for view in e["views"]
            for m in ("ndcg@10", "recall@10")
        }
        for key, e in doc["models"].items()
    }
    return {"metrics_path": str(run.metrics), "models": summary, "synthetic_uplift": doc["synthetic_uplift"]}
