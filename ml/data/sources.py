"""Readers that turn shop exports into one normalized raw frame, with clear errors for bad input.

The normalized raw frame has one row per input row and the columns ``RAW_COLUMNS``; nothing is
dropped here (cleaning decides what is kept). Schema drift between exports is handled by column
aliases: the two Online Retail files name the same fields differently and encode guests as null
in one and as ``0`` in the other (a convention only ``read_online_retail`` applies).

A value that cannot be read is refused with an ``InputDataError`` naming the file, the column (as the
file spells it) and the 0-based data row; it never becomes a null. Only an absent value is null: a blank
or null id (cleaning quarantines the row: ``guest_checkout`` / ``missing_item``) or a blank price (a
missing price); a blank timestamp or quantity is refused. Plausible ranges: timestamps in 1970-01-01 ..
2100-12-31 (ISO strings, datetimes and epoch seconds alike), quantities below 2**53 and unit prices
below 10**12 in magnitude.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml import columns as C
from ml.errors import InputDataError

COUNTRY = "country"
RAW_COLUMNS = [
    C.SOURCE,
    C.SOURCE_ROW,
    C.ORDER,
    C.USER,
    C.ITEM,
    C.TITLE,
    C.QUANTITY,
    C.PRICE,
    C.TIMESTAMP,
    COUNTRY,
    C.EVENT_TYPE,
]

ONLINE_RETAIL_FILES = ("online_retail_ii_2009_2010.parquet", "online_retail_2010_2011.parquet")


@dataclass(frozen=True)
class SourceConventions:
    """How one kind of export marks rows that are no customer's purchase of a product.

    The cleaning rules read these; a generic shop file has none (its customer ``0``, order ``C1001``
    or item ``M`` are ordinary values), the bundled Online Retail export has all of them.
    """

    guest_ids: tuple[str, ...] = ()  # user ids written for a guest checkout (read as no user)
    cancelled_order_prefix: str | None = None  # order ids of cancellations start with this
    adjustment_order_prefix: str | None = None  # order ids of accounting adjustments start with this
    non_product_codes: tuple[str, ...] = ()  # item codes that are no product (postage, fees, ...)
    non_product_pattern: str | None = None  # a regular expression matched against the whole item code


GENERIC = SourceConventions()
ONLINE_RETAIL = SourceConventions(
    guest_ids=("0",),  # the 2010-2011 export writes guest checkouts as customer 0
    cancelled_order_prefix="C",
    adjustment_order_prefix="A",  # "Adjust bad debt"
    # postage, fees, manual lines, samples, tests, vouchers
    non_product_codes=(
        "POST",
        "DOT",
        "M",
        "C2",
        "C3",
        "D",
        "S",
        "B",
        "BANK CHARGES",
        "ADJUST",
        "ADJUST2",
        "PADS",
        "AMAZONFEE",
        "CRUK",
        "TEST001",
        "TEST002",
        "GIFT",
    ),  # fmt: skip
    non_product_pattern=r"gift_\d+_\d+",
)

# canonical column -> the names it goes by in shop exports (a file may use only one of them)
ALIASES: dict[str, tuple[str, ...]] = {
    C.ORDER: ("order_id", "Invoice", "InvoiceNo"),
    C.USER: ("user_id", "Customer ID", "CustomerID"),
    C.ITEM: ("item_id", "StockCode"),
    C.TITLE: ("title", "Description"),
    C.QUANTITY: ("quantity", "Quantity"),
    C.PRICE: ("price", "Price", "UnitPrice"),
    C.TIMESTAMP: ("timestamp", "InvoiceDate"),
    COUNTRY: ("country", "Country"),
    C.EVENT_TYPE: ("event_type",),
}
REQUIRED = (C.USER, C.ITEM, C.TIMESTAMP)
# placeholders exports write instead of leaving a title empty
NULL_TITLES = ("", "?", "Missing_Description", "nan")
# spellings of "no id" left by conversions (blank, pandas' nan, Python's None)
NULL_IDS = ("", "nan", "None")
# what exports and databases write for "no value"; matched case-insensitively, an id that says so is missing
NULL_WORDS = ("nan", "none", "null", "nil", "n/a", "na", "undefined")
CATALOG_REQUIRED = (C.ITEM, C.TITLE)
NAN_ROWS = "nan_rows"  # DataFrame.attrs key: Parquet float column -> first row holding NaN (pandas reads it as null)

MIN_TIMESTAMP = pd.Timestamp("1970-01-01")
MAX_TIMESTAMP = pd.Timestamp("2101-01-01")  # exclusive: the last plausible instant is in 2100
MIN_EPOCH_S = 0
MAX_EPOCH_S = int((MAX_TIMESTAMP - MIN_TIMESTAMP).total_seconds())
MAX_QUANTITY = 2**53  # exclusive; integers stay exact in float64 and int64 below it
MAX_PRICE = 1e12  # exclusive; no unit price reaches a trillion

# control characters, line breaks, zero-width and bidirectional formatting characters: never in an id
_ID_CONTROL = r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
_TEXT_BREAKS = r"[\t\n\r\u2028\u2029]+"  # tabs and line breaks in free text: read as a space
# other control characters and bidirectional overrides (they reorder what a reader sees): refused
_TEXT_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"


def _check_header(names: list, path: Path) -> list[str]:
    """Header names stripped of surrounding whitespace; refuse empty, control-character or repeated names."""
    out = [str(n).strip() for n in names]
    for i, name in enumerate(out):
        if not name:
            raise InputDataError(path, f"header: column {i + 1} of {len(out)} has no name")
        if re.search(_ID_CONTROL, name):
            raise InputDataError(path, "header: column name contains a control character", column=repr(name)[1:-1])
        if name in out[:i]:
            where = f"columns {out.index(name) + 1} and {i + 1}"
            raise InputDataError(path, f"header: column appears more than once ({where})", column=name)
    return out


def _csv_header(text: str, path: Path) -> list[str]:
    """Check the CSV's shape (one header, the same number of fields on every row) and return the header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = None
    row = -1
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank lines carry no data (pandas skips them too)
            if header is None:
                header = _check_header(record, path)
                continue
            row += 1
            if len(record) != len(header):
                raise InputDataError(
                    path,
                    f"row has {len(record)} fields but the header has {len(header)} (line {reader.line_num}; "
                    "a stray quote, an unquoted comma or a missing value?)",
                    row=row,
                )
    except csv.Error as exc:
        raise InputDataError(path, f"malformed CSV near line {reader.line_num} ({exc})", row=row + 1) from exc
    if header is None:
        raise InputDataError(path, "file has no header")
    return header


def _parquet_nans(path: Path) -> dict[str, int]:
    """Float columns of a Parquet file holding NaN (a value, unlike null), with the first such row."""
    floats = [f.name for f in pq.read_schema(path) if pa.types.is_floating(f.type)]
    out = {}
    if floats:
        table = pq.read_table(path, columns=floats)
        for name in floats:
            nan = pc.fill_null(pc.is_nan(table[name]), False).to_numpy(zero_copy_only=False)
            if nan.any():
                out[name.strip()] = _first_bad(nan)
    return out


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, refusing empty, non-UTF-8, malformed and badly-headed files.

    Header names are stripped of surrounding whitespace (and a CSV's UTF-8 byte-order mark); an empty or
    repeated name, or a CSV row with a different number of fields than the header, is refused.

    Args:
        path: a ``.csv`` or ``.parquet`` file.
    Returns:
        The file's rows as a DataFrame (CSV columns as strings).
    Raises:
        InputDataError: missing, empty, undecodable, malformed or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputDataError(path, "file is empty")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputDataError(path, f"not a readable Parquet file ({exc})") from exc
        _check_header(names, path)  # before pandas trips over a repeated name
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise InputDataError(path, f"not a readable Parquet file ({exc})") from exc
        if any(n is not None for n in df.index.names):  # a frame saved with a named index: the index is data
            df = df.reset_index()
        df.columns = _check_header(list(df.columns), path)
        df.attrs[NAN_ROWS] = _parquet_nans(path)
    elif suffix == ".csv":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n")  # 0 = header line
            raise InputDataError(path, f"not valid UTF-8 (byte {exc.start}, line {line + 1})", row=line - 1) from exc
        text = text.removeprefix("\ufeff")
        header = _csv_header(text, path)
        try:
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], index_col=False)
        except pd.errors.ParserError as exc:
            raise InputDataError(path, f"malformed CSV ({exc})") from exc
        except pd.errors.EmptyDataError as exc:
            raise InputDataError(path, "file has no header") from exc
        df.columns = header
    else:
        raise InputDataError(path, f"unsupported file type {suffix!r} (use .csv or .parquet)")
    if df.empty:
        raise InputDataError(path, "file has a header but no rows")
    return df


def _rename(df: pd.DataFrame, path: Path, required: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Map export column names onto canonical names.

    Returns:
        The renamed frame, and canonical name -> the file's own name (for error messages).
    Raises:
        InputDataError: a required column is missing, or two columns of the file mean the same field.
    """
    names: dict[str, str] = {}
    for canonical, aliases in ALIASES.items():
        found = [n for n in aliases if n in df.columns]
        if len(found) > 1:
            raise InputDataError(
                path, f"columns {' and '.join(map(repr, found))} both mean {canonical!r}; keep one", column=found[1]
            )
        if found:
            names[canonical] = found[0]
    out = df.rename(columns={v: k for k, v in names.items()})
    for col in required:
        if col not in out.columns:
            have = ", ".join(map(repr, map(str, df.columns)))
            hint = ""
            if len(df.columns) == 1 and any(sep in str(df.columns[0]) for sep in ";\t|"):
                hint = "; the file does not look comma-separated"
            raise InputDataError(path, f"required column missing (have: {have}{hint})", column=col)
    return out, names


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _show(value: object) -> str:
    """A value for an error message: its repr, shortened."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


Check = tuple[np.ndarray, Callable[[object], str]]  # rows to refuse, and the message for a refused value


def _refuse_first(path: Path, column: str, series: pd.Series, checks: list[Check]) -> None:
    """Raise for the earliest row any check flags, with that check's message for the row's value."""
    hits = [(int(np.flatnonzero(mask)[0]), i) for i, (mask, _) in enumerate(checks) if mask.any()]
    if hits:
        row, i = min(hits)
        raise InputDataError(path, checks[i][1](series.iloc[row]), column=column, row=row)


def _kind(value: object, dates: bool) -> str:
    """'ok', 'bytes' or a description of why a single value of an object column is refused."""
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (str, int, float, Decimal, np.integer, np.floating)):
        return "ok"
    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    if isinstance(value, (dt.date, dt.datetime, np.datetime64)):
        return "ok" if dates else "a date"
    if isinstance(value, (list, tuple, dict, set, np.ndarray)):
        return "a nested (list/struct) value"
    return f"a {type(value).__name__}"


def _plain(series: pd.Series, path: Path, column: str, expected: str, dates: bool = False) -> pd.Series:
    """The column as scalars (categories undone, UTF-8 bytes decoded), refusing booleans, nested values,
    durations and (unless ``dates``) datetimes where ``expected`` is wanted."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = pd.Series(np.asarray(series, dtype=object), index=series.index)
    dtype = series.dtype
    whole = None
    if pd.api.types.is_bool_dtype(dtype):
        whole = "a boolean"
    elif pd.api.types.is_timedelta64_dtype(dtype):
        whole = "a duration"
    elif pd.api.types.is_datetime64_any_dtype(dtype) and not dates:
        whole = "a date"
    if whole is not None:
        row = _first_bad(series.notna().to_numpy()) if series.notna().any() else 0
        raise InputDataError(path, f"expected {expected}, got {whole} ({_show(series.iloc[row])})", column, row)
    if pd.api.types.is_object_dtype(dtype):
        kinds = series.map(lambda v: _kind(v, dates), na_action="ignore")
        bad = (kinds.notna() & ~kinds.isin(["ok", "bytes"])).to_numpy()
        if bad.any():
            row = _first_bad(bad)
            raise InputDataError(
                path, f"expected {expected}, got {kinds.iloc[row]} ({_show(series.iloc[row])})", column=column, row=row
            )
        is_bytes = (kinds == "bytes").to_numpy()
        if is_bytes.any():
            series = series.copy()
            for row in np.flatnonzero(is_bytes):
                try:
                    series.iloc[row] = bytes(series.iloc[row]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputDataError(path, "binary value is not UTF-8 text", column=column, row=int(row)) from exc
    return series


def _strings(series: pd.Series, path: Path, column: str) -> tuple[pd.Series, np.ndarray]:
    """Values as stripped strings, and which are missing (null or blank); control characters are refused."""
    text = series.astype("string").str.strip()
    _refuse_first(path, column, text, [(_matches(text, _ID_CONTROL), lambda x: f"{_show(x)} has a control character")])
    return text, (text.isna() | (text == "")).to_numpy(bool)


def _matches(text: pd.Series, pattern: str) -> np.ndarray:
    """Which values of a string Series contain ``pattern`` (searched once per distinct value)."""
    regex = re.compile(pattern)
    hits = [v for v in text.dropna().unique() if regex.search(v)]
    return text.isin(hits).to_numpy(bool) if hits else np.zeros(len(text), dtype=bool)


def _ids(series: pd.Series, path: Path, column: str, nulls: tuple[str, ...] = NULL_IDS) -> pd.Series:
    """Identifiers as stripped strings; integral floats like 13085.0 become '13085'; ``nulls`` become null.

    Raises:
        InputDataError: a fractional, non-finite or too large float, a boolean, date or nested value,
            or an id with a control character or line break in it.
    """
    series = _plain(series, path, column, "an id (text or integer)")
    if pd.api.types.is_float_dtype(series.dtype):
        v = series.to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            _refuse_first(
                path,
                column,
                series,
                [
                    (np.isinf(v), lambda x: f"expected an integer id, got {_show(x)}"),
                    (np.isfinite(v) & (v % 1 != 0), lambda x: f"expected an integer id, got {_show(x)}"),
                    (np.isfinite(v) & (np.abs(v) >= MAX_QUANTITY), lambda x: f"id {_show(x)} is too large to be exact"),
                ],
            )
        out = series.astype("Int64").astype("string")
    else:
        out = series.astype("string").str.strip()
    ctrl = _matches(out, _ID_CONTROL)
    _refuse_first(
        path,
        column,
        out,
        [(ctrl, lambda x: f"id {_show(x)} contains a control character, line break or invisible character")],
    )
    return out.mask(out.isin(list(nulls)) | out.str.lower().isin(NULL_WORDS))


def _text(series: pd.Series, path: Path, column: str, nulls: tuple[str, ...] = ("",)) -> pd.Series:
    """Free text (titles, countries, categories) stripped; tabs and line breaks read as spaces.

    Raises:
        InputDataError: a nested value, or a control character other than a tab or line break.
    """
    series = _plain(series, path, column, "text", dates=True)
    out = series.astype("string")
    if _matches(out, _TEXT_BREAKS).any():
        out = out.str.replace(_TEXT_BREAKS, " ", regex=True)
    out = out.str.strip()
    ctrl = _matches(out, _TEXT_CONTROL)
    _refuse_first(path, column, out, [(ctrl, lambda x: f"text {_show(x)} contains a control character")])
    return out.mask(out.isin(list(nulls)))


def _numbers(
    series: pd.Series, path: Path, column: str, integer: bool, required: bool = False, nan_row: int | None = None
) -> pd.Series:
    """Quantities (``integer``) or prices: finite numbers below ``MAX_QUANTITY`` / ``MAX_PRICE`` in magnitude.

    A blank or null value is missing: refused when ``required``, else null. ``nan_row`` is the first row
    of a Parquet column holding NaN (which pandas reads as null): refused like a CSV's ``nan``.

    Raises:
        InputDataError: naming the first row that is not a number, not finite, fractional (``integer``),
            out of range, or missing while ``required``.
    """
    series = _plain(series, path, column, "a number")
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(np.float64, na_value=np.nan)
        missing = np.isnan(values) & series.isna().to_numpy()
    else:
        text, missing = _strings(series, path, column)
        values = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    limit, limit_text = (MAX_QUANTITY, "2**53") if integer else (MAX_PRICE, "10**12")
    finite = np.isfinite(values)
    none = np.zeros(len(values), bool)
    nan_value = none.copy()
    if nan_row is not None:
        nan_value[nan_row] = True
    with np.errstate(invalid="ignore"):
        fraction = finite & (values % 1 != 0) if integer else none
        _refuse_first(
            path,
            column,
            series,
            [
                (nan_value, lambda x: "expected a number, got NaN (not a number)"),
                (np.isnan(values) & ~missing, lambda x: f"expected a number, got {_show(x)}"),
                (np.isinf(values), lambda x: f"expected a finite number, got {_show(x)}"),
                (fraction, lambda x: f"expected an integer, got {_show(x)}"),
                (
                    finite & (np.abs(values) >= limit),
                    lambda x: f"{_show(x)} is out of range (must be below {limit_text} in size)",
                ),
                (missing if required else none, lambda x: f"{column} is missing"),
            ],
        )
    out = pd.Series(values, index=series.index)
    return out.astype("Int64") if integer else out


def _epoch_seconds(values: np.ndarray, series: pd.Series, path: Path, column: str) -> pd.Series:
    """Epoch seconds (finite, in the plausible range) as timestamps."""

    def out_of_range(x) -> str:
        msg = f"timestamp {_show(x)} (seconds since 1970) is outside the plausible range 1970-01-01 .. 2100-12-31"
        if MAX_EPOCH_S <= float(x) < MAX_EPOCH_S * 1e6:
            msg += " (milliseconds or microseconds? convert to seconds)"
        return msg

    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        _refuse_first(
            path,
            column,
            series,
            [
                (~finite, lambda x: f"timestamp {_show(x)} is not a finite number"),
                (finite & ((values < MIN_EPOCH_S) | (values >= MAX_EPOCH_S)), out_of_range),
            ],
        )
    if (values % 1 == 0).all():
        return pd.Series(pd.to_datetime(values.astype(np.int64), unit="s"), index=series.index)
    return pd.Series(pd.to_datetime(values, unit="s"), index=series.index)


def parse_timestamps(series: pd.Series, path: Path, column: str = C.TIMESTAMP) -> pd.Series:
    """Parse timestamps (ISO strings, datetimes, or numbers: epoch seconds/orders) to naive UTC ns.

    Numbers are read as seconds since the epoch, so a plain order 1, 2, 3 keeps its order. Strings
    must carry a 4-digit year (so 'now', 'today' or '12:30' are refused, never read as the run's date);
    offsets are converted to UTC. Every timestamp must lie in 1970-01-01 .. 2100-12-31.

    Raises:
        InputDataError: naming the first row that is missing, unparseable, has a control character or is
            outside that range.
    """
    series = _plain(series, path, column, "a timestamp", dates=True)
    is_dates = pd.api.types.is_datetime64_any_dtype(series.dtype)
    is_numbers = pd.api.types.is_numeric_dtype(series.dtype)
    if is_dates or is_numbers:
        missing = series.isna().to_numpy()
    else:
        text, missing = _strings(series, path, column)
    if missing.any():
        raise InputDataError(path, "timestamp is missing", column=column, row=_first_bad(missing))
    if is_dates:
        ts = series
    elif is_numbers:
        ts = _epoch_seconds(series.to_numpy(np.float64), series, path, column)
    else:
        numeric = pd.to_numeric(text.iloc[:1], errors="coerce")  # a first value that is no number: skip the rest
        if numeric.notna().all():
            numeric = pd.to_numeric(text, errors="coerce")
        if len(numeric) == len(text) and numeric.notna().all():
            ts = _epoch_seconds(numeric.to_numpy(np.float64), series, path, column)
        else:
            no_year = ~text.str.contains(r"\d{4}", regex=True).to_numpy(bool)
            ts = pd.to_datetime(text.mask(no_year), errors="coerce", format="mixed", utc=True)
            bad = ts.isna().to_numpy()
            if bad.any():
                row = _first_bad(bad)
                raise InputDataError(
                    path,
                    f"unparseable timestamp {_show(series.iloc[row])} (expected a date with a "
                    "4-digit year, e.g. 2021-03-01T10:00:00)",
                    column=column,
                    row=row,
                )
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    outside = ((ts < MIN_TIMESTAMP) | (ts >= MAX_TIMESTAMP)).to_numpy(bool)
    _refuse_first(
        path,
        column,
        series,
        [
            (outside, lambda x: f"timestamp {_show(x)} is outside the plausible range 1970-01-01 .. 2100-12-31"),
        ],
    )
    return ts.astype("datetime64[ns]")


def normalize_events(df: pd.DataFrame, path: Path, source: str, guest_ids: tuple[str, ...] = ()) -> pd.DataFrame:
    """Turn one export (any supported schema) into the normalized raw frame.

    Args:
        df: rows as read.
        path: the file (for error messages).
        source: name recorded in the ``source`` column.
        guest_ids: user ids that the source writes for a guest checkout (read as no user); none by
            default, so a generic file's user ``0`` is a real customer.
    Returns:
        DataFrame with ``RAW_COLUMNS``, one row per input row, ``source_row`` = input row number.
        A blank ``event_type`` (where the column exists) is kept as ``""``, which cleaning quarantines.
    Raises:
        InputDataError: missing or ambiguous column, wrong type, value out of range, control character
            in an id, missing or unparseable timestamp, missing quantity.
    """
    nan_rows = df.attrs.get(NAN_ROWS, {})
    df, names = _rename(df, path, REQUIRED)
    n = len(df)
    df = df.reset_index(drop=True)
    out = pd.DataFrame({C.SOURCE: pd.Series([source] * n, dtype="string"), C.SOURCE_ROW: np.arange(n, dtype=np.int64)})

    def absent(value, dtype) -> pd.Series:
        return pd.Series(value, index=df.index, dtype=dtype)

    def col(name: str) -> tuple[pd.Series, Path, str]:
        return df[name], path, names[name]

    out[C.ORDER] = _ids(*col(C.ORDER)) if C.ORDER in df else absent(pd.NA, "string")
    out[C.USER] = _ids(*col(C.USER), nulls=NULL_IDS + tuple(guest_ids))
    out[C.ITEM] = _ids(*col(C.ITEM))
    out[C.TITLE] = _text(*col(C.TITLE), NULL_TITLES) if C.TITLE in df else absent(pd.NA, "string")
    out[C.QUANTITY] = _numbers(*col(C.QUANTITY), True, required=True) if C.QUANTITY in df else absent(1, "Int64")
    out[C.PRICE] = (
        _numbers(*col(C.PRICE), False, nan_row=nan_rows.get(names[C.PRICE]))
        if C.PRICE in df
        else absent(np.nan, "float64")
    )
    out[C.TIMESTAMP] = parse_timestamps(*col(C.TIMESTAMP))
    out[COUNTRY] = _text(*col(COUNTRY)) if COUNTRY in df else absent(pd.NA, "string")
    if C.EVENT_TYPE in df:
        out[C.EVENT_TYPE] = _text(*col(C.EVENT_TYPE), nulls=()).fillna("").str.lower()
    else:
        out[C.EVENT_TYPE] = absent("purchase", "string")
    return out[RAW_COLUMNS]


def read_events(path: str | Path, source: str | None = None, guest_ids: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read one events file (CSV/Parquet, generic or Online Retail schema) into the raw frame.

    Args:
        path: the file.
        source: name recorded in the ``source`` column (default: the file name).
        guest_ids: user ids the source uses for guests (see ``normalize_events``); none for generic files.
    """
    path = Path(path)
    return normalize_events(read_table(path), path, source or path.name, guest_ids)


def read_online_retail(folder: str | Path) -> pd.DataFrame:
    """Read both bundled Online Retail files (2009-2010 raw, 2010-2011) into one raw frame.

    Customer ``0`` is a guest checkout here (``ONLINE_RETAIL.guest_ids``), as the 2010-2011 export writes it.

    Args:
        folder: the folder holding ``ONLINE_RETAIL_FILES``.
    Returns:
        The normalized raw frame, older file first (the cleaner treats later files' copies of
        earlier rows as cross-file overlap).
    """
    folder = Path(folder)
    frames = [read_events(folder / n, source=n, guest_ids=ONLINE_RETAIL.guest_ids) for n in ONLINE_RETAIL_FILES]
    return pd.concat(frames, ignore_index=True)


def read_catalog(path: str | Path) -> pd.DataFrame:
    """Read a shop's own item catalog: ``item_id``, ``title`` required; ``category``, ``description``,
    ``price``, ``listed_at`` (when the item became available, a timestamp as for events; may be blank)
    optional. Ids and texts are read as for events (stripped, control characters refused, placeholder
    titles missing); a catalog's item ``0`` is a real item.

    Raises:
        InputDataError: missing columns, null or blank ids or titles, an item id listed twice (after
            stripping), a control character, a bad price.
    """
    path = Path(path)
    df = read_table(path)
    nan_rows = df.attrs.get(NAN_ROWS, {})
    df, names = _rename(df, path, CATALOG_REQUIRED)
    df = df.reset_index(drop=True)
    df[C.ITEM] = _ids(df[C.ITEM], path, names[C.ITEM], nulls=("",))
    df[C.TITLE] = _text(df[C.TITLE], path, names[C.TITLE], NULL_TITLES)
    for col in (C.ITEM, C.TITLE):
        null = df[col].isna().to_numpy()
        if null.any():
            raise InputDataError(path, "value is missing", column=names[col], row=_first_bad(null))
    dup = df[C.ITEM].duplicated().to_numpy()
    if dup.any():
        row = _first_bad(dup)
        raise InputDataError(path, f"item {df[C.ITEM].iloc[row]!r} is listed more than once", names[C.ITEM], row)
    if C.PRICE in df:
        df[C.PRICE] = _numbers(df[C.PRICE], path, names[C.PRICE], False, nan_row=nan_rows.get(names[C.PRICE]))
    for extra in (C.CATEGORY, C.DESCRIPTION):
        if extra in df:
            df[extra] = _text(df[extra], path, extra)
    if C.LISTED_AT in df:  # blank = unknown listing date (then the day after the first sale counts)
        listed = df[C.LISTED_AT]
        blank = listed.isna() | listed.astype("string").str.strip().eq("").fillna(True)
        df[C.LISTED_AT] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
        rows = np.flatnonzero(~blank.to_numpy(bool))
        if len(rows):
            try:
                parsed = parse_timestamps(listed.iloc[rows].reset_index(drop=True), path, C.LISTED_AT)
            except InputDataError as exc:  # the subset's row number -> the file's
                row = int(rows[exc.row]) if exc.row is not None else None
                raise InputDataError(path, str(exc).split(": ", 1)[-1], C.LISTED_AT, row) from exc
            df.loc[rows, C.LISTED_AT] = parsed.to_numpy()
    keep = [c for c in (C.ITEM, C.TITLE, C.CATEGORY, C.DESCRIPTION, C.PRICE, C.LISTED_AT) if c in df]
    return df[keep].reset_index(drop=True)
