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
            strategy = f" by strategy {rep['strategy']}" if rep.get("strategy") else ""
            line += f", {rep.get('accepted')} accepted of {rep.get('generated')} proposed{strategy}"
        elif synth.get("reason"):
            line += f" ({synth['reason']})"
        if gate is not None and synth["status"] == "ok":
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
                f"synthetic uplift {name} (discover ndcg@10, 95% interval): overall {_delta(d['overall']['ndcg@10'])}, "
                f"sparse users {_delta(d['sparse']['ndcg@10'])}"
            )
        lines.append(f"metrics: {ev['metrics_path']}")
    bt = results.get("backtest") or {}
    if bt.get("cuts"):
        totals = bt["totals"]
        lines.append(
            f"backtest {len(bt['cuts'])} weekly cuts {bt['cuts'][0]}..{bt['cuts'][-1]}: "
            f"{totals['share_customers_new']:.1%} of customers new, "
            f"{totals['share_purchases_unlisted_items']:.1%} of purchases of products not yet sold (unscorable)"
        )
        lines.append(f"{'backtest ndcg@10 (discover)':<28}{'overall [95% interval]':>26}{'cold items':>12}")
        for name, cells in bt["models"].items():
            mean, low, high = cells["discover/overall/ndcg@10"]
            lines.append(
                f"{name:<28}{f'{mean:.4f} [{low:.4f}, {high:.4f}]':>26}{cells['discover/cold_items/ndcg@10'][0]:>12.4f}"
            )
        lines.append(f"backtest: {bt['path']}")
    fused = results.get("fusion")
    if fused and fused.get("skipped"):
        lines.append(f"fusion: not fitted ({fused['skipped']})")
    elif fused:
        lines.append("fusion members: " + ", ".join(fused.get("members", [])))
    decision = results.get("promotion") or {}
    if decision:
        lines.append(f"promotion: {decision['action']}" + (" (dry run)" if decision.get("dry_run") else ""))
        lines += [f"  {r}" for r in decision.get("reasons", [])]
    registered = results.get("registered") or {}
    if registered:
        moved = "moved to" if registered.get("moved") else "stays at"
        lines.append(f"champion alias {moved} version {registered.get('version')}")
    served = results.get("serving") or {}
    if served.get("path"):
        lines.append(
            f"batch lists: {served['customers']:,} active customers x 2 views from version {served['version']} "
            f"-> {served['path']}"
        )
    elif served:
        lines.append(f"batch lists: not written ({served.get('reason')})")
    for k, v in results.get("where", {}).items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)


def write_summary(settings: Settings, as_of, results: dict, parent_run_id: str | None = None) -> str:
    """Write the run summary to ``runs/<as_of>/summary.txt`` and return it.

    Args:
        parent_run_id: the pipeline's MLflow parent run; the summary becomes its description.
    """
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
    if parent_run_id:
        from ml.tracking.runs import DESCRIPTION_TAG, log_to_run

        log_to_run(settings, parent_run_id, tags={DESCRIPTION_TAG: f"```\n{text}\n```"}, artifacts=[path])
    return text


def _delta(d: dict) -> str:
    """``+0.0123 [-0.0040, +0.0290]``: a delta with its 95% interval where one was computed."""
    if d.get("ci_low") is None:
        return f"{d['delta']:+.4f}"
    return f"{d['delta']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def uplift_table(doc: dict) -> str:
    """Real-only vs real+synthetic NDCG@10 and Recall@10 per model, view and segment, with the delta's interval."""
    rows = [f"{'model':<10}{'view':<10}{'segment':<9}{'metric':<11}{'real':>9}{'real+syn':>10}  delta [95% interval]"]
    for name, views in doc.get("synthetic_uplift", {}).items():
        for view, segs in views.items():
            for seg, ms in segs.items():
                for m, d in ms.items():
                    rows.append(
                        f"{name:<10}{view:<10}{seg:<9}{m:<11}{d['real']:>9.4f}{d['real_synthetic']:>10.4f}  {_delta(d)}"
                    )
    return "\n".join(rows)


def comparison_table(records: list[dict]) -> str:
    """One line per comparison record: B - A with its 95% interval, p-value and users."""
    head = f"{'B - A':<28}{'slice':<22}{'metric':<11}{'A':>8}{'B':>8}{'delta':>9}"
    rows = [head + f"  {'95% interval':<20}{'p':>7}{'users':>7}"]
    for r in records:
        interval = f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
        rows.append(
            f"{r['b'] + ' - ' + r['a']:<28}{r['slice']:<22}{r['metric']:<11}{r['a_value']:>8.4f}{r['b_value']:>8.4f}"
            f"{r['delta']:>+9.4f}  {interval:<20}{r['p_value']:>7.3f}{r['n_users']:>7}"
        )
    return "\n".join(rows)


def bucket_table(doc: dict, metric: str = "ndcg@10", view: str = "discover") -> str:
    """``metric`` per model and history-length bucket (users per bucket in the header)."""
    buckets = doc.get("history_buckets") or []
    first = next(iter(doc["models"].values()), None)
    if first is None or not buckets:
        return ""
    groups = first["views"][view]
    labels = [f"{b.removeprefix('history_')} ({groups.get(b, {}).get('users', 0)})" for b in buckets]
    lines = [
        f"{metric} ({view} view) by distinct items in history (users)",
        f"{'model':<11}" + "".join(f"{x:>16}" for x in labels),
    ]
    for name, entry in doc["models"].items():
        vals = [entry["views"][view].get(b, {}).get(metric, float("nan")) for b in buckets]
        lines.append(f"{name:<11}" + "".join(f"{x:>16.4f}" for x in vals))
    return "\n".join(lines)


def metrics_table(doc: dict, metric: str = "ndcg@10") -> str:
    """A plain-text table: one row per model, columns view x segment for ``metric``."""
    cols = [(v, s) for v in VIEWS for s in (*SEGMENTS, "cold_items")]
    header = f"{'model':<11}" + "".join(f"{v[:4] + '/' + s.removesuffix('_items'):>13}" for v, s in cols) + "  fit_s"
    lines = [f"{metric}", header]
    for name, entry in doc["models"].items():
        vals = [entry["views"][v].get(s, {}).get(metric, float("nan")) for v, s in cols]
        lines.append(f"{name:<11}" + "".join(f"{x:>13.4f}" for x in vals) + f"  {entry.get('fit_seconds') or 0:>6}")
    return "\n".join(lines)


def training_table(doc: dict) -> str | None:
    """How the epoch-trained models trained: epochs, the best one, what ended training, throughput, the
    seconds to reach 95% of the best validation NDCG@10 and the order baskets were read in (``shuffled``
    or the split's ``fixed`` order); None when no model reports epochs."""
    rows = {name: e["training"] for name, e in doc["models"].items() if e.get("training")}
    if not rows:
        return None
    head = ("epochs", "best", "stopped_by", "armed_at", "seq/s", "train_s", "best_s", "to_95%_s", "baskets")
    lines = ["training (time-to-quality: seconds to 95% of the best validation NDCG@10)"]
    lines.append(f"{'model':<11}" + "".join(f"{h:>15}" for h in head))
    for name, t in rows.items():
        armed, shuffled = t.get("early_stopping_armed_epoch"), t.get("shuffle_baskets")
        cells = (
            t.get("epochs_run"), t.get("best_epoch"), t.get("stopped_by"),
            "-" if armed is None else f"{armed} ({t.get('early_stopping_armed_by') or '?'})"[:14],
            t.get("sequences_per_s"), t.get("train_seconds"), t.get("best_elapsed_seconds"),
            t.get("seconds_to_95pct_of_best"), None if shuffled is None else ("shuffled" if shuffled else "fixed"),
        )  # fmt: skip
        lines.append(f"{name:<11}" + "".join(f"{'-' if c is None else c!s:>15}" for c in cells))
    return "\n".join(lines)


def backtest_table(doc: dict, metric: str = "ndcg@10") -> str:
    """Backtest aggregate per model and view: ``metric`` pooled over cuts with its 95% cluster interval, per slice.

    Columns: overall, known customers, new customers, cold items (users in each header), and the
    standard deviation of the per-cut means.
    """
    slices = ("overall", "known", "new_customers", "cold_items")
    agg = doc["aggregate"]
    lines = [f"{metric}, pooled over {len(doc['cuts'])} cuts, mean [95% interval over customers]"]
    lines.append(f"{'model':<11}{'view':<10}" + "".join(f"{s:>27}" for s in slices) + f"{'sd over cuts':>14}")
    for model, views in agg.items():
        for view, cells in views.items():
            parts = []
            for s in slices:
                c = cells.get(s, {}).get(metric)
                parts.append(
                    f"{c['mean']:.4f} [{c['ci_low']:.4f},{c['ci_high']:.4f}]" if c and c["mean"] == c["mean"] else "-"
                )
            sd = cells["overall"][metric]["cut_sd"]
            lines.append(f"{model:<11}{view:<10}" + "".join(f"{p:>27}" for p in parts) + f"{sd:>14.4f}")
    first = next(iter(agg.values()), {}).get("discover", {})
    lines.append("users (discover): " + ", ".join(f"{s} {first.get(s, {}).get('users', 0)}" for s in slices))
    return "\n".join(lines)
