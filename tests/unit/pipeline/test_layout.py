"""The run-folder layout: every path under the configured home, keyed by the day; earlier records found by date."""

import pytest

from ml.pipeline.layout import Layout


def test_paths_of_a_day_sit_under_home(settings):
    home = settings.paths.home
    layout = Layout.of(settings, "2011-12-09T02:00:00")
    assert layout.as_of == "2011-12-09"
    assert layout.raw == home / "staging" / "2011-12-09" / "raw.parquet"
    assert layout.catalog == home / "lake" / "catalog" / "catalog.parquet"
    assert layout.clean_report == home / "lake" / "reports" / "2011-12-09.json"
    assert layout.synthetic == home / "datasets" / "2011-12-09" / "synthetic"
    assert layout.run.model_dir("als_synth", "final") == home / "runs" / "2011-12-09" / "models" / "als_synth" / "final"
    assert layout.run.summary == home / "runs" / "2011-12-09" / "summary.txt"


def test_previous_record_is_the_latest_strictly_earlier_day(settings):
    reports = settings.paths.lake / "reports"
    reports.mkdir(parents=True)
    for day in ("2011-12-01", "2011-12-07", "2011-12-09", "2011-12-10"):
        (reports / f"{day}.json").write_text("{}")
    assert Layout.of(settings, "2011-12-09").previous("clean") == reports / "2011-12-07.json"
    assert Layout.of(settings, "2011-12-01").previous("clean") is None
    assert Layout.of(settings, "2011-12-09").previous("ingest") is None
    with pytest.raises(ValueError, match="unknown record kind"):
        Layout.of(settings, "2011-12-09").previous("model")
