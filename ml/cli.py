"""Command line: ``python -m ml data prepare | benchmark | backtest | tune | synth | enrich-backfill | synth-ablation |
promote``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml.config import SPLIT_PROTOCOLS, get_settings
from ml.errors import GateFailedError, InputDataError, SettingsError
from ml.models.registry import ALL_MODELS


def _add_source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", choices=["online-retail"], help="the bundled Online Retail data (default)")
    src.add_argument("--events", type=Path, action="append", help="events file(s), CSV or Parquet, generic schema")
    p.add_argument(
        "--catalog", type=Path, help="optional item catalog (item_id, title[, category, description, price])"
    )


def _spec(args, settings):
    from ml.data.prepare import SourceSpec

    return SourceSpec.from_files(settings, args.events or (), args.catalog)


def cmd_data_prepare(args) -> int:
    """Clean the events into ``--out`` and print the report's counts."""
    from ml.data.prepare import prepare

    settings = get_settings()
    report = prepare(_spec(args, settings), args.out, settings, as_of=args.as_of)
    keys = ("rows_in", "rows_kept", "rows_quarantined", "quarantine_by_reason", "users", "items", "elapsed_s")
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    print(f"wrote {args.out}/interactions, catalog, quarantine and report.json")
    return 0


def _pair(text: str) -> tuple[str, str]:
    """``A,B`` -> (A, B)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"--compare takes two models, A,B; got {text!r}")
    return parts[0], parts[1]


def _request(args, check) -> tuple[list[str], list[tuple[str, str]]] | None:
    """``--models`` and ``--compare`` parsed and passed to ``check``; None once the refusal is printed."""
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        compare = [_pair(text) for text in args.compare or []]
        check(models, compare)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return models, compare


def cmd_benchmark(args) -> int:
    """Fit and evaluate the chosen models; print the NDCG@10 table."""
    from ml.pipeline.benchmark import check_request, run_benchmark
    from ml.pipeline.report import bucket_table, comparison_table, metrics_table, training_table

    settings = get_settings().with_overrides({"models": {"seed": args.seed}}).with_max_epochs(args.max_epochs)
    if (request := _request(args, check_request)) is None:
        return 2
    models, compare = request
    if args.seeds:
        return _seeded_benchmark(args, settings, models, compare)
    doc = run_benchmark(_spec(args, settings), args.protocol, models, args.out, settings, compare=compare)
    print(json.dumps(doc["protocol"], indent=2, default=str))
    print(metrics_table(doc, "ndcg@10"))
    print(metrics_table(doc, "recall@10"))
    print(bucket_table(doc, "ndcg@10"))
    if training := training_table(doc):
        print(training)
    if doc["comparisons"]:
        print(comparison_table(doc["comparisons"]))
    print(f"wrote {args.out}/metrics.json, recommendations.parquet, ground_truth.parquet ({doc['elapsed_seconds']} s)")
    return 0


def cmd_backtest(args) -> int:
    """Backtest the chosen models over rolling cuts; print the aggregate table."""
    from ml.data.prepare import prepare_events
    from ml.pipeline.backtest import check_models, run_backtest
    from ml.pipeline.report import backtest_table, comparison_table

    overrides = {"models": {"seed": args.seed}, "eval": {"backtest": {"span_days": args.span_days}}}
    settings = get_settings().with_overrides(overrides)
    if (request := _request(args, check_models)) is None:
        return 2
    models, compare = request
    cleaned = prepare_events(_spec(args, settings), settings, as_of=args.as_of)
    doc = run_backtest(cleaned.interactions, cleaned.catalog, settings, models, args.out, compare=compare)
    print(json.dumps(doc["totals"], indent=2))
    for metric in settings.eval.compare_metrics:
        print(backtest_table(doc, metric))
    if doc["comparisons"]:
        print(comparison_table(doc["comparisons"]))
    cuts = f"{len(doc['cuts'])} cuts {doc['cuts'][0]}..{doc['cuts'][-1]}"
    print(f"wrote {args.out}/backtest.json, user_metrics.parquet, cuts/<cut>/* ({cuts}, {doc['elapsed_seconds']} s)")
    return 0


def cmd_tune(args) -> int:
    """Search ALS hyper-parameters on the validation period; print the best trials and the chosen settings."""
    from ml.data.prepare import prepare_events
    from ml.pipeline.tuning import tune_als

    settings = get_settings().with_overrides({"models": {"seed": args.seed}})
    cleaned = prepare_events(_spec(args, settings), settings, as_of=args.as_of)
    doc = tune_als(cleaned.interactions, settings, args.trials, args.out, cleaned.catalog, track=not args.no_mlflow)
    ranked = sorted(doc["trials"], key=lambda t: -t["value"])
    print(
        f"validation {doc['validation_start']}..{doc['test_start']} (test never read), users {doc['validation_users']}"
    )
    print(f"{'trial':>5}  {'valid ndcg@10':>13}  params")
    for t in ranked[:10]:
        print(f"{t['number']:>5}  {t['value']:>13.4f}  {t['params']}")
    cur, best = doc["current"], doc["best"]
    print(f"current settings (trial 0): {cur['value']:.4f}; best: trial {best['number']} {best['value']:.4f}")
    print(
        f"wrote {args.out}/tuning.json ({doc['elapsed_seconds']} s)"
        + (f", MLflow run {doc['mlflow_run_id']}" if doc.get("mlflow_run_id") else "")
    )
    return 0


def _seeded_benchmark(args, settings, models, compare) -> int:
    """``benchmark --seeds``: the benchmark per seed, then mean +- sd over seeds and seed-averaged comparisons."""
    from ml.pipeline.benchmark import run_seeded_benchmark
    from ml.pipeline.report import comparison_table

    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        print(f"error: --seeds takes integers, e.g. 42,43,44; got {args.seeds!r}", file=sys.stderr)
        return 2
    doc = run_seeded_benchmark(_spec(args, settings), args.protocol, models, args.out, settings, seeds, compare)
    print(f"over seeds {seeds} (BERT4Rec bounded by epochs, not wall time): mean +- sd")
    for metric in settings.eval.compare_metrics:
        print(f"{'model':<11}" + "".join(f"{v + '/overall ' + metric:>32}" for v in ("repeat", "discover")))
        for key, views in doc["models"].items():
            cells = [views[v]["overall"][metric] for v in ("repeat", "discover")]
            print(f"{key:<11}" + "".join(f"{c['mean']:>24.4f} +- {c['sd']:.4f}" for c in cells))
    if doc["comparisons"]:
        print(comparison_table(doc["comparisons"]))
    print(f"wrote {args.out}/seeds.json and seed_<seed>/ ({doc['elapsed_seconds']} s)")
    return 0


def cmd_promote(args) -> int:
    """Show the champion and its alias history, roll it back, or force a version (each move recorded)."""
    from mlflow.exceptions import MlflowException

    from ml.tracking import registry

    settings = get_settings()
    if args.rollback is not None or args.force is not None:
        if not args.why:
            print("error: say why (--why '...'): every move of the champion alias is recorded", file=sys.stderr)
            return 2
        try:
            if args.force is not None:
                event = registry.move_champion(settings, args.force, why=f"forced: {args.why}", by=args.by, forced=True)
            else:
                version = None if args.rollback == "previous" else int(args.rollback)
                event = registry.rollback(settings, version, why=args.why, by=args.by)
        except (ValueError, MlflowException) as exc:  # an unknown version comes back as MlflowException
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(event, indent=2))
        return 0
    current = registry.champion(settings)
    name = settings.tracking.registered_model
    if current is None:
        print(f"{name}: no champion yet (a nightly run registers the first)")
    else:
        print(
            f"{name}@{settings.tracking.champion_alias} = version {current.version} "
            f"({current.tags.get('model')}, as of {current.tags.get('as_of')}, decision {current.tags.get('decision')})"
        )
    for e in registry.alias_history(settings):
        forced = " FORCED" if e.get("forced") else ""
        print(f"  {e['at']}  v{e['previous']} -> v{e['version']}{forced}  by {e['by']}: {e['why'][:160]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ml``."""
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="data preparation").add_subparsers(dest="data_command", required=True)
    prep = data.add_parser("prepare", help="clean events into interactions, catalog and quarantine")
    _add_source_args(prep)
    prep.add_argument("--out", type=Path, required=True, help="output folder (a local lake)")
    prep.add_argument("--as-of", help="only use events up to this day (YYYY-MM-DD)")
    prep.set_defaults(func=cmd_data_prepare)

    bench = sub.add_parser("benchmark", help="fit and evaluate models on a protocol; write metrics and lists")
    _add_source_args(bench)
    bench.add_argument("--protocol", choices=list(SPLIT_PROTOCOLS), default="temporal")
    bench.add_argument(
        "--models", default="pop,rebuy,als,bert4rec,fusion", help=f"comma-separated, from {', '.join(ALL_MODELS)}"
    )
    bench.add_argument("--out", type=Path, required=True)
    bench.add_argument("--seed", type=int, default=None)
    bench.add_argument(
        "--compare",
        action="append",
        metavar="A,B",
        help="print B - A per view, segment and metric with its paired 95%% interval and p-value (repeatable)",
    )
    bench.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="upper bound on the sequence models' epochs, BERT4Rec's and SASRec's (early stopping decides)",
    )
    bench.add_argument(
        "--seeds",
        help="comma-separated seeds (3+ to decide a comparison): one run each, mean +- sd, seed-averaged deltas",
    )
    bench.set_defaults(func=cmd_benchmark)

    back = sub.add_parser("backtest", help="replay the nightly loop over rolling cuts; write metrics and lists per cut")
    _add_source_args(back)
    back.add_argument("--models", default="pop,rebuy,als,fusion", help=f"comma-separated, from {', '.join(ALL_MODELS)}")
    back.add_argument("--out", type=Path, required=True)
    back.add_argument("--as-of", help="only use events up to this day (YYYY-MM-DD); the cuts end there")
    back.add_argument("--span-days", type=int, default=None, help="days before the end holding the cuts (default 84)")
    back.add_argument("--seed", type=int, default=None)
    back.add_argument(
        "--compare",
        action="append",
        metavar="A,B",
        help="print B - A per view, slice and metric with its cluster-bootstrap 95%% interval and p-value",
    )
    back.set_defaults(func=cmd_backtest)

    tune = sub.add_parser("tune", help="choose hyper-parameters on the validation period (Optuna; never on test)")
    tune.add_argument("model", choices=["als"], help="the model whose settings are searched")
    _add_source_args(tune)
    tune.add_argument("--trials", type=int, default=40)
    tune.add_argument("--out", type=Path, required=True)
    tune.add_argument("--as-of", help="only use events up to this day (YYYY-MM-DD)")
    tune.add_argument("--seed", type=int, default=None)
    tune.add_argument("--no-mlflow", action="store_true", help="do not log the search to MLflow")
    tune.set_defaults(func=cmd_tune)

    promote = sub.add_parser("promote", help="the champion alias: show its history, roll back, or force a version")
    moves = promote.add_mutually_exclusive_group()
    moves.add_argument(
        "--rollback",
        nargs="?",
        const="previous",
        metavar="VERSION",
        help="point the champion back at VERSION (default: the champion before the current one)",
    )
    moves.add_argument("--force", type=int, metavar="VERSION", help="point the champion at VERSION (logged as forced)")
    promote.add_argument("--why", help="the reason, recorded with the move (required for a move)")
    promote.add_argument("--by", help="who moves it (default: the login name)")
    promote.set_defaults(func=cmd_promote)

    from ml.pipeline.ablation_command import add_parser as add_ablation
    from ml.pipeline.enrich_command import add_parser as add_enrich
    from ml.pipeline.synth_command import add_parser as add_synth

    add_synth(sub)
    add_enrich(sub)
    add_ablation(sub)
    return parser


def _show_progress() -> None:
    """Progress on stderr (one line per sequence-model epoch, per ablation cut); other libraries stay at warnings."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("ml.models.bert4rec", "ml.pipeline.synth_ablation"):
        progress = logging.getLogger(name)
        if not progress.handlers:
            progress.addHandler(handler)
        progress.setLevel(logging.INFO)
        progress.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the command line; bad input or settings exit 2 with a message naming file/column/row or the key."""
    args = build_parser().parse_args(argv)
    _show_progress()
    try:
        return args.func(args)
    except (InputDataError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GateFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
