"""Batch lists: who is active, both views from the served model, one atomically replaced file per date.

The served model is the tiny hand-made one (``u0`` bought i0 at ts 0 and i1 at ts 1, ``u1`` i0 and i2,
``u2`` i0, i1, i3): Rebuy serves "repeat" (own items by last purchase first), Popularity "discover"
(distinct buyers 3, 2, 1, 1); an unknown customer gets the most bought items, i0 then i1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.data.interactions import Interactions
from ml.models.popularity import Popularity
from ml.models.rebuy import Rebuy
from ml.serve.batch import (
    BATCH_COLUMNS,
    active_customers,
    batch_path,
    batch_recommendations,
    read_batch,
    write_batch,
)
from ml.tracking.pyfunc import SOURCE, SOURCE_FALLBACK, SOURCE_MODEL, RecommenderModel, stage_artifacts

AS_OF = pd.Timestamp("2011-12-09")


@pytest.fixture
def served(tmp_path) -> RecommenderModel:
    history = Interactions.from_arrays([0, 0, 1, 1, 2, 2, 2], [0, 1, 0, 2, 0, 1, 3], np.arange(7), n_users=3, n_items=4)
    Rebuy().fit(history).save(tmp_path / "rebuy")
    Popularity().fit(history).save(tmp_path / "pop")
    catalog = pd.DataFrame({C.ITEM: ["i0", "i1", "i2", "i3"], C.TITLE: ["Mug", "Teapot", "Tray", "Jug"]})
    artifacts = stage_artifacts(
        {"repeat": tmp_path / "rebuy", "discover": tmp_path / "pop"},
        np.array(["u0", "u1", "u2"]),
        np.array(["i0", "i1", "i2", "i3"]),
        history,
        catalog,
        tmp_path / "staged",
    )
    return RecommenderModel.from_artifacts(artifacts)


def test_active_customers_bought_within_the_days_up_to_the_as_of_date():
    ts = pd.to_datetime(
        [
            "2011-12-06 23:59",  # a: the day before the 3-day window
            "2011-12-07 00:00",  # b: its first instant
            "2011-12-08 12:00",  # b again
            "2011-12-09 23:59",  # c: the as-of date's last minute
            "2011-12-10 00:00",  # d: the day after as-of
        ]
    )
    users = ["a", "b", "b", "c", "d"]
    assert active_customers(users, ts, AS_OF, days=3).tolist() == ["b", "c"]
    assert active_customers(users, ts, "2011-12-09 15:30", days=1).tolist() == ["c"]  # time of day ignored
    assert active_customers(users, ts, AS_OF, days=4).tolist() == ["a", "b", "c"]
    assert active_customers([17850, 17850], ts[3:], AS_OF, days=1).tolist() == ["17850"]  # ids as strings
    assert active_customers(users, ts, "2012-06-01", days=3).tolist() == []
    with pytest.raises(ValueError, match="at least 1"):
        active_customers(users, ts, AS_OF, days=0)


def test_batch_has_both_views_per_customer(served):
    out = batch_recommendations(served, ["u0", "ghost"], n=2)
    assert out.columns.tolist() == [C.USER, "view", C.RANK, C.ITEM, C.TITLE, C.SCORE, SOURCE]
    got = {(v, u): rows[C.ITEM].tolist() for (v, u), rows in out.groupby(["view", C.USER])}
    assert got == {
        ("repeat", "u0"): ["i1", "i0"],  # Rebuy: own items, the later purchase first
        ("discover", "u0"): ["i2", "i3"],  # Popularity without what u0 has
        ("repeat", "ghost"): ["i0", "i1"],
        ("discover", "ghost"): ["i0", "i1"],
    }
    assert set(out.loc[out[C.USER] == "ghost", SOURCE]) == {SOURCE_FALLBACK}
    assert set(out.loc[out[C.USER] == "u0", SOURCE]) == {SOURCE_MODEL}
    assert out.loc[out[C.ITEM] == "i2", C.TITLE].unique().tolist() == ["Tray"]
    assert out["view"].tolist()[:4] == ["repeat"] * 4  # views in protocol order


def test_write_batch_replaces_a_rerun_for_the_same_date(served, tmp_path):
    root = tmp_path / "serving"
    first = batch_recommendations(served, ["u0", "u1", "ghost"], n=2)
    path = write_batch(first, root, AS_OF, model_version=3, run_id="run-a")
    assert path == root / "date=2011-12-09" / "recommendations.parquet" == batch_path(root, AS_OF)
    back = read_batch(root, AS_OF)
    assert back.columns.tolist() == BATCH_COLUMNS
    assert len(back) == 3 * 2 * 2 and set(back["model_version"]) == {3} and set(back["run_id"]) == {"run-a"}
    assert back[C.RANK].dtype == np.int64 and back[C.SCORE].dtype == np.float32

    rerun = batch_recommendations(served, ["u2"], n=1)
    write_batch(rerun, root, "2011-12-09 23:00", model_version=4, run_id="run-b")
    back = read_batch(root, AS_OF)
    assert len(back) == 2 and set(back[C.USER]) == {"u2"} and set(back["model_version"]) == {4}  # replaced
    assert [p.name for p in path.parent.iterdir()] == ["recommendations.parquet"]  # no temporary files left

    write_batch(first, root, AS_OF + pd.Timedelta(days=1), model_version=4, run_id="run-c")
    assert len(read_batch(root, AS_OF)) == 2  # another date is another partition
    assert sorted(p.name for p in root.iterdir()) == ["date=2011-12-09", "date=2011-12-10"]


def test_read_batch_and_write_batch_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="2011-12-09"):
        read_batch(tmp_path, AS_OF)
    with pytest.raises(ValueError, match="lacks columns"):
        write_batch(pd.DataFrame({C.USER: ["u0"]}), tmp_path, AS_OF, 1, "r")


def test_the_export_consumer_writes_the_newest_nights_lists_per_view(served, settings):
    from ml.serve.batch import export_csv

    frame = batch_recommendations(served, ["u0", "u1"], n=2)
    write_batch(frame, settings.paths.serving, "2011-12-08", 1, "run-a")
    write_batch(frame.head(1), settings.paths.serving, AS_OF, 2, "run-b")
    paths = export_csv(settings)
    assert [p.relative_to(settings.paths.home).as_posix() for p in paths] == ["exports/2011-12-09/repeat.csv"]
    rows = pd.read_csv(paths[0])
    assert list(rows.columns) == [c for c in BATCH_COLUMNS if c != "view"] and rows["model_version"].tolist() == [2]
    assert len(export_csv(settings, "2011-12-08")) == 2
    with pytest.raises(FileNotFoundError, match="no batch recommendations"):
        export_csv(settings, "2011-01-01")
