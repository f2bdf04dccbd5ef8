"""The data command on the full bundled Online Retail data accounts for all 1,056,743 rows."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_prepare_all_bundled_rows(tmp_path):
    out = tmp_path / "lake"
    subprocess.run(
        [sys.executable, "-m", "ml", "data", "prepare", "--source", "online-retail", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    report = json.loads((out / "report.json").read_text())
    assert report["rows_in"] == 1_056_743
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
    assert sum(report["quarantine_by_reason"].values()) == report["rows_quarantined"]
    assert report["per_source"]["online_retail_ii_2009_2010.parquet"]["rows_in"] == 525_461
    assert report["per_source"]["online_retail_2010_2011.parquet"]["rows_in"] == 531_282
    # the nine overlapping days of December 2010 appear once, not twice
    assert report["quarantine_by_reason"]["cross_file_overlap"] == 22_130
    # guests: null ids in one export, 0 in the other
    assert report["quarantine_by_reason"]["guest_checkout"] > 200_000
