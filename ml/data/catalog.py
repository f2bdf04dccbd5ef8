"""The item catalog: one canonical title per item, price, first/last seen and popularity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml import columns as C
from ml.errors import InputDataError


def has_titles(catalog: pd.DataFrame | None) -> bool:
    """Whether ``catalog`` gives any product a non-blank title (text models need one)."""
    if catalog is None or C.TITLE not in catalog:
        return False
    return bool(catalog[C.TITLE].fillna("").astype(str).str.strip().ne("").any())


def canonical_titles(kept: pd.DataFrame) -> pd.Series:
    """The title each item is sold under most often (ties: the most recent one), indexed by item.

    Args:
        kept: cleaned rows with item, title and timestamp.
    Returns:
        Series item_id -> title.
    """
    titled = kept[kept[C.TITLE].notna()]
    stats = (
        titled.groupby([C.ITEM, C.TITLE], observed=True)
        .agg(n=(C.TIMESTAMP, "size"), last=(C.TIMESTAMP, "max"))
        .reset_index()
    )
    stats = stats.sort_values([C.ITEM, "n", "last"], ascending=[True, False, False], kind="stable")
    return stats.drop_duplicates(C.ITEM).set_index(C.ITEM)[C.TITLE]


def build_catalog(kept: pd.DataFrame, shop_catalog: pd.DataFrame | None = None) -> pd.DataFrame:
    """Build the catalog from cleaned rows, optionally joined with the shop's own catalog.

    Args:
        kept: cleaned rows (raw columns).
        shop_catalog: the shop's catalog (item_id, title[, category, description, price]); its
            titles win over titles seen in events.
    Returns:
        One row per item with ``CATALOG_COLUMNS`` (plus category/description/listed_at when given).
    """
    g = kept.groupby(C.ITEM, observed=True)
    cat = pd.DataFrame(
        {
            C.PRICE: g[C.PRICE].median(),
            C.FIRST_SEEN: g[C.TIMESTAMP].min(),
            C.LAST_SEEN: g[C.TIMESTAMP].max(),
            C.POPULARITY: g[C.USER].nunique().astype("int64"),
            C.N_LINES: g.size().astype("int64"),
        }
    )
    # an item no line ever titled is listed under its id rather than dropped
    cat[C.TITLE] = canonical_titles(kept).reindex(cat.index).fillna(pd.Series(cat.index, index=cat.index))
    if shop_catalog is not None:
        shop = shop_catalog.set_index(C.ITEM)
        cat[C.TITLE] = shop[C.TITLE].reindex(cat.index).fillna(cat[C.TITLE])
        if C.PRICE in shop:
            cat[C.PRICE] = cat[C.PRICE].fillna(shop[C.PRICE].reindex(cat.index))
        for extra in (C.CATEGORY, C.DESCRIPTION):
            if extra in shop:
                cat[extra] = shop[extra].reindex(cat.index).astype("string")
        if C.LISTED_AT in shop:
            cat[C.LISTED_AT] = shop[C.LISTED_AT].reindex(cat.index)
    cat = cat.reset_index().rename(columns={"index": C.ITEM})
    cat[C.ITEM] = cat[C.ITEM].astype("string")
    cat[C.TITLE] = cat[C.TITLE].astype("string")
    extras = [c for c in (C.CATEGORY, C.DESCRIPTION, C.LISTED_AT) if c in cat]
    return cat[C.CATALOG_COLUMNS + extras].sort_values(C.ITEM, kind="stable").reset_index(drop=True)


def _source_path(events_paths, source: str):
    """The events file a row's ``source`` names (its file name), or the name itself when none matches."""
    paths = [events_paths] if isinstance(events_paths, (str, Path)) else list(events_paths)
    return next((p for p in paths if Path(p).name == source), source)


def check_events_against_catalog(raw: pd.DataFrame, shop_catalog: pd.DataFrame, events_path, catalog_path) -> None:
    """Refuse events whose product items are missing from the shop's catalog.

    Args:
        raw: the normalized raw events.
        shop_catalog: the shop's catalog.
        events_path: the events file, or all of them (the error names the file the offending row is from).
        catalog_path: the catalog file.
    Raises:
        InputDataError: naming the events file and the first row whose item is not in the catalog.
    """
    missing = raw[C.ITEM].notna() & ~raw[C.ITEM].isin(shop_catalog[C.ITEM])
    if missing.any():
        first = raw[missing].iloc[0]
        raise InputDataError(
            _source_path(events_path, str(first[C.SOURCE])),
            f"item {first[C.ITEM]!r} is not in the catalog {catalog_path} "
            f"({int(missing.sum())} rows reference items the catalog lacks)",
            column=C.ITEM,
            row=int(first[C.SOURCE_ROW]),
        )
