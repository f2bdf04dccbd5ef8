"""``python -m ml synth-ablation``: run the synthesis ablation (``ml.pipeline.synth_ablation``), print its
table, draw its plot and log both to MLflow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``synth-ablation`` on ``python -m ml``'s subparsers."""
    p = subparsers.add_parser(
        "synth-ablation", help="every synthesis strategy against real only and its controls, on the rolling backtest"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", choices=["online-retail"], help="the bundled Online Retail data (default)")
    src.add_argument("--events", type=Path, action="append", help="events file(s), CSV or Parquet, generic schema")
    src.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="merge finished runs that split the arms between them (same cuts, seeds, models; each with real): "
        "the rows and the decision over all their arms, written to --out",
    )
    p.add_argument("--catalog", type=Path, help="optional item catalog for --events (titles)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--as-of", help="only use events up to this day (YYYY-MM-DD); the cuts end there")
    p.add_argument("--arms", help="comma-separated arms (default: settings synth.strategies.ablation_arms)")
    p.add_argument("--models", help="comma-separated models (default: settings synth.strategies.ablation_models)")
    p.add_argument("--seeds", help="comma-separated model seeds (default 0,1,2)")
    p.add_argument("--span-days", type=int, help="days before the end holding the cuts (default: the backtest's 84)")
    p.add_argument("--per-user", type=int, help="synthetic items per short customer (the synthetic share)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the table and plot to MLflow")
    p.set_defaults(func=run)
    return p


def _list(text: str | None, cast=str) -> list | None:
    return None if not text else [cast(t.strip()) for t in text.split(",") if t.strip()]


def run(args) -> int:
    """Run the ablation; print the primary endpoint, the decision and where the files are."""
    from ml.config import get_settings
    from ml.data.prepare import SourceSpec, prepare_events
    from ml.pipeline.synth_ablation import check_request, check_text_request, merge_ablations, run_ablation

    overrides: dict = {"synth": {"strategies": {"per_user": args.per_user}}}
    if args.span_days:
        overrides["eval"] = {"backtest": {"span_days": args.span_days}}
    settings = get_settings().with_overrides(overrides)
    if args.merge:
        try:
            doc = merge_ablations(args.merge, settings, args.out)
        except ValueError as exc:
            print(f"error: {exc}")
            return 2
        return _report(doc, args, settings)
    st = settings.synth.strategies
    arms, models = _list(args.arms) or st.ablation_arms, _list(args.models) or st.ablation_models
    seeds = _list(args.seeds, int) or st.ablation_seeds
    try:
        check_request(arms, models, seeds)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    spec = SourceSpec(events=tuple(args.events), catalog=args.catalog) if args.events else SourceSpec.bundled(settings)
    cleaned = prepare_events(spec, settings, as_of=args.as_of)
    try:
        check_text_request(arms, models, cleaned.catalog, settings)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    # an empty enrichment store raises InputDataError, which the command line reports in one line
    doc = run_ablation(cleaned.interactions, cleaned.catalog, settings, args.out, arms, models, seeds)
    return _report(doc, args, settings)


def _report(doc: dict, args, settings) -> int:
    table, run_id = report_ablation(doc, Path(args.out), settings, track=not args.no_mlflow)
    print(table)
    if run_id:
        print(f"MLflow run {run_id}")
    print(
        f"wrote {args.out}/ablation.json, ablation_summary.json, ablation.md, ablation.png ({doc['elapsed_seconds']} s)"
    )
    return 0


REPORT_FILES = ("ablation.json", "ablation.md", "ablation.png")  # what the ablation's MLflow run holds


def write_report(doc: dict, out: Path) -> str:
    """Write ``ablation.md`` and ``ablation.png`` beside a finished ablation's ``ablation.json``; returns the table."""
    rows = json.loads((out / "ablation.json").read_text())
    table = ablation_table(rows, doc)
    (out / "ablation.md").write_text(table)
    plot_primary(rows, doc, out / "ablation.png")
    return table


def log_report(doc: dict, out: Path, settings, run_name: str | None = None) -> str:
    """Log a written report (:data:`REPORT_FILES` in ``out``) to an MLflow run of its own; returns its id."""
    from ml.tracking.runs import log_ablation

    return log_ablation(settings, doc, [out / name for name in REPORT_FILES], run_name)


def report_ablation(doc: dict, out: Path, settings, track: bool = True, run_name: str | None = None):
    """Write the report of a finished ablation in ``out`` and, with ``track``, log it to MLflow.

    Returns:
        ``(table text, MLflow run id or None)``.
    """
    table = write_report(doc, out)
    return table, log_report(doc, out, settings, run_name) if track else None


def _cell(r: dict) -> str:
    rel = f"{r['relative']:+.1%}" if r.get("relative") is not None else "n/a"
    return (
        f"{r['value']:.4f} vs {r['baseline']:.4f}: {r['delta']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] ({rel})"
    )


def ablation_table(rows: list[dict], doc: dict) -> str:
    """Markdown: the decision, the primary endpoint per arm and phase, then every arm x model x slice (all cuts)."""
    d = doc["decision"]
    p = d["primary_endpoint"]
    lines = [
        f"# Synthesis ablation: {len(doc['cuts'])} cuts {doc['cuts'][0]}..{doc['cuts'][-1]}, seeds {doc['seeds']}",
        "",
        f"Primary endpoint (fixed in advance): {p['model']} {p['metric']} on {p['slice']} (known customers, "
        f"1..{doc['settings']['strategies']['short_max_items']} items). Chosen on validation cuts "
        f"{d['validation_cuts'][0] if d['validation_cuts'] else '-'}.., confirmed on test cuts "
        f"{d['test_cuts'][0] if d['test_cuts'] else '-'}..: chosen arm **{d['chosen_arm']}**, "
        f"goal (>= +5% relative, interval above 0) met on test: **{d['goal_met_on_test']}**.",
        "",
        "| arm | baseline | phase | users | value vs baseline: delta [95% CI] (relative) | p |",
        "|---|---|---|---|---|---|",
    ]
    prim = [r for r in rows if r["model"] == p["model"] and r["metric"] == p["metric"] and r["slice"] == p["slice"]]
    for r in sorted(prim, key=lambda r: (r["phase"] != "validation", r["phase"], r["arm"], r["baseline_arm"])):
        lines.append(
            f"| {r['arm']} | {r['baseline_arm']} | {r['phase']} | {r['n_users']} | {_cell(r)} | {r['p_value']:.3f} |"
        )
    lines += ["", "## Every arm, model and slice (all cuts)", ""]
    lines += [
        "| arm | baseline | model | slice | metric | users | delta [95% CI] | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["phase"] != "all" and r["baseline_arm"] != "content_knn":
            continue
        lines.append(
            f"| {r['arm']} | {r['baseline_arm']} | {r['model']} | {r['slice']} | {r['metric']} | {r['n_users']} "
            f"| {_cell(r)} | {r['p_value']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot_primary(rows: list[dict], doc: dict, path: Path) -> Path:
    """Primary-endpoint deltas over real only with their 95% intervals, per arm, validation and test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = doc["decision"]["primary_endpoint"]
    prim = [
        r
        for r in rows
        if r["model"] == p["model"]
        and r["metric"] == p["metric"]
        and r["slice"] == p["slice"]
        and r["baseline_arm"] == "real"
    ]
    arms = sorted({r["arm"] for r in prim})
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(arms) + 2))
    for offset, (phase, color) in enumerate((("validation", "tab:blue"), ("test", "tab:orange"))):
        labelled = False  # one legend entry per phase, on its first point
        for y, arm in enumerate(arms):
            r = next((r for r in prim if r["arm"] == arm and r["phase"] == phase), None)
            if r is None:
                continue
            yy = y + (offset - 0.5) * 0.3
            ax.errorbar(
                r["delta"], yy, xerr=[[r["delta"] - r["ci_low"]], [r["ci_high"] - r["delta"]]], fmt="o", color=color,
                label=None if labelled else phase,
            )  # fmt: skip
            labelled = True
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(arms)), arms)
    ax.set_xlabel(f"{p['model']} {p['metric']} on {p['slice']}: arm - real only (95% CI)")
    if prim:
        ax.legend(loc="best")
    else:  # no short customer had a discovery on these cuts: say so instead of an empty chart
        ax.text(0.5, 0.5, "no primary-endpoint rows", transform=ax.transAxes, ha="center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
