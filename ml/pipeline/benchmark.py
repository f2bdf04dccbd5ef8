"""``python -m ml benchmark``: comparable, recomputable numbers for any shop's data.

Reads and cleans the events (as ``data prepare`` does, in memory), splits them with the chosen
protocol, fits the chosen models, and writes ``metrics.json``, ``recommendations.parquet`` and
``ground_truth.parquet`` so the figures can be recomputed independently.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ml.config import Settings
from ml.data import cleaning
from ml.data.catalog import build_catalog
from ml.data.dataset import build_split
from ml.data.prepare import SourceSpec, ingest, to_interactions
from ml.pipeline.steps import FUSION_MEMBERS
from ml.pipeline.training import ALL_MODELS, BASE_MODELS, evaluate_models, fit_fusion, fit_model, item_text_for

log = logging.getLogger(__name__)


def run_benchmark(spec: SourceSpec, protocol: str, models: list[str], out: Path, settings: Settings) -> dict:
    """Clean, split, fit and evaluate; returns the metrics document (also written to ``out``).

    Args:
        spec: the input events.
        protocol: ``temporal`` (global time cuts from settings) or ``leave-one-out``.
        models: names from ``ALL_MODELS``; ``fusion`` fuses the requested members it supports.
        out: output folder.
        settings: hyper-parameters, seed, split.
    """
    unknown = set(models) - set(ALL_MODELS)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; choose from {', '.join(ALL_MODELS)}")
    started = time.perf_counter()
    raw, shop_catalog, _ = ingest(spec)
    result = cleaning.clean(raw, settings.cleaning)
    events = to_interactions(result.kept)
    data = build_split(events, settings.split, protocol)
    data.info.update(rows_in=result.rows_in, rows_quarantined=len(result.quarantined))
    out.mkdir(parents=True, exist_ok=True)
    base = [m for m in BASE_MODELS if m in models]
    catalog = build_catalog(result.kept, shop_catalog)
    for name in base:
        log.info("fitting %s", name)
        fit_model(name, data, settings, out, item_text=item_text_for(name, settings, data, catalog))
    evaluated = list(base)
    if "fusion" in models:
        members = [m for m in base if m in FUSION_MEMBERS]
        if len(members) < 2:
            raise ValueError(f"fusion needs at least two of {FUSION_MEMBERS} among the models")
        fit_fusion(members, data, out)
        evaluated.append("fusion")
    doc = evaluate_models(evaluated, data, settings, out)
    doc["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    from ml.data.lake import write_json_atomic

    write_json_atomic(doc, out / "metrics.json")
    return doc
