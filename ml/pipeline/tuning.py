"""``python -m ml tune als``: ALS hyper-parameters chosen on the validation period only, never on test.

The search replays the night before the validation period: a cut at ``validation_start``
(``ml.data.rolling``: the whole history before it as history, every known customer and item). ALS is
fitted on the split's training window before that cut (and, within it, on its own ``window_days``)
and scored on the validation period: NDCG@10, the mean of the repeat and discover views, as fusion's
variant choice does. Events from ``test_start`` on are removed before anything else, so the test
period cannot influence a choice.

Optuna's TPE sampler, seeded, proposes the trials; every trial is kept (``tuning.json``) and, when
tracking is on, logged as a nested MLflow run under one search run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data.interactions import Interactions
from ml.data.lake import write_json_atomic
from ml.data.rolling import CutData, EventLog, build_cut, item_known_from
from ml.data.split import temporal_cuts
from ml.eval.metrics import ndcg_at_k, recall_at_k
from ml.eval.protocol import VIEWS, users_with_truth, view_truths
from ml.models.als import ALS

log = logging.getLogger(__name__)

WINDOWS = (14, 21, 30, 45, 60, 90, 120, 180, 270, 0)  # ALS's own training window in days; 0 = all it is given


def als_space(trial) -> dict:
    """The ALS search space: training window, weighting, factors, regularisation, confidence scaling, iterations."""
    return {
        "window_days": trial.suggest_categorical("window_days", WINDOWS),
        "weighting": trial.suggest_categorical("weighting", ["bm25", "log1p"]),
        "factors": trial.suggest_categorical("factors", [32, 64, 128, 256]),
        "regularization": trial.suggest_float("regularization", 1e-3, 1.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.05, 50.0, log=True),
        "iterations": trial.suggest_categorical("iterations", [10, 20, 30]),
    }


class ValidationNight:
    """The validation problem: a cut at ``validation_start`` scored on the validation period."""

    def __init__(self, events: pd.DataFrame, settings: Settings, catalog: pd.DataFrame | None = None):
        cuts = temporal_cuts(events, settings.split)
        self.validation_start, self.test_start = cuts.validation_start, cuts.test_start
        seen = events[events[C.TIMESTAMP] < cuts.test_start]  # the test period never enters the search
        horizon = (cuts.test_start - cuts.validation_start).days
        window = settings.split.window_days
        self.cut: CutData = build_cut(
            EventLog.of(seen), cuts.validation_start, horizon, window, item_known_from(seen, catalog)
        )
        self.truths = view_truths(self.cut.target, self.cut.history)
        self.users = {view: users_with_truth(t) for view, t in self.truths.items()}

    @property
    def train(self) -> Interactions:
        """What a model fitted at the cut may train on: the split's window before the cut."""
        return self.cut.train

    def score(self, model) -> dict[str, float]:
        """NDCG@10 and Recall@10 per view on the validation period, and their view means."""
        out = {}
        for view, exclude_seen in VIEWS.items():
            users = self.users[view]
            ids, _ = model.recommend(users, self.cut.history, n=10, filter_already_liked_items=exclude_seen)
            truth = self.truths[view][users]
            out[f"{view}/ndcg_at_10"] = float(np.nanmean(ndcg_at_k(ids, truth, 10)))
            out[f"{view}/recall_at_10"] = float(np.nanmean(recall_at_k(ids, truth, 10)))
        out["ndcg_at_10"] = float(np.mean([out[f"{v}/ndcg_at_10"] for v in VIEWS]))
        return out


def tune_als(
    events: pd.DataFrame,
    settings: Settings,
    trials: int,
    out: Path,
    catalog: pd.DataFrame | None = None,
    track: bool = True,
) -> dict:
    """Search ALS hyper-parameters on the validation period; write ``tuning.json`` into ``out``.

    Args:
        events: cleaned interactions (raw ids).
        settings: split (for the cuts), the seed, tracking.
        trials: Optuna trials (the first one is today's configured setting, so the search can only
            match or beat it on validation).
        track: log the search to MLflow (a parent run and a nested run per trial).
    Returns:
        ``{"objective", "validation_start", "test_start", "trials": [...], "best": {...}, "current": {...}}``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    night = ValidationNight(events, settings, catalog)
    als = settings.models.als

    def objective(trial) -> float:
        params = als_space(trial)
        model = ALS(**{**params, "window_days": params["window_days"] or None}, seed=settings.models.seed)
        metrics = night.score(model.fit(night.train))
        trial.set_user_attr("metrics", metrics)
        log.info("trial %d: %s -> %.4f", trial.number, params, metrics["ndcg_at_10"])
        return metrics["ndcg_at_10"]

    sampler = optuna.samplers.TPESampler(seed=settings.models.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    current = {**als.model_dump(), "window_days": als.window_days or 0}
    study.enqueue_trial(current)
    study.optimize(objective, n_trials=trials)

    def record(t) -> dict:
        return {"number": t.number, "params": t.params, "value": t.value, "metrics": t.user_attrs["metrics"]}

    doc = {
        "objective": "validation NDCG@10, mean of repeat and discover views",
        "validation_start": str(night.validation_start.date()),
        "test_start": str(night.test_start.date()),
        "validation_users": {v: len(u) for v, u in night.users.items()},
        "trials": [record(t) for t in study.trials],
        "best": record(study.best_trial),
        "current": record(study.trials[0]),
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(out)
    write_json_atomic(doc, out / "tuning.json")
    if track:
        from ml.tracking.runs import log_search

        doc["mlflow_run_id"] = log_search(settings, "tune als", doc["trials"], doc["best"], [out / "tuning.json"])
        write_json_atomic(doc, out / "tuning.json")
    return doc
