"""Hostile input files, as a new user might hand them over: each ends in a clear InputDataError naming
the file, the column and (where one row is to blame) the row, or in a quarantine with a reason; nothing
that cannot be read is kept as a null."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml import columns as C
from ml.cli import main
from ml.config import CleaningSettings
from ml.data import cleaning
from ml.data.sources import ONLINE_RETAIL, ONLINE_RETAIL_FILES, read_catalog, read_events, read_online_retail
from ml.errors import InputDataError

H = "user_id,item_id,timestamp,quantity,price\n"
OK = "u1,i1,2021-01-01,1,1.0\n"  # a good first row: the bad one is row index 1, "data row 2"
EV = "user_id,item_id,timestamp,event_type\n"


def _assert_refused(err: InputDataError, path, column, row, words):
    msg = str(err)
    assert err.path == str(path) and msg.startswith(f"file {path}")
    assert (err.column, err.row) == (column, row)
    if column is not None:
        assert f"column {column!r}" in msg
    if row is not None:
        assert f"data row {row + 1}:" in msg  # counted from 1 below the header
    for word in words:
        assert word in msg


CSV_REFUSED = [
    # timestamps: non-finite, implausible, relative, out of range after the offset, blank, control character
    pytest.param(H + "u1,i1,1609459200,1,1\nu1,i2,inf,1,1\n", "timestamp", 1, ["not a finite number"], id="ts-inf"),
    pytest.param(
        H + "u1,i1,1609459200,1,1\nu1,i2,1e20,1,1\n", "timestamp", 1, ["1e20", "plausible range"], id="ts-1e20"
    ),
    pytest.param(
        H + "u1,i1,1609459200,1,1\nu1,i2,1609459200000,1,1\n", "timestamp", 1, ["milliseconds"], id="ts-epoch-ms"
    ),
    pytest.param(H + "u1,i1,-1,1,1\n", "timestamp", 0, ["plausible range"], id="ts-before-1970"),
    pytest.param(H + OK + "u1,i2,0001-01-01,1,1\n", "timestamp", 1, ["0001-01-01", "plausible range"], id="ts-year-1"),
    pytest.param(
        H + OK + "u1,i2,9999-12-31,1,1\n", "timestamp", 1, ["9999-12-31", "plausible range"], id="ts-year-9999"
    ),
    pytest.param(
        H + OK + "u1,i2,2100-12-31T23:00:00-02:00,1,1\n", "timestamp", 1, ["plausible range"], id="ts-past-2100-in-utc"
    ),
    pytest.param(H + OK + "u1,i2,now,1,1\n", "timestamp", 1, ["unparseable", "'now'"], id="ts-now"),
    pytest.param(H + OK + "u1,i2,12:30,1,1\n", "timestamp", 1, ["unparseable", "4-digit year"], id="ts-time-only"),
    pytest.param(H + OK + "u1,i2,   ,1,1\n", "timestamp", 1, ["missing"], id="ts-whitespace"),
    pytest.param(H + OK + "u1,i2,2021-01-01\x00,1,1\n", "timestamp", 1, ["control character"], id="ts-nul"),
    # quantities: beyond int64, non-finite, blank
    pytest.param(H + OK + "u1,i2,2021-01-01,1e30,1\n", "quantity", 1, ["1e30", "out of range"], id="qty-1e30"),
    pytest.param(H + OK + f"u1,i2,2021-01-01,{2**70},1\n", "quantity", 1, ["out of range"], id="qty-2**70"),
    pytest.param(H + OK + "u1,i2,2021-01-01,inf,1\n", "quantity", 1, ["finite"], id="qty-inf"),
    pytest.param(H + OK + "u1,i2,2021-01-01,,1\n", "quantity", 1, ["quantity is missing"], id="qty-empty"),
    pytest.param(H + OK + "u1,i2,2021-01-01,  ,1\n", "quantity", 1, ["quantity is missing"], id="qty-whitespace"),
    pytest.param(H + OK + "u1,i2,2021-01-01,true,1\n", "quantity", 1, ["expected a number", "'true'"], id="qty-bool"),
    # prices: nan, infinities, absurd size
    pytest.param(H + OK + "u1,i2,2021-01-01,1,nan\n", "price", 1, ["expected a number", "'nan'"], id="price-nan"),
    pytest.param(H + OK + "u1,i2,2021-01-01,1,inf\n", "price", 1, ["finite"], id="price-inf"),
    pytest.param(H + OK + "u1,i2,2021-01-01,1,-inf\n", "price", 1, ["finite"], id="price-minus-inf"),
    pytest.param(H + OK + "u1,i2,2021-01-01,1,1e300\n", "price", 1, ["out of range"], id="price-1e300"),
    # control characters in ids and titles
    pytest.param(H + OK + "u1,i\x002,2021-01-01,1,1\n", "item_id", 1, ["control character"], id="id-nul"),
    pytest.param(H + OK + "u1\x1b[31m,i2,2021-01-01,1,1\n", "user_id", 1, ["control character"], id="id-escape"),
    pytest.param(H + OK + 'u1,"i\n2",2021-01-01,1,1\n', "item_id", 1, ["line break"], id="id-quoted-newline"),
    pytest.param(H + OK + "u1,i\u200b2,2021-01-01,1,1\n", "item_id", 1, ["invisible"], id="id-zero-width-space"),
    pytest.param(H + OK + "u\u202e1,i2,2021-01-01,1,1\n", "user_id", 1, ["invisible"], id="id-bidi-override"),
    pytest.param(
        "user_id,item_id,timestamp,title\nu1,i1,2021-01-01,Mug \u202egnp.exe\n",
        "title",
        0,
        ["control character"],
        id="title-bidi-override",
    ),
    pytest.param(
        "user_id,item_id,timestamp,title\nu1,i1,2021-01-01,Mug\x1b[0m\n",
        "title",
        0,
        ["control character"],
        id="title-escape",
    ),
    # rows whose number of fields differs from the header
    pytest.param(H + OK + "u1,i2,2021-01-01,1,1,EXTRA\n", None, 1, ["6 fields", "header has 5"], id="row-too-long"),
    pytest.param(H + OK + "u1,i2,2021-01-01\n", None, 1, ["3 fields", "header has 5"], id="row-too-short"),
    pytest.param(
        "user_id,item_id,timestamp\nu1,i1,2021-01-01,x\nu2,i2,2021-01-02,y\n",
        None,
        0,
        ["4 fields"],
        id="every-row-one-field-longer",
    ),
    pytest.param(H + OK + "u1,i\r2,2021-01-01,1,1\n", None, 1, ["2 fields"], id="bare-carriage-return-in-id"),
    pytest.param(
        H + 'u1,"i1,2021-01-01,1,1\nu2,i2,2021-01-01,1,1\n', None, 0, ["2 fields", "quote"], id="unclosed-quote"
    ),
    # headers
    pytest.param(
        "user_id,item_id,timestamp,user_id\nu1,i1,2021-01-01,u2\n",
        "user_id",
        None,
        ["more than once"],
        id="header-duplicate",
    ),
    pytest.param(
        "user_id, item_id ,timestamp,item_id\nu1,i1,2021-01-01,i2\n",
        "item_id",
        None,
        ["more than once"],
        id="header-duplicate-after-strip",
    ),
    pytest.param(
        "user_id,,item_id,timestamp\nu1,x,i1,2021-01-01\n",
        None,
        None,
        ["column 2 of 4 has no name"],
        id="header-empty-name",
    ),
    pytest.param(
        "user_id,item_id,timestamp,price,Price\nu1,i1,2021-01-01,1,2\n",
        "Price",
        None,
        ["both mean"],
        id="header-two-aliases",
    ),
    pytest.param(
        "user_id;item_id;timestamp\nu1;i1;2021-01-01\n", "user_id", None, ["comma-separated"], id="header-semicolons"
    ),
    pytest.param(H, None, None, ["no rows"], id="header-only"),
]


@pytest.mark.parametrize("text,column,row,words", CSV_REFUSED)
def test_hostile_csv_is_refused_naming_file_column_and_row(tmp_path, text, column, row, words):
    path = tmp_path / "events.csv"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputDataError) as err:
        read_events(path)
    _assert_refused(err.value, path, column, row, words)


def _frame(**cols) -> pa.Table:
    base = {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "timestamp": ["2021-01-01", "2021-01-02"]}
    return pa.table({**base, **cols})


PARQUET_REFUSED = [
    pytest.param(lambda: _frame(item_id=[85048.0, 1.5]), "item_id", 1, ["integer id", "1.5"], id="id-float-fraction"),
    pytest.param(lambda: _frame(user_id=[13085.0, np.inf]), "user_id", 1, ["integer id"], id="id-float-inf"),
    pytest.param(lambda: _frame(user_id=[13085.0, 1e20]), "user_id", 1, ["too large"], id="id-float-1e20"),
    pytest.param(lambda: _frame(user_id=[True, False]), "user_id", 0, ["boolean"], id="id-bool"),
    pytest.param(lambda: _frame(item_id=[["a"], ["b", "c"]]), "item_id", 0, ["nested"], id="id-list"),
    pytest.param(lambda: _frame(user_id=[{"id": 1}, {"id": 2}]), "user_id", 0, ["nested"], id="id-struct"),
    pytest.param(lambda: _frame(quantity=[1, 2**62]), "quantity", 1, ["out of range"], id="qty-int-huge"),
    pytest.param(
        lambda: _frame(quantity=pa.array([1, 2**64 - 1], pa.uint64())),
        "quantity",
        1,
        ["out of range"],
        id="qty-uint64-max",
    ),
    pytest.param(lambda: _frame(quantity=[1.0, None]), "quantity", 1, ["quantity is missing"], id="qty-null"),
    pytest.param(lambda: _frame(quantity=[2.0, float("nan")]), "quantity", 1, ["quantity is missing"], id="qty-nan"),
    pytest.param(lambda: _frame(quantity=[True, True]), "quantity", 0, ["boolean"], id="qty-bool"),
    pytest.param(
        lambda: _frame(quantity=pa.array([0, 86_400_000_000], pa.timestamp("us"))),
        "quantity",
        0,
        ["a date"],
        id="qty-datetime",
    ),
    pytest.param(lambda: _frame(quantity=[[1], [2]]), "quantity", 0, ["nested"], id="qty-list"),
    pytest.param(lambda: _frame(price=[1.0, np.inf]), "price", 1, ["finite"], id="price-inf"),
    pytest.param(lambda: _frame(price=[1.0, float("nan")]), "price", 1, ["NaN"], id="price-nan"),
    pytest.param(lambda: _frame(price=[False, True]), "price", 0, ["boolean"], id="price-bool"),
    pytest.param(lambda: _frame(timestamp=[1.6e9, np.inf]), "timestamp", 1, ["not a finite number"], id="ts-float-inf"),
    pytest.param(lambda: _frame(timestamp=[1.6e9, 1e20]), "timestamp", 1, ["plausible range"], id="ts-float-1e20"),
    pytest.param(
        lambda: _frame(timestamp=[1609459200, 1609459200000]), "timestamp", 1, ["milliseconds"], id="ts-int-epoch-ms"
    ),
    pytest.param(lambda: _frame(timestamp=[True, False]), "timestamp", 0, ["boolean"], id="ts-bool"),
    pytest.param(
        lambda: _frame(timestamp=pa.array([0, 253402214400000], pa.timestamp("ms"))),
        "timestamp",
        1,
        ["plausible range"],
        id="ts-datetime-year-9999",
    ),
    pytest.param(
        lambda: _frame(timestamp=pa.array([1609459200, 5680281600], pa.timestamp("s", tz="Europe/Paris"))),
        "timestamp",
        1,
        ["plausible range"],
        id="ts-datetime-tz-year-2150",
    ),
    pytest.param(
        lambda: _frame(timestamp=pa.array([1609459200, None], pa.timestamp("s"))),
        "timestamp",
        1,
        ["missing"],
        id="ts-datetime-null",
    ),
    pytest.param(
        lambda: _frame(timestamp=pa.array([1, 2], pa.duration("s"))), "timestamp", 0, ["duration"], id="ts-duration"
    ),
    pytest.param(lambda: _frame(timestamp=[[1], [2]]), "timestamp", 0, ["nested"], id="ts-list"),
    pytest.param(
        lambda: _frame(timestamp=["2021-01-01", "9999-12-31"]),
        "timestamp",
        1,
        ["plausible range"],
        id="ts-string-year-9999",
    ),
    pytest.param(
        lambda: pa.Table.from_arrays(
            [pa.array(["u1"]), pa.array(["i1"]), pa.array([1]), pa.array(["i2"])],
            names=["user_id", "item_id", "timestamp", "item_id"],
        ),
        "item_id",
        None,
        ["more than once"],
        id="header-duplicate",
    ),
]


@pytest.mark.parametrize("make,column,row,words", PARQUET_REFUSED)
def test_hostile_parquet_is_refused_naming_file_column_and_row(tmp_path, make, column, row, words):
    path = tmp_path / "events.parquet"
    pq.write_table(make(), path)
    with pytest.raises(InputDataError) as err:
        read_events(path)
    _assert_refused(err.value, path, column, row, words)


def _write(tmp_path, data, name):
    path = tmp_path / name
    if isinstance(data, str):
        path.write_bytes(data.encode("utf-8"))
    else:
        pq.write_table(data, path)
    return path


QUARANTINED = [
    pytest.param(H + OK + "   ,i2,2021-01-02,1,1\n", "events.csv", "guest_checkout", id="user-whitespace"),
    pytest.param(H + OK + ",i2,2021-01-02,1,1\n", "events.csv", "guest_checkout", id="user-empty"),
    pytest.param(H + OK + "u1,  ,2021-01-02,1,1\n", "events.csv", "missing_item", id="item-whitespace"),
    pytest.param(H + OK + "NULL,i2,2021-01-02,1,1\n", "events.csv", "guest_checkout", id="user-NULL-word"),
    pytest.param(H + OK + "u1,N/A,2021-01-02,1,1\n", "events.csv", "missing_item", id="item-NA-word"),
    pytest.param(_frame(user_id=[13085.0, np.nan]), "events.parquet", "guest_checkout", id="user-float-nan"),
    pytest.param(_frame(item_id=[85048.0, None]), "events.parquet", "missing_item", id="item-float-null"),
    pytest.param(H + OK + "u1,i2,2021-01-02,1,-0\n", "events.csv", "non_positive_price", id="price-minus-zero"),
    pytest.param(H + OK + "u1,i2,2021-01-02,1000000000000,1\n", "events.csv", "extreme_quantity", id="qty-1e12"),
    pytest.param(
        EV + "u1,i1,2021-01-01,purchase\nu1,i2,2021-01-02,\n", "events.csv", "unknown_event_type", id="event-type-empty"
    ),
    pytest.param(
        EV + "u1,i1,2021-01-01,purchase\nu1,i2,2021-01-02,   \n",
        "events.csv",
        "unknown_event_type",
        id="event-type-whitespace",
    ),
]


@pytest.mark.parametrize("data,name,reason", QUARANTINED)
def test_hostile_row_is_quarantined_with_its_reason_and_nothing_null_is_kept(tmp_path, data, name, reason):
    raw = read_events(_write(tmp_path, data, name))
    result = cleaning.clean(raw, CleaningSettings())
    assert result.quarantined[C.SOURCE_ROW].tolist() == [1]
    assert result.quarantined[C.REASON].tolist() == [reason]
    assert result.kept[C.SOURCE_ROW].tolist() == [0]
    assert result.kept[[C.USER, C.ITEM, C.TIMESTAMP, C.QUANTITY]].notna().all().all()


def test_tolerated_header_quirks_and_line_breaks_in_titles_read_as_intended(tmp_path):
    text = '\ufeff user_id ,item_id,timestamp,title\r\n\r\nu1,i1,2021-01-01T10:00:00+02:00,"Blue\r\nmug"\r\n'
    df = read_events(_write(tmp_path, text, "events.csv"))
    assert df[[C.USER, C.ITEM, C.TITLE]].values.tolist() == [["u1", "i1", "Blue mug"]]
    assert df.loc[0, C.TIMESTAMP] == pd.Timestamp("2021-01-01 08:00:00")


CATALOG_REFUSED = [
    pytest.param("item_id,title\ni1,Mug\n i1 ,Cup\n", "item_id", 1, ["'i1'", "more than once"], id="dup-after-strip"),
    pytest.param("item_id,title\ni1,Mug\ni2,Cup\x00\n", "title", 1, ["control character"], id="title-nul"),
    pytest.param(
        "item_id,title,category\ni1,Mug,kit\x1bchen\n", "category", 0, ["control character"], id="category-escape"
    ),
    pytest.param('item_id,title\ni1,Mug\n"i\n2",Cup\n', "item_id", 1, ["line break"], id="id-newline"),
    pytest.param("item_id,title\ni1,Mug\ni2,   \n", "title", 1, ["missing"], id="title-whitespace"),
    pytest.param("item_id,title\ni1,Mug\n   ,Cup\n", "item_id", 1, ["missing"], id="id-whitespace"),
    pytest.param("item_id,title,price\ni1,Mug,2.5\ni2,Cup,inf\n", "price", 1, ["finite"], id="price-inf"),
]


@pytest.mark.parametrize("text,column,row,words", CATALOG_REFUSED)
def test_hostile_catalog_is_refused_naming_file_column_and_row(tmp_path, text, column, row, words):
    path = _write(tmp_path, text, "catalog.csv")
    with pytest.raises(InputDataError) as err:
        read_catalog(path)
    _assert_refused(err.value, path, column, row, words)


def test_cli_refuses_an_implausible_timestamp_with_exit_2_and_writes_nothing(tmp_path, capsys):
    bad = _write(tmp_path, H + "u1,i1,1609459200,1,1\nu1,i2,1e20,1,1\n", "bad.csv")  # was kept with a null date
    out = tmp_path / "out"
    assert main(["data", "prepare", "--events", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "column 'timestamp'" in err and "data row 2" in err
    assert not out.exists()


def test_generic_user_zero_is_a_customer_but_online_retail_zero_is_a_guest(tmp_path):
    generic = read_events(_write(tmp_path, "user_id,item_id,timestamp\n0,i1,2021-01-01\n7,i2,2021-01-02\n", "e.csv"))
    assert generic[C.USER].tolist() == ["0", "7"]
    assert cleaning.clean(generic, CleaningSettings()).quarantined.empty

    ii = pd.DataFrame(
        {
            "Invoice": ["489434"],
            "StockCode": ["85048"],
            "Description": ["LIGHTS"],
            "Quantity": [12],
            "InvoiceDate": ["2009-12-01 07:45:00"],
            "Price": [6.95],
            "Customer ID": [0.0],
            "Country": ["United Kingdom"],
        }
    )
    v1 = pd.DataFrame(
        {
            "InvoiceNo": [536414, 536520],
            "StockCode": ["22139", "20707"],
            "Description": ["BOX", "HEART"],
            "Quantity": [56, 1],
            "InvoiceDate": ["2010-12-01 11:52:00", "2010-12-01 12:43:00"],
            "UnitPrice": [1.0, 1.25],
            "CustomerID": [0.0, 14729.0],
            "Country": ["United Kingdom"] * 2,
        }
    )
    ii.to_parquet(tmp_path / ONLINE_RETAIL_FILES[0], index=False)
    v1.to_parquet(tmp_path / ONLINE_RETAIL_FILES[1], index=False)
    raw = read_online_retail(tmp_path)
    assert raw[C.USER].isna().tolist() == [True, True, False] and raw[C.USER].iloc[2] == "14729"
    result = cleaning.clean(raw, CleaningSettings(), ONLINE_RETAIL)
    assert result.quarantined[C.REASON].tolist() == ["guest_checkout", "guest_checkout"]
    assert result.kept[C.USER].tolist() == ["14729"]


def test_item_missing_from_the_catalog_names_the_events_file_it_came_from(tmp_path):
    from ml.data.catalog import check_events_against_catalog

    a = _write(tmp_path, "user_id,item_id,timestamp\nu1,i1,2021-01-01\n", "a.csv")
    b = _write(tmp_path, "user_id,item_id,timestamp\nu1,i1,2021-01-01\nu2,i9,2021-01-02\n", "b.csv")
    catalog = _write(tmp_path, "item_id,title\ni1,Mug\n", "catalog.csv")
    raw = pd.concat([read_events(a), read_events(b)], ignore_index=True)
    with pytest.raises(InputDataError) as err:
        check_events_against_catalog(raw, read_catalog(catalog), (a, b), catalog)
    _assert_refused(err.value, b, "item_id", 1, ["'i9'"])


def test_online_retail_markings_are_ordinary_values_in_a_shops_own_file(tmp_path):
    """Order C..., order A... and item codes like M or POST mean something only in the Online Retail export."""
    text = (
        "user_id,item_id,timestamp,order_id\n7,M,2021-01-01,C1001\n7,POST,2021-01-02,A17\n8,gift_0001_10,2021-01-03,9\n"
    )
    raw = read_events(_write(tmp_path, text, "shop.csv"))
    assert cleaning.clean(raw, CleaningSettings()).quarantined.empty
    as_online_retail = cleaning.clean(raw, CleaningSettings(), ONLINE_RETAIL).quarantined[C.REASON].tolist()
    assert as_online_retail == ["cancelled_invoice", "accounting_adjustment", "non_product_code"]
    own = CleaningSettings(non_product_codes=["post"], non_product_pattern=r"gift_\d+_\d+")
    assert cleaning.clean(raw, own).quarantined[C.REASON].tolist() == ["non_product_code", "non_product_code"]
