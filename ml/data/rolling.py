"""Rolling-origin cuts: the nightly loop replayed, one dataset per cut.

At a cut ``c`` the shop knows every event before ``c``. A cut's dataset holds:

* the **universe**: every customer with an event before ``c``, every customer whose first purchase
  falls in the horizon (a *new customer*), and every item the shop knows at ``c`` (listed at or before
  ``c`` when the catalog has ``listed_at``, else first sold before ``c``, i.e. known from the day after
  its first sale). A training window limits what models are fitted on, never who and what exists.
* ``train``: the events of the training window before ``c`` (``window_days``; None = all);
* ``history``: every event before ``c``, plus each new customer's first order (the moment the
  platform first hears of them);
* ``target``: the horizon ``[c, c + horizon_days)``: known customers' purchases, and new customers'
  purchases after their first order, of items in the universe.

Purchases of items the shop did not know at ``c`` (first sold inside the horizon) cannot be
recommended by anyone; they are counted in ``info``, never scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml import columns as C
from ml.data.interactions import TS, Interactions

DAY = pd.Timedelta(days=1)
# what each cut's ``info`` counts about its horizon (they add up over cuts; the shares follow from them)
HORIZON_COUNTS = (
    "horizon_customers",
    "new_customers",
    "known_customers_outside_window",
    "horizon_purchases",
    "purchases_by_new_customers",
    "purchases_in_first_orders",
    "purchases_of_unlisted_items",
    "scored_purchases",
)


def horizon_shares(counts: dict) -> dict[str, float]:
    """The shares of customers and purchases that :data:`HORIZON_COUNTS` give (0 for an empty horizon)."""
    customers, pairs = max(counts["horizon_customers"], 1), max(counts["horizon_purchases"], 1)
    return {
        "share_customers_new": counts["new_customers"] / customers,
        "share_purchases_new_customers": counts["purchases_by_new_customers"] / pairs,
        "share_purchases_unlisted_items": counts["purchases_of_unlisted_items"] / pairs,
        "share_purchases_scored": counts["scored_purchases"] / pairs,
    }


def rolling_cuts(end: pd.Timestamp, span_days: int, step_days: int, horizon_days: int) -> list[pd.Timestamp]:
    """Cut instants (midnights) every ``step_days`` over the last ``span_days`` before ``end``.

    Args:
        end: exclusive end of the data (the day after its last day).
        span_days, step_days, horizon_days: see ``BacktestSettings``; every cut's horizon ends by ``end``.
    Returns:
        Cuts in time order, e.g. 12 weekly cuts for an 84-day span.
    Raises:
        ValueError: non-positive lengths, or a span shorter than one horizon.
    """
    if min(span_days, step_days, horizon_days) <= 0:
        raise ValueError(f"span, step and horizon must be positive days, got {span_days}, {step_days}, {horizon_days}")
    end = pd.Timestamp(end).normalize()
    first = end - pd.Timedelta(days=span_days)
    cuts = []
    cut = first
    while cut + pd.Timedelta(days=horizon_days) <= end:
        cuts.append(cut)
        cut += pd.Timedelta(days=step_days)
    if not cuts:
        raise ValueError(f"a {span_days}-day span holds no {horizon_days}-day horizon")
    return cuts


def item_known_from(events: pd.DataFrame, catalog: pd.DataFrame | None = None) -> pd.Series:
    """When the shop knows each item: its catalog ``listed_at`` where given, else the day after its first sale.

    Never earlier than that from sales data alone: a listing date guessed from a future first sale
    would leak the horizon's answer into the candidates.

    Returns:
        item_id (str) -> Timestamp.
    """
    first_sale = events.groupby(events[C.ITEM].astype(str))[C.TIMESTAMP].min()
    known = first_sale.dt.normalize() + DAY
    if catalog is not None and C.LISTED_AT in catalog:
        listed = catalog.assign(**{C.ITEM: catalog[C.ITEM].astype(str)}).set_index(C.ITEM)[C.LISTED_AT].dropna()
        listed = pd.to_datetime(listed)
        known = known.reindex(known.index.union(listed.index))
        known.loc[listed.index] = listed
    return known


@dataclass
class CutData:
    """One cut's universe and events, indexed (see the module doc)."""

    cut: pd.Timestamp
    horizon_end: pd.Timestamp
    user_ids: np.ndarray  # index -> raw user id; known customers first, then new customers
    item_ids: np.ndarray  # index -> raw item id
    train: Interactions
    history: Interactions
    target: Interactions
    new_customer: np.ndarray  # bool per user index: unknown at the cut
    buyers_before: np.ndarray  # distinct buyers of each item before the cut (whole history)
    info: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def fit_split(self, valid_days: int) -> tuple[Interactions, Interactions]:
        """``train`` cut ``valid_days`` before the cut: (events before that, the last ``valid_days`` days).

        For models that early-stop on a held-out period; the refitted ones use all of ``train``.
        """
        start = (self.cut - pd.Timedelta(days=valid_days)).value
        f = self.train.frame
        early = f[TS].to_numpy() < start
        return (
            Interactions(f[early].reset_index(drop=True), self.n_users, self.n_items),
            Interactions(f[~early].reset_index(drop=True), self.n_users, self.n_items),
        )


@dataclass(frozen=True)
class EventLog:
    """Cleaned events with integer-coded ids, encoded once and cut many times.

    ``user``/``item`` index ``user_ids``/``item_ids`` (raw ids, str); ``ts`` is ns since the epoch.
    """

    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    weight: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    @classmethod
    def of(cls, events: pd.DataFrame) -> EventLog:
        """Encode a frame with user_id, item_id, timestamp[, weight] (any order)."""
        order = np.argsort(events[C.TIMESTAMP].to_numpy(), kind="stable")
        ev = events.iloc[order]
        user, user_ids = pd.factorize(ev[C.USER].astype(str))
        item, item_ids = pd.factorize(ev[C.ITEM].astype(str))
        weight = ev[C.WEIGHT].to_numpy(np.float32) if C.WEIGHT in ev else np.ones(len(ev), np.float32)
        return cls(
            user.astype(np.int64),
            item.astype(np.int64),
            ev[C.TIMESTAMP].to_numpy("datetime64[ns]").astype(np.int64),
            weight,
            np.asarray(user_ids, dtype=str),
            np.asarray(item_ids, dtype=str),
        )

    @property
    def end(self) -> pd.Timestamp:
        """The day after the last event (exclusive end of the data)."""
        return pd.Timestamp(int(self.ts.max())).normalize() + DAY


def build_cut(
    log: EventLog,
    cut: pd.Timestamp,
    horizon_days: int,
    window_days: int | None,
    known_from: pd.Series,
) -> CutData:
    """The dataset of one cut (see the module doc).

    Args:
        log: the cleaned events (:meth:`EventLog.of`).
        cut: the cut instant.
        horizon_days: length of the scored horizon.
        window_days: training window before the cut; None = all history.
        known_from: :func:`item_known_from` over the same events.
    Returns:
        The cut's :class:`CutData`; ``info`` counts who and what the horizon holds and what is scored.
    """
    cut = pd.Timestamp(cut)
    horizon_end = cut + pd.Timedelta(days=horizon_days)
    before = log.ts < cut.value
    in_horizon = (log.ts >= cut.value) & (log.ts < horizon_end.value)

    known_users = np.unique(log.user[before])
    horizon_users = np.unique(log.user[in_horizon])
    new_users = np.setdiff1d(horizon_users, known_users)
    listed = known_from.reindex(log.item_ids)
    universe_items = np.flatnonzero((listed <= cut).to_numpy())
    # universe order: users known first, then new ones (each by raw id); items by raw id
    known_users = known_users[np.argsort(log.user_ids[known_users], kind="stable")]
    new_users = new_users[np.argsort(log.user_ids[new_users], kind="stable")]
    universe_items = universe_items[np.argsort(log.item_ids[universe_items], kind="stable")]
    user_pos = np.full(len(log.user_ids), -1, np.int64)
    user_pos[np.concatenate([known_users, new_users])] = np.arange(len(known_users) + len(new_users))
    item_pos = np.full(len(log.item_ids), -1, np.int64)
    item_pos[universe_items] = np.arange(len(universe_items))
    n_users, n_items = len(known_users) + len(new_users), len(universe_items)

    u, i = user_pos[log.user], item_pos[log.item]
    reachable = i >= 0
    is_new = np.zeros(len(log.user_ids), bool)
    is_new[new_users] = True
    new_event = in_horizon & is_new[log.user]
    first_ts = np.full(len(log.user_ids), np.iinfo(np.int64).max)
    np.minimum.at(first_ts, log.user[new_event], log.ts[new_event])
    first_order = new_event & (log.ts == first_ts[log.user])
    scored = in_horizon & ~first_order & reachable
    window = before & reachable
    if window_days is not None:
        window &= log.ts >= (cut - pd.Timedelta(days=window_days)).value
    history = (before & reachable) | (first_order & reachable)

    def index(mask: np.ndarray) -> Interactions:
        return Interactions.from_arrays(
            u[mask], i[mask], log.ts[mask], log.weight[mask], n_users=n_users, n_items=n_items
        )

    pairs_mask = _first_of_pairs(log.user, log.item, in_horizon)
    before_pairs = _first_of_pairs(log.user, log.item, before & reachable)
    buyers = np.bincount(i[before_pairs], minlength=n_items)
    in_window_users = np.zeros(len(log.user_ids), bool)
    in_window_users[log.user[window]] = True
    horizon_known = np.setdiff1d(horizon_users, new_users)
    n_pairs = int(pairs_mask.sum())
    info = {
        "cut": str(cut.date()),
        "horizon_end": str(horizon_end.date()),
        "users": n_users,
        "items": n_items,
        "train_events": int(window.sum()),
        "horizon_customers": len(horizon_users),
        "new_customers": len(new_users),
        "known_customers_outside_window": int((~in_window_users[horizon_known]).sum()),
        "horizon_purchases": n_pairs,
        "purchases_by_new_customers": int((pairs_mask & is_new[log.user]).sum()),
        "purchases_in_first_orders": int(_first_of_pairs(log.user, log.item, first_order).sum()),
        "purchases_of_unlisted_items": int((pairs_mask & ~reachable).sum()),
        "scored_purchases": int(_first_of_pairs(log.user, log.item, scored).sum()),
    }
    info.update(horizon_shares(info))
    return CutData(
        cut=cut,
        horizon_end=horizon_end,
        user_ids=log.user_ids[np.concatenate([known_users, new_users])],
        item_ids=log.item_ids[universe_items],
        train=index(window),
        history=index(history),
        target=index(scored),
        new_customer=np.r_[np.zeros(len(known_users), bool), np.ones(len(new_users), bool)],
        buyers_before=buyers.astype(np.int64),
        info=info,
    )


def _first_of_pairs(user: np.ndarray, item: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mask of the first event of each distinct (user, item) pair among the events in ``mask``."""
    rows = np.flatnonzero(mask)
    key = user[rows] * (int(item.max()) + 1 if len(item) else 1) + item[rows]
    _, first = np.unique(key, return_index=True)
    out = np.zeros(len(user), bool)
    out[rows[first]] = True
    return out
