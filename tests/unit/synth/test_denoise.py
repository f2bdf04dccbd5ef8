"""Loss-based pruning of synthetic events: expected rows worked out by hand on tiny shops."""

import numpy as np
import pandas as pd
import pytest

from ml.config import Settings, StrategySettings
from ml.data.interactions import ITEM_IDX, USER_IDX, Interactions
from ml.models.popularity import Popularity
from ml.synth import strategies as S
from ml.synth.arms import ARMS
from ml.synth.denoise import als_teacher, loss_pruned, teacher_scores

M = S.MINUTE


def _shop() -> Interactions:
    """Distinct buyers: item 0: u0, u1; item 1: u0; item 2: u0, u1, u2; item 3: u1; item 4: none."""
    rows = [(0, 0, 1), (0, 1, 1), (0, 2, 2), (1, 0, 1), (1, 2, 2), (1, 3, 3), (2, 2, 10)]
    u, i, t = zip(*rows)
    return Interactions.from_arrays(u, i, np.array(t) * M, n_users=3, n_items=5)


def _synthetic(pairs) -> pd.DataFrame:
    users, items = zip(*pairs)
    return S._events(users, items, np.full(len(users), 50 * M), np.ones(len(users)), context=False, weight=0.5)


def test_scores_come_from_the_teacher_fitted_on_real_plus_synthetic():
    events = _synthetic([(2, 0), (2, 1), (0, 4)])
    # with the synthetic rows item 0 has 3 distinct buyers, item 1 two, item 4 one (popularity's scores)
    np.testing.assert_allclose(teacher_scores(events, _shop(), Popularity()), [3.0, 2.0, 1.0])


def test_pruning_drops_the_worst_fitted_share_rounded_down_and_keeps_the_order():
    events = _synthetic([(2, 0), (2, 1), (0, 4)])
    one = loss_pruned(events, _shop(), 0.34, Popularity)  # int(3 * 0.34) = 1 row: (u0, item 4)
    assert list(zip(one[USER_IDX], one[ITEM_IDX])) == [(2, 0), (2, 1)]
    two = loss_pruned(events, _shop(), 0.67, Popularity)
    assert list(zip(two[USER_IDX], two[ITEM_IDX])) == [(2, 0)]
    assert loss_pruned(events, _shop(), 0.0, Popularity).equals(events)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        loss_pruned(events, _shop(), 1.0, Popularity)


def test_among_equal_scores_the_later_row_is_dropped():
    events = _synthetic([(2, 1), (1, 1)])  # both rows are item 1 (3 buyers then): equal scores
    kept = loss_pruned(events, _shop(), 0.5, Popularity)
    assert list(zip(kept[USER_IDX], kept[ITEM_IDX])) == [(2, 1)]


def test_the_als_teacher_prunes_the_purchase_that_crosses_the_shops_two_halves():
    # users 0-5 buy items 0-2 together, users 6-11 items 3-5; users 12 and 13 bought item 0 once
    rows = [(u, i, 1) for u in range(6) for i in range(3)] + [(u, i, 1) for u in range(6, 12) for i in range(3, 6)]
    rows += [(12, 0, 1), (13, 0, 1)]
    u, i, t = zip(*rows)
    train = Interactions.from_arrays(u, i, np.array(t) * M, n_users=14, n_items=6)
    settings = Settings().with_overrides({"models": {"als": {"factors": 2, "iterations": 15}}})
    events = _synthetic([(12, 1), (13, 4)])  # item 1 shares the half of item 0; item 4 does not
    scores = teacher_scores(events, train, als_teacher(settings)())
    assert scores[0] > 2 * scores[1]  # measured: 0.49 and 0.14
    kept = loss_pruned(events, train, 0.5, als_teacher(settings))
    assert list(zip(kept[USER_IDX], kept[ITEM_IDX])) == [(12, 1)]


def test_a_pruned_arm_prunes_its_unpruned_events_and_needs_a_teacher():
    inputs = S.StrategyInputs(train=_shop(), cut_ns=100 * M, buyers_before=np.array([2, 1, 3, 1, 0]))
    opts = StrategySettings(short_max_items=3, per_user=3, prune_share=0.5)
    made: dict = {}
    pruned = S.synthesize_arm(ARMS["prior_pruned"], inputs, opts, made, teacher=Popularity)
    # prior gives u2 items 0 then 1 (test_strategies); with them item 0 has 3 buyers and item 1 two,
    # so item 1 fits worse and goes (int(2 * 0.5) = 1 row)
    assert made["prior"][ITEM_IDX].tolist() == [0, 1]  # the unpruned arm, made once and kept
    assert list(zip(pruned[USER_IDX], pruned[ITEM_IDX])) == [(2, 0)]
    with pytest.raises(ValueError, match="needs a teacher"):
        S.synthesize_arm(ARMS["prior_pruned"], inputs, opts, {})
