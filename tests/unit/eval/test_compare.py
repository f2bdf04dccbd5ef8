"""Paired comparisons: deltas, intervals and p-values on data small enough to work out by hand."""

import numpy as np
import pytest

from ml.eval.compare import compare


def _cmp(a, b, **kw):
    return compare(a, b, a="A", b="B", metric="ndcg@10", **kw)


def test_a_constant_shift_has_a_point_interval_and_the_exact_sign_flip_p_value():
    r = _cmp([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0])
    assert (r.delta, r.ci_low, r.ci_high, r.n_users) == (1.0, 1.0, 1.0, 4)
    # 2**4 = 16 ways to swap A and B per user; only "none" and "all" reach |mean difference| >= 1
    assert r.p_value == pytest.approx(2 / 16)
    assert r.relative is None  # no relative gain over a zero baseline


def test_no_difference_has_p_value_one():
    r = _cmp([0.2, 0.4, 0.0], [0.2, 0.4, 0.0])
    assert (r.delta, r.ci_low, r.ci_high, r.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not r.significant


def test_pairs_without_a_value_are_dropped_and_relative_is_against_a():
    r = _cmp([0.0, np.nan, 1.0], [1.0, 5.0, 1.0])
    assert r.n_users == 2 and (r.a_value, r.b_value) == (0.5, 1.0)
    assert r.delta == 0.5 and r.relative == 1.0


def test_clusters_are_resampled_and_swapped_whole():
    # user u1 gains in three cuts, u2 in none: pooled delta 3/4; with two clusters every swap keeps |T| = 3/4
    r = _cmp([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], clusters=["u1", "u1", "u1", "u2"])
    assert (r.delta, r.n_users, r.p_value) == (0.75, 2, 1.0)
    assert (r.ci_low, r.ci_high) == (0.0, 1.0)  # resamples: {u1,u1} -> 1, {u2,u2} -> 0, mixed -> 3/4


def test_a_clear_effect_is_significant_and_the_interval_holds_the_delta():
    a, b = np.zeros(50), np.tile([1.0, 0.0], 25)  # half the users gain 1: delta 0.5
    r = _cmp(a, b)
    assert r.delta == 0.5 and r.ci_low < 0.5 < r.ci_high
    assert r.significant and r.ci_low > 0.2 and r.p_value < 0.01
    assert r.to_dict()["slice"] == "overall" and r.to_dict()["seeds"] == []


def test_the_same_data_give_the_same_interval():
    rng = np.random.default_rng(3)
    a, b = rng.random(200), rng.random(200)
    assert _cmp(a, b) == _cmp(a, b)


def test_misaligned_or_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="same 1-D shape"):
        _cmp([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no user has a value"):
        _cmp([np.nan], [1.0])
