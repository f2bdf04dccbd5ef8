"""The live demo shop: each scheduled night releases one more day of the bundled history.

The bundled Online Retail history ends on 2011-12-09, so a run scheduled today would fail the
freshness gate, rightly. With ``source.replay`` on, a run without an explicit ``as_of`` processes the
bundled day ``first_day + (night - first_night)``: the first night replays the history up to
``replay_hold_back_days`` before its end, each later night one more day. The anchor (first night,
first day, last day) is written once to ``<home>/replay/anchor.json`` and kept, so every task of a run
and every later night agree. When the history runs out the run says so and stops releasing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ml.config import Settings
from ml.data.lake import write_json_atomic


class ReplayFinished(RuntimeError):
    """The bundled history has been released up to its last day: nothing new to process."""


def anchor_path(settings: Settings) -> Path:
    """Where the replay's anchor is kept."""
    return settings.paths.home / "replay" / "anchor.json"


def _last_bundled_day(settings: Settings) -> pd.Timestamp:
    from ml.data.sources import read_online_retail

    return read_online_retail(settings.paths.bundled_data)["timestamp"].max().normalize()


def anchor(settings: Settings, night) -> dict:
    """The replay's anchor, created on the first night it is asked for."""
    path = anchor_path(settings)
    if path.exists():
        return json.loads(path.read_text())
    last = _last_bundled_day(settings)
    doc = {
        "first_night": pd.Timestamp(night).strftime("%Y-%m-%d"),
        "first_day": (last - pd.Timedelta(days=settings.source.replay_hold_back_days)).strftime("%Y-%m-%d"),
        "last_day": last.strftime("%Y-%m-%d"),
    }
    write_json_atomic(doc, path)
    return doc


def replay_day(settings: Settings, night) -> str:
    """The bundled day that the run of ``night`` processes (``YYYY-MM-DD``).

    Raises:
        ReplayFinished: the night lies past the end of the bundled history.
    """
    a = anchor(settings, night)
    offset = (pd.Timestamp(night).normalize().tz_localize(None) - pd.Timestamp(a["first_night"])).days
    day = pd.Timestamp(a["first_day"]) + pd.Timedelta(days=max(offset, 0))
    if day > pd.Timestamp(a["last_day"]):
        raise ReplayFinished(
            f"the bundled history was released up to its last day {a['last_day']} (replay started on "
            f"{a['first_night']}); nothing new to process. Delete {anchor_path(settings)} to start over."
        )
    return day.strftime("%Y-%m-%d")
