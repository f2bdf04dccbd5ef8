"""Readers: both Online Retail schemas, the generic schema, and every bad-input case."""

import pandas as pd
import pytest

from ml import columns as C
from ml.data.sources import read_catalog, read_events
from ml.errors import InputDataError
from tests.support.real_rows import ii_frame, v1_frame


def _csv(tmp_path, text: str, name="events.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_both_online_retail_schemas_normalize_to_the_same_columns(tmp_path):
    ii = tmp_path / "ii.parquet"
    v1 = tmp_path / "v1.parquet"
    ii_frame("kept").to_parquet(ii)
    v1_frame("kept_v1").to_parquet(v1)
    a, b = read_events(ii), read_events(v1)
    assert list(a.columns) == list(b.columns)
    assert a[C.USER].tolist() == ["13085"] and b[C.USER].tolist() == ["14729"]
    assert a[C.ORDER].tolist() == ["489434"] and b[C.ORDER].tolist() == ["536520"]
    assert str(a[C.TIMESTAMP].dtype) == "datetime64[ns]"


def test_generic_csv_with_optional_columns(tmp_path):
    path = _csv(
        tmp_path, "user_id,item_id,timestamp,quantity,price,event_type\nu1,i1,2021-03-01T10:00:00,2,3.5,purchase\n"
    )
    df = read_events(path)
    assert df.loc[0, C.QUANTITY] == 2 and df.loc[0, C.PRICE] == 3.5 and df.loc[0, C.EVENT_TYPE] == "purchase"


def test_integer_timestamps_are_an_order(tmp_path):
    path = _csv(tmp_path, "user_id,item_id,timestamp\nu1,i1,3\nu1,i2,1\nu1,i3,2\n")
    df = read_events(path)
    assert df.sort_values(C.TIMESTAMP)[C.ITEM].tolist() == ["i2", "i3", "i1"]


def test_missing_required_column_names_file_and_column(tmp_path):
    path = _csv(tmp_path, "user_id,timestamp\nu1,2021-01-01\n")
    with pytest.raises(InputDataError) as err:
        read_events(path)
    assert err.value.column == "item_id" and str(path) in str(err.value)


def test_unparseable_timestamp_names_the_row(tmp_path):
    path = _csv(tmp_path, "user_id,item_id,timestamp\nu1,i1,2021-01-01\nu2,i2,yesterday\n")
    with pytest.raises(InputDataError) as err:
        read_events(path)
    assert (err.value.column, err.value.row) == ("timestamp", 1)
    assert "yesterday" in str(err.value)


def test_wrong_type_names_column_and_row(tmp_path):
    path = _csv(tmp_path, "user_id,item_id,timestamp,quantity\nu1,i1,2021-01-01,2\nu1,i2,2021-01-02,two\n")
    with pytest.raises(InputDataError) as err:
        read_events(path)
    assert (err.value.column, err.value.row) == ("quantity", 1)


def test_fractional_quantity_is_a_wrong_type(tmp_path):
    path = _csv(tmp_path, "user_id,item_id,timestamp,quantity\nu1,i1,2021-01-01,1.5\n")
    with pytest.raises(InputDataError, match="integer"):
        read_events(path)


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(InputDataError, match="empty"):
        read_events(_csv(tmp_path, ""))


def test_header_only_file_is_refused(tmp_path):
    with pytest.raises(InputDataError, match="no rows"):
        read_events(_csv(tmp_path, "user_id,item_id,timestamp\n"))


def test_non_utf8_file_names_the_row(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("user_id,item_id,timestamp\nu1,i1,2021-01-01\nu2,caf\xe9,2021-01-02\n".encode("latin-1"))
    with pytest.raises(InputDataError, match="UTF-8") as err:
        read_events(path)
    assert err.value.row == 1


def test_unsupported_extension_is_refused(tmp_path):
    with pytest.raises(InputDataError, match="unsupported"):
        read_events(_csv(tmp_path, "x", name="events.xlsx"))


def test_catalog_with_duplicate_item_is_refused(tmp_path):
    path = _csv(tmp_path, "item_id,title\ni1,Mug\ni1,Cup\n", name="catalog.csv")
    with pytest.raises(InputDataError, match="more than once") as err:
        read_catalog(path)
    assert err.value.row == 1


def test_catalog_without_title_is_refused(tmp_path):
    path = _csv(tmp_path, "item_id,title\ni1,\n", name="catalog.csv")
    with pytest.raises(InputDataError) as err:
        read_catalog(path)
    assert err.value.column == "title"


def test_catalog_optional_columns_are_kept(tmp_path):
    path = _csv(tmp_path, "item_id,title,category,price\ni1,Mug,kitchen,2.5\n", name="catalog.csv")
    cat = read_catalog(path)
    assert cat.loc[0, "category"] == "kitchen" and cat.loc[0, C.PRICE] == 2.5
    assert isinstance(cat, pd.DataFrame)


def test_catalog_listing_dates_are_parsed_and_may_be_blank(tmp_path):
    path = _csv(tmp_path, "item_id,title,listed_at\ni1,Mug,2011-03-01T10:00:00\ni2,Cup,\n", name="catalog.csv")
    cat = read_catalog(path)
    assert cat.loc[0, C.LISTED_AT] == pd.Timestamp("2011-03-01 10:00") and pd.isna(cat.loc[1, C.LISTED_AT])


def test_catalog_with_a_bad_listing_date_names_its_row(tmp_path):
    path = _csv(tmp_path, "item_id,title,listed_at\ni1,Mug,\ni2,Cup,2011-03-01\ni3,Pot,soon\n", name="catalog.csv")
    with pytest.raises(InputDataError, match="unparseable timestamp") as err:
        read_catalog(path)
    assert (err.value.column, err.value.row) == ("listed_at", 2)
