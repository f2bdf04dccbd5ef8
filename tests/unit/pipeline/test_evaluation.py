"""The single-split judge compares on the cold-item truth too, over the users who bought a cold item."""

import numpy as np
import pytest
import scipy.sparse as sp

from ml.config import Settings
from ml.pipeline.evaluation import Judge


def test_cold_item_comparisons_use_the_cold_truth_and_its_users():
    truth = sp.csr_matrix(np.eye(3, dtype=np.float32))  # user u bought item u
    cold = sp.csr_matrix(np.diag([0, 0, 1]).astype(np.float32))  # only item 2 is cold
    users = np.arange(3)

    def padded(rows):  # lists of 10 slots, -1 = empty
        return np.pad(np.array(rows), ((0, 0), (0, 8)), constant_values=-1)

    lists = {
        ("a", "discover"): padded([[0, 1], [1, 0], [0, 1]]),  # a misses user 2's cold item
        ("b", "discover"): padded([[1, 0], [0, 1], [2, 0]]),  # b finds it first
    }
    settings = Settings().with_overrides({"eval": {"bootstrap_resamples": 100}})
    judge = Judge(lists, {"discover": truth}, {"discover": users}, {"discover": {}}, settings, {"discover": cold})
    record = judge.compare("a", "b", "discover", "cold_items", "ndcg@10")
    assert record["n_users"] == 1 and record["delta"] == pytest.approx(1.0)
    overall = judge.compare("a", "b", "discover", "overall", "ndcg@10")
    # a: 1, 1, 0; b: 1/log2(3), 1/log2(3), 1 -> delta = (2 * 0.6309 + 1 - 2) / 3
    assert overall["n_users"] == 3 and overall["delta"] == pytest.approx((2 / np.log2(3) - 1) / 3)


def test_the_training_table_shows_how_each_epoch_trained_model_ended():
    from ml.pipeline.report import training_table

    doc = {
        "models": {
            "pop": {"training": None},
            "sasrec": {
                "training": {
                    "epochs_run": 12,
                    "best_epoch": 7,
                    "stopped_by": "early_stopping",
                    "early_stopping_armed_epoch": 0,
                    "early_stopping_armed_by": "margin_over_popularity",
                    "sequences_per_s": 410.5,
                    "train_seconds": 88.2,
                    "best_elapsed_seconds": 61.0,
                    "seconds_to_95pct_of_best": 33.5,
                    "shuffle_baskets": False,
                }
            },
            "bert4rec": {"training": {"epochs_run": 3, "shuffle_baskets": True}},
        }
    }
    lines = training_table(doc).splitlines()
    assert len(lines) == 4 and lines[2].split()[:4] == ["sasrec", "12", "7", "early_stopping"]
    assert lines[2].split()[-5:] == ["410.5", "88.2", "61.0", "33.5", "fixed"]
    assert lines[3].split()[-1] == "shuffled"
    assert training_table({"models": {"pop": {"training": None}}}) is None
