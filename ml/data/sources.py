"""Readers that turn shop exports into one normalized raw frame, with clear errors for bad input.

The normalized raw frame has one row per input row and the columns ``RAW_COLUMNS``; nothing is
dropped here (cleaning decides what is kept). Schema drift between exports is handled by column
aliases: the two Online Retail files name the same fields differently and encode guests as null
in one and as ``0`` in the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.errors import InputDataError

COUNTRY = "country"
RAW_COLUMNS = [C.SOURCE, C.SOURCE_ROW, C.ORDER, C.USER, C.ITEM, C.TITLE, C.QUANTITY, C.PRICE, C.TIMESTAMP, COUNTRY, C.EVENT_TYPE]

ONLINE_RETAIL_FILES = ("online_retail_ii_2009_2010.parquet", "online_retail_2010_2011.parquet")

# canonical column -> the names it goes by in shop exports (first match wins)
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
CATALOG_REQUIRED = (C.ITEM, C.TITLE)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, refusing empty and non-UTF-8 files with the offending row.

    Args:
        path: a ``.csv`` or ``.parquet`` file.
    Returns:
        The file's rows as a DataFrame (CSV columns as strings).
    Raises:
        InputDataError: missing, empty, undecodable or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputDataError(path, "file is empty")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputDataError(path, f"not a readable Parquet file ({exc})") from exc
    elif suffix == ".csv":
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n")  # 0 = header line
            raise InputDataError(path, f"not valid UTF-8 (byte {exc.start}, line {line + 1})", row=line - 1) from exc
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        except pd.errors.ParserError as exc:
            raise InputDataError(path, f"malformed CSV ({exc})") from exc
        except pd.errors.EmptyDataError as exc:
            raise InputDataError(path, "file has no header") from exc
    else:
        raise InputDataError(path, f"unsupported file type {suffix!r} (use .csv or .parquet)")
    if df.empty:
        raise InputDataError(path, "file has a header but no rows")
    return df


def _rename(df: pd.DataFrame, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Map export column names onto canonical names; error on a missing required column."""
    mapping = {}
    for canonical, names in ALIASES.items():
        found = next((n for n in names if n in df.columns), None)
        if found is not None:
            mapping[found] = canonical
    out = df.rename(columns=mapping)
    for col in required:
        if col not in out.columns:
            raise InputDataError(path, f"required column missing (have: {', '.join(map(str, df.columns))})", column=col)
    return out


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _ids(series: pd.Series) -> pd.Series:
    """Identifiers as strings; floats like 13085.0 become '13085'; null/blank/0 stay null."""
    if pd.api.types.is_float_dtype(series):
        out = series.astype("Int64").astype("string")
    else:
        out = series.astype("string").str.strip()
    return out.mask(out.isin(["", "0", "nan", "None"]))


def _numbers(series: pd.Series, path: Path, column: str, integer: bool) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        row = _first_bad(bad)
        raise InputDataError(path, f"expected a number, got {series.iloc[row]!r}", column=column, row=row)
    if integer:
        frac = values.notna().to_numpy() & (values.fillna(0) % 1 != 0).to_numpy()
        if frac.any():
            row = _first_bad(frac)
            raise InputDataError(path, f"expected an integer, got {series.iloc[row]!r}", column=column, row=row)
        return values.astype("Int64")
    return values.astype("float64")


def parse_timestamps(series: pd.Series, path: Path, column: str = C.TIMESTAMP) -> pd.Series:
    """Parse timestamps (ISO strings, datetimes, or integer orders/epoch seconds) to naive UTC ns.

    Integer timestamps are read as seconds since the epoch, so a plain order 1, 2, 3 keeps its order.

    Raises:
        InputDataError: naming the first row that is null or cannot be parsed.
    """
    if series.isna().any():
        raise InputDataError(path, "timestamp is missing", column=column, row=_first_bad(series.isna().to_numpy()))
    if pd.api.types.is_datetime64_any_dtype(series):
        ts = series
    else:
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().all():
            ts = pd.to_datetime(numeric.astype("int64"), unit="s")
        else:
            ts = pd.to_datetime(series, errors="coerce", format="mixed")
            bad = ts.isna().to_numpy()
            if bad.any():
                row = _first_bad(bad)
                raise InputDataError(path, f"unparseable timestamp {series.iloc[row]!r}", column=column, row=row)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.astype("datetime64[ns]")


def normalize_events(df: pd.DataFrame, path: Path, source: str) -> pd.DataFrame:
    """Turn one export (any supported schema) into the normalized raw frame.

    Args:
        df: rows as read.
        path: the file (for error messages).
        source: name recorded in the ``source`` column.
    Returns:
        DataFrame with ``RAW_COLUMNS``, one row per input row, ``source_row`` = input row number.
    Raises:
        InputDataError: missing required column, wrong type, unparseable timestamp.
    """
    df = _rename(df, path, REQUIRED)
    n = len(df)
    df = df.reset_index(drop=True)
    out = pd.DataFrame({C.SOURCE: pd.Series([source] * n, dtype="string"), C.SOURCE_ROW: np.arange(n, dtype=np.int64)})
    def optional(col: str, default) -> pd.Series:
        return df[col] if col in df else pd.Series(default, index=df.index)

    out[C.ORDER] = _ids(df[C.ORDER]) if C.ORDER in df else pd.Series(pd.NA, index=df.index, dtype="string")
    out[C.USER] = _ids(df[C.USER])
    out[C.ITEM] = df[C.ITEM].astype("string").str.strip().replace("", pd.NA)
    out[C.TITLE] = optional(C.TITLE, pd.NA).astype("string").str.strip().replace(list(NULL_TITLES), pd.NA)
    out[C.QUANTITY] = _numbers(df[C.QUANTITY], path, C.QUANTITY, integer=True) if C.QUANTITY in df else pd.Series(1, index=df.index, dtype="Int64")
    out[C.PRICE] = _numbers(df[C.PRICE], path, C.PRICE, integer=False) if C.PRICE in df else pd.Series(np.nan, index=df.index)
    out[C.TIMESTAMP] = parse_timestamps(df[C.TIMESTAMP], path)
    out[COUNTRY] = optional(COUNTRY, pd.NA).astype("string")
    out[C.EVENT_TYPE] = optional(C.EVENT_TYPE, "purchase").astype("string").str.strip().str.lower()
    return out[RAW_COLUMNS]


def read_events(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """Read one events file (CSV/Parquet, generic or Online Retail schema) into the raw frame."""
    path = Path(path)
    return normalize_events(read_table(path), path, source or path.name)


def read_online_retail(folder: str | Path) -> pd.DataFrame:
    """Read both bundled Online Retail files (2009-2010 raw, 2010-2011) into one raw frame.

    Args:
        folder: the folder holding ``ONLINE_RETAIL_FILES``.
    Returns:
        The normalized raw frame, older file first (the cleaner treats later files' copies of
        earlier rows as cross-file overlap).
    """
    folder = Path(folder)
    frames = [read_events(folder / name, source=name) for name in ONLINE_RETAIL_FILES]
    return pd.concat(frames, ignore_index=True)


def read_catalog(path: str | Path) -> pd.DataFrame:
    """Read a shop's own item catalog: ``item_id``, ``title`` required; ``category``, ``description``, ``price`` optional.

    Raises:
        InputDataError: missing columns, null ids or titles, an item id listed twice.
    """
    path = Path(path)
    df = _rename(read_table(path), path, CATALOG_REQUIRED)
    df[C.ITEM] = df[C.ITEM].astype("string").str.strip()
    for col in (C.ITEM, C.TITLE):
        null = df[col].isna().to_numpy()
        if null.any():
            raise InputDataError(path, "value is missing", column=col, row=_first_bad(null))
    dup = df[C.ITEM].duplicated().to_numpy()
    if dup.any():
        row = _first_bad(dup)
        raise InputDataError(path, f"item {df[C.ITEM].iloc[row]!r} is listed more than once", column=C.ITEM, row=row)
    if C.PRICE in df:
        df[C.PRICE] = _numbers(df[C.PRICE], path, C.PRICE, integer=False)
    keep = [c for c in (C.ITEM, C.TITLE, C.CATEGORY, C.DESCRIPTION, C.PRICE) if c in df]
    return df[keep].reset_index(drop=True)
