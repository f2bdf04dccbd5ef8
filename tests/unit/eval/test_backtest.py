"""The backtest's slices and aggregates, on hand-made per-user values."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.eval.backtest import aggregate, compare_models, restrict_items, share_with_any, user_slices
from ml.eval.compare import mean_interval


def test_restrict_items_keeps_only_the_masked_columns():
    truth = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], np.float32))
    out = restrict_items(truth, np.array([True, False, True]))
    np.testing.assert_array_equal(out.toarray(), [[1, 0, 0], [0, 0, 1]])
    assert out.nnz == 2


def test_share_with_any_counts_lists_holding_a_masked_item_and_ignores_empty_slots():
    ids = np.array([[0, 1], [2, -1], [0, 2]])
    assert share_with_any(ids, np.array([False, True, False]), k=2) == pytest.approx(1 / 3)
    assert share_with_any(ids, np.array([False, True, False]), k=1) == 0.0


def test_user_slices_bucket_known_customers_only():
    masks = user_slices(np.array([False, False, True]), np.array([1, 5, 2]), [1, 2, 4])
    assert masks["known"].tolist() == [True, True, False]
    assert masks["new_customers"].tolist() == [False, False, True]
    assert masks["history_1"].tolist() == [True, False, False]
    assert masks["history_2-3"].tolist() == [False, False, False]  # the new customer's 2 items do not count
    assert masks["history_4+"].tolist() == [False, True, False]


def rows(model, values, users, cuts, truth="all", new=None):
    n = len(values)
    return pd.DataFrame(
        {
            "cut": cuts,
            "model": model,
            "view": "discover",
            "truth": truth,
            "user_id": users,
            "new_customer": new if new is not None else [False] * n,
            "history_items": [3] * n,
            "ndcg@10": values,
        }
    )


def test_aggregate_pools_cuts_and_reports_per_cut_means():
    frame = pd.concat(
        [
            rows("a", [1.0, 0.0, 0.5], ["u1", "u2", "u1"], ["c1", "c1", "c2"]),
            rows("a", [1.0], ["u3"], ["c2"], truth="cold"),
        ]
    )
    doc = aggregate(frame, ["ndcg@10"], [1, 4], n_resamples=200)
    overall = doc["a"]["discover"]["overall"]
    assert overall["users"] == 2 and overall["rows"] == 3
    cell = overall["ndcg@10"]
    assert cell["mean"] == pytest.approx(0.5)  # (1 + 0 + 0.5) / 3
    assert cell["per_cut"] == {"c1": 0.5, "c2": 0.5}
    assert cell["cut_mean"] == pytest.approx(0.5) and cell["cut_sd"] == pytest.approx(0.0)
    assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    assert doc["a"]["discover"]["cold_items"]["ndcg@10"]["mean"] == 1.0
    assert doc["a"]["discover"]["history_1-3"]["users"] == 2


def test_compare_models_pairs_rows_by_cut_and_user_and_clusters_by_customer():
    a = rows("a", [0.0, 0.0, 0.0, 1.0], ["u1", "u2", "u1", "u3"], ["c1", "c1", "c2", "c2"])
    b = rows("b", [1.0, 0.0, 1.0], ["u1", "u2", "u1"], ["c1", "c1", "c2"])  # b did not score u3
    records = compare_models(pd.concat([a, b]), "a", "b", ["ndcg@10"], [1], n_resamples=200)
    overall = next(r for r in records if r["slice"] == "discover/overall")
    assert overall["n_users"] == 2  # u1 (two cuts) and u2; u3 has no pair
    assert overall["delta"] == pytest.approx(2 / 3)  # b: (1 + 0 + 1) / 3, a: 0
    assert overall["cuts"] == 2


def test_mean_interval_resamples_whole_clusters():
    mean, low, high = mean_interval([1.0, 1.0, 1.0], clusters=["u", "u", "u"])
    assert (mean, low, high) == (1.0, 1.0, 1.0)  # one cluster: the point
    mean, low, high = mean_interval([0.0, 1.0, np.nan, 0.0, 1.0], n_resamples=500)
    assert mean == 0.5 and 0.0 <= low < 0.5 < high <= 1.0
    assert all(np.isnan(v) for v in mean_interval([np.nan]))


def test_a_cuts_interval_is_students_t_over_its_customers():
    frame = rows("a", [0.0, 1.0, 0.5, 0.5], ["u1", "u2", "u3", "u4"], ["c1", "c1", "c2", "c2"])
    cell = aggregate(frame, ["ndcg@10"], [1], n_resamples=100)["a"]["discover"]["overall"]["ndcg@10"]
    # c1: mean 0.5, sd 0.7071, n 2 -> half-width t(0.975, 1) * 0.7071 / sqrt(2) = 12.706 * 0.5 = 6.353
    low, high = cell["per_cut_interval"]["c1"]
    assert low == pytest.approx(0.5 - 6.3531, abs=1e-3) and high == pytest.approx(0.5 + 6.3531, abs=1e-3)
    assert cell["per_cut_interval"]["c2"] == [0.5, 0.5]  # no spread, no width
