"""Turning an Airflow run (its form params and logical date) into settings and an as-of date.

The form's parameter names are the users' interface (the trigger form, ``make run CONF=...``, the
REST API); :data:`PARAM_SETTINGS` maps each onto the nested setting it overrides. Kept out of the
DAG file so the DAG only wires tasks, and testable without a scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ml.config import Settings, get_settings
from ml.models.registry import check_names

# form parameter -> the dotted setting it overrides (None values leave the setting as configured)
PARAM_SETTINGS: dict[str, str] = {
    "test_days": "split.test_days",
    "validation_days": "split.validation_days",
    "bert_max_epochs": "models.bert4rec.max_epochs",
    "bert_max_minutes": "models.bert4rec.max_minutes",
    "bert_item_text": "models.bert4rec.item_text",
    "seed": "models.seed",
    "synth_backend": "synth.backend",
    "synth_strategy": "synth.strategies.nightly",
    "synth_max_per_user": "synth.max_per_user",
    "top_k": "serve.top_k",
    "new_product_slot": "serve.new_product_slot",
    "promotion_margin": "promotion.margin",
    "dry_run": "promotion.dry_run",
}


def as_of_date(params: dict, logical_date=None, run_after=None, settings: Settings | None = None) -> str:
    """The last day of data a run processes: the ``as_of`` param, else the logical date (or run time).

    With ``source.replay`` on (the live demo shop), a run without an ``as_of`` param processes the
    bundled day its night maps to (:func:`ml.pipeline.replay.replay_day`).

    Returns:
        ``YYYY-MM-DD``.
    Raises:
        ReplayFinished: replaying, and the bundled history is used up.
    """
    if params.get("as_of"):
        return pd.Timestamp(params["as_of"]).strftime("%Y-%m-%d")
    night = logical_date or run_after
    if night is None:
        raise ValueError("no as_of param and no logical date: cannot tell which data to process")
    if settings is not None and settings.source.replay:
        from ml.pipeline.replay import replay_day

        return replay_day(settings, night)
    return pd.Timestamp(night).strftime("%Y-%m-%d")


def overrides_from_params(params: dict) -> dict:
    """The nested settings overrides that a run's form params stand for (see :data:`PARAM_SETTINGS`)."""
    out: dict = {}
    for param, dotted in PARAM_SETTINGS.items():
        *sections, key = dotted.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = params.get(param)
    return out


def settings_from_params(params: dict) -> Settings:
    """Settings with a run's form params applied on top (params win over file and environment)."""
    return get_settings().with_overrides(overrides_from_params(params))


def selected_models(params: dict, settings: Settings | None = None) -> list[str]:
    """The base models a run trains: the ``models`` param, else ``models.nightly``."""
    default = settings.models.nightly if settings is not None else get_settings().models.nightly
    return check_names(list(params.get("models") or default), allow_fusion=False)


@dataclass(frozen=True)
class RunContext:
    """What every task of one DAG run needs: its settings, as-of date, params and run id."""

    settings: Settings
    as_of: str
    params: dict
    run_id: str
    dag_id: str = ""
    task_id: str = ""

    @property
    def models(self) -> list[str]:
        """The base models this run trains."""
        return selected_models(self.params, self.settings)

    @property
    def tags(self) -> dict[str, str]:
        """The MLflow tags that tie a run to this DAG run and task (the plugin's links find runs by them)."""
        from ml.tracking.runs import AIRFLOW_DAG_TAG, AIRFLOW_RUN_TAG, AIRFLOW_TASK_TAG

        return {AIRFLOW_DAG_TAG: self.dag_id, AIRFLOW_RUN_TAG: self.run_id, AIRFLOW_TASK_TAG: self.task_id}


def run_context(
    params: dict | None,
    logical_date=None,
    run_after=None,
    run_id: str | None = None,
    dag_id: str = "",
    task_id: str = "",
) -> RunContext:
    """The :class:`RunContext` of a task, from the context values Airflow passes to its arguments."""
    params = dict(params or {})
    settings = settings_from_params(params)
    as_of = as_of_date(params, logical_date, run_after, settings)
    return RunContext(settings, as_of, params, run_id or "", dag_id, task_id)
