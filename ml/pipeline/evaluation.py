"""Score the final models of a run on the test period: metrics, lists and truth written as files.

Truth, history and the "already bought" filter are real events only; a synthetic variant adds its
synthetic events itself. Every figure can be recomputed from ``recommendations.parquet`` and
``ground_truth.parquet``.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data.dataset import SplitData
from ml.data.lake import write_json_atomic, write_parquet_atomic
from ml.eval.evaluate import evaluate
from ml.eval.protocol import VIEWS, segments, users_with_truth, variant_uplift, view_truths
from ml.eval.ranking import recommendations_frame
from ml.models import registry
from ml.pipeline.layout import RunFolder
from ml.pipeline.training import load_final


def evaluate_models(
    keys: list[str], data: SplitData, settings: Settings, run: RunFolder, out: RunFolder | None = None
) -> dict:
    """Score every final model on the test period, in both views, overall and per segment.

    Writes ``metrics.json``, ``recommendations.parquet`` (model, view, user_id, rank, item_id,
    score; ``eval.top_k`` per evaluated user) and ``ground_truth.parquet`` (user_id, item_id, repeat)
    into ``out`` (default ``run``).

    Returns:
        The metrics document; ``synthetic_uplift`` compares each synthetic variant with its base model.
    """
    out = out or run
    top_k = settings.eval.top_k
    history = data.history_for_test()
    seen = history.csr(binary=True)
    truths = view_truths(data.test_i, history)
    popularity = np.asarray(seen.sum(axis=0)).ravel()
    ks = settings.eval.ks
    view_users = {view: users_with_truth(truth) for view, truth in truths.items()}
    view_segments = {view: segments(seen, users, settings.split.sparse_max_items) for view, users in view_users.items()}
    doc: dict = {"protocol": data.info, "ks": ks, "sparse_max_items": settings.split.sparse_max_items, "models": {}}
    rec_frames = []
    for key in keys:
        fit_path = run.fit_record(key)
        fit = json.loads(fit_path.read_text()) if fit_path.exists() else {}
        entry = {
            "fit_seconds": fit.get("fit_seconds"),
            "refit_seconds": fit.get("refit_seconds"),
            "valid": fit.get("valid"),
            "views": {},
        }
        for view, exclude_seen in VIEWS.items():
            model = load_final(run, key, view)
            truth, users = truths[view], view_users[view]
            started = time.perf_counter()
            ids, scores = model.recommend(
                users, history, n=max(max(ks), top_k), filter_already_liked_items=exclude_seen
            )
            entry[f"predict_seconds_{view}"] = round(time.perf_counter() - started, 2)
            entry["views"][view] = evaluate(
                ids, truth, users, view_segments[view], ks=ks, item_popularity=popularity, n_items=data.n_items
            )
            frame = recommendations_frame(data.user_ids[users], ids[:, :top_k], scores[:, :top_k], data.item_ids)
            rec_frames.append(frame.assign(**{C.MODEL: key, "view": view}))
        doc["models"][key] = entry
    pairs = {k: registry.base_name(k) for k in keys if registry.is_synthetic(k)}
    doc["synthetic_uplift"] = variant_uplift(doc["models"], pairs)
    truth = truths["repeat"].tocoo()
    repeat = np.asarray(seen[truth.row, truth.col]).ravel() > 0
    gt = pd.DataFrame({C.USER: data.user_ids[truth.row], C.ITEM: data.item_ids[truth.col], "repeat": repeat})
    columns = [C.MODEL, "view", C.USER, C.RANK, C.ITEM, C.SCORE]
    recs = pd.concat(rec_frames, ignore_index=True)[columns] if rec_frames else pd.DataFrame()
    write_parquet_atomic(recs, out.recommendations)
    write_parquet_atomic(gt, out.ground_truth)
    write_json_atomic(doc, out.metrics)
    return doc
