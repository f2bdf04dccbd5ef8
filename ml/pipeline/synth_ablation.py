"""``python -m ml synth-ablation``: what each synthesis strategy is worth, on the rolling backtest.

At every cut of ``settings.eval.backtest`` each arm (``ml.synth.arms.ARMS``, or a share variant such
as ``prior@1``, one event per subject: ``ml.synth.arms.arm_spec``) synthesizes once from that cut's
training window (never from its horizon), and the same models are trained on real
data plus that arm's events, once per model seed; the real-only arm is the baseline. Models that
take synthetic data are those the registry gives a synthetic variant; the cheap fusion members
(popularity, re-buy) and the content-kNN control are fitted once per cut on real data. Fusion fuses
``pop_recent``, ``rebuy``, the arm's ALS and content-kNN (the nightly's members) with weights chosen,
per arm and seed, on the previous cut's horizon (an extra warm-up cut is fitted for them), exactly as
the backtest does.

Decide what counts before looking: the primary endpoint is fusion's discover Recall@10 for known
customers with 1..3 items (``short``). The arm is chosen on the earliest ``validation_share`` of the
reported cuts (largest primary delta over real only, above zero), then confirmed once on the later
cuts. The cold-item slice is compared in absolute terms with the content-kNN control (``text_knn``).

The ``enriched`` arm adds no events: the models that read item text (the content-kNN control, the
sequence models) read titles plus the language model's accepted category and tags from the
enrichment store (fill it with ``python -m ml enrich-backfill``), where every other arm reads titles
only; it is compared with real only, its no-language-model control.

Writes, under ``out``::

    ablation.json          the rows: arm x baseline arm x model x slice x metric, with intervals (ml.eval.ablation)
    ablation_summary.json  settings, cuts, synthetic counts, timings, the decision on validation and its test check
    ablation.md            the table (primary endpoint first)
    ablation.png           primary-endpoint deltas with intervals, validation and test
    user_metrics.parquet   one row per (cut, arm, seed, model, view, truth, user)
    synthetic.parquet      every synthetic event with its lineage (cut, arm, strategy, generator, prompt, confidence)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data.catalog import has_titles
from ml.data.interactions import CONTEXT, ITEM_IDX, TS, USER_IDX
from ml.data.lake import write_json_atomic, write_parquet_atomic
from ml.data.rolling import EventLog, build_cut, item_known_from, rolling_cuts
from ml.errors import InputDataError
from ml.eval.ablation import choose_arm, compare_arms, primary, seed_means
from ml.eval.protocol import VIEWS
from ml.models import registry
from ml.models.fusion import Fusion
from ml.pipeline.backtest import CutScorer, _choose_fusion_weights, fit_at_cut, text_frame
from ml.synth.arms import ARMS, REAL, SHARE_SEP, arm_spec, controls_of
from ml.synth.denoise import als_teacher
from ml.synth.events import CONFIDENCE, as_interactions
from ml.synth.strategies import StrategyInputs, synthesize_arm

log = logging.getLogger(__name__)
PRIMARY = {"model": registry.FUSION, "metric": "recall@10", "slice": "discover/short"}
COLD_CONTROL = "text_knn"  # the content-kNN control of the cold-item slice
# fusion's members in the ablation: the nightly's (the cheap ones, every cut; content-kNN only with titles)
FUSED = ("pop_recent", "rebuy", "als", "text_knn")


def check_request(arms: list[str], models: list[str], seeds: list[int]) -> None:
    """Refuse unknown arms or models, an ablation without the real-only arm, and no seeds.

    Raises:
        ValueError: naming what is wrong.
    """
    unknown = [a for a in arms if a.partition(SHARE_SEP)[0] not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {list(ARMS)} (or <arm>{SHARE_SEP}<events per subject>)")
    for arm in arms:
        arm_spec(arm)  # raises ValueError naming a share that is not a positive integer, or one on an eventless arm
    if REAL not in arms:
        raise ValueError(f"the ablation needs the {REAL!r} arm: every other arm is compared with it")
    bad = [m for m in models if m not in registry.ALL_MODELS]
    if bad:
        raise ValueError(f"unknown models {bad}; choose from {list(registry.ALL_MODELS)}")
    if not seeds:
        raise ValueError("the ablation needs at least one seed")


def takes_synthetic(key: str) -> bool:
    """Whether ``key`` is trained on real + synthetic data in a synthetic arm (the registry's synthetic variants)."""
    return key != registry.FUSION and registry.spec(key).synthetic_variant


def baseline_pairs(arms: list[str]) -> list[tuple[str, str]]:
    """(arm, baseline arm) pairs: every arm against real only, and against each of its controls that ran."""
    pairs = [(a, REAL) for a in arms if a != REAL]
    pairs += [(a, c) for a in arms for c in controls_of(a) if c in arms]
    return pairs


def run_ablation(
    events: pd.DataFrame,
    catalog: pd.DataFrame | None,
    settings: Settings,
    out: Path,
    arms: list[str] | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    generator=None,
) -> dict:
    """Run the ablation (see the module doc); write and return the summary document.

    Args:
        events: cleaned interactions (user_id, item_id, timestamp, weight), raw ids.
        catalog: the item catalog (titles: the language model, item-side text and content-kNN need them).
        arms, models, seeds: default ``settings.synth.strategies.ablation_*``.
        generator: a scoring generator for the language-model arms (None: the configured embedded model,
            loaded only when an arm needs it).
    """
    # arms are compared run against run: wall-time caps would train an arm that ran at a busier moment for fewer
    # epochs (measured: SASRec under a 2.5-minute cap trained 10 to 14 epochs per arm over two cuts), so epochs
    # and early stopping bound the sequence models here (cap them with models.<name>.max_epochs)
    settings = settings.without_time_caps()
    st = settings.synth.strategies
    arms = list(arms or st.ablation_arms)
    models = list(models or st.ablation_models)
    seeds = list(seeds if seeds is not None else st.ablation_seeds)
    check_request(arms, models, seeds)
    started = time.perf_counter()
    out = Path(out)
    cfg = settings.eval.backtest
    event_log = EventLog.of(events)
    cuts = rolling_cuts(event_log.end, cfg.span_days, cfg.step_days, cfg.horizon_days)
    warmup = [cuts[0] - pd.Timedelta(days=cfg.horizon_days)] if registry.FUSION in models else []
    known_from = item_known_from(events, catalog)
    trained = [m for m in models if m != registry.FUSION]
    fused = registry.runnable(list(FUSED), has_titles(catalog)) if registry.FUSION in models else []
    fitted_keys = list(dict.fromkeys(trained + fused))
    vectors = _vectors(known_from.index, catalog, settings, arms, fitted_keys)
    arm_vectors, enriched_products = _arm_vectors(arms, vectors, known_from.index, catalog, settings, fitted_keys)
    slow_cuts = set(cuts[-cfg.slow_cuts :]) if cfg.slow_cuts > 0 else set()
    rerank, owned_generator = _reranker(arms, settings, generator)
    teacher = als_teacher(settings)
    rows, synthetic, counts = [], [], []
    timing = {"synthesis_seconds": {a: 0.0 for a in arms}, "fit_seconds": {}, "score_seconds": 0.0}
    weights: dict[tuple[str, int], dict] = {}
    try:
        for cut in warmup + cuts:
            reported = cut not in warmup
            data = build_cut(event_log, cut, cfg.horizon_days, settings.split.window_days, known_from)
            scorer = CutScorer(data, settings)
            inputs = StrategyInputs.at_cut(data, vectors, catalog)
            made: dict[str, pd.DataFrame] = {}
            for arm in arms:
                t0 = time.perf_counter()
                if arm not in made:
                    made[arm] = synthesize_arm(
                        arm_spec(arm), inputs, st, made, rerank, seed=settings.synth.seed, teacher=teacher
                    )
                timing["synthesis_seconds"][arm] += time.perf_counter() - t0
                counts.append(_count(str(cut.date()), arm, made[arm]))
                if reported and len(made[arm]):
                    synthetic.append(_lineage(made[arm], data, arm, str(cut.date()), rerank))
            log.info(
                "cut %s%s: synthetic events %s (%.0f s so far)",
                cut.date(),
                "" if reported else " (warm-up)",
                {a: len(made[a]) for a in arms},
                time.perf_counter() - started,
            )
            keys = [k for k in fitted_keys if not registry.spec(k).slow or cut in slow_cuts]
            fits, scored = CutFits(data, settings, timing["fit_seconds"]), set()
            for arm in [REAL] + [a for a in arms if a != REAL]:  # a fit shared with real only is scored under it
                extra = as_interactions(made[arm], data.n_users, data.n_items) if len(made[arm]) else None
                for seed in seeds:
                    fitted, idents = {}, {}
                    for key in keys:
                        fitted[key], idents[key] = fits.get(key, seed, arm, arm_vectors[arm], extra)
                    if reported:
                        t0 = time.perf_counter()
                        rows += _score(scorer, fitted, idents, [k for k in trained if k in fitted], arm, seed, scored)
                        if registry.FUSION in models and (arm, seed) in weights:
                            fusion = {
                                v: Fusion(
                                    {m: fitted[m] for m in fused},
                                    weights=w,
                                    members_fitted=True,
                                    rank_unseen=settings.models.fusion.ranks_unseen(VIEWS[v]),
                                )
                                for v, w in weights[(arm, seed)].items()
                            }
                            rows += _tag(scorer.score(registry.FUSION, fusion)[1], arm, seed)
                        timing["score_seconds"] += time.perf_counter() - t0
                    if registry.FUSION in models and cut != cuts[-1]:
                        members = {m: fitted[m] for m in fused}
                        weights[(arm, seed)] = _choose_fusion_weights(members, scorer, settings.models.fusion)
    finally:
        if owned_generator is not None:
            owned_generator.close()
    user_metrics = pd.concat(rows, ignore_index=True)
    write_parquet_atomic(user_metrics, out / "user_metrics.parquet")
    if synthetic:
        write_parquet_atomic(pd.concat(synthetic, ignore_index=True), out / "synthetic.parquet")
    doc = summarize(user_metrics, settings, arms, models, seeds, [str(c.date()) for c in cuts])
    write_json_atomic(doc.pop("rows"), out / "ablation.json")
    doc.update(
        warmup_cuts=[str(c.date()) for c in warmup],
        enriched_products=enriched_products,  # products whose text the enriched arm extends (None: no such arm)
        synthetic_counts=counts,
        timing={
            "synthesis_seconds": {a: round(v, 1) for a, v in timing["synthesis_seconds"].items()},
            "fit_seconds": {k: round(v, 1) for k, v in timing["fit_seconds"].items()},
            "score_seconds": round(timing["score_seconds"], 1),
        },
        elapsed_seconds=round(time.perf_counter() - started, 1),
    )
    write_json_atomic(doc, out / "ablation_summary.json")
    return doc


MERGE_KEYS = ("cuts", "warmup_cuts", "seeds", "models", "settings")  # what runs merged into one must share


def merge_ablations(runs: list[Path], settings: Settings, out: Path) -> dict:
    """One ablation from runs that split its arms between them (one process per core, or per machine).

    Every run must have the same cuts, seeds, models and recorded settings, and the real-only arm, whose
    metrics must agree row for row (the same data and code); each other arm may come from one run only.
    The rows and the decision are then computed over all arms at once, exactly as one run of all of them
    would (the random controls are seeded per arm, the real-only fits per cut). Writes what
    :func:`run_ablation` writes, with ``merged_from`` in the summary.

    Args:
        settings: the bootstrap and metric settings; the recorded ``synth.strategies`` and backtest
            settings of the runs are applied over them.
    Raises:
        InputDataError: a run folder without its summary or metrics.
        ValueError: runs that differ in what they must share, lack the real-only arm, repeat an arm, or
            disagree on real-only metrics.
    """
    runs = [Path(r) for r in runs]
    docs, frames = [], []
    for run in runs:
        for name in ("ablation_summary.json", "user_metrics.parquet"):
            if not (run / name).is_file():
                raise InputDataError(run / name, "not an ablation run folder (python -m ml synth-ablation --out)")
        docs.append(json.loads((run / "ablation_summary.json").read_text()))
        frames.append(pd.read_parquet(run / "user_metrics.parquet"))
    first = docs[0]
    for run, doc in zip(runs[1:], docs[1:]):
        differ = [k for k in MERGE_KEYS if doc.get(k) != first.get(k)]
        if differ:
            raise ValueError(f"{run}: its {', '.join(differ)} differ from {runs[0]}'s; only alike runs merge")
    arms = [REAL]
    for run, doc in zip(runs, docs):
        if REAL not in doc["arms"]:
            raise ValueError(f"{run}: has no {REAL!r} arm, so its arms cannot be checked against the others")
        repeated = [a for a in doc["arms"] if a in arms and a != REAL]
        if repeated:
            raise ValueError(f"{run}: arms {repeated} are in an earlier run too; each arm comes from one run")
        arms += [a for a in doc["arms"] if a != REAL]
    key = ["cut", "seed", "model", "view", "truth", "user_id"]
    reals = [f[f["arm"] == REAL].sort_values(key, kind="stable").reset_index(drop=True) for f in frames]
    for run, real in zip(runs[1:], reals[1:]):
        same = real[key].equals(reals[0][key]) and np.allclose(
            real.select_dtypes("number").to_numpy(float), reals[0].select_dtypes("number").to_numpy(float)
        )
        if not same:
            raise ValueError(f"{run}: its real-only metrics differ from {runs[0]}'s (other data or code)")
    user_metrics = pd.concat([frames[0], *(f[f["arm"] != REAL] for f in frames[1:])], ignore_index=True)
    recorded = first["settings"]
    settings = settings.with_overrides(
        {"synth": {"strategies": recorded["strategies"]}, "eval": {"backtest": recorded["backtest"]}}
    )
    out = Path(out)
    write_parquet_atomic(user_metrics, out / "user_metrics.parquet")
    synthetic = [pd.read_parquet(r / "synthetic.parquet") for r in runs if (r / "synthetic.parquet").is_file()]
    if synthetic:
        write_parquet_atomic(pd.concat(synthetic, ignore_index=True), out / "synthetic.parquet")
    doc = summarize(user_metrics, settings, arms, first["models"], first["seeds"], first["cuts"])
    doc["settings"] = recorded
    write_json_atomic(doc.pop("rows"), out / "ablation.json")
    doc.update(
        merged_from=[str(r) for r in runs],
        warmup_cuts=first["warmup_cuts"],
        enriched_products=next((d["enriched_products"] for d in docs if d.get("enriched_products") is not None), None),
        synthetic_counts=[c for d in docs for c in d["synthetic_counts"] if c["arm"] != REAL or d is first],
        timing={str(r): {**d["timing"], "elapsed_seconds": d["elapsed_seconds"]} for r, d in zip(runs, docs)},
        elapsed_seconds=round(sum(d["elapsed_seconds"] for d in docs), 1),  # the runs' times added up
    )
    write_json_atomic(doc, out / "ablation_summary.json")
    return doc


def summarize(
    user_metrics: pd.DataFrame,
    settings: Settings,
    arms: list[str],
    models: list[str],
    seeds: list[int],
    cuts: list[str],
) -> dict:
    """The rows (every phase) and the decision: the arm chosen on validation cuts, checked once on test cuts."""
    st = settings.synth.strategies
    metrics, edges = settings.eval.compare_metrics, settings.eval.history_buckets
    n_valid = max(1, int(round(len(cuts) * st.validation_share))) if len(cuts) > 1 else 0
    phases = {"validation": cuts[:n_valid], "test": cuts[n_valid:], "all": cuts}
    means = seed_means(user_metrics, metrics)
    options = dict(n_resamples=settings.eval.bootstrap_resamples, random_state=settings.models.seed)
    scored = [m for m in models if m in set(user_metrics["model"])]
    rows = []
    for arm, base in baseline_pairs(arms):
        for model in scored:
            if model == COLD_CONTROL and arm_spec(arm).strategy != "enrichment":
                continue  # a real-only control: every arm but the enriched one scores it alike
            for phase, phase_cuts in phases.items():
                if not phase_cuts:
                    continue
                views = ("discover", "repeat") if phase == "all" else ("discover",)
                rows += compare_arms(
                    means, arm, base, model, metrics, edges, st.short_max_items, seeds,
                    cuts=phase_cuts, phase=phase, views=views, **options,
                )  # fmt: skip
    if COLD_CONTROL in scored:  # the cold-item slice against the content-kNN control, in absolute terms
        for arm in arms:
            for model in scored:
                if model == COLD_CONTROL and arm_spec(arm).strategy != "enrichment":
                    continue
                for r in compare_arms(
                    means, arm, REAL, model, metrics, edges, st.short_max_items, seeds,
                    baseline_model=COLD_CONTROL, views=("discover",), **options,
                ):  # fmt: skip
                    if r["slice"].endswith("/cold_items"):
                        rows.append({**r, "baseline_arm": "content_knn"})
    # a random control is a yardstick, never a strategy to adopt
    candidates = {a for a in arms if arm_spec(a).strategy != "random"}
    valid_rows = [r for r in rows if r["phase"] == "validation"]
    choosable = [r for r in valid_rows if r["arm"] in candidates]
    chosen = choose_arm(choosable, **PRIMARY, order=arms) if choosable else None
    test_rows = primary([r for r in rows if r["phase"] == "test"], **PRIMARY)
    decision = {
        "primary_endpoint": PRIMARY,
        "validation_cuts": phases["validation"],
        "test_cuts": phases["test"],
        "chosen_arm": chosen,
        "validation": primary(valid_rows, **PRIMARY),
        "test": test_rows.get(chosen) if chosen else None,
    }
    goal = None
    if chosen and decision["test"]:
        t = decision["test"]
        goal = bool((t["relative"] or 0) >= 0.05 and t["ci_low"] > 0)
    decision["goal_met_on_test"] = goal
    return {
        "settings": {
            "strategies": st.model_dump(),
            "backtest": settings.eval.backtest.model_dump(),
            "window_days": settings.split.window_days,
        },
        "arms": arms,
        "models": models,
        "seeds": seeds,
        "cuts": cuts,
        "decision": decision,
        "rows": rows,
    }


class CutFits:
    """The fits of one cut, each made once and reused wherever the same fit is asked for again.

    A fit is determined by the model, the seed (only for models that take synthetic data: the others are
    deterministic and fitted once for all seeds), the item-text vectors it reads, and the arm's synthetic
    events. Fits without events are kept for reuse (real only's, ALS in an arm that made no events at this
    cut, the content-kNN control per item text); a fit on one arm's events is never asked for twice.
    """

    def __init__(self, data, settings: Settings, fit_seconds: dict):
        self.data, self.settings, self.fit_seconds = data, settings, fit_seconds
        self._fits: dict[tuple, object] = {}
        self._seeded: dict[int, Settings] = {}

    def get(self, key: str, seed: int, arm: str, vectors: pd.DataFrame | None, extra) -> tuple[object, tuple]:
        """``(model, identity)``: ``key`` as trained in ``arm`` (its events ``extra``, None for none) at ``seed``."""
        takes = takes_synthetic(key)
        reads = vectors if registry.reads_item_text(key, self.settings.models) else None
        events = extra if takes else None
        ident = (key, seed if takes else None, None if reads is None else id(reads), None if events is None else arm)
        if ident in self._fits:
            return self._fits[ident], ident
        settings = self.settings
        if takes:
            if seed not in self._seeded:
                self._seeded[seed] = self.settings.with_overrides({"models": {"seed": seed}})
            settings = self._seeded[seed]
        model, seconds = fit_at_cut(key, self.data, settings, reads, events)
        _add(self.fit_seconds, key, seconds)
        if events is None:
            self._fits[ident] = model
        return model, ident


def _score(scorer: CutScorer, fitted: dict, idents: dict, trained: list[str], arm: str, seed: int, scored: set) -> list:
    """User-metric rows of the trained models in one arm and seed.

    A model that takes synthetic data is scored in every arm and seed (its rows are what arms are compared
    on); one that takes none only once per distinct fit (``scored`` collects them): real only's under the
    real arm, one refitted for an arm's own item text under that arm.
    """
    rows = []
    for key in trained:
        if not takes_synthetic(key):
            if idents[key] in scored:
                continue
            scored.add(idents[key])
        rows += _tag(scorer.score(key, dict.fromkeys(("repeat", "discover"), fitted[key]))[1], arm, seed)
    return rows


def _tag(frames: list[pd.DataFrame], arm: str, seed: int) -> list[pd.DataFrame]:
    return [f.assign(arm=arm, seed=seed) for f in frames]


def _add(acc: dict, key: str, seconds: float) -> None:
    acc[key] = acc.get(key, 0.0) + seconds


def _count(cut: str, arm: str, events: pd.DataFrame) -> dict:
    return {
        "cut": cut,
        "arm": arm,
        "events": len(events),
        "users": int(events[USER_IDX].nunique()) if len(events) else 0,
        "items": int(events[ITEM_IDX].nunique()) if len(events) else 0,
        "context_only": int(events[CONTEXT].sum()) if len(events) else 0,
    }


def _lineage(events: pd.DataFrame, data, arm: str, cut: str, rerank) -> pd.DataFrame:
    """Synthetic events with raw ids and where they came from."""
    spec = arm_spec(arm)
    generator = getattr(getattr(rerank, "generator", None), "name", None) if spec.language_model else None
    prompt = None
    if spec.language_model and rerank is not None:
        prompt = rerank.prompt_tags["prior" if spec.strategy == "pseudo_prior" else "next"]
    return pd.DataFrame(
        {
            "cut": cut,
            "arm": arm,
            "strategy": spec.strategy,
            C.USER: data.user_ids[events[USER_IDX].to_numpy()],
            C.ITEM: data.item_ids[events[ITEM_IDX].to_numpy()],
            C.TIMESTAMP: pd.to_datetime(events[TS].to_numpy()),
            C.WEIGHT: events["weight"].to_numpy(np.float32),
            CONFIDENCE: events[CONFIDENCE].to_numpy(np.float32),
            CONTEXT: events[CONTEXT].to_numpy(bool),
            "generator": generator or "none",
            "prompt": prompt or "none",
        }
    )


def _vectors(item_ids, catalog, settings: Settings, arms: list[str], keys: list[str]) -> pd.DataFrame | None:
    """Unit-norm title vectors of every item (a frame indexed by item id) when an arm or a model reads them."""
    specs = [arm_spec(a) for a in arms]
    needs = any(s.strategy == "item_side" or (s.mimics and arm_spec(s.mimics).strategy == "item_side") for s in specs)
    needs = needs or any(registry.reads_item_text(k, settings.models) for k in keys)
    return text_frame(item_ids, catalog, settings) if catalog is not None and needs else None


def check_text_request(arms: list[str], models: list[str], catalog, settings: Settings) -> None:
    """Refuse an arm that changes item text (the enriched arm) without a catalog or a model that reads text.

    Raises:
        ValueError: naming the arm and what it needs.
    """
    enriched_arms = [a for a in arms if arm_spec(a).strategy == "enrichment"]
    if enriched_arms and (
        catalog is None or not any(registry.reads_item_text(k, settings.models) for k in models if k != registry.FUSION)
    ):
        raise ValueError(
            f"arm {enriched_arms[0]} changes item text: it needs a catalog and a model that reads item text "
            f"(text_knn, bert4rec, sasrec)"
        )


def _arm_vectors(
    arms: list[str], vectors: pd.DataFrame | None, item_ids, catalog, settings: Settings, keys: list[str]
) -> tuple[dict[str, pd.DataFrame | None], int | None]:
    """Each arm's item-text vectors: titles (``vectors``) for all but the enriched arm, which adds the store's
    accepted enrichment (a frame indexed by item id; None where no model reads text), and how many products
    carry enrichment (None without an enriched arm).

    Raises:
        ValueError: the enriched arm without a catalog or a model that reads item text
            (:func:`check_text_request`).
        InputDataError: the enriched arm with an enrichment store that holds nothing for this catalog.
    """
    check_text_request(arms, keys, catalog, settings)
    out: dict[str, pd.DataFrame | None] = dict.fromkeys(arms, vectors)
    enriched_arms = [a for a in arms if arm_spec(a).strategy == "enrichment"]
    if not enriched_arms:
        return out, None
    from ml.synth.enrichment import cache_path, stored_attributes

    accepted = stored_attributes(settings, catalog)
    if accepted.empty:
        raise InputDataError(
            cache_path(settings),
            f"arm {enriched_arms[0]} needs accepted enrichment for this catalog and the store holds none; "
            f"fill it with `python -m ml enrich-backfill` first",
        )
    log.info("enriched arm: %d of %d products carry accepted enrichment", len(accepted), len(item_ids))
    out.update(dict.fromkeys(enriched_arms, text_frame(item_ids, catalog, settings, accepted)))
    return out, len(accepted)


def _reranker(arms: list[str], settings: Settings, generator):
    """The language-model re-ranker when an arm needs one: ``(reranker or None, generator to close or None)``."""
    if not any(arm_spec(a).language_model for a in arms):
        return None, None
    from ml.synth.rerank import LanguageModelReranker

    owned = None
    if generator is None:
        from ml.synth.llm.factory import make_generator

        generator = owned = make_generator(settings)
    return LanguageModelReranker(generator, settings), owned
