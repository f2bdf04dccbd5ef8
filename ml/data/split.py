"""Leak-free splits: a global temporal split (default) and leave-one-out (for published baselines).

Both return three event frames (train, valid, test) with raw ids. The invariant every caller relies
on: nothing in ``train`` happens at or after the first ``test`` event of a temporal split, and
filters such as k-core only ever look at ``train``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from ml import columns as C
from ml.config import SplitSettings


@dataclass(frozen=True)
class Cuts:
    """The two cut dates of a temporal split: train < validation_start <= valid < test_start <= test."""

    validation_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp  # exclusive end of the data considered (as-of day + 1)


def temporal_cuts(events: pd.DataFrame, cfg: SplitSettings, as_of: date | pd.Timestamp | None = None) -> Cuts:
    """Cut dates from settings: explicit dates win, else relative to the last day with events.

    Args:
        events: the events (for the end date when ``as_of`` is not given).
        cfg: split settings.
        as_of: last day of available data.
    Returns:
        Cuts, checked to be ordered.
    """
    end = events[C.TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
    if as_of is not None:  # the last available day: as-of, or the last day with events if earlier
        end = min(end, pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1))
    test_start = pd.Timestamp(cfg.test_start) if cfg.test_start else end - pd.Timedelta(days=cfg.test_days)
    valid_start = (
        pd.Timestamp(cfg.validation_start)
        if cfg.validation_start
        else test_start - pd.Timedelta(days=cfg.validation_days)
    )
    if not valid_start <= test_start < end:
        raise ValueError(
            f"cuts out of order: validation {valid_start.date()}, test {test_start.date()}, end {end.date()}"
        )
    return Cuts(valid_start, test_start, end)


def temporal_split(events: pd.DataFrame, cuts: Cuts) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split events on global time cuts (no per-user split: the future never leaks into training)."""
    ts = events[C.TIMESTAMP]
    events = events[ts < cuts.end]
    ts = events[C.TIMESTAMP]
    train = events[ts < cuts.validation_start]
    valid = events[(ts >= cuts.validation_start) & (ts < cuts.test_start)]
    test = events[ts >= cuts.test_start]
    return train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True)


def leave_one_out_split(
    events: pd.DataFrame, min_events: int = 3, unit: str = "event"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per user: the last event -> test, the one before -> valid, the rest -> train (BERT4Rec's protocol).

    ``unit="basket"`` holds out whole baskets instead (every event at the user's last timestamp -> test, at
    the timestamp before -> valid): on purchase data the last two events are mostly two lines of one
    invoice, and predicting one line of a basket from another rewards knowing the order the lines are
    listed in, not what the customer buys next.

    Users with fewer than ``min_events`` events (baskets) stay entirely in train. Ties in time (the items
    of one basket) are ordered by item id, the order :func:`ml.data.dataset.build_split` gives the training
    sequences, so the held-out items come after the training items in the order the models learn from.
    """
    if unit not in ("event", "basket"):
        raise ValueError(f"unknown hold-out unit {unit!r} (event or basket)")
    ordered = events.reset_index(drop=True).reset_index(names="_order")
    ordered = ordered.sort_values([C.USER, C.TIMESTAMP, C.ITEM, "_order"], kind="stable")
    by_user = ordered.groupby(C.USER, sort=False)
    if unit == "event":
        from_end = by_user.cumcount(ascending=False)
        size = by_user[C.ITEM].transform("size")
    else:
        from_end = by_user[C.TIMESTAMP].rank(method="dense", ascending=False).astype(int) - 1
        size = by_user[C.TIMESTAMP].transform("nunique")
    held = size >= min_events
    test = ordered[held & (from_end == 0)]
    valid = ordered[held & (from_end == 1)]
    train = ordered[~held | (from_end >= 2)]
    return tuple(f.sort_values("_order").drop(columns="_order").reset_index(drop=True) for f in (train, valid, test))


def kcore_filter(train: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively keep users and items with at least ``k`` distinct partners (training data only)."""
    if k <= 1:
        return train
    df = train
    while True:
        pairs = df[[C.USER, C.ITEM]].drop_duplicates()
        user_deg = pairs.groupby(C.USER).size()
        item_deg = pairs.groupby(C.ITEM).size()
        keep = df[C.USER].map(user_deg).ge(k) & df[C.ITEM].map(item_deg).ge(k)
        if keep.all():
            return df.reset_index(drop=True)
        df = df[keep]
