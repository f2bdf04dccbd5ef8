"""What a run tells a person: the plain-text summary of a pipeline run and the metric tables of a benchmark."""

from __future__ import annotations

from ml.config import Settings
from ml.eval.protocol import SEGMENTS, VIEWS
from ml.pipeline.layout import Layout


def summary_text(results: dict) -> str:
    """A short human summary of one pipeline run (what ran, counts, metrics, where to look)."""
    lines = ["nightly pipeline summary", "========================"]
    clean = results.get("clean", {})
    if clean:
        lines.append(
            f"rows in {clean['rows_in']:,} -> kept {clean['rows_kept']:,}, quarantined {clean['rows_quarantined']:,}"
        )
        lines.append("quarantine: " + ", ".join(f"{k} {v:,}" for k, v in clean["quarantine_by_reason"].items()))
    ds = results.get("dataset", {})
    if ds:
        lines.append(
            f"dataset {ds['digest']}: {ds['users']:,} users x {ds['items']:,} items; train {ds['train_events']:,} "
            f"valid {ds['valid_events']:,} test {ds['test_events']:,} events (test from {ds['test_start']})"
        )
    synth, gate = results.get("synthesis"), results.get("synthetic_gate")
    if synth:
        rep = synth.get("report") or {}
        line = f"synthesis: {synth['status']}"
        if synth["status"] == "ok":
            line += f", {rep.get('accepted')} accepted of {rep.get('generated')} proposed"
        elif synth.get("reason"):
            line += f" ({synth['reason']})"
        if gate is not None:
            line += "; gate " + (
                "passed: synthetic data joined training"
                if gate["passed"]
                else "FAILED, trained on real data only: " + "; ".join(gate["failures"])[:300]
            )
        lines.append(line)
    ev = results.get("evaluate", {})
    if ev:
        lines.append(f"{'model':<16}{'repeat ndcg@10':>16}{'discover ndcg@10':>18}")
        for name, m in ev["models"].items():
            lines.append(f"{name:<16}{m['repeat/ndcg@10']:>16.4f}{m['discover/ndcg@10']:>18.4f}")
        for name, views in (ev.get("synthetic_uplift") or {}).items():
            d = views["discover"]
            lines.append(
                f"synthetic uplift {name} (discover ndcg@10): overall {d['overall']['ndcg@10']['delta']:+.4f}, "
                f"sparse users {d['sparse']['ndcg@10']['delta']:+.4f}"
            )
        lines.append(f"metrics: {ev['metrics_path']}")
    fused = results.get("fusion")
    if fused:
        lines.append("fusion members: " + ", ".join(fused.get("members", [])))
    for k, v in results.get("where", {}).items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)


def write_summary(settings: Settings, as_of, results: dict) -> str:
    """Write the run summary to ``runs/<as_of>/summary.txt`` and return it."""
    results = {
        **results,
        "where": {
            "lake": str(settings.paths.lake),
            "quality results / Data Docs": str(settings.paths.quality),
            "MLflow UI": f"make mlflow-ui (store {settings.mlflow_uri})",
        },
    }
    text = summary_text(results)
    path = Layout.of(settings, as_of).run.summary
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return text


def uplift_table(doc: dict) -> str:
    """Real-only vs real+synthetic NDCG@10 and Recall@10 per model, view and segment, one table."""
    rows = [f"{'model':<10}{'view':<10}{'segment':<9}{'metric':<11}{'real':>9}{'real+syn':>10}{'delta':>9}"]
    for name, views in doc.get("synthetic_uplift", {}).items():
        for view, segs in views.items():
            for seg, ms in segs.items():
                for m, d in ms.items():
                    rows.append(
                        f"{name:<10}{view:<10}{seg:<9}{m:<11}{d['real']:>9.4f}{d['real_synthetic']:>10.4f}{d['delta']:>+9.4f}"
                    )
    return "\n".join(rows)


def metrics_table(doc: dict, metric: str = "ndcg@10") -> str:
    """A plain-text table: one row per model, columns view x segment for ``metric``."""
    cols = [(v, s) for v in VIEWS for s in SEGMENTS]
    header = f"{'model':<11}" + "".join(f"{v[:4]}/{s:<8}" for v, s in cols) + "  fit_s"
    lines = [f"{metric}", header]
    for name, entry in doc["models"].items():
        vals = [entry["views"][v].get(s, {}).get(metric, float("nan")) for v, s in cols]
        lines.append(f"{name:<11}" + "".join(f"{x:>13.4f}" for x in vals) + f"  {entry.get('fit_seconds') or 0:>6}")
    return "\n".join(lines)
