"""User profiles from training history: interests, price band, gift vs home buyer, basket size, recency.

Deterministic and cheap (no language model): usable as features and to describe users in prompts.
An item's category is its accepted enrichment, else the one category its title keywords point to
(``ml.synth.categories``), else unknown. Only training events are read, so profiles never see the
validation or test period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml import columns as C
from ml.synth.categories import content_words, title_categories
from ml.synth.enrichment import category_of

GIFT_CATEGORIES = frozenset(
    {"party and gift wrap", "stationery and cards", "christmas", "toys and games", "jewellery and accessories"}
)
HOME_CATEGORIES = frozenset(
    {"home decor", "kitchen and dining", "lighting and candles", "textiles", "garden and outdoor", "bags and storage"}
)
GIFT_SHARE_HIGH = 0.6  # at or above: "gift" buyer
GIFT_SHARE_LOW = 0.4  # at or below: "home" buyer
PROFILE_COLUMNS = [
    C.USER,
    "n_orders",
    "n_items",
    "mean_basket_size",
    "recency_days",
    "median_price",
    "price_band",
    "top_categories",
    "top_keywords",
    "gift_share",
    "buyer_type",
    "profile",
]


def item_categories(catalog: pd.DataFrame, items_enriched: pd.DataFrame | None) -> pd.Series:
    """item_id -> category: accepted enrichment first, else an unambiguous title keyword, else NaN."""
    titles = (
        catalog.drop_duplicates(C.ITEM)
        .set_index(catalog.drop_duplicates(C.ITEM)[C.ITEM].astype(str))[C.TITLE]
        .astype(str)
    )
    from_title = titles.map(lambda t: next(iter(cats)) if len(cats := title_categories(t)) == 1 else None)
    enriched = category_of(items_enriched) if items_enriched is not None else pd.Series(dtype=object)
    return enriched.reindex(titles.index).fillna(from_title)


def build_profiles(
    train: pd.DataFrame, catalog: pd.DataFrame, items_enriched: pd.DataFrame | None, cut: pd.Timestamp
) -> pd.DataFrame:
    """One profile row per training user (``PROFILE_COLUMNS``).

    Args:
        train: training interactions (user_id, item_id, timestamp).
        catalog: item_id, title, price.
        items_enriched: enrichment results (optional; improves categories).
        cut: the training cut (recency is measured to it).
    Returns:
        Profiles sorted by user_id.
    """
    events = train[[C.USER, C.ITEM, C.TIMESTAMP]].astype({C.USER: str, C.ITEM: str})
    cat = catalog.drop_duplicates(C.ITEM).assign(**{C.ITEM: lambda f: f[C.ITEM].astype(str)}).set_index(C.ITEM)
    price = cat[C.PRICE].astype(float) if C.PRICE in cat else pd.Series(dtype=float)
    categories = item_categories(catalog, items_enriched)
    g = events.groupby(C.USER, sort=True)
    orders = events.drop_duplicates([C.USER, C.TIMESTAMP, C.ITEM]).groupby([C.USER, C.TIMESTAMP]).size()
    out = pd.DataFrame(
        {
            "n_orders": orders.groupby(level=0).size(),
            "n_items": g[C.ITEM].nunique(),
            "mean_basket_size": orders.groupby(level=0).mean().round(2),
            "recency_days": ((cut - g[C.TIMESTAMP].max()).dt.total_seconds() / 86400).round(1),
        }
    )
    pairs = events.drop_duplicates([C.USER, C.ITEM])
    pairs = pairs.assign(price=pairs[C.ITEM].map(price), category=pairs[C.ITEM].map(categories))
    out["median_price"] = pairs.groupby(C.USER)["price"].median().round(2)
    low, high = (
        np.nanquantile(price.reindex(pd.unique(events[C.ITEM])), [1 / 3, 2 / 3]) if len(price) else (np.nan, np.nan)
    )
    out["price_band"] = np.select(
        [out["median_price"] <= low, out["median_price"] <= high, out["median_price"] > high],
        ["low", "mid", "high"],
        default="unknown",
    )
    known = pairs.dropna(subset=["category"])
    counts = (
        known.groupby([C.USER, "category"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values([C.USER, "n", "category"], ascending=[True, False, True])
    )
    out["top_categories"] = counts.groupby(C.USER)["category"].apply(lambda s: list(s[:3]))
    words = (
        pairs.assign(word=pairs[C.ITEM].map(cat[C.TITLE].astype(str).map(lambda t: sorted(content_words(t)))))
        .explode("word")
        .dropna(subset=["word"])
    )
    wc = (
        words.groupby([C.USER, "word"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values([C.USER, "n", "word"], ascending=[True, False, True])
    )
    out["top_keywords"] = wc.groupby(C.USER)["word"].apply(lambda s: list(s[:5]))
    gift = known["category"].isin(GIFT_CATEGORIES).groupby(known[C.USER]).sum()
    home = known["category"].isin(HOME_CATEGORIES).groupby(known[C.USER]).sum()
    share = (gift / (gift + home)).where((gift + home) > 0)
    out["gift_share"] = share.reindex(out.index).round(3)
    out["buyer_type"] = np.select(
        [out["gift_share"] >= GIFT_SHARE_HIGH, out["gift_share"] <= GIFT_SHARE_LOW, out["gift_share"].notna()],
        ["gift", "home", "mixed"],
        default="unknown",
    )
    for col in ("top_categories", "top_keywords"):
        out[col] = out[col].map(lambda v: v if isinstance(v, list) else [])
    out["profile"] = [_describe(r) for r in out.itertuples()]
    return out.rename_axis(C.USER).reset_index()[PROFILE_COLUMNS]


def _describe(r) -> str:
    interests = ", ".join(r.top_categories) or ", ".join(r.top_keywords[:3]) or "unknown"
    return (
        f"{r.buyer_type} buyer, {r.price_band} prices (median {r.median_price}), interests: {interests}; "
        f"{r.n_orders} orders of {r.mean_basket_size:g} items on average, last {r.recency_days:g} days before the cut"
    )
