"""A-vs-B comparisons with their uncertainty: the paired delta, a 95% bootstrap interval and a permutation p-value.

One record (:class:`Comparison`) serves every comparison the platform makes: model against model,
real + synthetic against real only, challenger against champion. The statistics come from SciPy:
``scipy.stats.bootstrap(..., paired=True)`` (BCa) for the interval and
``scipy.stats.permutation_test(..., permutation_type="samples")`` (swapping A and B within a pair)
for the two-sided p-value.

Pairs are users: ``a[i]`` and ``b[i]`` are the same user's metric under A and B. When a user
contributes several pairs (a backtest's cuts), pass ``clusters`` so that whole users are
resampled and swapped, never single (user, cut) rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000


@dataclass(frozen=True)
class Comparison:
    """B against A on one metric and slice: ``delta = mean(B) - mean(A)`` over the paired users.

    Attributes:
        relative: ``delta / mean(A)``; None when A's mean is 0 (a relative gain over nothing means nothing).
        ci_low, ci_high: the 95% interval of ``delta``.
        p_value: two-sided, for "A and B are exchangeable for every user".
        n_users: users (clusters) in the comparison.
        seeds: the model seeds averaged into each value (empty: one run).
    """

    a: str
    b: str
    metric: str
    slice: str
    a_value: float
    b_value: float
    delta: float
    relative: float | None
    ci_low: float
    ci_high: float
    p_value: float
    n_users: int
    seeds: list[int] = field(default_factory=list)

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict:
        """The record as plain JSON-able values."""
        return asdict(self)


def _mean_difference(a, b, axis=-1):
    return np.mean(b, axis=axis) - np.mean(a, axis=axis)


def _ratio_difference(a_sum, b_sum, n, axis=-1):
    return (np.sum(b_sum, axis=axis) - np.sum(a_sum, axis=axis)) / np.sum(n, axis=axis)


def _bootstrap_interval(samples, statistic, n_resamples: int, random_state: int) -> tuple[float, float]:
    """BCa interval of the paired statistic; the percentile interval where BCa is undefined (degenerate resamples)."""
    for method in ("BCa", "percentile"):
        ci = stats.bootstrap(
            samples,
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=CONFIDENCE,
            method=method,
            random_state=np.random.default_rng(random_state),
        ).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            break
    return float(ci.low), float(ci.high)


def compare(
    a_values: Sequence[float],
    b_values: Sequence[float],
    *,
    a: str,
    b: str,
    metric: str,
    slice: str = "overall",
    clusters: Sequence | None = None,
    seeds: Sequence[int] = (),
    n_resamples: int = N_RESAMPLES,
    random_state: int = 0,
) -> Comparison:
    """Compare B with A on per-user values of one metric.

    Args:
        a_values, b_values: the same users' values under A and under B (NaN pairs are dropped: a user
            without truth has no value).
        a, b, metric, slice: what is compared, for the record.
        clusters: optional cluster label per pair (e.g. the user id in a backtest); clusters are
            resampled and swapped whole, and the statistic is the pooled mean difference.
        seeds: recorded as is.
        n_resamples: bootstrap and permutation resamples.
        random_state: seeds both resamplings, so the same data give the same interval.
    Returns:
        The :class:`Comparison`.
    Raises:
        ValueError: the arrays differ in length, or no pair is left.
    """
    a_arr, b_arr = np.asarray(a_values, np.float64), np.asarray(b_values, np.float64)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"a and b need the same 1-D shape, got {a_arr.shape} and {b_arr.shape}")
    keep = ~(np.isnan(a_arr) | np.isnan(b_arr))
    a_arr, b_arr = a_arr[keep], b_arr[keep]
    if not len(a_arr):
        raise ValueError(f"no user has a value for both {a} and {b} ({metric}, {slice})")
    a_mean, b_mean = float(a_arr.mean()), float(b_arr.mean())
    delta = b_mean - a_mean
    if clusters is None:
        samples, statistic, n_units = (a_arr, b_arr), _mean_difference, len(a_arr)
    else:
        labels = np.asarray(clusters)[keep]
        _, inverse = np.unique(labels, return_inverse=True)
        a_sum, b_sum = np.bincount(inverse, a_arr), np.bincount(inverse, b_arr)
        n = np.bincount(inverse).astype(np.float64)
        samples, statistic, n_units = (a_sum, b_sum, n), _ratio_difference, len(n)
    if np.allclose(b_arr - a_arr, delta) or n_units < 2:  # every pair moves alike: the interval is the point
        low = high = delta
    else:
        low, high = _bootstrap_interval(samples, statistic, n_resamples, random_state)
    p_value = 1.0  # a single user (cluster) can never show a difference beyond chance
    if n_units >= 2:
        extra = samples[2:]  # a cluster's pair count stays with it when its A and B are swapped
        test = stats.permutation_test(
            samples[:2],
            lambda x, y, axis=-1: statistic(x, y, *extra, axis=axis),
            permutation_type="samples",
            vectorized=True,
            n_resamples=n_resamples,
            alternative="two-sided",
            random_state=np.random.default_rng(random_state + 1),
        )
        p_value = min(1.0, float(test.pvalue))
    relative = delta / a_mean if a_mean != 0 else None
    return Comparison(a, b, metric, slice, a_mean, b_mean, delta, relative, low, high, p_value, n_units, list(seeds))


def mean_interval(
    values: Sequence[float],
    clusters: Sequence | None = None,
    n_resamples: int = N_RESAMPLES,
    random_state: int = 0,
) -> tuple[float, float, float]:
    """The mean of per-user values and its 95% bootstrap interval (percentile), resampling whole clusters.

    Args:
        values: one value per (user[, cut]) row; NaN rows are dropped.
        clusters: a cluster label per row (the user id in a backtest, where a user has a row per cut);
            None: every row is its own cluster.
    Returns:
        ``(mean, ci_low, ci_high)``; the interval is the point when fewer than two clusters remain,
        and all three are NaN when no value is left.
    """
    arr = np.asarray(values, np.float64)
    keep = ~np.isnan(arr)
    arr = arr[keep]
    if not len(arr):
        return float("nan"), float("nan"), float("nan")
    mean = float(arr.mean())
    labels = np.arange(len(arr)) if clusters is None else np.asarray(clusters)[keep]
    _, inverse = np.unique(labels, return_inverse=True)
    sums, n = np.bincount(inverse, arr), np.bincount(inverse).astype(np.float64)
    if len(n) < 2 or np.allclose(arr, mean):
        return mean, mean, mean
    ci = stats.bootstrap(
        (sums, n),
        lambda s, c, axis=-1: np.sum(s, axis=axis) / np.sum(c, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=np.random.default_rng(random_state),
    ).confidence_interval
    return mean, float(ci.low), float(ci.high)
