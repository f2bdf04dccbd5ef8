"""Synthesis strategies on a tiny hand-made shop, every expected value worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from ml.config import StrategySettings
from ml.data.interactions import CONTEXT, ITEM_IDX, TS, USER_IDX, Interactions, W
from ml.synth import strategies as S
from ml.synth.arms import ARMS, arm_spec
from ml.synth.events import as_interactions

M = S.MINUTE
CUT = 100 * M


def _shop() -> Interactions:
    """u0: {0,1} then {2}; u1: {0} then {2} then {3}; u2: {2} once. Times in minutes."""
    rows = [(0, 0, 1), (0, 1, 1), (0, 2, 2), (1, 0, 1), (1, 2, 2), (1, 3, 3), (2, 2, 10)]
    u, i, t = zip(*rows)
    return Interactions.from_arrays(u, i, np.array(t) * M, n_users=3, n_items=5)


def _inputs(**kw) -> S.StrategyInputs:
    return S.StrategyInputs(train=_shop(), cut_ns=CUT, buyers_before=np.array([2, 1, 3, 1, 0]), **kw)


def test_transitions_weigh_each_step_by_the_earlier_basket():
    t = S.transitions(_shop()).toarray()
    expected = np.zeros((5, 5))
    expected[0, 2] = 0.5 + 1.0  # u0: {0,1} -> {2} gives 1/2 per pair; u1: {0} -> {2} gives 1
    expected[1, 2] = 0.5
    expected[2, 3] = 1.0  # u1: {2} -> {3}
    np.testing.assert_allclose(t, expected)


def test_pseudo_prior_prepends_the_reverse_models_items_as_context():
    opts = StrategySettings(short_max_items=3, per_user=3, weight=0.5)
    events = S.pseudo_prior(_inputs(), opts)
    # u1 has 4 items (not short); u0's first basket {0,1} has no predecessor anywhere; u2's basket {2}
    # came after 0 (0.75 = 1.5 / 2) and 1 (0.25): both prepended, the likelier nearer to the first order
    assert events[USER_IDX].tolist() == [2, 2]
    assert events[ITEM_IDX].tolist() == [0, 1]
    assert events[TS].tolist() == [10 * M - M, 10 * M - 2 * M]
    np.testing.assert_allclose(events[S.CONFIDENCE], [1.0, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(events[W], [0.5, 0.5 / 3], rtol=1e-6)
    assert events[CONTEXT].all()


def test_appended_places_forward_candidates_after_the_last_order_and_before_the_cut():
    opts = StrategySettings(short_max_items=3, per_user=3)
    events = S.appended(_inputs(), opts)
    # u0's last basket {2} and u2's {2} are both followed by 3 (u1); neither owns it
    assert list(zip(events[USER_IDX], events[ITEM_IDX], events[TS])) == [(0, 3, 3 * M), (2, 3, 11 * M)]
    assert not events[CONTEXT].any()
    late = S.StrategyInputs(train=_shop(), cut_ns=11 * M, buyers_before=np.zeros(5, int))
    assert S.appended(late, opts)[USER_IDX].tolist() == [0]  # u2's event would reach the cut


def _vectors() -> np.ndarray:
    v = np.array([[1, 0], [0, 1], [0.1, 1], [1, 0.1], [0, 0]], np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n > 0, n, 1)


def test_item_side_gives_cold_items_the_buyers_of_their_text_neighbours():
    opts = StrategySettings(cold_max_buyers=1, text_neighbours=1, buyers_per_item=5, weight=1.0)
    events = S.item_side(_inputs(item_text=_vectors()), opts)
    got = sorted(zip(events[ITEM_IDX], events[USER_IDX]))
    # item 1 (1 buyer: u0) is nearest to warm item 2 (u0, u1, u2): u1 and u2; item 3 (u1) is nearest
    # to item 0 (u0, u1): u0. Item 4 has no title and no buyer.
    assert got == [(1, 1), (1, 2), (3, 0)]
    assert (events[TS] == CUT - M).all()
    np.testing.assert_allclose(events[S.CONFIDENCE], 1.0)
    assert S.item_side(_inputs(), opts).empty  # no text, no item-side events


def test_item_side_with_a_language_model_keeps_the_buyers_it_finds_likeliest():
    opts = StrategySettings(cold_max_buyers=1, text_neighbours=2, buyers_per_item=2, buyer_candidates=2, weight=1.0)
    asked = []
    likelihood = {(0, 3): -3.0, (1, 1): -1.0, (2, 1): 0.0, (2, 3): -1.0}  # (customer, item) -> the model's score

    def rerank(lists, inputs, direction):
        asked.append((lists.users.tolist(), [i.tolist() for i in lists.items], direction, lists.anchor_ns.tolist()))
        return [np.array([likelihood[(int(u), int(i))] for i in items]) for u, items in zip(lists.users, lists.items)]

    events = S.item_side(_inputs(item_text=_vectors()), opts, rerank)
    # candidates: item 1 (owned by u0) <- u1, u2 (both bought its neighbour 2, equal text score);
    # item 3 (owned by u1) <- u0 (bought 0 and 2), u2 (bought 2). One prompt per customer, all their items.
    assert asked == [([0, 1, 2], [[3], [1], [1, 3]], "next", [CUT - 2 * M] * 3)]
    assert list(zip(events[ITEM_IDX], events[USER_IDX])) == [(1, 2), (1, 1), (3, 2), (3, 0)]
    s30, s32 = 1 / np.sqrt(1.01), 0.2 / 1.01  # cosine of item 3 with items 0 and 2
    u0_text, u2_text = s30 + s32, s32  # u0 bought both neighbours of item 3, u2 only item 2
    expected = [1.0, np.exp(-1.0), u2_text / u0_text, np.exp(-2.0)]  # text share x likelihood ratio to the best
    np.testing.assert_allclose(events[S.CONFIDENCE], expected, rtol=1e-5)
    assert (events[TS] == CUT - M).all() and not events[CONTEXT].any()


def test_random_control_keeps_users_dates_and_flags_and_never_draws_an_owned_item():
    opts = StrategySettings(short_max_items=3)
    inputs = _inputs()
    prior = S.pseudo_prior(inputs, opts)
    control = S.random_like(prior, inputs, seed=3)
    for col in (USER_IDX, TS, W, CONTEXT):
        assert control[col].tolist() == prior[col].tolist()
    owned = set(zip(inputs.train.frame[USER_IDX], inputs.train.frame[ITEM_IDX]))
    assert not owned & set(zip(control[USER_IDX], control[ITEM_IDX]))
    assert control.equals(S.random_like(prior, inputs, seed=3))  # seeded


def test_synthesize_arm_dispatches_and_refuses_a_language_model_arm_without_one():
    opts = StrategySettings()
    made: dict = {}
    assert S.synthesize_arm(ARMS["real"], _inputs(), opts, made).empty
    control = S.synthesize_arm(ARMS["random_prior"], _inputs(), opts, made)
    assert "prior" in made and len(control) == len(made["prior"])  # the mimicked arm is made once
    for arm in ("prior_llm", "item_llm"):
        with pytest.raises(ValueError, match="needs a language model"):
            S.synthesize_arm(ARMS[arm], _inputs(), opts, {})


def test_a_share_variant_keeps_each_subjects_best_events_and_its_control_copies_them():
    opts = StrategySettings(short_max_items=3, per_user=3, buyers_per_item=5, weight=0.5)
    made: dict = {}
    one = S.synthesize_arm(arm_spec("prior@1"), _inputs(), opts, made)
    # prior gives u2 items 0 (confidence 1) and 1 (1/3): one event per customer keeps item 0
    assert list(zip(one[USER_IDX], one[ITEM_IDX], one[TS])) == [(2, 0, 10 * M - M)]
    control = S.synthesize_arm(arm_spec("random_prior@1"), _inputs(), opts, made)
    assert set(made) == {"prior@1"} and len(control) == 1 and control[USER_IDX].tolist() == [2]
    # on the item side the share caps the buyers of each cold product: item 1 had u1 and u2, item 3 had u0
    cold = opts.model_copy(update={"cold_max_buyers": 1, "text_neighbours": 1})
    item = S.synthesize_arm(arm_spec("item@1"), _inputs(item_text=_vectors()), cold, {})
    assert sorted(item[ITEM_IDX].tolist()) == [1, 3]


def test_language_model_scores_reorder_candidates_and_scale_confidence():
    lists = S.CandidateLists(
        users=np.array([2]), items=[np.array([0, 1])], scores=[np.array([0.75, 0.25])], anchor_ns=np.array([10 * M])
    )
    opts = StrategySettings(per_user=2, weight=1.0)
    events = S.place(lists, opts, "prior", CUT, rerank=[np.array([-1.0, 0.0])])  # the model prefers item 1
    assert events[ITEM_IDX].tolist() == [1, 0]
    # item 1: collaborative 1/3 x 1; item 0: collaborative 1 x exp(-1)
    np.testing.assert_allclose(events[S.CONFIDENCE], [1 / 3, np.exp(-1.0)], rtol=1e-6)


def test_synthetic_events_become_interactions_that_mark_context():
    events = S.pseudo_prior(_inputs(), StrategySettings())
    real = _shop()
    both = real.concat(as_interactions(events, 3, 5))
    masks = both.context_masks()
    seqs = both.sequences()
    assert seqs[2].tolist() == [1, 0, 2] and masks[2].tolist() == [True, True, False]
    assert not masks[0].any() and not masks[1].any()
    assert real.context_masks() is None
    assert pd.api.types.is_bool_dtype(both.frame[CONTEXT])
