"""Cleaning rules: every raw row is either kept as an interaction or quarantined with a reason.

Rules are applied in ``RULES`` order and the first one that matches a row gives its reason, so each
quarantined row has exactly one reason and ``rows_in == rows_kept + rows_quarantined`` holds by
construction (and is checked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import CleaningSettings
from ml.data.sources import GENERIC, SourceConventions

EVENT_WEIGHTS = {"purchase": 1.0, "add_to_cart": 0.5, "view": 0.1}

# key columns that identify the same shop line across exports (cross-file overlap)
LINE_KEY = [C.ORDER, C.ITEM, C.QUANTITY, C.TIMESTAMP, C.PRICE, C.USER]


def _overlap(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Rows of a later source that repeat a line of an earlier source (the Dec 2010 overlap)."""
    sources = list(dict.fromkeys(df[C.SOURCE].tolist()))
    flag = np.zeros(len(df), dtype=bool)
    if len(sources) < 2:
        return flag
    rank = df[C.SOURCE].map({s: i for i, s in enumerate(sources)}).to_numpy()
    key = pd.util.hash_pandas_object(df[LINE_KEY], index=False).to_numpy()
    first_rank = pd.Series(rank).groupby(key).transform("min").to_numpy()
    return rank > first_rank


def _duplicate(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Exact repeats of an earlier row of the same source."""
    return df.duplicated(subset=[c for c in df.columns if c != C.SOURCE_ROW], keep="first").to_numpy()


def _cancelled(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Lines of cancelled orders, where the source marks them by an order-id prefix (Online Retail: C)."""
    return _order_prefix(df, conv.cancelled_order_prefix)


def _adjustment(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Accounting adjustments such as 'Adjust bad debt', where the source marks them (Online Retail: order A...)."""
    return _order_prefix(df, conv.adjustment_order_prefix)


def _order_prefix(df: pd.DataFrame, prefix: str | None) -> np.ndarray:
    if not prefix:
        return np.zeros(len(df), dtype=bool)
    return df[C.ORDER].str.upper().str.startswith(prefix.upper()).fillna(False).to_numpy(bool)


def _return(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Returns and corrections: quantity zero or negative."""
    return (df[C.QUANTITY].fillna(0) <= 0).to_numpy(bool)


def _non_product(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Postage, fees, manual lines, samples, vouchers and test codes: the source's codes and the shop's settings."""
    codes = df[C.ITEM].fillna("")
    listed = codes.str.upper().isin([c.upper() for c in (*conv.non_product_codes, *cfg.non_product_codes)])
    for pattern in (conv.non_product_pattern, cfg.non_product_pattern):
        if pattern:
            listed |= codes.str.fullmatch(pattern, case=False)
    return listed.to_numpy(bool)


def _missing_item(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Rows without an item id."""
    return df[C.ITEM].isna().to_numpy()


def _bad_price(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Zero or negative unit price (free samples, bad-debt lines); a missing price is allowed."""
    return (df[C.PRICE].notna() & (df[C.PRICE] <= 0)).to_numpy(bool)


def _unknown_event(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Event types the platform has no weight for."""
    return (~df[C.EVENT_TYPE].fillna("purchase").isin(list(EVENT_WEIGHTS))).to_numpy(bool)


def _guest(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Guest checkouts: no customer id, so no user history to learn from."""
    return df[C.USER].isna().to_numpy()


def _extreme_quantity(df: pd.DataFrame, cfg: CleaningSettings, conv: SourceConventions) -> np.ndarray:
    """Bulk lines above ``max_quantity`` (often cancelled right after, always outliers)."""
    return (df[C.QUANTITY].fillna(0) > cfg.max_quantity).to_numpy(bool)


Rule = Callable[[pd.DataFrame, CleaningSettings, SourceConventions], np.ndarray]
RULES: list[tuple[str, Rule]] = [
    ("cross_file_overlap", _overlap),
    ("duplicate", _duplicate),
    ("cancelled_invoice", _cancelled),
    ("accounting_adjustment", _adjustment),
    ("return_or_zero_quantity", _return),
    ("missing_item", _missing_item),
    ("non_product_code", _non_product),
    ("non_positive_price", _bad_price),
    ("unknown_event_type", _unknown_event),
    ("guest_checkout", _guest),
    ("extreme_quantity", _extreme_quantity),
]


@dataclass(frozen=True)
class CleanResult:
    """Outcome of cleaning one raw frame: kept rows, and quarantined rows with a reason."""

    kept: pd.DataFrame  # raw columns of kept rows
    quarantined: pd.DataFrame  # raw columns + reason
    rows_in: int

    def counts_by_reason(self) -> dict[str, int]:
        """Quarantined rows per reason code, in rule order."""
        counts = self.quarantined[C.REASON].value_counts()
        order = [name for name, _ in RULES]
        return {r: int(counts[r]) for r in order if r in counts}


def assign_reasons(raw: pd.DataFrame, cfg: CleaningSettings, conventions: SourceConventions = GENERIC) -> pd.Series:
    """The first matching rule's reason for every row, or <NA> for rows to keep.

    Args:
        raw: the normalized raw frame.
        cfg: cleaning settings.
        conventions: how the source marks cancellations, adjustments and non-products (none for generic files).
    Returns:
        A string Series aligned with ``raw``.
    """
    reason = np.full(len(raw), None, dtype=object)
    open_rows = np.ones(len(raw), dtype=bool)
    for name, rule in RULES:
        hit = rule(raw, cfg, conventions) & open_rows
        reason[hit] = name
        open_rows &= ~hit
    return pd.Series(reason, index=raw.index, dtype="string")


def clean(raw: pd.DataFrame, cfg: CleaningSettings, conventions: SourceConventions = GENERIC) -> CleanResult:
    """Split a raw frame into kept rows and quarantined rows (one reason each).

    Args:
        conventions: the source's own markings (``ml.data.sources.ONLINE_RETAIL`` for the bundled export).
    Raises:
        AssertionError: if rows were lost (the invariant is checked, not assumed).
    """
    reason = assign_reasons(raw, cfg, conventions)
    kept_mask = reason.isna().to_numpy()
    kept = raw[kept_mask].reset_index(drop=True)
    quarantined = raw[~kept_mask].assign(**{C.REASON: reason[~kept_mask].to_numpy()}).reset_index(drop=True)
    if len(kept) + len(quarantined) != len(raw):
        raise AssertionError(f"cleaning lost rows: {len(raw)} in, {len(kept)} kept, {len(quarantined)} quarantined")
    return CleanResult(kept=kept, quarantined=quarantined, rows_in=len(raw))


def confidence_weight(quantity: pd.Series, event_type: pd.Series) -> np.ndarray:
    """Implicit-feedback confidence: ``event weight * (1 + log(quantity))`` (>= the event weight)."""
    q = quantity.fillna(1).clip(lower=1).to_numpy(np.float64)
    w = event_type.fillna("purchase").map(EVENT_WEIGHTS).fillna(1.0).to_numpy(np.float64)
    return (w * (1.0 + np.log(q))).astype(np.float32)
