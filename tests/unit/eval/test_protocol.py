"""Views, truths, segments and the real-vs-synthetic comparison, on hand-made data."""

import numpy as np
import pytest

from ml.data.interactions import Interactions
from ml.eval.protocol import bucket_names, segments, users_with_truth, variant_uplift, view_truths


def test_discover_truth_drops_items_already_in_history():
    history = Interactions.from_arrays([0, 1], [1, 2], n_users=3, n_items=4)
    target = Interactions.from_arrays([0, 0, 1], [1, 3, 2], n_users=3, n_items=4)
    truths = view_truths(target, history)
    assert truths["repeat"].toarray().tolist() == [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert truths["discover"].toarray().tolist() == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert users_with_truth(truths["repeat"]).tolist() == [0, 1]
    assert users_with_truth(truths["discover"]).tolist() == [0]


def test_sparse_segment_counts_distinct_history_items():
    seen = Interactions.from_arrays([0, 0, 0, 0, 1, 2, 2], [0, 1, 2, 3, 0, 1, 1], n_users=3, n_items=4).csr(binary=True)
    seg = segments(seen, np.array([0, 1, 2]), sparse_max=3)
    assert seg["sparse"].tolist() == [False, True, True] and seg["rest"].tolist() == [True, False, False]


def _entry(ndcg: float, recall: float) -> dict:
    group = {"ndcg@10": ndcg, "recall@10": recall}
    return {"views": {"discover": {"overall": group, "sparse": group, "rest": group}}}


def test_uplift_is_the_variant_minus_its_base_per_view_and_segment():
    models = {"als": _entry(0.100, 0.050), "als_synth": _entry(0.125, 0.040), "pop": _entry(0.05, 0.02)}
    uplift = variant_uplift(models, {"als_synth": "als", "bert4rec_synth": "bert4rec"})
    assert set(uplift) == {"als"} and set(uplift["als"]["discover"]) == {"overall", "sparse"}
    ndcg = uplift["als"]["discover"]["sparse"]["ndcg@10"]
    assert (ndcg["real"], ndcg["real_synthetic"]) == (0.100, 0.125) and ndcg["delta"] == pytest.approx(0.025)
    assert uplift["als"]["discover"]["overall"]["recall@10"]["delta"] == pytest.approx(-0.010)


def test_history_buckets_split_users_by_distinct_items():
    counts = [1, 2, 3, 4, 7, 8, 15, 16, 40]
    users = np.repeat(np.arange(len(counts)), counts)
    items = np.concatenate([np.arange(c) for c in counts])
    seen = Interactions.from_arrays(users, items, n_users=len(counts), n_items=40).csr(binary=True)
    seg = segments(seen, np.arange(len(counts)), sparse_max=3, bucket_edges=[1, 2, 4, 8, 16])
    assert bucket_names([1, 2, 4, 8, 16]) == ["history_1", "history_2-3", "history_4-7", "history_8-15", "history_16+"]
    assert np.flatnonzero(seg["history_1"]).tolist() == [0]
    assert np.flatnonzero(seg["history_2-3"]).tolist() == [1, 2]
    assert np.flatnonzero(seg["history_4-7"]).tolist() == [3, 4]
    assert np.flatnonzero(seg["history_8-15"]).tolist() == [5, 6]
    assert np.flatnonzero(seg["history_16+"]).tolist() == [7, 8]
    assert np.flatnonzero(seg["sparse"]).tolist() == [0, 1, 2]
