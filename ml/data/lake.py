"""A local Parquet lake partitioned by event date, written so that reruns replace, never duplicate.

Every write goes to a staging folder first; only once the whole dataset is written are its
partitions moved into place (each partition by one rename). A failure leaves the lake as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ml import columns as C


@contextmanager
def staging_dir(parent: Path) -> Iterator[Path]:
    """A temporary folder inside ``parent`` that is removed whatever happens."""
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f".staging-{uuid.uuid4().hex}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def replaced_dir(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to write into; when the block succeeds it replaces ``target`` whole.

    A failure inside the block leaves ``target`` as it was (the last complete output) and removes the
    partial folder, so a rerun for the same date replaces its output and a failed one never half-writes it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.{uuid.uuid4().hex}.partial"
    work.mkdir()
    try:
        yield work
        if target.exists():
            old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
            os.replace(target, old)
            os.replace(work, target)
            shutil.rmtree(old)
        else:
            os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stage_partitioned(df: pd.DataFrame, staging: Path, name: str, ts_column: str = C.TIMESTAMP) -> Path:
    """Write ``df`` under ``staging/name`` as hive partitions ``event_date=YYYY-MM-DD``.

    Returns:
        The staged dataset folder.
    """
    target = staging / name
    target.mkdir(parents=True, exist_ok=True)
    if df.empty:
        return target
    table = pa.Table.from_pandas(df, preserve_index=False)
    day = pc.cast(table[ts_column], pa.date32())  # hive folder names print a date32 as YYYY-MM-DD
    table = table.append_column(C.EVENT_DATE, day)
    ds.write_dataset(
        table,
        target,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([(C.EVENT_DATE, pa.date32())]), flavor="hive"),
        basename_template="part-{i}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_group=1 << 20,
    )
    return target


def publish_partitions(staged: Path, target: Path) -> list[str]:
    """Move each staged partition into ``target``, replacing the partition of the same date.

    Returns:
        The partition names published.
    """
    target.mkdir(parents=True, exist_ok=True)
    published = []
    for part in sorted(p for p in staged.iterdir() if p.is_dir()):
        dest = target / part.name
        if dest.exists():
            old = target / f".old-{uuid.uuid4().hex}"
            os.replace(dest, old)
            os.replace(part, dest)
            shutil.rmtree(old)
        else:
            os.replace(part, dest)
        published.append(part.name)
    return published


def write_file_atomic(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the result onto ``path`` (no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write one Parquet file atomically."""
    write_file_atomic(path, lambda tmp: pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp))


def write_json_atomic(obj: object, path: Path) -> None:
    """Write a JSON document atomically (sorted keys, indented)."""
    write_file_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str)))


def read_partitioned(path: Path, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Read a partitioned dataset, optionally only partitions dated before ``until`` (exclusive).

    The partition column ``event_date`` is dropped from the result.
    """
    if not path.exists():
        raise FileNotFoundError(f"no dataset at {path}")
    filt = None
    if until is not None:
        filt = ds.field(C.EVENT_DATE) < pa.scalar(until.date(), pa.date32())
    partitioning = ds.partitioning(pa.schema([(C.EVENT_DATE, pa.date32())]), flavor="hive")
    dataset = ds.dataset(path, format="parquet", partitioning=partitioning, exclude_invalid_files=True)
    table = dataset.to_table(filter=filt)
    df = table.to_pandas()
    return df.drop(columns=[C.EVENT_DATE], errors="ignore")
