"""Quality control of synthetic interactions: filtering proposals, distribution checks, and the gate.

* :func:`filter_proposals` flags (never silently drops) each proposal that must not be used, with
  one reason per row, so the report's counts add up: generated = accepted + sum(rejected).
* :func:`distribution_report` compares synthetic with real training data: KL divergence over
  item-popularity deciles and over enriched categories, basket size, and diversity.
* :func:`gate_synthetic` runs the Great Expectations suite ``synthetic_interactions`` and the
  distribution thresholds, and raises :class:`~ml.errors.GateFailedError` naming every failure;
  the caller then continues on real data only.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data.interactions import CONTEXT
from ml.errors import GateFailedError

log = logging.getLogger(__name__)

# the order in which reasons are assigned (a row gets the first that applies)
REJECT_REASONS = (
    "invalid_answer",
    "not_a_candidate",
    "unknown_item",
    "outside_window",
    "duplicate_real",
    "duplicate_synthetic",
    "low_score",
    "over_cap",
)
# lineage (source, generator, prompt_version, seed, score), then how the row is trained on: its weight and
# whether it is context only (read as history, never a training target)
SYNTHETIC_COLUMNS = [
    C.USER, C.ITEM, C.TIMESTAMP, C.SOURCE, "generator", "prompt_version", "seed", C.SCORE, C.WEIGHT, CONTEXT,
]  # fmt: skip
POPULARITY_BINS = 10
MIN_ROWS_FOR_DISTRIBUTIONS = 20  # below this, distribution checks are reported but not enforced


def filter_proposals(
    proposals: pd.DataFrame,
    train: pd.DataFrame,
    eligible_items,
    cut: pd.Timestamp,
    min_score: float,
    max_per_user: int,
    window_start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Fill ``reject_reason`` for every proposal that must not be used (first reason in ``REJECT_REASONS``).

    Args:
        proposals: rows of user_id, item_id, timestamp, score, rank[, context_only][, reject_reason]; a
            ``context_only`` row must lie before the user's first real purchase, any other after the last.
        train: real training interactions.
        eligible_items: item ids that may be synthesized (catalog items of the vocabulary).
        cut: first instant synthetic data may not reach.
        min_score: picks scoring below this are ``low_score``.
        max_per_user: accepted rows per user beyond this are ``over_cap`` (best rank first).
        window_start: first instant of the training window (None: no lower bound).
    Returns:
        A copy with ``reject_reason`` filled (None = accepted).
    """
    out = proposals.copy()
    if "reject_reason" not in out:
        out["reject_reason"] = None
    out["reject_reason"] = out["reject_reason"].astype(object).where(out["reject_reason"].notna(), None)
    open_ = out["reject_reason"].isna()

    def flag(mask, reason):
        nonlocal open_
        hit = open_ & mask
        out.loc[hit, "reject_reason"] = reason
        open_ = open_ & ~hit

    flag(
        ~out[C.ITEM].astype(str).isin(pd.Index(pd.unique(np.asarray(list(eligible_items), dtype=str))))
        | out[C.ITEM].isna(),
        "unknown_item",
    )
    ts = pd.to_datetime(out[C.TIMESTAMP])
    by_user = train.groupby(train[C.USER].astype(str))[C.TIMESTAMP]
    users = out[C.USER].astype(str)
    # a purchase goes after the user's last real one; prepended pseudo-history (context_only) before the first
    prior = out[CONTEXT].astype(bool) if CONTEXT in out else pd.Series(False, index=out.index)
    misplaced = np.where(prior, ts >= users.map(by_user.min()), ts <= users.map(by_user.max()))
    outside = (ts >= cut) | ts.isna() | misplaced
    if window_start is not None:
        outside |= ts < window_start
    flag(outside, "outside_window")
    real = pd.MultiIndex.from_arrays([train[C.USER].astype(str), train[C.ITEM].astype(str)])
    pairs = pd.MultiIndex.from_arrays([out[C.USER].astype(str), out[C.ITEM].astype(str)])
    flag(pd.Series(pairs.isin(real), index=out.index), "duplicate_real")
    dup = pd.Series(False, index=out.index)
    dup[open_] = out.loc[open_].duplicated([C.USER, C.ITEM], keep="first")
    flag(dup, "duplicate_synthetic")
    flag(pd.to_numeric(out[C.SCORE], errors="coerce").fillna(-np.inf) < min_score, "low_score")
    order = out.loc[open_].sort_values([C.USER, C.RANK], kind="stable")
    over = pd.Series(False, index=out.index)
    over[order.index] = order.groupby(C.USER).cumcount() >= max_per_user
    flag(over, "over_cap")
    return out


def count_reasons(flagged: pd.DataFrame) -> dict:
    """``{"generated", "accepted", "rejected": {reason: n}}`` of a flagged proposals frame (they add up)."""
    counts = flagged["reject_reason"].value_counts()
    rejected = {r: int(counts.get(r, 0)) for r in REJECT_REASONS}
    rejected.update({str(r): int(n) for r, n in counts.items() if r not in rejected})
    return {"generated": len(flagged), "accepted": int(flagged["reject_reason"].isna().sum()), "rejected": rejected}


def kl_divergence(p_counts, q_counts, alpha: float = 0.5) -> float:
    """KL(p || q) in nats between two count vectors over the same bins, with add-``alpha`` smoothing."""
    p = np.asarray(p_counts, dtype=float) + alpha
    q = np.asarray(q_counts, dtype=float) + alpha
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def popularity_bins(train: pd.DataFrame, n_bins: int = POPULARITY_BINS) -> pd.Series:
    """item_id -> popularity decile (0 = least popular) of the training items (equal item counts per bin)."""
    counts = train[C.ITEM].astype(str).value_counts()
    ranks = counts.rank(method="first", ascending=True)
    return (np.ceil(ranks / len(counts) * n_bins) - 1).clip(0, n_bins - 1).astype(int)


def distribution_report(
    synthetic: pd.DataFrame, train: pd.DataFrame, n_eligible: int, categories: pd.Series | None = None, seed: int = 0
) -> dict:
    """Synthetic vs real training data: popularity and category KL, basket size, diversity.

    Args:
        synthetic: accepted synthetic interactions.
        train: real training interactions.
        n_eligible: number of items that could be synthesized (for catalog coverage).
        categories: item_id -> category of enriched items (optional).
        seed: for the same-size real sample that gives the KL noise floor.
    Returns:
        A JSON-able dict (None where a measure has no data).
    """
    real_items = train[C.ITEM].astype(str)
    syn_items = synthetic[C.ITEM].astype(str)
    bins = popularity_bins(train)
    real_bins = np.bincount(real_items.map(bins).dropna().astype(int), minlength=POPULARITY_BINS)
    syn_bins = np.bincount(syn_items.map(bins).dropna().astype(int), minlength=POPULARITY_BINS)
    rng = np.random.default_rng(seed)
    sample = real_items.to_numpy()[
        rng.choice(len(real_items), size=min(len(real_items), max(len(syn_items), 1)), replace=False)
    ]
    ref_bins = np.bincount(pd.Series(sample).map(bins).astype(int), minlength=POPULARITY_BINS)
    report: dict = {
        "rows": len(synthetic),
        "kl_popularity": round(kl_divergence(syn_bins, real_bins), 4) if len(synthetic) else None,
        "kl_popularity_same_size_real_sample": round(kl_divergence(ref_bins, real_bins), 4) if len(synthetic) else None,
        "popularity_decile_share_synthetic": [round(x, 4) for x in (syn_bins / max(syn_bins.sum(), 1)).tolist()],
        "popularity_decile_share_real": [round(x, 4) for x in (real_bins / real_bins.sum()).tolist()],
    }
    if categories is not None and len(categories):
        rc, sc = real_items.map(categories).dropna(), syn_items.map(categories).dropna()
        names = sorted(set(rc) | set(sc))
        report.update(
            kl_category=round(
                kl_divergence(
                    sc.value_counts().reindex(names, fill_value=0), rc.value_counts().reindex(names, fill_value=0)
                ),
                4,
            )
            if len(sc)
            else None,
            category_rows_synthetic=int(len(sc)),
            category_rows_real=int(len(rc)),
        )
    else:
        report.update(kl_category=None, category_rows_synthetic=0, category_rows_real=0)
    users = synthetic[C.USER].astype(str).unique()
    own = train[train[C.USER].astype(str).isin(users)]
    report.update(
        basket_size_synthetic=round(float(synthetic.groupby([C.USER, C.TIMESTAMP]).size().mean()), 3)
        if len(synthetic)
        else None,
        basket_size_real_same_users=round(
            float(own.drop_duplicates([C.USER, C.TIMESTAMP, C.ITEM]).groupby([C.USER, C.TIMESTAMP]).size().mean()), 3
        )
        if len(own)
        else None,
        basket_size_real_all=round(
            float(train.drop_duplicates([C.USER, C.TIMESTAMP, C.ITEM]).groupby([C.USER, C.TIMESTAMP]).size().mean()), 3
        ),
        distinct_items=int(syn_items.nunique()),
        distinct_ratio=round(syn_items.nunique() / len(syn_items), 4) if len(syn_items) else None,
        catalog_coverage=round(syn_items.nunique() / n_eligible, 4) if n_eligible else None,
    )
    return report


def distribution_failures(dist: dict, settings: Settings) -> list[str]:
    """Distribution thresholds of ``settings.synth`` that ``dist`` breaks (empty: all hold)."""
    s = settings.synth
    if dist["rows"] < MIN_ROWS_FOR_DISTRIBUTIONS:
        return []
    failures = []
    if dist["kl_popularity"] is not None and dist["kl_popularity"] > s.max_kl_popularity:
        failures.append(
            f"KL(synthetic || real) over item-popularity deciles {dist['kl_popularity']} > {s.max_kl_popularity} "
            f"(a same-size real sample gives {dist['kl_popularity_same_size_real_sample']})"
        )
    if (
        dist.get("kl_category") is not None
        and dist["category_rows_synthetic"] >= MIN_ROWS_FOR_DISTRIBUTIONS
        and dist["kl_category"] > s.max_kl_category
    ):
        failures.append(f"KL(synthetic || real) over enriched categories {dist['kl_category']} > {s.max_kl_category}")
    if dist["distinct_ratio"] is not None and dist["distinct_ratio"] < s.min_distinct_ratio:
        failures.append(
            f"distinct synthetic items / rows {dist['distinct_ratio']} < {s.min_distinct_ratio} (mode collapse)"
        )
    real, syn = dist.get("basket_size_real_same_users"), dist.get("basket_size_synthetic")
    if real and syn and max(syn / real, real / syn) > s.max_basket_ratio:
        failures.append(
            f"synthetic basket size {syn} vs {real} of the same users' real orders: ratio beyond {s.max_basket_ratio}"
        )
    return failures


def gate_frame(synthetic: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """The frame the GX suite validates: the synthetic columns plus the derived check columns."""
    frame = synthetic.copy()
    frame["user_synthetic_count"] = (
        frame.groupby(C.USER)[C.ITEM].transform("size").astype("int64") if len(frame) else pd.Series(dtype="int64")
    )
    real = pd.MultiIndex.from_arrays([train[C.USER].astype(str), train[C.ITEM].astype(str)])
    frame["duplicates_real"] = pd.MultiIndex.from_arrays([frame[C.USER].astype(str), frame[C.ITEM].astype(str)]).isin(
        real
    )
    return frame


def gate_synthetic(result, data, catalog: pd.DataFrame, settings: Settings, run_name: str | None = None) -> dict:
    """Gate synthetic interactions before they may join training.

    Runs the GX suite ``synthetic_interactions`` (schema, lineage, catalog grounding, training
    window, duplicates, per-user cap) and the distribution thresholds of ``settings.synth``.

    Args:
        result: a :class:`ml.synth.pipeline.SynthResult` (or anything with ``interactions`` and ``items``).
        data: the real split the synthetic data was made for.
        catalog: the lake catalog.
        settings: thresholds, the expectations folder and the quality folder.
        run_name: name of the GX result file (default: UTC time).
    Returns:
        ``{"success": True, "gx": {...}, "distribution": {...}}``.
    Raises:
        GateFailedError: listing every failed expectation and threshold.
    """
    from ml.quality.gates import run_gate
    from ml.synth.enrichment import category_of

    train = data.train
    cut = data.training_cut
    eligible = eligible_items(data, catalog)
    synthetic = result.interactions
    window_start = window_floor(data)
    params = {
        "catalog_items": sorted(eligible),
        "known_users": sorted(map(str, data.user_ids)),
        "window_start": window_start,
        "training_cut": cut,
        "max_per_user": settings.synth.max_per_user,
    }
    gx = run_gate(
        "synthetic_interactions",
        gate_frame(synthetic, train),
        settings,
        params,
        run_name=run_name,
        raise_on_failure=False,
    )
    items = getattr(result, "items", None)
    dist = distribution_report(
        synthetic, train, len(eligible), category_of(items) if items is not None else None, settings.synth.seed
    )
    failures = [shorten_lists(f) for f in gx.failures]
    failures += distribution_failures(dist, settings)
    report = {
        "success": not failures,
        "gx": {"success": gx.success, "statistics": gx.statistics, "result": str(gx.result_path)},
        "distribution": dist,
        "failures": failures,
    }
    if failures:
        raise GateFailedError("synthetic_interactions", failures, str(gx.result_path))
    return report


def shorten_lists(text: str, max_chars: int = 120) -> str:
    """Replace long bracketed lists (e.g. a suite parameter with every catalog item) by their size."""

    def short(m: re.Match) -> str:
        body = m.group(0)
        return body if len(body) <= max_chars else f"[<{body.count(',') + 1} values>]"

    return _LIST.sub(short, text)


_LIST = re.compile(r"\[[^\[\]]*\]")


def window_floor(data) -> pd.Timestamp:
    """The first instant synthetic data may take: the training window's start, or the first training event
    where the split has no window (what the filter and the gate both hold it to)."""
    return data.window_start if data.window_start is not None else data.train[C.TIMESTAMP].min()


def eligible_items(data, catalog: pd.DataFrame) -> set[str]:
    """Items synthesis may name: catalog items that were sold in the training period."""
    sold = set(pd.unique(data.train[C.ITEM].astype(str)))
    return sold & set(catalog[C.ITEM].astype(str))
