"""``python -m ml benchmark``: comparable, recomputable numbers for any shop's data.

Reads, cleans and splits the events in memory (:func:`ml.data.prepare.prepare_split`, as the nightly
pipeline does in its stages), fits the chosen models with the pipeline's own training code, and
writes ``metrics.json``, ``recommendations.parquet`` and ``ground_truth.parquet`` so the figures can
be recomputed independently.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ml.config import Settings
from ml.data.lake import write_json_atomic
from ml.data.prepare import SourceSpec, prepare_split
from ml.models import registry
from ml.pipeline.evaluation import evaluate_models
from ml.pipeline.layout import RunFolder
from ml.pipeline.training import fit_fusion, fit_model, item_text_for

log = logging.getLogger(__name__)


def check_request(models: list[str], compare: list[tuple[str, str]] = ()) -> None:
    """Refuse unknown models, and comparisons of models that are not benchmarked, before any work is done.

    Raises:
        ValueError: naming the offending models.
    """
    compared = [m for pair in compare for m in pair]
    registry.check_names(models + compared)
    if missing := sorted(set(compared) - set(models)):
        raise ValueError(f"--compare names {missing}, which are not among --models")


def run_benchmark(
    spec: SourceSpec,
    protocol: str,
    models: list[str],
    out: Path,
    settings: Settings,
    compare: list[tuple[str, str]] = (),
) -> dict:
    """Clean, split, fit and evaluate; returns the metrics document (also written to ``out``).

    Args:
        spec: the input events.
        protocol: ``temporal`` (global time cuts from settings) or ``leave-one-out``.
        models: names from ``registry.ALL_MODELS``; ``fusion`` fuses the requested members it supports.
        out: output folder.
        settings: hyper-parameters, seed, split.
        compare: (A, B) model pairs whose paired deltas the document's ``comparisons`` records.
    """
    check_request(models, compare)
    started = time.perf_counter()
    prepared = prepare_split(spec, settings, protocol)
    data, catalog = prepared.data, prepared.catalog
    run = RunFolder(Path(out))
    run.root.mkdir(parents=True, exist_ok=True)
    base = [m for m in registry.BASE_MODELS if m in models]
    for name in base:
        log.info("fitting %s", name)
        fit_model(name, data, settings, run, item_text=item_text_for(name, settings, data, catalog))
    evaluated = list(base)
    if registry.FUSION in models:
        members = registry.fusion_members(base)
        if len(members) < 2:
            candidates = [n for n, s in registry.MODELS.items() if s.fusion_member]
            raise ValueError(f"fusion needs at least two of {candidates} among the models")
        fit_fusion(members, data, run, settings.models.fusion.grid)
        evaluated.append(registry.FUSION)
    doc = evaluate_models(evaluated, data, settings, run, compare=compare)
    doc["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(doc, run.metrics)
    return doc
