"""Each cleaning rule, on real Online Retail rows, and the no-loss invariant."""

import pandas as pd
import pytest

from ml import columns as C
from ml.config import CleaningSettings
from ml.data import cleaning
from ml.data.sources import ONLINE_RETAIL, normalize_events
from tests.support.real_rows import II_ROWS, ii_frame, v1_frame

CFG = CleaningSettings()


def _raw(ii: pd.DataFrame, v1: pd.DataFrame | None = None) -> pd.DataFrame:
    frames = [normalize_events(ii, "ii.parquet", "ii", ONLINE_RETAIL.guest_ids)]
    if v1 is not None:
        frames.append(normalize_events(v1, "v1.parquet", "v1", ONLINE_RETAIL.guest_ids))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(
    "name",
    [
        "cancelled_invoice",
        "non_product_code",
        "return_or_zero_quantity",
        "guest_checkout",
        "extreme_quantity",
        "accounting_adjustment",
        "non_positive_price",
    ],
)
def test_each_rule_quarantines_its_real_row_with_its_reason(name):
    raw = _raw(ii_frame("kept", name))
    result = cleaning.clean(raw, CFG, ONLINE_RETAIL)
    assert result.kept[C.ITEM].tolist() == ["85048"]
    assert result.quarantined[C.REASON].tolist() == [name]


def test_exact_duplicate_within_a_file_keeps_the_first_copy():
    raw = _raw(ii_frame("duplicate_source", "duplicate_source", "kept"))
    result = cleaning.clean(raw, CFG, ONLINE_RETAIL)
    assert len(result.kept) == 2
    assert result.quarantined[C.REASON].tolist() == ["duplicate"]
    assert result.quarantined[C.SOURCE_ROW].tolist() == [1]


def test_cross_file_overlap_keeps_the_older_exports_copy():
    raw = _raw(ii_frame("overlap_source"), v1_frame("cross_file_overlap", "kept_v1"))
    result = cleaning.clean(raw, CFG, ONLINE_RETAIL)
    assert sorted(result.kept[C.SOURCE].tolist()) == ["ii", "v1"]
    q = result.quarantined
    assert q[C.REASON].tolist() == ["cross_file_overlap"] and q[C.SOURCE].tolist() == ["v1"]


def test_guests_written_as_zero_are_guests_too():
    raw = _raw(ii_frame("kept"), v1_frame("guest_zero"))
    assert raw[C.USER].isna().sum() == 1
    result = cleaning.clean(raw, CFG, ONLINE_RETAIL)
    # the guest line also has price 0: the first rule in order (price) gives the reason
    assert result.quarantined[C.REASON].tolist() == ["non_positive_price"]


def test_placeholder_titles_are_missing_titles():
    raw = _raw(ii_frame("kept"), v1_frame("guest_zero"))
    assert raw[C.TITLE].isna().sum() == 1


def test_first_matching_rule_wins_and_every_row_has_one_reason():
    # cancelled AND negative quantity: reason is the earlier rule
    raw = _raw(ii_frame("cancelled_invoice", "return_or_zero_quantity", "kept"))
    reasons = cleaning.assign_reasons(raw, CFG, ONLINE_RETAIL)
    assert reasons.tolist()[:2] == ["cancelled_invoice", "return_or_zero_quantity"]
    assert pd.isna(reasons.iloc[2])


def test_item_without_any_title_is_kept_and_listed_under_its_id():
    from ml.data.catalog import build_catalog

    row = list(II_ROWS["kept"])
    row[2] = None
    raw = _raw(pd.DataFrame([row, II_ROWS["kept_2"]], columns=ii_frame("kept").columns))
    result = cleaning.clean(raw, CFG, ONLINE_RETAIL)
    assert result.quarantined.empty
    catalog = build_catalog(result.kept).set_index(C.ITEM)
    assert catalog.loc["85048", C.TITLE] == "85048"
    assert catalog.loc["79323P", C.TITLE] == "PINK CHERRY LIGHTS"


def test_rows_in_equals_kept_plus_quarantined_on_every_rule_at_once():
    names = list(II_ROWS)
    raw = _raw(ii_frame(*names), v1_frame("cross_file_overlap", "kept_v1", "guest_zero", "kept_later"))
    result = cleaning.clean(raw, CFG, ONLINE_RETAIL)
    assert result.rows_in == len(result.kept) + len(result.quarantined) == len(raw)
    assert sum(result.counts_by_reason().values()) == len(result.quarantined)
    # no row is in both
    kept_keys = set(zip(result.kept[C.SOURCE], result.kept[C.SOURCE_ROW]))
    q_keys = set(zip(result.quarantined[C.SOURCE], result.quarantined[C.SOURCE_ROW]))
    assert not kept_keys & q_keys and len(kept_keys | q_keys) == len(raw)


def test_extreme_quantity_threshold_is_a_setting():
    raw = _raw(ii_frame("extreme_quantity"))
    assert cleaning.clean(raw, CleaningSettings(max_quantity=10_000), ONLINE_RETAIL).quarantined.empty


def test_confidence_weight_grows_with_quantity_and_is_at_least_one_for_purchases():
    w = cleaning.confidence_weight(pd.Series([1, 12, 100]), pd.Series(["purchase"] * 3))
    assert w[0] == pytest.approx(1.0) and w[0] < w[1] < w[2]


def test_unknown_event_type_is_quarantined():
    df = pd.DataFrame(
        {
            "user_id": ["u1", "u1"],
            "item_id": ["sku-1", "sku-2"],
            "timestamp": ["2020-01-01", "2020-01-02"],
            "event_type": ["purchase", "wishlist"],
        }
    )
    result = cleaning.clean(normalize_events(df, "e.csv", "e.csv"), CFG)
    assert result.quarantined[C.REASON].tolist() == ["unknown_event_type"]
