"""``python -m ml backtest`` and the DAG's backtest: the nightly loop replayed over rolling cuts.

At every cut (``ml.data.rolling``) each model is fitted on the training window before the cut and
scored on the next horizon, with every customer's whole history before the cut as history, new
customers served from their first order, and every item the shop knew at the cut as a candidate.
Fusion's weights at a cut are chosen on the previous cut's horizon (which lies before the cut), so
an extra warm-up cut before the first is fitted for them and not reported.

Writes, under ``out``::

    backtest.json                    settings, cuts, counts, aggregates with 95% intervals, comparisons, timings
    user_metrics.parquet             one row per (cut, model, view, truth, user): every aggregate recomputes from it
    cuts/<cut>/metrics.json          that cut's counts and per-model metrics (overall, slices, cold items)
    cuts/<cut>/recommendations.parquet   model, view, user_id, rank, item_id, score
    cuts/<cut>/ground_truth.parquet      user_id, item_id, repeat, cold, new_customer
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import FusionSettings, Settings
from ml.data.interactions import Interactions
from ml.data.lake import write_json_atomic, write_parquet_atomic
from ml.data.rolling import (
    HORIZON_COUNTS,
    CutData,
    EventLog,
    build_cut,
    horizon_shares,
    item_known_from,
    rolling_cuts,
)
from ml.eval.backtest import ALL, COLD, aggregate, compare_models, restrict_items, share_with_any, user_slices
from ml.eval.evaluate import evaluate, per_user
from ml.eval.protocol import VIEWS, bucket_names, users_with_truth, view_truths
from ml.eval.ranking import recommendations_frame
from ml.models import registry
from ml.models.augmented import AugmentedHistory
from ml.models.base import Recommender
from ml.models.fusion import Fusion
from ml.pipeline.benchmark import check_request
from ml.pipeline.training import model_enrichment

log = logging.getLogger(__name__)


def check_models(models: list[str], compare: list[tuple[str, str]] = ()) -> None:
    """Refuse unknown models, a fusion without two members, and comparisons of models not backtested.

    Raises:
        ValueError: naming what is wrong.
    """
    check_request(models, compare)
    if registry.FUSION in models and len(_fusion_members(models)) < 2:
        candidates = [n for n, s in registry.MODELS.items() if s.fusion_member and not s.slow]
        raise ValueError(f"fusion needs at least two of {candidates} among the models")


def _fusion_members(models: list[str]) -> list[str]:
    """Fusion members that run on every cut (a slow model's missing cuts would change fusion's meaning)."""
    return [
        m for m in registry.fusion_members([m for m in models if m != registry.FUSION]) if not registry.spec(m).slow
    ]


def item_vectors(models: list[str], item_ids, catalog: pd.DataFrame | None, settings: Settings):
    """Text vectors of ``item_ids`` (a frame indexed by item id), if one of ``models`` reads item text, else None.

    The text is each title plus :func:`ml.pipeline.training.model_enrichment`, as in nightly training and
    the champion refitted for serving, so that they all see the same text.
    """
    if catalog is None or not any(registry.reads_item_text(m, settings.models) for m in models if m != registry.FUSION):
        return None
    return text_frame(item_ids, catalog, settings, model_enrichment(settings, catalog))


def text_frame(
    item_ids, catalog: pd.DataFrame, settings: Settings, enriched: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Unit-norm MiniLM vectors of ``item_ids``' titles (plus ``enriched``'s accepted attributes), by item id."""
    from ml.text.encoder import TitleEncoder
    from ml.text.items import item_text_vectors

    ids = np.asarray(item_ids, dtype=str)
    return pd.DataFrame(
        item_text_vectors(ids, catalog, enriched, encoder=TitleEncoder.from_settings(settings)), index=ids
    )


class CutScorer:
    """Scores fitted models on one cut: per-user rows, the cut's metrics, and its lists."""

    def __init__(self, data: CutData, settings: Settings):
        self.data, self.settings = data, settings
        self.ks = settings.eval.ks
        self.n = max(max(self.ks), settings.eval.top_k)
        self.edges = settings.eval.history_buckets
        self.metrics = settings.eval.compare_metrics
        self.cold = data.buyers_before <= settings.eval.backtest.cold_max_buyers
        self.seen = data.history.csr(binary=True)
        self.truths = view_truths(data.target, data.history)
        self.users = {view: users_with_truth(t) for view, t in self.truths.items()}
        self.cold_truths = {view: restrict_items(t, self.cold) for view, t in self.truths.items()}

    def score(self, key: str, models: Mapping[str, Recommender]) -> tuple[dict, list[pd.DataFrame], list[pd.DataFrame]]:
        """(metrics per view, user-metric rows, recommendation frames) of one model (``models``: view -> fitted)."""
        d = self.data
        doc, rows, recs = {}, [], []
        for view, exclude_seen in VIEWS.items():
            users, truth = self.users[view], self.truths[view]
            if not len(users):
                continue
            started = time.perf_counter()
            ids, scores = models[view].recommend(users, d.history, n=self.n, filter_already_liked_items=exclude_seen)
            predict_s = time.perf_counter() - started
            history_items = np.diff(self.seen.indptr)[users]
            slices = user_slices(d.new_customer[users], history_items, self.edges)
            result = evaluate(ids, truth, users, {k: v for k, v in slices.items() if k != "overall"}, ks=self.ks)
            cold_truth = self.cold_truths[view]
            result["cold_items"] = evaluate(ids, cold_truth, users, ks=self.ks)["overall"]
            result["cold_items"]["share_lists_with_cold@10"] = share_with_any(ids, self.cold, 10)
            result["predict_seconds"] = round(predict_s, 3)
            doc[view] = result
            for kind, kind_truth in ((ALL, truth), (COLD, cold_truth)):
                values = {m: per_user(ids, kind_truth, users, m) for m in self.metrics}
                has = np.diff(kind_truth[users].indptr) > 0
                rows.append(
                    pd.DataFrame(
                        {
                            "cut": str(d.cut.date()),
                            "model": key,
                            "view": view,
                            "truth": kind,
                            "user_id": d.user_ids[users][has],
                            "new_customer": d.new_customer[users][has],
                            "history_items": history_items[has],
                            **{m: v[has] for m, v in values.items()},
                        }
                    )
                )
            top = self.settings.eval.top_k
            frame = recommendations_frame(d.user_ids[users], ids[:, :top], scores[:, :top], d.item_ids)
            recs.append(frame.assign(**{C.MODEL: key, "view": view}))
        return doc, rows, recs

    def ground_truth(self) -> pd.DataFrame:
        """The cut's scored horizon purchases: user_id, item_id, repeat (bought before), cold, new_customer."""
        truth = self.truths["repeat"].tocoo()
        d = self.data
        return pd.DataFrame(
            {
                C.USER: d.user_ids[truth.row],
                C.ITEM: d.item_ids[truth.col],
                "repeat": np.asarray(self.seen[truth.row, truth.col]).ravel() > 0,
                "cold": self.cold[truth.col],
                "new_customer": d.new_customer[truth.row],
            }
        )


def fit_at_cut(
    key: str, data: CutData, settings: Settings, vectors: pd.DataFrame | None, extra: Interactions | None = None
) -> tuple[Recommender, float]:
    """One model fitted on a cut (refitted models on the whole window; others early-stop on its end).

    Args:
        extra: events that join the model's training and scoring (a synthetic variant's gated
            synthetic interactions over the cut's universe); None for real data only.
    """
    spec = registry.spec(key)
    item_text = None
    if vectors is not None and registry.reads_item_text(key, settings.models):
        item_text = np.array(vectors.reindex(data.item_ids).fillna(0.0).to_numpy(np.float32))
    model = registry.make_model(key, settings.models, item_text=item_text)
    if extra is not None:
        model = AugmentedHistory(model, extra)
    started = time.perf_counter()
    if spec.refit:
        model.fit(data.train)
    else:
        train, valid = data.fit_split(settings.split.validation_days)
        model.fit(train, valid if len(valid) else None)
    return model, time.perf_counter() - started


def _choose_fusion_weights(members: dict[str, Recommender], scorer: CutScorer, fusion_settings: FusionSettings) -> dict:
    """Per view, the fusion weights with the best NDCG@10 on this cut's horizon (used at the next cut)."""
    weights = {}
    for view, exclude_seen in VIEWS.items():
        users = scorer.users[view]
        fusion = Fusion(members, members_fitted=True)
        weights[view] = fusion.fit_weights(
            users,
            scorer.data.history,
            scorer.truths[view],
            {n: tuple(fusion_settings.grid) for n in members},
            filter_already_liked_items=exclude_seen,
            rank_unseen=fusion_settings.ranks_unseen(exclude_seen),
        )
    return weights


def run_backtest(
    events: pd.DataFrame,
    catalog: pd.DataFrame | None,
    settings: Settings,
    models: list[str],
    out: Path,
    compare: list[tuple[str, str]] = (),
) -> dict:
    """Backtest ``models`` over the rolling cuts of ``settings.eval.backtest``; write and return the document.

    Args:
        events: cleaned interactions (user_id, item_id, timestamp, weight), raw ids.
        catalog: the item catalog (titles for text models; ``listed_at`` when the shop gave it); may be None.
        models: names from ``registry.ALL_MODELS``; models whose spec is ``slow`` run on the last
            ``slow_cuts`` cuts only; ``fusion`` fuses the members that run on every cut.
        out: output folder (replaced files; a rerun for the same data writes the same figures).
        compare: (A, B) pairs: B - A per view, slice and metric with cluster-bootstrap intervals.
    Returns:
        The ``backtest.json`` document.
    """
    check_models(models, compare)
    started = time.perf_counter()
    cfg = settings.eval.backtest
    out = Path(out)
    event_log = EventLog.of(events)
    cuts = rolling_cuts(event_log.end, cfg.span_days, cfg.step_days, cfg.horizon_days)
    base = [m for m in registry.BASE_MODELS if m in models]
    slow_cuts = set(cuts[-cfg.slow_cuts :]) if cfg.slow_cuts > 0 else set()
    members = _fusion_members(models) if registry.FUSION in models else []
    warmup = [cuts[0] - pd.Timedelta(days=cfg.horizon_days)] if members else []
    known_from = item_known_from(events, catalog)
    vectors = item_vectors(models, known_from.index, catalog, settings)  # every item ever known
    rows, cut_docs, timing = [], [], {m: {"fit_seconds": 0.0, "predict_seconds": 0.0, "cuts": []} for m in models}
    weights = None
    for cut in warmup + cuts:
        data = build_cut(event_log, cut, cfg.horizon_days, settings.split.window_days, known_from)
        scorer = CutScorer(data, settings)
        reported = cut not in warmup
        fitted = {}
        for key in base if reported else members:
            if registry.spec(key).slow and cut not in slow_cuts:
                continue
            log.info("cut %s: fitting %s", cut.date(), key)
            fitted[key], fit_s = fit_at_cut(key, data, settings, vectors)
            timing[key]["fit_seconds"] += fit_s
        doc = {"info": data.info, "models": {}}
        recs = []
        scored = {k: dict.fromkeys(VIEWS, m) for k, m in fitted.items()} if reported else {}
        if reported and members and weights is not None:
            scored[registry.FUSION] = {
                view: Fusion(
                    {m: fitted[m] for m in members},
                    weights=w,
                    members_fitted=True,
                    rank_unseen=settings.models.fusion.ranks_unseen(VIEWS[view]),
                )
                for view, w in weights.items()
            }
            doc["fusion_weights"] = weights
        for key, by_view in scored.items():
            t0 = time.perf_counter()
            doc["models"][key], key_rows, key_recs = scorer.score(key, by_view)
            timing[key]["predict_seconds"] += time.perf_counter() - t0
            timing[key]["cuts"].append(str(cut.date()))
            rows += key_rows
            recs += key_recs
        if members and cut != cuts[-1]:  # the weights serve the next cut
            weights = _choose_fusion_weights({m: fitted[m] for m in members}, scorer, settings.models.fusion)
        if reported:
            folder = out / "cuts" / str(cut.date())
            write_parquet_atomic(pd.concat(recs, ignore_index=True), folder / "recommendations.parquet")
            write_parquet_atomic(scorer.ground_truth(), folder / "ground_truth.parquet")
            write_json_atomic(doc, folder / "metrics.json")
            cut_docs.append(doc)
    user_metrics = pd.concat(rows, ignore_index=True)
    write_parquet_atomic(user_metrics, out / "user_metrics.parquet")
    metrics, edges = settings.eval.compare_metrics, settings.eval.history_buckets
    resamples, seed = settings.eval.bootstrap_resamples, settings.models.seed
    result = {
        "protocol": "rolling",
        "settings": {**cfg.model_dump(), "window_days": settings.split.window_days},
        "cuts": [str(c.date()) for c in cuts],
        "warmup_cuts": [str(c.date()) for c in warmup],
        "models": models,
        "metrics": metrics,
        "history_buckets": bucket_names(edges),
        "per_cut": [{"info": d["info"], "fusion_weights": d.get("fusion_weights")} for d in cut_docs],
        "totals": _totals([d["info"] for d in cut_docs]),
        "aggregate": aggregate(user_metrics, metrics, edges, resamples, seed),
        "comparisons": [
            r for a, b in compare for r in compare_models(user_metrics, a, b, metrics, edges, resamples, seed)
        ],
        "timing": {
            m: {**t, "fit_seconds": round(t["fit_seconds"], 2), "predict_seconds": round(t["predict_seconds"], 2)}
            for m, t in timing.items()
        },
    }
    result["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(result, out / "backtest.json")
    return result


def _totals(infos: list[dict]) -> dict:
    """Counts summed over the reported cuts, and the shares they give."""
    totals = {k: int(sum(i[k] for i in infos)) for k in HORIZON_COUNTS}
    return {**totals, **horizon_shares(totals)}
