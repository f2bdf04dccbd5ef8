"""Ranking metrics, top_n and evaluate against values computed by hand on tiny examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from ml.eval import metrics as m
from ml.eval.evaluate import evaluate, per_user
from ml.eval.ranking import top_n

L2, L3, L4, L5 = math.log2(2), math.log2(3), math.log2(4), math.log2(5)


def truth_matrix(rows: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    data = [(r, i) for r, items in enumerate(rows) for i in items]
    r, c = zip(*data) if data else ((), ())
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(rows), n_items))


# user 0: list [1, 2, 3, 4], truth {2, 4, 7}   -> hits at positions 2 and 4
# user 1: list [5, -1, -1, -1], truth {5}       -> hit at position 1, then empty slots
# user 2: list [0, 6, 8, 9], truth {3}          -> no hit
RECS = np.array([[1, 2, 3, 4], [5, -1, -1, -1], [0, 6, 8, 9]])
TRUTH = truth_matrix([[2, 4, 7], [5], [3]])


def test_hits_lookup_marks_only_true_items_and_never_padding():
    hits = m.hits_at_k(RECS, TRUTH, 4)
    assert hits.tolist() == [[False, True, False, True], [True, False, False, False], [False] * 4]


def test_recall_divides_hits_by_all_relevant_items():
    # u0: 2 hits / 3 relevant; u1: 1/1; u2: 0/1.  At k=2: u0 1/3, u1 1, u2 0.
    np.testing.assert_allclose(m.recall_at_k(RECS, TRUTH, 4), [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(m.recall_at_k(RECS, TRUTH, 2), [1 / 3, 1.0, 0.0])


def test_ndcg_uses_binary_gains_and_ideal_over_min_truth_k():
    # u0 k=4: DCG = 1/log2(3) + 1/log2(5); IDCG over min(3,4)=3 positions = 1 + 1/log2(3) + 1/log2(4)
    # u0 k=2: DCG = 1/log2(3); IDCG over min(3,2)=2 = 1 + 1/log2(3)
    # u1: hit at rank 1, one relevant -> 1.0; u2: 0.
    u0_k4 = (1 / L3 + 1 / L5) / (1 / L2 + 1 / L3 + 1 / L4)
    u0_k2 = (1 / L3) / (1 + 1 / L3)
    np.testing.assert_allclose(m.ndcg_at_k(RECS, TRUTH, 4), [u0_k4, 1.0, 0.0])
    np.testing.assert_allclose(m.ndcg_at_k(RECS, TRUTH, 2), [u0_k2, 1.0, 0.0])


def test_hit_rate_is_one_when_any_top_k_item_is_relevant():
    np.testing.assert_array_equal(m.hit_rate_at_k(RECS, TRUTH, 4), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(m.hit_rate_at_k(RECS, TRUTH, 1), [0.0, 1.0, 0.0])


def test_mrr_is_reciprocal_rank_of_the_first_hit():
    # u0 first hit at rank 2 -> 1/2; u1 rank 1 -> 1; u2 none -> 0; at k=1 u0 has no hit.
    np.testing.assert_allclose(m.mrr_at_k(RECS, TRUTH, 4), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(m.mrr_at_k(RECS, TRUTH, 1), [0.0, 1.0, 0.0])


def test_map_averages_precision_at_hits_over_min_truth_k():
    # u0 k=4: hits at 2 (P@2 = 1/2) and 4 (P@4 = 2/4); AP = (1/2 + 1/2) / min(3, 4) = 1/3
    # u0 k=2: hit at 2 (P@2 = 1/2); AP = (1/2) / min(3, 2) = 1/4
    # u1: P@1 = 1 -> AP = 1/1; u2: 0.
    np.testing.assert_allclose(m.map_at_k(RECS, TRUTH, 4), [1 / 3, 1.0, 0.0])
    np.testing.assert_allclose(m.map_at_k(RECS, TRUTH, 2), [1 / 4, 1.0, 0.0])


def test_multi_item_truth_with_every_item_found_scores_perfectly():
    recs = np.array([[7, 3, 9, 0]])
    truth = truth_matrix([[3, 7]])
    for fn in (m.ndcg_at_k, m.recall_at_k, m.map_at_k, m.hit_rate_at_k, m.mrr_at_k):
        np.testing.assert_allclose(fn(recs, truth, 4), [1.0])


def test_k_larger_than_list_is_rejected_and_padding_counts_as_a_miss():
    with pytest.raises(ValueError):
        m.ndcg_at_k(RECS, TRUTH, 5)
    # a list padded with -1 up to k=4 holding one relevant item out of two:
    # NDCG = (1/log2(2)) / (1 + 1/log2(3)); recall = 1/2; AP = 1 / min(2, 4) = 1/2
    recs = np.array([[4, -1, -1, -1]])
    truth = truth_matrix([[4, 5]])
    np.testing.assert_allclose(m.ndcg_at_k(recs, truth, 4), [1 / (1 + 1 / L3)])
    np.testing.assert_allclose(m.recall_at_k(recs, truth, 4), [0.5])
    np.testing.assert_allclose(m.map_at_k(recs, truth, 4), [0.5])


def test_empty_truth_gives_nan_and_the_mean_skips_it():
    recs = np.array([[1, 2], [3, 4]])
    truth = truth_matrix([[1], []])
    values = m.ndcg_at_k(recs, truth, 2)
    assert values[0] == 1.0 and np.isnan(values[1])
    assert m.mean_over_users(values) == 1.0


def test_catalog_coverage_counts_distinct_items_ignoring_padding():
    # top-2 items: {1, 2} u {5} u {0, 6} = 5 distinct of 10
    assert m.catalog_coverage(RECS, 2, n_items=10) == 0.5


def test_novelty_is_mean_self_information_of_recommended_items():
    # counts [3, 0, 1] -> shares (c+1)/(4+3): 4/7, 1/7, 2/7
    pop = np.array([3, 0, 1])
    recs = np.array([[0, 1], [2, -1]])
    expected = [(-math.log2(4 / 7) - math.log2(1 / 7)) / 2, -math.log2(2 / 7)]
    np.testing.assert_allclose(m.novelty_at_k(recs, pop, 2), expected)


# --- top_n -----------------------------------------------------------------------------------


def test_top_n_orders_best_first_and_excludes_items():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]], np.float32)
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    ids, vals = top_n(scores, 2, exclude=exclude)
    assert ids.tolist() == [[3, 2], [0, 1]]
    np.testing.assert_allclose(vals, [[0.7, 0.5], [0.4, 0.3]])
    assert scores[0, 1] == np.float32(0.9)  # the caller's array is untouched


def test_top_n_pads_with_minus_one_when_fewer_finite_scores_than_n():
    scores = np.array([[1.0, -np.inf, np.nan, 2.0]], np.float32)
    ids, vals = top_n(scores, 6)
    assert ids.tolist() == [[3, 0, -1, -1, -1, -1]]
    assert np.all(np.isneginf(vals[0, 2:]))


def test_top_n_breaks_ties_by_item_id():
    ids, _ = top_n(np.zeros((1, 5), np.float32), 5)
    assert ids.tolist() == [[0, 1, 2, 3, 4]]


# --- evaluate --------------------------------------------------------------------------------


def test_evaluate_reports_overall_and_segments_and_drops_users_without_truth():
    # universe of 4 users; users 0, 1, 2 evaluated; user 3 would be out of scope;
    # user 2's truth is empty, so it is dropped.
    truth = truth_matrix([[2, 4, 7], [5], [], [1]])
    users = np.array([0, 1, 2])
    recs = np.array([[1, 2, 3, 4], [5, -1, -1, -1], [0, 6, 8, 9]])
    sparse = np.array([False, True, True])
    result = evaluate(recs, truth, users, {"sparse": sparse, "rest": ~sparse}, ks=(2, 4), item_popularity=np.ones(10))
    overall = result["overall"]
    assert overall["users"] == 2
    # hit rate@2: u0 (hit at 2) and u1 (hit at 1) -> 1.0; mrr@4: (1/2 + 1) / 2
    assert overall["hr@2"] == 1.0
    assert overall["mrr@4"] == pytest.approx(0.75)
    # coverage@2: items {1, 2, 5} of 10
    assert overall["coverage@2"] == pytest.approx(0.3)
    assert result["sparse"]["users"] == 1 and result["sparse"]["ndcg@4"] == 1.0
    assert result["rest"]["recall@4"] == pytest.approx(2 / 3)
    assert set(overall) == {
        f"{name}@{k}" for name in ("ndcg", "recall", "hr", "mrr", "map", "coverage", "novelty") for k in (2, 4)
    } | {"users"}


def test_per_user_values_follow_the_users_and_leave_empty_truth_nan():
    truth = truth_matrix([[2], [], [9]])
    values = per_user(np.array([[1, 2], [3, 4], [9, 8]]), truth, np.array([0, 1, 2]), "ndcg@2")
    assert values[0] == pytest.approx(1 / L3) and np.isnan(values[1]) and values[2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown ranking metric"):
        per_user(np.array([[1, 2]]), truth[:1], np.array([0]), "precision@2")
