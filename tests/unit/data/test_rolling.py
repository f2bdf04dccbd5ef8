"""Rolling cuts: who and what exists at a cut, what is trained on, and what is scored (hand-made events)."""

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.data.rolling import EventLog, build_cut, item_known_from, rolling_cuts

CUT = pd.Timestamp("2011-01-10")


def shop_events() -> pd.DataFrame:
    """A (outside the 7-day window), B (in it), C and D new in the horizon [01-10, 01-17)."""
    rows = [
        ("A", "x", "2011-01-01 09:00"),
        ("A", "y", "2011-01-02 09:00"),
        ("B", "x", "2011-01-03 09:00"),
        ("B", "z", "2011-01-09 18:00"),  # z is known from 01-10, the cut: a candidate
        ("C", "x", "2011-01-11 10:00"),  # C's first order: x and z
        ("C", "z", "2011-01-11 10:00"),
        ("A", "z", "2011-01-12 08:00"),  # scored
        ("C", "y", "2011-01-12 09:00"),  # scored: after C's first order
        ("D", "w", "2011-01-13 12:00"),  # w is first sold in the horizon: nobody can recommend it
        ("B", "x", "2011-01-20 09:00"),  # after the horizon
    ]
    frame = pd.DataFrame(rows, columns=[C.USER, C.ITEM, C.TIMESTAMP])
    return frame.assign(**{C.TIMESTAMP: pd.to_datetime(frame[C.TIMESTAMP]), C.WEIGHT: np.float32(1.0)})


def cut_of(events, catalog=None, window_days=7):
    return build_cut(EventLog.of(events), CUT, 7, window_days, item_known_from(events, catalog))


def pairs(cut, interactions) -> set:
    f = interactions.frame
    return set(zip(cut.user_ids[f["user_idx"]], cut.item_ids[f["item_idx"]]))


def test_weekly_cuts_cover_the_span_and_every_horizon_ends_with_the_data():
    cuts = rolling_cuts(pd.Timestamp("2011-03-01"), span_days=28, step_days=7, horizon_days=7)
    assert [str(c.date()) for c in cuts] == ["2011-02-01", "2011-02-08", "2011-02-15", "2011-02-22"]


def test_cuts_refuse_a_span_without_a_whole_horizon():
    with pytest.raises(ValueError, match="no 7-day horizon"):
        rolling_cuts(pd.Timestamp("2011-03-01"), span_days=5, step_days=7, horizon_days=7)
    with pytest.raises(ValueError, match="positive"):
        rolling_cuts(pd.Timestamp("2011-03-01"), span_days=28, step_days=0, horizon_days=7)


def test_an_item_is_known_from_the_day_after_its_first_sale_unless_the_catalog_lists_it():
    events = shop_events()
    known = item_known_from(events)
    assert known["z"] == pd.Timestamp("2011-01-10") and known["w"] == pd.Timestamp("2011-01-14")
    catalog = pd.DataFrame({C.ITEM: ["w", "x"], C.LISTED_AT: [pd.Timestamp("2011-01-05"), pd.NaT]})
    listed = item_known_from(events, catalog)
    assert listed["w"] == pd.Timestamp("2011-01-05")  # a real listing date counts instead
    assert listed["x"] == pd.Timestamp("2011-01-02")  # a blank one leaves the first sale


def test_the_universe_holds_every_known_customer_new_customers_and_items_known_at_the_cut():
    cut = cut_of(shop_events())
    assert list(cut.user_ids) == ["A", "B", "C", "D"]  # known first, then new
    assert list(cut.new_customer) == [False, False, True, True]
    assert list(cut.item_ids) == ["x", "y", "z"]  # w is not known at the cut


def test_the_window_limits_training_never_history():
    cut = cut_of(shop_events())
    assert pairs(cut, cut.train) == {("B", "x"), ("B", "z")}
    # the whole history before the cut, plus the new customer's first order
    assert pairs(cut, cut.history) == {("A", "x"), ("A", "y"), ("B", "x"), ("B", "z"), ("C", "x"), ("C", "z")}


def test_scored_purchases_are_the_horizon_after_a_new_customers_first_order():
    cut = cut_of(shop_events())
    assert pairs(cut, cut.target) == {("A", "z"), ("C", "y")}


def test_counts_say_who_and_what_the_horizon_holds():
    info = cut_of(shop_events()).info
    assert info["horizon_customers"] == 3 and info["new_customers"] == 2  # A; C, D
    assert info["known_customers_outside_window"] == 1  # A bought nothing in the window
    assert info["horizon_purchases"] == 5  # A z, C x, C z, C y, D w
    assert info["purchases_by_new_customers"] == 4
    assert info["purchases_in_first_orders"] == 3  # C x, C z, D w
    assert info["purchases_of_unlisted_items"] == 1  # D w
    assert info["scored_purchases"] == 2
    assert info["share_customers_new"] == pytest.approx(2 / 3)


def test_buyers_before_the_cut_count_distinct_customers_of_the_whole_history():
    cut = cut_of(shop_events())
    assert dict(zip(cut.item_ids, cut.buyers_before)) == {"x": 2, "y": 1, "z": 1}


def test_a_listing_date_makes_an_item_a_candidate_before_its_first_sale():
    catalog = pd.DataFrame({C.ITEM: ["w"], C.LISTED_AT: [pd.Timestamp("2011-01-05")]})
    cut = cut_of(shop_events(), catalog)
    assert "w" in cut.item_ids
    assert cut.info["purchases_of_unlisted_items"] == 0
    assert ("D", "w") in pairs(cut, cut.history)  # D's first order is now known history


def test_no_window_trains_on_all_history():
    cut = cut_of(shop_events(), window_days=None)
    assert pairs(cut, cut.train) == {("A", "x"), ("A", "y"), ("B", "x"), ("B", "z")}


def test_fit_split_holds_out_the_last_days_of_the_window():
    cut = cut_of(shop_events())
    early, late = cut.fit_split(valid_days=3)  # 01-07 onwards is held out
    assert pairs(cut, early) == {("B", "x")} and pairs(cut, late) == {("B", "z")}
