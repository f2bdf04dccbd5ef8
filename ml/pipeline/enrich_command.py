"""``python -m ml enrich-backfill``: enrich the whole catalog once, so that the nightly run only enriches new products.

The nightly run enriches at most ``synth.enrich_max_items`` products it has not seen (most popular
first); on a catalog of thousands that takes weeks of nights. This command runs the same enrichment
(:func:`ml.synth.enrichment.enrich_items`: same prompts, generator, validation and cache) in chunks
until every product is cached or ``--max-minutes`` is spent. Each chunk is written to the cache as
it finishes, so an interrupted backfill resumes where it stopped and a finished one costs nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ml import columns as C
from ml.config import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``enrich-backfill`` on ``python -m ml``'s subparsers."""
    p = subparsers.add_parser("enrich-backfill", help="enrich every catalog product the cache does not hold yet")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", choices=["online-retail"], help="the bundled Online Retail catalog (default)")
    src.add_argument("--lake", type=Path, help="an existing lake (from `python -m ml data prepare`)")
    src.add_argument("--catalog", type=Path, help="a catalog file (CSV or Parquet with item_id and title)")
    p.add_argument("--chunk", type=int, default=100, help="products enriched and cached per step (default 100)")
    p.add_argument("--max-minutes", type=float, help="stop after the chunk that passes this wall time (resumable)")
    p.add_argument("--backend", choices=["embedded", "openai"], help="generator (default: settings synth.backend)")
    p.set_defaults(func=run)
    return p


def backfill(
    catalog: pd.DataFrame,
    generator,
    settings: Settings,
    chunk: int = 100,
    max_minutes: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Enrich ``catalog`` chunk by chunk into the enrichment cache until nothing is left or time is up.

    Args:
        catalog: item_id, title[, popularity] (most popular products first).
        generator: the generator the nightly run uses (its name and prompt version key the cache).
        chunk: products per :func:`~ml.synth.enrichment.enrich_items` call (each call writes the cache).
        max_minutes: stop after the chunk that passes this wall time; None: until the catalog is done.
        progress: called with one line per chunk (default: nothing).
    Returns:
        ``{"enriched", "ok", "rejected": {reason: n}, "from_cache_before", "remaining", "chunks", "seconds",
        "items_per_s"}``.
    Raises:
        ValueError: a chunk below 1.
    """
    from ml.synth.enrichment import enrich_items

    if chunk < 1:
        raise ValueError(f"--chunk must be at least 1, got {chunk}")
    catalog = catalog[catalog[C.TITLE].notna()]  # a product without a title has nothing to enrich
    step = settings.with_overrides({"synth": {"enrich_max_items": chunk}})
    started = time.perf_counter()
    totals: dict = {"enriched": 0, "ok": 0, "rejected": {}, "from_cache_before": None, "remaining": None, "chunks": 0}
    while True:
        _, rep = enrich_items(catalog, generator, step)
        if totals["from_cache_before"] is None:
            totals["from_cache_before"] = rep["from_cache"]
        totals["remaining"] = rep["not_enriched_yet"]
        if not rep["attempted"]:
            break
        totals["chunks"] += 1
        totals["enriched"] += rep["attempted"]
        totals["ok"] += rep["ok"]
        for reason, n in rep["rejected"].items():
            totals["rejected"][reason] = totals["rejected"].get(reason, 0) + n
        elapsed = time.perf_counter() - started
        rate = totals["enriched"] / elapsed
        if progress is not None:
            eta = rep["not_enriched_yet"] / rate if rate > 0 else float("nan")
            progress(
                f"enriched {totals['enriched']} ({totals['ok']} accepted), {rep['not_enriched_yet']} left, "
                f"{rate:.2f} products/s, about {eta / 60:.0f} min to go"
            )
        if not rep["not_enriched_yet"] or (max_minutes is not None and elapsed >= max_minutes * 60):
            break
    seconds = time.perf_counter() - started
    totals["seconds"] = round(seconds, 1)
    totals["items_per_s"] = round(totals["enriched"] / seconds, 3) if totals["enriched"] and seconds > 0 else None
    return totals


def _catalog(args, settings: Settings) -> pd.DataFrame:
    from ml.data.prepare import SourceSpec, prepare_events, read_lake_catalog

    if args.lake:
        return read_lake_catalog(args.lake)
    if args.catalog:
        from ml.data.sources import read_catalog

        return read_catalog(args.catalog)
    return prepare_events(SourceSpec.bundled(settings), settings).catalog


def run(args) -> int:
    """Run the backfill and print its counts; 0 when the catalog is fully enriched, 5 when products remain."""
    from ml.config import get_settings
    from ml.synth.llm.errors import GeneratorError
    from ml.synth.llm.factory import make_generator

    settings = get_settings().with_overrides({"synth": {"backend": args.backend}})
    catalog = _catalog(args, settings)
    try:
        generator = make_generator(settings)
    except GeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    try:
        doc = backfill(catalog, generator, settings, args.chunk, args.max_minutes, lambda s: print(s, file=sys.stderr))
    finally:
        generator.close()
    print(json.dumps(doc, indent=2))
    return 0 if doc["remaining"] == 0 else 5
