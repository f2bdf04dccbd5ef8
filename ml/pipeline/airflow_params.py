"""Turning an Airflow run (its params and logical date) into settings and an as-of date.

Kept out of the DAG file so the DAG only wires tasks, and testable without a scheduler.
"""

from __future__ import annotations

import pandas as pd

from ml.config import Settings, get_settings

DEFAULT_MODELS = ["pop", "pop_recent", "rebuy", "als", "bert4rec"]


def as_of_date(params: dict, logical_date=None, run_after=None) -> str:
    """The last day of data a run processes: the ``as_of`` param, else the logical date (or run time).

    Returns:
        ``YYYY-MM-DD``.
    """
    chosen = params.get("as_of") or logical_date or run_after
    if chosen is None:
        raise ValueError("no as_of param and no logical date: cannot tell which data to process")
    return pd.Timestamp(chosen).strftime("%Y-%m-%d")


def settings_from_params(params: dict) -> Settings:
    """Settings with a run's form params applied on top (params win over file and environment)."""
    overrides = {
        "split": {"test_days": params.get("test_days"), "validation_days": params.get("validation_days")},
        "models": {"bert_max_epochs": params.get("bert_max_epochs"), "bert_max_minutes": params.get("bert_max_minutes"),
                   "bert_item_text": params.get("bert_item_text"), "seed": params.get("seed")},
        "synth": {"backend": params.get("synth_backend"), "max_per_user": params.get("synth_max_per_user")},
    }
    return get_settings().with_overrides(overrides)


def selected_models(params: dict) -> list[str]:
    """The base models a run trains (from the ``models`` param)."""
    models = list(params.get("models") or DEFAULT_MODELS)
    unknown = set(models) - set(DEFAULT_MODELS)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; choose from {DEFAULT_MODELS}")
    return models
