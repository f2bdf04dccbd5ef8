"""Synthetic-data quality control: flagged rejections add up, and the gate stops each kind of corruption."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.errors import GateFailedError
from ml.synth.quality import (
    REJECT_REASONS,
    count_reasons,
    distribution_failures,
    distribution_report,
    filter_proposals,
    gate_synthetic,
    kl_divergence,
    shorten_lists,
)
from tests.support.synth import VALIDATION_START, bundled_sample, sample_settings

CUT = VALIDATION_START


def proposals(rows):
    return pd.DataFrame(rows, columns=[C.USER, C.ITEM, C.TIMESTAMP, C.SCORE, C.RANK, "reject_reason"])


def test_each_bad_proposal_gets_one_reason_and_counts_add_up():
    train = pd.DataFrame(
        {C.USER: ["u1", "u2"], C.ITEM: ["a", "b"], C.TIMESTAMP: pd.to_datetime(["2011-05-01", "2011-05-01"])}
    )
    ok_ts = pd.Timestamp("2011-06-01")
    frame = proposals(
        [
            ("u1", "b", ok_ts, 2.0, 1, None),  # accepted
            ("u1", "c", ok_ts, 1.5, 2, None),  # accepted
            ("u1", "zzz", ok_ts, 3.0, 3, None),  # unknown_item
            ("u1", "d", CUT, 3.0, 4, None),  # outside_window (at the cut)
            ("u1", "a", ok_ts, 3.0, 5, None),  # duplicate_real
            ("u1", "b", ok_ts, 1.0, 6, None),  # duplicate_synthetic
            ("u1", "e", ok_ts, -0.5, 7, None),  # low_score
            ("u1", "f", ok_ts, 1.0, 8, None),  # accepted (3rd)
            ("u1", "g", ok_ts, 1.0, 9, None),  # over_cap
            ("u2", None, ok_ts, np.nan, 0, "invalid_answer"),
            ("u2", "c", pd.Timestamp("2011-04-01"), 1.0, 1, None),  # outside_window (before the user's last event)
        ]
    )
    flagged = filter_proposals(frame, train, {"a", "b", "c", "d", "e", "f", "g"}, CUT, min_score=0.0, max_per_user=3)
    assert flagged["reject_reason"].tolist() == [
        None,
        None,
        "unknown_item",
        "outside_window",
        "duplicate_real",
        "duplicate_synthetic",
        "low_score",
        None,
        "over_cap",
        "invalid_answer",
        "outside_window",
    ]
    counts = count_reasons(flagged)
    assert counts["generated"] == len(frame) == counts["accepted"] + sum(counts["rejected"].values())
    assert counts["accepted"] == 3 and set(counts["rejected"]) == set(REJECT_REASONS)


def test_kl_is_zero_for_equal_distributions_and_grows_with_skew():
    assert kl_divergence([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=0.02)
    assert kl_divergence([30, 0, 0], [10, 10, 10]) > kl_divergence([15, 10, 5], [10, 10, 10]) > 0


def test_distribution_report_flags_mode_collapse():
    data, catalog = bundled_sample()
    users = pd.unique(data.train[C.USER])[:40]
    collapsed = pd.DataFrame(
        {C.USER: users, C.ITEM: data.train[C.ITEM].iloc[0], C.TIMESTAMP: CUT - pd.Timedelta(days=1)}
    )
    dist = distribution_report(collapsed, data.train, 290)
    assert dist["distinct_items"] == 1 and dist["distinct_ratio"] == pytest.approx(1 / 40)
    failures = distribution_failures(dist, sample_settings(".", min_distinct_ratio=0.2))
    assert any("mode collapse" in f for f in failures)


def clean_synthetic(data) -> pd.DataFrame:
    """Three users, two new real items each, inside the window."""
    train = data.train
    items = np.sort(pd.unique(train[C.ITEM]))
    rows = []
    for user in np.sort(pd.unique(train[C.USER]))[:3]:
        owned = set(train.loc[train[C.USER] == user, C.ITEM])
        for item in [i for i in items if i not in owned][:2]:
            rows.append((user, item, CUT - pd.Timedelta(hours=5)))
    frame = pd.DataFrame(rows, columns=[C.USER, C.ITEM, C.TIMESTAMP])
    frame[C.TIMESTAMP] = frame[C.TIMESTAMP].astype("datetime64[ns]")
    return frame.assign(
        **{
            C.SOURCE: "synthetic",
            "generator": "test:fake",
            "prompt_version": "next_purchase_score@1",
            "seed": np.int64(1),
            C.SCORE: 1.0,
            C.WEIGHT: np.float32(1.0),
            "context_only": False,
        }
    )


def corrupt(kind: str, frame: pd.DataFrame, data) -> pd.DataFrame:
    out = frame.copy()
    if kind == "unknown_item":
        out.loc[0, C.ITEM] = "NOT-IN-CATALOG"
    elif kind == "after_cut":
        out.loc[0, C.TIMESTAMP] = CUT
    elif kind == "duplicate":
        out = pd.concat([out, out.iloc[[0]]], ignore_index=True)
    elif kind == "cap_exceeded":
        user = out.loc[0, C.USER]
        owned = set(data.train.loc[data.train[C.USER] == user, C.ITEM]) | set(out.loc[out[C.USER] == user, C.ITEM])
        extra = [i for i in np.sort(pd.unique(data.train[C.ITEM])) if i not in owned][:2]
        out = pd.concat([out, pd.DataFrame([{**out.iloc[0].to_dict(), C.ITEM: i} for i in extra])], ignore_index=True)
    elif kind == "duplicates_real":
        user = out.loc[0, C.USER]
        out.loc[0, C.ITEM] = data.train.loc[data.train[C.USER] == user, C.ITEM].iloc[0]
    elif kind == "no_lineage":
        out.loc[1, "generator"] = None
    elif kind == "heavier_than_a_purchase":
        out.loc[0, C.WEIGHT] = np.float32(1.5)
    elif kind == "zero_weight":
        out.loc[0, C.WEIGHT] = np.float32(0.0)
    elif kind == "no_placement":
        out["context_only"] = out["context_only"].astype(object)
        out.loc[0, "context_only"] = None
    return out


def test_gate_passes_clean_synthetic_data(tmp_path):
    data, catalog = bundled_sample()
    report = gate_synthetic(
        SimpleNamespace(interactions=clean_synthetic(data), items=None),
        data,
        catalog,
        sample_settings(tmp_path, max_per_user=2),
    )
    assert report["success"] and report["gx"]["success"]


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("unknown_item", "column='item_id'"),
        ("after_cut", "column='timestamp'"),
        ("duplicate", "expect_compound_columns_to_be_unique"),
        ("cap_exceeded", "column='user_synthetic_count'"),
        ("duplicates_real", "column='duplicates_real'"),
        ("no_lineage", "column='generator'"),
        ("heavier_than_a_purchase", "column='weight'"),
        ("zero_weight", "column='weight'"),
        ("no_placement", "column='context_only'"),
    ],
)
def test_gate_fails_on_corrupted_synthetic_data_and_says_why(tmp_path, kind, expected):
    data, catalog = bundled_sample()
    bad = corrupt(kind, clean_synthetic(data), data)
    with pytest.raises(GateFailedError) as err:
        gate_synthetic(
            SimpleNamespace(interactions=bad, items=None), data, catalog, sample_settings(tmp_path, max_per_user=2)
        )
    assert any(expected in f for f in err.value.failures), err.value.failures
    assert all(len(f) < 1500 for f in err.value.failures)  # the catalog parameter list is not dumped


def test_gate_fails_on_an_empty_synthetic_set(tmp_path):
    data, catalog = bundled_sample()
    empty = clean_synthetic(data).iloc[:0]
    with pytest.raises(GateFailedError, match="row_count"):
        gate_synthetic(SimpleNamespace(interactions=empty, items=None), data, catalog, sample_settings(tmp_path))


def test_shorten_lists_replaces_long_parameter_lists_only():
    long = "value_set=[" + ", ".join(f"'{i}'" for i in range(500)) + "]"
    assert shorten_lists(long) == "value_set=[<500 values>]"
    assert shorten_lists("e.g. ['x', 'y']") == "e.g. ['x', 'y']"
