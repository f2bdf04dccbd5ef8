"""Splits: no test interaction is visible in training; filters only look at training data."""

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.config import SplitSettings
from ml.data.dataset import SplitData, build_split
from ml.data.split import Cuts, kcore_filter, leave_one_out_split, temporal_cuts, temporal_split


def _events(n_users=30, n_items=20, days=200, seed=0):
    rng = np.random.default_rng(seed)
    n = 2000
    return pd.DataFrame(
        {
            C.USER: rng.integers(0, n_users, n).astype(str),
            C.ITEM: rng.integers(0, n_items, n).astype(str),
            C.TIMESTAMP: pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, days * 24, n), unit="h"),
            C.WEIGHT: np.ones(n, np.float32),
        }
    )


def test_temporal_split_puts_nothing_at_or_after_the_test_cut_in_training():
    ev = _events()
    cuts = temporal_cuts(ev, SplitSettings(test_days=40, validation_days=20))
    train, valid, test = temporal_split(ev, cuts)
    assert train[C.TIMESTAMP].max() < cuts.validation_start <= valid[C.TIMESTAMP].min()
    assert valid[C.TIMESTAMP].max() < cuts.test_start <= test[C.TIMESTAMP].min()
    assert len(train) + len(valid) + len(test) == len(ev)


def test_default_cuts_on_the_bundled_end_date_start_the_test_period_on_2011_09_01():
    ev = pd.DataFrame({C.TIMESTAMP: pd.to_datetime(["2010-01-01 00:00", "2011-12-09 12:50"])})
    cuts = temporal_cuts(ev, SplitSettings())
    assert cuts.test_start == pd.Timestamp("2011-09-01") and cuts.validation_start == pd.Timestamp("2011-08-01")


def test_explicit_cut_dates_win_and_bad_order_is_refused():
    ev = _events()
    cuts = temporal_cuts(ev, SplitSettings(validation_start="2021-03-01", test_start="2021-04-01"))
    assert (cuts.validation_start, cuts.test_start) == (pd.Timestamp("2021-03-01"), pd.Timestamp("2021-04-01"))
    with pytest.raises(ValueError, match="out of order"):
        temporal_cuts(ev, SplitSettings(validation_start="2021-05-01", test_start="2021-04-01"))


def test_as_of_cuts_away_later_events():
    ev = _events()
    cuts = temporal_cuts(ev, SplitSettings(test_days=10, validation_days=10), as_of=pd.Timestamp("2021-03-31"))
    _, _, test = temporal_split(ev, cuts)
    assert test[C.TIMESTAMP].max() < pd.Timestamp("2021-04-01") and cuts.end == pd.Timestamp("2021-04-01")


def test_dataset_has_no_test_event_in_training_and_known_vocabulary_only():
    data = build_split(_events(), SplitSettings(test_days=40, validation_days=20))
    assert data.train[C.TIMESTAMP].max() < data.test[C.TIMESTAMP].min()

    def key(f):
        return set(zip(f[C.USER], f[C.ITEM], f[C.TIMESTAMP]))

    assert not key(data.train) & key(data.test) and not key(data.valid) & key(data.test)
    assert set(data.test[C.ITEM]) <= set(data.item_ids) and set(data.test[C.USER]) <= set(data.user_ids)
    info = data.info
    assert info["test_events"] + info["test_events_cold"] == len(
        _events()[_events()[C.TIMESTAMP] >= pd.Timestamp(info["test_start"])]
    )


def test_leave_one_out_holds_out_each_users_last_two_events():
    ev = pd.DataFrame(
        {
            C.USER: ["a"] * 4 + ["b"] * 2,
            C.ITEM: ["1", "2", "3", "4", "1", "2"],
            C.TIMESTAMP: pd.to_datetime([1, 2, 3, 4, 1, 2], unit="s"),
        }
    )
    train, valid, test = leave_one_out_split(ev)
    assert test[C.ITEM].tolist() == ["4"] and valid[C.ITEM].tolist() == ["3"]
    assert train[C.ITEM].tolist() == ["1", "2", "1", "2"]  # b has too few events to hold out


def test_leave_one_out_orders_a_baskets_items_by_item_id_not_by_file_order():
    ev = pd.DataFrame({C.USER: ["a"] * 3, C.ITEM: ["z", "x", "y"], C.TIMESTAMP: pd.to_datetime([5, 5, 5], unit="s")})
    train, valid, test = leave_one_out_split(ev)
    assert (train[C.ITEM].tolist(), valid[C.ITEM].tolist(), test[C.ITEM].tolist()) == (["x"], ["y"], ["z"])


def test_leave_one_out_holds_out_what_comes_last_in_the_training_sequences_order():
    # one earlier order, then a basket of three in file order c, a, b: training sequences list a basket's
    # items by item id, so the held-out pair is b (valid) then c (test), after a
    ev = pd.DataFrame(
        {
            C.USER: ["u"] * 4 + ["v"] * 6,  # v makes every item known to training
            C.ITEM: ["d", "c", "a", "b", "a", "b", "c", "d", "x", "y"],
            C.TIMESTAMP: pd.to_datetime([1, 9, 9, 9, 1, 2, 3, 4, 5, 6], unit="s"),
        }
    )
    data = build_split(ev, SplitSettings(kcore=1, min_user_train_items=1), protocol="leave-one-out")
    u_train = data.train[data.train[C.USER] == "u"][C.ITEM].tolist()
    assert u_train == ["d", "a"]
    assert data.valid[data.valid[C.USER] == "u"][C.ITEM].tolist() == ["b"]
    assert data.test[data.test[C.USER] == "u"][C.ITEM].tolist() == ["c"]


def test_kcore_uses_training_data_only():
    ev = _events(days=100)
    cfg = SplitSettings(test_days=30, validation_days=10, kcore=5)
    data = build_split(ev, cfg)
    cuts = temporal_cuts(ev, cfg)
    raw_train, _, _ = temporal_split(ev, cuts)
    order = [C.TIMESTAMP, C.USER, C.ITEM]
    expected = kcore_filter(raw_train, 5).sort_values(order, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(data.train, expected)
    pairs = data.train[[C.USER, C.ITEM]].drop_duplicates()
    assert pairs.groupby(C.USER).size().min() >= 5 and pairs.groupby(C.ITEM).size().min() >= 5


def test_saved_dataset_loads_back_with_the_same_digest(tmp_path):
    data = build_split(_events(), SplitSettings(test_days=40, validation_days=20))
    data.save(tmp_path / "ds")
    loaded = SplitData.load(tmp_path / "ds")
    assert loaded.digest() == data.digest() and loaded.info["digest"] == data.digest()
    assert loaded.history_for_test().n_users == data.n_users


def test_training_window_drops_only_old_training_events():
    ev = _events(days=200)
    data = build_split(ev, SplitSettings(test_days=40, validation_days=20, window_days=60))
    window_start = pd.Timestamp(data.info["window_start"])
    assert window_start == pd.Timestamp(data.info["test_start"]) - pd.Timedelta(days=60)
    assert data.train[C.TIMESTAMP].min() >= window_start
    assert data.info["events_before_window"] > 0


def test_cuts_are_a_value_object():
    c = Cuts(pd.Timestamp("2021-01-01"), pd.Timestamp("2021-02-01"), pd.Timestamp("2021-03-01"))
    assert c.validation_start < c.test_start < c.end


def test_leave_one_basket_out_holds_out_each_users_last_two_baskets_whole():
    # u: baskets at t=1 {a}, t=2 {b, c}, t=3 {d, e}; v has two baskets only and stays in training
    ev = pd.DataFrame(
        {
            C.USER: ["u"] * 5 + ["v"] * 3,
            C.ITEM: ["a", "c", "b", "e", "d", "a", "b", "c"],
            C.TIMESTAMP: pd.to_datetime([1, 2, 2, 3, 3, 1, 1, 2], unit="s"),
        }
    )
    train, valid, test = leave_one_out_split(ev, unit="basket")
    assert sorted(test[C.ITEM]) == ["d", "e"] and set(test[C.USER]) == {"u"}
    assert sorted(valid[C.ITEM]) == ["b", "c"] and set(valid[C.USER]) == {"u"}
    assert sorted(train[train[C.USER] == "u"][C.ITEM]) == ["a"]
    assert sorted(train[train[C.USER] == "v"][C.ITEM]) == ["a", "b", "c"]


def test_build_split_knows_the_basket_protocol_and_refuses_an_unknown_one():
    ev = _events()
    data = build_split(ev, SplitSettings(kcore=1), protocol="leave-one-basket-out")
    last = ev.groupby(C.USER)[C.TIMESTAMP].max()
    assert (data.test[C.TIMESTAMP].to_numpy() == data.test[C.USER].map(last).to_numpy()).all()
    with pytest.raises(ValueError, match="leave-one-basket-out"):
        build_split(ev, SplitSettings(), protocol="leave-two-out")
