"""The nightly run's synthesis from a strategy arm: placed, weighted, gated and trained on as the ablation measured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.data.interactions import CONTEXT
from ml.pipeline.training import synthetic_events, synthetic_over
from ml.synth.arms import check_nightly, nightly_choices
from ml.synth.pipeline import synthesize
from ml.synth.quality import SYNTHETIC_COLUMNS, filter_proposals, gate_synthetic
from ml.synth.strategy_proposals import strategy_proposals
from tests.support.synth import bundled_sample, sample_settings, shared_generator

T = pd.Timestamp


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The default nightly strategy on real rows (no item enriched: the generator is not asked anything)."""
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path_factory.mktemp("prior"), seed=5)
    return data, catalog, settings, synthesize(data, catalog, settings, backend=shared_generator())


def test_the_default_prepends_pseudo_history_before_each_short_customers_first_order(run):
    data, _, settings, result = run
    syn = result.interactions
    assert settings.synth.strategies.nightly == "prior" and result.report["strategy"] == "prior"
    assert list(syn.columns) == SYNTHETIC_COLUMNS and len(syn) > 0
    first = data.train.groupby(C.USER)[C.TIMESTAMP].min()
    assert (syn[C.TIMESTAMP] < syn[C.USER].map(first)).all() and (
        syn[C.TIMESTAMP] >= data.train[C.TIMESTAMP].min()
    ).all()
    assert syn[CONTEXT].all()
    distinct = data.train.drop_duplicates([C.USER, C.ITEM]).groupby(C.USER).size()
    assert (syn[C.USER].map(distinct) <= settings.synth.strategies.short_max_items).all()
    # weight = 0.5 x confidence, confidence = the score in (0, 1]
    np.testing.assert_allclose(syn[C.WEIGHT], 0.5 * syn[C.SCORE], rtol=1e-6)
    assert (syn[C.SCORE] > 0).all() and (syn[C.SCORE] <= 1).all()
    assert (syn["generator"] == "reverse-basket-transitions").all() and (syn["prompt_version"] == "none").all()
    owned = pd.MultiIndex.from_frame(data.train[[C.USER, C.ITEM]])
    assert not pd.MultiIndex.from_frame(syn[[C.USER, C.ITEM]]).isin(owned).any()


def test_the_gate_passes_it_and_training_reads_it_as_weighted_context(run):
    data, catalog, settings, result = run
    assert gate_synthetic(result, data, catalog, settings)["success"]
    extra = synthetic_events(data, result.interactions, weight=1.0)
    assert len(extra) == len(result.interactions) and extra.frame[CONTEXT].all()
    np.testing.assert_allclose(
        np.sort(extra.frame["weight"].to_numpy()), np.sort(result.interactions[C.WEIGHT].to_numpy()), rtol=1e-6
    )
    counts = result.report["interactions"]
    assert counts["generated"] == len(result.interactions) + len(result.rejected)


def test_a_row_is_placed_before_the_first_order_if_context_only_else_after_the_last():
    train = pd.DataFrame(
        {
            C.USER: ["u", "u"],
            C.ITEM: ["a", "b"],
            C.TIMESTAMP: [T("2011-05-10"), T("2011-05-20")],
        }
    )
    proposals = pd.DataFrame(
        {
            C.USER: ["u"] * 5,
            C.ITEM: ["c", "d", "e", "f", "g"],
            C.TIMESTAMP: [
                T("2011-05-09"),  # context, before the first order: kept
                T("2011-05-15"),  # context, between the orders: outside
                T("2011-04-30"),  # context, before the window: outside
                T("2011-05-21"),  # target, after the last order: kept
                T("2011-05-15"),  # target, before the last order: outside
            ],
            C.SCORE: 1.0,
            C.RANK: [1, 2, 3, 1, 2],
            CONTEXT: [True, True, True, False, False],
        }
    )
    flagged = filter_proposals(
        proposals, train, {"c", "d", "e", "f", "g"}, T("2011-06-01"), 0.0, 3, window_start=T("2011-05-01")
    )
    assert flagged["reject_reason"].tolist() == [None, "outside_window", "outside_window", None, "outside_window"]


def test_the_nightly_strategy_must_be_a_strategy_not_a_control():
    assert "prior" in nightly_choices() and "expansion" in nightly_choices()
    bad_names = (
        "real",
        "random_prior",
        "random_item",
        "prior_typo",
        "prior@0",
        "prior@x",
        "random_prior@1",
        "expansion@2",
    )
    for bad in bad_names:
        with pytest.raises(ValueError, match="synth.strategies.nightly"):
            check_nightly(bad)
    check_nightly("prior@1")  # a share variant of a strategy is one
    assert "prior@1" not in nightly_choices() and nightly_choices("prior@1")[-1] == "prior@1"  # the form shows it
    assert nightly_choices("random_prior@1") == nightly_choices()


def test_a_language_model_arm_without_a_generator_is_refused(tmp_path):
    data, catalog = bundled_sample()
    with pytest.raises(ValueError, match="needs a scoring generator"):
        strategy_proposals(data, catalog, sample_settings(tmp_path), "prior_llm")


def test_synthetic_rows_keep_their_own_weight_and_place_and_old_files_get_the_fallback():
    rows = pd.DataFrame(
        {
            C.USER: ["u2", "u1"],
            C.ITEM: ["i1", "i3"],
            C.TIMESTAMP: [T("2011-01-01"), T("2011-01-02")],
            C.WEIGHT: np.float32([0.25, 0.5]),
            CONTEXT: [True, False],
        }
    )
    users, items = np.array(["u1", "u2"]), np.array(["i1", "i2", "i3"])
    got = synthetic_over(rows, users, items, weight=1.0).frame
    assert got["user_idx"].tolist() == [1, 0] and got["item_idx"].tolist() == [0, 2]
    assert got["weight"].tolist() == [0.25, 0.5] and got[CONTEXT].tolist() == [True, False]
    old = synthetic_over(rows.drop(columns=[C.WEIGHT, CONTEXT]), users, items, weight=0.75).frame
    assert old["weight"].tolist() == [0.75, 0.75] and not old[CONTEXT].any()
    unknown = rows.assign(**{C.ITEM: ["i1", "zz"]})
    with pytest.raises(ValueError, match="outside the dataset vocabulary"):
        synthetic_over(unknown, users, items, weight=1.0)
    assert len(synthetic_over(unknown, users, items, weight=1.0, drop_unknown=True)) == 1


def test_a_pruned_nightly_strategy_keeps_three_quarters_of_the_proposals_and_says_so_in_the_lineage(tmp_path):
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path, seed=5)
    full, _, _ = strategy_proposals(data, catalog, settings, "prior")
    pruned, prompt, _ = strategy_proposals(data, catalog, settings, "prior_pruned")
    assert len(pruned) == len(full) - int(len(full) * 0.25) and prompt == "none"
    key = [C.USER, C.ITEM, C.TIMESTAMP]
    assert pd.MultiIndex.from_frame(pruned[key]).isin(pd.MultiIndex.from_frame(full[key])).all()  # a subset
    assert (pruned["generator"] == "reverse-basket-transitions+als-loss-pruned").all()
    result = synthesize(data, catalog, settings.with_overrides({"synth": {"strategies": {"nightly": "prior_pruned"}}}))
    assert result.report["strategy"] == "prior_pruned" and gate_synthetic(result, data, catalog, settings)["success"]
