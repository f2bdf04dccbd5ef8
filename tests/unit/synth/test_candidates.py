"""Candidate sets come from the real catalog: co-purchase neighbours first, then title neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml import columns as C
from ml.synth.candidates import CandidateIndex
from ml.synth.expansion import plan_users, synthetic_timestamp
from ml.synth.quality import eligible_items
from tests.support.synth import bundled_sample, sample_settings, shared_encoder


def hand_made():
    train = pd.DataFrame(
        {
            C.USER: ["u1", "u1", "u2", "u2", "u3", "u3", "u4"],
            C.ITEM: ["a", "b", "a", "b", "a", "c", "d"],
            C.TIMESTAMP: pd.Timestamp("2011-05-01"),
        }
    )
    catalog = pd.DataFrame({C.ITEM: ["a", "b", "c", "d", "e"], C.TITLE: ["A", "B", "C", "D", "E never sold"]})
    return train, catalog


def test_copurchase_neighbours_rank_by_co_occurrence_and_skip_the_history():
    train, catalog = hand_made()
    idx = CandidateIndex(train, catalog)
    cands = idx.candidates(["a"], n_copurchase=5, n_text=0, n_total=3)
    assert [c.item_id for c in cands] == ["b", "c", "d"] and [c.origin for c in cands] == [
        "copurchase",
        "copurchase",
        "popular",
    ]
    assert "e" not in idx.item_ids  # never sold in training: never a candidate


def test_candidates_of_real_sparse_users_are_real_catalog_items():
    data, catalog = bundled_sample()
    idx = CandidateIndex(data.train, catalog, shared_encoder())
    tasks, _ = plan_users(data, catalog, idx, sample_settings(".", max_users=20))
    allowed = eligible_items(data, catalog)
    for task in tasks:
        ids = [c.item_id for c in task.candidates]
        assert len(ids) == len(set(ids)) == 20 and set(ids) <= allowed and not set(ids) & set(task.history)
        assert {c.origin for c in task.candidates} >= {"copurchase", "text"}
        titles = catalog.set_index(C.ITEM)[C.TITLE]
        assert all(titles[c.item_id] == c.title for c in task.candidates)


def test_text_neighbours_share_meaning():
    data, catalog = bundled_sample()
    idx = CandidateIndex(data.train, catalog, shared_encoder())
    box = catalog[catalog[C.TITLE].str.contains("TRINKET BOX", na=False) & catalog[C.ITEM].isin(idx.item_ids)][
        C.ITEM
    ].iloc[0]
    text = [c for c in idx.candidates([box], n_copurchase=0, n_text=5) if c.origin == "text"]
    assert len(text) == 5 and sum("TRINKET" in c.title for c in text) >= 3


def test_synthetic_timestamps_fall_strictly_between_last_event_and_cut():
    data, _ = bundled_sample()
    cut = data.training_cut
    rng = np.random.default_rng(0)
    for last in [cut - pd.Timedelta(days=60), cut - pd.Timedelta(minutes=2), pd.Timestamp("2011-07-31 23:58:30")]:
        for _ in range(50):
            ts = synthetic_timestamp(last, cut, rng)
            assert last < ts < cut
    assert synthetic_timestamp(cut - pd.Timedelta(seconds=30), cut, rng) is None
