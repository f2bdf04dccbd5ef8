"""Fit and fuse recommenders on a SplitData: the code the DAG's training steps and ``benchmark`` share.

Two phases keep evaluation honest:

* **validation phase**: every model is fitted on ``train``; BERT4Rec early-stops on ``valid``,
  and fusion weights are chosen on ``valid`` (history = train).
* **test phase**: models whose spec says ``refit`` are refitted on train + valid; BERT4Rec keeps its
  best checkpoint. All are scored on ``test`` with history = train + valid (``ml.pipeline.evaluation``).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import FusionSettings, Settings
from ml.data.dataset import SplitData
from ml.data.interactions import CONTEXT, Interactions
from ml.data.lake import write_json_atomic
from ml.eval.evaluate import evaluate
from ml.eval.protocol import VIEWS, users_with_truth, view_truths
from ml.models import registry
from ml.models.augmented import AugmentedHistory
from ml.models.base import Recommender
from ml.pipeline.layout import RunFolder


def model_enrichment(settings: Settings, catalog: pd.DataFrame) -> pd.DataFrame | None:
    """The enrichment that every model reading item text adds to the titles: the store's accepted rows
    (:func:`ml.synth.enrichment.stored_attributes`) with ``text.enrichment``, else None (titles alone)."""
    from ml.synth.enrichment import stored_attributes

    return stored_attributes(settings, catalog) if settings.text.enrichment else None


def item_text_for(key: str, settings: Settings, data: SplitData, catalog: pd.DataFrame | None) -> np.ndarray | None:
    """Item text vectors for a model that uses them (BERT4Rec with ``item_text="augment"``), else None.

    The text is each title plus :func:`model_enrichment`, as in the backtest's vectors
    (:func:`ml.pipeline.backtest.item_vectors`), so nightly training, the backtest and the champion's
    refit for serving see one text.

    Args:
        key: model key.
        catalog: the catalog (item_id, title); None means no text is available.
    Returns:
        ``(n_items, text.dim)`` float32, or None (the model reads no text, it is switched off, or no
        item has a title: e.g. a ratings file whose catalog only lists ids).
    """
    if catalog is None or not registry.reads_item_text(key, settings.models):
        return None
    from ml.text.encoder import TitleEncoder
    from ml.text.items import item_text_vectors

    vectors = item_text_vectors(
        data.item_ids, catalog, model_enrichment(settings, catalog), encoder=TitleEncoder.from_settings(settings)
    )
    return vectors if vectors.any() else None


def fit_model(
    key: str,
    data: SplitData,
    settings: Settings,
    run: RunFolder,
    logger=None,
    synthetic: pd.DataFrame | None = None,
    item_text: np.ndarray | None = None,
) -> dict:
    """Fit one model in both phases, save it, and score it on validation.

    Args:
        key: a base model name, or its synthetic variant (``registry.variant(name, True)``) to train
            on real + ``synthetic`` events.
        data: the real split.
        settings: hyper-parameters.
        run: the run folder; models go to ``models/<key>/{valid,final}``.
        logger: a Lightning logger for training curves (optional).
        synthetic: gated synthetic interactions (user_id, item_id, timestamp) for a synthetic variant;
            they join training and the model's own history, never validation, test or the
            "already bought" filter.
        item_text: item text vectors (see :func:`item_text_for`); None = ids only.
    Returns:
        ``{"model", "fit_seconds", "refit_seconds", "valid", "summary"}``; ``valid`` holds NDCG@10 and
        Recall@10 on the validation period per view (what fusion uses to choose variants).
    """
    spec = registry.spec(key)
    if registry.is_synthetic(key) and synthetic is None:
        raise ValueError(f"{key} needs synthetic interactions")
    extra = synthetic_events(data, synthetic, settings.synth.weight) if registry.is_synthetic(key) else None

    protocol = data.info.get("protocol", "temporal")  # how the split held data out (orders sequence models' baskets)

    def build(**options) -> Recommender:
        model = registry.make_model(key, settings.models, item_text=item_text, protocol=protocol, **options)
        return AugmentedHistory(model, extra) if extra is not None else model

    train, valid = data.train_i, data.valid_i
    started = time.perf_counter()
    model = build(logger=logger, checkpoint_dir=run.checkpoints(key))
    model.fit(train, valid if len(valid) else None)
    fit_s = time.perf_counter() - started
    model.save(run.model_dir(key, "valid"))
    valid_scores = validation_metrics(model, data)
    refit_s = 0.0
    if spec.refit:
        started = time.perf_counter()
        model = build().fit(train.concat(valid))
        refit_s = time.perf_counter() - started
    model.save(run.model_dir(key, "final"))
    summary = getattr(model, "training_summary", None) or {}
    if hasattr(model, "device"):
        summary = {**summary, "device": model.device}
    result = {
        "model": key,
        "fit_seconds": round(fit_s, 2),
        "refit_seconds": round(refit_s, 2),
        "valid": valid_scores,
        "summary": summary,
    }
    write_json_atomic(result, run.fit_record(key))
    return result


def synthetic_events(data: SplitData, synthetic: pd.DataFrame, weight: float) -> Interactions:
    """Gated synthetic interactions as events over the split's vocabulary (see :func:`synthetic_over`).

    Raises:
        ValueError: a row names an unknown user or item, or is dated at or after the training cut.
    """
    if (pd.to_datetime(synthetic[C.TIMESTAMP]) >= data.training_cut).any():
        raise ValueError("synthetic interactions at or after the training cut: gate them first")
    return synthetic_over(synthetic, data.user_ids, data.item_ids, weight)


def synthetic_over(
    synthetic: pd.DataFrame, user_ids, item_ids, weight: float, drop_unknown: bool = False
) -> Interactions:
    """Gated synthetic interactions (raw ids) as events over a universe of ``user_ids`` x ``item_ids``.

    Each row keeps its own ``weight`` and ``context_only`` flag; a file without them (written before
    the strategies) weighs every row ``weight`` and has no context-only rows.

    Args:
        drop_unknown: leave out rows whose user or item is outside the universe (else refuse them).
    Raises:
        ValueError: a row outside the universe when ``drop_unknown`` is False.
    """
    users = pd.Index(np.asarray(user_ids, dtype=str)).get_indexer(synthetic[C.USER].astype(str))
    items = pd.Index(np.asarray(item_ids, dtype=str)).get_indexer(synthetic[C.ITEM].astype(str))
    keep = (users >= 0) & (items >= 0)
    if not drop_unknown and not keep.all():
        raise ValueError(f"{int((~keep).sum())} synthetic rows name a user or item outside the dataset vocabulary")
    w = (
        synthetic[C.WEIGHT].to_numpy(np.float32)
        if C.WEIGHT in synthetic
        else np.full(len(synthetic), weight, np.float32)
    )
    context = synthetic[CONTEXT].to_numpy(bool) if CONTEXT in synthetic else np.zeros(len(synthetic), bool)
    ts = pd.to_datetime(synthetic[C.TIMESTAMP]).to_numpy("datetime64[ns]").astype(np.int64)
    return Interactions.from_arrays(
        users[keep], items[keep], ts[keep], w[keep], context[keep], n_users=len(user_ids), n_items=len(item_ids)
    )


def validation_metrics(model: Recommender, data: SplitData) -> dict:
    """NDCG@10 and Recall@10 of a validation-phase model on the validation period, per view."""
    truths = view_truths(data.valid_i, data.train_i)
    out = {}
    for view, exclude_seen in VIEWS.items():
        view_truth = truths[view]
        users = users_with_truth(view_truth)
        if not len(users):
            continue
        ids, _ = model.recommend(users, data.train_i, n=10, filter_already_liked_items=exclude_seen)
        result = evaluate(ids, view_truth, users, ks=[10])["overall"]
        out[view] = {"ndcg@10": result["ndcg@10"], "recall@10": result["recall@10"]}
    return out


def choose_variants(run: RunFolder, trained: list[str]) -> tuple[list[str], dict]:
    """Per model type, the variant (real-only or synthetic) with the better validation NDCG@10.

    The score is the mean of both views' validation NDCG@10; real-only wins ties. Synthetic data
    reaches fusion (the served model) only through a variant that won here.

    Returns:
        (chosen keys, ``{base: {"chosen", "valid_ndcg@10": {key: score}}}``).
    """

    def score(key: str) -> float:
        views = json.loads(run.fit_record(key).read_text()).get("valid") or {}
        return float(np.mean([v["ndcg@10"] for v in views.values()])) if views else float("-inf")

    chosen, decisions = [], {}
    for base in dict.fromkeys(registry.base_name(k) for k in trained):
        keys = [k for k in (base, registry.variant(base, True)) if k in trained]
        scores = {k: score(k) for k in keys}
        best = max(keys, key=lambda k: (scores[k], k == base))
        chosen.append(best)
        decisions[base] = {"chosen": best, "valid_ndcg@10": scores}
    return chosen, decisions


def fit_fusion(members: list[str], data: SplitData, run: RunFolder, fusion_settings: FusionSettings) -> dict:
    """Choose fusion weights on validation, once per view, and save one final fusion per view.

    The "repeat" view leans on the user's own history (re-buy), the "discover" view cannot, so each
    view gets the weights that are best for it; members are fitted on train for the search and
    replaced by their final (train + valid) versions afterwards.

    Args:
        fusion_settings: ``settings.models.fusion`` (the weights tried for every member, the discover ranking).
    Returns:
        ``{"model": "fusion", "weights": {view: weights}, "weight_search": {view: [...]}, "fit_seconds"}``.
    """
    from ml.models.fusion import Fusion

    started = time.perf_counter()
    valid_members = {n: Recommender.load(run.model_dir(n, "valid")) for n in members}
    final_members = {n: Recommender.load(run.model_dir(n, "final")) for n in members}
    truths = view_truths(data.valid_i, data.train_i)
    weights, searches = {}, {}
    for view, exclude_seen in VIEWS.items():
        view_truth = truths[view]
        users = users_with_truth(view_truth)
        fusion = Fusion(valid_members, members_fitted=True)
        weights[view] = fusion.fit_weights(
            users,
            data.train_i,
            view_truth,
            {n: tuple(fusion_settings.grid) for n in members},
            filter_already_liked_items=exclude_seen,
            rank_unseen=fusion_settings.ranks_unseen(exclude_seen),
        )
        searches[view] = getattr(fusion, "weight_search", [])
        Fusion(final_members, weights=weights[view], members_fitted=True, rank_unseen=fusion.rank_unseen).save(
            run.model_dir(registry.FUSION, serving_phase(view))
        )
    result = {
        "model": registry.FUSION,
        "members": list(members),
        "weights": weights,
        "weight_search": searches,
        "fit_seconds": round(time.perf_counter() - started, 2),
    }
    write_json_atomic(result, run.fit_record(registry.FUSION))
    return result


def serving_phase(view: str) -> str:
    """The saved phase a view is served from: 'final', or 'final_<view>' where a model has one per view."""
    return "final" if view == "repeat" else f"final_{view}"


def load_final(run: RunFolder, key: str, view: str) -> Recommender:
    """The final model of ``key`` for ``view`` (a view-specific one where it exists)."""
    specific = run.model_dir(key, serving_phase(view))
    return Recommender.load(specific if specific.exists() else run.model_dir(key, "final"))
