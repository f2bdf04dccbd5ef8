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
from ml.eval.backtest import COLD_SLICE, restrict_items, share_with_any
from ml.eval.compare import compare as compare_values
from ml.eval.evaluate import evaluate, per_user
from ml.eval.protocol import VIEWS, bucket_names, segments, users_with_truth, variant_uplift, view_truths
from ml.eval.ranking import recommendations_frame
from ml.models import registry
from ml.pipeline.layout import RunFolder
from ml.pipeline.training import load_final

# what the metrics document keeps of an epoch-trained model's summary (the sequence models): throughput,
# how training ended, time-to-quality, and whether baskets were read in a shuffled order
TRAINING_FACTS = (
    "epochs_run", "best_epoch", "stopped_by", "early_stopping_armed_epoch", "early_stopping_armed_by",
    "sequences_per_s", "train_seconds", "best_elapsed_seconds", "seconds_to_95pct_of_best", "device",
    "shuffle_baskets",
)  # fmt: skip


def evaluate_models(
    keys: list[str],
    data: SplitData,
    settings: Settings,
    run: RunFolder,
    out: RunFolder | None = None,
    compare: list[tuple[str, str]] = (),
) -> dict:
    """Score every final model on the test period, in both views, overall and per segment.

    Segments: ``sparse``/``rest`` and the history-length buckets of ``eval.history_buckets``; and
    ``cold_items``, the test purchases of items with at most ``eval.backtest.cold_max_buyers`` buyers in
    the history (scored over the users who made one, with the share of lists holding any cold item).
    Test events of customers or items outside the vocabulary are not scored here: ``protocol`` counts
    them (``test_events_cold``); the rolling backtest (``ml.pipeline.backtest``) scores them.
    Writes ``metrics.json``, ``recommendations.parquet`` (model, view, user_id, rank, item_id,
    score; ``eval.top_k`` per evaluated user), ``ground_truth.parquet`` (user_id, item_id, repeat)
    and ``user_metrics.parquet`` (model, view, user_id, history_items, each ``eval.compare_metrics``
    value) into ``out`` (default ``run``).

    Args:
        compare: (A, B) pairs of evaluated models to compare (paired bootstrap, see :mod:`ml.eval.compare`).
    Returns:
        The metrics document; ``synthetic_uplift`` compares each synthetic variant with its base model
        (with the 95% interval and p-value of each delta); ``comparisons`` holds one record per
        requested pair x view x segment x ``eval.compare_metrics``.
    """
    unknown = sorted({m for pair in compare for m in pair} - set(keys))
    if unknown:
        raise ValueError(f"cannot compare {unknown}: not among the evaluated models {keys}")
    out = out or run
    top_k = settings.eval.top_k
    history = data.history_for_test()
    seen = history.csr(binary=True)
    truths = view_truths(data.test_i, history)
    popularity = np.asarray(seen.sum(axis=0)).ravel()
    cold = popularity <= settings.eval.backtest.cold_max_buyers
    cold_truths = {view: restrict_items(truth, cold) for view, truth in truths.items()}
    ks = settings.eval.ks
    view_users = {view: users_with_truth(truth) for view, truth in truths.items()}
    edges = settings.eval.history_buckets
    view_segments = {
        view: segments(seen, users, settings.split.sparse_max_items, edges) for view, users in view_users.items()
    }
    doc: dict = {
        "protocol": data.info,
        "ks": ks,
        "sparse_max_items": settings.split.sparse_max_items,
        "history_buckets": bucket_names(edges),
        "cold_max_buyers": settings.eval.backtest.cold_max_buyers,
        "models": {},
    }
    rec_frames, lists = [], {}
    for key in keys:
        fit_path = run.fit_record(key)
        fit = json.loads(fit_path.read_text()) if fit_path.exists() else {}
        entry = {
            "fit_seconds": fit.get("fit_seconds"),
            "refit_seconds": fit.get("refit_seconds"),
            "valid": fit.get("valid"),
            "training": {k: v for k, v in (fit.get("summary") or {}).items() if k in TRAINING_FACTS} or None,
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
            lists[key, view] = ids
            entry["views"][view] = evaluate(
                ids, truth, users, view_segments[view], ks=ks, item_popularity=popularity, n_items=data.n_items
            )
            cold_result = evaluate(ids, cold_truths[view], users, ks=ks)["overall"]
            cold_result["share_lists_with_cold@10"] = share_with_any(ids, cold, 10)
            entry["views"][view]["cold_items"] = cold_result
            frame = recommendations_frame(data.user_ids[users], ids[:, :top_k], scores[:, :top_k], data.item_ids)
            rec_frames.append(frame.assign(**{C.MODEL: key, "view": view}))
        doc["models"][key] = entry
    pairs = {k: registry.base_name(k) for k in keys if registry.is_synthetic(k)}
    doc["synthetic_uplift"] = variant_uplift(doc["models"], pairs)
    judge = Judge(lists, truths, view_users, view_segments, settings, cold_truths)
    for variant_key, base in pairs.items():
        if base in doc["synthetic_uplift"]:
            for view, segs in doc["synthetic_uplift"][base].items():
                for seg, metrics in segs.items():
                    for metric, cell in metrics.items():
                        record = judge.compare(base, variant_key, view, seg, metric) or {}
                        cell.update({k: record.get(k) for k in ("ci_low", "ci_high", "p_value", "n_users")})
    doc["comparisons"] = [
        record
        for a, b in compare
        for view in VIEWS
        for seg in ("overall", *view_segments[view], COLD_SLICE)
        for metric in settings.eval.compare_metrics
        if (record := judge.compare(a, b, view, seg, metric)) is not None
    ]
    n_history = np.diff(seen.indptr)
    user_rows = [
        pd.DataFrame(
            {
                C.MODEL: key,
                "view": view,
                C.USER: data.user_ids[view_users[view]],
                "history_items": n_history[view_users[view]],
                **{m: judge.values(key, view, m) for m in settings.eval.compare_metrics},
            }
        )
        for key, view in lists
    ]
    write_parquet_atomic(pd.concat(user_rows, ignore_index=True), out.user_metrics)
    truth = truths["repeat"].tocoo()
    repeat = np.asarray(seen[truth.row, truth.col]).ravel() > 0
    gt = pd.DataFrame({C.USER: data.user_ids[truth.row], C.ITEM: data.item_ids[truth.col], "repeat": repeat})
    columns = [C.MODEL, "view", C.USER, C.RANK, C.ITEM, C.SCORE]
    recs = pd.concat(rec_frames, ignore_index=True)[columns] if rec_frames else pd.DataFrame()
    write_parquet_atomic(recs, out.recommendations)
    write_parquet_atomic(gt, out.ground_truth)
    write_json_atomic(doc, out.metrics)
    return doc


class Judge:
    """Paired comparisons of two evaluated models on one view, segment and metric, from their top lists.

    The segment ``cold_items`` compares on the cold-item truth (``cold_truths``), over the users who made
    a cold-item purchase.
    """

    def __init__(
        self,
        lists: dict,
        truths: dict,
        view_users: dict,
        view_segments: dict,
        settings: Settings,
        cold_truths: dict | None = None,
    ):
        self.lists, self.truths, self.view_users, self.view_segments = lists, truths, view_users, view_segments
        self.cold_truths = cold_truths or {}
        self.resamples, self.seed = settings.eval.bootstrap_resamples, settings.models.seed
        self._values: dict[tuple[str, str, str, bool], np.ndarray] = {}

    def values(self, key: str, view: str, metric: str, cold: bool = False) -> np.ndarray:
        """``metric`` of every evaluated user of ``view`` under model ``key`` (NaN: no truth of that kind).

        Computed once and reused per segment; ``cold`` scores against the cold-item truth.
        """
        if (key, view, metric, cold) not in self._values:
            truth = self.cold_truths[view] if cold else self.truths[view]
            users = self.view_users[view]
            self._values[key, view, metric, cold] = per_user(self.lists[key, view], truth, users, metric)
        return self._values[key, view, metric, cold]

    def compare(self, a: str, b: str, view: str, segment: str, metric: str) -> dict | None:
        """The :class:`~ml.eval.compare.Comparison` of B against A as a dict (``slice`` is ``view/segment``).

        None when the segment has no user in this view.
        """
        users = self.view_users[view]
        cold = segment == COLD_SLICE
        if cold:
            if view not in self.cold_truths:
                return None
            mask = np.diff(self.cold_truths[view][users].indptr) > 0
        else:
            mask = np.ones(len(users), bool) if segment == "overall" else self.view_segments[view][segment]
        if not mask.any():
            return None
        values = [self.values(key, view, metric, cold)[mask] for key in (a, b)]
        record = compare_values(
            *values,
            a=a,
            b=b,
            metric=metric,
            slice=f"{view}/{segment}",
            n_resamples=self.resamples,
            random_state=self.seed,
        )
        return record.to_dict()
