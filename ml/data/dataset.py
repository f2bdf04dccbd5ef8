"""Model-ready datasets: a split of events over a fixed user/item vocabulary, saved as Parquet.

A ``SplitData`` is what every model and the evaluation consume. The vocabulary contains the users
and items known before the test period (train + validation), so test events of brand-new items or
users are counted and set aside rather than silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import SPLIT_PROTOCOLS, SplitSettings
from ml.data import split as split_mod
from ml.data.interactions import Interactions
from ml.data.lake import write_json_atomic, write_parquet_atomic

EVENT_COLUMNS = [C.USER, C.ITEM, C.TIMESTAMP, C.WEIGHT]
PARTS = ("train", "valid", "test")


@dataclass
class SplitData:
    """Train / valid / test events with raw ids, and their integer-indexed views."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    user_ids: np.ndarray  # index -> raw user id
    item_ids: np.ndarray  # index -> raw item id
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self._user_index = pd.Index(self.user_ids)
        self._item_index = pd.Index(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def to_interactions(self, events: pd.DataFrame) -> Interactions:
        """Index raw-id events into the vocabulary (events outside it must already be removed)."""
        users = self._user_index.get_indexer(events[C.USER])
        items = self._item_index.get_indexer(events[C.ITEM])
        if (users < 0).any() or (items < 0).any():
            raise ValueError("events outside the dataset vocabulary")
        ts = events[C.TIMESTAMP]
        ts = ts.astype("int64") if not pd.api.types.is_integer_dtype(ts) else ts
        return Interactions.from_arrays(users, items, ts, events[C.WEIGHT], n_users=self.n_users, n_items=self.n_items)

    @property
    def train_i(self) -> Interactions:
        return self.to_interactions(self.train)

    @property
    def valid_i(self) -> Interactions:
        return self.to_interactions(self.valid)

    @property
    def test_i(self) -> Interactions:
        return self.to_interactions(self.test)

    @property
    def training_cut(self) -> pd.Timestamp:
        """The first instant after training data: the validation start (else the test start) of a temporal split.

        Synthetic training data must lie before it. Raises ValueError for a split without time cuts
        (leave-one-out).
        """
        cut = self.info.get("validation_start") or self.info.get("test_start")
        if cut is None:
            raise ValueError("the split has no validation_start/test_start: it is not a temporal split")
        return pd.Timestamp(cut)

    @property
    def window_start(self) -> pd.Timestamp | None:
        """The first instant of the training window, or None when training starts with the data."""
        start = self.info.get("window_start")
        return pd.Timestamp(start) if start else None

    def history_for_test(self) -> Interactions:
        """Everything known when the test period starts: train and validation events."""
        return self.train_i.concat(self.valid_i)

    def digest(self) -> str:
        """Content hash of the three splits (stable across reruns on the same data)."""
        h = hashlib.sha256()
        for part in PARTS:
            frame = getattr(self, part)[EVENT_COLUMNS]
            rows = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy())  # row order does not matter
            h.update(part.encode() + rows.tobytes())
        return h.hexdigest()[:16]

    def save(self, folder: Path) -> None:
        """Write ``train/valid/test.parquet``, ``users/items.parquet`` and ``split.json`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        for part in PARTS:
            write_parquet_atomic(getattr(self, part), folder / f"{part}.parquet")
        write_parquet_atomic(pd.DataFrame({C.USER: self.user_ids}), folder / "users.parquet")
        write_parquet_atomic(pd.DataFrame({C.ITEM: self.item_ids}), folder / "items.parquet")
        write_json_atomic({**self.info, "digest": self.digest()}, folder / "split.json")

    @classmethod
    def load(cls, folder: Path) -> SplitData:
        """Read a dataset written by :meth:`save`."""
        parts = {p: pd.read_parquet(folder / f"{p}.parquet") for p in PARTS}
        users = pd.read_parquet(folder / "users.parquet")[C.USER].to_numpy()
        items = pd.read_parquet(folder / "items.parquet")[C.ITEM].to_numpy()
        info = json.loads((folder / "split.json").read_text())
        return cls(**parts, user_ids=users, item_ids=items, info=info)


LEAVE_OUT_UNITS = {"leave-one-out": "event", "leave-one-basket-out": "basket"}  # what each leave-out protocol holds out
assert set(SPLIT_PROTOCOLS) == {"temporal", *LEAVE_OUT_UNITS}


def _events(df: pd.DataFrame) -> pd.DataFrame:
    out = df[[c for c in EVENT_COLUMNS if c in df]].copy()
    if C.WEIGHT not in out:
        out[C.WEIGHT] = np.float32(1.0)
    out[C.USER] = out[C.USER].astype(str)
    out[C.ITEM] = out[C.ITEM].astype(str)
    return out


def build_split(events: pd.DataFrame, cfg: SplitSettings, protocol: str = "temporal", as_of=None) -> SplitData:
    """Split events, filter on training data only, and fix the vocabulary.

    Args:
        events: interactions with user_id, item_id, timestamp[, weight].
        cfg: split settings (cuts, k-core, minimum history).
        protocol: ``temporal`` (global time cuts), ``leave-one-out`` (each user's last event) or
            ``leave-one-basket-out`` (each user's last basket: the protocol for purchase data).
        as_of: last day of available data (temporal only).
    Returns:
        SplitData whose ``info`` records the protocol, cuts and every count that was set aside.
    """
    events = _events(events)
    info: dict = {"protocol": protocol}
    if protocol == "temporal":
        cuts = split_mod.temporal_cuts(events, cfg, as_of)
        train, valid, test = split_mod.temporal_split(events, cuts)
        info.update(
            validation_start=str(cuts.validation_start.date()),
            test_start=str(cuts.test_start.date()),
            end=str(cuts.end.date()),
        )
        if cfg.window_days:
            window_start = cuts.test_start - pd.Timedelta(days=cfg.window_days)
            info.update(
                window_start=str(window_start.date()),
                events_before_window=int((train[C.TIMESTAMP] < window_start).sum()),
            )
            train = train[train[C.TIMESTAMP] >= window_start]
    elif protocol in LEAVE_OUT_UNITS:
        train, valid, test = split_mod.leave_one_out_split(events, unit=LEAVE_OUT_UNITS[protocol])
    else:
        raise ValueError(f"unknown protocol {protocol!r} (one of {', '.join(SPLIT_PROTOCOLS)})")
    train = split_mod.kcore_filter(train, cfg.kcore)
    known_users = pd.Index(pd.unique(train[C.USER]))
    known_items = pd.Index(pd.unique(train[C.ITEM]))
    # validation/test can only score users and items the model could have seen
    valid_known = valid[valid[C.USER].isin(known_users) & valid[C.ITEM].isin(known_items)]
    history = pd.concat([train, valid_known])
    user_ids = np.sort(pd.unique(history[C.USER]).astype(str))
    item_ids = np.sort(pd.unique(history[C.ITEM]).astype(str))
    n_hist = history.drop_duplicates([C.USER, C.ITEM]).groupby(C.USER).size()
    eligible = n_hist.index[n_hist >= cfg.min_user_train_items]
    test_known = test[test[C.USER].isin(eligible) & test[C.ITEM].isin(item_ids)]
    info.update(
        users=len(user_ids),
        items=len(item_ids),
        train_events=len(train),
        valid_events=len(valid_known),
        test_events=len(test_known),
        valid_events_unknown=len(valid) - len(valid_known),
        test_events_cold=len(test) - len(test_known),
        test_users=int(test_known[C.USER].nunique()),
        valid_users=int(valid_known[C.USER].nunique()),
    )
    order = [C.TIMESTAMP, C.USER, C.ITEM]
    parts = [f.sort_values(order, kind="stable").reset_index(drop=True) for f in (train, valid_known, test_known)]
    return SplitData(*parts, user_ids, item_ids, info)
