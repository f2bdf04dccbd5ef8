"""Views, truths, segments and the real-vs-synthetic comparison, on hand-made data."""

import numpy as np
import pytest

from ml.data.interactions import Interactions
from ml.eval.protocol import segments, users_with_truth, variant_uplift, view_truths


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
