"""prepare(): outputs, row accounting, idempotent reruns, catalog rules, and no partial output."""

import json

import pandas as pd
import pytest

from ml import columns as C
from ml.cli import main
from ml.config import Settings
from ml.data.lake import read_partitioned
from ml.data.prepare import CATALOG_FILE, SourceSpec, prepare
from ml.errors import InputDataError
from tests.support.real_rows import II_ROWS, ii_frame, v1_frame, write_online_retail


@pytest.fixture
def retail_folder(tmp_path):
    ii = ii_frame(*II_ROWS)
    v1 = v1_frame("cross_file_overlap", "kept_v1", "guest_zero", "kept_later")
    return write_online_retail(tmp_path / "src", ii, v1)


def test_report_accounts_for_every_row(retail_folder, tmp_path, settings):
    report = prepare(SourceSpec(online_retail=retail_folder), tmp_path / "out", settings)
    assert report["rows_in"] == len(II_ROWS) + 4
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
    assert sum(report["quarantine_by_reason"].values()) == report["rows_quarantined"]
    for per in report["per_source"].values():
        assert per["rows_in"] == per["rows_kept"] + per["rows_quarantined"]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["rows_kept"] == report["rows_kept"]


def test_outputs_are_partitioned_by_event_date(retail_folder, tmp_path, settings):
    out = tmp_path / "out"
    report = prepare(SourceSpec(online_retail=retail_folder), out, settings)
    parts = sorted(p.name for p in (out / "interactions").iterdir())
    assert parts[0] == "event_date=2009-12-01" and parts[-1] == "event_date=2011-12-09"
    interactions = read_partitioned(out / "interactions")
    quarantine = read_partitioned(out / "quarantine")
    assert len(interactions) == report["rows_kept"] and len(quarantine) == report["rows_quarantined"]
    assert set(C.INTERACTION_COLUMNS) <= set(interactions.columns)
    assert (interactions[C.WEIGHT] >= 1).all()
    cancelled = quarantine[quarantine[C.REASON] == "cancelled_invoice"].iloc[0]
    assert cancelled[C.ORDER] == "C489449" and cancelled[C.QUANTITY] == -12 and cancelled["country"] == "Australia"


def test_rerun_replaces_partitions_instead_of_duplicating(retail_folder, tmp_path, settings):
    out = tmp_path / "out"
    first = prepare(SourceSpec(online_retail=retail_folder), out, settings)
    before = read_partitioned(out / "interactions").sort_values([C.SOURCE, C.SOURCE_ROW]).reset_index(drop=True)
    second = prepare(SourceSpec(online_retail=retail_folder), out, settings)
    after = read_partitioned(out / "interactions").sort_values([C.SOURCE, C.SOURCE_ROW]).reset_index(drop=True)
    assert first["rows_kept"] == second["rows_kept"] == len(after)
    pd.testing.assert_frame_equal(before, after)
    assert len(read_partitioned(out / "quarantine")) == second["rows_quarantined"]


def test_as_of_only_reads_rows_available_that_day(retail_folder, tmp_path, settings):
    report = prepare(
        SourceSpec(online_retail=retail_folder), tmp_path / "out", settings, as_of=pd.Timestamp("2010-12-31")
    )
    assert report["rows_after_as_of"] == 1  # the 2011-12-09 line
    assert report["last_timestamp"] < "2011"


def test_catalog_has_one_canonical_title_per_item(tmp_path, settings):
    rows = [II_ROWS["kept"]] * 1 + [II_ROWS["kept_2"]]
    renamed = list(II_ROWS["kept"])
    renamed[0], renamed[2] = "489500", "CHRISTMAS GLASS BALL 20 LIGHTS (typo)"
    later = list(II_ROWS["kept"])
    later[0], later[4] = "489600", "2009-12-05 10:00:00"
    folder = write_online_retail(
        tmp_path / "src", pd.DataFrame(rows + [renamed, later], columns=ii_frame("kept").columns), v1_frame("kept_v1")
    )
    prepare(SourceSpec(online_retail=folder), tmp_path / "out", settings)
    catalog = pd.read_parquet(tmp_path / "out" / CATALOG_FILE).set_index(C.ITEM)
    assert catalog.index.is_unique
    assert catalog.loc["85048", C.TITLE] == "15CM CHRISTMAS GLASS BALL 20 LIGHTS"
    assert catalog.loc["85048", C.N_LINES] == 3 and catalog.loc["85048", C.POPULARITY] == 1
    assert catalog.loc["85048", C.FIRST_SEEN] < catalog.loc["85048", C.LAST_SEEN]


def test_shop_catalog_titles_win_and_extra_columns_are_kept(tmp_path, settings):
    events = tmp_path / "events.csv"
    events.write_text(
        "user_id,item_id,timestamp,price\nu1,i1,2021-01-01,2.0\nu2,i1,2021-01-02,2.0\nu2,i2,2021-01-03,5.0\n"
    )
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("item_id,title,category\ni1,Blue mug,kitchen\ni2,Red lamp,home\n")
    prepare(SourceSpec(events=(events,), catalog=catalog), tmp_path / "out", settings)
    cat = pd.read_parquet(tmp_path / "out" / CATALOG_FILE).set_index(C.ITEM)
    assert cat.loc["i1", C.TITLE] == "Blue mug" and cat.loc["i2", "category"] == "home"


def test_catalog_that_contradicts_events_is_refused_and_nothing_is_written(tmp_path, settings):
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,timestamp\nu1,i1,2021-01-01\nu2,i9,2021-01-02\n")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("item_id,title\ni1,Blue mug\n")
    with pytest.raises(InputDataError) as err:
        prepare(SourceSpec(events=(events,), catalog=catalog), tmp_path / "out", settings)
    assert (err.value.column, err.value.row) == ("item_id", 1) and "i9" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_cli_bad_input_exits_nonzero_with_a_message_and_no_output(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,i1,not-a-date\n")
    code = main(["data", "prepare", "--events", str(bad), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "'timestamp'" in err and "data row 1" in err
    assert not (tmp_path / "out").exists()


def test_failure_while_publishing_leaves_the_lake_as_it_was(retail_folder, tmp_path, settings, monkeypatch):
    out = tmp_path / "out"
    prepare(SourceSpec(online_retail=retail_folder), out, settings)
    before = sorted(p.name for p in (out / "interactions").iterdir())
    from ml.data import lake

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(lake, "publish_partitions", boom)
    with pytest.raises(OSError):
        prepare(SourceSpec(online_retail=retail_folder), out, settings)
    assert sorted(p.name for p in (out / "interactions").iterdir()) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_cli_prepares_generic_events(tmp_path, capsys):
    events = tmp_path / "events.parquet"
    pd.DataFrame(
        {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "timestamp": pd.to_datetime(["2021-01-01", "2021-01-02"])}
    ).to_parquet(events)
    assert main(["data", "prepare", "--events", str(events), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rows_in"] == report["rows_kept"] == 2


def test_a_folder_that_is_no_lake_is_named_in_the_error(tmp_path, settings):
    from ml.data.prepare import read_lake_catalog, split_lake
    from ml.errors import InputDataError

    with pytest.raises(InputDataError, match="not a lake: no interactions/"):
        split_lake(tmp_path, settings)
    with pytest.raises(InputDataError, match="not a lake: no catalog"):
        read_lake_catalog(tmp_path)


def test_a_catalog_has_titles_only_with_a_non_blank_one():
    from ml.data.catalog import has_titles

    assert not has_titles(None)
    assert not has_titles(pd.DataFrame({C.ITEM: ["a"]}))
    assert not has_titles(pd.DataFrame({C.ITEM: ["a", "b"], C.TITLE: ["  ", None]}))
    assert has_titles(pd.DataFrame({C.ITEM: ["a", "b"], C.TITLE: ["", "Mug"]}))


def test_the_commands_read_a_shops_files_where_given_else_the_bundled_data(tmp_path, capsys):
    settings = Settings()
    events, catalog = tmp_path / "events.csv", tmp_path / "items.csv"
    assert SourceSpec.from_files(settings, [events], catalog) == SourceSpec(events=(events,), catalog=catalog)
    assert SourceSpec.from_files(settings) == SourceSpec(online_retail=settings.paths.bundled_data)
    with pytest.raises(InputDataError, match="--catalog needs --events"):
        SourceSpec.from_files(settings, (), catalog)
    # the command line says so and exits 2, writing nothing
    assert main(["data", "prepare", "--catalog", str(catalog), "--out", str(tmp_path / "out")]) == 2
    assert "--catalog needs --events" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
