"""Fit, fuse and evaluate recommenders on a SplitData: the code the DAG and ``benchmark`` share.

Two phases keep evaluation honest:

* **validation phase**: every model is fitted on ``train``; BERT4Rec early-stops on ``valid``,
  and fusion weights are chosen on ``valid`` (history = train).
* **test phase**: cheap models are refitted on train + valid; BERT4Rec keeps its best checkpoint.
  All are scored on ``test`` with history = train + valid.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import columns as C
from ml.config import Settings
from ml.data.dataset import SplitData
from ml.data.interactions import Interactions
from ml.data.lake import write_json_atomic, write_parquet_atomic
from ml.eval.evaluate import evaluate
from ml.models.augmented import AugmentedHistory
from ml.models.base import Recommender
from ml.tracking.pyfunc import recommendations_frame

BASE_MODELS = ("pop", "pop_recent", "rebuy", "als", "bert4rec")
ALL_MODELS = BASE_MODELS + ("fusion",)
VIEWS = {"repeat": False, "discover": True}  # view -> exclude items the user already has
TOP_K = 20
FUSION_GRID = (0.0, 0.5, 1.0)


def make_model(name: str, settings: Settings, logger=None, checkpoint_dir: Path | None = None,
               item_text: np.ndarray | None = None) -> Recommender:
    """A fresh, unfitted model by name, configured from ``settings.models``.

    ``item_text`` (item text vectors, see :func:`item_text_for`) reaches BERT4Rec only.
    """
    m = settings.models
    if name == "pop":
        from ml.models.popularity import Popularity

        return Popularity()
    if name == "pop_recent":
        from ml.models.popularity import Popularity

        return Popularity(window_days=m.recent_days)
    if name == "rebuy":
        from ml.models.rebuy import Rebuy

        return Rebuy()
    if name == "als":
        from ml.models.als import ALS

        return ALS(factors=m.als_factors, regularization=m.als_regularization, iterations=m.als_iterations, alpha=m.als_alpha,
                   weighting=m.als_weighting, seed=m.seed)
    if name == "bert4rec":
        from ml.models.bert4rec.model import Bert4Rec

        return Bert4Rec.from_settings(m, logger=logger, checkpoint_dir=checkpoint_dir, item_text=item_text)
    raise ValueError(f"unknown model {name!r} (choose from {', '.join(ALL_MODELS)})")


def model_dir(run_dir: Path, name: str, phase: str) -> Path:
    """Where a model of a phase ('valid' or 'final') is saved inside a run folder."""
    return Path(run_dir) / "models" / name / phase


SYNTH_SUFFIX = "_synth"  # a model trained on real + synthetic data is saved as "<name>_synth"


def base_name(key: str) -> str:
    """The model type behind a saved model key ("als_synth" -> "als")."""
    return key.removesuffix(SYNTH_SUFFIX)


def item_text_for(name: str, settings: Settings, data: SplitData, catalog: pd.DataFrame | None,
                  enriched: pd.DataFrame | None = None) -> np.ndarray | None:
    """Item text vectors for a model that uses them (BERT4Rec with ``bert_item_text="augment"``), else None.

    Args:
        name: model key.
        catalog: the catalog (item_id, title); None means no text is available.
        enriched: accepted item enrichment (see :func:`ml.models.item_text.item_texts`).
    Returns:
        ``(n_items, 384)`` float32, or None (not BERT4Rec, switched off, or no item has a title:
        e.g. a ratings file whose catalog only lists ids).
    """
    if base_name(name) != "bert4rec" or settings.models.bert_item_text == "none" or catalog is None:
        return None
    from ml.models.item_text import item_text_vectors
    from ml.synth.embedded import resolve_device

    vectors = item_text_vectors(data.item_ids, catalog, enriched, device=resolve_device("auto"))
    return vectors if vectors.any() else None


def fit_model(name: str, data: SplitData, settings: Settings, run_dir: Path, logger=None, synthetic: pd.DataFrame | None = None,
              item_text: np.ndarray | None = None) -> dict:
    """Fit one base model in both phases, save it, and score it on validation.

    Args:
        name: one of ``BASE_MODELS``, or ``<name>_synth`` to train on real + ``synthetic`` events.
        data: the real split.
        settings: hyper-parameters.
        run_dir: run folder; models go to ``models/<name>/{valid,final}``.
        logger: a Lightning logger for BERT4Rec curves (optional).
        synthetic: gated synthetic interactions (user_id, item_id, timestamp) for ``_synth`` models;
            they join training and the model's own history, never validation, test or the
            "already bought" filter.
        item_text: item text vectors for BERT4Rec (see :func:`item_text_for`); None = ids only.
    Returns:
        ``{"model", "fit_seconds", "refit_seconds", "valid", "summary"}``; ``valid`` holds NDCG@10 and
        Recall@10 on the validation period per view (what fusion uses to choose variants).
    """
    if name.endswith(SYNTH_SUFFIX) and synthetic is None:
        raise ValueError(f"{name} needs synthetic interactions")
    extra = synthetic_events(data, synthetic, settings.synth.weight) if name.endswith(SYNTH_SUFFIX) else None

    def build(**kwargs) -> Recommender:
        model = make_model(base_name(name), settings, item_text=item_text, **kwargs)
        return AugmentedHistory(model, extra) if extra is not None else model

    train, valid = data.train_i, data.valid_i
    started = time.perf_counter()
    model = build(logger=logger, checkpoint_dir=Path(run_dir) / "checkpoints" / name)
    model.fit(train, valid if len(valid) else None)
    fit_s = time.perf_counter() - started
    model.save(model_dir(run_dir, name, "valid"))
    valid_scores = validation_metrics(model, data)
    refit_s = 0.0
    if base_name(name) != "bert4rec":  # BERT4Rec keeps its early-stopped weights; history brings it up to date
        started = time.perf_counter()
        model = build().fit(train.concat(valid))
        refit_s = time.perf_counter() - started
    model.save(model_dir(run_dir, name, "final"))
    summary = getattr(model, "training_summary", None) or {}
    if hasattr(model, "device"):
        summary = {**summary, "device": model.device}
    result = {"model": name, "fit_seconds": round(fit_s, 2), "refit_seconds": round(refit_s, 2), "valid": valid_scores, "summary": summary}
    write_json_atomic(result, Path(run_dir) / "models" / name / "fit.json")
    return result


def synthetic_events(data: SplitData, synthetic: pd.DataFrame, weight: float) -> Interactions:
    """Gated synthetic interactions as events over the split's vocabulary, each of weight ``weight``.

    Raises:
        ValueError: a row names an unknown user or item, or is dated at or after the training cut.
    """
    from ml.synth.expansion import training_cut

    extra = synthetic[[C.USER, C.ITEM, C.TIMESTAMP]].astype({C.USER: str, C.ITEM: str}).assign(**{C.WEIGHT: np.float32(weight)})
    if (pd.to_datetime(extra[C.TIMESTAMP]) >= training_cut(data)).any():
        raise ValueError("synthetic interactions at or after the training cut: gate them first")
    return data.to_interactions(extra)  # refuses users or items outside the vocabulary


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


def choose_variants(run_dir: Path, trained: list[str]) -> tuple[list[str], dict]:
    """Per model type, the variant (real-only or ``_synth``) with the better validation NDCG@10.

    The score is the mean of both views' validation NDCG@10; real-only wins ties. Synthetic data
    reaches fusion (the served model) only through a variant that won here.

    Returns:
        (chosen keys, ``{base: {"chosen", "valid_ndcg@10": {key: score}}}``).
    """
    def score(key: str) -> float:
        fit = json.loads((Path(run_dir) / "models" / key / "fit.json").read_text())
        views = fit.get("valid") or {}
        return float(np.mean([v["ndcg@10"] for v in views.values()])) if views else float("-inf")

    chosen, decisions = [], {}
    for base in dict.fromkeys(base_name(k) for k in trained):
        keys = [k for k in (base, base + SYNTH_SUFFIX) if k in trained]
        scores = {k: score(k) for k in keys}
        best = max(keys, key=lambda k: (scores[k], k == base))
        chosen.append(best)
        decisions[base] = {"chosen": best, "valid_ndcg@10": scores}
    return chosen, decisions


def fit_fusion(members: list[str], data: SplitData, run_dir: Path) -> dict:
    """Choose fusion weights on validation, once per view, and save one final fusion per view.

    The "repeat" view leans on the user's own history (re-buy), the "discover" view cannot, so each
    view gets the weights that are best for it; members are fitted on train for the search and
    replaced by their final (train + valid) versions afterwards.

    Returns:
        ``{"model": "fusion", "weights": {view: weights}, "weight_search": {view: [...]}, "fit_seconds"}``.
    """
    from ml.models.fusion import Fusion

    started = time.perf_counter()
    valid_members = {n: Recommender.load(model_dir(run_dir, n, "valid")) for n in members}
    final_members = {n: Recommender.load(model_dir(run_dir, n, "final")) for n in members}
    truths = view_truths(data.valid_i, data.train_i)
    weights, searches = {}, {}
    for view, exclude_seen in VIEWS.items():
        view_truth = truths[view]
        users = users_with_truth(view_truth)
        fusion = Fusion(valid_members, members_fitted=True)
        weights[view] = fusion.fit_weights(users, data.train_i, view_truth, {n: FUSION_GRID for n in members}, filter_already_liked_items=exclude_seen)
        searches[view] = getattr(fusion, "weight_search", [])
        Fusion(final_members, weights=weights[view], members_fitted=True).save(model_dir(run_dir, "fusion", _phase(view)))
    result = {"model": "fusion", "weights": weights, "weight_search": searches, "fit_seconds": round(time.perf_counter() - started, 2)}
    write_json_atomic(result, Path(run_dir) / "models" / "fusion" / "fit.json")
    return result


def _phase(view: str) -> str:
    """The saved phase a view is served from: 'final', or 'final_<view>' where a model has one per view."""
    return "final" if view == "repeat" else f"final_{view}"


def load_final(run_dir: Path, name: str, view: str) -> Recommender:
    """The final model of ``name`` for ``view`` (a view-specific one where it exists)."""
    specific = model_dir(run_dir, name, _phase(view))
    return Recommender.load(specific if specific.exists() else model_dir(run_dir, name, "final"))


def segments(seen: sp.csr_matrix, users: np.ndarray, sparse_max: int) -> dict[str, np.ndarray]:
    """User segments over ``users``: ``sparse`` (<= ``sparse_max`` distinct history items, from the
    binary user x item history ``seen``) and ``rest``."""
    n_items = np.diff(seen.indptr)[users]
    sparse = n_items <= sparse_max
    return {"sparse": sparse, "rest": ~sparse}


def view_truths(target: Interactions, history: Interactions) -> dict[str, sp.csr_matrix]:
    """Held-out truth per view: ``repeat`` = all target items; ``discover`` = those not in history."""
    truth = target.csr(binary=True)
    new = sp.csr_matrix(truth - truth.multiply(history.csr(binary=True)))
    new.eliminate_zeros()
    return {"repeat": truth, "discover": new}


def users_with_truth(truth: sp.csr_matrix) -> np.ndarray:
    """Row indices with at least one held-out item."""
    return np.flatnonzero(np.diff(truth.indptr) > 0)


def evaluate_models(names: list[str], data: SplitData, settings: Settings, run_dir: Path, out_dir: Path | None = None) -> dict:
    """Score every final model on the test period, in both views, overall and per segment.

    Writes ``metrics.json``, ``recommendations.parquet`` (model, view, user_id, rank, item_id,
    score; top 20 per evaluated user) and ``ground_truth.parquet`` (user_id, item_id, repeat)
    into ``out_dir`` (default ``run_dir``). Truth, history and the "already bought" filter are
    real events only (``<name>_synth`` models add their synthetic events themselves).

    Returns:
        The metrics document; ``synthetic_uplift`` compares each ``<name>_synth`` with ``<name>``.
    """
    out_dir = Path(out_dir or run_dir)
    history = data.history_for_test()
    seen = history.csr(binary=True)
    truths = view_truths(data.test_i, history)
    popularity = np.asarray(seen.sum(axis=0)).ravel()
    ks = settings.eval.ks
    view_users = {view: users_with_truth(truth) for view, truth in truths.items()}
    view_segments = {view: segments(seen, users, settings.split.sparse_max_items) for view, users in view_users.items()}
    doc: dict = {"protocol": data.info, "ks": ks, "sparse_max_items": settings.split.sparse_max_items, "models": {}}
    rec_frames = []
    for name in names:
        fit_path = Path(run_dir) / "models" / name / "fit.json"
        fit = json.loads(fit_path.read_text()) if fit_path.exists() else {}
        entry = {"fit_seconds": fit.get("fit_seconds"), "refit_seconds": fit.get("refit_seconds"), "valid": fit.get("valid"), "views": {}}
        for view, exclude_seen in VIEWS.items():
            model = load_final(run_dir, name, view)
            truth, users = truths[view], view_users[view]
            started = time.perf_counter()
            ids, scores = model.recommend(users, history, n=max(max(ks), TOP_K), filter_already_liked_items=exclude_seen)
            entry[f"predict_seconds_{view}"] = round(time.perf_counter() - started, 2)
            entry["views"][view] = evaluate(ids, truth, users, view_segments[view], ks=ks, item_popularity=popularity, n_items=data.n_items)
            frame = recommendations_frame(data.user_ids[users], ids[:, :TOP_K], scores[:, :TOP_K], data.item_ids)
            rec_frames.append(frame.assign(**{C.MODEL: name, "view": view}))
        doc["models"][name] = entry
    doc["synthetic_uplift"] = synthetic_uplift(doc["models"])
    truth = truths["repeat"].tocoo()
    repeat = np.asarray(seen[truth.row, truth.col]).ravel() > 0
    gt = pd.DataFrame({C.USER: data.user_ids[truth.row], C.ITEM: data.item_ids[truth.col], "repeat": repeat})
    recs = pd.concat(rec_frames, ignore_index=True)[[C.MODEL, "view", C.USER, C.RANK, C.ITEM, C.SCORE]] if rec_frames else pd.DataFrame()
    write_parquet_atomic(recs, out_dir / "recommendations.parquet")
    write_parquet_atomic(gt, out_dir / "ground_truth.parquet")
    write_json_atomic(doc, out_dir / "metrics.json")
    return doc


def synthetic_uplift(models: dict, metrics: tuple[str, ...] = ("ndcg@10", "recall@10")) -> dict:
    """For each ``<name>_synth`` beside ``<name>``: real-only, real+synthetic and their difference.

    Returns:
        ``{name: {view: {segment: {metric: {"real", "real_synthetic", "delta"}}}}}``.
    """
    out = {}
    for key, entry in models.items():
        name = base_name(key)
        if key == name or name not in models:
            continue
        out[name] = {
            view: {
                seg: {
                    m: {"real": models[name]["views"][view][seg][m], "real_synthetic": vals[m],
                        "delta": vals[m] - models[name]["views"][view][seg][m]}
                    for m in metrics
                }
                for seg, vals in result.items() if seg in ("overall", "sparse")
            }
            for view, result in entry["views"].items()
        }
    return out


def uplift_table(doc: dict) -> str:
    """Real-only vs real+synthetic NDCG@10 and Recall@10 per model, view and segment, one table."""
    rows = [f"{'model':<10}{'view':<10}{'segment':<9}{'metric':<11}{'real':>9}{'real+syn':>10}{'delta':>9}"]
    for name, views in doc.get("synthetic_uplift", {}).items():
        for view, segs in views.items():
            for seg, ms in segs.items():
                for m, d in ms.items():
                    rows.append(f"{name:<10}{view:<10}{seg:<9}{m:<11}{d['real']:>9.4f}{d['real_synthetic']:>10.4f}{d['delta']:>+9.4f}")
    return "\n".join(rows)


def metrics_table(doc: dict, metric: str = "ndcg@10") -> str:
    """A plain-text table: one row per model, columns view x segment for ``metric``."""
    cols = [(v, s) for v in VIEWS for s in ("overall", "sparse", "rest")]
    header = f"{'model':<11}" + "".join(f"{v[:4]}/{s:<8}" for v, s in cols) + "  fit_s"
    lines = [f"{metric}", header]
    for name, entry in doc["models"].items():
        vals = [entry["views"][v].get(s, {}).get(metric, float("nan")) for v, s in cols]
        lines.append(f"{name:<11}" + "".join(f"{x:>13.4f}" for x in vals) + f"  {entry.get('fit_seconds') or 0:>6}")
    return "\n".join(lines)
