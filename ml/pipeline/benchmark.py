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

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data.lake import write_json_atomic
from ml.data.prepare import Prepared, SourceSpec, prepare_split
from ml.eval.compare import compare as compare_values
from ml.eval.protocol import length_segments
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
        protocol: ``temporal`` (global time cuts from settings), ``leave-one-out`` or ``leave-one-basket-out``.
        models: names from ``registry.ALL_MODELS``; ``fusion`` fuses the requested members it supports.
        out: output folder.
        settings: hyper-parameters, seed, split.
        compare: (A, B) model pairs whose paired deltas the document's ``comparisons`` records.
    """
    check_request(models, compare)
    started = time.perf_counter()
    prepared = prepare_split(spec, settings, protocol)
    doc = _fit_and_evaluate(prepared, models, RunFolder(Path(out)), settings, compare)
    doc["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(doc, RunFolder(Path(out)).metrics)
    return doc


def _fit_and_evaluate(
    prepared: Prepared, models: list[str], run: RunFolder, settings: Settings, compare: list[tuple[str, str]]
) -> dict:
    """Fit the base models and fusion into ``run`` and evaluate them (the metrics document)."""
    data, catalog = prepared.data, prepared.catalog
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
        fit_fusion(members, data, run, settings.models.fusion)
        evaluated.append(registry.FUSION)
    return evaluate_models(evaluated, data, settings, run, compare=compare)


def seed_averaged_comparisons(
    user_metrics: pd.DataFrame, compare: list[tuple[str, str]], settings: Settings, seeds: list[int]
) -> list[dict]:
    """(A, B) paired differences with every user's metrics first averaged over the seeds.

    Args:
        user_metrics: per-user metrics of every seed's run (``RunFolder.user_metrics`` frames stacked),
            with a ``seed`` column; a model keeps its name across seeds.
        compare: (A, B) model pairs.
        settings: the metrics compared (``eval.compare_metrics``), the history segments and the bootstrap.
        seeds: the seeds averaged (recorded with each comparison; the first seeds the bootstrap).
    Returns:
        Comparison dicts (``ml.eval.compare``) per pair, view, segment (overall, by history length) and metric.
    """
    metrics = settings.eval.compare_metrics
    per_user = user_metrics.groupby([C.MODEL, "view", C.USER], sort=False)
    averaged = per_user[metrics].mean().join(per_user["history_items"].first()).reset_index()
    records = []
    edges, sparse_max = settings.eval.history_buckets, settings.split.sparse_max_items
    for a, b in compare:
        left = averaged[averaged[C.MODEL] == a]
        right = averaged[averaged[C.MODEL] == b]
        paired = left.merge(right, on=["view", C.USER], suffixes=("_a", "_b"))
        for view, rows in paired.groupby("view", sort=False):
            masks = {"overall": np.ones(len(rows), bool), **length_segments(rows["history_items_a"], sparse_max, edges)}
            for segment, mask in masks.items():
                if not mask.any():
                    continue
                for metric in metrics:
                    record = compare_values(
                        rows.loc[mask, f"{metric}_a"],
                        rows.loc[mask, f"{metric}_b"],
                        a=a,
                        b=b,
                        metric=metric,
                        slice=f"{view}/{segment}",
                        seeds=seeds,
                        n_resamples=settings.eval.bootstrap_resamples,
                        random_state=seeds[0],
                    )
                    records.append(record.to_dict())
    return records


def run_seeded_benchmark(
    spec: SourceSpec,
    protocol: str,
    models: list[str],
    out: Path,
    settings: Settings,
    seeds: list[int],
    compare: list[tuple[str, str]] = (),
) -> dict:
    """The benchmark once per seed (``out/seed_<seed>/``), then what holds across seeds (``out/seeds.json``).

    Each model's metrics are reported as mean and standard deviation over the seeds; each (A, B)
    comparison pairs every user's metric averaged over the seeds, so a difference that one lucky
    seed makes does not decide it. Training that is capped by wall time is not comparable between
    two runs, so the sequence models' ``max_minutes`` caps are lifted here: their epochs (``max_epochs``,
    early stopping) bound them, and the same seed gives the same model.

    Returns:
        ``{"seeds", "protocol", "models": {key: {view: {segment: {metric: {"mean", "sd", "values"}}}}},
        "comparisons": [Comparison dicts with ``seeds``], "elapsed_seconds"}``.
    """
    check_request(models, compare)
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--seeds needs distinct seeds, got {seeds}")
    started = time.perf_counter()
    settings = settings.without_time_caps()
    prepared = prepare_split(spec, settings, protocol)
    out = Path(out)
    docs, frames = {}, []
    for seed in seeds:
        run = RunFolder(out / f"seed_{seed}")
        docs[seed] = _fit_and_evaluate(prepared, models, run, settings.with_overrides({"models": {"seed": seed}}), ())
        frames.append(pd.read_parquet(run.user_metrics).assign(seed=seed))
    metrics = settings.eval.compare_metrics
    first = next(iter(docs.values()))
    summary: dict = {}
    for key, entry in first["models"].items():
        for view, groups in entry["views"].items():
            for group in groups:
                for metric in metrics:
                    values = [docs[s]["models"][key]["views"][view][group][metric] for s in seeds]
                    cell = {
                        "mean": float(np.mean(values)),
                        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                    }
                    summary.setdefault(key, {}).setdefault(view, {}).setdefault(group, {})[metric] = {
                        **cell,
                        "values": values,
                    }
    records = seed_averaged_comparisons(pd.concat(frames), compare, settings, seeds)
    doc = {
        "seeds": seeds,
        "protocol": first["protocol"],
        **{  # the bounds the sequence models trained under (no time cap: see above)
            name: {"max_minutes": section.max_minutes, "max_epochs": section.max_epochs}
            for name, section in settings.models.epoch_trained().items()
        },
        "models": summary,
        "comparisons": records,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    write_json_atomic(doc, out / "seeds.json")
    return doc
