"""The nightly pipeline's steps: each one is what one Airflow task calls.

Steps take settings and small values (dates, paths, run ids) and return small JSON-able dicts, so
tasks pass paths through XCom, never data. Every step writes to a place keyed by the as-of date,
so rerunning a step for the same date replaces its output instead of adding to it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data import lake
from ml.data.dataset import SplitData, build_split
from ml.data.prepare import CATALOG_FILE, INTERACTIONS, REPORT_FILE, SourceSpec, clean_and_publish, ingest

log = logging.getLogger(__name__)
FRESHNESS_DAYS = 7  # the newest interaction may be at most this old on the as-of date
FUSION_MEMBERS = ("pop_recent", "rebuy", "als", "bert4rec", "als_synth", "bert4rec_synth")  # pop adds nothing pop_recent lacks


def _day(as_of) -> str:
    return pd.Timestamp(as_of).strftime("%Y-%m-%d")


def staging_dir(settings: Settings, as_of) -> Path:
    """Folder of one as-of date's raw snapshot."""
    return settings.paths.home / "staging" / _day(as_of)


def run_dir(settings: Settings, as_of) -> Path:
    """Folder of one as-of date's models and metrics."""
    return settings.paths.runs / _day(as_of)


def _previous(settings: Settings, as_of, kind: str) -> dict | None:
    """The most recent earlier record (``ingest.json`` or the lake report) before ``as_of``."""
    if kind == "ingest":
        candidates = sorted(p for p in (settings.paths.home / "staging").glob("*/ingest.json") if p.parent.name < _day(as_of))
    else:
        candidates = sorted(p for p in (settings.paths.lake / "reports").glob("*.json") if p.stem < _day(as_of))
    return json.loads(candidates[-1].read_text()) if candidates else None


def ingest_step(settings: Settings, as_of) -> dict:
    """Read the configured source up to ``as_of``, gate the raw rows, and stage them as Parquet.

    Returns:
        ``{"raw_path", "rows", "rows_after_as_of"}``.
    """
    from ml.quality.gates import row_count_bounds, run_gate

    spec = SourceSpec.from_settings(settings)
    raw, shop_catalog, rows_after = ingest(spec, pd.Timestamp(as_of))
    previous = _previous(settings, as_of, "ingest")
    params = {"as_of": pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1), **row_count_bounds(previous and previous["rows"], 0.5)}
    run_gate("raw_events", raw, settings, params, run_name=f"{_day(as_of)}-raw")
    folder = staging_dir(settings, as_of)
    lake.write_parquet_atomic(raw, folder / "raw.parquet")
    if shop_catalog is not None:
        lake.write_parquet_atomic(shop_catalog, folder / "shop_catalog.parquet")
    result = {"raw_path": str(folder / "raw.parquet"), "rows": len(raw), "rows_after_as_of": rows_after, "source": spec.describe()}
    lake.write_json_atomic(result, folder / "ingest.json")
    return result


def clean_step(settings: Settings, as_of, raw_path: str) -> dict:
    """Clean the staged raw rows into the lake (interactions, catalog, quarantine) and keep the report.

    Returns:
        The cleaning report's counts.
    """
    raw = pd.read_parquet(raw_path)
    shop_path = Path(raw_path).with_name("shop_catalog.parquet")
    shop = pd.read_parquet(shop_path) if shop_path.exists() else None
    meta = json.loads(Path(raw_path).with_name("ingest.json").read_text())
    spec = SourceSpec.from_settings(settings)
    report = clean_and_publish(raw, shop, spec, settings.paths.lake, settings, pd.Timestamp(as_of), meta["rows_after_as_of"])
    lake.write_json_atomic(report, settings.paths.lake / "reports" / f"{_day(as_of)}.json")
    keys = ("rows_in", "rows_kept", "rows_quarantined", "quarantine_by_reason", "users", "items")
    return {k: report[k] for k in keys}


def gate_step(settings: Settings, as_of) -> dict:
    """Gate the cleaned interactions (row count vs the previous run, freshness) and the catalog.

    Raises:
        GateFailedError: naming each failed expectation; the run stops here.
    """
    from ml.quality.gates import row_count_bounds, run_gate

    interactions = read_interactions(settings, as_of)
    previous = _previous(settings, as_of, "report")
    day = pd.Timestamp(as_of).normalize()
    params = {"fresh_after": day - pd.Timedelta(days=FRESHNESS_DAYS), **row_count_bounds(previous and previous["rows_kept"], 0.5)}
    results = {"interactions": run_gate("interactions", interactions, settings, params, run_name=_day(as_of))}
    catalog = pd.read_parquet(settings.paths.lake / CATALOG_FILE)
    results["catalog"] = run_gate("catalog", catalog, settings, run_name=_day(as_of))
    return {name: {"success": r.success, "result": str(r.result_path), "docs": str(r.docs_path)} for name, r in results.items()}


def read_interactions(settings: Settings, as_of) -> pd.DataFrame:
    """Interactions in the lake dated on or before ``as_of``."""
    until = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    return lake.read_partitioned(settings.paths.lake / INTERACTIONS, until=until)


def build_dataset_step(settings: Settings, as_of) -> dict:
    """Build the leak-free temporal split for ``as_of`` and save it under ``datasets/<as_of>``.

    Returns:
        ``{"path", "digest", **counts}``.
    """
    data = build_split(read_interactions(settings, as_of), settings.split, "temporal", as_of=pd.Timestamp(as_of))
    folder = settings.paths.datasets / _day(as_of)
    data.info["path"] = str(folder)
    data.save(folder)
    return {"path": str(folder), "digest": data.digest(), **{k: v for k, v in data.info.items() if k != "path"}}


def synthesize_step(settings: Settings, as_of, dataset_path: str, enabled: bool = True) -> dict:
    """Synthesize training data for sparse users (and enrich items, profile users) from the real split.

    A generator that cannot be reached does not fail the run: the result says ``unavailable`` and
    why, the pipeline continues on real data only and the MLflow run is tagged accordingly.

    Returns:
        ``{"status": "ok" | "disabled" | "unavailable", "path", "reason", "report"}``.
    """
    if not enabled:
        return {"status": "disabled", "path": None, "reason": "synthesis switched off for this run", "report": {}}
    from ml.synth.errors import GeneratorError
    from ml.synth.pipeline import synthesize

    data = SplitData.load(Path(dataset_path))
    catalog = pd.read_parquet(settings.paths.lake / CATALOG_FILE)
    folder = Path(dataset_path) / "synthetic"
    try:
        result = synthesize(data, catalog, settings)
    except GeneratorError as exc:  # unreachable server, missing model: continue on real data, loudly
        log.error("synthesis unavailable, continuing on real data only: %s", exc)
        lake.write_json_atomic({"status": "unavailable", "reason": str(exc)}, folder / "status.json")
        return {"status": "unavailable", "path": None, "reason": str(exc), "report": {}}
    result.save(folder)
    lake.write_json_atomic({"status": "ok"}, folder / "status.json")
    inter = result.report["interactions"]
    summary = {k: inter.get(k) for k in ("generated", "accepted", "validity_rate", "acceptance_rate", "accepted_per_s")}
    return {"status": "ok", "path": str(folder), "reason": None, "report": {**summary, "distribution": result.report.get("distribution")}}


def gate_synthetic_step(settings: Settings, as_of, dataset_path: str, synth: dict, parent_run_id: str | None = None) -> dict:
    """Gate the synthetic interactions; a failure keeps them out of training and says why.

    The outcome is recorded on the MLflow parent run: tag ``synthetic_status`` (ok, disabled,
    unavailable, gate_failed), the synthesis report, and its KL divergences as metrics.

    Returns:
        ``{"passed": bool, "path": synthetic interactions file or None, "failures": [...]}``.
    """
    outcome = _gate_synthetic(settings, as_of, dataset_path, synth)
    if parent_run_id:
        from ml.tracking import runs

        status = "ok" if outcome["passed"] else ("gate_failed" if synth["status"] == "ok" else synth["status"])
        report = Path(synth["path"]) / "synth_report.json" if synth.get("path") else None
        dist = outcome.get("distribution") or synth.get("report", {}).get("distribution") or {}
        metrics = {f"synthetic/{k}": v for k, v in _numbers(dist).items()}
        metrics.update({f"synthetic/{k}": v for k, v in synth.get("report", {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        runs.log_to_run(settings, parent_run_id, metrics=metrics, artifacts=[report] if report and report.exists() else [],
                        tags={"synthetic_status": status, "synthetic_failures": "; ".join(outcome["failures"])[:4000]})
    return outcome


def _numbers(d: dict, prefix: str = "") -> dict:
    """Numeric leaves of a nested dict, with slash-joined keys."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def _gate_synthetic(settings: Settings, as_of, dataset_path: str, synth: dict) -> dict:
    from ml.errors import GateFailedError
    from ml.synth.pipeline import FILES, SynthResult
    from ml.synth.quality import gate_synthetic

    if synth["status"] != "ok":
        return {"passed": False, "path": None, "failures": [f"synthesis {synth['status']}: {synth['reason']}"]}
    folder = Path(synth["path"])
    data = SplitData.load(Path(dataset_path))
    catalog = pd.read_parquet(settings.paths.lake / CATALOG_FILE)
    result = SynthResult(
        interactions=pd.read_parquet(folder / FILES["interactions"]), rejected=pd.DataFrame(),
        items=pd.read_parquet(folder / FILES["items"]), profiles=pd.DataFrame(), report={},
    )
    try:
        report = gate_synthetic(result, data, catalog, settings, run_name=f"{_day(as_of)}-synthetic")
    except GateFailedError as exc:
        log.error("synthetic data kept out of training: %s", exc)
        return {"passed": False, "path": None, "failures": exc.failures}
    return {"passed": True, "path": str(folder / FILES["interactions"]), "failures": [], "distribution": report["distribution"]}


def start_tracking_step(settings: Settings, as_of, key: str, dataset: dict, run_params: dict | None = None, tags: dict | None = None) -> str:
    """Open (or, on a task retry, reuse) the MLflow parent run of pipeline run ``key``; log settings and the dataset.

    Args:
        key: identifies the pipeline run (the Airflow DAG-run id); each key gets one parent run.
    """
    from ml.tracking import runs

    run_id = runs.start_parent_run(settings, key, {"settings": settings.model_dump(mode="json"), "run_params": run_params or {}}, tags)
    data = SplitData.load(Path(dataset["path"]))
    runs.log_dataset(settings, run_id, data, name=f"interactions-{_day(as_of)}")
    report = settings.paths.lake / REPORT_FILE
    counts = {f"data/{k}": dataset[k] for k in ("users", "items", "train_events", "valid_events", "test_events") if k in dataset}
    runs.log_to_run(settings, run_id, metrics=counts, artifacts=[report] if report.exists() else [])
    return run_id


def train_step(settings: Settings, as_of, dataset_path: str, model: str, parent_run_id: str | None = None, key: str = "",
               synthetic_path: str | None = None) -> dict:
    """Fit one model (both phases) and record it in its nested MLflow run.

    Args:
        model: a base model name, or ``<name>_synth`` to train on real + the gated synthetic data
            at ``synthetic_path``.
    Returns:
        ``{"model", "fit_seconds", "valid", "run_id", ...}``.
    """
    from ml.pipeline.training import base_name, fit_model, item_text_for
    from ml.tracking import runs

    data = SplitData.load(Path(dataset_path))
    synthetic = pd.read_parquet(synthetic_path) if synthetic_path else None
    item_text = None
    if base_name(model) == "bert4rec":  # the only model that reads item text
        enriched_path = Path(dataset_path) / "synthetic" / "items_enriched.parquet"
        item_text = item_text_for(model, settings, data, pd.read_parquet(settings.paths.lake / CATALOG_FILE),
                                  pd.read_parquet(enriched_path) if enriched_path.exists() else None)
    run_id = runs.model_run(settings, parent_run_id, key, model) if parent_run_id else None
    logger = None
    if run_id and model == "bert4rec":
        from pytorch_lightning.loggers import MLFlowLogger

        logger = MLFlowLogger(experiment_name=settings.tracking.experiment, tracking_uri=settings.mlflow_uri, run_id=run_id)
    result = fit_model(model, data, settings, run_dir(settings, as_of), logger=logger, synthetic=synthetic, item_text=item_text)
    if run_id:
        from ml.eval.evaluate import mlflow_metric_name

        summary = {mlflow_metric_name(k): v for k, v in result["summary"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        valid = {f"valid/{view}/{mlflow_metric_name(m)}": v for view, ms in result["valid"].items() for m, v in ms.items()}
        params = {**_model_params(settings, model), "training_data": "real+synthetic" if synthetic is not None else "real"}
        runs.log_to_run(settings, run_id, params=params, metrics={"fit_seconds": result["fit_seconds"], **summary, **valid},
                        tags={"device": str(result["summary"].get("device", "cpu"))})
    return {**result, "run_id": run_id}


def train_variants(settings: Settings, as_of, dataset_path: str, model: str, params: dict, parent_run_id: str | None,
                   key: str, synthetic: dict) -> list[dict]:
    """Train ``model`` on real data and, when synthetic data passed its gate, on real + synthetic data.

    Args:
        params: the DAG-run params (which models are selected).
        synthetic: the synthetic gate's outcome.
    Returns:
        One result per trained variant (empty when the model is not selected).
    """
    from ml.pipeline.airflow_params import selected_models

    if model not in selected_models(params):
        return []
    results = [train_step(settings, as_of, dataset_path, model, parent_run_id, key)]
    if synthetic.get("passed"):
        results.append(train_step(settings, as_of, dataset_path, f"{model}_synth", parent_run_id, key, synthetic["path"]))
    return results


def _model_params(settings: Settings, model: str) -> dict:
    from ml.pipeline.training import base_name

    prefix = {"als": "als_", "bert4rec": "bert_"}.get(base_name(model))
    params = {k: v for k, v in settings.models.model_dump().items() if prefix and k.startswith(prefix)}
    if model == "pop_recent":
        params["recent_days"] = settings.models.recent_days
    return {"model": model, "seed": settings.models.seed, **params}


def fuse_step(settings: Settings, as_of, dataset_path: str, members: list[str], parent_run_id: str | None = None, key: str = "") -> dict:
    """Fit fusion weights on validation (per view) over the trained members.

    Where a model was trained both on real and on real + synthetic data, the variant with the
    better validation NDCG@10 joins the fusion: synthetic data reaches the served model only when
    it helped on validation.
    """
    from ml.pipeline.training import choose_variants, fit_fusion
    from ml.tracking import runs

    data = SplitData.load(Path(dataset_path))
    folder = run_dir(settings, as_of)
    chosen, decisions = choose_variants(folder, members)
    result = fit_fusion(chosen, data, folder)
    lake.write_json_atomic(decisions, folder / "models" / "fusion" / "variants.json")
    if parent_run_id:
        run_id = runs.model_run(settings, parent_run_id, key, "fusion")
        params = {"model": "fusion", "members": chosen, **{f"weights.{v}": w for v, w in result["weights"].items()}}
        uses_synthetic = any(k.endswith("_synth") for k in chosen)
        runs.log_to_run(settings, run_id, params=params, metrics={"fit_seconds": result["fit_seconds"]},
                        tags={"uses_synthetic": str(uses_synthetic).lower()})
    return {"model": "fusion", "members": chosen, "variants": decisions, "weights": result["weights"], "fit_seconds": result["fit_seconds"]}


def evaluate_step(settings: Settings, as_of, dataset_path: str, models: list[str], parent_run_id: str | None = None, key: str = "", register: bool = True) -> dict:
    """Evaluate every final model on the test period; log metrics, plot and pyfunc models to MLflow.

    Returns:
        ``{"metrics_path", "models": {name: {"ndcg@10": ..., "recall@10": ...}}}`` (repeat and discover views).
    """
    from ml.eval.plots import plot_metric_curves
    from ml.eval.evaluate import mlflow_metric_name
    from ml.pipeline.training import evaluate_models, model_dir
    from ml.tracking import runs
    from ml.tracking.pyfunc import log_recommender

    data = SplitData.load(Path(dataset_path))
    folder = run_dir(settings, as_of)
    doc = evaluate_models(models, data, settings, folder)
    plot = plot_metric_curves(doc, folder / "metric_curves.png")
    if parent_run_id:
        for name, entry in doc["models"].items():
            run_id = runs.model_run(settings, parent_run_id, key, name)
            runs.log_to_run(settings, run_id, metrics=runs.model_metrics(entry))
            if register:
                import mlflow

                runs.configure(settings)
                with mlflow.start_run(run_id=run_id):
                    log_recommender(model_dir(folder, name, "final"), data, folder / "pyfunc" / name,
                                    registered_name=f"{settings.tracking.registered_model}-{name}")
        uplift = {f"uplift/{name}/{view}/{seg}/{mlflow_metric_name(m)}": d["delta"]
                  for name, views in doc["synthetic_uplift"].items() for view, segs in views.items()
                  for seg, ms in segs.items() for m, d in ms.items()}
        runs.log_to_run(settings, parent_run_id, metrics=uplift, artifacts=[folder / "metrics.json", plot])
    summary = {
        name: {f"{view}/{m}": round(e["views"][view]["overall"][m], 4) for view in e["views"] for m in ("ndcg@10", "recall@10")}
        for name, e in doc["models"].items()
    }
    return {"metrics_path": str(folder / "metrics.json"), "models": summary, "synthetic_uplift": doc["synthetic_uplift"]}


def summary_text(results: dict) -> str:
    """A short human summary of one pipeline run (what ran, counts, metrics, where to look)."""
    lines = ["nightly pipeline summary", "========================"]
    clean = results.get("clean", {})
    if clean:
        lines.append(f"rows in {clean['rows_in']:,} -> kept {clean['rows_kept']:,}, quarantined {clean['rows_quarantined']:,}")
        lines.append("quarantine: " + ", ".join(f"{k} {v:,}" for k, v in clean["quarantine_by_reason"].items()))
    ds = results.get("dataset", {})
    if ds:
        lines.append(f"dataset {ds['digest']}: {ds['users']:,} users x {ds['items']:,} items; train {ds['train_events']:,} "
                     f"valid {ds['valid_events']:,} test {ds['test_events']:,} events (test from {ds['test_start']})")
    synth, gate = results.get("synthesis"), results.get("synthetic_gate")
    if synth:
        rep = synth.get("report") or {}
        line = f"synthesis: {synth['status']}"
        if synth["status"] == "ok":
            line += f", {rep.get('accepted')} accepted of {rep.get('generated')} proposed"
        elif synth.get("reason"):
            line += f" ({synth['reason']})"
        if gate is not None:
            line += "; gate " + ("passed: synthetic data joined training" if gate["passed"] else "FAILED, trained on real data only: " + "; ".join(gate["failures"])[:300])
        lines.append(line)
    ev = results.get("evaluate", {})
    if ev:
        lines.append(f"{'model':<16}{'repeat ndcg@10':>16}{'discover ndcg@10':>18}")
        for name, m in ev["models"].items():
            lines.append(f"{name:<16}{m['repeat/ndcg@10']:>16.4f}{m['discover/ndcg@10']:>18.4f}")
        for name, views in (ev.get("synthetic_uplift") or {}).items():
            d = views["discover"]
            lines.append(f"synthetic uplift {name} (discover ndcg@10): overall {d['overall']['ndcg@10']['delta']:+.4f}, "
                         f"sparse users {d['sparse']['ndcg@10']['delta']:+.4f}")
        lines.append(f"metrics: {ev['metrics_path']}")
    fused = results.get("fusion")
    if fused:
        lines.append("fusion members: " + ", ".join(fused.get("members", [])))
    for k, v in results.get("where", {}).items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)


def write_summary(settings: Settings, as_of, results: dict) -> str:
    """Write the run summary to ``runs/<as_of>/summary.txt`` and return it."""
    results = {**results, "where": {
        "lake": str(settings.paths.lake),
        "quality results / Data Docs": str(settings.paths.quality),
        "MLflow UI": f"make mlflow-ui (store {settings.mlflow_uri})",
    }}
    text = summary_text(results)
    path = run_dir(settings, as_of) / "summary.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return text
