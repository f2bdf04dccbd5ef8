"""``synthesize``: the synthesis stage the DAG calls, from a real split and the catalog to gated-ready frames.

Order: enrich items (bounded, cached) -> synthetic interactions from the nightly strategy
(``synth.strategies.nightly``: an arm of :mod:`ml.synth.strategies`, by default the prepended
pseudo-history the ablation chose, or the language model's next-purchase expansion) -> filter ->
distribution report. :func:`ml.synth.quality.gate_synthetic` then decides whether
the synthetic interactions may join training.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data.dataset import SplitData
from ml.data.interactions import CONTEXT
from ml.data.lake import write_json_atomic, write_parquet_atomic
from ml.synth import prompts
from ml.synth.arms import EXPANSION, check_nightly
from ml.synth.candidates import CandidateIndex
from ml.synth.enrichment import ATTRIBUTE_COLUMNS, category_of, enrich_items
from ml.synth.expansion import plan_users, propose
from ml.synth.llm.base import Generator
from ml.synth.llm.factory import make_generator
from ml.synth.quality import (
    SYNTHETIC_COLUMNS,
    count_reasons,
    distribution_report,
    eligible_items,
    filter_proposals,
    window_floor,
)
from ml.synth.strategy_proposals import needs_item_text, strategy_proposals, uses_language_model
from ml.text.encoder import TitleEncoder

log = logging.getLogger(__name__)
FILES = {
    "interactions": "synthetic_interactions.parquet",
    "items": "items_enriched.parquet",
    "rejected": "synthetic_rejected.parquet",
    "report": "synth_report.json",
}


@dataclass
class SynthResult:
    """What one synthesis run produced.

    Attributes:
        interactions: accepted synthetic interactions (``SYNTHETIC_COLUMNS``).
        rejected: every rejected proposal with its ``reject_reason`` (kept for inspection).
        items: item enrichment results (``ATTRIBUTE_COLUMNS``; status other than ``ok`` = rejected).
        report: counts (generated / accepted / rejected by reason), rates, KL values, throughput.
    """

    interactions: pd.DataFrame
    rejected: pd.DataFrame
    items: pd.DataFrame
    report: dict

    def save(self, folder: Path) -> dict[str, str]:
        """Write the frames and the report into ``folder``; returns ``{name: path}``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("interactions", "items", "rejected"):
            write_parquet_atomic(getattr(self, name), folder / FILES[name])
        write_json_atomic(self.report, folder / FILES["report"])
        return {name: str(folder / f) for name, f in FILES.items()}


def synthesize(
    data: SplitData,
    catalog: pd.DataFrame,
    settings: Settings,
    backend: Generator | None = None,
    encoder: TitleEncoder | None = None,
    use_text_neighbours: bool = True,
) -> SynthResult:
    """Synthesize interactions with the nightly strategy and enrich items.

    Args:
        data: the real temporal split (only ``train`` is read for generation).
        catalog: the lake catalog (item_id, title, price, popularity, ...).
        settings: ``settings.synth`` drives everything.
        backend: a generator; None builds the one configured (the embedded model by default).
        encoder: title encoder for text neighbours; None: all-MiniLM-L6-v2 on the configured device.
        use_text_neighbours: False draws the expansion's candidates from co-purchases (and popularity) only.
    Returns:
        A :class:`SynthResult` (not yet gated: call :func:`ml.synth.quality.gate_synthetic`).
    """
    s = settings.synth
    strategy = s.strategies.nightly
    check_nightly(strategy)
    eligible = eligible_items(data, catalog)
    started = time.perf_counter()
    generator, adaptation = (backend, None) if backend is not None else build_generator(settings, data, catalog)
    try:
        t0 = time.perf_counter()
        items, enrich_report = enrich_items(catalog, generator, settings)
        t1 = time.perf_counter()
        if strategy == EXPANSION:
            if use_text_neighbours and encoder is None:
                encoder = TitleEncoder.from_settings(settings, threads=s.torch_threads)
            index = CandidateIndex(data.train, catalog, encoder if use_text_neighbours else None)
            tasks, user_info = plan_users(data, catalog, index, settings)
            n_candidates = len(index)
            t2 = time.perf_counter()
            proposals, prompt_version, propose_info = propose(tasks, generator, settings)
            proposals = proposals.assign(
                generator=generator.name,
                prompt_version=prompt_version,
                **{C.WEIGHT: np.float32(s.weight), CONTEXT: False},
            )
        else:
            vectors = _item_vectors(data, catalog, settings, encoder) if needs_item_text(strategy) else None
            t2 = time.perf_counter()
            proposals, prompt_version, user_info = strategy_proposals(
                data, catalog, settings, strategy, generator if uses_language_model(strategy) else None, vectors
            )
            propose_info, n_candidates = {}, len(eligible)
        t3 = time.perf_counter()
    finally:
        if backend is None:
            generator.close()
    cut = data.training_cut
    flagged = filter_proposals(proposals, data.train, eligible, cut, s.min_score, s.max_per_user, window_floor(data))
    counts = count_reasons(flagged)
    accepted = flagged[flagged["reject_reason"].isna()]
    interactions = (
        pd.DataFrame(
            {
                C.USER: accepted[C.USER].astype(str).to_numpy(),
                C.ITEM: accepted[C.ITEM].astype(str).to_numpy(),
                C.TIMESTAMP: pd.to_datetime(accepted[C.TIMESTAMP]).astype("datetime64[ns]").to_numpy(),
                C.SOURCE: "synthetic",
                "generator": accepted["generator"].astype(str).to_numpy(),
                "prompt_version": accepted["prompt_version"].astype(str).to_numpy(),
                "seed": np.int64(s.seed),
                C.SCORE: accepted[C.SCORE].astype(float).to_numpy(),
                C.WEIGHT: accepted[C.WEIGHT].astype(np.float32).to_numpy(),
                CONTEXT: accepted[CONTEXT].astype(bool).to_numpy(),
            },
            columns=SYNTHETIC_COLUMNS,
        )
        .sort_values([C.USER, C.TIMESTAMP, C.ITEM], kind="stable")
        .reset_index(drop=True)
    )
    rejected = flagged[flagged["reject_reason"].notna()].reset_index(drop=True)
    rejected = rejected.assign(**{C.ITEM: rejected[C.ITEM].astype(object), "origin": rejected["origin"].astype(object)})
    generated = counts["generated"]
    malformed = (
        counts["rejected"]["invalid_answer"]
        + counts["rejected"]["not_a_candidate"]
        + counts["rejected"]["unknown_item"]
    )
    propose_s = t3 - t2
    report = {
        "generator": generator.name,
        "backend": "scoring" if generator.supports_scoring else "structured-generation",
        "seed": s.seed,
        "settings": s.model_dump(mode="json"),
        "prompt_versions": {
            "interactions": prompt_version,
            "items": enrich_report["prompt_version"],
            "all": prompts.registry(),
        },
        "training_cut": str(cut),
        "strategy": strategy,
        "users": user_info,
        "interactions": {
            **counts,
            "validity_rate": round((generated - malformed) / generated, 4) if generated else None,
            "acceptance_rate": round(counts["accepted"] / generated, 4) if generated else None,
            "users_with_synthetic": int(interactions[C.USER].nunique()),
            "seconds": round(propose_s, 2),
            "accepted_per_s": round(counts["accepted"] / propose_s, 3) if propose_s > 0 else None,
            **propose_info,
        },
        "items": enrich_report,
        "adaptation": adaptation,
        "distribution": distribution_report(interactions, data.train, n_candidates, category_of(items), s.seed),
        "timings_s": {
            "enrich": round(t1 - t0, 2),
            "candidates": round(t2 - t1, 2),
            "propose": round(propose_s, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }
    log.info("synthesis: %s generated, %s accepted (%s)", generated, counts["accepted"], counts["rejected"])
    return SynthResult(interactions, rejected, items[ATTRIBUTE_COLUMNS], report)


def _item_vectors(data: SplitData, catalog: pd.DataFrame, settings: Settings, encoder) -> np.ndarray:
    """Unit-length title vectors over the split's items (the item-side strategy's neighbours)."""
    from ml.text.items import item_text_vectors

    encoder = encoder or TitleEncoder.from_settings(settings, threads=settings.synth.torch_threads)
    return item_text_vectors(np.asarray(data.item_ids, dtype=str), catalog, encoder=encoder)


def build_generator(settings: Settings, data: SplitData, catalog: pd.DataFrame) -> tuple[Generator, dict | None]:
    """The configured generator; the embedded model is first adapted to the shop when ``synth.adapt`` says so.

    Returns:
        ``(generator, adaptation report or None)``.
    """
    if settings.synth.backend != "embedded":
        return make_generator(settings), None
    from ml.synth.adaptation import adapt_model, adaptation_enabled
    from ml.synth.llm.model_cache import ensure_embedded_model

    folder = ensure_embedded_model(settings)
    report = None
    if adaptation_enabled(settings):
        adapted, report = adapt_model(folder, data, catalog, settings)
        if report["adopted"]:
            folder = adapted
        else:
            log.warning("adapted generator measured worse than the base model; synthesizing with the base model")
    return make_generator(settings, model_dir=folder), report
