"""Nightly batch lists: each active customer's top-k items in both views, from the served model.

Written as one Parquet file per as-of date, ``<root>/date=YYYY-MM-DD/recommendations.parquet``, with
the columns :data:`BATCH_COLUMNS`; a rerun for the same date replaces the file (written atomically).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.data.lake import write_parquet_atomic
from ml.eval.protocol import VIEWS
from ml.tracking.pyfunc import OUTPUT_COLUMNS, SOURCE

VIEW = "view"
MODEL_VERSION = "model_version"
RUN_ID = "run_id"
BATCH_COLUMNS = [C.USER, VIEW, C.RANK, C.ITEM, C.TITLE, C.SCORE, SOURCE, MODEL_VERSION, RUN_ID]
FILE_NAME = "recommendations.parquet"
CHUNK_USERS = 5000  # customers per predict call


def active_customers(user_ids, timestamps, as_of, days: int) -> np.ndarray:
    """Customers with a purchase in the ``days`` days up to and including the as-of date.

    The window is ``[as_of + 1 day - days, as_of + 1 day)`` on calendar days: with ``days=1`` only
    the as-of date's purchases count.

    Args:
        user_ids: raw customer id of each event.
        timestamps: the events' times (anything ``pd.to_datetime`` reads), aligned with ``user_ids``.
        as_of: the last day of data (a date or timestamp; its time of day is ignored).
        days: window length in days (``settings.serve.active_days``), at least 1.
    Returns:
        Sorted distinct customer ids (strings).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    ts = pd.to_datetime(pd.Series(np.asarray(timestamps)))
    end = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    if ts.dt.tz is not None and end.tz is None:
        end = end.tz_localize(ts.dt.tz)
    start = end - pd.Timedelta(days=days)
    inside = ((ts >= start) & (ts < end)).to_numpy()
    users = pd.Series(np.asarray(user_ids)[inside]).astype(str)
    return np.sort(users.unique()).astype(object)


def batch_recommendations(model, users, n: int) -> pd.DataFrame:
    """Both views' top-``n`` lists for ``users`` from the served model.

    Args:
        model: the loaded served model (``mlflow.pyfunc.load_model(...)``) or a
            :class:`ml.tracking.pyfunc.RecommenderModel` itself.
        users: raw customer ids.
        n: items per customer and view.
    Returns:
        Long frame ``user_id, view, rank, item_id, title, score, source`` (views in the order of
        ``ml.eval.protocol.VIEWS``, then customers in the given order).
    """
    users = [str(u) for u in users]
    frames = []
    for view in VIEWS:
        for start in range(0, len(users), CHUNK_USERS):
            chunk = pd.DataFrame({C.USER: users[start : start + CHUNK_USERS]})
            out = _predict(model, chunk, {"n": int(n), "view": view})
            frames.append(out[OUTPUT_COLUMNS].assign(**{VIEW: view}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BATCH_COLUMNS[:-2]})
    out = pd.concat(frames, ignore_index=True)
    return out[BATCH_COLUMNS[:-2]]


def _predict(model, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
    import mlflow

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return model.predict(None, frame, params=params)
    return model.predict(frame, params=params)


def batch_path(root: Path, as_of) -> Path:
    """``root/date=YYYY-MM-DD/recommendations.parquet`` for the as-of date."""
    return Path(root) / f"date={pd.Timestamp(as_of):%Y-%m-%d}" / FILE_NAME


def write_batch(frame: pd.DataFrame, root: Path, as_of, model_version, run_id: str) -> Path:
    """Write one night's lists atomically; a rerun for the same date replaces them.

    Args:
        frame: :func:`batch_recommendations`' output.
        root: the serving folder (``settings.paths.serving``).
        as_of: the as-of date the lists are for.
        model_version: the registered model version that produced them (an integer).
        run_id: the MLflow run of that version.
    Returns:
        The file written.
    """
    missing = [c for c in BATCH_COLUMNS[:-2] if c not in frame]
    if missing:
        raise ValueError(f"batch frame lacks columns {missing}")
    out = frame[BATCH_COLUMNS[:-2]].copy()
    out[C.USER] = out[C.USER].astype(str)
    out[C.ITEM] = out[C.ITEM].astype(str)
    out[C.RANK] = out[C.RANK].astype(np.int64)
    out[C.SCORE] = out[C.SCORE].astype(np.float32)
    out[MODEL_VERSION] = np.int64(int(model_version))
    out[RUN_ID] = str(run_id)
    path = batch_path(root, as_of)
    write_parquet_atomic(out.reset_index(drop=True), path)
    return path


def read_batch(root: Path, as_of) -> pd.DataFrame:
    """The lists written for the as-of date.

    Raises:
        FileNotFoundError: naming the file when no lists were written for that date.
    """
    path = batch_path(root, as_of)
    if not path.exists():
        raise FileNotFoundError(f"no batch recommendations for {pd.Timestamp(as_of):%Y-%m-%d} at {path}")
    return pd.read_parquet(path)


def latest_date(root: Path) -> str | None:
    """The newest as-of date with lists under ``root`` (``YYYY-MM-DD``), None when there is none."""
    days = sorted(p.parent.name.removeprefix("date=") for p in Path(root).glob(f"date=*/{FILE_NAME}"))
    return days[-1] if days else None


def export_csv(settings, as_of=None) -> list[Path]:
    """Copy one night's lists (default: the newest) to ``<home>/exports/<day>/<view>.csv``, one file per view.

    The example consumer DAG ``export_recommendations`` calls it when the champion asset is updated.

    Raises:
        FileNotFoundError: no lists were written yet (or none for ``as_of``).
    """
    from ml.data.lake import write_file_atomic

    root = settings.paths.serving
    day = pd.Timestamp(as_of).strftime("%Y-%m-%d") if as_of else latest_date(root)
    if day is None:
        raise FileNotFoundError(f"no batch recommendations under {root} yet")
    lists = read_batch(root, day)
    out = []
    for view, rows in lists.groupby(VIEW, sort=True):
        path = settings.paths.home / "exports" / day / f"{view}.csv"
        write_file_atomic(path, lambda tmp, rows=rows: rows.drop(columns=[VIEW]).to_csv(tmp, index=False))
        out.append(path)
    return out
