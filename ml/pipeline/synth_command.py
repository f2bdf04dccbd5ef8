"""``python -m ml synth``: synthesize, gate and write synthetic data for a shop's events.

Writes ``synthetic_interactions.parquet``, ``items_enriched.parquet``, ``synthetic_rejected.parquet``
and ``synth_report.json`` (counts, rates, KL values, throughput and the gate's verdict) into ``--out``.
Exit status: 0 when the gate passed, 2 for an unknown strategy, 3 when the gate failed (the files are
still written, the report says why), 4 when the generator was unavailable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``synth`` command on ``python -m ml``'s subparsers.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.
    Returns:
        The ``synth`` parser.
    """
    p = subparsers.add_parser("synth", help="synthesize training data with a language model (gated)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", choices=["online-retail"], help="the bundled Online Retail data (default)")
    src.add_argument("--events", type=Path, action="append", help="events file(s), CSV or Parquet, generic schema")
    src.add_argument("--lake", type=Path, help="an existing lake (from `python -m ml data prepare`): skips cleaning")
    p.add_argument("--catalog", type=Path, help="optional item catalog for --events")
    p.add_argument("--as-of", help="only use events up to this day (YYYY-MM-DD)")
    p.add_argument("--backend", choices=["embedded", "openai"], help="generator (default: settings synth.backend)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--strategy",
        help="what to synthesize: an arm of ml.synth.arms (with its share: prior@1) or 'expansion' "
        "(default: synth.strategies.nightly)",
    )
    p.add_argument("--max-users", type=int, help="expansion only: at most this many sparse users (seeded sample)")
    p.add_argument("--seed", type=int, help="seed (default: settings synth.seed)")
    p.add_argument("--enrich-max-items", type=int, help="items to enrich in this run (default: settings)")
    p.set_defaults(func=run)
    return p


def _split_and_catalog(args, settings):
    from ml.data.prepare import SourceSpec, prepare_split, read_lake_catalog, split_lake

    if args.lake:
        return split_lake(args.lake, settings, args.as_of), read_lake_catalog(args.lake)
    spec = SourceSpec(events=tuple(args.events), catalog=args.catalog) if args.events else SourceSpec.bundled(settings)
    prepared = prepare_split(spec, settings, "temporal", args.as_of)
    return prepared.data, prepared.catalog


def run(args) -> int:
    """Run ``synth``: build the split, synthesize, gate, write the files and print a summary.

    Returns:
        0 (gate passed), 2 (an unknown strategy), 3 (gate failed) or 4 (generator unavailable).
    """
    from ml.config import get_settings
    from ml.data.lake import write_json_atomic
    from ml.errors import GateFailedError
    from ml.synth.arms import check_nightly
    from ml.synth.llm.errors import GeneratorError
    from ml.synth.pipeline import FILES, synthesize
    from ml.synth.quality import gate_synthetic

    overrides = {
        "backend": args.backend,
        "max_users": args.max_users,
        "seed": args.seed,
        "enrich_max_items": args.enrich_max_items,
    }
    if args.strategy:
        overrides["strategies"] = {"nightly": args.strategy}
    settings = get_settings().with_overrides({"synth": overrides})
    try:  # before any data is read
        check_nightly(settings.synth.strategies.nightly)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data, catalog = _split_and_catalog(args, settings)
    try:
        result = synthesize(data, catalog, settings)
    except GeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    status = 0
    try:
        result.report["gate"] = gate_synthetic(
            result, data, catalog, settings, run_name=f"synth-{result.report['seed']}"
        )
    except GateFailedError as exc:
        result.report["gate"] = {"success": False, "failures": exc.failures, "result": exc.report_path}
        print(f"synthetic data rejected by the gate: {exc}", file=sys.stderr)
        status = 3
    paths = result.save(args.out)
    write_json_atomic(result.report, Path(paths["report"]))
    r = result.report
    summary = {
        "generator": r["generator"],
        "interactions": {
            k: r["interactions"][k] for k in ("generated", "accepted", "rejected", "validity_rate", "accepted_per_s")
        },
        "items": {k: r["items"][k] for k in ("attempted", "ok", "rejected", "from_cache", "not_enriched_yet")},
        "kl_popularity": r["distribution"]["kl_popularity"],
        "kl_category": r["distribution"]["kl_category"],
        "gate": r["gate"]["success"],
    }
    print(json.dumps(summary, indent=2))
    print(f"wrote {', '.join(FILES.values())} to {args.out}")
    return status
