"""The ablation's comparisons on a hand-made user-metrics frame."""

import pandas as pd
import pytest

from ml.eval.ablation import ROW_FIELDS, choose_arm, compare_arms, seed_means
from ml.eval.backtest import SHORT, rows_by_slice


def _rows(arm: str, seed: int, recall_a: float, recall_b: float, cut: str = "c1") -> list[dict]:
    base = {"cut": cut, "arm": arm, "seed": seed, "model": "als", "view": "discover", "truth": "all"}
    return [
        {**base, "user_id": "a", "new_customer": False, "history_items": 2, "recall@10": recall_a},
        {**base, "user_id": "b", "new_customer": False, "history_items": 10, "recall@10": recall_b},
    ]


def _frame() -> pd.DataFrame:
    rows = (
        _rows("real", 0, 0.0, 0.5)
        + _rows("real", 1, 0.0, 0.5)
        + _rows("prior", 0, 1.0, 0.5)
        + _rows("prior", 1, 0.0, 0.5)
    )
    return pd.DataFrame(rows)


def test_seed_means_average_each_users_value_over_seeds():
    means = seed_means(_frame(), ["recall@10"])
    got = means.set_index(["arm", "user_id"])["recall@10"].to_dict()
    assert got == {("real", "a"): 0.0, ("real", "b"): 0.5, ("prior", "a"): 0.5, ("prior", "b"): 0.5}


def test_compare_arms_gives_every_field_on_the_short_slice_and_overall():
    means = seed_means(_frame(), ["recall@10"])
    rows = compare_arms(means, "prior", "real", "als", ["recall@10"], [1, 2, 4, 8, 16], 3, [0, 1],
                        views=("discover",), n_resamples=200)  # fmt: skip
    by_slice = {r["slice"]: r for r in rows}
    assert set(by_slice["discover/overall"]) == set(ROW_FIELDS)
    overall = by_slice["discover/overall"]
    assert (overall["baseline"], overall["value"], overall["delta"]) == pytest.approx((0.25, 0.5, 0.25))
    assert overall["relative"] == pytest.approx(1.0) and overall["n_users"] == 2 and overall["seeds"] == [0, 1]
    short = by_slice[f"discover/{SHORT}"]  # user a only (2 items); b has 10
    assert (short["baseline"], short["value"], short["n_users"]) == (0.0, 0.5, 1)
    assert short["relative"] is None  # no relative gain over nothing
    assert short["ci_low"] == short["ci_high"] == 0.5 and short["p_value"] == 1.0  # one user proves nothing
    assert "discover/cold_items" not in by_slice  # no cold rows


def test_short_slice_leaves_out_new_customers_and_longer_histories():
    frame = pd.DataFrame(
        {
            "truth": "all",
            "new_customer": [False, False, True, False, False],
            "history_items": [1, 3, 2, 4, 0],
        }
    )
    short = dict(rows_by_slice(frame, [1, 2, 4], 3))[SHORT]
    assert short.index.tolist() == [0, 1]


def _primary_row(arm: str, delta: float) -> dict:
    """One validation row of the primary endpoint against real only (what ``choose_arm`` reads)."""
    return {"arm": arm, "baseline_arm": "real", "model": "fusion", "metric": "recall@10", "slice": "s", "delta": delta}


def test_choose_arm_takes_the_best_positive_delta_or_nothing():
    assert choose_arm([_primary_row("a", 0.01), _primary_row("b", 0.02)], "fusion", "recall@10", "s") == "b"
    assert choose_arm([_primary_row("a", -0.01), _primary_row("b", 0.0)], "fusion", "recall@10", "s") is None


def test_of_arms_with_equal_deltas_the_simplest_is_chosen():
    tied = [_primary_row("prior_pruned", 0.0098), _primary_row("prior", 0.0098), _primary_row("item", 0.005)]
    assert choose_arm(tied, "fusion", "recall@10", "s", order=["real", "prior", "prior_pruned", "item"]) == "prior"
    assert choose_arm(tied, "fusion", "recall@10", "s", order=["prior_pruned", "prior"]) == "prior_pruned"
    assert choose_arm(tied, "fusion", "recall@10", "s") == "prior"  # no order: by name
