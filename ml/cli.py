"""Command line: ``python -m ml data prepare ...`` and ``python -m ml benchmark ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml.config import get_settings
from ml.errors import GateFailedError, InputDataError


def _add_source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", choices=["online-retail"], help="the bundled Online Retail data (default)")
    src.add_argument("--events", type=Path, action="append", help="events file(s), CSV or Parquet, generic schema")
    p.add_argument("--catalog", type=Path, help="optional item catalog (item_id, title[, category, description, price])")


def _spec(args, settings):
    from ml.data.prepare import SourceSpec

    if args.events:
        return SourceSpec(events=tuple(args.events), catalog=args.catalog)
    if args.catalog:
        raise InputDataError(args.catalog, "--catalog needs --events (the bundled data has no catalog file)")
    return SourceSpec.bundled(settings)


def cmd_data_prepare(args) -> int:
    """Clean the events into ``--out`` and print the report's counts."""
    from ml.data.prepare import prepare

    settings = get_settings()
    report = prepare(_spec(args, settings), args.out, settings, as_of=args.as_of)
    keys = ("rows_in", "rows_kept", "rows_quarantined", "quarantine_by_reason", "users", "items", "elapsed_s")
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    print(f"wrote {args.out}/interactions, catalog, quarantine and report.json")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; bad input exits 2 with a one-line message naming file/column/row."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GateFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
